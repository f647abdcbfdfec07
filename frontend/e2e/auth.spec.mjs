// End-to-end test of the dashboard with authorization on: the real sse-server started with
// SSE_AUTH_SECRET, headless Chromium. The sign-in asks for a token; pasting one opens the
// cookie session (HttpOnly, the page cannot read it), the board is the token subject's and
// goes live over the cookie; a reload stays signed in; sign-out clears the cookie; a token
// that expires brings the sign-in back with a plain message; update_report_status.sh needs
// $SSE_TOKEN.
//
//   cd frontend && npm run build && npx playwright test auth     (npm run e2e runs it too)
//
// Tokens are minted by the server binary itself (`sse-server token`), as the README shows.
// The server is the `server` fixture (fixtures.mjs) with SSE_AUTH_SECRET added to the
// environment it inherits, so it runs with or without SSE_KAFKA_BROKERS /
// SSE_DYNAMODB_ENDPOINT. The tests run in order, each on the state the previous ones left.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { screenshotsOnFailure, test } from './fixtures.mjs';
import { EVENTSOURCE_PROBE, V4_STREAMS, esStats, waitConnection } from './page.mjs';
import { BIN, SHOTS, UPDATE_SCRIPT } from './server.mjs';
import { eventually, log } from './util.mjs';

// Given to the server and to `sse-server token`, never to process.env: the other spec files
// run their servers without authorization.
const SECRET = randomBytes(32).toString('hex');
// A token short enough to watch it expire, long enough to sign in and go live first.
const SHORT_TTL_S = 6;

test.describe.configure({ mode: 'serial' });
test.use({ serverOptions: { name: 'auth-server', env: { SSE_AUTH_SECRET: SECRET } } });

function run(file, args, env = {}) {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: { ...process.env, SSE_AUTH_SECRET: SECRET, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function mint(sub, ttl = '10m') {
  const { code, stdout, stderr } = await run(BIN, ['token', sub, '--ttl', ttl]);
  assert.equal(code, 0, `sse-server token: ${stderr}`);
  return stdout.trim();
}

// ---- the state the tests share, in order ------------------------------------------------

const pageErrors = [];
const userId = randomUUID();
let context;
let page;

screenshotsOnFailure(async (n) => {
  await page?.screenshot({ path: path.join(SHOTS, `auth-failed-${n}.png`) }).catch(() => {});
});

async function signIn(token) {
  await page.getByTestId('signin-token').waitFor({ timeout: 10_000 });
  await page.getByTestId('signin-token').fill(token);
  await page.getByTestId('signin-submit').click();
}

test.beforeAll(async ({ browser }) => {
  context = await browser.newContext({ viewport: { width: 1180, height: 760 } });
  await context.addInitScript(EVENTSOURCE_PROBE);
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

test.afterAll(async () => {
  await context?.close();
});

// ---- the tests ----------------------------------------------------------------------------

test('server starts with authorization on', async ({ server }) => {
  await server.start();
  const answer = await (await fetch(`${server.base}/auth/session`)).json();
  assert.equal(answer.auth, true);
  log(`sse-server on ${server.base}`);
});

test('the sign-in asks for a token and refuses a bad one with the server sentence', async ({ server }) => {
  await page.goto(server.base);
  await page.getByTestId('signin-token').waitFor({ timeout: 10_000 });
  assert.equal(await page.getByTestId('signin-new').count(), 0, 'no "New user" when tokens are checked');
  await signIn('not-a-token');
  const error = page.getByTestId('signin-error');
  await error.waitFor({ timeout: 5000 });
  assert.match(await error.innerText(), /token/i);
  await signIn(await mint('alice'));
  await page.getByTestId('signin-error').waitFor({ timeout: 5000 });
  assert.match(await page.getByTestId('signin-error').innerText(), /not a user id/);
  await page.screenshot({ path: path.join(SHOTS, 'auth-01-signin-error.png') });
});

test('a pasted token opens an HttpOnly cookie session as its subject, and the board goes live', async ({ server }) => {
  await signIn(await mint(userId));
  await waitConnection(page, 'live', 15_000);
  assert.equal(await page.getByTestId('user-id').innerText(), userId);
  const cookies = await context.cookies(server.base);
  const cookie = cookies.find((c) => c.name === 'sse_token');
  assert.ok(cookie, `no sse_token cookie in ${JSON.stringify(cookies)}`);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.ok(cookie.expires > Date.now() / 1000, 'expires with the token');
  assert.equal(await page.evaluate(() => document.cookie.includes('sse_token')), false, 'scripts cannot read it');
  await page.getByTestId('new-report').click();
  await page.locator('[data-testid="report"]').first().waitFor({ timeout: 10_000 });
  await page.screenshot({ path: path.join(SHOTS, 'auth-02-board.png') });
});

test('update_report_status.sh sends $SSE_TOKEN, and is refused without it', async ({ server }) => {
  const reportId = await page.locator('[data-testid="report"]').first().getAttribute('data-report-id');
  const args = [UPDATE_SCRIPT, userId, reportId, 'queued'];
  const without = await run('bash', args, { SSE_URL: server.base, SSE_TOKEN: '' });
  assert.equal(without.code, 1, `without a token: ${without.stdout} ${without.stderr}`);
  assert.match(without.stderr, /HTTP 401/);
  const token = await mint(userId);
  const withToken = await run('bash', args, { SSE_URL: server.base, SSE_TOKEN: token });
  assert.equal(withToken.code, 0, `with a token: ${withToken.stdout} ${withToken.stderr}`);
  await page.waitForSelector(`[data-testid="report"][data-report-id="${reportId}"][data-status="queued"]`, {
    timeout: 10_000,
  });
});

test('a reload stays signed in; sign-out clears the cookie and closes the stream', async ({ server }) => {
  await page.reload();
  await waitConnection(page, 'live', 15_000);
  assert.equal(await page.getByTestId('user-id').innerText(), userId);
  await page.getByTestId('signout').click();
  await page.getByTestId('signin-token').waitFor({ timeout: 5000 });
  const cookies = await context.cookies(server.base);
  assert.equal(
    cookies.find((c) => c.name === 'sse_token'),
    undefined,
    'cookie cleared',
  );
  await eventually('the stream to close', async () => (await esStats(page)).open === 0);
  const answer = await page.evaluate(async () => (await fetch('/auth/session')).json());
  assert.equal(answer.sub, null);
});

test('an expired token ends the stream and brings the sign-in back with a plain message', async ({ server }) => {
  await signIn(await mint(userId, `${SHORT_TTL_S}s`));
  await waitConnection(page, 'live', 15_000);
  await page.getByTestId('signin-error').waitFor({ timeout: (SHORT_TTL_S + 15) * 1000 });
  assert.match(await page.getByTestId('signin-error').innerText(), /expired/);
  await page.screenshot({ path: path.join(SHOTS, 'auth-03-expired.png') });
  await eventually('the server to close the expired stream', async () => (await server.metric(V4_STREAMS)) === 0);
});

test('no uncaught errors in the page', async () => {
  assert.deepEqual(pageErrors, []);
});
