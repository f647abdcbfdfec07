// The HTTP answers of the inspector's requests, newest first: what was sent (method, URL,
// body; extra headers by name only) and what came back (status, content type, time, body).

import { useId } from 'react';
import type { ShownAnswer } from './useAnswers.ts';

/** The style of a status: 2xx ok, 4xx refused, 5xx and no answer failed. */
function statusClass(status: number): string {
  if (status >= 200 && status < 300) return 'status-ok';
  if (status >= 400 && status < 500) return 'status-refused';
  return 'status-failed';
}

export function AnswerList({ answers }: { answers: ShownAnswer[] }) {
  const titleId = useId();
  return (
    <section className="inspect-section" aria-labelledby={titleId}>
      <h2 id={titleId}>HTTP answers</h2>
      {answers.length === 0 ? (
        <p className="muted">The answers of the requests made from this page show here, newest first.</p>
      ) : (
        <ol className="answers" aria-label="answers">
          {answers.map((a) => (
            <li key={a.key} className="answer card" data-testid="answer" data-status={a.status}>
              <div className="answer-head">
                <code className="answer-request">
                  {a.request.method} {a.request.url}
                </code>
                <span className={`answer-status ${statusClass(a.status)}`}>
                  {a.status === 0 ? 'no answer' : `${a.status} ${a.statusText}`.trim()}
                </span>
                <span className="muted inspect-small">
                  {a.ms} ms{a.contentType ? ` · ${a.contentType}` : ''}
                </span>
              </div>
              {a.request.headers && (
                <p className="muted inspect-small">Sent with {Object.keys(a.request.headers).join(', ')} (not shown)</p>
              )}
              {a.request.body !== undefined && <pre className="answer-sent">{a.request.body}</pre>}
              {a.body !== '' && <pre className="answer-body">{a.body}</pre>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
