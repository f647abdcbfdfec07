// The `test` every spec imports: @playwright/test's, plus `server`, the real sse-server of
// the spec file (one per worker, so per file: created, not started, before the file's first
// test and stopped after its last), set up with `test.use({ serverOptions: { name, args, tls,
// env } })`; and screenshotsOnFailure, which photographs a file's pages after a failed test.

import { test as base } from '@playwright/test';
import { Server, freePort, tlsCertificate } from './server.mjs';

export const test = base.extend({
  // name: of its log files (screenshots/<name>-N.log); args: added to its command line;
  // tls: true to serve HTTPS with scripts/tls_cert.sh's certificate; env: added to its environment.
  serverOptions: [
    { name: 'server', args: [], tls: false, env: {} },
    { scope: 'worker', option: true },
  ],

  server: [
    async ({ serverOptions }, use) => {
      const { name = 'server', args = [], tls = false, env = {} } = serverOptions;
      const server = new Server(await freePort(), name, args, { tls: tls ? tlsCertificate() : undefined, env });
      try {
        await use(server);
      } finally {
        await server.stop();
      }
    },
    { scope: 'worker' },
  ],
});

/**
 * After each failed test of the file, `await shoot(n)`, n being the test's number in the
 * file (1 for the first): the spec's screenshots of the pages it has open.
 */
export function screenshotsOnFailure(shoot) {
  let n = 0;
  test.beforeEach(() => {
    n += 1;
  });
  test.afterEach(async () => {
    const info = test.info();
    if (info.status !== info.expectedStatus) await shoot(n);
  });
}
