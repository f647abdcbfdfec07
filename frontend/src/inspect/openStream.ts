// One connection to a /vN/sse stream, read with fetch() instead of EventSource: EventSource
// hides the response (status, headers, the error body of a 4xx), the comments and the
// `retry:` lines, and reconnects by itself; the inspector wants to see all of it and to
// decide itself when to reconnect. The bytes go through a streaming TextDecoder into the
// SSE parser (sseParser.ts), and each read's completed frames are handed on with their
// arrival time (ms since the request was sent, and the wall clock).
//
// `Last-Event-ID` is sent as the header, as a browser's EventSource does when it
// reconnects, and the cookie goes along (`credentials: 'same-origin'`). The returned
// function cuts the connection (aborts the fetch); the end is reported once, whichever
// way it came: cut here, ended by the server, refused (not a 200 event stream), or failed.

import { showBody } from './exchange.ts';
import { feed, initialParser, unfinished, type SseFrame } from './sseParser.ts';

/** The response as the page shows it. */
export interface StreamResponse {
  status: number;
  statusText: string;
  /** The headers that matter for a stream, lower-case names, in this order, when present. */
  headers: [string, string][];
  /** For a response that is not a 200 event stream: its body (JSON pretty-printed). */
  body: string | null;
  /** When it arrived, in ms since the request was sent. */
  ms: number;
}

export type StreamEnd =
  | { kind: 'cut' }
  | { kind: 'ended'; unfinished: { lines: number; chars: number } }
  | { kind: 'refused' }
  | { kind: 'failed'; message: string };

export interface StreamHandlers {
  onResponse: (response: StreamResponse) => void;
  /** The frames one read completed; `ms` since the request was sent, `wall` ms since 1970. */
  onFrames: (frames: SseFrame[], ms: number, wall: number) => void;
  onEnd: (end: StreamEnd, ms: number) => void;
}

export interface StreamOptions {
  url: string;
  /** Sent as the `Last-Event-ID` header; null sends none. */
  lastEventId: string | null;
  fetchImpl?: typeof fetch;
  now?: () => number;
  wallClock?: () => number;
}

export const SHOWN_HEADERS = [
  'content-type',
  'cache-control',
  'x-accel-buffering',
  'retry-after',
  'www-authenticate',
] as const;

/** A refused response's body is shown up to this many characters. */
const MAX_BODY = 4000;

function isEventStream(res: Response): boolean {
  const type = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  return res.status === 200 && type === 'text/event-stream' && res.body !== null;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message || e.name : String(e);
}

/** Opens the stream; returns the function that cuts it. */
export function openStream(options: StreamOptions, handlers: StreamHandlers): () => void {
  const { url, lastEventId, fetchImpl = fetch, now = () => performance.now(), wallClock = () => Date.now() } = options;
  const controller = new AbortController();
  const start = now();
  const since = () => Math.round(now() - start);
  let over = false;

  const finish = (end: StreamEnd) => {
    if (over) return;
    over = true;
    handlers.onEnd(end, since());
  };

  const read = async () => {
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
    const res = await fetchImpl(url, {
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      signal: controller.signal,
    });
    if (over) return;
    const shown = SHOWN_HEADERS.flatMap((name): [string, string][] => {
      const value = res.headers.get(name);
      return value === null ? [] : [[name, value]];
    });
    const response = { status: res.status, statusText: res.statusText, headers: shown };
    if (!isEventStream(res) || res.body === null) {
      const text = await res.text().catch(() => '');
      if (over) return;
      const body = text.length > MAX_BODY ? `${text.slice(0, MAX_BODY)}…` : text;
      handlers.onResponse({ ...response, body: showBody(body), ms: since() });
      finish({ kind: 'refused' });
      return;
    }
    handlers.onResponse({ ...response, body: null, ms: since() });

    const reader = res.body.getReader();
    // ignoreBOM: the parser skips the stream's one leading BOM itself, as the standard says
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    let state = initialParser(lastEventId ?? '');
    const take = (text: string) => {
      const next = feed(state, text);
      state = next.state;
      if (next.frames.length > 0 && !over) handlers.onFrames(next.frames, since(), wallClock());
    };
    for (;;) {
      const { done, value } = await reader.read();
      if (over) return;
      if (done) break;
      take(decoder.decode(value, { stream: true }));
    }
    take(decoder.decode());
    finish({ kind: 'ended', unfinished: unfinished(state) });
  };

  read().catch((e: unknown) => finish({ kind: 'failed', message: message(e) }));

  return () => {
    finish({ kind: 'cut' });
    controller.abort();
  };
}
