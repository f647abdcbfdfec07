// The SSE wire format read line by line, as the WHATWG HTML standard says an EventSource
// reads it (§9.2.6 "Interpreting an event stream"), but keeping what EventSource hides:
// every line as it came (comments, `retry:`, ignored fields) grouped into frames, one frame
// per blank line. The inspector shows those frames raw; EventSource would show only the
// dispatched events.
//
// Pure and incremental: `feed(state, text)` takes the next piece of decoded text (a line
// may be split across pieces, even a CRLF) and returns the new state and the frames that
// piece completed. The rules: lines end with CRLF, LF or CR; one leading U+FEFF of the
// stream is skipped (decode with `ignoreBOM: true` so it reaches the parser); a line
// starting with `:` is a comment; otherwise the field name runs to the first `:` and one
// space after it is removed from the value (no colon: the whole line is the name, the
// value empty); `data` appends the value and a LF, `event` sets the type, `id` sets the
// last event id (unless it contains NUL), `retry` sets the reconnection time when it is
// only ASCII digits; anything else is ignored. A blank line dispatches: the last event id
// is committed, and an event is dispatched only when data was given (its data without
// the final LF, its type `message` by default). A frame still open when the stream ends
// is discarded, as EventSource discards it.

/** One line of a frame, as received (without its line end). */
export type SseLine =
  | { kind: 'comment'; raw: string; text: string }
  | {
      kind: 'field';
      raw: string;
      name: string;
      value: string;
      /** False when the standard says to ignore it (unknown name, bad `retry`, `id` with NUL). */
      used: boolean;
    };

/** An event a blank line dispatched (what EventSource would hand to a listener). */
export interface SseEvent {
  type: string;
  data: string;
}

/** The lines up to a blank line, and what they did. */
export interface SseFrame {
  lines: SseLine[];
  /** The event dispatched, or null when the frame gave no data (a comment, `retry:`, `id:` alone). */
  event: SseEvent | null;
  /** The last event id once this frame is done (EventSource's `lastEventId`; '' for none). */
  lastEventId: string;
  /** The reconnection time (ms) a valid `retry:` of this frame set, or null. */
  retry: number | null;
}

export interface ParserState {
  /** The start of a line whose end has not arrived yet. */
  partial: string;
  /** The previous piece ended with CR: a LF at the start of the next one ends no line. */
  afterCR: boolean;
  /** Whether any text arrived yet (the BOM is skipped only at the very start). */
  started: boolean;
  lines: SseLine[];
  data: string;
  eventType: string;
  lastEventId: string;
  retry: number | null;
}

/** A parser at the start of a stream; `lastEventId` is the one the request sent, if any. */
export function initialParser(lastEventId = ''): ParserState {
  return {
    partial: '',
    afterCR: false,
    started: false,
    lines: [],
    data: '',
    eventType: '',
    lastEventId,
    retry: null,
  };
}

const DIGITS = /^[0-9]+$/;

/** Reads one field line into `s` (mutated: `feed` works on its own copy). */
function field(s: ParserState, raw: string): SseLine {
  const colon = raw.indexOf(':');
  const name = colon < 0 ? raw : raw.slice(0, colon);
  let value = colon < 0 ? '' : raw.slice(colon + 1);
  if (value.startsWith(' ')) value = value.slice(1);
  let used = true;
  switch (name) {
    case 'event':
      s.eventType = value;
      break;
    case 'data':
      s.data += `${value}\n`;
      break;
    case 'id':
      if (value.includes('\0')) used = false;
      else s.lastEventId = value;
      break;
    case 'retry':
      if (DIGITS.test(value)) s.retry = Number.parseInt(value, 10);
      else used = false;
      break;
    default:
      used = false;
  }
  return { kind: 'field', raw, name, value, used };
}

/** The blank line: the frame so far, and a fresh one (the last event id carries on). */
function dispatch(s: ParserState): SseFrame | null {
  const frame: SseFrame = {
    lines: s.lines,
    event: s.data === '' ? null : { type: s.eventType || 'message', data: s.data.slice(0, -1) },
    lastEventId: s.lastEventId,
    retry: s.retry,
  };
  s.lines = [];
  s.data = '';
  s.eventType = '';
  s.retry = null;
  // A blank line with nothing before it (say, a second one in a row) makes no frame.
  return frame.lines.length === 0 ? null : frame;
}

function line(s: ParserState, raw: string, frames: SseFrame[]): void {
  if (raw === '') {
    const frame = dispatch(s);
    if (frame) frames.push(frame);
  } else if (raw.startsWith(':')) {
    s.lines = [...s.lines, { kind: 'comment', raw, text: raw.slice(1) }];
  } else {
    s.lines = [...s.lines, field(s, raw)];
  }
}

/** Reads the next piece of text; returns the new state and the frames it completed. */
export function feed(state: ParserState, text: string): { state: ParserState; frames: SseFrame[] } {
  const s: ParserState = { ...state };
  const frames: SseFrame[] = [];
  let i = 0;
  if (!s.started && text.length > 0) {
    s.started = true;
    if (text.startsWith('\uFEFF')) i = 1;
  }
  if (s.afterCR && i < text.length) {
    if (text[i] === '\n') i += 1;
    s.afterCR = false;
  }
  while (i < text.length) {
    const cr = text.indexOf('\r', i);
    const lf = text.indexOf('\n', i);
    const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
    if (end < 0) {
      s.partial += text.slice(i);
      break;
    }
    const raw = s.partial + text.slice(i, end);
    s.partial = '';
    line(s, raw, frames);
    i = end + 1;
    if (text[end] === '\r') {
      if (i === text.length) s.afterCR = true;
      else if (text[i] === '\n') i += 1;
    }
  }
  return { state: s, frames };
}

/** How much of an unfinished frame the parser holds, in lines and characters (the end of the stream discards it). */
export function unfinished(state: ParserState): { lines: number; chars: number } {
  const chars = state.lines.reduce((n, l) => n + l.raw.length, state.partial.length);
  return { lines: state.lines.length + (state.partial === '' ? 0 : 1), chars };
}
