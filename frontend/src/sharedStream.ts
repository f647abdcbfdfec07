// Every tab live: the tabs of one browser share one /v4/sse stream per user.
//
// Why: a browser opens at most six HTTP/1.1 connections per host. With one EventSource
// per tab, the seventh tab of the board hangs (its API calls too). Here one tab holds the
// stream and passes its events to the others, so the server sees one stream per browser
// whatever the number of tabs:
//
// - Election: every tab asks the Web Locks API for the lock `sse-server:v4-stream:<user>`.
//   The browser grants it to one tab at a time; when that tab closes, crashes or signs
//   out, the lock goes to the next tab waiting for it. (Chrome does not freeze a
//   background tab that holds a lock.)
// - The holder opens the EventSource (stream.ts) and posts each event, with its SSE id,
//   on the BroadcastChannel `sse-server:v4:<user>`; the other tabs apply them as if they
//   had received them themselves. Its connection state goes the same way.
// - A tab that opens later says `hello`; the holder answers with a `sync`: its board as a
//   snapshot, the latest presence count, and the last event id. (`presence` carries no id
//   and is never replayed, so a tab that missed it would otherwise show no count until
//   the count changes.)
// - Every tab remembers the last event id it saw, so the tab that takes over resumes the
//   stream from there: the server replays exactly what was missed (or, when it cannot,
//   sends `reset` and a snapshot).
// - After a deploy, tabs of the old and the new version share the channel until the old
//   ones reload, so a tab checks every message's shape (`isChannelMessage`) and ignores
//   one it does not understand instead of applying it.
//
// Without the Web Locks API or BroadcastChannel (old browsers; Web Locks also needs a
// secure context: https, localhost or 127.0.0.1), each tab opens its own stream.

import { applyEvent, initialState, type BoardState } from './reports.ts';
import { connectReportStream, type Connection, type StreamOptions } from './stream.ts';
import type { Presence, Report, ServerEvent } from './types.ts';
import { isStatus, type Status } from './transitions.ts';
import { newUuid } from './uuid.ts';
import { isCount, isRecord, toReport } from './wire.ts';

/** The part of `navigator.locks` used here (a test can pass a fake). */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>;
}

/** The part of BroadcastChannel used here (a test can pass a fake). */
export interface ChannelLike {
  onmessage: ((ev: MessageEvent) => unknown) | null;
  postMessage(message: unknown): void;
  close(): void;
}

/** What the tabs of one user say to each other. */
export type ChannelMessage =
  | { kind: 'event'; event: ServerEvent; id: string | null }
  | { kind: 'connection'; state: Connection }
  | { kind: 'hello'; from: string }
  | { kind: 'leader'; from: string }
  | {
      kind: 'sync';
      to: string;
      reports: Report[];
      orphans: { id: string; status: Status; at: string }[];
      lastEventId: string | null;
      connection: Connection;
      at: string;
      /** Absent from the `sync` of a version that did not know presence. */
      presence?: Presence | null;
    };

export type Role = 'waiting' | 'holder';

const isString = (v: unknown): v is string => typeof v === 'string';
const isIdOrNull = (v: unknown): v is string | null => v === null || isString(v);
const isReport = (v: unknown): v is Report => toReport(v) !== null;
const isConnection = (v: unknown): v is Connection => v === 'connecting' || v === 'live' || v === 'reconnecting';
const isPresence = (v: unknown): v is Presence => isRecord(v) && isCount(v.connections) && isCount(v.instances);

/** The event for a presence count; field by field, so nothing else it carries comes along. */
const presenceEvent = (p: Presence): ServerEvent => ({
  type: 'presence',
  connections: p.connections,
  instances: p.instances,
});

/** A decoded server event, as the holder posts it (`ServerEvent`). */
function isServerEvent(v: unknown): v is ServerEvent {
  if (!isRecord(v)) return false;
  switch (v.type) {
    case 'stream_reset':
      return isString(v.reason) && isString(v.at);
    case 'snapshot':
      return Array.isArray(v.reports) && v.reports.every(isReport) && isString(v.at);
    case 'snapshot_truncated':
      return isCount(v.total) && isCount(v.sent);
    case 'new_report':
      return isReport(v.report);
    case 'report_status_update':
      return isString(v.id) && isStatus(v.status) && isString(v.at);
    case 'report_status_rejected':
      return isString(v.id) && isStatus(v.status) && isString(v.reason) && isString(v.at);
    case 'presence':
      return isPresence(v);
    default:
      return false;
  }
}

/**
 * Whether a message from the channel is a `ChannelMessage` this version understands. The
 * channel is shared with tabs of other versions of the app, so anything can arrive.
 */
export function isChannelMessage(v: unknown): v is ChannelMessage {
  if (!isRecord(v)) return false;
  switch (v.kind) {
    case 'event':
      return isServerEvent(v.event) && isIdOrNull(v.id);
    case 'connection':
      return isConnection(v.state);
    case 'hello':
    case 'leader':
      return isString(v.from);
    case 'sync':
      return (
        isString(v.to) &&
        Array.isArray(v.reports) &&
        v.reports.every(isReport) &&
        Array.isArray(v.orphans) &&
        v.orphans.every((o) => isRecord(o) && isString(o.id) && isStatus(o.status) && isString(o.at)) &&
        isIdOrNull(v.lastEventId) &&
        isConnection(v.connection) &&
        isString(v.at) &&
        (v.presence === undefined || v.presence === null || isPresence(v.presence))
      );
    default:
      return false;
  }
}

export interface SharedStreamOptions extends StreamOptions {
  /** Default: `navigator.locks`; null forces one stream per tab. */
  locks?: LockManagerLike | null;
  /** Default: `new BroadcastChannel(name)`; null forces one stream per tab. */
  createChannel?: ((name: string) => ChannelLike) | null;
  /** This tab's name on the channel (default: a random UUID). */
  tabId?: string;
  /** Told when this tab starts holding the stream (for tests and diagnostics). */
  onRole?: (role: Role) => void;
}

export const lockName = (userId: string) => `sse-server:v4-stream:${userId}`;
export const channelName = (userId: string) => `sse-server:v4:${userId}`;

function defaultLocks(): LockManagerLike | null {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  return nav?.locks ?? null;
}

function defaultChannel(): ((name: string) => ChannelLike) | null {
  return typeof BroadcastChannel === 'function' ? (name) => new BroadcastChannel(name) : null;
}

/**
 * Like `connectReportStream`, but shared by the tabs of one browser: `onEvent` and
 * `onConnection` are called in every tab, while only one tab holds an EventSource.
 * Returns `close()` (sign-out, user change, unmount): it leaves the election, and a tab
 * that held the stream closes it so that another tab takes over.
 */
export function connectSharedReportStream(options: SharedStreamOptions): () => void {
  const {
    locks = defaultLocks(),
    createChannel = defaultChannel(),
    tabId = newUuid(),
    onRole,
    ...streamOptions
  } = options;
  if (!locks || !createChannel) return connectReportStream(streamOptions);

  const { userId, onEvent, onConnection, now = () => new Date().toISOString() } = streamOptions;
  const channel = createChannel(channelName(userId));
  const abort = new AbortController();
  // The board as the server's events make it (no local requests): what a `sync` sends.
  let shadow: BoardState = initialState;
  let lastEventId: string | null = null;
  let connection: Connection = 'connecting';
  let holding = false;
  let closed = false;
  let closeStream: (() => void) | null = null;
  let releaseLock: (() => void) | null = null;

  const post = (message: ChannelMessage) => {
    if (!closed) channel.postMessage(message);
  };

  const apply = (event: ServerEvent, id: string | null) => {
    if (id) lastEventId = id;
    shadow = applyEvent(shadow, event);
    onEvent(event, id);
  };

  const setConnection = (state: Connection) => {
    connection = state;
    onConnection(state);
  };

  const syncFor = (to: string): ChannelMessage => ({
    kind: 'sync',
    to,
    reports: Object.values(shadow.byId),
    orphans: Object.entries(shadow.orphanUpdates).map(([id, u]) => ({ id, status: u.status, at: u.at })),
    lastEventId,
    connection,
    at: now(),
    presence: shadow.presence,
  });

  channel.onmessage = (ev: MessageEvent) => {
    if (closed) return;
    const message: unknown = ev.data;
    // A tab of another version, or something else on the channel: not for this tab.
    if (!isChannelMessage(message)) return;
    switch (message.kind) {
      case 'event':
        if (!holding) apply(message.event, message.id);
        break;
      case 'connection':
        if (!holding) setConnection(message.state);
        break;
      case 'hello':
        // Until the holder has a board, the snapshot it receives reaches every tab
        // anyway; the connection state and a presence count it may already have are sent
        // at once (presence is not sent again until it changes).
        if (!holding) break;
        if (shadow.loaded) {
          post(syncFor(message.from));
        } else {
          post({ kind: 'connection', state: connection });
          if (shadow.presence) post({ kind: 'event', event: presenceEvent(shadow.presence), id: null });
        }
        break;
      case 'leader':
        // A new holder: a tab that has no board yet asks it (its first hello may have
        // gone unanswered while no tab held the stream).
        if (!holding && !shadow.loaded) post({ kind: 'hello', from: tabId });
        break;
      case 'sync':
        if (holding || message.to !== tabId) break;
        apply({ type: 'snapshot', reports: message.reports, at: message.at }, message.lastEventId);
        for (const o of message.orphans)
          apply({ type: 'report_status_update', id: o.id, status: o.status, at: o.at }, null);
        if (message.presence) apply(presenceEvent(message.presence), null);
        setConnection(message.connection);
        break;
    }
  };

  const hold = () => {
    if (closed) return Promise.resolve();
    holding = true;
    onRole?.('holder');
    post({ kind: 'leader', from: tabId });
    closeStream = connectReportStream({
      ...streamOptions,
      lastEventId,
      onEvent: (event, id) => {
        apply(event, id);
        post({ kind: 'event', event, id });
      },
      onConnection: (state) => {
        setConnection(state);
        post({ kind: 'connection', state });
      },
    });
    // Held until close(); the browser also releases it when the tab goes away.
    return new Promise<void>((resolve) => {
      releaseLock = resolve;
    });
  };

  onConnection('connecting');
  onRole?.('waiting');
  locks.request(lockName(userId), { signal: abort.signal }, hold).catch(() => {
    // AbortError: closed before it was this tab's turn.
  });
  post({ kind: 'hello', from: tabId });

  return () => {
    if (closed) return;
    closed = true;
    abort.abort();
    closeStream?.();
    closeStream = null;
    releaseLock?.();
    releaseLock = null;
    channel.onmessage = null;
    channel.close();
  };
}
