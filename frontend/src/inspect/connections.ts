// The inspector's log: one record per connection (what was asked, what answered, every
// frame with its arrival time, how it ended) and what the connection showed about resume:
// the `reset` and its reason, the /v4 `snapshot` or its absence, the events replayed.
// A pure reducer, so the page is a function of the actions the streams report.
//
// "Replayed" is read from timing, since the wire does not mark a replay: on a connection
// of /v2–/v4 that sent `Last-Event-ID` and got no `reset`, the server writes the missed events at once, right after the
// headers, before any live event, so an event with an id that arrives within
// REPLAY_WINDOW_MS of the response counts as replayed. A live event posted in that same
// quarter of a second would be counted too; the times are on every frame to check.
//
// The log is bounded: the newest MAX_FRAMES frames of a connection (older ones counted in
// `dropped`; the facts above are kept as they were seen) and the newest MAX_CONNECTIONS.

import { resetInfo, presenceText } from './describeFrame.ts';
import type { StreamEnd, StreamResponse } from './openStream.ts';
import { STEP_INFO, type Step } from './routes.ts';
import type { SseFrame } from './sseParser.ts';

export const REPLAY_WINDOW_MS = 250;
export const MAX_FRAMES = 1000;
export const MAX_CONNECTIONS = 20;

export interface ReceivedFrame {
  /** Unique in the log, in arrival order. */
  seq: number;
  frame: SseFrame;
  /** Arrival, in ms since the request was sent. */
  ms: number;
  /** Arrival, in ms since 1970. */
  wall: number;
  /** An event with an id that came at once with a resumed connection's response. */
  replayed: boolean;
}

export interface ConnectionRecord {
  /** 1, 2, …: the connection's number on this page. */
  n: number;
  step: Step;
  user: string;
  url: string;
  /** The `Last-Event-ID` header sent, or null for none. */
  lastEventIdSent: string | null;
  /** When the request was sent, in ms since 1970. */
  openedAt: number;
  response: StreamResponse | null;
  frames: ReceivedFrame[];
  dropped: number;
  /** The last event id once the latest frame was read (the one sent until an id arrives). */
  lastEventId: string;
  /** Dispatched events, of every type. */
  events: number;
  replayed: number;
  reset: { reason: string; lastEventId: string | null } | null;
  /** The reports in the connection's first `snapshot`, or null when none came (yet). */
  snapshot: number | null;
  /** What the latest `presence` event said. */
  presence: string | null;
  end: { end: StreamEnd; ms: number } | null;
}

export interface LogState {
  connections: ConnectionRecord[];
  nextSeq: number;
}

export type LogAction =
  | { type: 'open'; n: number; step: Step; user: string; url: string; lastEventIdSent: string | null; wall: number }
  | { type: 'response'; n: number; response: StreamResponse }
  | { type: 'frames'; n: number; frames: SseFrame[]; ms: number; wall: number }
  | { type: 'end'; n: number; end: StreamEnd; ms: number };

export const initialLog: LogState = { connections: [], nextSeq: 1 };

function snapshotSize(data: string): number | null {
  try {
    const v: unknown = JSON.parse(data);
    return Array.isArray(v) ? v.length : null;
  } catch {
    return null;
  }
}

function addFrames(c: ConnectionRecord, frames: SseFrame[], ms: number, wall: number, seq: number): ConnectionRecord {
  const next = { ...c };
  const inWindow =
    STEP_INFO[c.step].resumes &&
    c.lastEventIdSent !== null &&
    c.response !== null &&
    ms - c.response.ms <= REPLAY_WINDOW_MS;
  const received = frames.map((frame, i): ReceivedFrame => {
    const e = frame.event;
    const hasId = frame.lines.some((l) => l.kind === 'field' && l.name === 'id' && l.used);
    // after a reset nothing is replayed: a snapshot (/v4) and live events follow
    const replayed =
      e !== null && hasId && inWindow && next.reset === null && e.type !== 'reset' && !e.type.startsWith('snapshot');
    if (e) {
      next.events += 1;
      if (replayed) next.replayed += 1;
      if (e.type === 'reset' && next.reset === null)
        next.reset = resetInfo(e.data) ?? { reason: '?', lastEventId: null };
      if (e.type === 'snapshot' && next.snapshot === null) next.snapshot = snapshotSize(e.data);
      if (e.type === 'presence') next.presence = presenceText(e.data) ?? next.presence;
    }
    next.lastEventId = frame.lastEventId;
    return { seq: seq + i, frame, ms, wall, replayed };
  });
  const all = [...c.frames, ...received];
  const over = Math.max(0, all.length - MAX_FRAMES);
  next.frames = over > 0 ? all.slice(over) : all;
  next.dropped = c.dropped + over;
  return next;
}

function update(state: LogState, n: number, change: (c: ConnectionRecord) => ConnectionRecord): LogState {
  return { ...state, connections: state.connections.map((c) => (c.n === n ? change(c) : c)) };
}

export function logReducer(state: LogState, action: LogAction): LogState {
  switch (action.type) {
    case 'open': {
      const record: ConnectionRecord = {
        n: action.n,
        step: action.step,
        user: action.user,
        url: action.url,
        lastEventIdSent: action.lastEventIdSent,
        openedAt: action.wall,
        response: null,
        frames: [],
        dropped: 0,
        lastEventId: action.lastEventIdSent ?? '',
        events: 0,
        replayed: 0,
        reset: null,
        snapshot: null,
        presence: null,
        end: null,
      };
      return { ...state, connections: [...state.connections, record].slice(-MAX_CONNECTIONS) };
    }
    case 'response':
      return update(state, action.n, (c) => ({ ...c, response: action.response }));
    case 'frames':
      return {
        connections: state.connections.map((c) =>
          c.n === action.n && c.end === null ? addFrames(c, action.frames, action.ms, action.wall, state.nextSeq) : c,
        ),
        nextSeq: state.nextSeq + action.frames.length,
      };
    case 'end':
      return update(state, action.n, (c) => (c.end ? c : { ...c, end: { end: action.end, ms: action.ms } }));
  }
}

/** The connection still open, if any (the newest one, when it has not ended). */
export function openConnection(state: LogState): ConnectionRecord | null {
  const last = state.connections.at(-1);
  return last && last.end === null ? last : null;
}

/** The id "Reconnect with last id" sends: the newest connection's last event id, or null when it has none. */
export function resumeId(state: LogState): string | null {
  const last = state.connections.at(-1);
  return last && last.lastEventId !== '' ? last.lastEventId : null;
}
