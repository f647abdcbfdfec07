// The cookie session as the inspector reads it from `GET /auth/session`'s answer: whether
// the server checks tokens, whose the cookie is, and whether it may publish (the scope
// every `POST /v2|v3/message` and `/broadcast` needs, even to oneself). The board reads
// the same answer (api.ts `toSessionAnswer`) but has no use for `publish`.

import { toSessionAnswer } from '../api.ts';
import { isRecord } from '../wire.ts';

export interface InspectSession {
  auth: boolean;
  sub: string | null;
  /** When the token expires, in seconds since 1970. */
  exp: number | null;
  publish: boolean;
}

/** The session a `GET /auth/session` body describes, or null when it is not one. */
export function readSession(body: string): InspectSession | null {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return null;
  }
  const answer = toSessionAnswer(v);
  if (!answer || !isRecord(v)) return null;
  return { ...answer, publish: v.publish === true };
}

/** One sentence for the session panel. */
export function sessionText(s: InspectSession | null): string {
  if (s === null) return 'Checking whether the server asks for a token…';
  if (!s.auth) return 'Authorization is off: any user may be read and posted to, no token needed.';
  if (s.sub === null) return 'Authorization is on and this browser has no session: paste a token to sign in.';
  const until = s.exp === null ? '' : `, until ${new Date(s.exp * 1000).toLocaleTimeString()}`;
  const scope = s.publish
    ? 'may post messages and broadcasts to anyone'
    : 'may not post messages or broadcasts (no publish scope), but may use its own /v4 reports';
  return `Signed in as ${s.sub}${until}; ${scope}.`;
}
