// The inspector's log: connections numbered in order, frames kept per connection with
// their times, the resume facts (reset, snapshot, replay, presence), the id a reconnect
// sends, and the bounds.
import { beforeEach, describe, expect, it } from 'vitest';
import {
  initialLog,
  logReducer,
  MAX_CONNECTIONS,
  MAX_FRAMES,
  openConnection,
  REPLAY_WINDOW_MS,
  resumeId,
  type LogAction,
  type LogState,
} from './connections.ts';
import type { StreamResponse } from './openStream.ts';
import { feed, initialParser, type SseFrame } from './sseParser.ts';
import type { Step } from './routes.ts';

const OK: StreamResponse = {
  status: 200,
  statusText: 'OK',
  headers: [['content-type', 'text/event-stream']],
  body: null,
  ms: 10,
};

function frames(text: string, lastEventId = ''): SseFrame[] {
  return feed(initialParser(lastEventId), text).frames;
}

const run = (actions: LogAction[], from: LogState = initialLog) => actions.reduce(logReducer, from);

let opened = 0;
const open = (step: Step, lastEventIdSent: string | null = null): LogAction => ({
  type: 'open',
  n: ++opened,
  step,
  user: 'demo',
  url: `/${step}/sse?username=demo`,
  lastEventIdSent,
  wall: 1_000,
});

describe('the inspector log', () => {
  beforeEach(() => {
    opened = 0;
  });

  it('records a connection: request, response, frames with their times, its end', () => {
    const state = run([
      open('v2'),
      { type: 'response', n: 1, response: OK },
      { type: 'frames', n: 1, frames: frames('retry: 2000\n\nid: a\ndata: one\n\n'), ms: 12, wall: 1_012 },
      { type: 'frames', n: 1, frames: frames(': keep-alive\n\n', 'a'), ms: 15_000, wall: 16_000 },
    ]);
    const [c] = state.connections;
    expect(c).toMatchObject({ n: 1, url: '/v2/sse?username=demo', lastEventIdSent: null, response: OK, events: 1 });
    expect(c.frames.map((f) => [f.seq, f.ms, f.wall])).toEqual([
      [1, 12, 1_012],
      [2, 12, 1_012],
      [3, 15_000, 16_000],
    ]);
    expect(c.lastEventId).toBe('a');
    expect(openConnection(state)?.n).toBe(1);
    expect(resumeId(state)).toBe('a');

    const ended = run([{ type: 'end', n: 1, end: { kind: 'cut' }, ms: 20_000 }], state);
    expect(ended.connections[0].end).toEqual({ end: { kind: 'cut' }, ms: 20_000 });
    expect(openConnection(ended)).toBeNull();
    // the first end is the one kept, and nothing is added after it
    const later = run(
      [
        { type: 'end', n: 1, end: { kind: 'failed', message: 'x' }, ms: 20_001 },
        { type: 'frames', n: 1, frames: frames('data: late\n\n'), ms: 20_002, wall: 0 },
      ],
      ended,
    );
    expect(later.connections[0].end?.end).toEqual({ kind: 'cut' });
    expect(later.connections[0].frames).toHaveLength(3);
  });

  it('counts the events a resumed connection gets at once as replayed, and later ones as live', () => {
    const state = run([
      open('v2'),
      { type: 'end', n: 1, end: { kind: 'cut' }, ms: 5 },
      open('v2', 'v2-9'),
      { type: 'response', n: 2, response: OK },
      {
        type: 'frames',
        n: 2,
        frames: frames(
          'retry: 2000\n\nid: v2-10\ndata: missed 1\n\nevent: presence\ndata: {"connections":1,"instances":1}\n\n',
        ),
        ms: 12,
        wall: 0,
      },
      { type: 'frames', n: 2, frames: frames('id: v2-11\ndata: missed 2\n\n'), ms: 10 + REPLAY_WINDOW_MS, wall: 0 },
      { type: 'frames', n: 2, frames: frames('id: v2-12\ndata: live\n\n'), ms: 11 + REPLAY_WINDOW_MS, wall: 0 },
    ]);
    const c = state.connections[1];
    expect(c).toMatchObject({ n: 2, lastEventIdSent: 'v2-9', replayed: 2, events: 4, reset: null, snapshot: null });
    expect(c.frames.map((f) => f.replayed)).toEqual([false, true, false, true, false]);
    expect(c.presence).toBe('1 connection on 1 instance');
    expect(resumeId(state)).toBe('v2-12');
  });

  it('records a reset and the /v4 snapshot after it, and counts nothing after a reset as replayed', () => {
    const text =
      'event: reset\ndata: {"reason":"unknown_id","lastEventId":"nonsense"}\n\nid: 5\nevent: snapshot\ndata: [{},{}]\n\nid: 6\nevent: new_report\ndata: {}\n\n';
    const state = run([
      open('v4', 'nonsense'),
      { type: 'response', n: 1, response: OK },
      { type: 'frames', n: 1, frames: frames(text, 'nonsense'), ms: 11, wall: 0 },
    ]);
    const c = state.connections[0];
    expect(c.reset).toEqual({ reason: 'unknown_id', lastEventId: 'nonsense' });
    expect(c.snapshot).toBe(2);
    expect(c.replayed).toBe(0);
    expect(c.lastEventId).toBe('6');
  });

  it('counts no replay on /v1, which keeps nothing, nor on a connection that sent no id', () => {
    const state = run([
      open('v1', '1'),
      { type: 'response', n: 1, response: OK },
      { type: 'frames', n: 1, frames: frames('id: 1\ndata: hi!\n\n'), ms: 11, wall: 0 },
      open('v2'),
      { type: 'response', n: 2, response: OK },
      { type: 'frames', n: 2, frames: frames('id: 1\ndata: hi!\n\n'), ms: 11, wall: 0 },
    ]);
    expect(state.connections.map((c) => c.replayed)).toEqual([0, 0]);
  });

  it('has no id to resume from until one arrives, and starts from the one sent', () => {
    let state = run([open('v2')]);
    expect(resumeId(state)).toBeNull();
    state = run([open('v2', 'x')], state);
    expect(resumeId(state)).toBe('x');
    // an empty id line clears it, as in EventSource
    state = run([{ type: 'frames', n: 2, frames: frames('id\n\n', 'x'), ms: 1, wall: 0 }], state);
    expect(resumeId(state)).toBeNull();
  });

  it('keeps the newest frames and connections only, counting the frames it dropped', () => {
    const many = frames('data: x\n\n'.repeat(MAX_FRAMES + 5));
    let state = run([open('v2'), { type: 'frames', n: 1, frames: many, ms: 1, wall: 0 }]);
    expect(state.connections[0].frames).toHaveLength(MAX_FRAMES);
    expect(state.connections[0].dropped).toBe(5);
    expect(state.connections[0].events).toBe(MAX_FRAMES + 5);
    expect(state.connections[0].frames[0].seq).toBe(6);
    for (let i = 0; i < MAX_CONNECTIONS; i++) state = run([open('v2')], state);
    expect(state.connections).toHaveLength(MAX_CONNECTIONS);
    expect(state.connections.at(-1)?.n).toBe(MAX_CONNECTIONS + 1);
  });
});
