// Shared parts of the end-to-end tests (dashboard.e2e.mjs, tabs.e2e.mjs, auth.e2e.mjs,
// https.e2e.mjs): the paths, starting and stopping the real sse-server (over plain HTTP, or
// HTTPS with scripts/tls_cert.sh's certificate), launching Debian's Chromium through
// playwright-core (never a downloaded browser), a probe that counts the EventSources of
// a page, a tiny TAP-like runner whose last line is "N passed, M failed", and runE2E, the
// frame of a whole run.

import { chromium } from 'playwright-core';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FRONTEND = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(FRONTEND, '..');
export const BIN = path.resolve(FRONTEND, process.env.SSE_SERVER_BIN ?? '../target/debug/sse-server');
export const DIST = path.join(FRONTEND, 'dist');
export const SHOTS = path.join(FRONTEND, 'e2e', 'screenshots');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const READY_MS = 90_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/**
 * Resolves to `value` after `ms`, for the losing side of a `Promise.race`: its timer does not
 * keep Node alive, so a race won by the other side does not hold the run's exit for `ms`.
 */
export const timeout = (ms, value = null) => new Promise((r) => setTimeout(r, ms, value).unref());
export const log = (...a) => console.log('#', ...a);

// ---- the server -----------------------------------------------------------------------

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * scripts/tls_cert.sh's self-signed certificate for localhost and 127.0.0.1 (made when
 * missing): `{ cert, key }`, the paths of its PEM files.
 */
export function tlsCertificate() {
  const dir = execFileSync('bash', [path.join(ROOT, 'scripts', 'tls_cert.sh')], { cwd: ROOT, encoding: 'utf8' }).trim();
  return { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
}

/**
 * A `fetch` that trusts the PEM certificate `ca` (Node's own fetch cannot be given one):
 * the same call and answer (a Response), over https.request, so HTTP/1.1.
 */
export function fetchTrusting(ca) {
  const agent = new https.Agent({ ca: fs.readFileSync(ca) });
  return (url, init = {}) =>
    new Promise((resolve, reject) => {
      const req = https.request(
        url,
        { method: init.method ?? 'GET', headers: init.headers ?? {}, agent, signal: init.signal },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const headers = new Headers();
            for (const [k, v] of Object.entries(res.headers)) {
              for (const one of [v].flat()) headers.append(k, one);
            }
            const empty = [204, 205, 304].includes(res.statusCode);
            resolve(new Response(empty ? null : Buffer.concat(chunks), { status: res.statusCode, headers }));
          });
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });
}

/**
 * The real sse-server on 127.0.0.1:port, serving dist/, with `args` added to its command
 * line; its log goes to SHOTS/<name>-N.log. With `tls` ({ cert, key }: tlsCertificate()),
 * it serves HTTPS (--tls-cert/--tls-key), `base` is https://…, and `server.fetch` trusts
 * that certificate (over plain HTTP, it is Node's fetch).
 */
export class Server {
  constructor(port, name = 'server', args = [], { tls } = {}) {
    this.port = port;
    this.name = name;
    this.args = tls ? [...args, '--tls-cert', tls.cert, '--tls-key', tls.key] : args;
    this.base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.fetch = tls ? fetchTrusting(tls.cert) : (...a) => fetch(...a);
    this.proc = null;
    this.runs = 0;
    this.tail = [];
  }

  async start() {
    this.runs += 1;
    const logFile = fs.createWriteStream(path.join(SHOTS, `${this.name}-${this.runs}.log`));
    const proc = spawn(BIN, ['--bind', `127.0.0.1:${this.port}`, '--static-dir', DIST, ...this.args], {
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    proc.on('error', (e) => this.tail.push(`spawn error: ${e.message}`));
    for (const stream of [proc.stdout, proc.stderr]) {
      stream.on('data', (chunk) => {
        logFile.write(chunk);
        this.tail.push(...chunk.toString().split('\n').filter(Boolean));
        this.tail.splice(0, Math.max(0, this.tail.length - 30));
      });
    }
    await this.waitReady();
  }

  async waitReady() {
    const deadline = Date.now() + READY_MS;
    let last = 'no answer';
    let exited = null;
    this.exited.then((e) => (exited = e));
    while (Date.now() < deadline) {
      if (exited) {
        throw new Error(
          `sse-server exited during start-up (${JSON.stringify(exited)}); its log:\n${this.tail.join('\n')}`,
        );
      }
      try {
        const res = await this.fetch(`${this.base}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
        last = `HTTP ${res.status} ${await res.text()}`;
      } catch (e) {
        last = e.cause?.code ?? e.code ?? e.message;
      }
      await sleep(200);
    }
    throw new Error(
      `${this.base}/readyz did not answer 200 within ${READY_MS} ms (last: ${last}); log:\n${this.tail.join('\n')}`,
    );
  }

  /** A value of /metrics, e.g. metric('sse_open_streams{version="v4"}'); null when absent. */
  async metric(series) {
    const text = await (await this.fetch(`${this.base}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
    }
    return null;
  }

  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const done = await Promise.race([this.exited, timeout(15_000)]);
    if (!done) {
      log('sse-server did not stop within 15 s of SIGTERM; killing it');
      proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** What must exist before a run; a list of sentences, empty when all is there. */
export function missingPrerequisites(extra = []) {
  const missing = [];
  if (!fs.existsSync(BIN)) missing.push(`the server binary ${BIN} (cargo build, or set SSE_SERVER_BIN)`);
  if (!fs.existsSync(path.join(DIST, 'index.html'))) missing.push(`${DIST}/index.html (npm run build)`);
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
  for (const f of extra) if (!fs.existsSync(f)) missing.push(f);
  return missing;
}

// ---- the browser ----------------------------------------------------------------------

/** Debian's Chromium, headless, with `extraArgs` added to its usual flags. */
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

// Counts EventSources and their listeners inside the page, to catch leaks.
export const EVENTSOURCE_PROBE = () => {
  const Native = window.EventSource;
  const probe = { opened: 0, closed: 0, listeners: 0, live: new Set(), urls: [] };
  window.__esProbe = probe;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      probe.opened += 1;
      probe.urls.push(String(args[0]));
      probe.live.add(this);
    }
    addEventListener(...args) {
      probe.listeners += 1;
      return super.addEventListener(...args);
    }
    removeEventListener(...args) {
      probe.listeners -= 1;
      return super.removeEventListener(...args);
    }
    close() {
      if (probe.live.delete(this)) probe.closed += 1;
      return super.close();
    }
  };
};

export const esStats = (page) =>
  page.evaluate(() => {
    const p = window.__esProbe;
    return { opened: p.opened, closed: p.closed, open: p.live.size, listeners: p.listeners, urls: p.urls };
  });

export async function waitStatus(page, id, status, timeout) {
  await page.waitForSelector(`[data-testid="report"][data-report-id="${id}"][data-status="${status}"]`, {
    timeout,
  });
}

export async function waitConnection(page, state, timeout) {
  await page.waitForSelector(`[data-testid="connection"][data-state="${state}"]`, { timeout });
}

/** Waits until `status` shows in every page; returns the time it took. */
export async function waitStatusEverywhere(pages, id, status, timeout) {
  const t0 = Date.now();
  await Promise.all(pages.map((p) => waitStatus(p, id, status, timeout)));
  return Date.now() - t0;
}

/** Polls `check` (async, true when done) until it holds or `timeout` passes. */
export async function eventually(what, check, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last === true) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(100);
  }
}

// ---- the runner -----------------------------------------------------------------------

/** `test(name, fn)` runs one step and records it; `finish()` prints the summary line. */
export function runner(onFailure = async () => {}) {
  const results = [];
  const test = async (name, fn) => {
    const t0 = Date.now();
    try {
      await fn();
      results.push({ name, ok: true });
      console.log(`ok ${results.length} - ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      results.push({ name, ok: false });
      console.log(`not ok ${results.length} - ${name} (${Date.now() - t0} ms)`);
      console.log(String(e?.stack ?? e).replace(/^/gm, '#   '));
      await onFailure(results.length);
    }
  };
  const fail = (name, message) => {
    results.push({ name, ok: false });
    console.log(`not ok ${results.length} - ${name}: ${message}`);
  };
  const finish = () => {
    const passed = results.filter((r) => r.ok).length;
    const failed = results.length - passed;
    if (failed) process.exitCode = 1;
    console.log(`screenshots: ${path.relative(process.cwd(), SHOTS) || '.'}`);
    console.log(`${passed} passed, ${failed} failed`);
  };
  return { test, fail, finish };
}

export function prepareShots(prefix) {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) {
    if (f.startsWith(prefix) && /\.(png|log)$/.test(f)) fs.rmSync(path.join(SHOTS, f));
  }
}

/**
 * One whole end-to-end run: clears the old screenshots and logs starting with `prefix`, checks
 * the prerequisites (a failed "preflight" when any is missing), starts the server (its log is
 * SHOTS/<serverName>-N.log; `serverArgs` added to its command line; `tls`: HTTPS, with
 * tlsCertificate() when `true`, see Server) and Chromium, runs `body({ test, server,
 * browser })`, stops them both and prints the summary. `onFailure(n)` runs after a failed test (screenshots); with
 * `watchdogMs`, a run that takes longer fails "watchdog" and exits. A throw outside a test
 * fails "harness".
 */
export async function runE2E(
  { prefix, serverName, serverArgs = [], tls, prerequisites = [], onFailure, watchdogMs },
  body,
) {
  const { test, fail, finish } = runner(onFailure);
  if (watchdogMs) {
    // A browser that stops answering must not hold up the whole test run.
    setTimeout(() => {
      fail('watchdog', `the run took more than ${watchdogMs} ms`);
      finish();
      process.exit(1);
    }, watchdogMs).unref();
  }
  try {
    prepareShots(prefix);
    const missing = missingPrerequisites(prerequisites);
    if (missing.length) {
      fail('preflight', `missing ${missing.join('; ')}`);
    } else {
      const server = new Server(await freePort(), serverName, serverArgs, {
        tls: tls === true ? tlsCertificate() : tls,
      });
      const browser = await launchChromium();
      try {
        await body({ test, server, browser });
      } finally {
        await browser.close().catch(() => {});
        await server.stop().catch(() => {});
      }
    }
  } catch (e) {
    fail('harness', e?.stack ?? e);
  }
  finish();
}
