// Arrival times as the frame log writes them.
import { describe, expect, it } from 'vitest';
import { clockText, sinceText } from './times.ts';

describe('arrival times', () => {
  it('writes ms since the request', () => {
    expect(sinceText(0)).toBe('+0 ms');
    expect(sinceText(1041.6)).toBe('+1042 ms');
  });

  it('writes the local clock to the millisecond', () => {
    const wall = new Date(2026, 0, 2, 3, 4, 5, 67).getTime();
    expect(clockText(wall)).toBe('03:04:05.067');
  });
});
