// Playwright's configuration for the dashboard's end-to-end tests (`npm run e2e`): the
// e2e/*.spec.mjs files, one test at a time (each file starts a real sse-server; the machine
// may have 2 cores), in Debian's Chromium (CHROMIUM_PATH, default /usr/bin/chromium; never a
// downloaded browser: no `npx playwright install`). No retries, so a flaky test shows.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: 'e2e',
  testMatch: '*.spec.mjs',
  globalSetup: './e2e/preflight.mjs',
  // Playwright's own files (.last-run.json, attachments) go beside the screenshots, gitignored.
  outputDir: 'e2e/screenshots/test-results',
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: true,
  // Per test: the longest wait for the server's /readyz is 90 s (a busy machine), and no test
  // takes more than a minute when all is well; the whole run takes a few minutes.
  timeout: 120_000,
  globalTimeout: 20 * 60_000,
  reporter: 'list',
  use: {
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
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
    },
    // playwright-core's own defaults, which the hand-made runner had.
    actionTimeout: 30_000,
    navigationTimeout: 30_000,
    trace: 'off',
    screenshot: 'off',
    video: 'off',
  },
});
