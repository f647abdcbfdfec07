// End-to-end test of the stream inspector (/inspect) against the real sse-server, in
// headless Chromium: the board's "Inspector" link and the way back; on each step, the raw
// frames of a stream (v1: `retry:`, `hi!` with its id, a keep-alive comment), what posts
// make (v2, v3: messages and broadcasts; v4: a new report, a move), and resume: a stream
// cut, events missed, "Reconnect with last id" replays exactly those (v4: with no
// snapshot), an unknown id gets a `reset` (v4: then a snapshot); the `presence` frame, a
// 409 naming the allowed moves, a blank username's 400, and with authorization on (a second
// server, --auth-secret) a 401 before signing in through the session panel and a stream
// opened with the cookie session after.
//
//   cd frontend && npm run build && npx playwright test inspect     (npm run e2e runs it too)
//
// The server is the `server` fixture (fixtures.mjs), the environment passed through, so it
// runs with or without SSE_KAFKA_BROKERS / SSE_DYNAMODB_ENDPOINT; --v1-interval 2s shows a
// second `hi!` quickly, and --drain-grace 0s lets it stop at once. The tests run in order,
// each on the state the previous ones left.
// "Replayed" is marked by timing (frames within 250 ms of a resumed connection's response),
// so nothing is posted right after a reconnect.
//
// Screenshots (one per step) go to e2e/screenshots/ (gitignored); with E2E_GUIDE_SHOTS=1
// they go to docs/inspect-vN.png instead, the pictures the guide pages show:
//
//   E2E_GUIDE_SHOTS=1 npx playwright test inspect

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { screenshotsOnFailure, test } from './fixtures.mjs';
import { waitConnection } from './page.mjs';
import { BIN, ROOT, SHOTS, Server, freePort } from './server.mjs';
import { eventually, log, sleep } from './util.mjs';

const GUIDE_SHOTS = process.env.E2E_GUIDE_SHOTS === '1';
const SHOT_DIR = GUIDE_SHOTS ? path.join(ROOT, 'docs') : SHOTS;
// Small enough for the guide's pictures, wide enough for the inspector's three panels.
const VIEWPORT = { width: 1100, height: 800 };
// The server stops at once (no 10 s of draining: no proxy to leave here).
const QUICK_STOP = ['--drain-grace', '0s'];
const LIVE_MS = 10_000;
// connections.ts REPLAY_WINDOW_MS: a resumed connection's frames within it count as replayed.
const REPLAY_WINDOW_MS = 250;
// useStreams.ts UNKNOWN_ID: what "Reconnect with an unknown id" sends.
const UNKNOWN_ID = 'not-an-id-of-this-server';

test.describe.configure({ mode: 'serial' });
test.use({ serverOptions: { name: 'inspect-server', args: ['--v1-interval', '2s', ...QUICK_STOP] } });

// ---- reading the page -------------------------------------------------------------------

const button = (p, name) => p.getByRole('button', { name, exact: true });

/** A connection's section, by its number on the page. */
const connection = (p, n) => p.locator(`[data-testid="connection"][data-n="${n}"]`);

/** A connection's frames of one kind (describeFrame.ts frameKind: an event's type, retry, comment, id). */
const frames = (c, kind) => c.locator(`[data-testid="frame"][data-kind="${kind}"]`);

const raw = async (frame) => (await frame.locator('.frame-raw').innerText()).trim();
const meaning = async (frame) => (await frame.locator('.frame-meaning').innerText()).trim();
const fact = async (c, testid) => (await c.getByTestId(testid).innerText()).trim();

async function kindsOf(c) {
  return c.getByTestId('frame').evaluateAll((fs) => fs.map((f) => f.dataset.kind));
}

/** Clicks `name` (Open stream, a reconnect): the new connection's section, once it is open. */
async function connect(p, name) {
  const before = await p.getByTestId('connection').count();
  await button(p, name).click();
  await eventually('a new connection', async () => (await p.getByTestId('connection').count()) === before + 1);
  const n = await p.getByTestId('connection').first().getAttribute('data-n');
  return connection(p, n);
}

async function waitState(c, state, timeout = LIVE_MS) {
  await c.locator(`[data-testid="connection-state"][data-state="${state}"]`).waitFor({ timeout });
}

/** Clicks `name` (a post, a move, sign-in): the request's answer as the answers list shows it. */
async function answerOf(p, name) {
  const before = await p.getByTestId('answer').count();
  await button(p, name).click();
  await eventually('the answer', async () => (await p.getByTestId('answer').count()) > before);
  const a = p.getByTestId('answer').first();
  const body = a.locator('.answer-body');
  return {
    status: Number(await a.getAttribute('data-status')),
    request: (await a.locator('.answer-request').innerText()).trim(),
    body: (await body.count()) ? await body.innerText() : '',
  };
}

async function post(p, name, text) {
  await p.getByTestId('inspect-message').fill(text);
  return answerOf(p, name);
}

async function cut(p, c) {
  await button(p, 'Cut').click();
  await waitState(c, 'cut');
}

async function chooseStep(p, step, user) {
  await p.getByTestId('inspect-step').selectOption(step);
  await p.getByTestId(step === 'v4' ? 'inspect-user-id' : 'inspect-username').fill(user);
}

/**
 * Waits until the server would replay an event of `type` to a stream of `route` resuming
 * from `lastEventId`: read over a stream of its own, closed at once. (With Kafka, a move's
 * 202 comes before the event reaches the history; a reconnect before that would get it
 * live, later than a replay.)
 */
async function waitInHistory(base, route, lastEventId, type) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), LIVE_MS);
  try {
    const res = await fetch(`${base}${route}`, {
      headers: { accept: 'text/event-stream', 'last-event-id': lastEventId },
      signal: controller.signal,
    });
    assert.equal(res.status, 200, `${route}: HTTP ${res.status}`);
    const decoder = new TextDecoder();
    let text = '';
    for await (const chunk of res.body) {
      text += decoder.decode(chunk, { stream: true });
      if (text.includes(`event: ${type}\n`)) return;
    }
  } catch (e) {
    if (e.name === 'AbortError') assert.fail(`no ${type} on ${route} after ${lastEventId} within ${LIVE_MS} ms`);
    throw e;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

// ---- the state the tests share, in order ------------------------------------------------

const pageErrors = [];
const stamp = randomBytes(3).toString('hex');
let context;
let page;
let userId; // the board's user, whose /v4 stream the inspector opens

/** The viewport, scrolled to the log (the newest connection and the answers), as inspect-<step>.png. */
async function shot(step) {
  const file = path.join(SHOT_DIR, `inspect-${step}.png`);
  await page.locator('.inspect-main').evaluate((el) => {
    const header = document.querySelector('.topbar')?.getBoundingClientRect().height ?? 0; // sticky
    window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - header - 16);
  });
  await page.screenshot({ path: file });
  await page.evaluate(() => window.scrollTo(0, 0));
  log(`screenshot ${path.relative(ROOT, file)}`);
}

screenshotsOnFailure(async (n) => {
  await page?.screenshot({ path: path.join(SHOTS, `inspect-failed-${n}.png`), fullPage: true }).catch(() => {});
});

test.beforeAll(async ({ browser }) => {
  context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

test.afterAll(async () => {
  await context?.close();
});

// ---- the tests ----------------------------------------------------------------------------

test('server starts and is ready', async ({ server }) => {
  await server.start();
  log(`sse-server on ${server.base}`);
});

test('the board links to the inspector, opened on its user, and the inspector links back', async ({ server }) => {
  await page.goto(`${server.base}/`);
  await page.getByTestId('signin-new').click();
  await waitConnection(page, 'live', LIVE_MS);
  userId = new URL(page.url()).searchParams.get('user');
  assert.ok(userId, 'signed in');

  const link = page.getByTestId('inspector-link');
  assert.equal(await link.innerText(), 'Inspector');
  await link.click();
  await page.waitForURL((u) => u.pathname === '/inspect');
  const q = new URL(page.url()).searchParams;
  assert.deepEqual([q.get('step'), q.get('user')], ['v4', userId]);
  await page.getByRole('heading', { level: 1, name: 'Stream inspector' }).waitFor({ timeout: LIVE_MS });
  assert.equal(await page.title(), 'Stream inspector');
  assert.equal(await page.getByTestId('inspect-step').inputValue(), 'v4');
  assert.equal(await page.getByTestId('inspect-user-id').inputValue(), userId, 'User id prefilled');
  await page.getByTestId('inspect-session').filter({ hasText: 'Authorization is off' }).waitFor();
  assert.equal(await page.getByTestId('connection').count(), 0, 'nothing opened by itself');

  const back = page.getByTestId('back-to-board');
  assert.equal(await back.innerText(), 'Back to the board');
  await back.click();
  await page.waitForURL((u) => u.pathname === '/' && u.searchParams.get('user') === userId);
  await waitConnection(page, 'live', LIVE_MS);
  assert.equal(await page.getByTestId('user-id').innerText(), userId);
});

test('v1: the retry line, hi! with its id, and a keep-alive comment, as they came', async ({ server }) => {
  await page.goto(`${server.base}/inspect?step=v1&username=e2e-v1-${stamp}`);
  assert.equal(await page.getByTestId('inspect-username').inputValue(), `e2e-v1-${stamp}`);
  const c = await connect(page, 'Open stream');
  await waitState(c, 'open');
  assert.equal(await fact(c, 'connection-url'), `GET /v1/sse?username=e2e-v1-${stamp}`);
  const response = await fact(c, 'connection-response');
  assert.match(response, /^200 OK/);
  assert.match(response, /content-type: text\/event-stream/);
  assert.match(response, /cache-control: no-cache/);
  assert.match(response, /x-accel-buffering: no/);
  assert.equal(await fact(c, 'connection-last-event-id'), 'none');

  // docs/openapi.json: `retry: <--retry>` first, `data: hi!` at once with an id counting the
  // connection's events, again every --v1-interval (2 s here), a comment every 3 s.
  await frames(c, 'message').nth(1).waitFor({ timeout: LIVE_MS });
  await frames(c, 'comment').first().waitFor({ timeout: LIVE_MS });
  const kinds = await kindsOf(c);
  assert.equal(kinds[0], 'retry', `the first frame: ${kinds}`);
  assert.equal(await raw(frames(c, 'retry').first()), 'retry: 2000');
  assert.equal(await meaning(frames(c, 'retry').first()), 'reconnect delay set to 2000 ms');
  assert.equal(await raw(frames(c, 'message').first()), 'id: 1\ndata: hi!');
  assert.equal(await meaning(frames(c, 'message').first()), 'message');
  assert.equal(await raw(frames(c, 'message').nth(1)), 'id: 2\ndata: hi!');
  const comment = frames(c, 'comment').first();
  assert.equal(await raw(comment), ': keep-alive-text');
  assert.match(await meaning(comment), /keeps the connection alive/);
  const lastId = Number(await page.getByTestId('last-event-id').innerText());
  assert.ok(lastId >= 2, `the last id follows the stream: ${lastId}`);
  // /v1 keeps nothing to resume: no reset or replay facts
  assert.equal(await c.getByTestId('connection-reset').count(), 0);
  assert.equal(await c.getByTestId('connection-presence').count(), 0, '/v1 sends no presence');
  await shot('v1');
  await cut(page, c);
  assert.match(await fact(c, 'connection-end'), /^cut here at \+\d+ ms$/);
});

test('v2: a message arrives; cut, two missed, and "Reconnect with last id" replays exactly those', async () => {
  const user = `e2e-v2-${stamp}`;
  await chooseStep(page, 'v2', user);
  const c1 = await connect(page, 'Open stream');
  await waitState(c1, 'open');
  assert.equal(await fact(c1, 'connection-url'), `GET /v2/sse?username=${user}`);
  // a fresh stream: `retry:`, then an `id:` alone (where it starts), and its presence
  await frames(c1, 'id').first().waitFor({ timeout: LIVE_MS });
  const presence = frames(c1, 'presence').first();
  await presence.waitFor({ timeout: LIVE_MS });
  assert.match(await meaning(presence), /^\d+ connections? on \d+ instances?$/);
  assert.equal(await meaning(presence), '1 connection on 1 instance', 'this one stream of the user, in-process');
  assert.equal(await fact(c1, 'connection-presence'), '1 connection on 1 instance');
  assert.doesNotMatch(await raw(presence), /^id:/m, 'presence carries no id');

  const howdy = await post(page, 'Post message', 'Howdy');
  assert.equal(howdy.status, 202, howdy.body);
  assert.equal(howdy.request, `POST /v2/message?username=${user}`);
  const { delivered, id: howdyId } = JSON.parse(howdy.body);
  assert.equal(delivered, 1);
  const shown = frames(c1, 'message').filter({ hasText: 'data: Howdy' });
  await shown.waitFor({ timeout: LIVE_MS });
  assert.equal(await raw(shown), `id: ${howdyId}\ndata: Howdy`);
  await eventually('the last id', async () => (await page.getByTestId('last-event-id').innerText()) === howdyId);

  await cut(page, c1);
  const missed = [];
  for (const text of ['missed 1', 'missed 2']) {
    const a = await post(page, 'Post message', text);
    assert.equal(a.status, 202, a.body);
    const body = JSON.parse(a.body);
    assert.equal(body.delivered, 0, 'no stream open');
    missed.push({ text, id: body.id });
  }
  assert.equal(await page.getByTestId('last-event-id').innerText(), howdyId, 'the cut stream saw none of them');

  const c2 = await connect(page, 'Reconnect with last id');
  await waitState(c2, 'open');
  assert.equal(await fact(c2, 'connection-last-event-id'), howdyId, 'sent Last-Event-ID: the last id seen');
  const replayed = c2.locator('[data-testid="frame"][data-replayed="true"]');
  await eventually('two replayed frames', async () => (await replayed.count()) === 2 || replayed.count());
  for (const [i, m] of missed.entries()) {
    assert.equal(await raw(replayed.nth(i)), `id: ${m.id}\ndata: ${m.text}`);
    assert.equal(await replayed.nth(i).locator('.frame-tag').innerText(), 'replayed');
  }
  assert.equal(await fact(c2, 'connection-replayed'), '2 events');
  assert.equal(await fact(c2, 'connection-reset'), 'none');
  await frames(c2, 'presence').first().waitFor({ timeout: LIVE_MS });
  assert.equal(await replayed.count(), 2, 'presence is never replayed');
  await eventually('the last id', async () => (await page.getByTestId('last-event-id').innerText()) === missed[1].id);
  await sleep(REPLAY_WINDOW_MS);
  await shot('v2');
});

test('v2: "Reconnect with an unknown id" gets a reset with reason unknown_id, and nothing replayed', async () => {
  const c2 = page.getByTestId('connection').first();
  await cut(page, c2);
  const c3 = await connect(page, 'Reconnect with an unknown id');
  await waitState(c3, 'open');
  assert.equal(await fact(c3, 'connection-last-event-id'), UNKNOWN_ID);
  const reset = frames(c3, 'reset').first();
  await reset.waitFor({ timeout: LIVE_MS });
  assert.match(await raw(reset), /^event: reset$/m);
  assert.deepEqual(JSON.parse((await raw(reset)).match(/^data: (.*)$/m)[1]), {
    lastEventId: UNKNOWN_ID,
    reason: 'unknown_id',
  });
  assert.match(await meaning(reset), /^reset: unknown_id \(the id is not one of this server\)/);
  assert.equal(await fact(c3, 'connection-reset'), `unknown_id (lastEventId ${UNKNOWN_ID})`);
  await frames(c3, 'presence').first().waitFor({ timeout: LIVE_MS });
  assert.equal(await c3.locator('[data-testid="frame"][data-replayed="true"]').count(), 0);
  assert.equal(await fact(c3, 'connection-replayed'), '0 events');
  await cut(page, c3);
});

test('v3: a message and a broadcast come back through the bus', async () => {
  const user = `e2e-v3-${stamp}`;
  await chooseStep(page, 'v3', user);
  const c = await connect(page, 'Open stream');
  await waitState(c, 'open');
  assert.equal(await fact(c, 'connection-url'), `GET /v3/sse?username=${user}`);
  await frames(c, 'id').first().waitFor({ timeout: LIVE_MS });
  await frames(c, 'presence').first().waitFor({ timeout: LIVE_MS });
  assert.match(await fact(c, 'connection-presence'), /^1 connection on \d+ instances?$/);

  const message = await post(page, 'Post message', 'via the bus');
  assert.equal(message.status, 202, message.body);
  assert.equal(message.request, `POST /v3/message?username=${user}`);
  await frames(c, 'message').filter({ hasText: 'data: via the bus' }).waitFor({ timeout: LIVE_MS });
  const broadcast = await post(page, 'Post broadcast', 'to every /v3 stream');
  assert.equal(broadcast.status, 202, broadcast.body);
  assert.equal(broadcast.request, 'POST /v3/broadcast');
  await frames(c, 'message').filter({ hasText: 'data: to every /v3 stream' }).waitFor({ timeout: LIVE_MS });
  const texts = (await frames(c, 'message').locator('.frame-raw').allInnerTexts()).map((t) => t.trim());
  assert.equal(texts.length, 2, texts.join('\n\n'));
  assert.match(texts[0], /^id: \S+\ndata: via the bus$/);
  assert.match(texts[1], /^id: \S+\ndata: to every \/v3 stream$/);
  await shot('v3');
  await cut(page, c);
});

let reportId;

test('v4: the snapshot, a new report; a move made while cut is replayed on reconnect, with no snapshot', async ({
  server,
}) => {
  await chooseStep(page, 'v4', userId);
  const c1 = await connect(page, 'Open stream');
  await waitState(c1, 'open');
  assert.equal(await fact(c1, 'connection-url'), `GET /v4/sse?user_id=${userId}`);
  const snapshot = frames(c1, 'snapshot').first();
  await snapshot.waitFor({ timeout: LIVE_MS });
  assert.equal(await meaning(snapshot), 'snapshot of 0 reports');
  assert.equal(await fact(c1, 'connection-snapshot'), '0 reports');

  const created = await answerOf(page, 'Create report');
  assert.equal(created.status, 201, created.body);
  assert.equal(created.request, `POST /v4/new/report?user_id=${userId}`);
  reportId = JSON.parse(created.body).reportId;
  assert.equal(await page.getByTestId('inspect-report-id').inputValue(), reportId, 'the move field takes it');
  assert.equal(await page.getByTestId('inspect-status').inputValue(), 'queued', 'the next status');
  const shown = frames(c1, 'new_report').first();
  await shown.waitFor({ timeout: LIVE_MS });
  assert.equal(await meaning(shown), `new report ${reportId} (pending)`);
  await frames(c1, 'presence').first().waitFor({ timeout: LIVE_MS });
  const lastId = await page.getByTestId('last-event-id').innerText();
  assert.match(await raw(shown), new RegExp(`^id: ${lastId.replace(/\./g, '\\.')}$`, 'm'));

  await cut(page, c1);
  const moved = await answerOf(page, 'Move report');
  assert.equal(moved.status, 202, moved.body);
  assert.equal(moved.request, `PUT /v4/report?user_id=${userId}`);
  const answer = JSON.parse(moved.body);
  assert.deepEqual([answer.id, answer.from, answer.status], [reportId, 'pending', 'queued']);
  const first = page.getByTestId('answer').first();
  assert.equal(await first.getAttribute('data-status'), '202');
  assert.match(await first.locator('.answer-status').innerText(), /^202/);
  assert.equal(await page.getByTestId('inspect-status').inputValue(), 'processing', 'steps to the next move');
  await waitInHistory(server.base, `/v4/sse?user_id=${userId}`, lastId, 'report_status_update');

  const c2 = await connect(page, 'Reconnect with last id');
  await waitState(c2, 'open');
  assert.equal(await fact(c2, 'connection-last-event-id'), lastId);
  const update = frames(c2, 'report_status_update').first();
  await update.waitFor({ timeout: LIVE_MS });
  assert.equal(await update.getAttribute('data-replayed'), 'true');
  assert.equal(await meaning(update), `report ${reportId} is now queued`);
  assert.equal(await fact(c2, 'connection-replayed'), '1 event');
  assert.equal(await fact(c2, 'connection-reset'), 'none');
  assert.equal(await fact(c2, 'connection-snapshot'), 'none: resumed exactly, only the missed events come');
  await frames(c2, 'presence').first().waitFor({ timeout: LIVE_MS });
  assert.equal(await frames(c2, 'snapshot').count(), 0, 'no snapshot on an exact resume');
  await sleep(REPLAY_WINDOW_MS);
  await shot('v4');
});

test('v4: an unknown id gets a reset, then a snapshot of 1 report; an invalid move is a 409 naming the allowed ones', async () => {
  const c2 = page.getByTestId('connection').first();
  await cut(page, c2);
  const c3 = await connect(page, 'Reconnect with an unknown id');
  await waitState(c3, 'open');
  assert.equal(await fact(c3, 'connection-last-event-id'), UNKNOWN_ID);
  const snapshot = frames(c3, 'snapshot').first();
  await snapshot.waitFor({ timeout: LIVE_MS });
  const kinds = (await kindsOf(c3)).filter((k) => k === 'reset' || k === 'snapshot');
  assert.deepEqual(kinds, ['reset', 'snapshot'], 'the reset, then the snapshot');
  assert.match(await meaning(frames(c3, 'reset').first()), /^reset: unknown_id/);
  assert.equal(await fact(c3, 'connection-reset'), `unknown_id (lastEventId ${UNKNOWN_ID})`);
  assert.equal(await meaning(snapshot), 'snapshot of 1 report');
  assert.equal(await fact(c3, 'connection-snapshot'), '1 report');
  assert.match(await raw(snapshot), new RegExp(`"reportId":"${reportId}","reportStatus":"queued"`));
  assert.equal(await c3.locator('[data-testid="frame"][data-replayed="true"]').count(), 0);

  // queued -> completed is not a transition
  await page.getByTestId('inspect-status').selectOption('completed');
  const refused = await answerOf(page, 'Move report');
  assert.equal(refused.status, 409, refused.body);
  const body = JSON.parse(refused.body);
  assert.deepEqual(body.allowed, ['processing', 'canceled']);
  assert.equal(body.current, 'queued');
  assert.match(refused.body, /"allowed": \[\n\s+"processing",\n\s+"canceled"\n\s+\]/, 'shown pretty-printed');
  assert.match(await page.getByTestId('answer').first().locator('.answer-status').innerText(), /^409/);
  await sleep(500);
  assert.equal(await frames(c3, 'report_status_rejected').count(), 0, 'a refused move makes no event');
  assert.equal(await frames(c3, 'report_status_update').count(), 0);
  await cut(page, c3);
});

test('a blank username is refused with a 400, its JSON error shown', async ({ server }) => {
  await chooseStep(page, 'v2', '');
  const c = await connect(page, 'Open stream');
  await waitState(c, 'refused');
  assert.equal(await fact(c, 'connection-url'), 'GET /v2/sse');
  assert.match(await fact(c, 'connection-response'), /^400 Bad Request/);
  const shown = JSON.parse(await c.getByTestId('connection-error').innerText());
  const server400 = await fetch(`${server.base}/v2/sse`);
  assert.equal(server400.status, 400);
  assert.deepEqual(shown, await server400.json(), "the server's own answer");
  assert.match(shown.error, /username/);
  assert.equal(await fact(c, 'connection-end'), 'refused: not a 200 event stream (see the response)');
  assert.equal(await c.getByTestId('frame').count(), 0);
  assert.equal(await button(page, 'Open stream').isEnabled(), true, 'nothing left open');
});

test('authorization on: the stream is refused 401 before signing in, and opens with the cookie session after', async ({
  browser,
}) => {
  const secret = randomBytes(32).toString('hex');
  const auth = new Server(await freePort(), 'inspect-auth', ['--auth-secret', secret, ...QUICK_STOP]);
  const other = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
  try {
    await auth.start();
    const p = await other.newPage();
    p.on('pageerror', (e) => pageErrors.push(`auth: ${e.message}`));
    await p.goto(`${auth.base}/inspect?step=v4`);
    await p.getByTestId('inspect-session').filter({ hasText: 'this browser has no session' }).waitFor();
    assert.equal(await p.getByTestId('inspect-user-id').inputValue(), '');

    const refused = await connect(p, 'Open stream');
    await waitState(refused, 'refused');
    assert.equal(await fact(refused, 'connection-url'), 'GET /v4/sse', 'blank: the token’s own user');
    const response = await fact(refused, 'connection-response');
    assert.match(response, /^401 Unauthorized/);
    assert.match(response, /www-authenticate: Bearer/);
    assert.match(JSON.parse(await refused.getByTestId('connection-error').innerText()).error, /needs a token/);

    const sub = randomUUID();
    const token = await new Promise((resolve, reject) =>
      execFile(
        BIN,
        ['token', sub, '--ttl', '10m'],
        { env: { ...process.env, SSE_AUTH_SECRET: secret }, timeout: 30_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`sse-server token: ${stderr}`)) : resolve(stdout.trim())),
      ),
    );
    await p.getByTestId('inspect-token').fill(token);
    const signedIn = await answerOf(p, 'Sign in');
    await p
      .getByTestId('inspect-session')
      .filter({ hasText: `Signed in as ${sub}` })
      .waitFor();
    assert.equal(await p.getByTestId('inspect-token').inputValue(), '', 'the token field is emptied');
    // the answers list: the POST (its Authorization header named, never shown), then the check
    const posted = p.getByTestId('answer').filter({ hasText: 'POST /auth/session' }).first();
    assert.equal(await posted.getAttribute('data-status'), '200', signedIn.body);
    assert.match(await posted.innerText(), /Sent with Authorization \(not shown\)/);
    assert.ok(!(await p.locator('body').innerText()).includes(token), 'the token is not on the page');
    const cookie = (await other.cookies(auth.base)).find((c) => c.name === 'sse_token');
    assert.ok(cookie?.httpOnly, 'an HttpOnly session cookie');
    assert.equal(await p.getByTestId('inspect-user-id').inputValue(), sub, "the token's user fills the field");

    const request = p.waitForRequest((r) => r.url().includes('/v4/sse'));
    const c = await connect(p, 'Open stream');
    const headers = await (await request).allHeaders();
    assert.equal(headers.authorization, undefined, 'no token sent: the cookie alone');
    assert.match(headers.cookie ?? '', /(^|; )sse_token=/, 'the session cookie sent');
    await waitState(c, 'open');
    assert.equal(await fact(c, 'connection-url'), `GET /v4/sse?user_id=${sub}`);
    assert.match(await fact(c, 'connection-response'), /^200 OK/);
    await frames(c, 'snapshot').first().waitFor({ timeout: LIVE_MS });
    assert.equal(await fact(c, 'connection-snapshot'), '0 reports');
    await cut(p, c);
  } finally {
    await other.close();
    await auth.stop();
  }
});

test('no uncaught errors in the pages', async () => {
  assert.deepEqual(pageErrors, []);
});
