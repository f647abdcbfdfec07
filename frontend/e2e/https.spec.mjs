// End-to-end test: the dashboard over HTTPS uses HTTP/2, so many tabs can each hold a stream.
// The real sse-server with --tls-cert/--tls-key (scripts/tls_cert.sh's self-signed
// certificate, ALPN h2 then http/1.1), eight tabs of one user in one headless Chromium
// context at https://127.0.0.1:PORT/. Each tab opens its own stream (the sharing of
// sharedStream.ts is turned off, as in tabs.spec.mjs's control: no Web Locks API), so eight
// /v4 streams are open at once; over HTTP/1.1 Chromium opens at most six connections per
// host and tabs seven and eight would wait forever (tabs.spec.mjs's control shows it). Every
// tab's document and requests went over h2, every tab's EventSource is OPEN, the server
// counts eight /v4 streams, and a report created with fetch from one tab shows in all eight.
// A control, Chromium with --disable-http2 against the same server, sees six streams open.
//
//   cd frontend && npm run build && npx playwright test https     (npm run e2e runs it too)
//
// The server is the `server` fixture (fixtures.mjs) with tls on, the environment passed
// through, so it runs with or without SSE_KAFKA_BROKERS / SSE_DYNAMODB_ENDPOINT; needs
// openssl for the certificate. The tests run in order, each on the state the previous ones
// left. E2E_HTTPS_TABS (default 8) sets the number of tabs.
// Screenshots and the server's log go to frontend/e2e/screenshots/https-*.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
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

const TABS = Number(process.env.E2E_HTTPS_TABS ?? 8);
const LIVE_MS = 10_000;

test.describe.configure({ mode: 'serial' });
test.use({ serverOptions: { name: 'https-server', tls: true } });

/** The protocols a page used: its document's, and each resource's (name, nextHopProtocol). */
const protocolsOf = (page) =>
  page.evaluate(() => ({
    document: performance.getEntriesByType('navigation')[0]?.nextHopProtocol,
    resources: performance
      .getEntriesByType('resource')
      .map((e) => ({ name: new URL(e.name).pathname, type: e.initiatorType, protocol: e.nextHopProtocol })),
  }));

// ---- the state the tests share, in order ------------------------------------------------

let pages = [];
const pageErrors = [];
const userId = randomUUID();
let context;

async function shot(name) {
  await Promise.all(
    pages.map((p, i) => p.screenshot({ path: path.join(SHOTS, `https-${name}-${i}.png`) }).catch(() => {})),
  );
}

screenshotsOnFailure((n) => shot(`failed-${n}`));

test.beforeAll(async ({ browser }) => {
  context = await browser.newContext({ viewport: { width: 900, height: 600 }, ignoreHTTPSErrors: true });
  await context.addInitScript(EVENTSOURCE_PROBE);
  // No Web Locks API: sharedStream.ts falls back to one EventSource per tab.
  await context.addInitScript(NO_WEB_LOCKS);
});

test.afterAll(async () => {
  await context?.close();
});

// ---- the tests ----------------------------------------------------------------------------

test('server starts over HTTPS and offers h2 by ALPN', async ({ server }) => {
  assert.match(server.base, /^https:\/\//);
  await server.start();
  log(`sse-server on ${server.base}; ${TABS} tabs of user ${userId}`);
  // Node's own look: the TLS handshake picks h2.
  const ca = fs.readFileSync(server.args[server.args.indexOf('--tls-cert') + 1]);
  const session = http2.connect(server.base, { ca });
  try {
    await new Promise((resolve, reject) => {
      session.once('connect', resolve);
      session.once('error', reject);
    });
    assert.equal(session.alpnProtocol, 'h2', 'ALPN protocol');
  } finally {
    session.close();
  }
});

test(`${TABS} tabs of one user, each with its own stream, all go live over https`, async ({ server }) => {
  const t0 = Date.now();
  for (let i = 0; i < TABS; i++) {
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`tab ${i}: ${e.message}`));
    pages.push(page);
    await page.goto(`${server.base}/?user=${userId}`);
    log(`tab ${i} loaded at ${Date.now() - t0} ms`);
  }
  await Promise.all(pages.map((p) => waitConnection(p, 'live', LIVE_MS)));
  log(`${TABS} tabs live ${Date.now() - t0} ms after the first opened`);
});

test(`every tab's document and requests went over h2`, async () => {
  let resources = 0;
  for (const [i, p] of pages.entries()) {
    const seen = await protocolsOf(p);
    assert.equal(seen.document, 'h2', `tab ${i}: the document's nextHopProtocol`);
    // A resource served from the memory cache has an empty nextHopProtocol: only the ones
    // fetched from the network say which protocol they used.
    const fetched = seen.resources.filter((r) => r.protocol !== '');
    for (const r of fetched) assert.equal(r.protocol, 'h2', `tab ${i}: ${r.type} ${r.name}`);
    resources += fetched.length;
    if (i === 0 || i === pages.length - 1) log(`tab ${i}: ${JSON.stringify(seen)}`);
  }
  assert.ok(resources > 0, 'some resource entries tell their protocol');
  log(`${TABS} documents and ${resources} resource entries, all h2`);
});

test(`every tab's EventSource is OPEN, and the server counts ${TABS} /v4 streams`, async ({ server }) => {
  for (const [i, p] of pages.entries()) {
    const s = await esStats(p);
    assert.equal(s.open, 1, `tab ${i}: EventSources open: ${JSON.stringify(s)}`);
    const states = await p.evaluate(() => [...window.__esProbe.live].map((es) => es.readyState));
    assert.deepEqual(states, [1], `tab ${i}: readyState (1 = OPEN)`);
    // The stream's resource entry appears only when it ends; if it did (a reconnection),
    // it went over h2 too (checked above).
    assert.match(s.urls.at(-1), /\/v4\/sse/, `tab ${i}: stream url`);
  }
  await eventually(
    `the server to count ${TABS} /v4 streams`,
    async () => (await server.metric(V4_STREAMS)) === TABS || server.metric(V4_STREAMS),
  );
  assert.ok(TABS > BROWSER_CONNECTIONS_PER_HOST, `more streams than HTTP/1.1's ${BROWSER_CONNECTIONS_PER_HOST}`);
});

test(`a report created with fetch over https in one tab shows live in all ${TABS}`, async ({ server }) => {
  const t0 = Date.now();
  const created = await pages[0].evaluate(async (user) => {
    const route = `/v4/new/report?user_id=${user}`;
    const res = await fetch(route, { method: 'POST' });
    const body = await res.json();
    const entry = performance
      .getEntriesByType('resource')
      .findLast((e) => e.name.endsWith(route) && e.initiatorType === 'fetch');
    return { status: res.status, body, protocol: entry?.nextHopProtocol };
  }, userId);
  assert.equal(created.status, 201, `POST /v4/new/report: ${JSON.stringify(created)}`);
  assert.equal(created.protocol, 'h2', "the POST's nextHopProtocol");
  const id = created.body.reportId;
  assert.ok(id, `report id in ${JSON.stringify(created.body)}`);
  const t = await waitStatusEverywhere(pages, id, 'pending', LIVE_MS);
  log(`report ${id} in all ${TABS} tabs ${Date.now() - t0} ms after the POST (${t} ms after its answer)`);

  // And a change made from outside the browser (Node, over HTTPS) reaches every stream too.
  const res = await server.fetch(`${server.base}/v4/report?user_id=${userId}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, status: 'queued' }),
  });
  assert.ok(res.status < 300, `PUT /v4/report: HTTP ${res.status} ${await res.text()}`);
  const tq = await waitStatusEverywhere(pages, id, 'queued', LIVE_MS);
  log(`"queued" in all ${TABS} tabs ${tq} ms after the PUT's answer`);
  // Still all live, each on its own stream.
  await Promise.all(pages.map((p) => waitConnection(p, 'live', LIVE_MS)));
  assert.equal(await server.metric(V4_STREAMS), TABS, '/v4 streams on the server');
  await shot('live');
});

test('no uncaught errors in the pages', async () => {
  assert.deepEqual(pageErrors, []);
});

test(`control: the same server over HTTP/1.1 (--disable-http2), only ${BROWSER_CONNECTIONS_PER_HOST} of ${TABS} streams open`, async ({
  playwright,
  launchOptions,
  server,
}) => {
  // The tabs of the h2 tests first go away, and the server with them.
  await context.close();
  pages = [];
  await eventually('the server to see the tabs gone', async () => (await server.metric(V4_STREAMS)) === 0);

  // A second Chromium, launched like the configuration's (playwright.config.mjs), without HTTP/2.
  const h1 = await playwright.chromium.launch({
    ...launchOptions,
    args: [...(launchOptions.args ?? []), '--disable-http2'],
  });
  try {
    const control = await h1.newContext({ viewport: { width: 900, height: 600 }, ignoreHTTPSErrors: true });
    await control.addInitScript(NO_WEB_LOCKS);
    await openTabsPastTheLimit(control, `${server.base}/?user=${userId}`, TABS, pages, LIVE_MS);
    const protocol = await pages[0].evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
    assert.equal(protocol, 'http/1.1', "the control's document protocol");
    // Give the others every chance: they stay stuck.
    await sleep(3000);
    const streams = await server.metric(V4_STREAMS);
    log(`control over http/1.1: ${streams} of ${TABS} streams on the server`);
    assert.equal(streams, BROWSER_CONNECTIONS_PER_HOST, 'streams on the server');
  } finally {
    pages = [];
    await Promise.race([h1.close().catch(() => {}), timeout(15_000)]);
  }
});
