// End-to-end test of the report dashboard against the real sse-server, in headless Chromium:
// sign-in, two tabs of one user kept in step, update_report_status.sh, transition buttons,
// a refused move, one shared EventSource, the header's count of the user's streams as another
// browser comes and goes, a server restart, sign-out, a truncated board.
// (tabs.spec.mjs checks that 8 tabs all stay live.)
//
//   cd frontend && npm run build && npm run e2e            (or: npx playwright test dashboard)
//
// The server is the `server` fixture (fixtures.mjs): $SSE_SERVER_BIN on a free port of
// 127.0.0.1 with --static-dir frontend/dist, the environment passed through. The restart
// test needs data that outlives the process, so it requires SSE_KAFKA_BROKERS and
// SSE_DYNAMODB_ENDPOINT (e.g. scripts/services.sh up, then SSE_KAFKA_BROKERS=127.0.0.1:9092
// SSE_DYNAMODB_ENDPOINT=http://127.0.0.1:8111 npm run e2e) and fails, saying so, without.
// The tests run in order, each on the state the previous ones left: after a failure, the
// rest of the file does not run.
//
// E2E_LIVE_BUDGET_MS: the time a live change may take to show in both tabs (default 2000).
// Screenshots and the server's logs go to frontend/e2e/screenshots/ (gitignored).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { screenshotsOnFailure, test } from './fixtures.mjs';
import { EVENTSOURCE_PROBE, esStats, waitConnection, waitStatus, waitStatusEverywhere } from './page.mjs';
import { ROOT, SHOTS, Server, UPDATE_SCRIPT, freePort } from './server.mjs';
import { log } from './util.mjs';

// The dashboard shows an event as soon as it arrives; what a change takes end to end is
// mostly the server's path (with Kafka: command topic -> writer -> event topic -> consumer).
// Measured here: ~0.1 s with the in-process bus and ~0.1 s through the local broker (the
// server's consumers set fetch.wait.max.ms to 20 ms). The issue asks for 2 s, which is the
// budget; the measured time is always printed. E2E_LIVE_BUDGET_MS overrides it.
const LIVE_TARGET_MS = 2000;
const LIVE_BUDGET_MS = Number(process.env.E2E_LIVE_BUDGET_MS ?? LIVE_TARGET_MS);
const RECONNECT_MS = 15_000;

test.describe.configure({ mode: 'serial' });

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

/**
 * The events of /v4/sse in the contract (docs/openapi.json): `reset` and the named data
 * events, read as src/contract.test.ts reads them (which checks that wire.ts listens to
 * exactly these): the dashboard adds one listener for each.
 */
function streamEventsOfContract() {
  const contract = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'openapi.json'), 'utf8'));
  const text = contract.paths['/v4/sse'].get.description ?? '';
  const named = [...text.matchAll(/^\* `(\w+)`:/gm)].map((m) => m[1]);
  if (/`event: reset`/.test(text)) named.push('reset');
  assert.ok(named.length > 0, 'no event names in the description of GET /v4/sse');
  return named;
}
const STREAM_EVENTS = streamEventsOfContract();

const row = (page, id) => page.locator(`[data-testid="report"][data-report-id="${id}"]`);

/** EventSources open in all these pages together (the tabs of one browser share one). */
async function openStreams(pages) {
  let open = 0;
  let listeners = 0;
  for (const p of pages) {
    const s = await esStats(p);
    open += s.open;
    listeners += s.listeners;
  }
  return { open, listeners };
}

// ---- the state the tests share, in order ------------------------------------------------

let pages = [];
const pageErrors = [];
let context;
let userId;
let first; // report created in tab A
let second; // report created in tab B
let a;
let b;

async function shot(name) {
  await Promise.all(
    pages.map((p, i) =>
      p.page.screenshot({ path: path.join(SHOTS, `${name}-${p.name ?? i}.png`), fullPage: true }).catch(() => {}),
    ),
  );
}

screenshotsOnFailure((n) => shot(`failed-${n}`));

const newTab = async (name, viewport) => {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  pages.push({ name, page });
  return page;
};

test.beforeAll(async ({ browser }) => {
  context = await browser.newContext({ viewport: { width: 1180, height: 760 }, deviceScaleFactor: 1 });
  await context.addInitScript(EVENTSOURCE_PROBE);
});

test.afterAll(async () => {
  await context?.close();
});

// ---- the tests ----------------------------------------------------------------------------

test('server starts and is ready', async ({ server }) => {
  await server.start();
  log(`sse-server on ${server.base}`);
});

test('sign-in validates the user id, and "New user" signs in with a fresh one', async ({ server }) => {
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

test('a second tab (and a reload) of the same user stays signed in', async ({ server }) => {
  b = await newTab('b', { width: 420, height: 820 }); // a narrow window
  await b.goto(`${server.base}/?user=${userId}`);
  await b.getByTestId('empty').waitFor({ timeout: 10_000 });
  await b.reload();
  await b.getByTestId('empty').waitFor({ timeout: 10_000 });
  assert.equal(await b.getByTestId('user-id').innerText(), userId);
  await waitConnection(b, 'live', 10_000);
});

test('a report created in one tab appears in the other', async () => {
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

test(`a change made with update_report_status.sh shows in both tabs within ${LIVE_BUDGET_MS} ms`, async ({
  server,
}) => {
  const t0 = Date.now();
  const r = await runUpdateScript(server.base, userId, first, 'queued');
  const tScript = Date.now() - t0;
  assert.equal(r.code, 0, `update_report_status.sh failed: ${r.stdout}${r.stderr}`);
  const t = await waitStatusEverywhere([a, b], first, 'queued', 10_000);
  log(`script took ${tScript} ms; both tabs showed "queued" ${t} ms after its 202`);
  if (t > LIVE_TARGET_MS)
    log(`WARNING: slower than the ${LIVE_TARGET_MS} ms target (server path; see the note at the top)`);
  assert.ok(t <= LIVE_BUDGET_MS, `took ${t} ms, more than ${LIVE_BUDGET_MS} ms`);
  await shot('03-queued');
});

test('clicking a transition button moves the report in both tabs', async () => {
  await row(a, first).getByTestId('move-processing').click();
  const t = await waitStatusEverywhere([a, b], first, 'processing', 10_000);
  log(`click to "processing" in both tabs: ${t} ms`);
  // the buttons follow the transition table
  assert.deepEqual(
    await row(b, first)
      .locator('button[data-testid^="move-"]')
      .evaluateAll((bs) => bs.map((x) => x.dataset.testid)),
    ['move-completed', 'move-failed'],
  );
});

test("a refused move shows the server's message next to the report", async ({ browser, server }) => {
  // A tab in another browser (a context of its own: the tabs of one browser share
  // one stream) that missed the last change: its stream gives a snapshot taken now
  // (report "processing") and then nothing, so its buttons are out of date.
  const staleSnapshot = await (await fetch(`${server.base}/v4/reports?user_id=${userId}`)).text();
  const otherBrowser = await browser.newContext({ viewport: { width: 1180, height: 760 }, deviceScaleFactor: 1 });
  const c = await otherBrowser.newPage();
  c.on('pageerror', (e) => pageErrors.push(`c-stale: ${e.message}`));
  pages.push({ name: 'c-stale', page: c });
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
  assert.ok(
    body.error && shown.includes(body.error),
    `shown: ${JSON.stringify(shown)}; server: ${JSON.stringify(body)}`,
  );
  assert.equal(await row(a, first).getByTestId('report-error').count(), 0, 'other tabs show no error');
  await shot('04-refused');
  await otherBrowser.close();
  pages = pages.filter((p) => p.page !== c);
});

test('one EventSource for both tabs of the browser, with a fixed set of listeners', async () => {
  // tab B: create a report there; tab A sees it
  await b.getByTestId('new-report').click();
  await b.waitForFunction(() => document.querySelectorAll('[data-testid="report"]').length === 2, null, {
    timeout: 5000,
  });
  second = await b
    .locator('[data-testid="report"]')
    .evaluateAll((rows, known) => rows.map((r) => r.dataset.reportId).find((id) => id !== known), first);
  await waitStatus(a, second, 'pending', 5000);
  const s = await openStreams([a, b]);
  assert.equal(s.open, 1, `open EventSources in tabs A and B: ${JSON.stringify(s)}`);
  // one per event of the contract, however many times the pages re-rendered
  assert.equal(
    s.listeners,
    STREAM_EVENTS.length,
    `listeners on the EventSource (events: ${STREAM_EVENTS.join(', ')}): ${JSON.stringify(s)}`,
  );
});

/**
 * The header's presence note (Board.tsx PresenceNote), once it counts `connections` streams.
 * In the DOM, not necessarily visible: in tab B's narrow window the header squeezes it to
 * nothing (its width may shrink to 0, and it ellipsises).
 */
async function waitPresence(list, connections, timeout) {
  await Promise.all(
    list.map((p) =>
      p
        .locator(`[role="status"][aria-label="presence"][data-connections="${connections}"]`)
        .waitFor({ state: 'attached', timeout }),
    ),
  );
}

test("the header counts the user's streams: another browser adds one, and closing it takes it away", async ({
  browser,
  server,
}) => {
  const note = a.getByRole('status', { name: 'presence' });
  await note.waitFor({ timeout: 10_000 });
  const before = Number(await note.getAttribute('data-connections'));
  assert.ok(before >= 1, `data-connections=${before}: at least this browser's stream`);
  assert.ok(Number(await note.getAttribute('data-instances')) >= 1);
  await waitPresence([b], before, 5000); // the other tab of the browser is told over the channel
  const plural = (n, one) => `${n} ${one}${n === 1 ? '' : 's'}`;

  // another device of the same user: a browser of its own, so a stream of its own
  const device = await browser.newContext({ viewport: { width: 1180, height: 760 }, deviceScaleFactor: 1 });
  try {
    const d = await device.newPage();
    d.on('pageerror', (e) => pageErrors.push(`device: ${e.message}`));
    pages.push({ name: 'device', page: d });
    await d.goto(`${server.base}/?user=${userId}`);
    await waitConnection(d, 'live', 10_000);
    const t0 = Date.now();
    await waitPresence([a, b, d], before + 1, 10_000);
    log(`presence ${before} -> ${before + 1} in every tab ${Date.now() - t0} ms after the device went live`);
    assert.ok(await d.getByRole('status', { name: 'presence' }).isVisible(), "in the device's header too");
    const instances = Number(await note.getAttribute('data-instances'));
    assert.equal(
      (await note.innerText()).trim(),
      `Open in ${plural(before + 1, 'stream')} on ${plural(instances, 'server')}`,
    );
    await shot('04b-presence');
  } finally {
    await device.close();
    pages = pages.filter((p) => p.name !== 'device');
  }
  const t0 = Date.now();
  await waitPresence([a, b], before, 10_000);
  log(`presence back to ${before} ${Date.now() - t0} ms after the device closed`);
});

test('after a server restart both tabs reconnect and show changes made after it', async ({ server }) => {
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
  assert.equal((await openStreams([a, b])).open, 1, 'still one EventSource for both tabs');
});

test('sign-out closes the stream; signing in again by pasting the id shows the same reports', async () => {
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
  // B took the stream over when A signed out; A, signed in again, shares it.
  assert.equal((await openStreams([a, b])).open, 1, 'one EventSource for both tabs');
  await shot('07-signed-in-again');
});

test('a board too large for one stream says how much of it is shown', async () => {
  // A stream's prelude fits --queue-bytes: at 4 KiB the snapshot holds about 15 reports.
  const small = new Server(await freePort(), 'small-budget', ['--queue-bytes', '4KiB']);
  await small.start();
  try {
    const owner = crypto.randomUUID();
    const TOTAL = 30;
    for (let i = 0; i < TOTAL; i++) {
      const res = await fetch(`${small.base}/v4/new/report?user_id=${owner}`, { method: 'POST' });
      assert.equal(res.status, 201, `create ${i}: HTTP ${res.status}`);
    }
    const page = await newTab('small-budget');
    await page.goto(`${small.base}/?user=${owner}`);
    const banner = page.getByTestId('truncated-banner');
    await banner.waitFor({ timeout: 15_000 });
    const text = await banner.innerText();
    const shown = await page.getByTestId('report').count();
    assert.match(text, new RegExp(`newest ${shown} of ${TOTAL} reports`), text);
    assert.ok(shown > 0 && shown < TOTAL, `${shown} rows shown`);
    await shot('08-truncated');
    await page.close();
  } finally {
    await small.stop();
  }
});

test('no uncaught errors in the pages', async () => {
  assert.deepEqual(pageErrors, []);
});
