// Who is signed in.
//
// Authorization off (the server's default): the signed-in user lives in the URL
// (?user=UUID), so a reload or a second tab opened with the same address stays signed in,
// and the back button works.
//
// Authorization on (`GET /auth/session` answers `auth: true`): the user pastes a token,
// the server keeps it in an HttpOnly cookie (`POST /auth/session`), and the user id is the
// token's `sub`. Every request and the event stream carry the cookie. The session ends on
// sign-out (`DELETE /auth/session`), or when the token expires: at its `exp`, or on a 401
// from the API, the session is checked again and an expired one brings the sign-in back
// with a plain message.
import { useCallback, useEffect, useRef, useState } from 'react';
import { normalizeUuid } from './uuid.ts';
import { ApiError, closeSession, getSession, onUnauthorized, openSession, type SessionAnswer } from './api.ts';

export type Session =
  { kind: 'signed-in'; userId: string; expiresAt?: number } | { kind: 'signed-out'; error?: string; draft?: string };

export const EXPIRED = 'Your session has expired. Paste a new token to sign in again.';

/** A JavaScript timer cannot wait longer than this (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function sessionFromSearch(search: string): Session {
  const raw = new URLSearchParams(search).get('user');
  if (raw === null || raw.trim() === '') return { kind: 'signed-out' };
  const userId = normalizeUuid(raw);
  if (userId) return { kind: 'signed-in', userId };
  return { kind: 'signed-out', draft: raw, error: `The address names the user "${raw}", which is not a UUID.` };
}

/** The session a server with authorization on describes: its token's `sub` is the user id. */
export function sessionFromAnswer(answer: SessionAnswer): Session {
  if (answer.sub === null) return { kind: 'signed-out' };
  const userId = normalizeUuid(answer.sub);
  if (!userId) {
    return {
      kind: 'signed-out',
      error: `This token is for "${answer.sub}", which is not a user id (UUID). Ask for a token whose subject is your user id.`,
    };
  }
  return answer.exp === null
    ? { kind: 'signed-in', userId }
    : { kind: 'signed-in', userId, expiresAt: answer.exp * 1000 };
}

/** How long to wait before checking a session that expires at `expiresAt` (ms since 1970). */
export function expiryDelay(expiresAt: number, now: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - now + 500));
}

export function useSession() {
  // null until the server said whether it checks tokens
  const [auth, setAuth] = useState<boolean | null>(null);
  const [session, setSession] = useState<Session>(() => sessionFromSearch(window.location.search));
  const current = useRef(session);
  useEffect(() => {
    current.current = session;
  }, [session]);

  useEffect(() => {
    let live = true;
    void getSession().then((answer) => {
      if (!live) return;
      if (answer.auth) setSession(sessionFromAnswer(answer));
      setAuth(answer.auth);
    });
    return () => {
      live = false;
    };
  }, []);

  useEffect(() => {
    if (auth !== false) return;
    const onPop = () => setSession(sessionFromSearch(window.location.search));
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, [auth]);

  // With authorization on: is the signed-in session still valid? If not, back to sign-in.
  const recheck = useCallback(async () => {
    if (current.current.kind !== 'signed-in') return;
    const answer = await getSession();
    if (answer.auth && answer.sub === null && current.current.kind === 'signed-in') {
      setSession({ kind: 'signed-out', error: EXPIRED });
    }
  }, []);

  useEffect(() => (auth ? onUnauthorized(() => void recheck()) : undefined), [auth, recheck]);

  useEffect(() => {
    if (!auth || session.kind !== 'signed-in' || session.expiresAt === undefined) return;
    const timer = setTimeout(() => void recheck(), expiryDelay(session.expiresAt, Date.now()));
    return () => clearTimeout(timer);
  }, [auth, session, recheck]);

  const signIn = useCallback((userId: string) => {
    const url = new URL(window.location.href);
    url.searchParams.set('user', userId);
    window.history.pushState(null, '', url);
    setSession({ kind: 'signed-in', userId });
  }, []);

  /** Opens the cookie session; resolves to an error sentence, or null when signed in. */
  const signInWithToken = useCallback(async (token: string): Promise<string | null> => {
    try {
      const next = sessionFromAnswer(await openSession(token));
      if (next.kind === 'signed-in') {
        setSession(next);
        return null;
      }
      await closeSession().catch(() => {});
      return next.error ?? 'The token names no user.';
    } catch (e) {
      return e instanceof ApiError ? e.message : String(e);
    }
  }, []);

  const signOut = useCallback(async () => {
    if (auth) {
      await closeSession().catch(() => {});
    } else {
      const url = new URL(window.location.href);
      url.searchParams.delete('user');
      window.history.pushState(null, '', url);
    }
    setSession({ kind: 'signed-out' });
  }, [auth]);

  return { auth, session, signIn, signInWithToken, signOut };
}
