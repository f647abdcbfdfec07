// The one-line meaning of a frame, for every kind the server sends (and a few it should not).
import { describe, expect, it } from 'vitest';
import { describeFrame, frameKind, presenceText, resetInfo } from './describeFrame.ts';
import { feed, initialParser, type SseFrame } from './sseParser.ts';

function frame(text: string): SseFrame {
  const { frames } = feed(initialParser(), `${text}\n\n`);
  expect(frames).toHaveLength(1);
  return frames[0];
}

const REPORT = {
  userId: '11111111-1111-4111-8111-111111111111',
  reportId: 'aaaaaaaa-0000-4000-8000-000000000001',
  reportStatus: 'pending',
  createdAt: '2026-01-01T10:00:00Z',
  updatedAt: '2026-01-01T10:00:00Z',
};

describe('describeFrame', () => {
  it('names what a frame without data did', () => {
    expect(describeFrame(frame('retry: 2000'))).toBe('reconnect delay set to 2000 ms');
    expect(frameKind(frame('retry: 2000'))).toBe('retry');
    expect(describeFrame(frame(': keep-alive-text'))).toMatch(/^comment: keeps the connection alive/);
    expect(frameKind(frame(': keep-alive-text'))).toBe('comment');
    expect(describeFrame(frame('id: 42'))).toBe('no data, but the last event id is now "42"');
    expect(frameKind(frame('id: 42'))).toBe('id');
    expect(describeFrame(frame('event: x\nfoo: 1'))).toBe('no data: nothing dispatched (1 line ignored)');
    expect(frameKind(frame('event: x'))).toBe('nothing');
  });

  it('reads a reset: its reason, what it means, and the id sent', () => {
    const reset = frame('event: reset\ndata: {"reason": "unknown_id", "lastEventId": "nonsense"}');
    expect(frameKind(reset)).toBe('reset');
    expect(describeFrame(reset)).toBe(
      'reset: unknown_id (the id is not one of this server); cannot resume from "nonsense", events missed',
    );
    expect(describeFrame(frame('event: reset\ndata: {"reason": "history_expired"}'))).toMatch(
      /^reset: history_expired \(the id is older than what the server keeps\); cannot resume, events missed$/,
    );
    expect(describeFrame(frame('event: reset\ndata: [1]'))).toBe('reset: not {"reason", "lastEventId"}');
    expect(resetInfo('{"reason":"unknown_id","lastEventId":"x"}')).toEqual({ reason: 'unknown_id', lastEventId: 'x' });
  });

  it('counts presence: connections and instances', () => {
    expect(describeFrame(frame('event: presence\ndata: {"connections":3,"instances":2}'))).toBe(
      '3 connections on 2 instances',
    );
    expect(presenceText('{"connections":1,"instances":1}')).toBe('1 connection on 1 instance');
    expect(presenceText('{"connections":-1,"instances":1}')).toBeNull();
    expect(describeFrame(frame('event: presence\ndata: nope'))).toBe('presence: not {"connections", "instances"}');
  });

  it('says what each /v4 event did, decoded as the board decodes it', () => {
    expect(describeFrame(frame(`event: snapshot\ndata: ${JSON.stringify([REPORT, REPORT])}`))).toBe(
      'snapshot of 2 reports',
    );
    expect(describeFrame(frame('event: snapshot\ndata: []'))).toBe('snapshot of 0 reports');
    expect(describeFrame(frame('event: snapshot_truncated\ndata: {"total":5,"sent":2}'))).toBe(
      'the snapshot holds the newest 2 of 5 reports',
    );
    expect(describeFrame(frame(`event: new_report\ndata: ${JSON.stringify(REPORT)}`))).toBe(
      `new report ${REPORT.reportId} (pending)`,
    );
    expect(describeFrame(frame('event: report_status_update\ndata: {"id":"r1","status":"queued"}'))).toBe(
      'report r1 is now queued',
    );
    expect(
      describeFrame(frame('event: report_status_rejected\ndata: {"id":"r1","status":"queued","reason":"stale"}')),
    ).toBe('move of report r1 to queued rejected: stale');
    expect(describeFrame(frame('event: new_report\ndata: {}'))).toBe('new_report: not a Report');
    expect(describeFrame(frame('event: snapshot\ndata: {oops'))).toBe('snapshot: not JSON');
  });

  it('leaves messages to their raw data, and names events it does not know', () => {
    expect(describeFrame(frame('id: 1\ndata: hi!'))).toBe('message');
    expect(frameKind(frame('data: hi!'))).toBe('message');
    expect(describeFrame(frame('event: surprise\ndata: 1'))).toBe('event "surprise"');
  });
});
