// The SSE line parser against the WHATWG rules (line ends, the space after the colon,
// comments, ignored fields, dispatch), what the server really sends, and text split at
// every possible place.
import { describe, expect, it } from 'vitest';
import { feed, initialParser, unfinished, type SseFrame } from './sseParser.ts';

/** Every frame of `pieces` read one after the other. */
function parse(pieces: string[], lastEventId = ''): SseFrame[] {
  let state = initialParser(lastEventId);
  const frames: SseFrame[] = [];
  for (const piece of pieces) {
    const next = feed(state, piece);
    state = next.state;
    frames.push(...next.frames);
  }
  return frames;
}

const events = (frames: SseFrame[]) => frames.map((f) => f.event);

describe('the SSE parser', () => {
  it('reads what /v1 sends: retry, an event with an id, keep-alive comments', () => {
    const frames = parse(['retry: 2000\n\nid: 1\ndata: hi!\n\n: keep-alive-text\n\n']);
    expect(frames).toEqual([
      {
        lines: [{ kind: 'field', raw: 'retry: 2000', name: 'retry', value: '2000', used: true }],
        event: null,
        lastEventId: '',
        retry: 2000,
      },
      {
        lines: [
          { kind: 'field', raw: 'id: 1', name: 'id', value: '1', used: true },
          { kind: 'field', raw: 'data: hi!', name: 'data', value: 'hi!', used: true },
        ],
        event: { type: 'message', data: 'hi!' },
        lastEventId: '1',
        retry: null,
      },
      {
        lines: [{ kind: 'comment', raw: ': keep-alive-text', text: ' keep-alive-text' }],
        event: null,
        lastEventId: '1',
        retry: null,
      },
    ]);
  });

  it('ends lines at CRLF, LF and CR alike', () => {
    const expected = [{ type: 'message', data: 'a\nb\nc' }];
    expect(events(parse(['data: a\r\ndata: b\ndata: c\r\r']))).toEqual(expected);
    expect(events(parse(['data: a\rdata: b\r\ndata: c\n\r\n']))).toEqual(expected);
  });

  it('does not take the LF of a CRLF split across two pieces for a blank line', () => {
    expect(events(parse(['data: a\r', '\ndata: b\r', '\n\r', '\n']))).toEqual([{ type: 'message', data: 'a\nb' }]);
  });

  it('removes one space after the colon, no more, and reads a line without a colon as a name', () => {
    const [frame] = parse(['data:x\ndata:  two\ndata\ndata:\n\n']);
    expect(frame.lines.map((l) => (l.kind === 'field' ? l.value : null))).toEqual(['x', ' two', '', '']);
    expect(frame.event).toEqual({ type: 'message', data: 'x\n two\n\n' });
  });

  it('names the event by its event field, and only that event', () => {
    const frames = parse(['event: presence\ndata: {"connections":2,"instances":1}\n\ndata: plain\n\n']);
    expect(events(frames)).toEqual([
      { type: 'presence', data: '{"connections":2,"instances":1}' },
      { type: 'message', data: 'plain' },
    ]);
    expect(frames[0].lastEventId).toBe('');
  });

  it('keeps comments raw, colon included, and dispatches nothing for them', () => {
    const [frame] = parse([':\n:no space\n\n']);
    expect(frame.lines).toEqual([
      { kind: 'comment', raw: ':', text: '' },
      { kind: 'comment', raw: ':no space', text: 'no space' },
    ]);
    expect(frame.event).toBeNull();
  });

  it('marks the lines the standard ignores, and lets them change nothing', () => {
    const [frame] = parse(['retry: 1.5\nretry: 20s\nid: a\0b\nData: shouted\nfoo: bar\ndata: kept\n\n'], 'before');
    expect(frame.lines.map((l) => (l.kind === 'field' ? l.used : null))).toEqual([
      false,
      false,
      false,
      false,
      false,
      true,
    ]);
    expect(frame.retry).toBeNull();
    expect(frame.lastEventId).toBe('before');
    expect(frame.event).toEqual({ type: 'message', data: 'kept' });
  });

  it('keeps the last event id across frames, starts from the one sent, and clears it on an empty id', () => {
    const frames = parse(['data: 1\n\nid: 7\n\ndata: 2\n\nid\ndata: 3\n\n'], 'sent');
    expect(frames.map((f) => f.lastEventId)).toEqual(['sent', '7', '7', '']);
    // an id alone dispatches no event, but still sets the id
    expect(frames[1].event).toBeNull();
  });

  it('dispatches an event with empty data for a bare data line, and none for an event name alone', () => {
    const frames = parse(['event: named\n\ndata\n\n']);
    expect(events(frames)).toEqual([null, { type: 'message', data: '' }]);
  });

  it('skips one leading BOM, at the very start only', () => {
    expect(events(parse(['\uFEFFdata: a\n\n']))).toEqual([{ type: 'message', data: 'a' }]);
    expect(parse(['\uFEFF\uFEFFdata: a\n\n'])[0].lines[0]).toMatchObject({ name: '\uFEFFdata', used: false });
    expect(parse(['', '\uFEFFdata: a\n\n'])[0].lines[0]).toMatchObject({ name: 'data' });
    expect(parse(['data: a\n\n', '\uFEFFdata: b\n\n'])[1].lines[0]).toMatchObject({ name: '\uFEFFdata' });
  });

  it('makes no frame of blank lines with nothing before them', () => {
    expect(parse(['\n\n\r\n\rdata: x\n\n\n'])).toHaveLength(1);
  });

  it('holds an unfinished frame until its blank line, and says how much it holds', () => {
    let { state, frames } = feed(initialParser(), 'id: 3\ndata: par');
    expect(frames).toEqual([]);
    expect(unfinished(state)).toEqual({ lines: 2, chars: 14 });
    ({ state, frames } = feed(state, 'tial\n\n'));
    expect(frames[0].event).toEqual({ type: 'message', data: 'partial' });
    expect(unfinished(state)).toEqual({ lines: 0, chars: 0 });
  });

  it('never changes the state it is given', () => {
    const start = initialParser();
    const { state } = feed(start, 'data: a\n');
    feed(state, '\n');
    expect(start).toEqual(initialParser());
    expect(state.lines).toHaveLength(1);
  });

  it('gives the same frames wherever the text is split', () => {
    const text =
      '\uFEFFretry: 2000\r\n\r\nid: v2-1\r\nevent: reset\r\ndata: {"reason":"unknown_id"}\r\n\r\n: keep-alive\r\rid: 9\ndata: a\rdata: b\n\n';
    const whole = parse([text]);
    expect(whole).toHaveLength(4);
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j += 7) {
        expect(parse([text.slice(0, i), text.slice(i, j), text.slice(j)]), `split at ${i} and ${j}`).toEqual(whole);
      }
    }
    expect(parse([...text])).toEqual(whole);
  });
});
