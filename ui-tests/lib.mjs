// Helpers of the dashboard's browser tests: a real snip server on port 0 with a fresh SQLite
// database, tiny local HTTP sites (destinations, a cross-origin attacker page), headless
// Chromium through playwright-core, an axe-core accessibility check, screenshots in four
// variants, a watcher that fails a test on any console error or CSP violation, and a poll helper.
//
// Nothing here sleeps to wait for something to happen: every wait polls for a fact within a bound
// and, when the bound passes, fails naming the fact it waited for.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root: relative paths in SNIP_BIN and SNIP_UI_SCREENSHOTS are relative to it. */
export const repoRoot = path.resolve(here, '..');

/** A user agent of desktop Chrome: a visitor whose clicks should count as human, not as a bot. */
export const DESKTOP_CHROME_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36';

/** A random lower-case token, for codes and names that must be unique per run. */
export function uniqueToken(prefix = '') {
  return prefix + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
}

// ---------------------------------------------------------------------------------------------
// Waiting for facts

/**
 * Calls `fn` until it returns a truthy value (returned) or `timeout` ms pass (then throws,
 * naming `what` and the last value or error seen). Errors thrown by `fn` count as "not yet".
 */
export async function waitFor(fn, { timeout = 10_000, interval = 100, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = `last value: ${JSON.stringify(value)}`;
    } catch (error) {
      last = `last error: ${error?.message ?? error}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (${last})`);
    }
    await delay(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
}

// ---------------------------------------------------------------------------------------------
// The snip server

/** The binary under test: $SNIP_BIN (relative to the repo root) or target/debug/snip. */
export function snipBinary() {
  return path.resolve(repoRoot, process.env.SNIP_BIN || 'target/debug/snip');
}

/**
 * Starts `snip serve` on 127.0.0.1:0 with a fresh SQLite database in a new temporary directory
 * and returns `{ base, adminKey, dir, stderr(), stop() }` once it printed `listening on http://ADDR`
 * (bounded: 20 s). `stop()` sends SIGTERM and returns only when the process has exited (after
 * 10 s: SIGKILL, and waits for that exit too); it resolves to `{ code, signal }`.
 */
export async function startServer({ adminKey = `admin_${uniqueToken()}_${uniqueToken()}` } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'snip-ui-'));
  const bin = snipBinary();
  // The server reads SNIP_* variables; none of the caller's may change what is tested.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SNIP_')));
  const args = [
    'serve',
    '--listen', '127.0.0.1:0',
    '--database', `sqlite://${dir}/snip.db`,
    '--admin-key', adminKey,
    '--click-flush-interval', '200ms',
    '--log-format', 'json',
  ];
  const child = spawn(bin, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let spawnError = null;
  child.once('error', (error) => { spawnError = error; });

  // stderr holds the logs: keep the last 256 KiB for failure messages.
  let errText = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    errText += chunk;
    if (errText.length > 262_144) errText = errText.slice(-262_144);
  });
  const stderr = () => errText;

  const lines = createInterface({ input: child.stdout });
  const outLines = [];
  const listening = new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      outLines.push(line);
      const m = /listening on (http:\/\/[^\s"]+)/.exec(line);
      if (m) resolve(m[1].replace(/\/$/, ''));
    });
    exited.then(({ code, signal }) => reject(new Error(
      `snip exited before listening (code ${code}, signal ${signal})` +
      (spawnError ? `: ${spawnError.message}` : ''))));
  });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('snip did not print "listening on" within 20 s')), 20_000);
  });

  let stopped = null;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGTERM');
        let killTimer;
        const outcome = await Promise.race([
          exited,
          new Promise((resolve) => { killTimer = setTimeout(() => resolve(null), 10_000); }),
        ]);
        clearTimeout(killTimer);
        if (outcome === null) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      const result = await exited;
      await rm(dir, { recursive: true, force: true });
      return result;
    })();
    return stopped;
  };

  try {
    const base = await Promise.race([listening, timeout]);
    return { base, adminKey, dir, stderr, stdout: () => outLines.join('\n'), stop };
  } catch (error) {
    await stop();
    throw new Error(`${error.message}\n--- ${bin} ${args.join(' ')}\n--- stdout:\n${outLines.join('\n')}\n--- stderr (tail):\n${errText.slice(-4000)}`);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// The JSON API, for set-up and for checking outcomes

/** `fetch` against the server; JSON bodies in and out. Resolves to `{ status, headers, json, text }`. */
export async function api(server, method, urlPath, { key = server.adminKey, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, redirect: 'manual' };
  if (key) init.headers.authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(server.base + urlPath, init);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, text };
}

/** Creates an API key through the API (admin) and returns the response body `{ id, name, role, key }`. */
export async function createKey(server, { name = uniqueToken('key-'), role = 'user' } = {}) {
  const res = await api(server, 'POST', '/api/v1/keys', { body: { name, role } });
  if (res.status !== 201) throw new Error(`POST /api/v1/keys answered ${res.status}: ${res.text}`);
  return res.json;
}

/** Creates a link through the API with `key` and returns the link object. */
export async function createLink(server, link, { key = server.adminKey } = {}) {
  const res = await api(server, 'POST', '/api/v1/links', { key, body: link });
  if (res.status !== 201) throw new Error(`POST /api/v1/links answered ${res.status}: ${res.text}`);
  return res.json;
}

/** The link as the API reports it (admin). */
export async function getLink(server, code) {
  const res = await api(server, 'GET', `/api/v1/links/${encodeURIComponent(code)}`);
  if (res.status !== 200) throw new Error(`GET /api/v1/links/${code} answered ${res.status}: ${res.text}`);
  return res.json;
}

/** One request to a short URL without following the redirect: `{ status, location }`. */
export async function hit(url, { headers = {} } = {}) {
  const res = await fetch(url, { redirect: 'manual', headers });
  await res.arrayBuffer();
  return { status: res.status, location: res.headers.get('location') };
}

// ---------------------------------------------------------------------------------------------
// Tiny local HTTP sites (destinations, another origin)

/**
 * Starts an HTTP server on 127.0.0.1:0 answering with `handler(req, res)` and returns
 * `{ origin, requests, close() }`; `requests` lists "METHOD PATH" of every request received.
 * `close()` returns once the server has closed.
 */
export async function startSite(handler) {
  const requests = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A destination site: every GET answers 200 `landed PATH` (text/plain). */
export function startLandingSite() {
  return startSite((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`landed ${req.url}`);
  });
}

// ---------------------------------------------------------------------------------------------
// The browser

/** Launches the system Chromium ($CHROMIUM or /usr/bin/chromium) headless. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 740 };

/**
 * A new browser context on the server (relative `page.goto('/ui/')` works) whose pages are watched:
 * any console error, uncaught exception or CSP violation is recorded and `problems.assertNone()`
 * fails listing them. `problems.allowStatus(status, urlPattern)` accepts Chromium's "Failed to
 * load resource: … status of STATUS" messages for responses that a test expects (a 401 sign-in).
 */
export async function newContext(browser, server, options = {}) {
  const context = await browser.newContext({
    baseURL: server.base,
    viewport: DESKTOP,
    colorScheme: 'light',
    ...options,
  });
  // Bounds of every wait of an action or a navigation: a missing element fails fast.
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const problems = watchProblems(context);
  return { context, problems };
}

function watchProblems(context) {
  const seen = [];
  const allowed = [];
  const record = (page, kind, text, url) => {
    if (kind === 'console' && allowed.some((a) => text.includes(`status of ${a.status}`) && a.url.test(url ?? ''))) return;
    seen.push(`${kind} on ${page.url()}${url ? ` (${url})` : ''}: ${text}`);
  };
  const attach = (page) => {
    page.on('console', (m) => {
      if (m.type() === 'error') record(page, 'console', m.text(), m.location()?.url);
    });
    page.on('pageerror', (e) => record(page, 'pageerror', e.stack || e.message));
  };
  context.on('page', attach);
  return {
    allowStatus(status, url = /.*/) { allowed.push({ status, url }); },
    list: () => [...seen],
    assertNone() {
      if (seen.length) throw new Error(`the page logged ${seen.length} error(s):\n  ${seen.join('\n  ')}`);
    },
  };
}

/** Signs in through the sign-in form and waits for the overview; fails saying what the server answered. */
export async function signIn(page, key) {
  await page.goto('/ui/signin');
  await page.getByLabel('API key').fill(key);
  const response = await submitAndWait(page, page.getByRole('button', { name: 'Sign in' }), /^\/ui\/signin$/);
  if (response.status() !== 303 || new URL(page.url()).pathname !== '/ui/') {
    const alerts = await page.locator('[role="alert"]').allTextContents();
    throw new Error(`signing in: POST /ui/signin answered ${response.status()} (expected 303 to /ui/), ` +
      `the page shows ${page.url()}: ${alerts.map((a) => a.trim()).join(' | ')}`);
  }
}

/**
 * Clicks `locator` (a submit button) and returns the response of the POST it sends (a redirect
 * too), once the page it leads to has loaded: the next `load` event, since the page before was
 * loaded already and may have the same URL.
 */
export async function submitAndWait(page, locator, pathPattern) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && pathPattern.test(new URL(r.url()).pathname)),
    page.waitForEvent('load'),
    locator.click(),
  ]);
  return response;
}

/** The rows of the table with this caption, as arrays of trimmed cell texts (th and td). */
export function tableRows(page, caption) {
  return page.evaluate((caption) => {
    const table = [...document.querySelectorAll('table')]
      .find((t) => t.caption && t.caption.textContent.trim() === caption);
    if (!table) return null;
    return [...table.tBodies].flatMap((b) => [...b.rows])
      .map((r) => [...r.cells].map((c) => c.textContent.trim()));
  }, caption);
}

// ---------------------------------------------------------------------------------------------
// Accessibility

const require = createRequire(import.meta.url);
let axeSource;

/**
 * Runs axe-core on the page (the source is evaluated through the DevTools protocol: the page's CSP
 * rightly blocks injected script tags) and throws listing every serious or critical violation.
 * Returns the violations of lesser impact, for the log.
 */
export async function axeCheck(page, name) {
  axeSource ??= await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  const loaded = await page.evaluate(() => typeof window.axe === 'object');
  if (!loaded) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ['violations'] });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary?.replace(/\s+/g, ' ')}`),
    }));
  });
  const severe = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (severe.length) {
    const lines = severe.map((v) => `[${v.impact}] ${v.id}: ${v.help}\n      ${v.nodes.join('\n      ')}`);
    throw new Error(`axe: ${severe.length} serious/critical violation(s) on ${name} (${page.url()}):\n  ${lines.join('\n  ')}`);
  }
  return violations;
}

// ---------------------------------------------------------------------------------------------
// Screenshots

/** Where screenshots go: $SNIP_UI_SCREENSHOTS (relative to the repo root) or target/ui-screenshots. */
export function screenshotDir() {
  return path.resolve(repoRoot, process.env.SNIP_UI_SCREENSHOTS || 'target/ui-screenshots');
}

const VARIANTS = [
  ['desktop', DESKTOP, 'light'],
  ['desktop', DESKTOP, 'dark'],
  ['phone', PHONE, 'light'],
  ['phone', PHONE, 'dark'],
];

/** Waits until web fonts are loaded and two frames have been laid out since the last change. */
export async function settle(page) {
  await page.evaluate(async () => {
    await document.fonts.ready;
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  });
}

/**
 * Writes NAME-desktop-light.png, NAME-desktop-dark.png, NAME-phone-light.png and
 * NAME-phone-dark.png (viewport only, not full page), then restores the desktop light view.
 * Returns the paths written.
 */
export async function screenshot(page, name) {
  const dir = screenshotDir();
  await mkdir(dir, { recursive: true });
  const written = [];
  for (const [device, viewport, colorScheme] of VARIANTS) {
    await page.setViewportSize(viewport);
    await page.emulateMedia({ colorScheme });
    await settle(page);
    const file = path.join(dir, `${name}-${device}-${colorScheme}.png`);
    await page.screenshot({ path: file, fullPage: false, animations: 'disabled', caret: 'hide' });
    written.push(file);
  }
  await page.setViewportSize(DESKTOP);
  await page.emulateMedia({ colorScheme: 'light' });
  await settle(page);
  return written;
}
