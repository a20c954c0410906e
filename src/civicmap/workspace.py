"""The Workspace: an area, its metric CRS, its sources and its store. Orchestration only.

>>> import civicmap as cm
>>> ws = cm.open_workspace("sample_data/demo")     # doctest: +SKIP
>>> report = ws.build()                            # doctest: +SKIP
>>> print(report)                                  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import logging
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import osmnx as ox
import pandas as pd
import shapely
from pyproj import CRS
from rasterio.warp import transform_bounds
from tqdm.auto import tqdm

from civicmap.builds.risk import build_risk
from civicmap.builds.settlements import build_settlements
from civicmap.builds.streets import stored_street_graph
from civicmap.builds.transit import build_transit
from civicmap.config import (
    ProjectConfig,
    RasterSourceConfig,
    SurveySourceConfig,
    TraceSourceConfig,
    read_project_config,
)
from civicmap.crs import WGS84, local_metric_crs, parse_crs, require_crs, to_crs
from civicmap.errors import CivicmapError, InputError
from civicmap.intake import INTAKE_FILE, Intake, approved_submissions, open_intake, publish_form
from civicmap.sources.osm import OSMData, read_osm
from civicmap.sources.raster import reproject_raster, validate_raster, write_cog
from civicmap.sources.survey import read_form, read_submissions
from civicmap.sources.transit import read_gps_traces
from civicmap.sources.vector import read_vector
from civicmap.store import GeoPackageStore, LayerInfo, Store, open_store
from civicmap.types import BBox, Provenance

__all__ = ["BuildReport", "BuildRow", "Workspace", "open_workspace"]

log = logging.getLogger(__name__)

#: OSMData attributes stored as layers, under these names.
OSM_LAYERS = ("buildings", "roads", "amenities", "waterways", "landuse", "transit_stops", "transit_routes")
#: Street graphs stored as node and edge layers (osmnx network types).
STREET_NETWORKS = ("walk", "drive")
#: How each kind of raster is resampled when reprojected (classes and counts must not be blended).
RESAMPLING = {"dem": "bilinear", "imagery": "bilinear", "hazard": "nearest", "population": "sum", "other": "nearest"}
#: Margin around the area kept when clipping rasters, metres (edge effects of later analysis).
RASTER_MARGIN_M = 100.0


@dataclass(frozen=True)
class BuildRow:
    """One line of a build summary: a layer written, or a source that failed."""

    layer: str
    kind: str
    count: int
    crs: str | None
    extent: BBox | None
    """Lon/lat bounds (EPSG:4326)."""
    problems: int
    notes: str = ""
    failed: bool = False


@dataclass(frozen=True)
class BuildReport:
    """What :meth:`Workspace.build` did: one row per layer, and how long it took (s)."""

    rows: tuple[BuildRow, ...]
    seconds: float

    @property
    def failed(self) -> list[BuildRow]:
        """Rows of sources that could not be built."""
        return [r for r in self.rows if r.failed]

    def to_frame(self) -> pd.DataFrame:
        """The summary as a table (extent as four lon/lat columns)."""
        return pd.DataFrame(
            [
                {
                    "layer": r.layer,
                    "kind": r.kind,
                    "count": r.count,
                    "crs": r.crs,
                    "extent": ", ".join(f"{v:.5f}" for v in r.extent) if r.extent else "",
                    "problems": r.problems,
                    "notes": r.notes,
                }
                for r in self.rows
            ]
        )

    def __str__(self) -> str:
        frame = self.to_frame()
        frame["notes"] = frame["notes"].str.slice(0, 60)
        failed = f", {len(self.failed)} source(s) FAILED" if self.failed else ""
        return frame.to_string(index=False) + f"\n{len(self.rows)} layers in {self.seconds:.1f} s{failed}"


class Workspace:
    """One project: area of interest, metric CRS, sources and store.

    ``crs`` is the analysis CRS (metric): the project's ``crs`` if set, else the UTM
    zone of the area. ``area`` is the area of interest in EPSG:4326 and ``bbox`` its
    lon/lat bounds.
    """

    def __init__(self, config: ProjectConfig, *, crs: CRS | str | None = None, store: Store | None = None) -> None:
        self.config = config
        self.area = _read_area(config)
        self.bbox = BBox(*map(float, self.area.bounds))
        chosen = crs or config.crs
        self.crs: CRS = parse_crs(chosen) if chosen else local_metric_crs(self.bbox)
        if not self.crs.is_projected:
            raise InputError(f"workspace CRS {self.crs.to_string()} is not projected; analysis needs metres")
        self.store: Store = store or open_store(config.store_url)
        self._osm: OSMData | None = None

    def __repr__(self) -> str:
        return f"Workspace({self.config.name!r}, crs={self.crs.to_string()}, store={self.store.url!r})"

    @property
    def name(self) -> str:
        """The project's name."""
        return self.config.name

    @property
    def root(self) -> Path:
        """The project folder."""
        return self.config.root

    def layers(self) -> list[LayerInfo]:
        """Catalogue of the layers built so far."""
        return self.store.layers()

    def read_layer(self, name: str, *, bbox: BBox | None = None, crs: CRS | str | None = None) -> gpd.GeoDataFrame:
        """A stored vector layer, in the workspace CRS unless ``crs`` says otherwise."""
        gdf = self.store.read_layer(name, bbox=bbox)
        return to_crs(gdf, crs, name=name) if crs is not None else gdf

    def street_graph(self, network: str = "walk") -> nx.MultiDiGraph:
        """The stored street network (``"walk"`` or ``"drive"``) as an osmnx graph in EPSG:4326 (lengths in m)."""
        return stored_street_graph(self.store, network)

    @cached_property
    def intake(self) -> Intake:
        """The survey intake (submissions, moderation) beside this workspace's store."""
        path = self.store.path.parent / INTAKE_FILE if isinstance(self.store, GeoPackageStore) else None
        return open_intake(self.config, area=self.bbox, path=path)

    def build(self, *, progress: bool = True, only: Collection[str] | None = None) -> BuildReport:
        """Read every source into the workspace CRS and write the layers to the store.

        ``only`` limits the build to some steps by name (``"osm"``, ``"rasters[dem]"``,
        ``"risk"``, ...), e.g. ``only=["risk"]`` after survey approvals. A step that fails is
        reported (``BuildReport.failed``) and the others are still built. Returns the summary.
        """
        started = time.perf_counter()
        steps: list[tuple[str, Callable[[], list[BuildRow]]]] = []
        if self.config.osm:
            steps.append(("osm", self._build_osm))
        steps += [(f"rasters[{r.name}]", partial(self._build_raster, r)) for r in self.config.rasters]
        steps += [(f"surveys[{s.name}]", partial(self._build_survey, s)) for s in self.config.surveys]
        steps += [(f"traces[{t.name}]", partial(self._build_traces, t)) for t in self.config.traces]
        if self.config.risk is not None:
            steps.append(("risk", self._build_risk))
        if self.config.transit is not None:
            steps.append(("transit", self._build_transit))
        if self.config.settlements is not None:
            steps.append(("settlements", self._build_settlements))
        if only is not None:
            unknown = set(only) - {label for label, _ in steps}
            if unknown:
                raise InputError(f"unknown build steps {sorted(unknown)}; steps are {[label for label, _ in steps]}")
            steps = [(label, step) for label, step in steps if label in only]
        rows: list[BuildRow] = []
        with (
            _build_lock(self.root),
            tqdm(steps, desc=f"building {self.name}", unit="source", disable=not progress) as bar,
        ):
            for label, step in bar:
                bar.set_postfix_str(label)
                try:
                    rows += step()
                except CivicmapError as exc:
                    log.error("source %s failed: %s", label, exc)
                    rows.append(BuildRow(label, "source", 0, None, None, 1, str(exc), failed=True))
        return BuildReport(rows=tuple(rows), seconds=time.perf_counter() - started)

    # -- one source each --------------------------------------------------------------
    def _build_osm(self) -> list[BuildRow]:
        assert self.config.osm is not None
        osm = read_osm(self.config.osm.path, area=self.area)
        self._osm = osm  # kept for the analysis steps of this build (transit relations)
        report = osm.report
        provenance = Provenance(str(self.config.osm.path), self.config.osm.licence, details=report.to_dict())
        rows = []
        for name in OSM_LAYERS:
            geometry = [r for r in report.geometry if r.layer.startswith(name) and r.problems]
            skipped = {k: v for k, v in report.skipped.items() if k.startswith(name) and v}
            problems = (*(str(r) for r in geometry), *(f"{name}: skipped {k} {v}" for k, v in skipped.items()))
            row = self._store_vector(name, getattr(osm, name), provenance, problems=problems)
            count = sum(r.problems for r in geometry) + sum(skipped.values())
            rows.append(replace(row, problems=count, notes="; ".join(problems)))
        for network in STREET_NETWORKS:
            nodes, edges = ox.graph_to_gdfs(osm.street_graph(network))
            edges = edges.reset_index()  # u, v, key as columns
            rows.append(self._store_vector(f"streets_{network}_nodes", nodes, provenance))
            rows.append(self._store_vector(f"streets_{network}_edges", edges, provenance))
        other = {k: v for k, v in report.skipped.items() if v and not k.startswith(OSM_LAYERS)}
        if other:
            rows[0] = replace(rows[0], notes="; ".join(filter(None, [rows[0].notes, f"OSM objects skipped: {other}"])))
        return rows

    def _build_raster(self, source: RasterSourceConfig) -> list[BuildRow]:
        raster = validate_raster(source.path, crs=source.crs)
        bounds = self._raster_bounds(raster.crs or parse_crs(source.crs), raster.bounds, source.name)
        with tempfile.TemporaryDirectory(dir=self.store.raster_path(source.name).parent) as tmp:
            warped = Path(tmp) / f"{source.name}.tif"
            reproject_raster(
                source.path,
                warped,
                dst_crs=self.crs,
                bounds=bounds,
                resampling=RESAMPLING[source.kind],
                src_crs=source.crs,
            )
            analysis = self.store.raster_path(source.name)
            write_cog(warped, analysis, blocksize=256, resampling=RESAMPLING[source.kind])
            # tiles are cut from a copy in EPSG:3857 on the GoogleMapsCompatible grid (overviews = zooms)
            web = analysis.with_name(f"{source.name}_web.tif")
            write_cog(warped, web, blocksize=256, resampling=RESAMPLING[source.kind], web_optimized=True)
        meta = {"raster_kind": source.kind, "web_cog": web.name}
        info = self.store.register_raster(
            source.name, provenance=Provenance(str(source.path), source.licence), meta=meta
        )
        return [_row(info, notes=f"{source.kind} raster, COG (+ web-optimised EPSG:3857 COG)")]

    def _raster_bounds(self, raster_crs: CRS, raster_bounds: BBox, name: str) -> BBox:
        """The part of a raster to keep, in the workspace CRS: its overlap with the area plus a margin."""
        w, s, e, n = to_crs(gpd.GeoDataFrame(geometry=[self.area], crs=WGS84), self.crs).total_bounds
        m = RASTER_MARGIN_M
        rw, rs, re, rn = transform_bounds(raster_crs, self.crs, *raster_bounds)
        bounds = BBox(max(w - m, rw), max(s - m, rs), min(e + m, re), min(n + m, rn))
        if bounds.west >= bounds.east or bounds.south >= bounds.north:
            raise InputError(
                f"raster {name!r} (bounds {tuple(round(v, 6) for v in raster_bounds)} in {raster_crs.to_string()}) "
                "does not overlap the area of interest; check the file or its CRS"
            )
        return BBox(*map(float, bounds))

    def _build_survey(self, source: SurveySourceConfig) -> list[BuildRow]:
        form = read_form(source.form)
        subs = read_submissions(list(source.submissions), form, area=self.bbox)
        provenance = Provenance(
            str(source.form),
            source.licence,
            details={"submissions": [str(p) for p in source.submissions], "duplicates": subs.duplicates},
        )
        meta = {
            "form_id": form.form_id,
            "form_version": form.version,
            "private_fields": [f.column for f in form.private_fields],
            "public": False,  # raw submissions: published only once moderated, without private fields
        }
        problems = tuple(str(e) for e in subs.errors)
        row = self._store_vector(f"survey_{source.name}", subs.frame, provenance, problems=problems, meta=meta)
        published = publish_form(self.intake.store, source.form)  # so phones and the web form can submit to it
        columns = ["row", "instance_id", "field", "value", "problem"]
        errors = pd.DataFrame([vars(e) for e in subs.errors], columns=columns).astype("string")
        self.store.write_table(f"survey_{source.name}_errors", errors, provenance=provenance)
        note = (
            f"{len(subs.errors)} bad rows reported, {subs.duplicates} duplicates stored once; "
            f"form {published.form_id} v{published.version} published"
        )
        return [BuildRow(row.layer, row.kind, row.count, row.crs, row.extent, row.problems, note)]

    def _build_traces(self, source: TraceSourceConfig) -> list[BuildRow]:
        traces = read_gps_traces(source.path, area=self.bbox, licence=source.licence)
        row = self._store_vector(
            f"traces_{source.name}",
            traces.points,
            traces.provenance,
            problems=traces.problems,
            meta={"public": False},  # surveyors' own tracks: personal location data
        )
        return [
            BuildRow(
                row.layer, row.kind, row.count, row.crs, row.extent, row.problems, f"{len(traces.trace_ids)} traces"
            )
        ]

    def _build_transit(self) -> list[BuildRow]:
        rows = build_transit(self.store, self.config, self.crs, osm=self._osm)
        return [_row(info, notes=note) for info, note in rows]

    def _build_settlements(self) -> list[BuildRow]:
        return [_row(info, notes=note) for info, note in build_settlements(self.store, self.config, self.crs)]

    def _build_risk(self) -> list[BuildRow]:
        approved = None
        risk = self.config.risk
        if risk is not None and risk.survey is not None:
            form_id = self.store.layer_info(f"survey_{risk.survey}").meta["form_id"]
            approved = approved_submissions(self.intake.store, form_id, include_private=True)
        rows = build_risk(self.store, self.config, self.crs, approved=approved)
        return [_row(info, notes=note) for info, note in rows]

    def _store_vector(
        self,
        name: str,
        frame: gpd.GeoDataFrame,
        provenance: Provenance,
        *,
        problems: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> BuildRow:
        require_crs(frame, name=name)
        info = self.store.write_layer(
            name, to_crs(frame, self.crs, name=name), provenance=provenance, problems=problems, meta=meta
        )
        return _row(info)


def open_workspace(path: str | Path, *, crs: CRS | str | None = None) -> Workspace:
    """Open the project in folder ``path`` (which holds a ``civicmap.toml``)."""
    return Workspace(read_project_config(path), crs=crs)


@contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """One build of a project at a time, across processes (CLI, service workers rebuilding after approvals)."""
    try:
        (root / ".civicmap").mkdir(exist_ok=True)
        handle = (root / ".civicmap" / "build.lock").open("a")
    except OSError as exc:  # a read-only project folder: nothing else can build it either
        log.warning("no build lock in %s (%s); builds are not serialised", root, exc)
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits while another process builds; released on close
        yield


def _row(info: LayerInfo, notes: str = "") -> BuildRow:
    return BuildRow(info.name, info.kind, info.feature_count, info.crs, info.bounds_wgs84, len(info.problems), notes)


def _read_area(config: ProjectConfig) -> shapely.Geometry:
    """The area of interest as one (Multi)Polygon in EPSG:4326."""
    if config.area.bbox is not None:
        return shapely.box(*config.area.bbox)
    assert config.area.file is not None
    gdf = read_vector(config.area.file)
    polygons = gdf[gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polygons.empty:
        raise InputError(f"area.file {config.area.file}: holds no polygon; the area of interest must be a polygon")
    return shapely.make_valid(to_crs(polygons, WGS84, name="area").union_all())
