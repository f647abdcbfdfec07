// The three /v4 requests the dashboard makes. Errors become ApiError with the server's own
// sentence (`{"error": "..."}`), or a plain one when the server could not be reached.

import { toReport } from './reports.ts';
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
  if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
  return res;
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
