// "Pick on map": a small MapLibre map of the service's own tiles (orthophoto, buildings, roads;
// no internet basemap) where a tap or click sets the submission's location. MapLibre GL and the
// risk map's style module are loaded only when the map is opened, so the form itself keeps
// working offline (typing and GPS) when they cannot be fetched.
// Coordinates: WGS 84 longitude/latitude in degrees.

const VENDOR = "vendor/maplibre-gl";
const ZOOM_AT_POINT = 17;
// catalogue layers drawn under the pick map: buildings and roads (the plain layer, else its risk_ variant)
const VECTOR_KINDS = ["buildings", "roads"];

let loading = null;

// MapLibre GL's CSP build (no eval, worker from this origin), as the risk map page loads it.
function loadMapLibre(base) {
  if (window.maplibregl) return Promise.resolve(window.maplibregl);
  if (loading) return loading;
  loading = new Promise((resolve, reject) => {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = `${base}/${VENDOR}/maplibre-gl.css`;
    document.head.append(css);
    const script = document.createElement("script");
    script.src = `${base}/${VENDOR}/maplibre-gl-csp.js`;
    script.onload = () => {
      window.maplibregl.setWorkerUrl(`${base}/${VENDOR}/maplibre-gl-csp-worker.js`);
      resolve(window.maplibregl);
    };
    script.onerror = () => reject(new Error("MapLibre GL could not be loaded"));
    document.head.append(script);
  }).catch((error) => {
    loading = null; // try again next time (e.g. back online)
    throw error;
  });
  return loading;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}

// The imagery raster (the orthophoto, else a raster without a legend) and the buildings/roads layers.
export function pickLayers(entries) {
  const rasters = entries.filter((e) => e.type === "raster");
  const imagery = rasters.find((e) => e.id === "orthophoto") || rasters.find((e) => !e.legend);
  const vectors = VECTOR_KINDS.map((kind) => {
    const matches = entries.filter((e) => e.type === "vector" && (e.id === kind || e.id.endsWith(`_${kind}`)));
    return matches.sort((a, b) => a.id.length - b.id.length)[0];
  });
  return [imagery, ...vectors].filter(Boolean);
}

// Where the map opens: the current point at street zoom, else the bounds of the catalogue's first layer.
function startView(entries, point) {
  if (point) return { center: point, zoom: ZOOM_AT_POINT };
  const first = entries.find((e) => Array.isArray(e.bounds));
  if (!first) return { center: [0, 0], zoom: 1 };
  const [w, s, e, n] = first.bounds;
  return { bounds: [[w, s], [e, n]], fitBoundsOptions: { padding: 10 } };
}

function addLayers(map, items) {
  for (const item of items) {
    map.addSource(item.id, item.source);
    for (const layer of item.layers) map.addLayer(layer);
  }
}

// Open the map in `container`. point: [lon, lat] or null. onPick([lon, lat]) on every tap/click,
// and on Enter/Space (keyboard: the point under the map's centre). Returns {close}.
export async function openPicker(container, { base, point, onPick, onStatus }) {
  const [maplibregl, entries, style] = await Promise.all([
    loadMapLibre(base),
    getJSON(`${base}/layers`),
    import(`${base}/map/style.js`),
  ]);
  const chosen = pickLayers(entries);
  const map = new maplibregl.Map({
    container,
    style: { version: 8, sources: {}, layers: [{ id: "background", type: "background", paint: { "background-color": "#f3f1ec" } }] },
    ...startView(entries, point),
    attributionControl: { compact: true },
    maxZoom: 20,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.on("error", (event) => console.warn("pick map:", event.error && event.error.message));
  const marker = new maplibregl.Marker({ color: "#b2182b" });
  const place = (lngLat) => {
    marker.setLngLat(lngLat).addTo(map);
    onPick([lngLat.lng, lngLat.lat]);
  };
  if (point) marker.setLngLat(point).addTo(map);
  map.on("click", (event) => place(event.lngLat));
  map.getCanvas().setAttribute("aria-label", container.getAttribute("aria-label") || "Map");
  map.getCanvas().addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    place(map.getCenter());
  });
  await new Promise((resolve) => map.once("load", resolve));
  addLayers(map, style.drawables(chosen));
  onStatus(chosen.length ? "" : "This server has no imagery, building or road layers yet: the map is blank.");
  return { close: () => map.remove() };
}
