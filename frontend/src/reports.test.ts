// Unit tests of the reducer (reports.ts): board state + event -> board state. Decoding the
// server's JSON is wire.ts's, tested in wire.test.ts.
import { describe, expect, it } from 'vitest';
import { applyEvent, initialState, laterTime, selectReports, type BoardEvent, type BoardState } from './reports.ts';
import type { Report } from './types.ts';
import type { Status } from './transitions.ts';

const USER = '11111111-1111-4111-8111-111111111111';
const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const C = 'cccccccc-0000-4000-8000-000000000003';

function report(id: string, status: Status = 'pending', created = '2026-01-01T10:00:00Z', updated = created): Report {
  return { userId: USER, reportId: id, reportStatus: status, createdAt: created, updatedAt: updated };
}

const run = (events: BoardEvent[], from: BoardState = initialState) => events.reduce(applyEvent, from);
const snapshot = (reports: Report[], at = '2026-01-01T12:00:00Z'): BoardEvent => ({ type: 'snapshot', reports, at });
const update = (id: string, status: Status, at = '2026-01-01T12:00:01Z'): BoardEvent => ({
  type: 'report_status_update',
  id,
  status,
  at,
});
const created = (r: Report): BoardEvent => ({ type: 'new_report', report: r });
const statuses = (s: BoardState) => selectReports(s).map((r) => [r.reportId, r.reportStatus]);

describe('snapshot', () => {
  it('says when it was cut short, until the next snapshot', () => {
    const cut = run([snapshot([report(A)]), { type: 'snapshot_truncated', total: 3, sent: 1 }]);
    expect(cut.truncated).toEqual({ total: 3, sent: 1 });
    expect(Object.keys(cut.byId)).toEqual([A]);
    expect(applyEvent(cut, snapshot([report(A), report(B), report(C)])).truncated).toBeNull();
  });

  it('marks the board loaded, even when empty', () => {
    expect(initialState.loaded).toBe(false);
    const s = run([snapshot([])]);
    expect(s.loaded).toBe(true);
    expect(selectReports(s)).toEqual([]);
  });

  it('replaces the list', () => {
    const s = run([snapshot([report(A), report(B)]), snapshot([report(B, 'queued'), report(C)])]);
    expect(Object.keys(s.byId).sort()).toEqual([B, C]);
    expect(s.byId[B].reportStatus).toBe('queued');
  });

  it('keeps one row per id when the snapshot repeats a report, the most recent one', () => {
    const s = run([
      snapshot([
        report(A, 'queued', '2026-01-01T10:00:00Z', '2026-01-01T10:05:00Z'),
        report(A, 'pending', '2026-01-01T10:00:00Z', '2026-01-01T10:00:00Z'),
      ]),
    ]);
    expect(statuses(s)).toEqual([[A, 'queued']]);
  });

  it('drops messages about reports that are gone, keeps the others', () => {
    let s = run([snapshot([report(A), report(B)])]);
    s = applyEvent(s, { type: 'request_failed', id: A, message: 'no', at: 'x' });
    s = applyEvent(s, { type: 'request_failed', id: B, message: 'no', at: 'x' });
    s = applyEvent(s, snapshot([report(B)]));
    expect(Object.keys(s.notices)).toEqual([B]);
  });

  it('discards status updates held for unknown reports (the snapshot is newer)', () => {
    const s = run([snapshot([]), update(A, 'queued'), snapshot([report(A, 'canceled')]), created(report(A))]);
    expect(statuses(s)).toEqual([[A, 'canceled']]);
    expect(s.orphanUpdates).toEqual({});
  });
});

describe('new_report', () => {
  it('adds a report', () => {
    const s = run([snapshot([report(A)]), created(report(B, 'pending', '2026-01-01T11:00:00Z'))]);
    expect(statuses(s)).toEqual([
      [B, 'pending'],
      [A, 'pending'],
    ]);
  });

  it('twice gives one row', () => {
    const s = run([snapshot([]), created(report(A)), created(report(A))]);
    expect(selectReports(s)).toHaveLength(1);
  });

  it('returns the same state object for a duplicate (no re-render)', () => {
    const s1 = run([snapshot([]), created(report(A))]);
    expect(applyEvent(s1, created(report(A)))).toBe(s1);
  });

  it('after a snapshot that already has the report does not add a row or roll the status back', () => {
    const s = run([
      snapshot([report(A, 'queued', '2026-01-01T10:00:00Z', '2026-01-01T10:01:00Z')]),
      created(report(A, 'pending')),
    ]);
    expect(statuses(s)).toEqual([[A, 'queued']]);
    expect(s.byId[A].updatedAt).toBe('2026-01-01T10:01:00Z');
  });

  it('the POST reply arriving after its own event and an update does not roll back', () => {
    const s = run([snapshot([]), created(report(A)), update(A, 'queued'), created(report(A))]);
    expect(statuses(s)).toEqual([[A, 'queued']]);
  });

  it('works before any snapshot (the POST reply can win the race)', () => {
    const s = run([created(report(A))]);
    expect(s.loaded).toBe(false);
    expect(statuses(s)).toEqual([[A, 'pending']]);
  });
});

describe('report_status_update', () => {
  it('patches the status and sets updatedAt to the receipt time', () => {
    const s = run([snapshot([report(A)]), update(A, 'queued', '2026-01-01T12:00:05Z')]);
    expect(s.byId[A].reportStatus).toBe('queued');
    expect(s.byId[A].updatedAt).toBe('2026-01-01T12:00:05Z');
    expect(s.byId[A].createdAt).toBe('2026-01-01T10:00:00Z');
  });

  it('follows a whole life cycle', () => {
    const s = run([
      snapshot([report(A)]),
      update(A, 'queued'),
      update(A, 'processing'),
      update(A, 'failed'),
      update(A, 'pending'),
      update(A, 'canceled'),
    ]);
    expect(s.byId[A].reportStatus).toBe('canceled');
  });

  it('never moves updatedAt backwards (client clock behind the server)', () => {
    const s = run([
      snapshot([report(A, 'pending', '2026-01-01T10:00:00Z', '2026-01-01T12:00:00Z')]),
      update(A, 'queued', '2026-01-01T11:59:00Z'),
    ]);
    expect(s.byId[A].reportStatus).toBe('queued');
    expect(s.byId[A].updatedAt).toBe('2026-01-01T12:00:00Z');
  });

  it('is a no-op when repeated', () => {
    const s1 = run([snapshot([report(A)]), update(A, 'queued', '2026-01-01T12:00:05Z')]);
    const s2 = applyEvent(s1, update(A, 'queued', '2026-01-01T12:00:09Z'));
    expect(s2).toBe(s1);
  });

  it('for a report not on the list yet is applied when the report arrives', () => {
    const s = run([snapshot([report(A)]), update(B, 'queued', '2026-01-01T12:00:05Z'), created(report(B))]);
    expect(statuses(s)).toEqual([
      [A, 'pending'],
      [B, 'queued'],
    ]);
    expect(s.byId[B].updatedAt).toBe('2026-01-01T12:00:05Z');
    expect(s.orphanUpdates).toEqual({});
  });

  it('keeps only the latest held update per report', () => {
    const s = run([snapshot([]), update(B, 'queued'), update(B, 'processing'), created(report(B))]);
    expect(statuses(s)).toEqual([[B, 'processing']]);
  });

  it('does not touch other reports', () => {
    const s0 = run([snapshot([report(A), report(B)])]);
    const s1 = applyEvent(s0, update(A, 'queued'));
    expect(s1.byId[B]).toBe(s0.byId[B]);
  });
});

describe('messages next to a report', () => {
  it('a rejected change shows the server reason', () => {
    const s = run([
      snapshot([report(A, 'queued')]),
      {
        type: 'report_status_rejected',
        id: A,
        status: 'canceled',
        reason: 'the report is already processing',
        at: 't',
      },
    ]);
    expect(s.notices[A]).toMatchObject({ kind: 'rejected' });
    expect(s.notices[A].message).toContain('the report is already processing');
    expect(s.notices[A].message).toContain('canceled');
  });

  it('a refused request shows the error and ends the busy state', () => {
    const s = run([
      snapshot([report(A)]),
      { type: 'request_started', id: A, status: 'processing' },
      { type: 'request_failed', id: A, message: 'Cannot move from pending to processing.', at: 't' },
    ]);
    expect(s.busy).toEqual({});
    expect(s.notices[A]).toEqual({ kind: 'error', message: 'Cannot move from pending to processing.', at: 't' });
  });

  it('the message stays when the status changes afterwards (race with the winning update)', () => {
    const s = run([
      snapshot([report(A, 'processing')]),
      { type: 'request_started', id: A, status: 'failed' },
      { type: 'request_failed', id: A, message: 'conflict', at: 't' },
      update(A, 'completed'),
    ]);
    expect(s.notices[A]?.message).toBe('conflict');
  });

  it('a new attempt clears the old message; the report stays busy until its event arrives', () => {
    let s = run([snapshot([report(A)]), { type: 'request_failed', id: A, message: 'no', at: 't' }]);
    s = applyEvent(s, { type: 'request_started', id: A, status: 'queued' });
    expect(s.notices).toEqual({});
    expect(s.busy).toEqual({ [A]: 'queued' });
    s = applyEvent(s, update(A, 'queued'));
    expect(s.busy).toEqual({});
    expect(s.byId[A].reportStatus).toBe('queued');
  });

  it('a rejection or giving up also ends the busy state', () => {
    const started = run([snapshot([report(A)]), { type: 'request_started', id: A, status: 'queued' }]);
    const rejected = applyEvent(started, {
      type: 'report_status_rejected',
      id: A,
      status: 'queued',
      reason: 'r',
      at: 't',
    });
    expect(rejected.busy).toEqual({});
    const settled = applyEvent(started, { type: 'request_settled', id: A });
    expect(settled.busy).toEqual({});
    expect(applyEvent(settled, { type: 'request_settled', id: A })).toBe(settled);
  });

  it('an update that repeats the status still ends the busy state', () => {
    const s = run([
      snapshot([report(A, 'queued')]),
      { type: 'request_started', id: A, status: 'queued' },
      update(A, 'queued'),
    ]);
    expect(s.busy).toEqual({});
  });

  it('can be dismissed', () => {
    const s = run([
      snapshot([report(A)]),
      { type: 'request_failed', id: A, message: 'no', at: 't' },
      { type: 'dismiss_notice', id: A },
    ]);
    expect(s.notices).toEqual({});
    expect(applyEvent(s, { type: 'dismiss_notice', id: A })).toBe(s);
  });
});

describe('reset and ordering', () => {
  it('reset returns to the initial state', () => {
    expect(run([snapshot([report(A)]), { type: 'reset' }])).toBe(initialState);
  });

  it('lists newest first, ties by id', () => {
    const s = run([
      snapshot([
        report(B, 'pending', '2026-01-01T10:00:00Z'),
        report(A, 'pending', '2026-01-01T10:00:00Z'),
        report(C, 'pending', '2026-01-02T10:00:00Z'),
      ]),
    ]);
    expect(selectReports(s).map((r) => r.reportId)).toEqual([C, A, B]);
  });

  it('laterTime picks the later instant across time zones and precisions', () => {
    expect(laterTime('2026-01-01T10:00:00Z', '2026-01-01T11:00:00+02:00')).toBe('2026-01-01T10:00:00Z');
    expect(laterTime('2026-01-01T10:00:00Z', '2026-01-01T10:00:00.5Z')).toBe('2026-01-01T10:00:00.5Z');
    expect(laterTime('garbage', '2026-01-01T10:00:00Z')).toBe('2026-01-01T10:00:00Z');
  });
});

describe('presence', () => {
  const presence = (connections: number, instances: number): BoardEvent => ({
    type: 'presence',
    connections,
    instances,
  });

  it('keeps the latest count, and nothing else changes', () => {
    expect(initialState.presence).toBeNull();
    const board = run([
      snapshot([report(A)]),
      update(B, 'queued'),
      { type: 'request_started', id: A, status: 'queued' },
    ]);
    const s = run([presence(2, 1), presence(3, 2)], board);
    expect(s.presence).toEqual({ connections: 3, instances: 2 });
    expect({ ...s, presence: null }).toEqual({ ...board, presence: null });
  });

  it('is not a report event: it neither loads the board nor settles a move', () => {
    const s = run([{ type: 'request_started', id: A, status: 'queued' }, presence(1, 1)]);
    expect(s.loaded).toBe(false);
    expect(s.byId).toEqual({});
    expect(s.busy).toEqual({ [A]: 'queued' });
  });

  it('the same count again is a no-op', () => {
    const s = run([presence(2, 1)]);
    expect(applyEvent(s, presence(2, 1))).toBe(s);
  });

  it('outlives stream_reset and snapshot; the board’s reset clears it', () => {
    const s = run([
      presence(2, 2),
      snapshot([report(A)]),
      { type: 'stream_reset', reason: 'history_expired', at: '2026-01-01T12:00:02Z' },
      snapshot([report(B)]),
    ]);
    expect(s.presence).toEqual({ connections: 2, instances: 2 });
    expect(applyEvent(s, { type: 'reset' }).presence).toBeNull();
  });
});

describe('resume and reset (the server could not replay what was missed)', () => {
  it('a resumed connection without a snapshot keeps the board and applies the missed events', () => {
    const s = run([snapshot([report(A), report(B)]), update(A, 'queued'), update(B, 'canceled')]);
    expect(statuses(s)).toEqual([
      [A, 'queued'],
      [B, 'canceled'],
    ]);
  });

  it('reset keeps the board until the snapshot that follows replaces it', () => {
    const before = run([snapshot([report(A), report(B)]), update(C, 'queued')]);
    expect(Object.keys(before.orphanUpdates)).toEqual([C]);
    const reset = applyEvent(before, { type: 'stream_reset', reason: 'history_expired', at: '2026-01-01T12:00:02Z' });
    expect(statuses(reset)).toEqual(statuses(before));
    expect(reset.orphanUpdates).toEqual({});
    const after = applyEvent(reset, snapshot([report(B, 'failed')]));
    expect(statuses(after)).toEqual([[B, 'failed']]);
  });
});
