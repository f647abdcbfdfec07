// The routes the inspector calls, per step, with the contract's exact names
// (docs/openapi.json; routes.test.ts checks them against it): each step's stream, who its
// user is (`username` on /v1–/v3, `user_id` on /v4), and the requests that make events
// (messages and broadcasts on /v2 and /v3, reports on /v4), and the cookie session of
// /auth/session, the same one the board signs in with. A blank user leaves the
// parameter out, which the server allows when authorization is on (the token's `sub`)
// and answers with a 400 otherwise: the inspector shows that answer rather than hiding it.

import type { Status } from '../transitions.ts';

export const STEPS = ['v1', 'v2', 'v3', 'v4'] as const;

export type Step = (typeof STEPS)[number];

export function isStep(value: unknown): value is Step {
  return typeof value === 'string' && (STEPS as readonly string[]).includes(value);
}

export interface StepInfo {
  title: string;
  /** The query parameter that names the user of the stream. */
  userParam: 'username' | 'user_id';
  /** Whether the server resumes a stream from `Last-Event-ID` (/v1 keeps nothing). */
  resumes: boolean;
  /** Whether a connection that does not resume exactly starts with a `snapshot`. */
  snapshot: boolean;
  /** What the page can post to make events. */
  posts: 'nothing' | 'messages' | 'reports';
}

export const STEP_INFO: Readonly<Record<Step, StepInfo>> = {
  v1: { title: 'v1 · the simplest stream', userParam: 'username', resumes: false, snapshot: false, posts: 'nothing' },
  v2: { title: 'v2 · per-user channels', userParam: 'username', resumes: true, snapshot: false, posts: 'messages' },
  v3: { title: 'v3 · through the bus', userParam: 'username', resumes: true, snapshot: false, posts: 'messages' },
  v4: { title: 'v4 · report board', userParam: 'user_id', resumes: true, snapshot: true, posts: 'reports' },
};

/** A request the page sends and shows: method, URL (path and query) and body. */
export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  body?: string;
  contentType?: string;
  /** More headers; the page shows their names only (a token stays off the screen). */
  headers?: Record<string, string>;
}

function withQuery(path: string, params: Record<string, string>): string {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value.trim() !== '') q.set(name, value.trim());
  const query = q.toString();
  return query ? `${path}?${query}` : path;
}

/** `GET /vN/sse` of `user` (left out when blank). */
export function streamUrl(step: Step, user: string): string {
  return withQuery(`/${step}/sse`, { [STEP_INFO[step].userParam]: user });
}

export type MessageStep = 'v2' | 'v3';

/** `POST /v2|v3/message?username=…`: the text to every open stream of that user. */
export function messageRequest(step: MessageStep, username: string, text: string): HttpRequest {
  const url = withQuery(`/${step}/message`, { username });
  return { method: 'POST', url, body: text, contentType: 'text/plain; charset=utf-8' };
}

/** `POST /v2|v3/broadcast`: the text to every open stream of the step. */
export function broadcastRequest(step: MessageStep, text: string): HttpRequest {
  return { method: 'POST', url: `/${step}/broadcast`, body: text, contentType: 'text/plain; charset=utf-8' };
}

/** `POST /v4/new/report?user_id=…`: a new `pending` report. */
export function createReportRequest(userId: string): HttpRequest {
  return { method: 'POST', url: withQuery('/v4/new/report', { user_id: userId }) };
}

/** `PUT /v4/report?user_id=…` with `{"id", "status"}`: asks for a status change. */
export function moveReportRequest(userId: string, reportId: string, status: Status): HttpRequest {
  return {
    method: 'PUT',
    url: withQuery('/v4/report', { user_id: userId }),
    body: JSON.stringify({ id: reportId.trim(), status }),
    contentType: 'application/json',
  };
}

/** `/auth/session`: GET reads the session, POST trades a token for the cookie, DELETE clears it. */
export function sessionRequest(method: 'GET' | 'DELETE'): HttpRequest;
export function sessionRequest(method: 'POST', token: string): HttpRequest;
export function sessionRequest(method: 'GET' | 'POST' | 'DELETE', token?: string): HttpRequest {
  if (method !== 'POST') return { method, url: '/auth/session' };
  return { method, url: '/auth/session', headers: { Authorization: `Bearer ${(token ?? '').trim()}` } };
}
