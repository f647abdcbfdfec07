// React glue for the board of one user: the reducer (reports.ts) fed by the stream shared
// by the tabs (sharedStream.ts), and the two actions, creating a report and moving one
// (moves.ts). Everything that lives as long as the board (stream, move timers) is set up
// in one effect keyed by the user id and torn down with it.

import { useCallback, useEffect, useReducer, useRef, useState } from 'react';
import { applyEvent, initialState } from './reports.ts';
import type { Connection } from './stream.ts';
import { connectSharedReportStream } from './sharedStream.ts';
import { ApiError, createReport } from './api.ts';
import { createMoves, type Moves } from './moves.ts';
import type { Status } from './transitions.ts';

/** The board of one user: live state from /v4/sse plus the two actions. */
export function useBoard(userId: string) {
  const [state, dispatch] = useReducer(applyEvent, initialState);
  const [connection, setConnection] = useState<Connection>('connecting');
  const moves = useRef<Moves | null>(null);

  // One EventSource for all the tabs of this browser (sharedStream.ts: one tab holds it
  // and passes its events on); this tab leaves on sign-out, user change and unmount, and
  // the timers of its moves go with it. `dispatch` and `setConnection` are stable, so
  // re-renders never touch the stream.
  useEffect(() => {
    dispatch({ type: 'reset' });
    const m = createMoves({ userId, dispatch });
    moves.current = m;
    const close = connectSharedReportStream({
      userId,
      onEvent: dispatch,
      onConnection: setConnection,
    });
    return () => {
      close();
      m.close();
      if (moves.current === m) moves.current = null;
    };
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

  const move = useCallback(async (id: string, status: Status) => {
    await moves.current?.move(id, status);
  }, []);

  const dismiss = useCallback((id: string) => dispatch({ type: 'dismiss_notice', id }), []);

  return {
    state,
    connection,
    newReport,
    creating,
    createError,
    dismissCreateError: () => setCreateError(null),
    move,
    dismiss,
  };
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
