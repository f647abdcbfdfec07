// This tab's status changes ("moves"), outside React so that their timers can be tested:
// `PUT /v4/report`, then the report stays busy (buttons disabled) until the server's event
// about it arrives, or for SETTLE_MS at most (the 202 only says the command was queued).
//
// Why the bookkeeping: the give-up timer of one move must never end another one. Each move
// of a report replaces the one before it (its timer is cleared, and a late 202 of the old
// request starts none), and `close()` (sign-out, another user, unmount) cancels them all.
// Without it, a report moved twice within SETTLE_MS had its second move's wait ended by the
// first move's timer (or by the first request's late failure): the buttons came back while
// the second change was still in flight.

import type { BoardEvent } from './reports.ts';
import { ApiError, requestStatus } from './api.ts';
import type { Status } from './transitions.ts';

/** How long a tab waits for the event that follows a 202 before it enables the buttons again. */
export const SETTLE_MS = 5000;

export interface MovesOptions {
  userId: string;
  dispatch: (event: BoardEvent) => void;
  /** Default: `requestStatus` (api.ts); resolves on 202. */
  request?: (userId: string, id: string, status: Status) => Promise<void>;
  settleMs?: number;
  now?: () => string;
}

export interface Moves {
  /** Asks for `id` to move to `status`; resolves once the request is answered. */
  move(id: string, status: Status): Promise<void>;
  /** Cancels every pending timer; later answers start none. */
  close(): void;
}

export function createMoves(options: MovesOptions): Moves {
  const {
    userId,
    dispatch,
    request = requestStatus,
    settleMs = SETTLE_MS,
    now = () => new Date().toISOString(),
  } = options;
  /** Per report: the number of its latest move, and the timer started for it. */
  const latest = new Map<string, number>();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  let moves = 0;
  let closed = false;

  const clearTimer = (id: string) => {
    const timer = timers.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    timers.delete(id);
  };

  return {
    async move(id, status) {
      if (closed) return;
      const mine = ++moves;
      latest.set(id, mine);
      clearTimer(id);
      dispatch({ type: 'request_started', id, status });
      try {
        await request(userId, id, status);
      } catch (e) {
        // Only the latest move of the report speaks for it: the late failure of one it
        // replaced must not end the newer one's wait (its own answer will come).
        if (closed || latest.get(id) !== mine) return;
        latest.delete(id);
        dispatch({
          type: 'request_failed',
          id,
          message: e instanceof ApiError ? e.message : String(e),
          at: now(),
        });
        return;
      }
      // 202: the report stays busy until its event arrives (update or rejection), or for
      // settleMs at most, unless a newer move of it has started or the board is gone.
      if (closed || latest.get(id) !== mine) return;
      timers.set(
        id,
        setTimeout(() => {
          timers.delete(id);
          if (closed || latest.get(id) !== mine) return;
          latest.delete(id);
          dispatch({ type: 'request_settled', id });
        }, settleMs),
      );
    },
    close() {
      closed = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      latest.clear();
    },
  };
}
