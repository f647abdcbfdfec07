// A request and its answer as the inspector shows them: whatever the status, body
// pretty-printed when JSON, the cookie sent along, and no rejection when the server is down.
import { describe, expect, it } from 'vitest';
import { exchange, jsonOf, showBody } from './exchange.ts';
import { messageRequest } from './routes.ts';

describe('showBody', () => {
  it('indents JSON and leaves anything else alone', () => {
    expect(showBody('{"id":"1","delivered":2}')).toBe('{\n  "id": "1",\n  "delivered": 2\n}');
    expect(showBody(' [1] ')).toBe('[\n  1\n]');
    expect(showBody('{not json')).toBe('{not json');
    expect(showBody('plain text')).toBe('plain text');
    expect(showBody('')).toBe('');
  });
});

describe('jsonOf', () => {
  it('reads a JSON body back, pretty-printed or not', () => {
    expect(jsonOf(showBody('{"reportId":"r"}'))).toEqual({ reportId: 'r' });
    expect(jsonOf('nope')).toBeUndefined();
  });
});

describe('exchange', () => {
  it('sends the request with the cookie and keeps the whole answer, a refusal included', async () => {
    const calls: [string, RequestInit | undefined][] = [];
    const fakeFetch = (async (url: string, init?: RequestInit) => {
      calls.push([url, init]);
      return new Response('{"error":"not yours"}', {
        status: 403,
        statusText: 'Forbidden',
        headers: { 'content-type': 'application/json' },
      });
    }) as typeof fetch;
    let t = 100;
    const answer = await exchange(messageRequest('v2', 'demo', 'Howdy'), fakeFetch, () => (t += 5));
    expect(calls).toHaveLength(1);
    const [url, init] = calls[0];
    expect(url).toBe('/v2/message?username=demo');
    expect(init).toMatchObject({ method: 'POST', body: 'Howdy', credentials: 'same-origin' });
    expect(init?.headers).toMatchObject({ 'Content-Type': 'text/plain; charset=utf-8' });
    expect(answer).toMatchObject({
      status: 403,
      statusText: 'Forbidden',
      contentType: 'application/json',
      body: '{\n  "error": "not yours"\n}',
      ms: 5,
    });
  });

  it('answers status 0 with a sentence when the server cannot be reached', async () => {
    const down = (async () => {
      throw new TypeError('Failed to fetch');
    }) as typeof fetch;
    const answer = await exchange({ method: 'POST', url: '/v2/broadcast', body: 'x' }, down);
    expect(answer.status).toBe(0);
    expect(answer.body).toMatch(/Failed to fetch.*sse-server/);
  });
});
