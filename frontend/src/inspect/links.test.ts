// The inspector's path and the links between it and the board.
import { describe, expect, it } from 'vitest';
import { boardHref, initialForm, inspectHref, isInspectPath } from './links.ts';

const U = '6f1c2a9e-6a4b-4c2f-9d3e-2b1a0c9d8e7f';

describe('the inspector links', () => {
  it('knows its own path', () => {
    expect(isInspectPath('/inspect')).toBe(true);
    expect(isInspectPath('/inspect/')).toBe(true);
    expect(isInspectPath('/')).toBe(false);
    expect(isInspectPath('/inspector')).toBe(false);
    expect(isInspectPath('/v4/inspect')).toBe(false);
  });

  it('opens on the board user /v4 stream, and goes back to the same board', () => {
    expect(inspectHref(U)).toBe(`/inspect?step=v4&user=${U}`);
    expect(inspectHref()).toBe('/inspect');
    expect(boardHref(U.toUpperCase())).toBe(`/?user=${U}`);
    expect(boardHref('demo')).toBe('/');
    expect(boardHref('')).toBe('/');
  });

  it('starts from the query: step, /v4 user id, username', () => {
    expect(initialForm(`?step=v4&user=${U}`)).toEqual({ step: 'v4', username: 'demo', userId: U });
    expect(initialForm(`?user=${U}`).step).toBe('v4');
    expect(initialForm('?step=v3&username=bob')).toEqual({ step: 'v3', username: 'bob', userId: '' });
    expect(initialForm('?step=v9&user=nope')).toEqual({ step: 'v2', username: 'demo', userId: '' });
  });
});
