// The inspector's requests against the contract (docs/openapi.json): every path, method
// and query parameter it uses is one the contract states, and the URLs come out as the
// guide's curl lines write them.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  broadcastRequest,
  createReportRequest,
  messageRequest,
  moveReportRequest,
  sessionRequest,
  STEP_INFO,
  STEPS,
  streamUrl,
  type HttpRequest,
} from './routes.ts';

interface Parameter {
  $ref?: string;
  name?: string;
  in?: string;
}
interface OpenApi {
  paths: Record<
    string,
    Record<string, { parameters?: Parameter[]; requestBody?: { content: Record<string, unknown> } }>
  >;
  components: { parameters: Record<string, Parameter> };
}

const contract = JSON.parse(readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8')) as OpenApi;

/** The query parameters the contract allows on `method path`. */
function queryParams(method: string, path: string): string[] {
  const op = contract.paths[path]?.[method.toLowerCase()];
  expect(op, `${method} ${path} in the contract`).toBeDefined();
  return (op?.parameters ?? [])
    .map((p) => (p.$ref ? contract.components.parameters[p.$ref.split('/').pop() ?? ''] : p))
    .filter((p) => p?.in === 'query')
    .map((p) => p.name ?? '');
}

function checkAgainstContract(req: HttpRequest) {
  const url = new URL(req.url, 'http://x');
  const allowed = queryParams(req.method, url.pathname);
  for (const name of url.searchParams.keys()) expect(allowed, `${req.method} ${url.pathname}`).toContain(name);
  if (req.body !== undefined) {
    const op = contract.paths[url.pathname][req.method.toLowerCase()];
    const types = Object.keys(op.requestBody?.content ?? {});
    expect(types).toContain(req.contentType?.split(';')[0]);
  }
}

describe('the inspector routes', () => {
  it('opens each step stream with the user parameter the contract names', () => {
    expect(streamUrl('v1', 'demo')).toBe('/v1/sse?username=demo');
    expect(streamUrl('v2', ' demo ')).toBe('/v2/sse?username=demo');
    expect(streamUrl('v3', 'a b&c')).toBe('/v3/sse?username=a+b%26c');
    expect(streamUrl('v4', '6f1c2a9e-6a4b-4c2f-9d3e-2b1a0c9d8e7f')).toBe(
      '/v4/sse?user_id=6f1c2a9e-6a4b-4c2f-9d3e-2b1a0c9d8e7f',
    );
    for (const step of STEPS) {
      checkAgainstContract({ method: 'GET', url: streamUrl(step, 'u') });
      expect(queryParams('GET', `/${step}/sse`)).toContain(STEP_INFO[step].userParam);
    }
  });

  it('leaves a blank user out (the token subject, when authorization is on)', () => {
    expect(streamUrl('v2', '  ')).toBe('/v2/sse');
    expect(messageRequest('v3', '', 'x').url).toBe('/v3/message');
  });

  it('posts messages and broadcasts as text', () => {
    expect(messageRequest('v2', 'demo', 'Howdy')).toEqual({
      method: 'POST',
      url: '/v2/message?username=demo',
      body: 'Howdy',
      contentType: 'text/plain; charset=utf-8',
    });
    expect(broadcastRequest('v3', 'all')).toMatchObject({ method: 'POST', url: '/v3/broadcast', body: 'all' });
    for (const step of ['v2', 'v3'] as const) {
      checkAgainstContract(messageRequest(step, 'demo', 'x'));
      checkAgainstContract(broadcastRequest(step, 'x'));
    }
  });

  it('creates and moves /v4 reports as api.ts does', () => {
    const user = '6f1c2a9e-6a4b-4c2f-9d3e-2b1a0c9d8e7f';
    const create = createReportRequest(user);
    expect(create).toEqual({ method: 'POST', url: `/v4/new/report?user_id=${user}` });
    const move = moveReportRequest(user, ' r-1 ', 'queued');
    expect(move).toEqual({
      method: 'PUT',
      url: `/v4/report?user_id=${user}`,
      body: '{"id":"r-1","status":"queued"}',
      contentType: 'application/json',
    });
    checkAgainstContract(create);
    checkAgainstContract(move);
  });

  it('opens and closes the cookie session as the board does', () => {
    expect(sessionRequest('GET')).toEqual({ method: 'GET', url: '/auth/session' });
    expect(sessionRequest('DELETE')).toEqual({ method: 'DELETE', url: '/auth/session' });
    expect(sessionRequest('POST', ' eyJ.x.y \n')).toEqual({
      method: 'POST',
      url: '/auth/session',
      headers: { Authorization: 'Bearer eyJ.x.y' },
    });
    for (const method of ['GET', 'POST', 'DELETE'] as const) queryParams(method, '/auth/session');
  });

  it('says which steps resume and which send a snapshot', () => {
    expect(STEPS.filter((s) => STEP_INFO[s].resumes)).toEqual(['v2', 'v3', 'v4']);
    expect(STEPS.filter((s) => STEP_INFO[s].snapshot)).toEqual(['v4']);
    // the contract's own words: /v1 "keeps nothing to resume"; /v2–/v4 take Last-Event-ID
    for (const step of STEPS) {
      const params = contract.paths[`/${step}/sse`].get.parameters ?? [];
      const takesId = params.some((p) => p.$ref?.endsWith('/LastEventIdHeader'));
      expect(takesId, step).toBe(STEP_INFO[step].resumes);
    }
  });
});
