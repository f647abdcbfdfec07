// The dashboard against the server's contract, docs/openapi.json: the statuses, the fields
// of a Report, the transition table and the stream's event names the code relies on are
// the ones the contract states. The server is checked against the same file (tests/openapi.rs,
// scripts/contract_test.sh), so a change on either side that the other misses fails here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { STATUSES, TRANSITIONS } from './transitions.ts';
import type { Report } from './types.ts';
import { SERVER_EVENTS, toReport } from './wire.ts';

interface Schema {
  required?: string[];
  properties?: Record<string, { $ref?: string }>;
  enum?: string[];
}
interface OpenApi {
  paths: Record<string, Record<string, { description?: string }>>;
  components: { schemas: Record<string, Schema> };
}

const contract = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as OpenApi;
const schemas = contract.components.schemas;

/** The fields of the `Report` type (types.ts) that the code uses; the checks below keep this list honest. */
const REPORT_FIELDS = [
  'userId',
  'reportId',
  'reportStatus',
  'createdAt',
  'updatedAt',
] as const satisfies readonly (keyof Report)[];
// Type-level: every field of `Report` is in the list (`tsc -b`, run by `npm run build`).
type Unlisted = Exclude<keyof Report, (typeof REPORT_FIELDS)[number]>;
const everyFieldListed: [Unlisted] extends [never] ? true : false = true;

/** Named events of /v4/sse that the dashboard does not listen to, on purpose. */
const IGNORED_EVENTS: string[] = [];

const sorted = (xs: readonly string[]) => [...xs].sort();

describe('the contract (docs/openapi.json)', () => {
  it('has the statuses of transitions.ts', () => {
    expect(sorted(schemas.Status.enum ?? [])).toEqual(sorted(STATUSES));
  });

  it('requires exactly the fields of a Report, and the code keeps them all', () => {
    expect(everyFieldListed).toBe(true);
    const report = schemas.Report;
    expect(sorted(report.required ?? [])).toEqual(sorted(REPORT_FIELDS));
    expect(sorted(Object.keys(report.properties ?? {}))).toEqual(sorted(REPORT_FIELDS));
    expect(report.properties?.reportStatus.$ref).toBe('#/components/schemas/Status');

    const sample = {
      userId: '11111111-1111-4111-8111-111111111111',
      reportId: 'aaaaaaaa-0000-4000-8000-000000000001',
      reportStatus: 'pending',
      createdAt: '2026-01-01T10:00:00Z',
      updatedAt: '2026-01-01T10:00:00Z',
    };
    expect(sorted(Object.keys(toReport(sample) ?? {}))).toEqual(sorted(REPORT_FIELDS));
    for (const field of REPORT_FIELDS) {
      const missing: Record<string, unknown> = { ...sample };
      delete missing[field];
      expect(toReport(missing), `a Report without ${field}`).toBeNull();
    }
  });

  // The contract states the transitions in words, in the description of PUT /v4/report:
  // "Valid transitions, and no others: pending→queued, …". (Schemas cannot say it; a 409
  // answer names the allowed ones for one report at run time.)
  it('allows the transitions of transitions.ts, and no others', () => {
    const text = contract.paths['/v4/report'].put.description ?? '';
    const sentence = /Valid transitions, and no others: ([^.]*)\./.exec(text);
    expect(sentence, 'the sentence listing the transitions').not.toBeNull();
    const stated = sentence![1].split(',').map((pair) => pair.trim().replace('→', '->'));
    const ours = STATUSES.flatMap((from) => TRANSITIONS[from].map((to) => `${from}->${to}`));
    expect(stated.length).toBe(8);
    expect(sorted(stated)).toEqual(sorted(ours));
  });

  it('names the stream events wire.ts decodes, apart from the ones ignored on purpose', () => {
    const text = contract.paths['/v4/sse'].get.description ?? '';
    // "* `snapshot`: …" for each data event, and "`event: reset`" for the one a resume may start with
    const named = [...text.matchAll(/^\* `(\w+)`:/gm)].map((m) => m[1]);
    if (/`event: reset`/.test(text)) named.push('reset');
    expect(sorted(named.filter((n) => !IGNORED_EVENTS.includes(n)))).toEqual(sorted(SERVER_EVENTS));
    for (const n of IGNORED_EVENTS) expect(named).toContain(n);
  });
});
