import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
// Unit tests of stream.ts: one EventSource, its reconnects and its clean-up.
import { connectReportStream, streamUrl, type Connection } from './stream.ts';
import type { BoardEvent } from './reports.ts';
import { FakeEventSource } from './testFakes.ts';
import { SERVER_EVENTS } from './wire.ts';

const USER = '11111111-1111-4111-8111-111111111111';

/** A connection; `random` places each reconnect wait (default 0: half its back-off step). */
function connect(lastEventId: string | null = null, random: () => number = () => 0) {
  const events: BoardEvent[] = [];
  const ids: (string | null)[] = [];
  const states: Connection[] = [];
  const bad: string[] = [];
  const close = connectReportStream({
    userId: USER,
    lastEventId,
    onEvent: (e, id) => {
      events.push(e);
      ids.push(id);
    },
    onConnection: (s) => states.push(s),
    createEventSource: (url) => new FakeEventSource(url),
    now: () => '2026-01-01T12:00:00Z',
    retryMs: 1000,
    maxRetryMs: 4000,
    random,
    onBadEvent: (name) => bad.push(name),
  });
  return { events, ids, states, bad, close };
}

/** The newest source gives up for good (readyState CLOSED): ms until the next one opens. */
function giveUpAndWait(): number {
  FakeEventSource.all.at(-1)!.fail(2);
  const before = FakeEventSource.all.length;
  let waited = 0;
  while (FakeEventSource.all.length === before && waited < 60_000) {
    vi.advanceTimersByTime(1);
    waited += 1;
  }
  return waited;
}

beforeEach(() => {
  FakeEventSource.all = [];
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('connectReportStream', () => {
  it('opens one EventSource on /v4/sse for the user', () => {
    const { states } = connect();
    expect(FakeEventSource.all).toHaveLength(1);
    expect(FakeEventSource.all[0].url).toBe(`/v4/sse?user_id=${USER}`);
    expect(states).toEqual(['connecting']);
  });

  it('goes live when the connection opens, before any event', () => {
    const { states } = connect();
    FakeEventSource.all[0].open();
    expect(states).toEqual(['connecting', 'live']);
  });

  it('turns named events into board events, each with its id', () => {
    const { events, ids, states } = connect();
    const es = FakeEventSource.all[0];
    es.open();
    es.emit('snapshot', [], '1');
    es.emit('report_status_update', { id: 'x', status: 'queued' }, '2');
    expect(events.map((e) => e.type)).toEqual(['snapshot', 'report_status_update']);
    expect(ids).toEqual(['1', '2']);
    expect(states).toEqual(['connecting', 'live']);
  });

  it('passes reset on, so the board knows the snapshot that follows replaces it', () => {
    const { events } = connect('old-id');
    const es = FakeEventSource.all[0];
    expect(es.url).toBe(streamUrl('', USER, 'old-id'));
    es.open();
    es.emit('reset', { reason: 'history_expired', lastEventId: 'old-id' }, '');
    es.emit('snapshot', [], '9');
    expect(events).toEqual([
      { type: 'stream_reset', reason: 'history_expired', at: '2026-01-01T12:00:00Z' },
      { type: 'snapshot', reports: [], at: '2026-01-01T12:00:00Z' },
    ]);
  });

  it('a reconnect that resumes exactly gets no snapshot and is live all the same', () => {
    const { events, states } = connect();
    const es = FakeEventSource.all[0];
    es.open();
    es.emit('snapshot', [], '1');
    es.fail(0); // the browser retries by itself with Last-Event-ID: 1
    expect(states.at(-1)).toBe('reconnecting');
    es.open(); // resumed: only the missed events follow
    expect(states.at(-1)).toBe('live');
    es.emit('report_status_update', { id: 'x', status: 'queued' }, '2');
    expect(events.map((e) => e.type)).toEqual(['snapshot', 'report_status_update']);
  });

  it('passes presence on; it carries no id and leaves the resume point where it was', () => {
    const { events, ids } = connect();
    const first = FakeEventSource.all[0];
    first.open();
    first.emit('snapshot', [], '41');
    // A browser gives an id-less event the id of the one before it.
    first.emit('presence', { connections: 2, instances: 1 }, '41');
    expect(events.at(-1)).toEqual({ type: 'presence', connections: 2, instances: 1 });
    expect(ids).toEqual(['41', '41']);
    first.fail(2);
    vi.advanceTimersByTime(1000);
    const second = FakeEventSource.all[1];
    expect(second.url).toBe(streamUrl('', USER, '41'));
    // A new EventSource has no id yet: its first presence comes with ''.
    second.open();
    second.emit('presence', { connections: 1, instances: 1 });
    expect(ids.at(-1)).toBeNull();
    second.fail(2);
    vi.advanceTimersByTime(2000);
    expect(FakeEventSource.all[2].url).toBe(streamUrl('', USER, '41'));
  });

  it('ignores malformed events instead of throwing', () => {
    const { events, bad } = connect();
    FakeEventSource.all[0].emit('snapshot', 'not json');
    expect(events).toEqual([]);
    expect(bad).toEqual(['snapshot']);
  });

  it('shows reconnecting while the browser retries by itself, without a second EventSource', () => {
    const { states } = connect();
    const es = FakeEventSource.all[0];
    es.emit('snapshot', [], '1');
    es.fail(0); // CONNECTING: the browser retries with Last-Event-ID
    vi.advanceTimersByTime(60_000);
    expect(FakeEventSource.all).toHaveLength(1);
    expect(states.at(-1)).toBe('reconnecting');
    es.open();
    expect(states.at(-1)).toBe('live');
  });

  it('when the browser gives up, opens a new one later that resumes from the last event id', () => {
    connect();
    const first = FakeEventSource.all[0];
    first.emit('snapshot', [], '41');
    first.emit(
      'new_report',
      { userId: USER, reportId: 'r', reportStatus: 'pending', createdAt: 'a', updatedAt: 'a' },
      '42',
    );
    first.fail(2); // CLOSED, e.g. HTTP 503 during start-up
    expect(first.closed).toBe(true);
    expect(first.listenerCount()).toBe(0);
    vi.advanceTimersByTime(499); // half the first step (random 0)
    expect(FakeEventSource.all).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeEventSource.all).toHaveLength(2);
    expect(FakeEventSource.all[1].url).toBe(streamUrl('', USER, '42'));
    expect(FakeEventSource.all[1].url).toContain('lastEventId=42');
  });

  it('backs off between manual reconnects, up to the cap, and starts over once a connection opens', () => {
    connect();
    const delays = [0, 1, 2, 3].map(() => giveUpAndWait());
    expect(delays).toEqual([500, 1000, 2000, 2000]); // half of 1, 2, 4, 4 s (random 0)
    FakeEventSource.all.at(-1)!.open();
    expect(giveUpAndWait()).toBe(500);
  });

  it('jitters each wait between half its step and the whole step, as the random source says', () => {
    const draws = [0.5, 0.25, 0.75, 0, 0.875];
    let drawn = 0;
    connect(null, () => draws[drawn++]);
    const delays = draws.map(() => giveUpAndWait());
    expect(delays).toEqual([750, 1250, 3500, 2000, 3750]); // steps of 1, 2, 4, 4, 4 s
    expect(drawn).toBe(draws.length);
  });

  it('spreads the first reconnects of many connections over half to all of the first step', () => {
    const delays = Array.from({ length: 20 }, () => {
      FakeEventSource.all = [];
      const { close } = connect(null, Math.random);
      const waited = giveUpAndWait();
      close();
      return waited;
    });
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThanOrEqual(1000);
    }
    expect(new Set(delays).size).toBeGreaterThan(1);
  });

  it('close() removes every listener, closes the source and cancels a pending reconnect', () => {
    const { close, events } = connect();
    const es = FakeEventSource.all[0];
    expect(es.listenerCount()).toBe(SERVER_EVENTS.length + 2); // the named events + onopen + onerror
    close();
    expect(es.closed).toBe(true);
    expect(es.listenerCount()).toBe(0);
    es.emit('snapshot', []);
    expect(events).toEqual([]);

    const second = connect();
    FakeEventSource.all[1].fail(2);
    second.close();
    vi.advanceTimersByTime(60_000);
    expect(FakeEventSource.all).toHaveLength(2);
    second.close(); // idempotent
  });

  it('never holds more than one open source per connection, whatever happens', () => {
    connect();
    for (let i = 0; i < 10; i++) {
      FakeEventSource.all.at(-1)!.fail(2);
      vi.advanceTimersByTime(5000);
    }
    const open = FakeEventSource.all.filter((s) => !s.closed);
    expect(open).toHaveLength(1);
    expect(open[0].listenerCount()).toBe(SERVER_EVENTS.length + 2);
  });
});
