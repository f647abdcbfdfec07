// What the end-to-end tests read from a dashboard page: a probe that counts the page's
// EventSources and their listeners (to catch leaks), and waits for a report's status or the
// connection's state to show.

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
