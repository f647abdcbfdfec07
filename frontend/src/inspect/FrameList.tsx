// The frames of one connection, raw as they came, in arrival order: each with its arrival
// time (ms since the request, and the wall clock), its lines (a comment in italics, a line
// the standard ignores struck through) and one line saying what it did (describeFrame.ts).
// The list follows new frames while it is scrolled to its end, and stays put while the
// reader has scrolled up.

import { memo, useLayoutEffect, useRef } from 'react';
import type { ConnectionRecord, ReceivedFrame } from './connections.ts';
import { describeFrame, frameKind } from './describeFrame.ts';
import type { SseLine } from './sseParser.ts';
import { clockText, sinceText } from './times.ts';

/** How close to its end (px) the list counts as following it. */
const FOLLOW_SLACK = 24;

export function FrameList({ connection: c }: { connection: ConnectionRecord }) {
  const box = useRef<HTMLOListElement>(null);
  const following = useRef(true);
  useLayoutEffect(() => {
    const el = box.current;
    if (el && following.current) el.scrollTop = el.scrollHeight;
  }, [c.frames]);
  if (c.frames.length === 0 && c.dropped === 0) {
    return <p className="muted inspect-small">{c.end ? 'No frame arrived.' : 'No frame yet.'}</p>;
  }
  return (
    <>
      {c.dropped > 0 && <p className="muted inspect-small">{c.dropped} older frames not shown.</p>}
      <ol
        ref={box}
        className="frames"
        aria-label={`frames of connection ${c.n}`}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          following.current = el.scrollHeight - el.scrollTop - el.clientHeight < FOLLOW_SLACK;
        }}
      >
        {c.frames.map((f) => (
          <FrameItem key={f.seq} received={f} />
        ))}
      </ol>
    </>
  );
}

/** The style of a frame: its event or what it did, for the few the page colours. */
const STYLED = new Set(['comment', 'retry', 'id', 'reset', 'presence', 'snapshot', 'message']);

function lineClass(line: SseLine): string {
  if (line.kind === 'comment') return 'line line-comment';
  return line.used ? `line line-${line.name}` : 'line line-ignored';
}

const FrameItem = memo(function FrameItem({ received: f }: { received: ReceivedFrame }) {
  const kind = frameKind(f.frame);
  return (
    <li
      className={`frame frame-${STYLED.has(kind) ? kind : 'event'}`}
      data-testid="frame"
      data-kind={kind}
      data-replayed={f.replayed || undefined}
    >
      <div className="frame-time">
        <span>{sinceText(f.ms)}</span>
        <time dateTime={new Date(f.wall).toISOString()}>{clockText(f.wall)}</time>
        {f.replayed && <span className="frame-tag">replayed</span>}
      </div>
      <div className="frame-body">
        <pre className="frame-raw">
          {f.frame.lines.map((line, i) => (
            <span
              key={i}
              className={lineClass(line)}
              title={line.kind === 'field' && !line.used ? 'ignored, as EventSource ignores it' : undefined}
            >
              {line.raw}
              {'\n'}
            </span>
          ))}
        </pre>
        <p className="frame-meaning">{describeFrame(f.frame)}</p>
      </div>
    </li>
  );
});
