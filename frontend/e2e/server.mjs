// The real sse-server the end-to-end tests run against: where things are (the binary,
// dist/, the screenshots folder), what must exist before a run, and Server, which starts
// and stops target/debug/sse-server ($SSE_SERVER_BIN) over plain HTTP, or HTTPS with
// scripts/tls_cert.sh's certificate, and reads its /metrics.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, sleep, timeout } from './util.mjs';

export const FRONTEND = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(FRONTEND, '..');
export const BIN = path.resolve(FRONTEND, process.env.SSE_SERVER_BIN ?? '../target/debug/sse-server');
export const DIST = path.join(FRONTEND, 'dist');
export const SHOTS = path.join(FRONTEND, 'e2e', 'screenshots');
export const UPDATE_SCRIPT = path.join(ROOT, 'scripts', 'update_report_status.sh');
const READY_MS = 90_000;

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
 * line and `env` to the environment it inherits; its log goes to SHOTS/<name>-N.log. With
 * `tls` ({ cert, key }: tlsCertificate()), it serves HTTPS (--tls-cert/--tls-key), `base`
 * is https://…, and `server.fetch` trusts that certificate (over plain HTTP, it is Node's
 * fetch).
 */
export class Server {
  constructor(port, name = 'server', args = [], { tls, env = {} } = {}) {
    this.port = port;
    this.name = name;
    this.args = tls ? [...args, '--tls-cert', tls.cert, '--tls-key', tls.key] : args;
    this.env = env;
    this.base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.fetch = tls ? fetchTrusting(tls.cert) : (...a) => fetch(...a);
    this.proc = null;
    this.runs = 0;
    this.tail = [];
  }

  async start() {
    this.runs += 1;
    fs.mkdirSync(SHOTS, { recursive: true });
    const logFile = fs.createWriteStream(path.join(SHOTS, `${this.name}-${this.runs}.log`));
    const proc = spawn(BIN, ['--bind', `127.0.0.1:${this.port}`, '--static-dir', DIST, ...this.args], {
      // No drain by default: no proxy here needs the grace to move traffic, and each
      // stop would wait its 10 s (a test that needs it sets SSE_DRAIN_GRACE in `env`).
      env: { SSE_DRAIN_GRACE: '0s', ...process.env, ...this.env },
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

/**
 * What must exist before a run (`chromium`: the browser's path); a list of sentences, empty
 * when all is there.
 */
export function missingPrerequisites(chromium) {
  const missing = [];
  if (!fs.existsSync(BIN)) missing.push(`the server binary ${BIN} (cargo build, or set SSE_SERVER_BIN)`);
  if (!fs.existsSync(path.join(DIST, 'index.html'))) missing.push(`${DIST}/index.html (npm run build)`);
  if (!fs.existsSync(chromium)) missing.push(`${chromium} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
  if (!fs.existsSync(UPDATE_SCRIPT)) missing.push(UPDATE_SCRIPT);
  return missing;
}
