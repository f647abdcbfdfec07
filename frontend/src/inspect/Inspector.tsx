// The inspector page (`/inspect`): a stream of any step read raw, frame by frame, beside
// the requests that make its events, so what the guides describe (keep-alives, `retry:`,
// ids, resume, `reset`, the /v4 snapshot) can be watched happening. The panels hold the
// controls; below them, the log holds one section per connection, newest first, each with
// its frames in arrival order, and beside it the answers of the page's requests.

import { useCallback, useEffect, useId, useState } from 'react';
import { Logo } from '../Logo.tsx';
import { normalizeUuid } from '../uuid.ts';
import { AnswerList } from './AnswerList.tsx';
import { ConnectionView } from './ConnectionView.tsx';
import { boardHref, initialForm } from './links.ts';
import { PostPanel } from './PostPanel.tsx';
import { STEP_INFO } from './routes.ts';
import { SessionPanel } from './SessionPanel.tsx';
import type { InspectSession } from './session.ts';
import { StreamPanel, type StreamForm } from './StreamPanel.tsx';
import { useAnswers } from './useAnswers.ts';
import { useStreams } from './useStreams.ts';

export function Inspector() {
  const [form, setForm] = useState<StreamForm>(() => initialForm(window.location.search));
  const [session, setSession] = useState<InspectSession | null>(null);
  const streams = useStreams();
  const { answers, send } = useAnswers();
  const logTitleId = useId();

  useEffect(() => {
    document.title = 'Stream inspector';
  }, []);

  const onForm = useCallback((change: Partial<StreamForm>) => setForm((f) => ({ ...f, ...change })), []);

  // Signed in with authorization on: the token's user is the natural one to watch.
  const onSession = useCallback((next: InspectSession) => {
    setSession(next);
    const sub = next.sub;
    if (!next.auth || sub === null) return;
    setForm((f) => ({
      ...f,
      username: f.username === initialForm('').username ? sub : f.username,
      userId: f.userId || (normalizeUuid(sub) ?? ''),
    }));
  }, []);

  const user = STEP_INFO[form.step].userParam === 'user_id' ? form.userId : form.username;

  return (
    <div className="app inspect">
      <header className="topbar">
        <div className="topbar-inner inspect-wide">
          <div className="brand">
            <Logo />
            <span className="brand-name">Stream inspector</span>
          </div>
          <a className="btn btn-ghost" href={boardHref(form.userId)} data-testid="back-to-board">
            Back to the board
          </a>
        </div>
      </header>

      <main className="content inspect-wide">
        <div className="toolbar">
          <div>
            <h1>Stream inspector</h1>
            <p className="muted">
              Every frame of a stream as it arrives, raw: the <code>retry:</code>, <code>id:</code>, <code>event:</code>{' '}
              and <code>data:</code> lines and the <code>:</code> comments EventSource hides.
            </p>
          </div>
        </div>

        <div className="inspect-grid">
          <StreamPanel
            form={form}
            onForm={onForm}
            auth={session?.auth ?? false}
            live={streams.live}
            last={streams.last}
            lastId={streams.lastId}
            onOpen={() => streams.open(form.step, user, null)}
            onCut={streams.cut}
            onReconnect={streams.reconnect}
          />
          <PostPanel step={form.step} username={form.username} userId={form.userId} send={send} />
          <SessionPanel session={session} onSession={onSession} send={send} />
        </div>

        <div className="inspect-main">
          <section className="inspect-section" aria-labelledby={logTitleId}>
            <h2 id={logTitleId}>Connections</h2>
            {/* aria-live off: a keep-alive every few seconds must not be read out */}
            <div className="connections" role="log" aria-label="frames" aria-live="off">
              {streams.log.connections.length === 0 ? (
                <p className="muted">Open a stream: each connection shows here, newest first.</p>
              ) : (
                [...streams.log.connections].reverse().map((c) => <ConnectionView key={c.n} connection={c} />)
              )}
            </div>
          </section>
          <AnswerList answers={answers} />
        </div>
      </main>
    </div>
  );
}
