// What a frame means, in one line under its raw text: a keep-alive comment, the reconnect
// delay, a reset and why, how many connections a `presence` counts, what a /v4 event did.
// Pure. The /v4 events are decoded by the board's own decoder (wire.ts), so the inspector
// and the board read them alike; `reset` and `presence` are read here, on every step: the
// board keeps less of a reset (it drops its lastEventId), and it shows presence only as
// the count in its header ("Open in N streams on K servers"), checked the same way.

import { decodeServerEvent, isRecord } from '../wire.ts';
import type { SseFrame } from './sseParser.ts';

/** What kind of frame it is, for its style and for tests: the event's type, or what it did instead. */
export function frameKind(frame: SseFrame): string {
  if (frame.event) return frame.event.type;
  if (frame.retry !== null) return 'retry';
  if (frame.lines.every((l) => l.kind === 'comment')) return 'comment';
  if (frame.lines.some((l) => l.kind === 'field' && l.name === 'id' && l.used)) return 'id';
  return 'nothing';
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

const RESET_REASONS: Record<string, string> = {
  history_expired: 'the id is older than what the server keeps',
  unknown_id: 'the id is not one of this server',
};

function json(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

/** `{"connections": N, "instances": K}` as "N connections on K instances", or null. */
export function presenceText(data: string): string | null {
  const v = json(data);
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
  if (!isRecord(v) || !count(v.connections) || !count(v.instances)) return null;
  return `${plural(v.connections, 'connection')} on ${plural(v.instances, 'instance')}`;
}

/** The reset's reason and the id it could not resume from, or null when the data is not that. */
export function resetInfo(data: string): { reason: string; lastEventId: string | null } | null {
  const v = json(data);
  if (!isRecord(v) || typeof v.reason !== 'string') return null;
  return { reason: v.reason, lastEventId: typeof v.lastEventId === 'string' ? v.lastEventId : null };
}

function describeEvent(type: string, data: string): string {
  if (type === 'message') return 'message';
  if (type === 'presence') return presenceText(data) ?? 'presence: not {"connections", "instances"}';
  if (type === 'reset') {
    const info = resetInfo(data);
    if (!info) return 'reset: not {"reason", "lastEventId"}';
    const why = RESET_REASONS[info.reason];
    const sent = info.lastEventId === null ? '' : ` from "${info.lastEventId}"`;
    return `reset: ${info.reason}${why ? ` (${why})` : ''}; cannot resume${sent}, events missed`;
  }
  const decoded = decodeServerEvent(type, data, '');
  if (!decoded.ok) return decoded.error === 'unknown event name' ? `event "${type}"` : `${type}: ${decoded.error}`;
  const e = decoded.event;
  switch (e.type) {
    case 'snapshot':
      return `snapshot of ${plural(e.reports.length, 'report')}`;
    case 'snapshot_truncated':
      return `the snapshot holds the newest ${e.sent} of ${plural(e.total, 'report')}`;
    case 'new_report':
      return `new report ${e.report.reportId} (${e.report.reportStatus})`;
    case 'report_status_update':
      return `report ${e.id} is now ${e.status}`;
    case 'report_status_rejected':
      return `move of report ${e.id} to ${e.status} rejected: ${e.reason}`;
    default:
      // reset and presence are read above
      return type;
  }
}

/** One line saying what the frame did. */
export function describeFrame(frame: SseFrame): string {
  if (frame.event) return describeEvent(frame.event.type, frame.event.data);
  const ignored = frame.lines.filter((l) => l.kind === 'field' && !l.used).length;
  const note = ignored > 0 ? ` (${plural(ignored, 'line')} ignored)` : '';
  switch (frameKind(frame)) {
    case 'retry':
      return `reconnect delay set to ${frame.retry} ms${note}`;
    case 'comment':
      return 'comment: keeps the connection alive, EventSource never shows it';
    case 'id':
      return `no data, but the last event id is now "${frame.lastEventId}"${note}`;
    default:
      return `no data: nothing dispatched${note}`;
  }
}
