// The impact summary panel: the stored risk_summary (and transit_summary) documents as text.
// Every value goes through textContent: the documents are data, never markup.

const fmt = (x, digits = 0) =>
  Number(x).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
const pct = (x) => `${fmt(100 * Number(x), 0)}%`;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function figure(label, value, note) {
  const box = el("div", null, "figure");
  box.append(el("span", value, "figure-value"), el("span", label, "figure-label"));
  if (note) box.append(el("span", note, "figure-note"));
  return box;
}

function classTable(summary, classes) {
  const table = el("table", null, "classes");
  const head = table.createTHead().insertRow();
  for (const h of ["Hazard class", "Buildings", "People"]) head.append(el("th", h));
  const body = table.createTBody();
  const people = (summary.population && summary.population.by_class) || {};
  for (const c of classes) {
    const row = body.insertRow();
    const name = row.insertCell();
    const swatch = el("span", null, "swatch");
    swatch.style.background = String(c.colour || "#999");
    name.append(swatch, el("span", String(c.name).replace(/_/g, " ")));
    row.insertCell().textContent = fmt(summary.totals[c.name] ?? 0);
    row.insertCell().textContent = c.name in people ? fmt(people[c.name]) : "–";
  }
  return table;
}

function needsList(needs) {
  const list = el("ul", null, "needs");
  for (const [name, need] of Object.entries(needs || {})) {
    const what = `${name.replace(/_/g, " ")}: ${fmt(need.quantity)} ${need.unit}${need.frequency === "weekly" ? " / week" : ""}`;
    list.append(el("li", what));
  }
  return list;
}

export function renderRisk(section, doc) {
  const buildings = doc.buildings || {};
  const totals = buildings.totals || {};
  const population = buildings.population || {};
  const settings = doc.settings || {};
  const classes = (settings.classification && settings.classification.classes) || [];
  const figures = el("div", null, "figures");
  figures.append(figure("Buildings affected", fmt(totals.affected ?? 0), `of ${fmt(totals.total ?? 0)}`));
  if (population.affected !== undefined) {
    figures.append(figure("People affected", fmt(population.affected), `${fmt(population.displaced ?? 0)} displaced (est.)`));
  }
  if (doc.roads && doc.roads.totals) figures.append(figure("Roads flooded", `${fmt(doc.roads.totals.affected / 1000, 1)} km`, `of ${fmt(doc.roads.totals.total / 1000, 1)} km`));
  if (doc.facilities && doc.facilities.totals) figures.append(figure("Facilities affected", fmt(doc.facilities.totals.affected), `of ${fmt(doc.facilities.totals.total)}`));
  section.append(figures);
  if (classes.length && totals) section.append(classTable(buildings, classes));
  const evac = doc.evacuation;
  if (evac) {
    const minutes = fmt(evac.max_time_s / 60);
    section.append(el("p", `Evacuation: ${fmt(evac.buildings_unserved)} buildings (${pct(evac.share_unserved)}), ${fmt(evac.people_unserved ?? 0)} people, are more than ${minutes} min walk from a shelter.`, "line"));
  }
  const health = doc.health_access;
  if (health) {
    const minutes = fmt(health.max_time_s / 60);
    section.append(el("p", `Health access: ${fmt(health.buildings_losing_access)} buildings (${fmt(health.people_losing_access ?? 0)} people) lose a health facility within ${minutes} min walk during the flood.`, "line"));
  }
  if (buildings.minimum_needs && Object.keys(buildings.minimum_needs).length) {
    section.append(el("h3", "Minimum needs of the displaced"), needsList(buildings.minimum_needs));
  }
  const method = settings.classification ? settings.classification.name : null;
  if (method) {
    const stage = settings.stage_m !== undefined && settings.stage_m !== null ? `, water stage ${fmt(settings.stage_m, 2)} m` : "";
    section.append(el("p", `Classification: ${method}${stage}.`, "muted"));
  }
}

export function renderTransit(section, doc) {
  const coverage = doc.coverage;
  if (!coverage || coverage.share_buildings === undefined) return;
  section.append(el("p", `Transit: ${pct(coverage.share_buildings)} of buildings are within ${fmt(doc.max_walk_m ?? 0)} m walk of a stop.`, "line"));
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// Fill the #summary section; returns true when a risk summary was shown.
export async function loadSummary(section, base) {
  const empty = section.querySelector("#summary-empty");
  try {
    const [risk, transit] = await Promise.all([getJSON(`${base}/summaries/risk_summary`), getJSON(`${base}/summaries/transit_summary`)]);
    if (risk) renderRisk(section, risk);
    if (transit) renderTransit(section, transit);
    empty.textContent = risk ? "" : "No impact summary yet: build the workspace with a [risk] section.";
    empty.hidden = Boolean(risk);
    return Boolean(risk);
  } catch (error) {
    empty.textContent = `The impact summary could not be loaded (${error.message}).`;
    return false;
  }
}
