import { describe, expect, it } from 'vitest';
import { STATUSES, TRANSITIONS, actionLabel, canTransition, isStatus, nextStatuses } from './transitions.ts';
import { newUuid, normalizeUuid } from './uuid.ts';
import { sessionFromSearch } from './session.ts';
import { relativeTime } from './time.ts';
import { errorMessage } from './api.ts';

describe('transitions', () => {
  it('are exactly the eight of the contract', () => {
    const pairs = STATUSES.flatMap((from) => TRANSITIONS[from].map((to) => `${from}->${to}`)).sort();
    expect(pairs).toEqual(
      [
        'pending->queued',
        'pending->canceled',
        'queued->processing',
        'queued->canceled',
        'processing->completed',
        'processing->failed',
        'failed->pending',
        'canceled->pending',
      ].sort(),
    );
  });

  it('answer canTransition and nextStatuses consistently', () => {
    for (const from of STATUSES) {
      for (const to of STATUSES) expect(canTransition(from, to)).toBe(nextStatuses(from).includes(to));
    }
    expect(nextStatuses('completed')).toEqual([]);
    expect(canTransition('pending', 'processing')).toBe(false);
  });

  it('knows the statuses and labels every button', () => {
    expect(isStatus('queued')).toBe(true);
    expect(isStatus('QUEUED')).toBe(false);
    expect(isStatus(3)).toBe(false);
    for (const from of STATUSES) for (const to of nextStatuses(from)) expect(actionLabel(from, to)).toMatch(/^\w+$/);
    expect(actionLabel('failed', 'pending')).toBe('Retry');
    expect(actionLabel('canceled', 'pending')).toBe('Reopen');
  });
});

describe('user ids', () => {
  it('accepts UUIDs in any case, with spaces or braces, and returns lower case', () => {
    expect(normalizeUuid('  3F2B8C1E-9D4A-4C6B-8E2F-1A7D5B9C0E34 ')).toBe('3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e34');
    expect(normalizeUuid('{3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e34}')).toBe('3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e34');
  });

  it('rejects what is not a UUID', () => {
    for (const bad of [
      '',
      'alice',
      '3f2b8c1e9d4a4c6b8e2f1a7d5b9c0e34',
      '3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e3',
      'g'.repeat(36),
    ]) {
      expect(normalizeUuid(bad)).toBeNull();
    }
  });

  it('makes valid, distinct v4 UUIDs', () => {
    const a = newUuid();
    expect(normalizeUuid(a)).toBe(a);
    expect(a[14]).toBe('4');
    expect(newUuid()).not.toBe(a);
  });

  it('reads the session from the address', () => {
    expect(sessionFromSearch('')).toEqual({ kind: 'signed-out' });
    expect(sessionFromSearch('?user=3F2B8C1E-9D4A-4C6B-8E2F-1A7D5B9C0E34')).toEqual({
      kind: 'signed-in',
      userId: '3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e34',
    });
    const s = sessionFromSearch('?user=bob');
    expect(s.kind).toBe('signed-out');
    expect(s.kind === 'signed-out' && s.error).toContain('not a UUID');
  });
});

describe('relativeTime', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  it('reads like a person would say it', () => {
    expect(relativeTime('2026-01-01T12:00:00Z', now)).toBe('just now');
    expect(relativeTime('2026-01-01T12:00:01Z', now)).toBe('just now'); // clock skew: never "in the future"
    expect(relativeTime('2026-01-01T11:59:30Z', now)).toBe('30 s ago');
    expect(relativeTime('2026-01-01T11:55:00Z', now)).toBe('5 min ago');
    expect(relativeTime('2026-01-01T09:00:00Z', now)).toBe('3 h ago');
    expect(relativeTime('nonsense', now)).toBe('nonsense');
  });
});

describe('errorMessage', () => {
  it('shows the server sentence', async () => {
    const res = new Response(
      JSON.stringify({ error: 'Cannot move from queued to pending.', current: 'queued', allowed: [] }),
      {
        status: 409,
      },
    );
    expect(await errorMessage(res)).toBe('Cannot move from queued to pending.');
  });

  it('falls back to the HTTP status when the body is not the JSON error shape', async () => {
    expect(await errorMessage(new Response('oops', { status: 500, statusText: 'Internal Server Error' }))).toBe(
      'The server answered HTTP 500 Internal Server Error.',
    );
    expect(await errorMessage(new Response('', { status: 502 }))).toContain('not reachable');
  });
});
