// The requests the dashboard makes: the three /v4 ones and /auth/session. Errors become
// ApiError with the server's own sentence (`{"error": "..."}`), or a plain one when the
// server could not be reached. A 401 from a /v4 request is also told to the listener set
// with `onUnauthorized` (the session, which then checks whether it has expired).

import { toReport } from './wire.ts';
import type { Report } from './types.ts';
import type { Status } from './transitions.ts';

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** The message to show for a failed response: the server's `error` field when it has one. */
export async function errorMessage(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === 'object' && body !== null && 'error' in body) {
      const e = (body as { error: unknown }).error;
      if (typeof e === 'string' && e.trim()) return e.trim();
    }
  } catch {
    // not JSON: fall through
  }
  const reason = res.statusText ? ` ${res.statusText}` : '';
  if (res.status === 502 || res.status === 504) {
    return `The server is not reachable (HTTP ${res.status}${reason}). Is sse-server running?`;
  }
  return `The server answered HTTP ${res.status}${reason}.`;
}

async function send(url: string, init?: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, headers: { Accept: 'application/json', ...init?.headers } });
  } catch {
    throw new ApiError(0, 'Could not reach the server. Check that sse-server is running, then try again.');
  }
  if (!res.ok) {
    if (res.status === 401) unauthorizedListener?.();
    throw new ApiError(res.status, await errorMessage(res));
  }
  return res;
}

let unauthorizedListener: (() => void) | null = null;

/** Calls `listener` on every 401 answer; returns the function that stops it. */
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListener = listener;
  return () => {
    if (unauthorizedListener === listener) unauthorizedListener = null;
  };
}

/** `GET /auth/session`: whether the server checks tokens, and whose the cookie is. */
export interface SessionAnswer {
  auth: boolean;
  sub: string | null;
  /** When the token expires, in seconds since 1970. */
  exp: number | null;
}

export function toSessionAnswer(body: unknown): SessionAnswer | null {
  if (typeof body !== 'object' || body === null) return null;
  const { auth, sub, exp } = body as Record<string, unknown>;
  if (typeof auth !== 'boolean') return null;
  return {
    auth,
    sub: typeof sub === 'string' && sub !== '' ? sub : null,
    exp: typeof exp === 'number' && Number.isFinite(exp) ? exp : null,
  };
}

/** Reads the session. A server without /auth/session (or an unreadable answer) means no authorization. */
export async function getSession(baseUrl = ''): Promise<SessionAnswer> {
  const off: SessionAnswer = { auth: false, sub: null, exp: null };
  try {
    const res = await fetch(`${baseUrl}/auth/session`, { headers: { Accept: 'application/json' } });
    if (!res.ok) return off;
    return toSessionAnswer(await res.json().catch(() => null)) ?? off;
  } catch {
    return off;
  }
}

/** `POST /auth/session`: trades a pasted token for the session cookie. */
export async function openSession(token: string, baseUrl = ''): Promise<SessionAnswer> {
  const res = await send(`${baseUrl}/auth/session`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token.trim()}` },
  });
  const answer = toSessionAnswer(await res.json().catch(() => null));
  if (!answer?.sub) throw new ApiError(res.status, 'The server opened a session but did not say for whom.');
  return answer;
}

/** `DELETE /auth/session`: clears the cookie. */
export async function closeSession(baseUrl = ''): Promise<void> {
  await send(`${baseUrl}/auth/session`, { method: 'DELETE' });
}

const q = (userId: string) => `user_id=${encodeURIComponent(userId)}`;

export async function createReport(userId: string, baseUrl = ''): Promise<Report> {
  const res = await send(`${baseUrl}/v4/new/report?${q(userId)}`, { method: 'POST' });
  const report = toReport(await res.json().catch(() => null));
  if (!report) throw new ApiError(res.status, 'The server sent a report this page does not understand.');
  return report;
}

/** Asks for a status change. Resolves on 202: the change itself arrives as an SSE event. */
export async function requestStatus(userId: string, id: string, status: Status, baseUrl = ''): Promise<void> {
  await send(`${baseUrl}/v4/report?${q(userId)}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ id, status }),
  });
}
