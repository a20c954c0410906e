// Service worker of the survey form (scope /form/): the app shell from the cache so the form
// opens offline; form schemas network-first with the cached copy as fallback. Submissions
// (POST) are never touched here: the page's IndexedDB outbox owns them.
const CACHE = "civicmap-form-v2";
// pick.js is imported by form.js; the map it opens (MapLibre GL, tiles) is online-only on purpose
const SHELL = ["./", "index.html", "form.js", "queue.js", "pick.js", "form.css"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("civicmap-form-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(request, { ignoreSearch: request.mode === "navigate" });
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope).pathname;
  const isShell = url.pathname.startsWith(scope);
  const isSchema = /^\/(.*\/)?forms\/[^/]+\/schema\.json$/.test(url.pathname);
  if (isShell || isSchema) event.respondWith(networkFirst(request));
});
