// Playwright's global setup (playwright.config.mjs): before any test, checks that the server
// binary, dist/ and the browser are there (the run stops with one sentence per missing
// thing), and clears the last run's screenshots and server logs from e2e/screenshots/.

import fs from 'node:fs';
import path from 'node:path';
import { SHOTS, missingPrerequisites } from './server.mjs';

export default function preflight(config) {
  const chromium = config.projects[0]?.use?.launchOptions?.executablePath;
  const missing = missingPrerequisites(chromium);
  if (missing.length) throw new Error(`missing ${missing.join('; ')}`);
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) {
    if (/\.(png|log)$/.test(f)) fs.rmSync(path.join(SHOTS, f));
  }
}
