// One HTTP request of the inspector and its answer, kept whole for the page to show:
// status, content type and body (JSON pretty-printed), whatever the status. Unlike api.ts,
// which turns a failure into a sentence for the board, nothing is interpreted here: a 403
// or a 409 is the lesson, not an error to hide. The session cookie goes with every request
// (`credentials: 'same-origin'`), so a page signed in on the dashboard is signed in here.

import type { HttpRequest } from './routes.ts';

export interface HttpAnswer {
  request: HttpRequest;
  /** 0 when no answer came (the server is down, or the connection broke). */
  status: number;
  statusText: string;
  contentType: string | null;
  /** The body as text, pretty-printed when it is JSON. */
  body: string;
  /** How long the answer took, in ms. */
  ms: number;
}

/** A body for reading: JSON indented, anything else as it came. */
export function showBody(text: string): string {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) return text;
  try {
    return JSON.stringify(JSON.parse(trimmed), null, 2);
  } catch {
    return text;
  }
}

/** The JSON value of a body, or undefined when it is not JSON. */
export function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Sends `request` and resolves to its answer; never rejects. */
export async function exchange(
  request: HttpRequest,
  fetchImpl: typeof fetch = fetch,
  now: () => number = () => performance.now(),
): Promise<HttpAnswer> {
  const start = now();
  const headers: Record<string, string> = { Accept: 'application/json', ...request.headers };
  if (request.contentType) headers['Content-Type'] = request.contentType;
  try {
    const res = await fetchImpl(request.url, {
      method: request.method,
      headers,
      body: request.body,
      credentials: 'same-origin',
      cache: 'no-store',
    });
    const text = await res.text().catch(() => '');
    return {
      request,
      status: res.status,
      statusText: res.statusText,
      contentType: res.headers.get('content-type'),
      body: showBody(text),
      ms: Math.round(now() - start),
    };
  } catch (e) {
    return {
      request,
      status: 0,
      statusText: '',
      contentType: null,
      body: `No answer: ${e instanceof Error ? e.message : String(e)}. Is sse-server running?`,
      ms: Math.round(now() - start),
    };
  }
}
