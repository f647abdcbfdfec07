import { memo, useEffect, useState } from 'react';
import { useBoard, useNow } from './useBoard.ts';
import { selectReports, type Notice } from './reports.ts';
import { actionLabel, nextStatuses, type Status } from './transitions.ts';
import type { Presence, Report } from './types.ts';
import type { Connection } from './stream.ts';
import { StatusBadge } from './StatusBadge.tsx';
import { Logo } from './Logo.tsx';
import { Icon } from './Icon.tsx';
import { fullTime, relativeTime } from './time.ts';
import { inspectHref } from './inspect/links.ts';

interface Props {
  userId: string;
  onSignOut: () => void;
}

export function Board({ userId, onSignOut }: Props) {
  const board = useBoard(userId);
  const { state, connection } = board;
  const nowMs = useNow(10_000);
  const reports = selectReports(state);

  return (
    <div className="app">
      <header className="topbar">
        <div className="topbar-inner">
          <div className="brand">
            <Logo />
            <span className="brand-name">Report board</span>
          </div>
          <div className="topbar-right">
            <ConnectionPill connection={connection} />
            {state.presence && connection === 'live' && <PresenceNote presence={state.presence} />}
            <a className="btn btn-ghost topbar-inspect" href={inspectHref(userId)} data-testid="inspector-link">
              Inspector
            </a>
            <UserChip userId={userId} />
            <button type="button" className="btn btn-ghost" data-testid="signout" onClick={onSignOut}>
              Sign out
            </button>
          </div>
        </div>
      </header>

      <main className="content">
        <div className="toolbar">
          <div>
            <h1>Your reports</h1>
            <p className="muted" data-testid="report-count">
              {state.loaded ? countText(reports.length) : connection === 'reconnecting' ? 'Not connected' : 'Loading…'}
            </p>
          </div>
          <button
            type="button"
            className="btn btn-primary"
            data-testid="new-report"
            onClick={board.newReport}
            disabled={board.creating}
            aria-busy={board.creating || undefined}
          >
            <Icon name="plus" size={18} /> New report
          </button>
        </div>

        {board.createError && (
          <div className="alert alert-error" role="alert" data-testid="create-error">
            <span>
              <strong>Could not create a report.</strong> {board.createError}
            </span>
            <button type="button" className="icon-btn" aria-label="Dismiss" onClick={board.dismissCreateError}>
              <Icon name="x" />
            </button>
          </div>
        )}

        {state.loaded && connection === 'reconnecting' && (
          <div className="alert alert-warn" role="status" data-testid="reconnecting-banner">
            Connection lost. Reconnecting… The list catches up by itself when the server answers.
          </div>
        )}

        {state.loaded && state.truncated && (
          <div className="alert alert-warn" role="status" data-testid="truncated-banner">
            Showing your newest {state.truncated.sent} of {state.truncated.total} reports: the whole board is too large
            for one live stream. GET /v4/reports lists them all.
          </div>
        )}

        {!state.loaded ? (
          connection === 'reconnecting' ? (
            <Unreachable />
          ) : (
            <Loading />
          )
        ) : reports.length === 0 ? (
          <Empty />
        ) : (
          <ul className="report-list" data-testid="report-list" aria-label="Reports">
            {reports.map((r) => (
              <ReportRow
                key={r.reportId}
                report={r}
                notice={state.notices[r.reportId]}
                busy={state.busy[r.reportId]}
                nowMs={nowMs}
                onMove={board.move}
                onDismiss={board.dismiss}
              />
            ))}
          </ul>
        )}
      </main>
    </div>
  );
}

function countText(n: number): string {
  return n === 1 ? '1 report' : `${n} reports`;
}

const CONNECTION_TEXT: Record<Connection, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
};

function ConnectionPill({ connection }: { connection: Connection }) {
  return (
    <span
      className={`conn conn-${connection}`}
      data-testid="connection"
      data-state={connection}
      role="status"
      title={
        connection === 'live'
          ? 'Connected: changes appear as they happen.'
          : 'Not connected: the page keeps trying and catches up when the server answers.'
      }
    >
      <span className="conn-dot" aria-hidden="true" />
      {CONNECTION_TEXT[connection]}
    </span>
  );
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/** Where the user's board is open, as the server counts it (shown while live: otherwise it may be stale). */
function PresenceNote({ presence }: { presence: Presence }) {
  const { connections, instances } = presence;
  return (
    <span
      className="presence"
      role="status"
      aria-label="presence"
      data-testid="presence"
      data-connections={connections}
      data-instances={instances}
      title={
        'Live streams open for this user, and the servers holding them. ' +
        'The tabs of one browser share one stream, so each browser or device counts once.'
      }
    >
      Open in {plural(connections, 'stream')} on {plural(instances, 'server')}
    </span>
  );
}

function UserChip({ userId }: { userId: string }) {
  const [copied, setCopied] = useState(false);
  // The "copied" mark goes after 1.5 s; the timer goes with the chip.
  useEffect(() => {
    if (!copied) return;
    const timer = setTimeout(() => setCopied(false), 1500);
    return () => clearTimeout(timer);
  }, [copied]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(userId);
      setCopied(true);
    } catch {
      // clipboard not available (insecure context): the id is selectable text anyway
    }
  };
  return (
    <span className="user-chip" title={`Signed in as ${userId}`}>
      <span className="user-label">User</span>
      <code data-testid="user-id">{userId}</code>
      <button type="button" className="icon-btn" onClick={copy} aria-label="Copy user id">
        <Icon name={copied ? 'check' : 'copy'} size={15} />
      </button>
    </span>
  );
}

interface RowProps {
  report: Report;
  notice?: Notice;
  busy?: Status;
  nowMs: number;
  onMove: (id: string, status: Status) => void;
  onDismiss: (id: string) => void;
}

const ReportRow = memo(function ReportRow({ report, notice, busy, nowMs, onMove, onDismiss }: RowProps) {
  const { reportId: id, reportStatus: status } = report;
  const next = nextStatuses(status);
  return (
    <li className="report" data-testid="report" data-report-id={id} data-status={status}>
      <div className="report-main">
        <StatusBadge status={status} />
        <div className="report-text">
          <code className="report-id" data-testid="report-id">
            {id}
          </code>
          <span className="report-meta">
            Changed{' '}
            <time dateTime={report.updatedAt} title={fullTime(report.updatedAt)} data-testid="report-updated">
              {relativeTime(report.updatedAt, nowMs)}
            </time>
            <span aria-hidden="true"> · </span>
            created{' '}
            <time dateTime={report.createdAt} title={fullTime(report.createdAt)}>
              {relativeTime(report.createdAt, nowMs)}
            </time>
          </span>
        </div>
        <div className="report-actions">
          {busy && (
            <span className="sending" role="status">
              <span className="spinner" aria-hidden="true" /> Updating…
            </span>
          )}
          {next.length === 0 ? (
            <span className="muted final">Final</span>
          ) : (
            next.map((to) => (
              <button
                key={to}
                type="button"
                className={`btn btn-sm btn-to-${to}`}
                data-testid={`move-${to}`}
                disabled={busy !== undefined}
                title={`${status} → ${to}`}
                aria-label={`Move report ${id} from ${status} to ${to}`}
                onClick={() => onMove(id, to)}
              >
                {actionLabel(status, to)}
              </button>
            ))
          )}
        </div>
      </div>
      {notice && (
        <div className="report-notice" role="alert" data-testid="report-error" data-kind={notice.kind}>
          <Icon name="alertCircle" size={18} className="notice-icon" />
          <span className="notice-text">{notice.message}</span>
          <button type="button" className="icon-btn" aria-label="Dismiss message" onClick={() => onDismiss(id)}>
            <Icon name="x" />
          </button>
        </div>
      )}
    </li>
  );
});

function Loading() {
  return (
    <div className="state-box" data-testid="loading" aria-busy="true">
      <span className="spinner spinner-lg" aria-hidden="true" />
      <p>Loading your reports…</p>
    </div>
  );
}

function Empty() {
  return (
    <div className="state-box" data-testid="empty">
      <div className="state-icon">
        <Icon name="inbox" size={24} />
      </div>
      <h2>No reports yet</h2>
      <p className="muted">
        Press <strong>New report</strong> to create one. It shows up here, and in every other tab signed in as you, as
        soon as the server stores it.
      </p>
    </div>
  );
}

function Unreachable() {
  return (
    <div className="state-box state-error" data-testid="unreachable" role="alert">
      <div className="state-icon">
        <Icon name="alertTriangle" size={24} />
      </div>
      <h2>Can’t reach the server</h2>
      <p className="muted">
        Start it with <code>scripts/run.sh</code> (or check that it is still running). This page keeps trying and loads
        your reports as soon as the server answers; there is no need to reload.
      </p>
    </div>
  );
}
