// End-to-end test of the report dashboard against the real sse-server, in headless
// Chromium (Debian's /usr/bin/chromium, driven by playwright-core; no browser download).
//
//   cd frontend && npm run build && npm run e2e
//
// It starts the server itself: $SSE_SERVER_BIN (default ../target/debug/sse-server,
// relative to frontend/) with --bind 127.0.0.1:<free port> --static-dir frontend/dist,
// passing the environment through. The restart phase needs data that outlives the
// process, so it requires SSE_KAFKA_BROKERS and SSE_DYNAMODB_ENDPOINT (e.g.
// scripts/services.sh up, then SSE_KAFKA_BROKERS=127.0.0.1:9092
// SSE_DYNAMODB_ENDPOINT=http://127.0.0.1:8111 npm run e2e) and fails, saying so, without.
//
// Other settings: CHROMIUM_PATH (default /usr/bin/chromium); E2E_LIVE_BUDGET_MS, the time
// a live change may take to show in both tabs (default 2000, or 5000 with Kafka: see below).
// Screenshots and the server's log go to frontend/e2e/screenshots/ (gitignored).
// The last line is "N passed, M failed"; the exit code is 0 only when nothing failed.

import { chromium } from 'playwright-core';
import { spawn, execFile } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const FRONTEND = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = path.resolve(FRONTEND, '..');
const BIN = path.resolve(FRONTEND, process.env.SSE_SERVER_BIN ?? '../target/debug/sse-server');
const DIST = path.join(FRONTEND, 'dist');
const SHOTS = path.join(FRONTEND, 'e2e', 'screenshots');
const UPDATE_SCRIPT = path.join(ROOT, 'scripts', 'update_report_status.sh');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// The dashboard shows an event as soon as it arrives; what a change takes end to end is
// mostly the server's path (with Kafka: command topic -> writer -> event topic -> consumer).
// Measured here: ~0.1 s with the in-process bus and ~0.1 s through the local broker (the
// server's consumers set fetch.wait.max.ms to 20 ms). The issue asks for 2 s, which is the
// budget; the measured time is always printed. E2E_LIVE_BUDGET_MS overrides it.
const LIVE_TARGET_MS = 2000;
const LIVE_BUDGET_MS = Number(process.env.E2E_LIVE_BUDGET_MS ?? LIVE_TARGET_MS);
const RECONNECT_MS = 15_000;
const READY_MS = 90_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log('#', ...a);

// ---- the server -----------------------------------------------------------------------

function freePort() {
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

class Server {
  constructor(port) {
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.runs = 0;
    this.tail = [];
  }

  async start() {
    this.runs += 1;
    const logFile = fs.createWriteStream(path.join(SHOTS, `server-${this.runs}.log`));
    const proc = spawn(BIN, ['--bind', `127.0.0.1:${this.port}`, '--static-dir', DIST], {
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
        throw new Error(`sse-server exited during start-up (${JSON.stringify(exited)}); its log:\n${this.tail.join('\n')}`);
      }
      try {
        const res = await fetch(`${this.base}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
        last = `HTTP ${res.status} ${await res.text()}`;
      } catch (e) {
        last = e.cause?.code ?? e.message;
      }
      await sleep(200);
    }
    throw new Error(`${this.base}/readyz did not answer 200 within ${READY_MS} ms (last: ${last}); log:\n${this.tail.join('\n')}`);
  }

  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const done = await Promise.race([this.exited, sleep(15_000).then(() => null)]);
    if (!done) {
      log('sse-server did not stop within 15 s of SIGTERM; killing it');
      proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

function runUpdateScript(base, userId, reportId, status) {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [UPDATE_SCRIPT, userId, reportId, status],
      { env: { ...process.env, SSE_URL: base }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

// ---- the browser ----------------------------------------------------------------------

// Counts EventSources and their listeners inside the page, to catch leaks.
const EVENTSOURCE_PROBE = () => {
  const Native = window.EventSource;
  const probe = { opened: 0, closed: 0, listeners: 0, live: new Set() };
  window.__esProbe = probe;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      probe.opened += 1;
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

const esStats = (page) =>
  page.evaluate(() => {
    const p = window.__esProbe;
    return { opened: p.opened, closed: p.closed, open: p.live.size, listeners: p.listeners };
  });

const row = (page, id) => page.locator(`[data-testid="report"][data-report-id="${id}"]`);

async function waitStatus(page, id, status, timeout) {
  await page.waitForSelector(`[data-testid="report"][data-report-id="${id}"][data-status="${status}"]`, {
    timeout,
  });
}

async function waitConnection(page, state, timeout) {
  await page.waitForSelector(`[data-testid="connection"][data-state="${state}"]`, { timeout });
}

/** Waits until `status` shows in every page; returns the time it took. */
async function waitStatusEverywhere(pages, id, status, timeout) {
  const t0 = Date.now();
  await Promise.all(pages.map((p) => waitStatus(p, id, status, timeout)));
  return Date.now() - t0;
}

// ---- the run --------------------------------------------------------------------------

const results = [];
let pages = [];

async function shot(name) {
  await Promise.all(
    pages.map((p, i) => p.page.screenshot({ path: path.join(SHOTS, `${name}-${p.name ?? i}.png`), fullPage: true }).catch(() => {})),
  );
}

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok ${results.length} - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`not ok ${results.length} - ${name} (${Date.now() - t0} ms)`);
    console.log(String(e?.stack ?? e).replace(/^/gm, '#   '));
    await shot(`failed-${results.length}`);
  }
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (/\.(png|log)$/.test(f)) fs.rmSync(path.join(SHOTS, f));

  const missing = [];
  if (!fs.existsSync(BIN)) missing.push(`the server binary ${BIN} (cargo build, or set SSE_SERVER_BIN)`);
  if (!fs.existsSync(path.join(DIST, 'index.html'))) missing.push(`${DIST}/index.html (npm run build)`);
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
  if (!fs.existsSync(UPDATE_SCRIPT)) missing.push(UPDATE_SCRIPT);
  if (missing.length) {
    results.push({ name: 'preflight', ok: false });
    console.log(`not ok 1 - preflight: missing ${missing.join('; ')}`);
    return;
  }

  const server = new Server(await freePort());
  const browser = await chromium.launch({
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
    ],
  });
  const pageErrors = [];
  const context = await browser.newContext({ viewport: { width: 1180, height: 760 }, deviceScaleFactor: 1 });
  await context.addInitScript(EVENTSOURCE_PROBE);

  const newTab = async (name, viewport) => {
    const page = await context.newPage();
    if (viewport) await page.setViewportSize(viewport);
    page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
    pages.push({ name, page });
    return page;
  };

  let userId;
  let first; // report created in tab A
  let second; // report created in tab B
  let a;
  let b;

  try {
    await test('server starts and is ready', async () => {
      await server.start();
      log(`sse-server on ${server.base}`);
    });

    await test('sign-in validates the user id, and "New user" signs in with a fresh one', async () => {
      a = await newTab('a');
      await a.goto(`${server.base}/`);
      await a.getByTestId('signin-input').fill('not-a-uuid');
      await a.getByTestId('signin-input').press('Enter');
      const err = a.getByTestId('signin-error');
      await err.waitFor({ timeout: 5000 });
      assert.match(await err.innerText(), /not a UUID/);
      await shot('01-signin-error');
      await a.getByTestId('signin-new').click();
      await a.getByTestId('empty').waitFor({ timeout: 10_000 });
      userId = new URL(a.url()).searchParams.get('user');
      assert.match(userId ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(await a.getByTestId('user-id').innerText(), userId);
      await waitConnection(a, 'live', 10_000);
      await shot('02-empty');
    });

    await test('a second tab (and a reload) of the same user stays signed in', async () => {
      b = await newTab('b', { width: 420, height: 820 }); // a narrow window
      await b.goto(`${server.base}/?user=${userId}`);
      await b.getByTestId('empty').waitFor({ timeout: 10_000 });
      await b.reload();
      await b.getByTestId('empty').waitFor({ timeout: 10_000 });
      assert.equal(await b.getByTestId('user-id').innerText(), userId);
      await waitConnection(b, 'live', 10_000);
    });

    await test('a report created in one tab appears in the other', async () => {
      const t0 = Date.now();
      await a.getByTestId('new-report').click();
      const inA = a.getByTestId('report').first();
      await inA.waitFor({ timeout: 5000 });
      first = await inA.getAttribute('data-report-id');
      assert.equal(await inA.getAttribute('data-status'), 'pending');
      await waitStatus(b, first, 'pending', 5000);
      log(`new report visible in both tabs after ${Date.now() - t0} ms`);
      assert.equal(await a.getByTestId('report').count(), 1, 'one row in tab A (POST reply + event = one report)');
      assert.equal(await b.getByTestId('report').count(), 1, 'one row in tab B');
      assert.match(await row(b, first).getByTestId('report-status').innerText(), /pending/i);
    });

    await test(`a change made with update_report_status.sh shows in both tabs within ${LIVE_BUDGET_MS} ms`, async () => {
      const t0 = Date.now();
      const r = await runUpdateScript(server.base, userId, first, 'queued');
      const tScript = Date.now() - t0;
      assert.equal(r.code, 0, `update_report_status.sh failed: ${r.stdout}${r.stderr}`);
      const t = await waitStatusEverywhere([a, b], first, 'queued', 10_000);
      log(`script took ${tScript} ms; both tabs showed "queued" ${t} ms after its 202`);
      if (t > LIVE_TARGET_MS) log(`WARNING: slower than the ${LIVE_TARGET_MS} ms target (server path; see the note at the top)`);
      assert.ok(t <= LIVE_BUDGET_MS, `took ${t} ms, more than ${LIVE_BUDGET_MS} ms`);
      await shot('03-queued');
    });

    await test('clicking a transition button moves the report in both tabs', async () => {
      await row(a, first).getByTestId('move-processing').click();
      const t = await waitStatusEverywhere([a, b], first, 'processing', 10_000);
      log(`click to "processing" in both tabs: ${t} ms`);
      // the buttons follow the transition table
      assert.deepEqual(
        await row(b, first).locator('button[data-testid^="move-"]').evaluateAll((bs) => bs.map((x) => x.dataset.testid)),
        ['move-completed', 'move-failed'],
      );
    });

    await test("a refused move shows the server's message next to the report", async () => {
      // A third tab that missed the last change: its stream gives a snapshot taken now
      // (report "processing") and then nothing, so its buttons are out of date.
      const staleSnapshot = await (await fetch(`${server.base}/v4/reports?user_id=${userId}`)).text();
      const c = await newTab('c-stale');
      await c.route('**/v4/sse**', (route) =>
        route.fulfill({
          status: 200,
          headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
          body: `retry: 600000\nid: 1\nevent: snapshot\ndata: ${staleSnapshot}\n\n`,
        }),
      );
      await c.goto(`${server.base}/?user=${userId}`);
      await waitStatus(c, first, 'processing', 10_000);

      await row(a, first).getByTestId('move-completed').click();
      await waitStatusEverywhere([a, b], first, 'completed', 10_000);
      assert.equal(await row(a, first).locator('button[data-testid^="move-"]').count(), 0, 'completed is final');

      await row(c, first).getByTestId('move-failed').click(); // processing -> failed, but it is completed
      const notice = row(c, first).getByTestId('report-error');
      await notice.waitFor({ timeout: 5000 });
      const shown = (await notice.innerText()).trim();
      // the same request again, to read the server's own answer
      const res = await fetch(`${server.base}/v4/report?user_id=${userId}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: first, status: 'failed' }),
      });
      assert.equal(res.status, 409);
      const body = await res.json();
      assert.ok(body.error && shown.includes(body.error), `shown: ${JSON.stringify(shown)}; server: ${JSON.stringify(body)}`);
      assert.equal(await row(a, first).getByTestId('report-error').count(), 0, 'other tabs show no error');
      await shot('04-refused');
      await c.close();
      pages = pages.filter((p) => p.page !== c);
    });

    await test('one EventSource per tab, with a fixed set of listeners', async () => {
      // tab B: create a report there; tab A sees it
      await b.getByTestId('new-report').click();
      await b.waitForFunction(() => document.querySelectorAll('[data-testid="report"]').length === 2, null, {
        timeout: 5000,
      });
      second = await b
        .locator('[data-testid="report"]')
        .evaluateAll((rows, known) => rows.map((r) => r.dataset.reportId).find((id) => id !== known), first);
      await waitStatus(a, second, 'pending', 5000);
      for (const p of [a, b]) {
        const s = await esStats(p);
        assert.equal(s.open, 1, `open EventSources: ${JSON.stringify(s)}`);
        // the four named events of the contract, however many times the page re-rendered
        assert.equal(s.listeners, 4, `listeners on the EventSource: ${JSON.stringify(s)}`);
      }
    });

    await test('after a server restart both tabs reconnect and show changes made after it', async () => {
      const needed = ['SSE_KAFKA_BROKERS', 'SSE_DYNAMODB_ENDPOINT'].filter((k) => !process.env[k]);
      if (needed.length) {
        assert.fail(
            `the restart phase needs data that survives the restart, but ${needed.join(' and ')} ` +
            `${needed.length > 1 ? 'are' : 'is'} not set: run scripts/services.sh up, then ` +
            'SSE_KAFKA_BROKERS=127.0.0.1:9092 SSE_DYNAMODB_ENDPOINT=http://127.0.0.1:8111 npm run e2e',
        );
      }
      await server.stop();
      await Promise.all([a, b].map((p) => waitConnection(p, 'reconnecting', 10_000)));
      await a.getByTestId('reconnecting-banner').waitFor({ timeout: 2000 });
      await shot('05-reconnecting');
      await server.start();
      const t0 = Date.now();
      await Promise.all([a, b].map((p) => waitConnection(p, 'live', RECONNECT_MS)));
      log(`both tabs live again ${Date.now() - t0} ms after the server was ready`);

      const r = await runUpdateScript(server.base, userId, second, 'canceled');
      assert.equal(r.code, 0, `update_report_status.sh failed after the restart: ${r.stdout}${r.stderr}`);
      const t = await waitStatusEverywhere([a, b], second, 'canceled', RECONNECT_MS);
      log(`change after the restart visible in both tabs after ${t} ms`);
      await waitStatusEverywhere([a, b], first, 'completed', 1000); // data from before the restart is still there

      // and a report created now reaches both tabs too
      await a.getByTestId('new-report').click();
      await b.waitForFunction(() => document.querySelectorAll('[data-testid="report"]').length === 3, null, {
        timeout: RECONNECT_MS,
      });
      await shot('06-after-restart');
      for (const p of [a, b]) assert.equal((await esStats(p)).open, 1, 'still one EventSource per tab');
    });

    await test('sign-out closes the stream; signing in again by pasting the id shows the same reports', async () => {
      await a.getByTestId('signout').click();
      await a.getByTestId('signin-input').waitFor({ timeout: 5000 });
      assert.equal(new URL(a.url()).searchParams.get('user'), null);
      const s = await esStats(a);
      assert.equal(s.open, 0, `EventSources still open after sign-out: ${JSON.stringify(s)}`);
      assert.equal(s.listeners, 0, `listeners left after sign-out: ${JSON.stringify(s)}`);
      await a.getByTestId('signin-input').fill(`  ${userId.toUpperCase()} `);
      await a.getByTestId('signin-input').press('Enter');
      await waitStatus(a, first, 'completed', 10_000);
      assert.equal(await a.getByTestId('user-id').innerText(), userId);
      assert.equal((await esStats(a)).open, 1);
      await shot('07-signed-in-again');
    });

    await test('no uncaught errors in the pages', async () => {
      assert.deepEqual(pageErrors, []);
    });
  } finally {
    await browser.close().catch(() => {});
    await server.stop().catch(() => {});
  }
}

try {
  await main();
} catch (e) {
  results.push({ name: 'harness', ok: false });
  console.log(`not ok - harness: ${e?.stack ?? e}`);
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
if (failed) process.exitCode = 1;
console.log(`screenshots: ${path.relative(process.cwd(), SHOTS) || '.'}`);
console.log(`${passed} passed, ${failed} failed`);
