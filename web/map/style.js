// How each served layer is drawn: MapLibre style layers and a legend per /layers entry.
// Pure functions of the catalogue entries; no network, no DOM.

export const RISK_CLASSES = [
  { value: "very_low", label: "Very low", color: "#c2e699" },
  { value: "low", label: "Low", color: "#78c679" },
  { value: "medium", label: "Medium", color: "#fee08b" },
  { value: "high", label: "High", color: "#fc8d59" },
  { value: "very_high", label: "Very high", color: "#d73027" },
];
export const INFORMALITY_CLASSES = [
  { value: "likely", label: "Likely informal", color: "#d7301f" },
  { value: "possible", label: "Possibly informal", color: "#fdae6b" },
  { value: "unlikely", label: "Unlikely informal", color: "#74c476" },
];
export const AMENITY_USES = [
  { value: "shelter", label: "Shelter", color: "#1b9e77" },
  { value: "health", label: "Health", color: "#e7298a" },
  { value: "education", label: "Education", color: "#7570b3" },
  { value: "water", label: "Water point", color: "#1f78b4" },
  { value: "sanitation", label: "Sanitation", color: "#a6761d" },
];
const FALLBACK = "#9e9e9e";

// Known layers, in drawing order (bottom to top). Unknown layers are drawn generically, hidden.
export const KNOWN_LAYERS = [
  { id: "orthophoto", group: "Base", title: "Orthophoto", visible: true, raster: 1 },
  { id: "dem", group: "Base", title: "Elevation (DEM, m)", visible: false, raster: 0.6 },
  { id: "flood_depth", group: "Hazard", title: "Flood depth (m)", visible: false, raster: 0.75 },
  { id: "hazard_zones", group: "Hazard", title: "Flood hazard zones", visible: true, fill: "legend:hazard_level", opacity: 0.45 },
  { id: "settlement_cells", group: "Settlements", title: "Settlement cells (informality)", visible: false, fill: "classes:informality_class", opacity: 0.55 },
  { id: "health_service_areas", group: "Response", title: "Health service areas", visible: false, fill: "#e7298a", opacity: 0.15 },
  { id: "evacuation_routes", group: "Response", title: "Evacuation routes", visible: true, line: "#0570b0", width: 1, opacity: 0.55 },
  { id: "risk_buildings", group: "Exposure", title: "Buildings by risk class", visible: true, fill: "classes:risk_class", opacity: 0.9, outline: "#4d4d4d" },
  { id: "roads", group: "Base", title: "Roads", visible: true, line: "#5f5f5f", width: 1.2 },
  { id: "risk_roads", group: "Exposure", title: "Roads by hazard class", visible: false, line: "legend:hazard_level", width: 2.5 },
  { id: "transit_routes", group: "Transit", title: "Transit routes", visible: false, line: "#6a3d9a", width: 2 },
  { id: "transit_stops", group: "Transit", title: "Transit stops", visible: false, circle: "#6a3d9a", radius: 4 },
  { id: "risk_facilities", group: "Exposure", title: "Facilities by hazard class", visible: false, circle: "legend:hazard_level", radius: 6 },
  { id: "amenities", group: "Response", title: "Shelters and services", visible: true, circle: "classes:use", radius: 5 },
];
const PALETTES = { risk_class: RISK_CLASSES, informality_class: INFORMALITY_CLASSES, use: AMENITY_USES };

// A colour spec ("#hex", "legend:FIELD" or "classes:FIELD") -> MapLibre expression and legend items.
function colour(spec, entry) {
  if (spec.startsWith("classes:")) {
    const field = spec.slice(8);
    const items = PALETTES[field];
    return { expr: matchExpr(["get", field], items), legend: items };
  }
  if (spec.startsWith("legend:")) {
    const field = spec.slice(7);
    const classes = entry.legend && entry.legend.type === "classes" ? entry.legend.classes : [];
    const items = classes.map((c) => ({ value: Number(c.value), label: String(c.label), color: c.color }));
    // features of classes the legend leaves out (e.g. hazard level 0, "dry") are not drawn
    const value = ["to-number", ["get", field], -1];
    return { expr: matchExpr(value, items), legend: items, filter: ["in", value, ["literal", items.map((i) => i.value)]] };
  }
  return { expr: spec, legend: null };
}

function matchExpr(input, items) {
  if (!items.length) return FALLBACK;
  const expr = ["match", input];
  for (const item of items) expr.push(item.value, item.color);
  expr.push(FALLBACK);
  return expr;
}

function vectorLayers(known, entry) {
  const spec = known.fill || known.line || known.circle;
  const c = colour(spec, entry);
  const base = { source: entry.id, "source-layer": entry.id, ...(c.filter ? { filter: c.filter } : {}) };
  if (known.fill) {
    const outline = known.outline || c.expr;
    return {
      legend: c.legend || [{ label: known.title, color: c.expr }],
      layers: [
        { ...base, id: `${entry.id}::fill`, type: "fill", paint: { "fill-color": c.expr, "fill-opacity": known.opacity ?? 0.6 } },
        { ...base, id: `${entry.id}::outline`, type: "line", paint: { "line-color": outline, "line-width": 0.5, "line-opacity": 0.9 } },
      ],
    };
  }
  if (known.line) {
    const paint = { "line-color": c.expr, "line-width": known.width ?? 1.5, "line-opacity": known.opacity ?? 1 };
    return { legend: c.legend || [{ label: known.title, color: c.expr, line: true }], layers: [{ ...base, id: `${entry.id}::line`, type: "line", paint }] };
  }
  const paint = {
    "circle-color": c.expr,
    "circle-radius": known.radius ?? 4,
    "circle-stroke-color": "#ffffff",
    "circle-stroke-width": 1,
  };
  return { legend: c.legend || [{ label: known.title, color: c.expr, point: true }], layers: [{ ...base, id: `${entry.id}::circle`, type: "circle", paint }] };
}

// Any vector layer we do not know: polygons, lines and points, each filtered by geometry type.
function genericVector(entry) {
  const base = { source: entry.id, "source-layer": entry.id };
  const color = "#3f6fb5";
  return {
    legend: [{ label: entry.title, color }],
    layers: [
      { ...base, id: `${entry.id}::fill`, type: "fill", filter: ["==", ["geometry-type"], "Polygon"], paint: { "fill-color": color, "fill-opacity": 0.25 } },
      { ...base, id: `${entry.id}::line`, type: "line", filter: ["!=", ["geometry-type"], "Point"], paint: { "line-color": color, "line-width": 1 } },
      { ...base, id: `${entry.id}::circle`, type: "circle", filter: ["==", ["geometry-type"], "Point"], paint: { "circle-color": color, "circle-radius": 3 } },
    ],
  };
}

function rasterLegend(entry) {
  const legend = entry.legend;
  if (!legend) return null;
  if (legend.type === "classes") {
    return legend.classes.map((c) => ({ value: c.value, label: String(c.label), color: c.color }));
  }
  return { ramp: legend.stops.map((s) => ({ value: Number(s.value), color: s.color })) };
}

// One drawable per /layers entry: {id, title, group, visible, source, layers, legend, rank}.
export function drawables(entries) {
  const order = new Map(KNOWN_LAYERS.map((k, i) => [k.id, i]));
  const out = entries.map((entry) => {
    const known = KNOWN_LAYERS.find((k) => k.id === entry.id);
    const source =
      entry.type === "raster"
        ? { type: "raster", tiles: [entry.tiles], tileSize: 256, minzoom: entry.minzoom, maxzoom: entry.maxzoom }
        : { type: "vector", tiles: [entry.tiles], minzoom: entry.minzoom, maxzoom: Math.min(entry.maxzoom, 16) };
    if (entry.bounds) source.bounds = entry.bounds;
    let drawn;
    if (entry.type === "raster") {
      const paint = { "raster-opacity": known ? known.raster : 0.7 };
      drawn = { legend: rasterLegend(entry), layers: [{ id: `${entry.id}::raster`, type: "raster", source: entry.id, paint }] };
    } else {
      drawn = known ? vectorLayers(known, entry) : genericVector(entry);
    }
    // rank: known layers in their order; unknown rasters at the bottom, unknown vectors above the known polygons
    const rank = known ? order.get(entry.id) : entry.type === "raster" ? -1 : 6.5;
    return {
      id: entry.id,
      title: known ? known.title : entry.title,
      group: known ? known.group : "Other",
      visible: known ? known.visible : false,
      attribution: entry.attribution,
      source,
      rank,
      ...drawn,
    };
  });
  return out.sort((a, b) => a.rank - b.rank || a.id.localeCompare(b.id));
}
