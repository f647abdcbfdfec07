// One EventSource on /v4/sse (sharedStream.ts decides which tab opens it).
//
// The browser reconnects by itself after a network error (the server's `retry:` field,
// 2 s) and sends `Last-Event-ID`, so nothing is missed across a server restart. A
// connection that resumes exactly gets only the events it missed, no `snapshot`; one the
// server cannot resume exactly starts with `reset` and then a fresh `snapshot`. So the
// connection counts as live when it opens (`onopen`), not when a snapshot arrives. When
// the browser gives up for good (an HTTP error status such as 503 while the server
// starts, or a response that is not an event stream), this opens a new EventSource after
// a back-off and passes the last event id as `?lastEventId=` (a new EventSource cannot
// set the header). The back-off is jittered ("equal jitter": each wait is between half
// and all of its step), so the tabs that one server restart cut off do not all come back
// at the same moment. `lastEventId` in the options starts the first connection from an id
// seen elsewhere (the tab that takes over the shared stream).
//
// `connectReportStream` returns `close()`: it removes every listener, closes the source
// and cancels a pending reconnect. Nothing else holds on to the connection.

import type { ServerEvent } from './types.ts';
import { decodeServerEvent, SERVER_EVENTS } from './wire.ts';

export type Connection = 'connecting' | 'live' | 'reconnecting';

/** The part of the EventSource API this module uses (a test can pass a fake). */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((this: never, ev: Event) => unknown) | null;
  onerror: ((this: never, ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  removeEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}

export interface StreamOptions {
  userId: string;
  /** Every decoded server event, with its SSE id (null when it carries none). */
  onEvent: (event: ServerEvent, id: string | null) => void;
  onConnection: (state: Connection) => void;
  /** Resume from this id (sent as `?lastEventId=`); null starts with a snapshot. */
  lastEventId?: string | null;
  /** Prefix for the URL, '' for the page's own origin. */
  baseUrl?: string;
  createEventSource?: (url: string) => EventSourceLike;
  /**
   * First step of the manual reconnect back-off; the step doubles up to maxRetryMs, and
   * each wait is between half the step and the whole step.
   */
  retryMs?: number;
  maxRetryMs?: number;
  /** Where in [0, 1) each wait falls between half its step and the step (default: Math.random). */
  random?: () => number;
  now?: () => string;
  /** Called with events that do not decode, and why (default: console.warn). */
  onBadEvent?: (name: string, data: string, error: string) => void;
}

const CLOSED = 2;

export function streamUrl(baseUrl: string, userId: string, lastEventId: string | null): string {
  const q = new URLSearchParams({ user_id: userId });
  if (lastEventId) q.set('lastEventId', lastEventId);
  return `${baseUrl}/v4/sse?${q.toString()}`;
}

export function connectReportStream(options: StreamOptions): () => void {
  const {
    userId,
    onEvent,
    onConnection,
    baseUrl = '',
    createEventSource = (url) => new EventSource(url) as unknown as EventSourceLike,
    retryMs = 1000,
    maxRetryMs = 8000,
    random = Math.random,
    now = () => new Date().toISOString(),
    onBadEvent = (name, data, error) => console.warn(`ignoring malformed ${name} event (${error})`, data),
  } = options;

  let source: EventSourceLike | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let lastEventId: string | null = options.lastEventId ?? null;
  let failures = 0;
  let closed = false;
  let live = false;

  const goLive = () => {
    failures = 0;
    if (live) return;
    live = true;
    onConnection('live');
  };

  const onMessage = (ev: MessageEvent) => {
    if (closed) return;
    // An event without an `id:` line (`presence`) carries the id of the one before it, or
    // '' on a new EventSource: either way the resume point stays where it was.
    if (ev.lastEventId) lastEventId = ev.lastEventId;
    // An event can only come over an open connection (a fake or an old browser may not
    // have fired `open` first).
    goLive();
    const decoded = decodeServerEvent(ev.type, String(ev.data), now());
    if (!decoded.ok) {
      onBadEvent(ev.type, String(ev.data), decoded.error);
      return;
    }
    onEvent(decoded.event, ev.lastEventId || null);
  };

  const detach = (s: EventSourceLike) => {
    for (const name of SERVER_EVENTS) s.removeEventListener(name, onMessage);
    s.onopen = null;
    s.onerror = null;
    s.close();
  };

  const open = () => {
    timer = null;
    if (closed) return;
    const s = createEventSource(streamUrl(baseUrl, userId, lastEventId));
    source = s;
    for (const name of SERVER_EVENTS) s.addEventListener(name, onMessage);
    s.onopen = () => {
      if (closed || source !== s) return;
      goLive();
    };
    s.onerror = () => {
      if (closed || source !== s) return;
      live = false;
      onConnection('reconnecting');
      if (s.readyState === CLOSED) {
        // The browser will not retry this one: start a new one later.
        detach(s);
        source = null;
        const step = Math.min(maxRetryMs, retryMs * 2 ** failures);
        const delay = (step / 2) * (1 + Math.min(Math.max(random(), 0), 1));
        failures += 1;
        timer = setTimeout(open, delay);
      }
    };
  };

  onConnection('connecting');
  open();

  return () => {
    if (closed) return;
    closed = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (source) detach(source);
    source = null;
  };
}
