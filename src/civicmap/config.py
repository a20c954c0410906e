"""Project files (``civicmap.toml``) read into frozen dataclasses.

A project folder holds a ``civicmap.toml`` such as::

    [project]
    name = "Mkondo demo city"
    crs = "auto"                 # or "EPSG:32737": the metric CRS analysis runs in

    [area]
    bbox = [39.23, -6.825, 39.25, -6.805]   # lon/lat (EPSG:4326); or: file = "aoi.geojson"

    [store]
    url = ".civicmap/demo.gpkg"  # a GeoPackage path (relative to the project) or postgresql://...

    [osm]
    path = "city.osm"            # .osm, .osm.bz2 or .osm.pbf
    licence = "ODbL-1.0"

    [[rasters]]                  # dem | imagery | hazard | population | other
    name = "dem"
    path = "dem.tif"
    kind = "dem"

    [[surveys]]
    name = "building_survey"
    form = "forms/building_survey.xlsx"
    submissions = ["surveys/building_survey.csv", "surveys/instances"]

    [[traces]]
    name = "daladala"
    path = "traces"

    [risk]                       # optional: the flood risk layers
    dem = "dem"                  # derive flood depth from this DEM raster and the OSM waterways ...
    stage_m = 4.0                # ... at this water level above the river bed (m)
    # hazard = "flood_depth"     # ... or use a [[rasters]] entry of kind "hazard" (depth in m)
    classification = "flood_petabencana"
    survey = "building_survey"   # survey whose answers give building vulnerability
    impassable_from = "medium"   # streets in this hazard class or worse are cut for walking
    shelter_walk_min = 10
    health_walk_min = 15

    [settlements]                # optional: morphology, access, H3 grid and informality index
    resolution = 10              # H3 resolution (10: cells of about 0.015 km²)
    k = 5                        # cells with fewer buildings are not published

    [transit]                    # optional: GTFS feeds and stop coverage
    from_osm = true              # a feed from the OSM public-transport route relations
    traces = "daladala"          # a feed from this [[traces]] entry
    timezone = "Africa/Dar_es_Salaam"
    max_walk_m = 500

Every problem found is collected and raised at once as a :class:`ConfigError` whose
lines name the key path (``rasters[1].path``) and the fix. Relative paths are resolved
against the project folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from civicmap.crs import parse_crs
from civicmap.errors import ConfigError, NotFoundError
from civicmap.types import BBox

__all__ = [
    "PROJECT_FILE",
    "RASTER_KINDS",
    "AreaConfig",
    "OSMSourceConfig",
    "ProjectConfig",
    "RasterSourceConfig",
    "RiskConfig",
    "SettlementsConfig",
    "SurveySourceConfig",
    "TraceSourceConfig",
    "TransitConfig",
    "read_project_config",
]

PROJECT_FILE = "civicmap.toml"
RASTER_KINDS = ("dem", "imagery", "hazard", "population", "other")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class AreaConfig:
    """The area of interest: a lon/lat bbox, or a polygon file (any CRS) to read."""

    bbox: BBox | None = None
    file: Path | None = None


@dataclass(frozen=True)
class OSMSourceConfig:
    """An OpenStreetMap extract on disk."""

    path: Path
    licence: str = "ODbL-1.0 (© OpenStreetMap contributors)"


@dataclass(frozen=True)
class RasterSourceConfig:
    """A raster source: a DEM, imagery, a hazard grid or a population grid."""

    name: str
    path: Path
    kind: str = "other"
    licence: str | None = None
    crs: str | None = None
    """CRS to assign when the file has none (e.g. an ESRI ASCII grid without .prj)."""


@dataclass(frozen=True)
class SurveySourceConfig:
    """An XLSForm and the submission files (CSV, JSON, GeoJSON, ODK XML) answering it."""

    name: str
    form: Path
    submissions: tuple[Path, ...] = ()
    licence: str | None = None


@dataclass(frozen=True)
class TraceSourceConfig:
    """A folder (or file) of GPS traces (GPX or CSV with timestamps)."""

    name: str
    path: Path
    licence: str | None = None


@dataclass(frozen=True)
class RiskConfig:
    """The flood risk layers: a hazard raster, or a DEM + river stage to derive one; what counts and who is cut off."""

    dem: str | None = None
    """Name of a ``[[rasters]]`` entry of kind ``dem`` to derive flood depth from (with ``stage_m``)."""
    stage_m: float | None = None
    """Water level above the river bed at the drainage cells, metres (see civicmap.layers.risk.flood_dem)."""
    hazard: str | None = None
    """Name of a ``[[rasters]]`` entry of kind ``hazard`` holding flood depth in metres."""
    classification: str = "flood_petabencana"
    waterways: tuple[str, ...] = ("river", "stream", "canal", "drain")
    """OSM ``waterway`` values that carry water (drainage for the DEM method)."""
    survey: str | None = None
    impassable_from: str = "medium"
    shelter_walk_min: float = 10.0
    health_walk_min: float = 15.0


@dataclass(frozen=True)
class SettlementsConfig:
    """The informal-settlement grid: H3 resolution and the smallest published cell (buildings)."""

    resolution: int = 10
    k: int = 5


@dataclass(frozen=True)
class TransitConfig:
    """GTFS feeds from OSM route relations and/or GPS traces, and walking coverage of their stops."""

    from_osm: bool = True
    traces: str | None = None
    """Name of a ``[[traces]]`` entry to build a feed from."""
    timezone: str = "UTC"
    """IANA time zone of the service (``agency_timezone``)."""
    max_walk_m: float = 500.0
    """Walking distance to a stop that counts as served (SDG 11.2.1 uses 500 m), metres."""


@dataclass(frozen=True)
class ProjectConfig:
    """A whole ``civicmap.toml``, validated, with paths made absolute."""

    root: Path
    name: str
    description: str
    crs: str | None
    """The analysis CRS as given, or ``None`` for automatic (UTM zone of the area)."""
    area: AreaConfig
    store_url: str
    osm: OSMSourceConfig | None
    rasters: tuple[RasterSourceConfig, ...]
    surveys: tuple[SurveySourceConfig, ...]
    traces: tuple[TraceSourceConfig, ...]
    risk: RiskConfig | None = None
    transit: TransitConfig | None = None
    settlements: SettlementsConfig | None = None


def read_project_config(folder: str | Path) -> ProjectConfig:
    """Read and validate ``folder/civicmap.toml`` (or a path to the toml file itself)."""
    path = Path(folder)
    if path.is_dir():
        path = path / PROJECT_FILE
    if not path.is_file():
        raise NotFoundError(
            f"no project file at {path}; create a {PROJECT_FILE} there (see the civicmap README) "
            "or pass the folder that holds one"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return _Parser(path.parent.resolve(), path).project(data)


class _Parser:
    """Walks the TOML tables, collecting every problem before raising once."""

    def __init__(self, root: Path, file: Path) -> None:
        self.root = root
        self.file = file
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def project(self, data: dict[str, Any]) -> ProjectConfig:
        known = {"project", "area", "store", "osm", "rasters", "surveys", "traces", "risk", "transit", "settlements"}
        for key in sorted(set(data) - known):
            self.fail(key, f"unknown table; expected one of {sorted(known)}")
        proj = self.table(data, "project")
        name = self.string(proj, "project.name", required=True) or "civicmap project"
        crs = self.string(proj, "project.crs") or "auto"
        store = self.table(data, "store")
        store_url = self.string(store, "store.url") or f".civicmap/{_slug(name)}.gpkg"
        if not re.match(r"^[a-z]+://", store_url):
            store_url = str(self.root / store_url)
        elif store_url.startswith(("postgresql://", "postgres://")) and "raster_dir=" not in store_url:
            # rasters of a PostGIS workspace live in the project folder, not the working directory
            store_url += ("&" if "?" in store_url else "?") + f"raster_dir={self.root / '.civicmap' / 'rasters'}"
        config = ProjectConfig(
            root=self.root,
            name=name,
            description=self.string(proj, "project.description") or "",
            crs=None if crs == "auto" else self.crs(crs),
            area=self.area(self.table(data, "area", required=True)),
            store_url=store_url,
            osm=self.osm(data.get("osm")),
            rasters=tuple(self.raster(t, f"rasters[{i}]") for i, t in enumerate(self.array(data, "rasters"))),
            surveys=tuple(self.survey(t, f"surveys[{i}]") for i, t in enumerate(self.array(data, "surveys"))),
            traces=tuple(self.trace(t, f"traces[{i}]") for i, t in enumerate(self.array(data, "traces"))),
        )
        if "risk" in data:
            config = replace(config, risk=self.risk(self.table(data, "risk"), config))
        if "settlements" in data:
            config = replace(config, settlements=self.settlements(self.table(data, "settlements")))
        if "transit" in data:
            config = replace(config, transit=self.transit(self.table(data, "transit"), config))
        self.unique_names(config)
        if self.problems:
            raise ConfigError(f"{self.file} has {len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems))
        return config

    # -- tables -----------------------------------------------------------------------
    def area(self, t: dict[str, Any]) -> AreaConfig:
        if ("bbox" in t) == ("file" in t):
            self.fail("area", "give exactly one of bbox = [west, south, east, north] (lon/lat) or file = 'aoi.geojson'")
            return AreaConfig()
        if "file" in t:
            return AreaConfig(file=self.path(t, "area.file"))
        try:
            return AreaConfig(bbox=BBox.parse(t["bbox"]))
        except ValueError as exc:
            self.fail("area.bbox", f"{exc}; write it as [west, south, east, north] in degrees")
            return AreaConfig()

    def osm(self, t: Any) -> OSMSourceConfig | None:
        if t is None:
            return None
        if not isinstance(t, dict):
            self.fail("osm", "must be a table with path = '...'")
            return None
        path = self.path(t, "osm.path")
        if path and not re.search(r"\.osm(\.bz2|\.pbf)?$|\.pbf$", path.name):
            self.fail("osm.path", f"{path.name!r} is not .osm, .osm.bz2 or .osm.pbf")
        licence = self.string(t, "osm.licence") or OSMSourceConfig.licence
        return OSMSourceConfig(path=path or self.root, licence=licence) if path else None

    def raster(self, t: dict[str, Any], key: str) -> RasterSourceConfig:
        kind = self.string(t, f"{key}.kind") or "other"
        if kind not in RASTER_KINDS:
            self.fail(f"{key}.kind", f"{kind!r} is not one of {list(RASTER_KINDS)}")
        crs = self.string(t, f"{key}.crs")
        return RasterSourceConfig(
            name=self.name(t, key),
            path=self.path(t, f"{key}.path") or self.root,
            kind=kind,
            licence=self.string(t, f"{key}.licence"),
            crs=self.crs(crs) if crs else None,
        )

    def survey(self, t: dict[str, Any], key: str) -> SurveySourceConfig:
        subs = t.get("submissions", [])
        if isinstance(subs, str):
            subs = [subs]
        if not isinstance(subs, list):
            self.fail(f"{key}.submissions", "must be a path or a list of paths")
            subs = []
        paths = [self.path({"p": s}, f"{key}.submissions[{i}]", field="p") for i, s in enumerate(subs)]
        return SurveySourceConfig(
            name=self.name(t, key),
            form=self.path(t, f"{key}.form") or self.root,
            submissions=tuple(p for p in paths if p is not None),
            licence=self.string(t, f"{key}.licence"),
        )

    def trace(self, t: dict[str, Any], key: str) -> TraceSourceConfig:
        return TraceSourceConfig(
            name=self.name(t, key),
            path=self.path(t, f"{key}.path") or self.root,
            licence=self.string(t, f"{key}.licence"),
        )

    def risk(self, t: dict[str, Any], config: ProjectConfig) -> RiskConfig | None:
        known = set(RiskConfig.__dataclass_fields__)
        for key in sorted(set(t) - known):
            self.fail(f"risk.{key}", f"unknown key; expected one of {sorted(known)}")
        rasters = {r.name: r.kind for r in config.rasters}
        dem, hazard = t.get("dem"), t.get("hazard")
        if (dem is None) == (hazard is None):
            self.fail("risk", "give either dem = '<raster name>' with stage_m, or hazard = '<raster name>'")
        for key, value, kind in (("dem", dem, "dem"), ("hazard", hazard, "hazard")):
            if value is not None and rasters.get(value) != kind:
                self.fail(f"risk.{key}", f"{value!r} is not a [[rasters]] entry of kind {kind!r}")
        stage = t.get("stage_m")
        if dem is not None and (not isinstance(stage, int | float) or stage < 0):
            self.fail("risk.stage_m", f"{stage!r}: the DEM method needs a water level >= 0 m above the river bed")
        survey = t.get("survey")
        if survey is not None and survey not in {s.name for s in config.surveys}:
            self.fail("risk.survey", f"{survey!r} is not a [[surveys]] entry")
        numbers = {k: t[k] for k in ("shelter_walk_min", "health_walk_min") if k in t}
        for key, value in numbers.items():
            if not isinstance(value, int | float) or value <= 0:
                self.fail(f"risk.{key}", f"{value!r} must be a positive number of minutes")
        waterways = t.get("waterways", list(RiskConfig.waterways))
        if not isinstance(waterways, list) or not all(isinstance(w, str) for w in waterways):
            self.fail("risk.waterways", "must be a list of OSM waterway values such as ['river', 'stream']")
            waterways = list(RiskConfig.waterways)
        try:
            return RiskConfig(
                dem=dem, stage_m=float(stage) if isinstance(stage, int | float) else None, hazard=hazard,
                classification=str(t.get("classification", RiskConfig.classification)),
                waterways=tuple(waterways), survey=survey,
                impassable_from=str(t.get("impassable_from", RiskConfig.impassable_from)),
                **{k: float(v) for k, v in numbers.items() if isinstance(v, int | float)},
            )  # fmt: skip
        except TypeError as exc:
            self.fail("risk", str(exc))
            return None

    def settlements(self, t: dict[str, Any]) -> SettlementsConfig:
        known = set(SettlementsConfig.__dataclass_fields__)
        for key in sorted(set(t) - known):
            self.fail(f"settlements.{key}", f"unknown key; expected one of {sorted(known)}")
        resolution, k = t.get("resolution", SettlementsConfig.resolution), t.get("k", SettlementsConfig.k)
        if not isinstance(resolution, int) or not 0 <= resolution <= 15:
            self.fail(
                "settlements.resolution", f"{resolution!r} must be an H3 resolution from 0 to 15 (10 ~ 0.015 km²)"
            )
            resolution = SettlementsConfig.resolution
        if not isinstance(k, int) or k < 1:
            self.fail("settlements.k", f"{k!r} must be a whole number of buildings >= 1")
            k = SettlementsConfig.k
        return SettlementsConfig(resolution=resolution, k=k)

    def transit(self, t: dict[str, Any], config: ProjectConfig) -> TransitConfig:
        known = set(TransitConfig.__dataclass_fields__)
        for key in sorted(set(t) - known):
            self.fail(f"transit.{key}", f"unknown key; expected one of {sorted(known)}")
        traces = t.get("traces")
        if traces is not None and traces not in {x.name for x in config.traces}:
            self.fail("transit.traces", f"{traces!r} is not a [[traces]] entry")
        from_osm = t.get("from_osm", True)
        if not isinstance(from_osm, bool):
            self.fail("transit.from_osm", f"{from_osm!r} must be true or false")
        walk = t.get("max_walk_m", TransitConfig.max_walk_m)
        if not isinstance(walk, int | float) or walk <= 0:
            self.fail("transit.max_walk_m", f"{walk!r} must be a positive distance in metres")
            walk = TransitConfig.max_walk_m
        zone = self.string(t, "transit.timezone") or TransitConfig.timezone
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail("transit.timezone", f"{zone!r} is not an IANA time zone such as 'Africa/Nairobi'")
        return TransitConfig(from_osm=bool(from_osm), traces=traces, timezone=zone, max_walk_m=float(walk))

    # -- values -----------------------------------------------------------------------
    def table(self, data: dict[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(key, f"missing; add a [{key}] table")
            return {}
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
            return {}
        return value

    def array(self, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, f"must be an array of tables, written [[{key}]]")
            return []
        return value

    def string(self, t: dict[str, Any], key: str, *, required: bool = False) -> str | None:
        field = key.rsplit(".", 1)[-1]
        value = t.get(field)
        if value is None:
            if required:
                self.fail(key, "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, not {value!r}")
            return None
        return value.strip()

    def name(self, t: dict[str, Any], key: str) -> str:
        name = self.string(t, f"{key}.name", required=True) or ""
        if name and not _NAME.match(name):
            self.fail(f"{key}.name", f"{name!r} must be lower-case letters, digits and _ (it names a layer)")
        return name

    def path(self, t: dict[str, Any], key: str, *, field: str | None = None) -> Path | None:
        raw = t.get(field or key.rsplit(".", 1)[-1])
        if not isinstance(raw, str) or not raw:
            self.fail(key, "missing; give a path relative to the project folder")
            return None
        path = (self.root / raw).resolve()
        if not path.exists():
            self.fail(key, f"file {raw!r} not found (looked in {self.root}); fix the path or remove the entry")
        return path

    def crs(self, value: str) -> str | None:
        try:
            parse_crs(value)
        except ValueError:
            self.fail("crs", f"{value!r} is not a CRS; write 'auto' or an EPSG code such as 'EPSG:32737'")
            return None
        return value

    def unique_names(self, config: ProjectConfig) -> None:
        names = [r.name for r in config.rasters] + [s.name for s in config.surveys] + [t.name for t in config.traces]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            self.fail("name", f"{dup!r} is used by more than one source; names must be unique")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "project"
