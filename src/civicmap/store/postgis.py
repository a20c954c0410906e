"""A workspace store in PostgreSQL/PostGIS: for several writers, remote databases, roles.

URL forms (``postgres://`` works too)::

    postgresql://user:password@host:5432/dbname
    postgresql://user@host/dbname?schema=city_a&raster_dir=/srv/civicmap/rasters
    postgresql:///dbname?host=/var/run/postgresql          (Unix socket, peer auth)

``schema`` (default ``public``) lets several workspaces share one database; it is created
on first write if missing. Rasters stay Cloud Optimized GeoTIFFs on disk in ``raster_dir``
(default ``./.civicmap/rasters/<schema>`` under the working directory, made absolute when
the store is opened), registered in the catalogue like the GeoPackage store does. Every
other query parameter goes to libpq (``sslmode``, ``connect_timeout``, ...). Passwords can
also come from ``PGPASSWORD`` or ``~/.pgpass``; :attr:`PostGISStore.url` never shows one.

Layout in the schema: one table per layer (``civicmap_fid`` bigint primary key in row
order, the frame's columns, ``geom geometry(Geometry, <srid>)`` with a GiST index) and
the catalogue ``civicmap_layers``. A layer is replaced by loading a new table (``COPY``)
and swapping it in within one transaction, so readers see the old or the new layer,
never half of one. Needs the ``postgis`` extension in the database and psycopg 3
(``pip install 'civicmap[postgis]'``).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pyproj import CRS

from civicmap.errors import InputError, NotFoundError, StoreError
from civicmap.store.base import (
    CATALOG_TABLE,
    LayerInfo,
    StoreBase,
    check_layer_name,
    restore_index,
    storable_frame,
    vector_entry,
)
from civicmap.types import BBox, Provenance

__all__ = ["PostGISStore"]

log = logging.getLogger(__name__)

GEOMETRY_COLUMN = "geom"
ROW_COLUMN = "civicmap_fid"
_OWN_PARAMS = ("schema", "raster_dir")
_CATALOG_COLUMNS = """
    name text PRIMARY KEY, kind text NOT NULL, feature_count bigint NOT NULL,
    crs text, bounds jsonb, bounds_wgs84 jsonb, geometry_type text,
    version integer NOT NULL, updated_at timestamptz NOT NULL,
    provenance jsonb NOT NULL, problems jsonb NOT NULL, path text, meta jsonb NOT NULL,
    srid integer NOT NULL DEFAULT 0, crs_wkt text
"""
_NULL = "\\N"


class PostGISStore(StoreBase):
    """A workspace store in a PostgreSQL database with PostGIS (see the module docstring for URLs).

    Layers keep the CRS they are written in (EPSG codes become the column SRID; other CRSs
    are stored with SRID 0 and their WKT in the catalogue). Opening checks the connection
    and the PostGIS extension and raises :class:`~civicmap.errors.StoreError` with the fix.
    One short connection per call: safe to share between threads and processes.
    """

    def __init__(self, url: str) -> None:
        self._conninfo, self.schema, raster_dir = _parse_url(url)
        self.url = _public_url(url)
        default_dir = Path.cwd() / ".civicmap" / "rasters" / self.schema
        self.raster_dir = (Path(raster_dir).expanduser() if raster_dir else default_dir).resolve()
        with self._transaction() as con:
            row = con.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
        if row is None:
            raise StoreError(
                f"database of {self.url} has no PostGIS extension; run 'CREATE EXTENSION postgis' in it "
                "as a superuser (scripts/postgis does this for the test database)"
            )
        self.postgis_version: str = row[0]
        self._catalog = sql.Identifier(self.schema, CATALOG_TABLE)
        self._prepared = False

    def __repr__(self) -> str:
        return f"PostGISStore({self.url!r})"

    # -- writing ----------------------------------------------------------------------
    def write_layer(
        self,
        name: str,
        gdf: gpd.GeoDataFrame,
        *,
        provenance: Provenance | None = None,
        problems: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> LayerInfo:
        """Write (replace) vector layer ``name``; the frame must have a CRS (kept as is)."""
        check_layer_name(name)
        if gdf.crs is None:
            raise InputError(f"layer {name!r} has no CRS; set one before storing it")
        frame, index_meta = storable_frame(gdf)
        crs = CRS.from_user_input(gdf.crs)
        srid = crs.to_epsg() or 0
        info = vector_entry(gdf, {**(meta or {}), **index_meta})
        info.update(srid=srid, crs_wkt=crs.to_wkt())
        return self._replace(name, frame, info, provenance, problems)

    def write_table(self, name: str, df: pd.DataFrame, *, provenance: Provenance | None = None) -> LayerInfo:
        """Write (replace) a table without geometry (e.g. survey row errors)."""
        check_layer_name(name)
        frame, index_meta = storable_frame(pd.DataFrame(df))
        info = dict(kind="table", feature_count=len(df), meta=index_meta)
        return self._replace(name, frame, info, provenance, ())

    def register_raster(
        self,
        name: str,
        *,
        provenance: Provenance | None = None,
        problems: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> LayerInfo:
        """Record the COG already written at :meth:`raster_path` in the catalogue."""
        info = self._raster_entry(name, meta)
        self._prepare()
        with self._transaction() as con:
            _lock(con, self.schema, name)
            con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, name)))
            row = self._record(con, name, info, provenance, problems)
        return _info_from_row(row)

    # -- reading ----------------------------------------------------------------------
    def read_layer(self, name: str, *, bbox: BBox | None = None, columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """Read vector layer ``name`` in its CRS, rows in written order, index restored.

        ``bbox`` (in the layer's CRS) keeps the features that intersect it (GiST index).
        """
        with self._transaction() as con:
            row = self._info_row(con, name)
            info = _info_from_row(row)
            if info.kind != "vector":
                raise InputError(f"layer {name!r} is a {info.kind}, not a vector layer")
            wanted = self._columns(con, name, columns, info)
            where: sql.Composable = sql.SQL("")
            params: tuple[Any, ...] = ()
            if bbox is not None:
                where = sql.SQL("WHERE ST_Intersects({}, ST_MakeEnvelope(%s, %s, %s, %s, {}))").format(
                    sql.Identifier(GEOMETRY_COLUMN), sql.Literal(int(row["srid"]))
                )
                params = tuple(float(v) for v in bbox)
            geometry = sql.SQL("ST_AsBinary({})").format(sql.Identifier(GEOMETRY_COLUMN))
            frame = self._select(con, name, wanted, where, params, geometry=geometry)
        geoms = shapely.from_wkb(frame.pop("geometry").to_numpy(dtype=object))
        crs = CRS.from_wkt(row["crs_wkt"]) if row["crs_wkt"] else info.crs
        return restore_index(gpd.GeoDataFrame(frame, geometry=geoms, crs=crs), info)

    def read_table(self, name: str) -> pd.DataFrame:
        """Read table ``name`` (rows in written order, index restored)."""
        with self._transaction() as con:
            info = _info_from_row(self._info_row(con, name))
            if info.kind != "table":
                raise InputError(f"layer {name!r} is a {info.kind}, not a table")
            frame = self._select(con, name, self._columns(con, name, None, info), sql.SQL(""), ())
        return restore_index(frame, info)

    def layers(self) -> list[LayerInfo]:
        """Every catalogued layer, sorted by name (empty before the first write)."""
        with self._transaction() as con:
            if not self._has_catalog(con):
                return []
            rows = con.cursor(row_factory=dict_row).execute(
                sql.SQL("SELECT * FROM {} ORDER BY name").format(self._catalog)
            )
            return [_info_from_row(r) for r in rows]

    def layer_info(self, name: str) -> LayerInfo:
        """One catalogue entry, or :class:`NotFoundError` listing the layers there are."""
        with self._transaction() as con:
            return _info_from_row(self._info_row(con, name))

    # -- internals --------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One connection, one transaction (committed on success); driver errors become StoreError."""
        try:
            con = psycopg.connect(self._conninfo)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.url}: {str(exc).strip()}; check the URL and that "
                'the server is running (for the tests: eval "$(scripts/postgis)")'
            ) from exc
        try:
            with con:
                yield con
        except psycopg.Error as exc:
            raise StoreError(f"PostGIS store {self.url}: {str(exc).strip()}") from exc

    def _has_catalog(self, con: psycopg.Connection[Any]) -> bool:
        found = con.execute("SELECT to_regclass(%s)", (f'"{self.schema}"."{CATALOG_TABLE}"',)).fetchone()
        return found is not None and found[0] is not None

    def _prepare(self) -> None:
        """Create the schema (if missing) and the catalogue, once, in their own short transaction."""
        if self._prepared:
            return
        with self._transaction() as con:
            con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"civicmap:{self.schema}",))
            exists = con.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone()
            if not exists:
                con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            con.execute(sql.SQL(f"CREATE TABLE IF NOT EXISTS {{}} ({_CATALOG_COLUMNS})").format(self._catalog))
        self._prepared = True

    def _replace(
        self,
        name: str,
        frame: pd.DataFrame,
        info: dict[str, Any],
        provenance: Provenance | None,
        problems: tuple[str, ...],
    ) -> LayerInfo:
        """Load ``frame`` into a fresh table, then swap it in for ``name`` and bump the version."""
        columns = _column_specs(frame)
        self._prepare()
        stage = sql.Identifier(self.schema, f"civicmap_new_{secrets.token_hex(6)}")
        with self._transaction() as con:
            con.execute(_create_table(stage, columns, info.get("srid"), frame))
            with con.cursor().copy(
                sql.SQL("COPY {} ({}) FROM STDIN").format(
                    stage, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
                )
            ) as copy:
                copy.write(_copy_text(columns))
            if "srid" in info:
                con.execute(
                    sql.SQL("CREATE INDEX ON {} USING gist ({})").format(stage, sql.Identifier(GEOMETRY_COLUMN))
                )
            con.execute(sql.SQL("ANALYZE {}").format(stage))
            _lock(con, self.schema, name)
            con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, name)))
            con.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(stage, sql.Identifier(name)))
            row = self._record(con, name, info, provenance, problems)
        log.debug("stored %s %s v%d in %s", info["kind"], name, row["version"], self.url)
        return _info_from_row(row)

    def _record(
        self,
        con: psycopg.Connection[Any],
        name: str,
        info: dict[str, Any],
        provenance: Provenance | None,
        problems: tuple[str, ...],
    ) -> dict[str, Any]:
        """Upsert the catalogue row; ``version`` grows by one in the same transaction as the data."""
        values = {
            "name": name,
            "kind": info["kind"],
            "feature_count": int(info["feature_count"]),
            "crs": info.get("crs"),
            "bounds": _jsonb(info.get("bounds")),
            "bounds_wgs84": _jsonb(info.get("bounds_wgs84")),
            "geometry_type": info.get("geometry_type"),
            "provenance": _jsonb(provenance.to_dict() if provenance else {}),
            "problems": _jsonb(list(problems)),
            "path": info.get("path"),
            "meta": _jsonb(info.get("meta") or {}),
            "srid": int(info.get("srid") or 0),
            "crs_wkt": info.get("crs_wkt"),
        }
        query = sql.SQL(
            "INSERT INTO {cat} ({cols}, version, updated_at) VALUES ({vals}, 1, now()) "
            "ON CONFLICT (name) DO UPDATE SET {sets}, version = {cat}.version + 1, updated_at = now() RETURNING *"
        ).format(
            cat=self._catalog,
            cols=sql.SQL(", ").join(map(sql.Identifier, values)),
            vals=sql.SQL(", ").join(map(sql.Placeholder, values)),
            sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(k)) for k in values),
        )
        row = con.cursor(row_factory=dict_row).execute(query, values).fetchone()
        assert row is not None
        return row

    def _info_row(self, con: psycopg.Connection[Any], name: str) -> dict[str, Any]:
        """The catalogue row of ``name``, or :class:`NotFoundError` listing the layers there are."""
        names: list[str] = []
        if self._has_catalog(con):
            cur = con.cursor(row_factory=dict_row)
            row = cur.execute(sql.SQL("SELECT * FROM {} WHERE name = %s").format(self._catalog), (name,)).fetchone()
            if row is not None:
                return row
            names = [r["name"] for r in cur.execute(sql.SQL("SELECT name FROM {} ORDER BY name").format(self._catalog))]
        raise NotFoundError(f"no layer {name!r} in {self.url}; layers: {', '.join(names) or 'none (build first)'}")

    def _select(
        self,
        con: psycopg.Connection[Any],
        name: str,
        columns: list[str],
        where: sql.Composable,
        params: tuple[Any, ...],
        *,
        geometry: sql.Composable | None = None,
    ) -> pd.DataFrame:
        """Rows of table ``name`` in written order: ``columns`` (and ``geometry`` as column "geometry")."""
        items = [sql.Identifier(ROW_COLUMN), *map(sql.Identifier, columns), *([geometry] if geometry else [])]
        query = sql.SQL("SELECT {} FROM {} {} ORDER BY {}").format(
            sql.SQL(", ").join(items), sql.Identifier(self.schema, name), where, sql.Identifier(ROW_COLUMN)
        )
        names = [ROW_COLUMN, *columns, *(["geometry"] if geometry else [])]
        return _fetch_frame(con, query, params, names).drop(columns=ROW_COLUMN)

    def _columns(
        self, con: psycopg.Connection[Any], name: str, columns: list[str] | None, info: LayerInfo
    ) -> list[str]:
        """The stored attribute columns to read: all (in order), or ``columns`` plus the index column."""
        stored = [
            r[0]
            for r in con.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                (f'"{self.schema}"."{name}"',),
            )
            if r[0] not in (ROW_COLUMN, GEOMETRY_COLUMN)
        ]
        if columns is None:
            return stored
        unknown = [c for c in columns if c not in stored]
        if unknown:
            raise InputError(f"layer {name!r} has no column(s) {unknown}; it has: {', '.join(stored)}")
        index = info.meta.get("index")
        return [c for c in stored if c in columns or c == index]


# -- URLs -----------------------------------------------------------------------------
def _parse_url(url: str) -> tuple[str, str, str | None]:
    """Connection string for libpq (civicmap's own parameters removed, UTC session), schema and raster folder."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InputError(f"store URL {_public_url(url)!r} is not a postgresql:// URL")
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in _OWN_PARAMS}
    rest = [(k, v) for k, v in query if k not in _OWN_PARAMS]
    schema = own.get("schema") or "public"
    check_layer_name(schema, what="schema name")
    libpq_url = urlunsplit(parts._replace(query=urlencode(rest)))
    try:
        params = psycopg.conninfo.conninfo_to_dict(libpq_url)
    except psycopg.ProgrammingError as exc:
        raise InputError(f"store URL {_public_url(url)!r} is not a valid PostgreSQL URL: {exc}") from exc
    params.setdefault("connect_timeout", 10)
    params.setdefault("application_name", "civicmap")
    params["options"] = f"{params.get('options', '')} -c TimeZone=UTC".strip()
    return psycopg.conninfo.make_conninfo("", **params), schema, own.get("raster_dir") or None


def _public_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to log and show)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/*")))


# -- tables and COPY ------------------------------------------------------------------
class _Column:
    """One column to store: its name, PostgreSQL type and values as COPY text (backslash-N for null)."""

    __slots__ = ("name", "pg_type", "text")

    def __init__(self, name: str, pg_type: str, text: pd.Series) -> None:
        self.name, self.pg_type, self.text = name, pg_type, text


_OBJECT_TYPES = {
    "boolean": "boolean",
    "integer": "bigint",
    "floating": "double precision",
    "mixed-integer-float": "double precision",
    "decimal": "numeric",
    "date": "date",
}


_KIND_TYPES = {"b": "boolean", "i": "bigint", "u": "bigint", "f": "double precision", "M": "timestamp"}


def _pg_type(values: pd.Series) -> str:
    """PostgreSQL type for a pandas column (anything unusual is stored as text)."""
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "timestamptz"
    if pd.api.types.is_object_dtype(dtype):
        return _OBJECT_TYPES.get(pd.api.types.infer_dtype(values, skipna=True), "text")
    if dtype.kind == "u" and getattr(dtype, "itemsize", 0) == 8:
        return "numeric"  # uint64 does not fit in bigint
    return _KIND_TYPES.get(dtype.kind, "text")


def _as_copy_text(values: pd.Series, pg_type: str) -> pd.Series:
    """Values in COPY text format: backslash, tab, newline and CR escaped, nulls as backslash-N."""
    missing = values.isna().to_numpy()
    if pg_type == "timestamptz":
        values = values.dt.tz_convert(UTC)
    text = values.astype(object).astype(str)
    if pg_type == "text":
        text = (
            text.str.replace("\\", "\\\\", regex=False)
            .str.replace("\t", "\\t", regex=False)
            .str.replace("\n", "\\n", regex=False)
            .str.replace("\r", "\\r", regex=False)
        )
    return text.where(~missing, _NULL).astype(object)


def _column_specs(frame: pd.DataFrame) -> list[_Column]:
    """Row number, attribute columns and (for layers) the geometry as hex EWKB."""
    geometry = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    names = [str(c) for c in frame.columns if c != geometry]
    clash = {ROW_COLUMN, GEOMETRY_COLUMN} & set(names)
    too_long = [n for n in names if len(n.encode()) > 63]
    if clash or too_long or len(set(names)) != len(names):
        raise InputError(
            f"columns {sorted(clash) or too_long or names} cannot be stored in PostGIS: names must be unique, "
            f"at most 63 bytes, and not {ROW_COLUMN!r} or {GEOMETRY_COLUMN!r}; rename them"
        )
    rows = pd.Series(np.arange(len(frame)).astype(str), dtype=object)
    out = [_Column(ROW_COLUMN, "bigint PRIMARY KEY", rows)]
    for name, col in zip(names, (c for c in frame.columns if c != geometry), strict=True):
        values = frame[col].reset_index(drop=True)
        pg_type = _pg_type(values)
        out.append(_Column(name, pg_type, _as_copy_text(values, pg_type)))
    if geometry is not None:
        srid = CRS.from_user_input(frame.crs).to_epsg() or 0
        geoms = shapely.set_srid(frame.geometry.to_numpy(), srid)
        wkb = pd.Series(shapely.to_wkb(geoms, hex=True, include_srid=True), dtype=object)
        out.append(_Column(GEOMETRY_COLUMN, "geometry", wkb.where(wkb.notna(), _NULL)))
    return out


def _create_table(table: sql.Identifier, columns: list[_Column], srid: int | None, frame: pd.DataFrame) -> sql.Composed:
    """CREATE TABLE for the columns; geometry typed ``geometry(Geometry[Z], srid)`` unless 2D and 3D mix."""
    specs = []
    for c in columns:
        pg_type = c.pg_type
        if c.name == GEOMETRY_COLUMN:
            geoms = frame.geometry.to_numpy()
            has_z = shapely.has_z(geoms[~shapely.is_missing(geoms)])
            mixed = has_z.any() and not has_z.all()
            pg_type = (
                "geometry" if mixed else f"geometry({'GeometryZ' if has_z.any() else 'Geometry'}, {int(srid or 0)})"
            )
        specs.append(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(pg_type)))
    return sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(specs))


def _copy_text(columns: list[_Column]) -> bytes:
    """All rows as one COPY text payload (tab-separated, newline-terminated), built column-wise."""
    if not len(columns[0].text):
        return b""
    lines = (
        columns[0].text.str.cat(cast(list[Any], [c.text for c in columns[1:]]), sep="\t")
        if len(columns) > 1
        else columns[0].text
    )
    return ("\n".join(lines.tolist()) + "\n").encode()


# -- reading --------------------------------------------------------------------------
def _fetch_frame(con: psycopg.Connection[Any], query: sql.Composed, params: tuple[Any, ...], names: list[str]) -> Any:
    """Run ``query`` (binary results) into a frame with pandas types matching the PostgreSQL ones."""
    cur = con.cursor(binary=True)
    cur.execute(query, params)
    rows = cur.fetchall()
    types = [con.adapters.types.get(d.type_code) for d in cur.description or []]
    frame = pd.DataFrame.from_records(rows, columns=names, coerce_float=False) if rows else None
    if frame is None:
        frame = pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
    for i, pg in enumerate(types):
        frame.isetitem(i, cast(Any, _to_pandas(frame.iloc[:, i], pg.name if pg else "")))
    return frame


def _to_pandas(values: pd.Series, pg_type: str) -> pd.Series:
    """Column from the database to the dtype pyogrio gives for the same column in a GeoPackage."""
    missing = values.isna()
    dtype: Any
    if pg_type in ("int2", "int4", "int8"):
        dtype = "Int64" if missing.any() else "int64"
    elif pg_type in ("float4", "float8", "numeric"):
        dtype = "float64"
    elif pg_type == "bool":
        dtype = object if missing.any() else bool
    elif pg_type == "text":
        dtype = object if missing.all() else "str"
    elif pg_type in ("timestamptz", "timestamp", "date"):
        return pd.to_datetime(values, utc=pg_type == "timestamptz")
    else:
        return values
    return values.astype(dtype)


# -- catalogue ------------------------------------------------------------------------
def _lock(con: psycopg.Connection[Any], schema: str, name: str) -> None:
    """Serialise writers of one layer until the end of the transaction."""
    con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"civicmap:{schema}.{name}",))


def _jsonb(value: Any) -> Jsonb:
    """JSON for a jsonb column: non-JSON objects as text, NaN and infinities as null (jsonb has none)."""
    plain = json.loads(json.dumps(value, default=str), parse_constant=lambda _: None)
    return Jsonb(plain)


def _info_from_row(row: dict[str, Any]) -> LayerInfo:
    def bbox(value: list[float] | None) -> BBox | None:
        return BBox(*value) if value else None

    return LayerInfo(
        name=row["name"],
        kind=row["kind"],
        feature_count=int(row["feature_count"]),
        crs=row["crs"],
        bounds=bbox(row["bounds"]),
        bounds_wgs84=bbox(row["bounds_wgs84"]),
        geometry_type=row["geometry_type"],
        version=int(row["version"]),
        updated_at=row["updated_at"].astimezone(UTC).isoformat(timespec="seconds"),
        provenance=row["provenance"] or {},
        problems=tuple(row["problems"] or ()),
        path=Path(row["path"]) if row["path"] else None,
        meta=row["meta"] or {},
    )
