// Open one page in headless Chromium (playwright-core from web/node_modules, the system's
// chromium), wait until document.body.dataset.ready is set, take a screenshot and print JSON:
// {ready, dataset, texts: {selector: innerText}, values, console, offsite, pageErrors}.
// Requests to any other origin are aborted and listed in "offsite" (nothing may load from a CDN).
// Optional steps run after "ready", from env CIVICMAP_PROBE_STEPS (JSON list), each one of
// {fill, value} {check} {click} {wait: selector, state} {offline: bool} {file, name, mimeType, base64}
// {clickAt: selector, x, y} (a click at that offset in CSS pixels from the element's top-left corner)
// {key: name, on: selector} (press a key, focused on the element) {read: selector, as} (an input's value
// at that moment, kept in "values" under `as`, default the selector) {shot: name} (a screenshot next to SCREENSHOT.png,
// named SCREENSHOT-name.png).
// (Selectors, not JS strings: the pages' CSP forbids eval, so string predicates would fail.)
//
//   node tests/web/page_probe.mjs URL SCREENSHOT.png TIMEOUT_MS SELECTOR...
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "..", "web", "package.json"));
const { chromium } = require("playwright-core");

const [url, screenshot, timeoutText, ...selectors] = process.argv.slice(2);
const timeout = Number(timeoutText || 30000);
const executablePath = process.env.CIVICMAP_CHROMIUM || "/usr/bin/chromium";

async function runStep(page, step) {
  if ("fill" in step) await page.fill(step.fill, String(step.value));
  else if ("check" in step) await page.check(step.check);
  else if ("click" in step) await page.click(step.click);
  else if ("clickAt" in step) await page.click(step.clickAt, { position: { x: Number(step.x), y: Number(step.y) } });
  else if ("key" in step) await page.press(step.on, step.key);
  else if ("read" in step) out.values[step.as || step.read] = await page.inputValue(step.read);
  else if ("shot" in step) await page.screenshot({ path: screenshot.replace(/\.png$/, `-${step.shot}.png`) });
  else if ("wait" in step) await page.waitForSelector(step.wait, { state: step.state || "attached", timeout });
  else if ("offline" in step) await context.setOffline(Boolean(step.offline));
  else if ("file" in step) {
    const buffer = Buffer.from(step.base64, "base64");
    await page.setInputFiles(step.file, { name: step.name, mimeType: step.mimeType, buffer });
  } else throw new Error(`unknown step ${JSON.stringify(step)}`);
  out.steps += 1;
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
  ],
});
let context;
const out = { ready: null, dataset: {}, texts: {}, values: {}, console: [], offsite: [], pageErrors: [] };
try {
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: "allow" });
  const page = await context.newPage();
  const origin = new URL(url).origin;
  await page.route("**/*", (route) => {
    const target = route.request().url();
    if (target.startsWith(origin) || target.startsWith("data:") || target.startsWith("blob:")) return route.continue();
    out.offsite.push(target);
    return route.abort();
  });
  page.on("console", (msg) => out.console.push(`${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (error) => out.pageErrors.push(String(error)));
  await page.goto(url, { waitUntil: "domcontentloaded" });
  try {
    await page.waitForFunction(() => document.body && document.body.dataset.ready, null, { timeout });
  } catch (error) {
    out.waitError = String(error);
  }
  const steps = JSON.parse(process.env.CIVICMAP_PROBE_STEPS || "[]");
  out.steps = 0;
  try {
    for (const step of steps) await runStep(page, step);
  } catch (error) {
    out.stepError = String(error);
  }
  out.dataset = await page.evaluate(() => ({ ...document.body.dataset }));
  out.ready = out.dataset.ready || null;
  for (const selector of selectors) {
    out.texts[selector] = await page.evaluate((s) => {
      const node = document.querySelector(s);
      return node ? node.innerText : null;
    }, selector);
  }
  if (screenshot) {
    await page.screenshot({ path: screenshot });
    const map = await page.$("#map");
    if (map) await map.screenshot({ path: screenshot.replace(/\.png$/, "-map.png") });
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
