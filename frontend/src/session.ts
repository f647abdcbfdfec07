// The signed-in user lives in the URL (?user=UUID): a reload or a second tab opened with
// the same address stays signed in, and the back button works.
import { useCallback, useEffect, useState } from 'react';
import { normalizeUuid } from './uuid.ts';

export type Session =
  | { kind: 'signed-in'; userId: string }
  | { kind: 'signed-out'; error?: string; draft?: string };

export function sessionFromSearch(search: string): Session {
  const raw = new URLSearchParams(search).get('user');
  if (raw === null || raw.trim() === '') return { kind: 'signed-out' };
  const userId = normalizeUuid(raw);
  if (userId) return { kind: 'signed-in', userId };
  return { kind: 'signed-out', draft: raw, error: `The address names the user "${raw}", which is not a UUID.` };
}

export function useSession() {
  const [session, setSession] = useState<Session>(() => sessionFromSearch(window.location.search));

  useEffect(() => {
    const onPop = () => setSession(sessionFromSearch(window.location.search));
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  const signIn = useCallback((userId: string) => {
    const url = new URL(window.location.href);
    url.searchParams.set('user', userId);
    window.history.pushState(null, '', url);
    setSession({ kind: 'signed-in', userId });
  }, []);

  const signOut = useCallback(() => {
    const url = new URL(window.location.href);
    url.searchParams.delete('user');
    window.history.pushState(null, '', url);
    setSession({ kind: 'signed-out' });
  }, []);

  return { session, signIn, signOut };
}
