// The one place the dashboard knows the report life cycle. It mirrors the server's table
// (docs/openapi.json, PUT /v4/report): the server is the judge, this only decides which buttons to show.

export const STATUSES = ['pending', 'queued', 'processing', 'canceled', 'failed', 'completed'] as const;

export type Status = (typeof STATUSES)[number];

/** Valid transitions, and no others. Order = order of the buttons. */
export const TRANSITIONS: Readonly<Record<Status, readonly Status[]>> = {
  pending: ['queued', 'canceled'],
  queued: ['processing', 'canceled'],
  processing: ['completed', 'failed'],
  failed: ['pending'],
  canceled: ['pending'],
  completed: [],
};

export function isStatus(value: unknown): value is Status {
  return typeof value === 'string' && (STATUSES as readonly string[]).includes(value);
}

export function nextStatuses(from: Status): readonly Status[] {
  return TRANSITIONS[from];
}

export function canTransition(from: Status, to: Status): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Button label for moving a report from `from` to `to` (the badge always names the status). */
export function actionLabel(from: Status, to: Status): string {
  switch (to) {
    case 'queued':
      return 'Queue';
    case 'processing':
      return 'Start';
    case 'completed':
      return 'Complete';
    case 'failed':
      return 'Fail';
    case 'canceled':
      return 'Cancel';
    case 'pending':
      return from === 'failed' ? 'Retry' : 'Reopen';
  }
}
