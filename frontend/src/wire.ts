// Decoding what the server sends: the data of a named /v4/sse event (a JSON string) into a
// typed ServerEvent, and a Report from any JSON answer. Pure, no state: the board's state
// transitions live in reports.ts and never see raw JSON, so a shape the contract
// (docs/openapi.json) does not allow is stopped here, with a reason, and the stream
// (stream.ts) logs and skips it.

import type { Report, ServerEvent } from './types.ts';
import { isStatus } from './transitions.ts';

/** The named events of /v4/sse this dashboard listens to. */
export const SERVER_EVENTS = [
  'reset',
  'snapshot',
  'snapshot_truncated',
  'new_report',
  'report_status_update',
  'report_status_rejected',
  'presence',
] as const;

export type DecodeResult = { ok: true; event: ServerEvent } | { ok: false; error: string };

/** A JSON object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A count: a non-negative integer. */
export function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** A Report from JSON, or null when the shape is wrong. */
export function toReport(v: unknown): Report | null {
  if (!isRecord(v)) return null;
  const { userId, reportId, reportStatus, createdAt, updatedAt } = v;
  if (
    typeof userId !== 'string' ||
    typeof reportId !== 'string' ||
    !isStatus(reportStatus) ||
    typeof createdAt !== 'string' ||
    typeof updatedAt !== 'string'
  ) {
    return null;
  }
  return { userId, reportId, reportStatus, createdAt, updatedAt };
}

const ok = (event: ServerEvent): DecodeResult => ({ ok: true, event });
const bad = (error: string): DecodeResult => ({ ok: false, error });

/**
 * Decodes one named SSE event received at `at` (RFC 3339). Unknown names and data that is
 * not what the contract says give `{ ok: false, error }`. A snapshot keeps its good rows
 * and skips the others.
 */
export function decodeServerEvent(name: string, data: string, at: string): DecodeResult {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return bad('not JSON');
  }
  switch (name) {
    case 'reset': {
      // {"reason": "history_expired" | "unknown_id", "lastEventId": "..."}
      if (!isRecord(v)) return bad('not an object');
      const reason = typeof v.reason === 'string' && v.reason ? v.reason : 'unknown';
      return ok({ type: 'stream_reset', reason, at });
    }
    case 'snapshot': {
      if (!Array.isArray(v)) return bad('not an array');
      const reports = v.map(toReport).filter((r): r is Report => r !== null);
      return ok({ type: 'snapshot', reports, at });
    }
    case 'snapshot_truncated': {
      // {"total": N, "sent": M}: the snapshot before it holds the newest M of N reports
      if (!isRecord(v) || !isCount(v.total) || !isCount(v.sent)) return bad('not {"total", "sent"}');
      return ok({ type: 'snapshot_truncated', total: v.total, sent: v.sent });
    }
    case 'new_report': {
      const report = toReport(v);
      return report ? ok({ type: 'new_report', report }) : bad('not a Report');
    }
    case 'report_status_update':
      if (!isRecord(v) || typeof v.id !== 'string' || !isStatus(v.status)) {
        return bad('not {"id", "status"}');
      }
      return ok({ type: 'report_status_update', id: v.id, status: v.status, at });
    case 'report_status_rejected':
      if (!isRecord(v) || typeof v.id !== 'string' || !isStatus(v.status)) {
        return bad('not {"id", "status", "reason"}');
      }
      return ok({
        type: 'report_status_rejected',
        id: v.id,
        status: v.status,
        reason: typeof v.reason === 'string' && v.reason ? v.reason : 'the server refused the change.',
        at,
      });
    case 'presence':
      // {"connections": N, "instances": K}: both counts, or the event says nothing usable
      if (!isRecord(v) || !isCount(v.connections) || !isCount(v.instances)) {
        return bad('not {"connections", "instances"}');
      }
      return ok({ type: 'presence', connections: v.connections, instances: v.instances });
    default:
      return bad('unknown event name');
  }
}
