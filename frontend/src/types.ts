// The shapes the dashboard shares between its modules: a report as the server sends it,
// the user's presence count, and the server's stream events once decoded (wire.ts makes
// them, the reducer in reports.ts consumes them). Kept here so that neither side depends
// on the other.

import type { Status } from './transitions.ts';

/** A report as the server sends it (camelCase, RFC 3339 times). */
export interface Report {
  userId: string;
  reportId: string;
  reportStatus: Status;
  createdAt: string;
  updatedAt: string;
}

/**
 * How many streams of the user are open, and on how many server instances (the `Presence`
 * schema). The tabs of one browser share one stream (sharedStream.ts), so a stream is a
 * browser or a device (or another client), not a tab.
 */
export interface Presence {
  connections: number;
  instances: number;
}

/**
 * One event of /v4/sse, decoded. `at` is when this tab received it (status events carry
 * no time of their own). `reset` is named `stream_reset` here, apart from the board's own
 * `reset`. `presence` is a state, not a change to the reports, and carries no SSE id.
 */
export type ServerEvent =
  | { type: 'stream_reset'; reason: string; at: string }
  | { type: 'snapshot'; reports: Report[]; at: string }
  | { type: 'snapshot_truncated'; total: number; sent: number }
  | { type: 'new_report'; report: Report }
  | { type: 'report_status_update'; id: string; status: Status; at: string }
  | { type: 'report_status_rejected'; id: string; status: Status; reason: string; at: string }
  | { type: 'presence'; connections: number; instances: number };
