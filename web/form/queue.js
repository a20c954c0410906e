// The outbox: saved submissions in IndexedDB, sent when the intake API answers, retried with
// exponential backoff. Each item keeps its instance_id, so a retry after a lost answer is
// idempotent on the server (same instance_id, same content).

const DB_NAME = "civicmap-survey";
const STORE = "outbox";
export const BACKOFF_MIN_S = 5;
export const BACKOFF_MAX_S = 600;

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "instance_id" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export const putItem = (item) => withStore("readwrite", (store) => store.put(item));
export const deleteItem = (id) => withStore("readwrite", (store) => store.delete(id));
export const allItems = () => withStore("readonly", (store) => store.getAll());

// "uuid:" + a version 4 UUID (crypto.randomUUID needs a secure context; getRandomValues does not).
export function newInstanceId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `uuid:${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function backoffSeconds(attempts) {
  const base = Math.min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** Math.max(0, attempts - 1));
  return base * (0.75 + Math.random() * 0.5); // jitter: phones coming back online do not all retry at once
}

function body(item) {
  const submission = { instance_id: item.instance_id, answers: item.answers };
  if (item.location) submission.location = item.location;
  if (!item.photos || !item.photos.length) {
    return { body: JSON.stringify(submission), headers: { "Content-Type": "application/json" } };
  }
  const form = new FormData();
  form.append("submission", new Blob([JSON.stringify(submission)], { type: "application/json" }), "submission.json");
  for (const photo of item.photos) form.append(photo.field, photo.blob, photo.name);
  return { body: form, headers: {} };
}

async function problemsOf(response) {
  try {
    const doc = await response.json();
    const problems = doc.problems || doc.detail || doc.description;
    return Array.isArray(problems) ? problems.map((p) => (typeof p === "string" ? p : JSON.stringify(p))) : [String(problems)];
  } catch {
    return [`HTTP ${response.status}`];
  }
}

// Send one item; returns the item's new state (the caller stores or deletes it).
export async function sendItem(base, item) {
  const url = `${base}/forms/${encodeURIComponent(item.form_id)}/submissions`;
  const request = body(item);
  let response;
  try {
    response = await fetch(url, { method: "POST", body: request.body, headers: { Accept: "application/json", ...request.headers } });
  } catch {
    return retryLater(item, "offline or server unreachable");
  }
  if (response.status === 201 || response.status === 200) {
    const doc = await response.json().catch(() => ({}));
    return { ...item, state: "sent", receipt: doc.receipt || null, server_state: doc.state || null, photos: [] };
  }
  if (response.status === 409) return { ...item, state: "conflict", problems: await problemsOf(response) };
  if (response.status === 422 || response.status === 400) return { ...item, state: "rejected", problems: await problemsOf(response) };
  if (response.status === 404 || response.status === 405) return retryLater(item, "the survey service is not available on this server yet");
  return retryLater(item, `server answered HTTP ${response.status}`);
}

function retryLater(item, reason) {
  const attempts = (item.attempts || 0) + 1;
  return { ...item, state: "waiting", attempts, reason, next_try_at: Date.now() + 1000 * backoffSeconds(attempts) };
}

// Send every item that is due (or all waiting ones when forced); returns the items after the run.
export async function flush(base, { force = false } = {}) {
  const items = await allItems();
  const now = Date.now();
  for (const item of items) {
    if (item.state !== "waiting" || (!force && (item.next_try_at || 0) > now)) continue;
    const updated = await sendItem(base, item);
    await putItem(updated);
  }
  return allItems();
}
