// Client-side state of the board: a pure reducer, `applyEvent(state, event)`.
//
// Server-Sent Events (snapshot, new_report, report_status_update, report_status_rejected,
// presence), already decoded by wire.ts, and the outcome of this tab's own requests are
// all events; nothing here reads JSON. Rules that keep several tabs and reconnects
// consistent:
//
// - `snapshot` is the truth at the moment a connection opened: it replaces the list.
//   A connection that resumes exactly (Last-Event-ID) gets no snapshot, only the events
//   it missed: the list stays and those events patch it.
// - `reset` (`stream_reset` here) says the server could not replay what was missed; a
//   `snapshot` follows at once and replaces the list. Until then the list is kept (it
//   is still the best there is), and updates kept aside are dropped (the snapshot is
//   newer than all of them).
// - `new_report` describes a report as created (pending). A report already on the list
//   is at least that new, so a repeated or late `new_report` (or the POST reply that
//   races its own event) never adds a second row and never rolls a status back.
// - `report_status_update` sets the status; the same status again is a no-op. An update
//   for a report not on the list yet is kept aside and applied when the report arrives.
// - Times: updates carry no timestamp, so `updatedAt` becomes the receipt time, but never
//   moves backwards (a client clock behind the server's cannot make a change look older).
// - Error messages from the server stay next to their report until dismissed or until the
//   user tries another move on it.
// - A move asked for by this tab keeps the report busy (buttons disabled) until the
//   server's event about it arrives: the 202 only says the command was accepted.
// - `presence` (how many streams of the user are open, on how many instances) is a state
//   beside the list: the latest one replaces the one before, and it touches no report.
//   `stream_reset` and `snapshot` keep it (they are about the list); the board's own
//   `reset` (another user) clears it.
//
// Every function here is pure; "now" is passed in as `at` (RFC 3339).

import type { Presence, Report, ServerEvent } from './types.ts';
import type { Status } from './transitions.ts';

export interface Notice {
  kind: 'error' | 'rejected';
  message: string;
  at: string;
}

export interface BoardState {
  /** A snapshot has arrived at least once (until then the list is unknown, not empty). */
  loaded: boolean;
  byId: Readonly<Record<string, Report>>;
  /** Status updates for reports not on the list yet, latest per report. */
  orphanUpdates: Readonly<Record<string, { status: Status; at: string }>>;
  /**
   * Set when the last snapshot held only the newest `sent` of the user's `total` reports
   * (the whole board did not fit one stream's byte budget); cleared by the next snapshot.
   */
  truncated: { total: number; sent: number } | null;
  /** Server messages shown next to a report. */
  notices: Readonly<Record<string, Notice>>;
  /**
   * Reports with a status change in progress, and the status asked for: from the click
   * until the server's event about that report (update or rejection) arrives, the request
   * fails, or the caller gives up waiting (`request_settled`). Their buttons are disabled.
   */
  busy: Readonly<Record<string, Status>>;
  /** The latest `presence` the server sent; null until one arrives. */
  presence: Presence | null;
}

export type BoardEvent =
  // from the server, over SSE (decoded by wire.ts)
  | ServerEvent
  // from this tab's own requests
  | { type: 'request_started'; id: string; status: Status }
  | { type: 'request_settled'; id: string }
  | { type: 'request_failed'; id: string; message: string; at: string }
  | { type: 'dismiss_notice'; id: string }
  | { type: 'reset' };

export const initialState: BoardState = {
  loaded: false,
  truncated: null,
  byId: {},
  orphanUpdates: {},
  notices: {},
  busy: {},
  presence: null,
};

/** The later of two RFC 3339 times (the second one when either does not parse). */
export function laterTime(a: string, b: string): string {
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (Number.isNaN(ta) || Number.isNaN(tb)) return b;
  return tb >= ta ? b : a;
}

function without<T>(record: Readonly<Record<string, T>>, key: string): Readonly<Record<string, T>> {
  if (!(key in record)) return record;
  const copy = { ...record };
  delete copy[key];
  return copy;
}

function withStatus(report: Report, status: Status, at: string): Report {
  return { ...report, reportStatus: status, updatedAt: laterTime(report.updatedAt, at) };
}

export function applyEvent(state: BoardState, event: BoardEvent): BoardState {
  switch (event.type) {
    case 'stream_reset':
      return Object.keys(state.orphanUpdates).length ? { ...state, orphanUpdates: {} } : state;

    case 'snapshot': {
      const byId: Record<string, Report> = {};
      for (const r of event.reports) {
        const seen = byId[r.reportId];
        byId[r.reportId] = seen && laterTime(seen.updatedAt, r.updatedAt) === seen.updatedAt ? seen : r;
      }
      // Keep messages about reports that are still there; updates kept aside came from an
      // older connection, and the snapshot is newer than all of them.
      const notices: Record<string, Notice> = {};
      for (const [id, n] of Object.entries(state.notices)) if (id in byId) notices[id] = n;
      return { ...state, loaded: true, truncated: null, byId, orphanUpdates: {}, notices };
    }

    case 'snapshot_truncated':
      return { ...state, truncated: { total: event.total, sent: event.sent } };

    case 'new_report': {
      const r = event.report;
      if (r.reportId in state.byId) return state; // duplicate or late: the list is newer
      const orphan = state.orphanUpdates[r.reportId];
      const report = orphan ? withStatus(r, orphan.status, orphan.at) : r;
      return {
        ...state,
        byId: { ...state.byId, [r.reportId]: report },
        orphanUpdates: without(state.orphanUpdates, r.reportId),
      };
    }

    case 'report_status_update': {
      const current = state.byId[event.id];
      if (!current) {
        return {
          ...state,
          orphanUpdates: { ...state.orphanUpdates, [event.id]: { status: event.status, at: event.at } },
        };
      }
      const busy = without(state.busy, event.id);
      if (current.reportStatus === event.status) return busy === state.busy ? state : { ...state, busy }; // duplicate
      return { ...state, busy, byId: { ...state.byId, [event.id]: withStatus(current, event.status, event.at) } };
    }

    case 'report_status_rejected':
      return {
        ...state,
        busy: without(state.busy, event.id),
        notices: {
          ...state.notices,
          [event.id]: {
            kind: 'rejected',
            message: `Could not move to ${event.status}: ${event.reason}`,
            at: event.at,
          },
        },
      };

    case 'presence': {
      const { connections, instances } = event;
      const p = state.presence;
      if (p && p.connections === connections && p.instances === instances) return state;
      return { ...state, presence: { connections, instances } };
    }

    case 'request_started':
      return {
        ...state,
        busy: { ...state.busy, [event.id]: event.status },
        notices: without(state.notices, event.id),
      };

    case 'request_settled': {
      const busy = without(state.busy, event.id);
      return busy === state.busy ? state : { ...state, busy };
    }

    case 'request_failed':
      return {
        ...state,
        busy: without(state.busy, event.id),
        notices: { ...state.notices, [event.id]: { kind: 'error', message: event.message, at: event.at } },
      };

    case 'dismiss_notice': {
      const notices = without(state.notices, event.id);
      return notices === state.notices ? state : { ...state, notices };
    }

    case 'reset':
      return initialState;
  }
}

/** The reports to show: newest first (the order the eye expects for a live list). */
export function selectReports(state: BoardState): Report[] {
  return Object.values(state.byId).sort(
    (a, b) =>
      (Date.parse(b.createdAt) || 0) - (Date.parse(a.createdAt) || 0) ||
      (a.reportId < b.reportId ? -1 : a.reportId > b.reportId ? 1 : 0),
  );
}
