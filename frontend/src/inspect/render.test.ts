// The inspector's markup, rendered to a string (no browser here): the labels and names the
// end-to-end tests find controls by, and a connection shown with its request, response,
// resume facts and raw frames.
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnectionView } from './ConnectionView.tsx';
import { initialLog, logReducer, type LogAction } from './connections.ts';
import { Inspector } from './Inspector.tsx';
import { feed, initialParser } from './sseParser.ts';

afterEach(() => {
  vi.unstubAllGlobals();
});

function page(search: string): string {
  vi.stubGlobal('window', { location: { search, pathname: '/inspect' } });
  return renderToStaticMarkup(createElement(Inspector));
}

describe('the inspector page', () => {
  it('labels every control of /v2: step, username, the stream buttons, the posts', () => {
    const html = page('?step=v2&username=alice');
    expect(html).toMatch(/<label[^>]*><span class="field-label">Step<\/span><select/);
    expect(html).toMatch(/<span class="field-label">Username<\/span><input[^>]*value="alice"/);
    for (const name of [
      'Open stream',
      'Cut',
      'Reconnect with last id',
      'Reconnect with an unknown id',
      'Post message',
      'Post broadcast',
    ]) {
      expect(html).toContain(`>${name}</button>`);
    }
    expect(html).toContain('<span class="field-label">Message text</span><textarea');
    expect(html).toMatch(/role="log" aria-label="frames"/);
    expect(html).toContain('href="/"');
  });

  it('asks /v4 for a user id and offers reports, and links back to the same board', () => {
    const user = '6f1c2a9e-6a4b-4c2f-9d3e-2b1a0c9d8e7f';
    const html = page(`?step=v4&user=${user}`);
    expect(html).toMatch(new RegExp(`<span class="field-label">User id</span><input[^>]*value="${user}"`));
    for (const name of ['Create report', 'Move report', 'New user id']) expect(html).toContain(`>${name}</button>`);
    expect(html).toContain('<span class="field-label">Report id</span>');
    expect(html).toContain('<span class="field-label">New status</span><select');
    expect(html).toContain(`href="/?user=${user}"`);
  });
});

describe('a connection', () => {
  it('shows its request, response, reset, snapshot and frames', () => {
    const text =
      'retry: 2000\n\nevent: reset\ndata: {"reason":"unknown_id","lastEventId":"nonsense"}\n\nid: 5\nevent: snapshot\ndata: []\n\n: keep-alive-text\n\nfoo: bar\n\n';
    const actions: LogAction[] = [
      { type: 'open', n: 3, step: 'v4', user: 'u', url: '/v4/sse?user_id=u', lastEventIdSent: 'nonsense', wall: 0 },
      {
        type: 'response',
        n: 3,
        response: {
          status: 200,
          statusText: 'OK',
          headers: [['content-type', 'text/event-stream']],
          body: null,
          ms: 4,
        },
      },
      { type: 'frames', n: 3, frames: feed(initialParser('nonsense'), text).frames, ms: 6, wall: 0 },
      { type: 'end', n: 3, end: { kind: 'cut' }, ms: 900 },
    ];
    const record = actions.reduce(logReducer, initialLog).connections[0];
    const html = renderToStaticMarkup(createElement(ConnectionView, { connection: record }));
    expect(html).toContain('>Connection 3</h3>');
    expect(html).toContain('GET /v4/sse?user_id=u');
    expect(html).toContain('<code>nonsense</code>');
    expect(html).toContain('200 OK');
    expect(html).toContain('content-type: text/event-stream');
    expect(html).toMatch(/data-testid="connection-reset"><strong>unknown_id<\/strong>/);
    expect(html).toContain('data-testid="connection-snapshot">0 reports<');
    expect(html).toContain('cut here at +900 ms');
    expect(html).toContain('aria-label="frames of connection 3"');
    expect(html.match(/data-testid="frame"/g)).toHaveLength(5);
    for (const kind of ['retry', 'reset', 'snapshot', 'comment', 'nothing'])
      expect(html).toContain(`data-kind="${kind}"`);
    expect(html).toContain('<span class="line line-ignored" title="ignored, as EventSource ignores it">foo: bar');
  });

  it('shows a refusal body, and says a resumed /v4 connection got no snapshot', () => {
    const refused = [
      { type: 'open', n: 1, step: 'v2', user: '', url: '/v2/sse', lastEventIdSent: null, wall: 0 },
      {
        type: 'response',
        n: 1,
        response: {
          status: 400,
          statusText: 'Bad Request',
          headers: [],
          body: '{\n  "error": "add ?username="\n}',
          ms: 3,
        },
      },
      { type: 'end', n: 1, end: { kind: 'refused' }, ms: 3 },
    ] satisfies LogAction[];
    const html = renderToStaticMarkup(
      createElement(ConnectionView, { connection: refused.reduce(logReducer, initialLog).connections[0] }),
    );
    expect(html).toContain('400 Bad Request');
    expect(html).toContain('data-testid="connection-error">{\n  &quot;error&quot;: &quot;add ?username=&quot;\n}');
    expect(html).toContain('No frame arrived.');

    const resumed = [
      { type: 'open', n: 2, step: 'v4', user: 'u', url: '/v4/sse?user_id=u', lastEventIdSent: '7', wall: 0 },
      {
        type: 'response',
        n: 2,
        response: { status: 200, statusText: 'OK', headers: [], body: null, ms: 3 },
      },
    ] satisfies LogAction[];
    const resumedHtml = renderToStaticMarkup(
      createElement(ConnectionView, { connection: resumed.reduce(logReducer, initialLog).connections[0] }),
    );
    expect(resumedHtml).toContain('none: resumed exactly');
    expect(resumedHtml).toMatch(/data-testid="connection-replayed"[^>]*>0 events</);
  });
});
