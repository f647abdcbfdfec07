import { useCallback, useEffect, useReducer, useState } from 'react';
import { applyEvent, initialState } from './reports.ts';
import type { Connection } from './stream.ts';
import { connectSharedReportStream } from './sharedStream.ts';
import { ApiError, createReport, requestStatus } from './api.ts';
import type { Status } from './transitions.ts';

const now = () => new Date().toISOString();

/** How long a tab waits for the event that follows a 202 before it enables the buttons again. */
const SETTLE_MS = 5000;

/** The board of one user: live state from /v4/sse plus the two actions. */
export function useBoard(userId: string) {
  const [state, dispatch] = useReducer(applyEvent, initialState);
  const [connection, setConnection] = useState<Connection>('connecting');

  // One EventSource for all the tabs of this browser (sharedStream.ts: one tab holds it
  // and passes its events on); this tab leaves on sign-out, user change and unmount.
  // `dispatch` and `setConnection` are stable, so re-renders never touch the stream.
  useEffect(() => {
    dispatch({ type: 'reset' });
    return connectSharedReportStream({ userId, onEvent: dispatch, onConnection: setConnection });
  }, [userId]);

  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<string | null>(null);

  const newReport = useCallback(async () => {
    setCreating(true);
    setCreateError(null);
    try {
      // The reply and the new_report event carry the same report; the reducer keeps one.
      dispatch({ type: 'new_report', report: await createReport(userId) });
    } catch (e) {
      setCreateError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setCreating(false);
    }
  }, [userId]);

  const move = useCallback(
    async (id: string, status: Status) => {
      dispatch({ type: 'request_started', id, status });
      try {
        await requestStatus(userId, id, status);
        // 202: the command is queued; the report stays busy until its event arrives
        // (update or rejection), or for SETTLE_MS at most.
        setTimeout(() => dispatch({ type: 'request_settled', id }), SETTLE_MS);
      } catch (e) {
        dispatch({ type: 'request_failed', id, message: e instanceof ApiError ? e.message : String(e), at: now() });
      }
    },
    [userId],
  );

  const dismiss = useCallback((id: string) => dispatch({ type: 'dismiss_notice', id }), []);

  return { state, connection, newReport, creating, createError, dismissCreateError: () => setCreateError(null), move, dismiss };
}

/** Current time in ms, refreshed every `periodMs` (one timer per caller). */
export function useNow(periodMs: number): number {
  const [t, setT] = useState(() => Date.now());
  useEffect(() => {
    const h = setInterval(() => setT(Date.now()), periodMs);
    return () => clearInterval(h);
  }, [periodMs]);
  return t;
}
