// Unit tests of sharedStream.ts: the tabs of one browser share one EventSource; the
// others get every event over the channel (the presence count too, and a tab opened later
// gets the latest one); closing the holder hands the stream over, resuming from the last
// event id; a message this version does not understand (a tab of another version) is
// ignored.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { channelName, connectSharedReportStream, type Role } from './sharedStream.ts';
import { streamUrl, type Connection } from './stream.ts';
import { applyEvent, initialState, selectReports, type BoardEvent, type BoardState } from './reports.ts';
import { FakeChannels, FakeEventSource, FakeLocks, settle } from './testFakes.ts';
import type { Report } from './types.ts';

const USER = '22222222-2222-4222-8222-222222222222';
const AT = '2026-01-01T12:00:00Z';

function report(id: string, status: Report['reportStatus'] = 'pending'): Report {
  return { userId: USER, reportId: id, reportStatus: status, createdAt: AT, updatedAt: AT };
}

/** One browser: its locks and channels, shared by the tabs opened in it. */
function browser() {
  const locks = new FakeLocks();
  const channels = new FakeChannels();
  const tabs: Tab[] = [];
  const open = (name: string, options: { locks?: FakeLocks | null } = {}) => {
    const tab: Tab = { name, board: initialState, states: [], roles: [], events: [], close: () => {} };
    tab.close = connectSharedReportStream({
      userId: USER,
      tabId: name,
      locks: options.locks === undefined ? locks : options.locks,
      createChannel: channels.create,
      createEventSource: (url) => new FakeEventSource(url),
      now: () => AT,
      onEvent: (e) => {
        tab.events.push(e);
        tab.board = applyEvent(tab.board, e);
      },
      onConnection: (s) => tab.states.push(s),
      onRole: (r) => tab.roles.push(r),
    });
    tabs.push(tab);
    return tab;
  };
  return { open, tabs, channels };
}

interface Tab {
  name: string;
  board: BoardState;
  states: Connection[];
  roles: Role[];
  events: BoardEvent[];
  close: () => void;
}

const statuses = (tab: Tab) => selectReports(tab.board).map((r) => `${r.reportId}:${r.reportStatus}`);

/** Two tabs of one browser, and the stream their holder opened, already open. */
async function twoTabsWithOpenStream() {
  const { open, tabs } = browser();
  open('one');
  open('two');
  await settle();
  const es = FakeEventSource.all[0];
  es.open();
  return { tabs, es };
}

beforeEach(() => {
  FakeEventSource.all = [];
});
afterEach(() => {
  vi.useRealTimers();
});

describe('connectSharedReportStream', () => {
  it('eight tabs: one EventSource, every event in every tab', async () => {
    const { open, tabs } = browser();
    for (let i = 0; i < 8; i++) open(`tab${i}`);
    await settle();
    expect(FakeEventSource.open()).toHaveLength(1);
    expect(tabs[0].roles).toEqual(['waiting', 'holder']);
    for (const t of tabs.slice(1)) expect(t.roles).toEqual(['waiting']);

    const es = FakeEventSource.all[0];
    expect(es.url).toBe(streamUrl('', USER, null));
    es.open();
    es.emit('snapshot', [report('a')], '10');
    es.emit('report_status_update', { id: 'a', status: 'queued' }, '11');
    await settle();
    for (const t of tabs) {
      expect(statuses(t)).toEqual(['a:queued']);
      expect(t.states.at(-1)).toBe('live');
    }
  });

  it('a tab opened later gets the board at once from the holder', async () => {
    const { open } = browser();
    const first = open('first');
    await settle();
    const es = FakeEventSource.all[0];
    es.open();
    es.emit('snapshot', [report('a'), report('b')], '10');
    es.emit('report_status_update', { id: 'b', status: 'queued' }, '11');
    const late = open('late');
    await settle();
    expect(statuses(late)).toEqual(statuses(first));
    expect(statuses(late)).toEqual(['a:pending', 'b:queued']);
    expect(late.states.at(-1)).toBe('live');
    es.emit('report_status_update', { id: 'a', status: 'canceled' }, '12');
    await settle();
    expect(statuses(late)).toEqual(['a:canceled', 'b:queued']);
    expect(FakeEventSource.open()).toHaveLength(1);
  });

  it('a tab opened after the stream opened but before the snapshot shows it live, then gets the board', async () => {
    const { open } = browser();
    open('first');
    await settle();
    const es = FakeEventSource.all[0];
    es.open();
    const late = open('late');
    await settle();
    expect(late.states.at(-1)).toBe('live');
    expect(late.board.loaded).toBe(false);
    es.emit('snapshot', [report('a')], '10');
    await settle();
    expect(statuses(late)).toEqual(['a:pending']);
  });

  it('when the holder closes, the next tab takes over and resumes from the last event id', async () => {
    const { open } = browser();
    const holder = open('holder');
    const second = open('second');
    const third = open('third');
    await settle();
    const es = FakeEventSource.all[0];
    es.open();
    es.emit('snapshot', [report('a')], '10');
    es.emit('report_status_update', { id: 'a', status: 'queued' }, '11');
    await settle();

    holder.close();
    await settle();
    expect(es.closed).toBe(true);
    expect(second.roles).toEqual(['waiting', 'holder']);
    expect(FakeEventSource.open()).toHaveLength(1);
    const next = FakeEventSource.open()[0];
    expect(next.url).toBe(streamUrl('', USER, '11'));

    // The server resumed exactly: no snapshot, only what was missed. The board stays.
    next.open();
    next.emit('report_status_update', { id: 'a', status: 'processing' }, '12');
    await settle();
    for (const t of [second, third]) {
      expect(statuses(t)).toEqual(['a:processing']);
      expect(t.states.at(-1)).toBe('live');
    }
    expect(holder.events).toHaveLength(2); // a closed tab hears nothing more
  });

  it('reset and the snapshot that follows reach every tab', async () => {
    const { tabs, es } = await twoTabsWithOpenStream();
    es.emit('snapshot', [report('a'), report('b')], '10');
    es.fail(0);
    es.open();
    es.emit('reset', { reason: 'history_expired', lastEventId: '10' });
    es.emit('snapshot', [report('b', 'failed')], '20');
    await settle();
    for (const t of tabs) {
      expect(t.events.map((e) => e.type)).toContain('stream_reset');
      expect(statuses(t)).toEqual(['b:failed']);
    }
  });

  it('presence reaches every tab, and a tab opened later gets the latest count', async () => {
    const { open } = browser();
    const first = open('first');
    const second = open('second');
    await settle();
    const es = FakeEventSource.all[0];
    es.open();
    es.emit('snapshot', [report('a')], '10');
    es.emit('presence', { connections: 1, instances: 1 }, '10'); // no id line: the browser repeats the last one
    es.emit('presence', { connections: 2, instances: 1 }, '10');
    await settle();
    for (const t of [first, second]) {
      expect(t.board.presence).toEqual({ connections: 2, instances: 1 });
      expect(statuses(t)).toEqual(['a:pending']);
    }

    const late = open('late');
    await settle();
    expect(late.board.presence).toEqual({ connections: 2, instances: 1 });
    es.emit('presence', { connections: 3, instances: 2 }, '10');
    await settle();
    for (const t of [first, second, late]) expect(t.board.presence).toEqual({ connections: 3, instances: 2 });

    // Presence moved no resume point: the next holder resumes from the last report event.
    first.close();
    await settle();
    expect(FakeEventSource.open()[0].url).toBe(streamUrl('', USER, '10'));
  });

  it('a tab opened before the snapshot gets the presence the holder already has', async () => {
    const { open } = browser();
    open('first');
    await settle();
    const es = FakeEventSource.all[0];
    es.open();
    es.emit('presence', { connections: 1, instances: 1 });
    const late = open('late');
    await settle();
    expect(late.board.loaded).toBe(false);
    expect(late.board.presence).toEqual({ connections: 1, instances: 1 });
    expect(late.states.at(-1)).toBe('live');
  });

  it('takes the sync of a version without presence, and shows no count until one comes', async () => {
    const { open, channels } = browser();
    open('holder');
    const waiting = open('waiting');
    await settle();
    const older = channels.create(channelName(USER)); // a tab of the version before presence
    older.postMessage({
      kind: 'sync',
      to: 'waiting',
      reports: [report('a')],
      orphans: [],
      lastEventId: '10',
      connection: 'live',
      at: AT,
    });
    await settle();
    expect(statuses(waiting)).toEqual(['a:pending']);
    expect(waiting.board.presence).toBeNull();
    older.close();
  });

  it('the connection state of the holder shows in every tab', async () => {
    const { tabs, es } = await twoTabsWithOpenStream();
    es.fail(0);
    await settle();
    for (const t of tabs) expect(t.states.at(-1)).toBe('reconnecting');
    es.open();
    await settle();
    for (const t of tabs) expect(t.states.at(-1)).toBe('live');
  });

  it('a tab closed while waiting never opens a stream, and leaves the others be', async () => {
    const { open } = browser();
    const holder = open('holder');
    const waiting = open('waiting');
    const other = open('other');
    await settle();
    waiting.close();
    holder.close();
    await settle();
    expect(waiting.roles).toEqual(['waiting']);
    expect(other.roles).toEqual(['waiting', 'holder']);
    expect(FakeEventSource.open()).toHaveLength(1);
    other.close();
    await settle();
    expect(FakeEventSource.open()).toHaveLength(0);
  });

  it('a malformed message on the channel, or one of another version, is ignored; good ones still apply', async () => {
    const { open, channels } = browser();
    const holder = open('holder');
    const waiting = open('waiting');
    await settle();
    const es = FakeEventSource.all[0];
    es.open();
    es.emit('snapshot', [report('a')], '10');
    await settle();
    const before = { events: waiting.events.length, states: waiting.states.length };

    // A tab of another version (or anything else) posting on the same channel.
    const foreign = channels.create(channelName(USER));
    const unexpected: unknown[] = [
      null,
      'hello',
      42,
      [],
      {},
      { kind: 'shout', from: 'foreign' },
      { kind: 'event', event: null, id: '11' },
      { kind: 'event', event: { type: 'report_status_update', id: 'a', status: 'exploded', at: AT }, id: '11' },
      { kind: 'event', event: { type: 'report_status_update', id: 'a', status: 'queued', at: AT }, id: 11 },
      { kind: 'event', event: { type: 'new_report', report: { reportId: 'x' } }, id: '11' },
      { kind: 'event', event: { type: 'report_deleted', id: 'a' }, id: '11' },
      { kind: 'connection', state: 'offline' },
      { kind: 'hello', from: 7 },
      { kind: 'leader' },
      { kind: 'sync', to: 'waiting', reports: 'none' },
      { kind: 'sync', to: 'waiting', reports: [report('z')], orphans: [{ id: 'q' }], lastEventId: '99' },
      { kind: 'event', event: { type: 'presence', connections: -1, instances: 1 }, id: null },
      { kind: 'event', event: { type: 'presence', connections: 4 }, id: null },
      { kind: 'event', event: { type: 'presence', connections: 4, instances: '1' }, id: null },
      { kind: 'event', event: { type: 'presence', connections: 4, instances: 1 }, id: 4 },
      {
        kind: 'sync',
        to: 'waiting',
        reports: [report('z')],
        orphans: [],
        lastEventId: '99',
        connection: 'live',
        at: AT,
        presence: { connections: 1.5, instances: 1 },
      },
    ];
    for (const message of unexpected) foreign.postMessage(message);
    await settle();
    expect(waiting.events).toHaveLength(before.events);
    expect(waiting.states).toHaveLength(before.states);
    expect(statuses(waiting)).toEqual(['a:pending']);
    expect(statuses(holder)).toEqual(['a:pending']);
    expect(waiting.board.presence).toBeNull();

    // A good message from the other tab still applies, and so do the holder's next events.
    foreign.postMessage({
      kind: 'event',
      event: { type: 'report_status_update', id: 'a', status: 'queued', at: AT },
      id: '11',
    });
    await settle();
    expect(statuses(waiting)).toEqual(['a:queued']);
    foreign.postMessage({ kind: 'event', event: { type: 'presence', connections: 4, instances: 2 }, id: null });
    await settle();
    expect(waiting.board.presence).toEqual({ connections: 4, instances: 2 });
    es.emit('report_status_update', { id: 'a', status: 'processing' }, '12');
    await settle();
    expect(statuses(waiting)).toEqual(['a:processing']);
    expect(statuses(holder)).toEqual(['a:processing']);
    foreign.close();

    // The tab that takes over resumes from the last good id, not from a foreign one.
    holder.close();
    await settle();
    expect(FakeEventSource.open()[0].url).toBe(streamUrl('', USER, '12'));
  });

  it('without the Web Locks API each tab opens its own stream', async () => {
    const { open } = browser();
    open('one', { locks: null });
    open('two', { locks: null });
    await settle();
    expect(FakeEventSource.open()).toHaveLength(2);
  });
});
