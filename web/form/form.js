// The survey form: rendered from GET /forms/{form_id}/schema.json, works offline (service
// worker for the page, IndexedDB outbox for the answers). Labels and values from the schema
// are written with textContent only.
import { openPicker } from "./pick.js";
import { allItems, deleteItem, flush, newInstanceId, putItem } from "./queue.js";

const BASE = new URL("..", window.location.href).href.replace(/\/$/, "");
const RETRY_TICK_MS = 15000;
// XLSForm types with no input of their own (metadata the server or device fills in)
const SILENT_TYPES = new Set(["start", "end", "today", "deviceid", "username", "calculate", "hidden", "begin_group", "end_group", "begin group", "end group", "audit", "phonenumber", "subscriberid", "simserial", "email"]);
const PHOTO_TYPES = new Set(["image", "photo"]);

const $ = (id) => document.getElementById(id);
let schema = null;
let picker = null; // the open "Pick on map" map: {close}, or null
let pickToken = 0; // bumped on every open/close, so a map that finishes loading after "close" is dropped

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function showMessage(text, kind = "info") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

// ---- schema -------------------------------------------------------------------------------
async function fetchSchema(formId) {
  const url = `${BASE}/forms/${encodeURIComponent(formId)}/schema.json`;
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch {
    throw new Error("The survey service cannot be reached and this form was never opened on this device while online. Connect once, then it works offline.");
  }
  if (response.status === 404) {
    throw new Error(`This server has no survey form "${formId}" (or its survey service is not installed yet). Ask the coordinator for the form's link.`);
  }
  if (!response.ok) throw new Error(`The survey service answered HTTP ${response.status} for form "${formId}".`);
  return response.json();
}

async function showFormList() {
  const nav = $("form-list");
  try {
    const response = await fetch(`${BASE}/forms`, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(String(response.status));
    const doc = await response.json();
    const forms = Array.isArray(doc) ? doc : doc.forms || [];
    if (!forms.length) throw new Error("none");
    nav.append(el("h2", "Choose a survey"));
    for (const form of forms) {
      const id = typeof form === "string" ? form : form.form_id;
      const link = el("a", typeof form === "string" ? form : form.title || id);
      link.href = `?form=${encodeURIComponent(id)}`;
      nav.append(el("p")).append(link);
    }
    nav.hidden = false;
  } catch {
    showMessage("No survey chosen: open this page as /form/?form=FORM_ID (the survey service lists no forms here yet).");
  }
}

// ---- relevance: the common XLSForm shapes; anything else is always shown ------------------
function relevanceTest(expr) {
  if (!expr) return null;
  const clause = /^\s*\(?\s*(?:\$\{(\w+)\}\s*(=|!=)\s*'([^']*)'|selected\(\s*\$\{(\w+)\}\s*,\s*'([^']*)'\s*\))\s*\)?\s*$/;
  const parts = String(expr).split(/\s+(and|or)\s+/);
  const tests = [];
  const ops = [];
  for (let i = 0; i < parts.length; i += 1) {
    if (i % 2) {
      ops.push(parts[i]);
      continue;
    }
    const m = parts[i].match(clause);
    if (!m) return null;
    tests.push(m[1] ? (v) => (m[2] === "=" ? v(m[1]).includes(m[3]) : !v(m[1]).includes(m[3])) : (v) => v(m[4]).includes(m[5]));
  }
  return (values) => tests.slice(1).reduce((acc, test, i) => (ops[i] === "and" ? acc && test(values) : acc || test(values)), tests[0](values));
}

function currentValues(name) {
  const form = $("survey");
  return [...form.querySelectorAll(`[name="${CSS.escape(name)}"]`)]
    .filter((input) => (input.type === "radio" || input.type === "checkbox" ? input.checked : true))
    .map((input) => input.value);
}

function applyRelevance() {
  for (const box of document.querySelectorAll("[data-relevant]")) {
    const test = relevanceTest(box.dataset.relevant);
    const show = test ? test(currentValues) : true;
    box.hidden = !show;
    for (const input of box.querySelectorAll("input, select, textarea")) input.disabled = !show;
  }
}

// ---- rendering ----------------------------------------------------------------------------
function inputFor(field) {
  const type = field.type;
  if (type === "select_one" || type === "select_multiple") {
    const group = el("div", null, "choices");
    for (const choice of field.choices || []) {
      const label = el("label", null, "choice");
      const input = el("input");
      input.type = type === "select_one" ? "radio" : "checkbox";
      input.name = field.name;
      input.value = choice.name;
      if (field.required && type === "select_one") input.required = true;
      label.append(input, el("span", ` ${choice.label ?? choice.name}`));
      group.append(label);
    }
    return group;
  }
  const input = el(type === "text" && /note|comment|description/.test(field.name) ? "textarea" : "input");
  input.name = field.name;
  input.id = `f-${field.name}`;
  if (input.tagName === "INPUT") {
    input.type = { integer: "number", decimal: "number", date: "date", datetime: "datetime-local", time: "time" }[type] || "text";
  }
  if (type === "integer") input.step = "1";
  if (type === "decimal") input.step = "any";
  if (type === "integer" || type === "decimal") {
    input.inputMode = type === "integer" ? "numeric" : "decimal";
    if (field.min !== undefined && field.min !== null) input.min = String(field.min);
    if (field.max !== undefined && field.max !== null) input.max = String(field.max);
  }
  if (field.required) input.required = true;
  return input;
}

function fieldBox(field) {
  const box = el("fieldset", null, `field${field.required ? " required" : ""}`);
  box.dataset.field = field.name;
  const legend = el("legend", field.label || field.name);
  if (field.private) legend.append(el("span", "seen only by moderators", "private"));
  box.append(legend);
  if (field.type === "note") return box;
  box.append(inputFor(field));
  if (field.relevant) box.dataset.relevant = field.relevant;
  return box;
}

function renderForm(doc) {
  schema = doc;
  document.title = `${doc.title || doc.form_id} - civicmap`;
  $("title").textContent = doc.title || doc.form_id;
  const geoName = doc.geometry_field || doc.geo_field; // the intake API says geometry_field
  const container = $("fields");
  container.replaceChildren();
  const photoFields = [];
  for (const field of doc.fields || []) {
    if (SILENT_TYPES.has(field.type) || field.name === geoName || field.type === "geopoint") continue;
    if (PHOTO_TYPES.has(field.type)) {
      photoFields.push(field);
      continue;
    }
    container.append(fieldBox(field));
  }
  const geo = (doc.fields || []).find((f) => f.name === geoName);
  $("location").classList.toggle("required", Boolean(geo && geo.required));
  $("location").hidden = !geoName;
  if (geo && geo.label) $("location").querySelector("legend").textContent = geo.label;
  $("photo").name = photoFields.length ? photoFields[0].name : "photo";
  if (photoFields.length && photoFields[0].label) $("photo-box").querySelector("legend").textContent = photoFields[0].label;
  $("survey").hidden = false;
  applyRelevance();
}

// ---- answers ------------------------------------------------------------------------------
function collectAnswers() {
  const answers = {};
  for (const field of schema.fields || []) {
    const values = currentValues(field.name).filter((v, i, all) => v !== "" && all.indexOf(v) === i);
    const box = document.querySelector(`[data-field="${CSS.escape(field.name)}"]`);
    if (!values.length || !box || box.hidden) continue;
    if (field.type === "integer") answers[field.name] = parseInt(values[0], 10);
    else if (field.type === "decimal") answers[field.name] = parseFloat(values[0]);
    else if (field.type === "select_multiple") answers[field.name] = values.join(" ");
    else answers[field.name] = values[0];
  }
  return answers;
}

// How the coordinates were obtained: "typed", "gps" or "map" (kept on #location as data-source).
function setSource(source) {
  $("location").dataset.source = source;
}

// GeoJSON Point (lon, lat); a point placed on the map goes as ODK geopoint text
// "lat lon 0 0": ODK Collect's placement-map records altitude and accuracy 0 for a placed point.
function location() {
  const lat = parseFloat($("lat").value);
  const lon = parseFloat($("lon").value);
  if (!Number.isFinite(lat) || !Number.isFinite(lon)) return null;
  if ($("location").dataset.source === "map") return `${lat} ${lon} 0 0`;
  return { type: "Point", coordinates: [lon, lat] };
}

function problems() {
  const found = [];
  for (const input of $("survey").querySelectorAll("input, select, textarea")) {
    if (!input.disabled && !input.checkValidity()) {
      const box = input.closest("fieldset");
      const name = box ? box.querySelector("legend").firstChild.textContent : input.name;
      if (!found.includes(name)) found.push(`${name}: ${input.validationMessage}`);
    }
  }
  if (!$("location").hidden && $("location").classList.contains("required") && !location()) found.push("Location: use the GPS button, pick it on the map or type latitude and longitude");
  return found;
}

async function onSubmit(event) {
  event.preventDefault();
  const found = problems();
  $("problems").textContent = found.join("\n");
  $("problems").hidden = !found.length;
  if (found.length) return;
  const file = $("photo").files[0];
  const item = {
    instance_id: newInstanceId(),
    form_id: schema.form_id,
    form_version: schema.version,
    answers: collectAnswers(),
    location: location(),
    photos: file ? [{ field: $("photo").name, name: file.name || "photo.jpg", blob: file }] : [],
    created_at: new Date().toISOString(),
    state: "waiting",
    attempts: 0,
    next_try_at: 0,
  };
  await putItem(item);
  closePick();
  $("survey").reset();
  setSource("typed");
  $("photo-preview").hidden = true;
  applyRelevance();
  showMessage("Saved on this device. It is sent as soon as the server can be reached.");
  await sendNow(true);
}

// ---- pick on map -------------------------------------------------------------------------
function onPick([lon, lat]) {
  $("lat").value = lat.toFixed(6);
  $("lon").value = lon.toFixed(6);
  setSource("map");
  $("gps-status").textContent = `Location set on the map: ${lat.toFixed(6)}, ${lon.toFixed(6)}.`;
}

function closePick() {
  pickToken += 1;
  if (picker) picker.close();
  picker = null;
  $("pick-map").replaceChildren();
  delete $("pick-map").dataset.state;
  $("pick-box").hidden = true;
  $("pick").setAttribute("aria-expanded", "false");
}

async function openPick() {
  if (!$("pick-box").hidden) return;
  const token = ++pickToken;
  $("pick-box").hidden = false;
  $("pick").setAttribute("aria-expanded", "true");
  $("pick-map").dataset.state = "loading";
  $("gps-status").textContent = "Loading the map…";
  const lat = parseFloat($("lat").value);
  const lon = parseFloat($("lon").value);
  const point = Math.abs(lat) <= 90 && Math.abs(lon) <= 180 ? [lon, lat] : null; // NaN compares false
  const onStatus = (text) => ($("gps-status").textContent = text);
  try {
    const opened = await openPicker($("pick-map"), { base: BASE, point, onPick, onStatus });
    if (token !== pickToken) return opened.close(); // closed while loading
    picker = opened;
    $("pick-map").dataset.state = "ready";
    $("pick-map").querySelector("canvas")?.focus();
  } catch (error) {
    if (token !== pickToken) return;
    console.warn("pick on map:", error);
    closePick();
    $("gps-status").textContent = `The map cannot be shown (${error.message}); perhaps this device is offline. Use the GPS button or type the coordinates.`;
  }
}

function wirePick() {
  $("pick").addEventListener("click", openPick);
  $("pick-close").addEventListener("click", () => {
    closePick();
    $("pick").focus();
  });
  $("pick-box").addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.preventDefault();
    closePick();
    $("pick").focus();
  });
  for (const id of ["lat", "lon"]) $(id).addEventListener("input", () => setSource("typed"));
  setSource("typed");
}

// ---- outbox -------------------------------------------------------------------------------
function describe(item) {
  if (item.state === "sent") return `sent${item.receipt ? `, receipt ${item.receipt}` : ""}${item.server_state ? ` (${item.server_state})` : ""}`;
  if (item.state === "rejected") return `rejected by the server: ${(item.problems || []).join("; ")}`;
  if (item.state === "conflict") return "conflict: the server holds a different submission with this id";
  const when = item.next_try_at ? new Date(item.next_try_at).toLocaleTimeString() : "now";
  return `waiting${item.reason ? ` (${item.reason})` : ""}; next try ${when}`;
}

async function renderQueue(items) {
  const list = $("queue");
  list.replaceChildren();
  const sorted = (items || (await allItems())).sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  for (const item of sorted) {
    const li = el("li", null, item.state);
    li.append(el("span", new Date(item.created_at).toLocaleString()), el("br"), el("span", describe(item), "state"));
    if (item.state !== "waiting") {
      const remove = el("button", item.state === "sent" ? "Clear" : "Discard");
      remove.type = "button";
      remove.addEventListener("click", async () => renderQueue(await deleteItem(item.instance_id).then(allItems)));
      li.append(" ", remove);
    }
    list.append(li);
  }
  $("queue-empty").hidden = sorted.some((i) => i.state === "waiting");
  $("retry").hidden = !sorted.some((i) => i.state === "waiting");
}

let sending = false;
async function sendNow(force = false) {
  if (sending) return;
  sending = true;
  try {
    await renderQueue(await flush(BASE, { force }));
  } catch (error) {
    showMessage(`The outbox could not be read (${error.message}). Is private browsing blocking storage?`, "error");
  } finally {
    sending = false;
  }
}

function showNetwork() {
  const online = navigator.onLine;
  $("network").textContent = online ? "online" : "offline: surveys are kept on this device";
  $("network").className = online ? "" : "offline";
}

function wireInputs() {
  $("survey").addEventListener("input", applyRelevance);
  $("survey").addEventListener("change", applyRelevance);
  $("survey").addEventListener("submit", onSubmit);
  $("retry").addEventListener("click", () => sendNow(true));
  $("photo").addEventListener("change", () => {
    const file = $("photo").files[0];
    $("photo-preview").hidden = !file;
    if (file) $("photo-preview").src = URL.createObjectURL(file);
  });
  $("gps").addEventListener("click", () => {
    if (!navigator.geolocation) return ($("gps-status").textContent = "This device has no GPS access: type the coordinates.");
    $("gps-status").textContent = "Finding your position…";
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        $("lat").value = pos.coords.latitude.toFixed(7);
        $("lon").value = pos.coords.longitude.toFixed(7);
        setSource("gps");
        $("gps-status").textContent = `Position found (± ${Math.round(pos.coords.accuracy)} m).`;
      },
      (error) => ($("gps-status").textContent = `No position (${error.message}): type the coordinates.`),
      { enableHighAccuracy: true, timeout: 30000, maximumAge: 10000 },
    );
  });
  wirePick();
  window.addEventListener("online", () => {
    showNetwork();
    sendNow(true);
  });
  window.addEventListener("offline", showNetwork);
}

async function main() {
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch((error) => console.warn("no offline cache:", error.message));
  showNetwork();
  wireInputs();
  const formId = new URLSearchParams(window.location.search).get("form");
  if (!formId) {
    await showFormList();
  } else {
    try {
      renderForm(await fetchSchema(formId));
    } catch (error) {
      showMessage(error.message, "error");
    }
  }
  await renderQueue();
  setInterval(() => sendNow(false), RETRY_TICK_MS);
  sendNow(false);
  document.body.dataset.fields = String(document.querySelectorAll("#fields [data-field]").length);
  document.body.dataset.ready = schema ? "1" : "no-form";
}

main().catch((error) => {
  showMessage(`The form could not be started: ${error.message}`, "error");
  document.body.dataset.ready = "error";
});
