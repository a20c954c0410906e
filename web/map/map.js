// The risk map: the workspace's own layers from /layers (MVT and PNG tiles), a layer switcher
// with legends, popups and the impact summary. No basemap from the internet: fully offline.
// Data is only ever written with textContent, never parsed as markup.
import { drawables } from "./style.js";
import { loadSummary } from "./summary.js";

const BASE = new URL("..", window.location.href).href.replace(/\/$/, "");
const POPUP_MAX_ROWS = 24;
const statusEl = document.getElementById("status");

function setStatus(text, state) {
  statusEl.textContent = text;
  if (state) document.body.dataset.ready = state;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// MapLibre renders attributions as HTML: give it plain text only.
function escapeText(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}

function unionBounds(entries) {
  const boxes = entries.filter((e) => Array.isArray(e.bounds)).map((e) => e.bounds);
  const vectors = entries.filter((e) => e.type === "vector" && Array.isArray(e.bounds)).map((e) => e.bounds);
  const use = vectors.length ? vectors : boxes;
  if (!use.length) return null;
  return [
    [Math.min(...use.map((b) => b[0])), Math.min(...use.map((b) => b[1]))],
    [Math.max(...use.map((b) => b[2])), Math.max(...use.map((b) => b[3]))],
  ];
}

// ---- legend and layer switcher ---------------------------------------------------------
function legendNode(legend) {
  if (!legend) return null;
  if (legend.ramp) {
    const box = el("div", null, "legend-ramp");
    const bar = el("span", null, "ramp");
    bar.style.background = `linear-gradient(to right, ${legend.ramp.map((s) => s.color).join(", ")})`;
    const lo = legend.ramp[0].value;
    const hi = legend.ramp[legend.ramp.length - 1].value;
    box.append(el("span", lo.toLocaleString("en", { maximumFractionDigits: 1 })), bar, el("span", hi.toLocaleString("en", { maximumFractionDigits: 1 })));
    return box;
  }
  const list = el("ul", null, "legend");
  for (const item of legend) {
    const li = el("li");
    const swatch = el("span", null, item.line ? "swatch line" : item.point ? "swatch point" : "swatch");
    swatch.style.background = typeof item.color === "string" ? item.color : "#999";
    li.append(swatch, el("span", item.label));
    list.append(li);
  }
  return list;
}

function buildSwitcher(map, items) {
  const container = document.getElementById("layer-list");
  const groups = new Map();
  for (const item of [...items].reverse()) {
    if (!groups.has(item.group)) groups.set(item.group, []);
    groups.get(item.group).push(item);
  }
  const groupOrder = ["Response", "Exposure", "Hazard", "Settlements", "Transit", "Base", "Other"];
  for (const name of [...groups.keys()].sort((a, b) => groupOrder.indexOf(a) - groupOrder.indexOf(b))) {
    const fieldset = el("fieldset", null, "group");
    fieldset.append(el("legend", name));
    for (const item of groups.get(name)) {
      const row = el("div", null, "layer");
      const label = el("label");
      const box = el("input");
      box.type = "checkbox";
      box.checked = item.visible;
      box.dataset.layer = item.id;
      box.addEventListener("change", () => {
        for (const layer of item.layers) map.setLayoutProperty(layer.id, "visibility", box.checked ? "visible" : "none");
        row.classList.toggle("off", !box.checked);
      });
      label.append(box, el("span", item.title));
      row.append(label);
      const legend = legendNode(item.legend);
      if (legend) row.append(legend);
      row.classList.toggle("off", !item.visible);
      fieldset.append(row);
    }
    container.append(fieldset);
  }
}

// ---- popups ------------------------------------------------------------------------------
function formatValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en") : value.toLocaleString("en", { maximumFractionDigits: 2 });
  return String(value);
}

function popupContent(feature, title) {
  const box = el("div", null, "popup");
  box.append(el("h3", title));
  const table = el("table");
  let rows = 0;
  for (const [key, value] of Object.entries(feature.properties || {})) {
    if (value === null || value === undefined || value === "" || rows >= POPUP_MAX_ROWS) continue;
    const row = table.insertRow();
    row.append(el("th", key.replace(/_/g, " ")), el("td", formatValue(value)));
    rows += 1;
  }
  if (!rows) box.append(el("p", "No attributes.", "muted"));
  box.append(table);
  return box;
}

function enablePopups(map, items) {
  const titles = new Map();
  const ids = [];
  for (const item of items) {
    for (const layer of item.layers) {
      if (layer.type !== "raster") {
        titles.set(layer.id, item.title);
        ids.push(layer.id);
      }
    }
  }
  map.on("click", (event) => {
    const features = map.queryRenderedFeatures(event.point, { layers: ids });
    if (!features.length) return;
    const feature = features[0];
    new maplibregl.Popup({ maxWidth: "320px" }).setLngLat(event.lngLat).setDOMContent(popupContent(feature, titles.get(feature.layer.id))).addTo(map);
  });
  for (const id of ids) {
    map.on("mouseenter", id, () => (map.getCanvas().style.cursor = "pointer"));
    map.on("mouseleave", id, () => (map.getCanvas().style.cursor = ""));
  }
}

// ---- the map ------------------------------------------------------------------------------
function countRendered(map, items) {
  const counts = {};
  let total = 0;
  for (const item of items) {
    const ids = item.layers.filter((l) => l.type !== "raster" && map.getLayoutProperty(l.id, "visibility") !== "none").map((l) => l.id);
    if (!ids.length) continue;
    const n = new Set(map.queryRenderedFeatures({ layers: ids }).map((f) => (f.id !== undefined ? f.id : JSON.stringify(f.properties)))).size;
    counts[item.id] = n;
    total += n;
  }
  return { counts, total };
}

function addLayers(map, items) {
  for (const item of items) {
    map.addSource(item.id, item.source);
    for (const layer of item.layers) {
      map.addLayer({ ...layer, layout: { ...(layer.layout || {}), visibility: item.visible ? "visible" : "none" } });
    }
  }
}

function attributions(entries) {
  const texts = new Set(entries.map((e) => e.attribution).filter(Boolean));
  return [...texts, "civicmap"].map(escapeText);
}

async function main() {
  if (!window.maplibregl) {
    setStatus("MapLibre GL is not installed on this server (run scripts/setup: npm ci in web/).", "error");
    return;
  }
  maplibregl.setWorkerUrl(new URL("../vendor/maplibre-gl/maplibre-gl-csp-worker.js", window.location.href).href);
  const [entries, health] = await Promise.all([getJSON(`${BASE}/layers`), getJSON(`${BASE}/health`).catch(() => null)]);
  if (health && health.workspace) {
    document.getElementById("title").textContent = `Risk map: ${health.workspace}`;
    document.title = `Risk map: ${health.workspace}`;
  }
  loadSummary(document.getElementById("summary"), BASE);
  if (!entries.length) {
    setStatus("This workspace has no public layers yet: run civicmap build first.", "empty");
    return;
  }
  const items = drawables(entries);
  const bounds = unionBounds(entries);
  const map = new maplibregl.Map({
    container: "map",
    style: { version: 8, sources: {}, layers: [{ id: "background", type: "background", paint: { "background-color": "#f3f1ec" } }] },
    bounds: bounds || undefined,
    fitBoundsOptions: { padding: 20 },
    attributionControl: { compact: false, customAttribution: attributions(entries) },
    maxZoom: 20,
  });
  window.civicmapMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  map.on("error", (event) => console.warn("map error:", event.error && event.error.message));
  await new Promise((resolve) => map.once("load", resolve));
  addLayers(map, items);
  buildSwitcher(map, items);
  enablePopups(map, items);
  map.once("idle", () => {
    const { counts, total } = countRendered(map, items);
    document.body.dataset.features = String(total);
    document.body.dataset.layers = String(items.length);
    statusEl.dataset.counts = JSON.stringify(counts);
    setStatus(`${items.length} layers, ${total.toLocaleString("en")} features shown`, "1");
  });
}

main().catch((error) => {
  console.error(error);
  setStatus(`The map could not be loaded: ${error.message}`, "error");
});
