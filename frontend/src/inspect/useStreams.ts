// React glue for the inspector's connections: the log (connections.ts) fed by one stream
// at a time (openStream.ts). Opening cuts the stream still open, so the log has at most
// one live connection, the newest. Each stream reports under its own connection number,
// so a late report of a cut one lands on its own record, never on the next. The stream
// goes with the page.

import { useCallback, useEffect, useReducer, useRef } from 'react';
import { initialLog, logReducer, openConnection, resumeId } from './connections.ts';
import { openStream } from './openStream.ts';
import { streamUrl, type Step } from './routes.ts';

/** A made-up id, to see how a server answers one it cannot resume from. */
export const UNKNOWN_ID = 'not-an-id-of-this-server';

export function useStreams() {
  const [log, dispatch] = useReducer(logReducer, initialLog);
  const cutCurrent = useRef<(() => void) | null>(null);
  const count = useRef(0);

  const open = useCallback((step: Step, user: string, lastEventId: string | null) => {
    cutCurrent.current?.();
    count.current += 1;
    const n = count.current;
    const url = streamUrl(step, user);
    dispatch({ type: 'open', n, step, user, url, lastEventIdSent: lastEventId, wall: Date.now() });
    cutCurrent.current = openStream(
      { url, lastEventId },
      {
        onResponse: (response) => dispatch({ type: 'response', n, response }),
        onFrames: (frames, ms, wall) => dispatch({ type: 'frames', n, frames, ms, wall }),
        onEnd: (end, ms) => dispatch({ type: 'end', n, end, ms }),
      },
    );
  }, []);

  const cut = useCallback(() => {
    cutCurrent.current?.();
    cutCurrent.current = null;
  }, []);

  useEffect(() => cut, [cut]);

  const last = log.connections.at(-1) ?? null;
  const lastId = resumeId(log);

  /** Reopens the newest connection's stream with `Last-Event-ID` (its last id, or `id`). */
  const reconnect = useCallback(
    (id: string | null) => {
      if (last && id !== null) open(last.step, last.user, id);
    },
    [last, open],
  );

  return { log, live: openConnection(log), last, lastId, open, cut, reconnect };
}
