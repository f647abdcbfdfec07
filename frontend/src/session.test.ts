import { describe, expect, it } from 'vitest';
import { expiryDelay, sessionFromAnswer } from './session.ts';
import { toSessionAnswer } from './api.ts';

describe('a session with authorization on', () => {
  it('signs in as the token subject when it is a user id', () => {
    expect(sessionFromAnswer({ auth: true, sub: '3F2B8C1E-9D4A-4C6B-8E2F-1A7D5B9C0E34', exp: 1_900_000_000 })).toEqual({
      kind: 'signed-in',
      userId: '3f2b8c1e-9d4a-4c6b-8e2f-1a7d5b9c0e34',
      expiresAt: 1_900_000_000_000,
    });
  });

  it('stays signed out without a token, and says why a subject is not a user id', () => {
    expect(sessionFromAnswer({ auth: true, sub: null, exp: null })).toEqual({ kind: 'signed-out' });
    const s = sessionFromAnswer({ auth: true, sub: 'alice', exp: 1 });
    expect(s.kind).toBe('signed-out');
    expect(s.kind === 'signed-out' && s.error).toContain('not a user id');
  });

  it('reads the server answer, and anything else as no answer', () => {
    expect(toSessionAnswer({ auth: true, sub: 'x', exp: 5, publish: false })).toEqual({ auth: true, sub: 'x', exp: 5 });
    expect(toSessionAnswer({ auth: false, sub: null, exp: null })).toEqual({ auth: false, sub: null, exp: null });
    expect(toSessionAnswer({ sub: 'x' })).toBeNull();
    expect(toSessionAnswer('nope')).toBeNull();
  });

  it('checks an expiring session just after it expires, never with a negative or overlong timer', () => {
    expect(expiryDelay(10_000, 9_000)).toBe(1_500);
    expect(expiryDelay(0, 9_000)).toBe(0);
    expect(expiryDelay(Number.MAX_SAFE_INTEGER, 0)).toBe(2 ** 31 - 1);
  });
});
