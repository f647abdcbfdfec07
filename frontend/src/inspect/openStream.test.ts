// A stream read with fetch(): the request it sends, frames as the bytes come (split
// anywhere, UTF-8 included), the four ways it ends, and nothing after a cut.
import { describe, expect, it } from 'vitest';
import { openStream, type StreamEnd, type StreamHandlers, type StreamResponse } from './openStream.ts';
import type { SseFrame } from './sseParser.ts';

/** A fake server: the response to the next fetch, whose body the test writes into. */
function fakeServer(status = 200, headers: Record<string, string> = { 'content-type': 'text/event-stream' }) {
  let body!: ReadableStreamDefaultController<Uint8Array>;
  const requests: { url: string; init: RequestInit | undefined }[] = [];
  const fetchImpl = (async (url: string, init?: RequestInit) => {
    requests.push({ url, init });
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        body = c;
      },
    });
    // as a browser does: aborting the fetch errors its body
    init?.signal?.addEventListener('abort', () => body.error(new DOMException('aborted', 'AbortError')));
    return new Response(stream, { status, headers });
  }) as typeof fetch;
  const encoder = new TextEncoder();
  return {
    fetchImpl,
    requests,
    write: (bytes: string | Uint8Array) => body.enqueue(typeof bytes === 'string' ? encoder.encode(bytes) : bytes),
    close: () => body.close(),
  };
}

function recorder() {
  const log: {
    responses: StreamResponse[];
    frames: { frames: SseFrame[]; ms: number; wall: number }[];
    ends: StreamEnd[];
  } = { responses: [], frames: [], ends: [] };
  const handlers: StreamHandlers = {
    onResponse: (r) => log.responses.push(r),
    onFrames: (frames, ms, wall) => log.frames.push({ frames, ms, wall }),
    onEnd: (end) => log.ends.push(end),
  };
  return { log, handlers };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('openStream', () => {
  it('sends Last-Event-ID and the cookie, and passes on frames as they come, with their times', async () => {
    const server = fakeServer();
    const { log, handlers } = recorder();
    let t = 1000;
    openStream(
      {
        url: '/v2/sse?username=demo',
        lastEventId: 'v2-7',
        fetchImpl: server.fetchImpl,
        now: () => t,
        wallClock: () => 5,
      },
      handlers,
    );
    await tick();
    const { url, init } = server.requests[0];
    expect(url).toBe('/v2/sse?username=demo');
    expect(init).toMatchObject({ credentials: 'same-origin', cache: 'no-store' });
    expect(init?.headers).toEqual({ Accept: 'text/event-stream', 'Last-Event-ID': 'v2-7' });
    expect(log.responses).toEqual([
      { status: 200, statusText: '', headers: [['content-type', 'text/event-stream']], body: null, ms: 0 },
    ]);

    t = 1012;
    server.write('retry: 2000\n\ndata: é');
    await tick();
    expect(log.frames).toHaveLength(1);
    expect(log.frames[0]).toMatchObject({ ms: 12, wall: 5 });
    expect(log.frames[0].frames[0].retry).toBe(2000);

    // "é" then "€" split inside their UTF-8 bytes
    const euro = new TextEncoder().encode('€\n\n');
    server.write(euro.slice(0, 1));
    server.write(euro.slice(1));
    await tick();
    expect(log.frames[1].frames[0]).toMatchObject({ event: { type: 'message', data: 'é€' }, lastEventId: 'v2-7' });
  });

  it('reports the end of the response, and what of an unfinished frame it dropped', async () => {
    const server = fakeServer();
    const { log, handlers } = recorder();
    openStream({ url: '/v1/sse?username=demo', lastEventId: null, fetchImpl: server.fetchImpl }, handlers);
    await tick();
    expect(server.requests[0].init?.headers).toEqual({ Accept: 'text/event-stream' });
    server.write('data: one\n\ndata: half');
    server.close();
    await tick();
    await tick();
    expect(log.frames.flatMap((f) => f.frames)).toHaveLength(1);
    expect(log.ends).toEqual([{ kind: 'ended', unfinished: { lines: 1, chars: 10 } }]);
  });

  it('stops at a cut: the end is told at once and once, and later bytes are not read', async () => {
    const server = fakeServer();
    const { log, handlers } = recorder();
    const cut = openStream({ url: '/v4/sse', lastEventId: null, fetchImpl: server.fetchImpl }, handlers);
    await tick();
    cut();
    expect(log.ends).toEqual([{ kind: 'cut' }]);
    cut();
    await tick();
    expect(server.requests[0].init?.signal?.aborted).toBe(true);
    expect(log.ends).toEqual([{ kind: 'cut' }]);
    expect(log.frames).toEqual([]);
  });

  it('shows a refusal: status, headers and the JSON error body', async () => {
    const refusing = (async () =>
      new Response('{"error":"Too many streams","limit":"max-streams-per-user"}', {
        status: 429,
        statusText: 'Too Many Requests',
        headers: { 'content-type': 'application/json', 'retry-after': '5', 'x-other': 'no' },
      })) as typeof fetch;
    const { log, handlers } = recorder();
    openStream({ url: '/v2/sse?username=demo', lastEventId: null, fetchImpl: refusing }, handlers);
    await tick();
    await tick();
    expect(log.responses[0]).toMatchObject({
      status: 429,
      headers: [
        ['content-type', 'application/json'],
        ['retry-after', '5'],
      ],
      body: '{\n  "error": "Too many streams",\n  "limit": "max-streams-per-user"\n}',
    });
    expect(log.ends).toEqual([{ kind: 'refused' }]);
  });

  it('refuses a 200 that is not an event stream (the dashboard page, say)', async () => {
    const server = fakeServer(200, { 'content-type': 'text/html' });
    const { log, handlers } = recorder();
    openStream({ url: '/v9/sse', lastEventId: null, fetchImpl: server.fetchImpl }, handlers);
    await tick();
    server.write('<!doctype html>');
    server.close();
    await tick();
    await tick();
    expect(log.responses[0].body).toBe('<!doctype html>');
    expect(log.ends).toEqual([{ kind: 'refused' }]);
  });

  it('reports a server it cannot reach', async () => {
    const down = (async () => {
      throw new TypeError('Failed to fetch');
    }) as typeof fetch;
    const { log, handlers } = recorder();
    openStream({ url: '/v2/sse', lastEventId: null, fetchImpl: down }, handlers);
    await tick();
    expect(log.responses).toEqual([]);
    expect(log.ends).toEqual([{ kind: 'failed', message: 'Failed to fetch' }]);
  });
});
