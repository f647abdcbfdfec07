// What the end-to-end tests read from a dashboard page: a probe that counts the page's
// EventSources and their listeners (to catch leaks), and waits for a report's status or the
// connection's state to show.

/** The server's gauge of open /v4 streams (server.metric). */
export const V4_STREAMS = 'sse_open_streams{version="v4"}';
/** Chromium's limit of HTTP/1.1 connections per host (and per profile). */
export const BROWSER_CONNECTIONS_PER_HOST = 6;

/** An init script (context.addInitScript): counts EventSources and their listeners inside the page. */
export const EVENTSOURCE_PROBE = () => {
  const Native = window.EventSource;
  const probe = { opened: 0, closed: 0, listeners: 0, live: new Set(), urls: [] };
  window.__esProbe = probe;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      probe.opened += 1;
      probe.urls.push(String(args[0]));
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

/** An init script: no Web Locks API, so src/sharedStream.ts falls back to one EventSource per tab. */
export const NO_WEB_LOCKS = () => {
  Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined, configurable: true });
};

export const esStats = (page) =>
  page.evaluate(() => {
    const p = window.__esProbe;
    return { opened: p.opened, closed: p.closed, open: p.live.size, listeners: p.listeners, urls: p.urls };
  });

export async function waitStatus(page, id, status, timeout) {
  await page.waitForSelector(`[data-testid="report"][data-report-id="${id}"][data-status="${status}"]`, {
    timeout,
  });
}

export async function waitConnection(page, state, timeout) {
  await page.waitForSelector(`[data-testid="connection"][data-state="${state}"]`, { timeout });
}

/** Waits until `status` shows in every page; returns the time it took. */
export async function waitStatusEverywhere(pages, id, status, timeout) {
  const t0 = Date.now();
  await Promise.all(pages.map((p) => waitStatus(p, id, status, timeout)));
  return Date.now() - t0;
}

/**
 * Opens `tabs` pages of `url` in `context`, one after the other, each pushed to `pages`:
 * the first BROWSER_CONNECTIONS_PER_HOST each live (within `liveMs`) before the next
 * opens, so the tabs do not race each other for the browser's connections; the others
 * only start loading, since over HTTP/1.1 their very page load waits for a free
 * connection.
 */
export async function openTabsPastTheLimit(context, url, tabs, pages, liveMs) {
  for (let i = 0; i < tabs; i++) {
    const page = await context.newPage();
    pages.push(page);
    if (i < BROWSER_CONNECTIONS_PER_HOST) {
      await page.goto(url);
      await waitConnection(page, 'live', liveMs);
    } else {
      await page.goto(url, { waitUntil: 'commit', timeout: 3000 }).catch(() => {});
    }
  }
}
