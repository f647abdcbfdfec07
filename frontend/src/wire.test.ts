// Unit tests of wire.ts: the data of each /v4/sse event the dashboard listens to, decoded
// into a ServerEvent, or refused with a reason (never thrown).
import { describe, expect, it } from 'vitest';
import { decodeServerEvent, toReport, type DecodeResult } from './wire.ts';
import type { Report } from './types.ts';

const USER = '11111111-1111-4111-8111-111111111111';
const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const at = '2026-01-01T12:00:00Z';

function report(id: string): Report {
  return {
    userId: USER,
    reportId: id,
    reportStatus: 'pending',
    createdAt: '2026-01-01T10:00:00Z',
    updatedAt: '2026-01-01T10:00:00Z',
  };
}

const decode = (name: string, data: unknown): DecodeResult =>
  decodeServerEvent(name, typeof data === 'string' ? data : JSON.stringify(data), at);

describe('decodeServerEvent', () => {
  it('decodes snapshot_truncated, and refuses counts that are not counts', () => {
    expect(decode('snapshot_truncated', { total: 1200, sent: 950 })).toEqual({
      ok: true,
      event: { type: 'snapshot_truncated', total: 1200, sent: 950 },
    });
    expect(decode('snapshot_truncated', { total: -1, sent: 2 }).ok).toBe(false);
    expect(decode('snapshot_truncated', { total: '3', sent: 2 }).ok).toBe(false);
    expect(decode('snapshot_truncated', [3, 2]).ok).toBe(false);
  });

  it('decodes presence, and refuses anything but two counts', () => {
    expect(decode('presence', { connections: 3, instances: 2 })).toEqual({
      ok: true,
      event: { type: 'presence', connections: 3, instances: 2 },
    });
    expect(decode('presence', { connections: 0, instances: 0 })).toEqual({
      ok: true,
      event: { type: 'presence', connections: 0, instances: 0 },
    });
    // only the two counts are kept
    expect(decode('presence', { connections: 1, instances: 1, extra: 'x' })).toEqual({
      ok: true,
      event: { type: 'presence', connections: 1, instances: 1 },
    });
    const refused = [
      decode('presence', { connections: 3 }),
      decode('presence', { instances: 1 }),
      decode('presence', { connections: -1, instances: 1 }),
      decode('presence', { connections: 1, instances: -1 }),
      decode('presence', { connections: 1.5, instances: 1 }),
      decode('presence', { connections: '2', instances: 1 }),
      decode('presence', { connections: 2, instances: null }),
      decode('presence', '{"connections": 1e400, "instances": 1}'),
      decode('presence', [2, 1]),
      decode('presence', 2),
      decode('presence', null),
      decode('presence', 'not json'),
    ];
    for (const d of refused) {
      expect(d.ok).toBe(false);
      expect(!d.ok && d.error).toMatch(/\w/);
    }
  });

  it('decodes the event kinds of the contract', () => {
    expect(decode('snapshot', [report(A)])).toEqual({
      ok: true,
      event: { type: 'snapshot', reports: [report(A)], at },
    });
    expect(decode('new_report', report(A))).toEqual({
      ok: true,
      event: { type: 'new_report', report: report(A) },
    });
    expect(decode('report_status_update', { id: A, status: 'queued' })).toEqual({
      ok: true,
      event: { type: 'report_status_update', id: A, status: 'queued', at },
    });
    expect(decode('report_status_rejected', { id: A, status: 'queued', reason: 'lost a race' })).toEqual({
      ok: true,
      event: { type: 'report_status_rejected', id: A, status: 'queued', reason: 'lost a race', at },
    });
  });

  it('decodes reset as stream_reset, apart from the board’s own reset', () => {
    expect(decode('reset', { reason: 'unknown_id', lastEventId: 'x' })).toEqual({
      ok: true,
      event: { type: 'stream_reset', reason: 'unknown_id', at },
    });
    expect(decode('reset', {})).toEqual({
      ok: true,
      event: { type: 'stream_reset', reason: 'unknown', at },
    });
    expect(decode('reset', []).ok).toBe(false);
  });

  it('gives a rejection without a reason a plain one', () => {
    const d = decode('report_status_rejected', { id: A, status: 'canceled' });
    expect(d.ok && d.event.type === 'report_status_rejected' && d.event.reason).toBe('the server refused the change.');
  });

  it('refuses malformed data and unknown names, with a reason', () => {
    const refused = [
      decode('snapshot', 'not json'),
      decode('snapshot', {}),
      decode('new_report', { ...report(A), reportStatus: 'done' }),
      decode('report_status_update', { id: A, status: 'bogus' }),
      decode('report_status_update', { status: 'queued' }),
      decode('report_status_rejected', { id: 7, status: 'queued' }),
      decode('message', {}),
    ];
    for (const d of refused) {
      expect(d.ok).toBe(false);
      expect(!d.ok && d.error).toMatch(/\w/);
    }
  });

  it('skips bad rows of a snapshot and keeps the good ones', () => {
    expect(decode('snapshot', [report(A), { reportId: B }])).toEqual({
      ok: true,
      event: { type: 'snapshot', reports: [report(A)], at },
    });
  });
});

describe('toReport', () => {
  it('keeps exactly the fields of a Report', () => {
    expect(toReport({ ...report(A), extra: 1 })).toEqual(report(A));
  });

  it('refuses what is not a Report', () => {
    for (const v of [null, [], 'x', { ...report(A), createdAt: 5 }, { ...report(A), userId: undefined }]) {
      expect(toReport(v)).toBeNull();
    }
  });
});
