// Unit tests of moves.ts: a report stays busy from the click until its event arrives, or
// for SETTLE_MS at most, and a timer left over from an earlier move, or from a board that
// is gone, never ends a newer move's wait.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMoves, type MovesOptions } from './moves.ts';
import { applyEvent, initialState, type BoardEvent } from './reports.ts';
import { ApiError } from './api.ts';
import type { Status } from './transitions.ts';

const USER = '11111111-1111-4111-8111-111111111111';
const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const AT = '2026-01-01T12:00:00Z';
const SETTLE = 5000;

/** A board with report A (pending), and the moves of this tab on it (answered 202 at once by default). */
function setup(request: MovesOptions['request'] = async () => {}) {
  const board = {
    state: applyEvent(initialState, {
      type: 'snapshot',
      reports: [{ userId: USER, reportId: A, reportStatus: 'pending', createdAt: AT, updatedAt: AT }],
      at: AT,
    }),
    events: [] as BoardEvent[],
    dispatch: (e: BoardEvent) => {
      board.events.push(e);
      board.state = applyEvent(board.state, e);
    },
  };
  const moves = createMoves({
    userId: USER,
    dispatch: board.dispatch,
    request,
    settleMs: SETTLE,
    now: () => AT,
  });
  /** The server's event about A. */
  const update = (status: Status) => board.dispatch({ type: 'report_status_update', id: A, status, at: AT });
  return { board, moves, update };
}

/** A request whose answer the test gives when it wants. */
function deferredRequests() {
  const pending: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  const request = () =>
    new Promise<void>((resolve, reject) => {
      pending.push({ resolve, reject });
    });
  return { pending, request };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('moves', () => {
  it('keeps the report busy after the 202 until its event arrives', async () => {
    const { board, moves, update } = setup();
    await moves.move(A, 'queued');
    expect(board.state.busy).toEqual({ [A]: 'queued' });
    vi.advanceTimersByTime(1000);
    update('queued');
    expect(board.state.busy).toEqual({});
    expect(board.state.byId[A].reportStatus).toBe('queued');
  });

  it('gives up waiting after SETTLE_MS when no event comes', async () => {
    const { board, moves } = setup();
    await moves.move(A, 'queued');
    vi.advanceTimersByTime(SETTLE - 1);
    expect(board.state.busy).toEqual({ [A]: 'queued' });
    vi.advanceTimersByTime(1);
    expect(board.state.busy).toEqual({});
  });

  it('shows the error of a refused request and ends the busy state', async () => {
    const { board, moves } = setup(async () => {
      throw new ApiError(409, 'Cannot move from pending to processing.');
    });
    await moves.move(A, 'processing');
    expect(board.state.busy).toEqual({});
    expect(board.state.notices[A]).toEqual({
      kind: 'error',
      message: 'Cannot move from pending to processing.',
      at: AT,
    });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('the timer of an earlier move does not end the wait of the next one (stale settle race)', async () => {
    const { board, moves, update } = setup();
    await moves.move(A, 'queued'); // t = 0: 202, the first timer would fire at 5 s
    vi.advanceTimersByTime(1000);
    update('queued'); // t = 1 s: its event arrives, the buttons come back
    vi.advanceTimersByTime(1000);
    await moves.move(A, 'processing'); // t = 2 s: next move, its event is slow
    vi.advanceTimersByTime(3500); // t = 5.5 s: past the first move's 5 s
    expect(board.state.busy).toEqual({ [A]: 'processing' });
    vi.advanceTimersByTime(1500); // t = 7 s: the second move's own 5 s
    expect(board.state.busy).toEqual({});
  });

  it('the late 202 of an earlier move starts no timer for the next one', async () => {
    const { pending, request } = deferredRequests();
    const { board, moves, update } = setup(request);
    const first = moves.move(A, 'queued');
    update('queued'); // the event overtakes the 202
    const second = moves.move(A, 'processing');
    pending[0].resolve(); // the first 202, late
    await first;
    vi.advanceTimersByTime(SETTLE + 1000);
    expect(board.state.busy).toEqual({ [A]: 'processing' }); // still waiting for its answer
    pending[1].resolve();
    await second;
    vi.advanceTimersByTime(SETTLE);
    expect(board.state.busy).toEqual({});
  });

  it('the late failure of an earlier move does not end the wait of the next one', async () => {
    const { pending, request } = deferredRequests();
    const { board, moves } = setup(request);
    const first = moves.move(A, 'queued');
    const second = moves.move(A, 'canceled');
    pending[0].reject(new ApiError(503, 'Kafka did not acknowledge in time.')); // the first request fails, late
    await first;
    expect(board.state.busy).toEqual({ [A]: 'canceled' });
    expect(board.events.filter((e) => e.type === 'request_failed')).toEqual([]);
    pending[1].reject(new ApiError(409, 'Cannot move from pending to canceled.'));
    await second;
    expect(board.state.busy).toEqual({});
    expect(board.events.filter((e) => e.type === 'request_failed')).toHaveLength(1);
  });

  it('close() (unmount, sign-out, another user) cancels every timer, even one a late 202 would start', async () => {
    const { pending, request } = deferredRequests();
    const { board, moves } = setup(request);
    const first = moves.move(A, 'queued');
    pending[0].resolve();
    await first;
    const second = moves.move(A, 'canceled');
    moves.close();
    expect(vi.getTimerCount()).toBe(0);
    pending[1].resolve();
    await second;
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(board.events.filter((e) => e.type === 'request_settled')).toEqual([]);
  });
});
