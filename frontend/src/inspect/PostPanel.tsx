// The requests that make events on the chosen step, sent as they are and answered in the
// answers list: a message to the stream's user or a broadcast (/v2, /v3), a new report and
// a status change (/v4). The new report's id fills the move's field, and after a 202 the
// status field steps to the next one the report may take, so "Move report" can be pressed
// again along a report's life.

import { useId, useState } from 'react';
import { toReport } from '../wire.ts';
import { isStatus, nextStatuses, STATUSES, type Status } from '../transitions.ts';
import { broadcastRequest, createReportRequest, messageRequest, moveReportRequest, type Step } from './routes.ts';
import { jsonOf } from './exchange.ts';
import type { Send } from './useAnswers.ts';

interface Props {
  step: Step;
  username: string;
  userId: string;
  send: Send;
}

export function PostPanel({ step, username, userId, send }: Props) {
  const titleId = useId();
  return (
    <section className="card inspect-panel" aria-labelledby={titleId}>
      <h2 id={titleId}>Make events</h2>
      {step === 'v1' ? (
        <p className="muted">
          /v1 takes no posts: it sends <code>hi!</code> on its own, at once and then every 15 s (
          <code>--v1-interval</code>), with a keep-alive comment every 3 s.
        </p>
      ) : step === 'v4' ? (
        <ReportActions userId={userId} send={send} />
      ) : (
        <MessageActions step={step} username={username} send={send} />
      )}
    </section>
  );
}

function MessageActions({ step, username, send }: { step: 'v2' | 'v3'; username: string; send: Send }) {
  const [text, setText] = useState('Howdy');
  const to = username.trim() || 'the token’s own user';
  return (
    <>
      <label className="inspect-field">
        <span className="field-label">Message text</span>
        <textarea
          className="input"
          rows={2}
          data-testid="inspect-message"
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
      </label>
      <div className="inspect-buttons">
        <button
          type="button"
          className="btn btn-primary"
          title={`POST /${step}/message to ${to}`}
          onClick={() => void send(messageRequest(step, username, text))}
        >
          Post message
        </button>
        <button
          type="button"
          className="btn"
          title={`POST /${step}/broadcast: every open /${step} stream`}
          onClick={() => void send(broadcastRequest(step, text))}
        >
          Post broadcast
        </button>
      </div>
      <p className="muted inspect-small">
        The message goes to every open /{step} stream of <strong>{to}</strong>; the broadcast to every open /{step}{' '}
        stream.
        {step === 'v3' && ' Both go through the bus (Kafka when configured) and come back to every instance.'}
      </p>
    </>
  );
}

function ReportActions({ userId, send }: { userId: string; send: Send }) {
  const [reportId, setReportId] = useState('');
  const [status, setStatus] = useState<Status>('queued');
  const [known, setKnown] = useState<string[]>([]);
  const listId = useId();

  const create = async () => {
    const answer = await send(createReportRequest(userId));
    const report = answer.status === 201 ? toReport(jsonOf(answer.body)) : null;
    if (!report) return;
    setReportId(report.reportId);
    setStatus(nextStatuses(report.reportStatus)[0] ?? 'queued');
    setKnown((ids) => [report.reportId, ...ids.filter((id) => id !== report.reportId)].slice(0, 20));
  };

  const move = async () => {
    const answer = await send(moveReportRequest(userId, reportId, status));
    const next = nextStatuses(status)[0];
    if (answer.status === 202 && next) setStatus(next);
  };

  return (
    <>
      <div className="inspect-buttons">
        <button type="button" className="btn btn-primary" onClick={() => void create()}>
          Create report
        </button>
      </div>
      <div className="inspect-row">
        <label className="inspect-field inspect-grow">
          <span className="field-label">Report id</span>
          <input
            className="input"
            data-testid="inspect-report-id"
            list={listId}
            value={reportId}
            placeholder="created here, or pasted"
            spellCheck={false}
            autoComplete="off"
            onChange={(e) => setReportId(e.target.value)}
          />
          <datalist id={listId}>
            {known.map((id) => (
              <option key={id} value={id} />
            ))}
          </datalist>
        </label>
        <label className="inspect-field">
          <span className="field-label">New status</span>
          <select
            className="input"
            data-testid="inspect-status"
            value={status}
            onChange={(e) => {
              if (isStatus(e.target.value)) setStatus(e.target.value);
            }}
          >
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </div>
      <div className="inspect-buttons">
        <button type="button" className="btn" disabled={reportId.trim() === ''} onClick={() => void move()}>
          Move report
        </button>
      </div>
      <p className="muted inspect-small">
        A new report arrives as <code>new_report</code>; a move is answered 202 and then arrives as{' '}
        <code>report_status_update</code> (or <code>report_status_rejected</code>). An invalid move is a 409 naming the
        allowed ones.
      </p>
    </>
  );
}
