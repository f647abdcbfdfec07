// The stream's controls: which step and user, then open, cut, and reconnect with the last
// id (the `Last-Event-ID` a browser would send) or with one the server never gave (to
// see its `reset`). At most one stream is open: open and the reconnects wait for a cut.

import { useId } from 'react';
import type { ConnectionRecord } from './connections.ts';
import { isStep, STEP_INFO, STEPS, type Step } from './routes.ts';
import { UNKNOWN_ID } from './useStreams.ts';
import { newUuid } from '../uuid.ts';

export interface StreamForm {
  step: Step;
  username: string;
  userId: string;
}

interface Props {
  form: StreamForm;
  onForm: (change: Partial<StreamForm>) => void;
  /** Authorization on: a blank user means the token's own. */
  auth: boolean;
  live: ConnectionRecord | null;
  last: ConnectionRecord | null;
  lastId: string | null;
  onOpen: () => void;
  onCut: () => void;
  onReconnect: (id: string) => void;
}

export function StreamPanel({ form, onForm, auth, live, last, lastId, onOpen, onCut, onReconnect }: Props) {
  const titleId = useId();
  const info = STEP_INFO[form.step];
  const blank = auth ? 'blank: the token’s own' : undefined;
  return (
    <section className="card inspect-panel" aria-labelledby={titleId}>
      <h2 id={titleId}>Stream</h2>
      <div className="inspect-fields">
        <label className="inspect-field">
          <span className="field-label">Step</span>
          <select
            className="input"
            data-testid="inspect-step"
            value={form.step}
            onChange={(e) => {
              if (isStep(e.target.value)) onForm({ step: e.target.value });
            }}
          >
            {STEPS.map((s) => (
              <option key={s} value={s}>
                {STEP_INFO[s].title}
              </option>
            ))}
          </select>
        </label>
        {info.userParam === 'user_id' ? (
          <div className="inspect-row">
            <label className="inspect-field inspect-grow">
              <span className="field-label">User id</span>
              <input
                className="input"
                data-testid="inspect-user-id"
                value={form.userId}
                placeholder={blank ?? 'a UUID, e.g. 6f1c2a9e-6a4b-4c2f-9d3e-2b1a0c9d8e7f'}
                spellCheck={false}
                autoComplete="off"
                onChange={(e) => onForm({ userId: e.target.value })}
              />
            </label>
            <button type="button" className="btn" onClick={() => onForm({ userId: newUuid() })}>
              New user id
            </button>
          </div>
        ) : (
          <label className="inspect-field">
            <span className="field-label">Username</span>
            <input
              className="input"
              data-testid="inspect-username"
              value={form.username}
              placeholder={blank ?? 'e.g. demo'}
              spellCheck={false}
              autoComplete="off"
              onChange={(e) => onForm({ username: e.target.value })}
            />
          </label>
        )}
      </div>
      <div className="inspect-buttons">
        <button type="button" className="btn btn-primary" disabled={live !== null} onClick={onOpen}>
          Open stream
        </button>
        <button type="button" className="btn" disabled={live === null} onClick={onCut}>
          Cut
        </button>
        <button
          type="button"
          className="btn"
          disabled={live !== null || lastId === null}
          title={last && lastId !== null ? `GET ${last.url} with Last-Event-ID: ${lastId}` : 'No id received yet'}
          onClick={() => lastId !== null && onReconnect(lastId)}
        >
          Reconnect with last id
        </button>
        <button
          type="button"
          className="btn btn-ghost"
          disabled={live !== null || last === null}
          title={last ? `GET ${last.url} with Last-Event-ID: ${UNKNOWN_ID}` : 'Open a stream first'}
          onClick={() => onReconnect(UNKNOWN_ID)}
        >
          Reconnect with an unknown id
        </button>
      </div>
      <p className="inspect-status" role="status" data-testid="inspect-stream-state">
        {live ? (
          <>
            Open: <code>GET {live.url}</code>
          </>
        ) : last ? (
          'No stream open: cut, ended or refused (see its connection below).'
        ) : (
          'No stream open yet.'
        )}
      </p>
      <p className="muted inspect-small">
        Last event id: <code data-testid="last-event-id">{lastId ?? 'none yet'}</code>
        {!info.resumes && ' · /v1 keeps nothing to resume: its ids count the connection’s events.'}
      </p>
    </section>
  );
}
