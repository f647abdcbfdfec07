// Who the inspector's requests are from: the board's cookie session (`/auth/session`),
// read when the page opens. With authorization off there is nothing to do; with it on,
// a session opened on the board already holds here (same origin, same cookie), or a
// pasted token opens one, and sign-out clears it, for the board too. Every request shows
// in the answers list like the others; the token itself never does.

import { useCallback, useEffect, useId, useState, type FormEvent } from 'react';
import { sessionRequest } from './routes.ts';
import { readSession, sessionText, type InspectSession } from './session.ts';
import type { Send } from './useAnswers.ts';

interface Props {
  session: InspectSession | null;
  onSession: (session: InspectSession) => void;
  send: Send;
}

const OFF: InspectSession = { auth: false, sub: null, exp: null, publish: false };

export function SessionPanel({ session, onSession, send }: Props) {
  const titleId = useId();
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);

  const check = useCallback(async () => {
    const answer = await send(sessionRequest('GET'));
    // a server without /auth/session has no authorization
    onSession((answer.status === 200 && readSession(answer.body)) || OFF);
  }, [send, onSession]);

  useEffect(() => {
    void check();
  }, [check]);

  const signIn = async (e: FormEvent) => {
    e.preventDefault();
    if (token.trim() === '') return;
    setBusy(true);
    const answer = await send(sessionRequest('POST', token));
    if (answer.status === 200) setToken('');
    await check();
    setBusy(false);
  };

  const signOut = async () => {
    setBusy(true);
    await send(sessionRequest('DELETE'));
    await check();
    setBusy(false);
  };

  return (
    <section className="card inspect-panel" aria-labelledby={titleId}>
      <h2 id={titleId}>Session</h2>
      <p className="inspect-status" role="status" data-testid="inspect-session">
        {sessionText(session)}
      </p>
      {session?.auth && (
        <form className="inspect-form" onSubmit={(e) => void signIn(e)}>
          <label className="inspect-field">
            <span className="field-label">Token</span>
            <textarea
              className="input"
              rows={2}
              data-testid="inspect-token"
              value={token}
              placeholder="Paste a token (eyJ…): sse-server token <sub> [--publish]"
              spellCheck={false}
              autoComplete="off"
              onChange={(e) => setToken(e.target.value)}
            />
          </label>
          <div className="inspect-buttons">
            <button type="submit" className="btn btn-primary" disabled={busy || token.trim() === ''}>
              Sign in
            </button>
            <button
              type="button"
              className="btn"
              disabled={busy || session.sub === null}
              onClick={() => void signOut()}
            >
              Sign out
            </button>
            <button type="button" className="btn btn-ghost" disabled={busy} onClick={() => void check()}>
              Check session
            </button>
          </div>
        </form>
      )}
      <p className="muted inspect-small">
        The board and this page share one cookie session: signing in on either signs in both. Streams and requests here
        send it (<code>credentials: same-origin</code>).
      </p>
    </section>
  );
}
