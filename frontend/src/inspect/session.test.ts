// Reading `GET /auth/session` for the inspector's session panel.
import { describe, expect, it } from 'vitest';
import { readSession, sessionText } from './session.ts';

describe('the inspector session', () => {
  it('reads the answer, publish included', () => {
    expect(readSession('{"auth":true,"sub":"demo","exp":1700000000,"publish":true}')).toEqual({
      auth: true,
      sub: 'demo',
      exp: 1700000000,
      publish: true,
    });
    expect(readSession('{"auth":false,"sub":null,"exp":null,"publish":false}')).toEqual({
      auth: false,
      sub: null,
      exp: null,
      publish: false,
    });
    expect(readSession('{"auth":true}')).toMatchObject({ auth: true, sub: null, publish: false });
    expect(readSession('<!doctype html>')).toBeNull();
    expect(readSession('{"error":"x"}')).toBeNull();
  });

  it('says in one sentence who the page is', () => {
    expect(sessionText(null)).toMatch(/Checking/);
    expect(sessionText({ auth: false, sub: null, exp: null, publish: false })).toMatch(/^Authorization is off/);
    expect(sessionText({ auth: true, sub: null, exp: null, publish: false })).toMatch(/paste a token/);
    expect(sessionText({ auth: true, sub: 'demo', exp: null, publish: false })).toBe(
      'Signed in as demo; may not post messages or broadcasts (no publish scope), but may use its own /v4 reports.',
    );
    expect(sessionText({ auth: true, sub: 'ops', exp: null, publish: true })).toMatch(
      /may post messages and broadcasts to anyone/,
    );
  });
});
