// One connection as the inspector shows it: the request (URL, the Last-Event-ID sent), the
// response (status, the headers that matter, an error body), what it showed about resume
// (replayed events, a reset and its reason, the /v4 snapshot or its absence), how it
// ended, then its frames (FrameList.tsx).

import { REPLAY_WINDOW_MS, type ConnectionRecord } from './connections.ts';
import { FrameList } from './FrameList.tsx';
import type { StreamEnd } from './openStream.ts';
import { STEP_INFO } from './routes.ts';
import { clockText, sinceText } from './times.ts';

function endText(end: StreamEnd, ms: number): string {
  switch (end.kind) {
    case 'cut':
      return `cut here at ${sinceText(ms)}`;
    case 'ended': {
      const { lines, chars } = end.unfinished;
      const dropped = lines > 0 ? `; an unfinished frame (${lines} lines, ${chars} characters) was discarded` : '';
      return `ended by the server at ${sinceText(ms)}${dropped}`;
    }
    case 'refused':
      return 'refused: not a 200 event stream (see the response)';
    case 'failed':
      return `failed at ${sinceText(ms)}: ${end.message}`;
  }
}

const END_LABEL: Record<StreamEnd['kind'], string> = {
  cut: 'Cut',
  ended: 'Ended',
  refused: 'Refused',
  failed: 'Failed',
};

/** The connection's pill: open, still connecting, or how it ended. */
function stateOf(c: ConnectionRecord): { label: string; className: string } {
  if (c.end) return { label: END_LABEL[c.end.end.kind], className: 'conn-ended' };
  return c.response
    ? { label: 'Open', className: 'conn-live' }
    : { label: 'Connecting…', className: 'conn-connecting' };
}

function snapshotText(c: ConnectionRecord): string {
  if (c.snapshot !== null) return `${c.snapshot} ${c.snapshot === 1 ? 'report' : 'reports'}`;
  if (c.lastEventIdSent !== null && c.reset === null && c.response?.status === 200) {
    return 'none: resumed exactly, only the missed events come';
  }
  return c.end ? 'none came' : 'not yet';
}

export function ConnectionView({ connection: c }: { connection: ConnectionRecord }) {
  const titleId = `connection-${c.n}-title`;
  const info = STEP_INFO[c.step];
  const state = stateOf(c);
  const resumed = c.lastEventIdSent !== null && info.resumes;
  return (
    <section className="card connection" aria-labelledby={titleId} data-testid="connection" data-n={c.n}>
      <div className="connection-head">
        <h3 id={titleId}>Connection {c.n}</h3>
        <span
          className={`conn ${state.className}`}
          data-testid="connection-state"
          data-state={state.label.toLowerCase()}
        >
          <span className="conn-dot" aria-hidden="true" />
          {state.label}
        </span>
        <span className="muted inspect-small">opened {clockText(c.openedAt)}</span>
      </div>
      <dl className="facts">
        <dt>Request</dt>
        <dd>
          <code data-testid="connection-url">GET {c.url}</code>
        </dd>
        <dt>Last-Event-ID sent</dt>
        <dd data-testid="connection-last-event-id">
          {c.lastEventIdSent === null ? 'none' : <code>{c.lastEventIdSent}</code>}
        </dd>
        <dt>Response</dt>
        <dd data-testid="connection-response">
          {c.response ? (
            <>
              <strong>
                {c.response.status} {c.response.statusText}
              </strong>{' '}
              at {sinceText(c.response.ms)}
              {c.response.headers.map(([name, value]) => (
                <span key={name} className="header">
                  <code>
                    {name}: {value}
                  </code>
                </span>
              ))}
            </>
          ) : c.end ? (
            'none'
          ) : (
            'waiting…'
          )}
        </dd>
        {c.response && c.response.body !== null && (
          <>
            <dt>Body</dt>
            <dd>
              <pre className="answer-body" data-testid="connection-error">
                {c.response.body}
              </pre>
            </dd>
          </>
        )}
        {info.resumes && (
          <>
            <dt>Reset</dt>
            <dd data-testid="connection-reset">
              {c.reset ? (
                <>
                  <strong>{c.reset.reason}</strong>
                  {c.reset.lastEventId !== null && (
                    <>
                      {' '}
                      (lastEventId <code>{c.reset.lastEventId}</code>)
                    </>
                  )}
                </>
              ) : (
                'none'
              )}
            </dd>
          </>
        )}
        {info.snapshot && (
          <>
            <dt>Snapshot</dt>
            <dd data-testid="connection-snapshot">{snapshotText(c)}</dd>
          </>
        )}
        {resumed && (
          <>
            <dt>Replayed</dt>
            <dd
              data-testid="connection-replayed"
              title={`events with an id within ${REPLAY_WINDOW_MS} ms of the response`}
            >
              {c.replayed} {c.replayed === 1 ? 'event' : 'events'}
            </dd>
          </>
        )}
        {c.presence !== null && (
          <>
            <dt>Presence</dt>
            <dd data-testid="connection-presence">{c.presence}</dd>
          </>
        )}
        <dt>Events</dt>
        <dd>
          {c.events} dispatched · last id {c.lastEventId === '' ? 'none' : <code>{c.lastEventId}</code>}
        </dd>
        {c.end && (
          <>
            <dt>End</dt>
            <dd data-testid="connection-end">{endText(c.end.end, c.end.ms)}</dd>
          </>
        )}
      </dl>
      <FrameList connection={c} />
    </section>
  );
}
