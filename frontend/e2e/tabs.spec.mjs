// End-to-end test: every tab live. Eight tabs of one user in one headless Chromium, over
// HTTP/1.1, all show a change made through the API, while the server sees one /v4 stream
// (the tabs share it: src/sharedStream.ts); the tab that holds the stream is closed and
// the seven others stay live, missing nothing. A control shows why: with the sharing
// turned off (no Web Locks API), each tab opens its own stream and tabs seven and eight
// never go live, because Chromium opens at most six HTTP/1.1 connections per host.
//
//   cd frontend && npm run build && npx playwright test tabs     (npm run e2e runs it too)
//
// The server is the `server` fixture (fixtures.mjs), the environment passed through, so it
// runs with or without SSE_KAFKA_BROKERS / SSE_DYNAMODB_ENDPOINT. The tests run in order,
// each on the state the previous ones left. E2E_TABS (default 8) sets the number of tabs.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { screenshotsOnFailure, test } from './fixtures.mjs';
import {
  BROWSER_CONNECTIONS_PER_HOST,
  EVENTSOURCE_PROBE,
  NO_WEB_LOCKS,
  V4_STREAMS,
  esStats,
  openTabsPastTheLimit,
  waitConnection,
  waitStatusEverywhere,
} from './page.mjs';
import { SHOTS } from './server.mjs';
import { eventually, log, sleep, timeout } from './util.mjs';

const TABS = Number(process.env.E2E_TABS ?? 8);
const LIVE_MS = 10_000;

test.describe.configure({ mode: 'serial' });
test.use({ serverOptions: { name: 'tabs-server' } });

async function api(server, method, route, body) {
  const res = await fetch(`${server.base}${route}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.status < 300, `${method} ${route}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The EventSources open in these pages, all together, and the index of the page holding one. */
async function streamsIn(list) {
  let open = 0;
  let holder = -1;
  for (const [i, p] of list.entries()) {
    const s = await esStats(p);
    open += s.open;
    if (s.open > 0) holder = i;
  }
  return { open, holder };
}

// ---- the state the tests share, in order ------------------------------------------------

let pages = [];
const pageErrors = [];
const userId = randomUUID();
let context;
let report;

screenshotsOnFailure(async (n) => {
  await Promise.all(
    pages.map((p, i) => p.screenshot({ path: path.join(SHOTS, `tabs-failed-${n}-${i}.png`) }).catch(() => {})),
  );
});

test.beforeAll(async ({ browser }) => {
  context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  await context.addInitScript(EVENTSOURCE_PROBE);
});

test.afterAll(async () => {
  await context?.close();
});

// ---- the tests ----------------------------------------------------------------------------

test('server starts and is ready', async ({ server }) => {
  await server.start();
  log(`sse-server on ${server.base}; ${TABS} tabs of user ${userId}`);
  report = await api(server, 'POST', `/v4/new/report?user_id=${userId}`);
});

test(`${TABS} tabs of one user all go live, over one stream`, async ({ server }) => {
  for (let i = 0; i < TABS; i++) {
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`tab ${i}: ${e.message}`));
    pages.push(page);
    await page.goto(`${server.base}/?user=${userId}`);
  }
  await Promise.all(pages.map((p) => waitConnection(p, 'live', LIVE_MS)));
  await waitStatusEverywhere(pages, report.reportId, 'pending', LIVE_MS);
  const { open } = await streamsIn(pages);
  assert.equal(open, 1, `EventSources open in the ${TABS} tabs`);
  await eventually(
    'the server to count one /v4 stream',
    async () => (await server.metric(V4_STREAMS)) === 1 || (await server.metric(V4_STREAMS)),
  );
});

test(`a change made through the API shows in all ${TABS} tabs`, async ({ server }) => {
  const t0 = Date.now();
  await api(server, 'PUT', `/v4/report?user_id=${userId}`, { id: report.reportId, status: 'queued' });
  const t = await waitStatusEverywhere(pages, report.reportId, 'queued', LIVE_MS);
  log(`"queued" in all ${TABS} tabs ${Date.now() - t0} ms after the PUT (${t} ms after its 202)`);
});

test(`the last tab's own requests go through (it is not stuck behind ${BROWSER_CONNECTIONS_PER_HOST} streams)`, async () => {
  const last = pages.at(-1);
  const before = await last.getByTestId('report').count();
  await last.getByTestId('new-report').click();
  await Promise.all(
    pages.map((p) =>
      p.waitForFunction((n) => document.querySelectorAll('[data-testid="report"]').length === n, before + 1, {
        timeout: LIVE_MS,
      }),
    ),
  );
});

test('the tab holding the stream closes: the others take over and stay live, missing nothing', async ({ server }) => {
  const { holder } = await streamsIn(pages);
  assert.ok(holder >= 0, 'a tab holds the stream');
  const closing = pages[holder];
  pages = pages.filter((p) => p !== closing);
  await closing.close();
  // At once, while the next tab is still taking over: this change must not be lost.
  await api(server, 'PUT', `/v4/report?user_id=${userId}`, { id: report.reportId, status: 'processing' });
  const t = await waitStatusEverywhere(pages, report.reportId, 'processing', LIVE_MS);
  log(`holder (tab ${holder}) closed; "processing" in the other ${pages.length} tabs after ${t} ms`);
  await eventually(
    'one EventSource in the remaining tabs',
    async () => (await streamsIn(pages)).open === 1 || streamsIn(pages),
  );
  // The tab that took over resumed from the last event id it had seen.
  const taker = pages[(await streamsIn(pages)).holder];
  const url = new URL((await esStats(taker)).urls.at(-1), server.base);
  assert.ok(url.searchParams.get('lastEventId'), `the new holder's stream resumes: ${url}`);
  await eventually(
    'the server to count one /v4 stream again',
    async () => (await server.metric(V4_STREAMS)) === 1 || (await server.metric(V4_STREAMS)),
  );
  await api(server, 'PUT', `/v4/report?user_id=${userId}`, { id: report.reportId, status: 'completed' });
  await waitStatusEverywhere(pages, report.reportId, 'completed', LIVE_MS);
  await Promise.all(pages.map((p) => waitConnection(p, 'live', LIVE_MS)));
});

test('no uncaught errors in the pages', async () => {
  assert.deepEqual(pageErrors, []);
});

test(`control: without the sharing, only ${BROWSER_CONNECTIONS_PER_HOST} of ${TABS} tabs go live`, async ({
  browser,
  server,
}) => {
  // The shared tabs first go away, and the server with them.
  await context.close();
  pages = [];
  await eventually('the server to see the tabs gone', async () => (await server.metric(V4_STREAMS)) === 0);

  const t0 = Date.now();
  const control = await browser.newContext({ viewport: { width: 900, height: 600 } });
  // No Web Locks API: sharedStream.ts falls back to one EventSource per tab.
  await control.addInitScript(NO_WEB_LOCKS);
  try {
    await openTabsPastTheLimit(control, `${server.base}/?user=${userId}`, TABS, pages, LIVE_MS);
    log(`control: ${TABS} tabs opened after ${Date.now() - t0} ms`);
    // Give the others every chance: they stay stuck (they wait for a free connection).
    await sleep(3000);
    const streams = await server.metric(V4_STREAMS);
    // A tab whose page never loaded cannot be asked anything: a question to it
    // waits for its navigation. Two seconds without an answer count as "not live".
    let live = 0;
    for (const p of pages) {
      const answer = p
        .locator('[data-testid="connection"][data-state="live"]')
        .count()
        .catch(() => 0);
      live += await Promise.race([answer, timeout(2000, 0)]);
    }
    log(`control: ${live} of ${TABS} tabs live, ${streams} streams on the server`);
    assert.equal(streams, BROWSER_CONNECTIONS_PER_HOST, 'streams on the server');
    assert.equal(live, BROWSER_CONNECTIONS_PER_HOST, 'tabs live');
  } finally {
    pages = [];
    await Promise.race([control.close().catch(() => {}), timeout(15_000)]);
  }
});
