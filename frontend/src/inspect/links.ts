// Where the inspector lives and how it and the board link to each other. The server gives
// every unknown page the dashboard's index.html (and `npm run dev` does the same), so
// main.tsx picks the page from the path: `/inspect` is the inspector, anything else the
// board. The user travels in the query, as on the board (`?user=UUID`): the board's header
// link opens the inspector on that user's /v4 stream, and the way back keeps it.

import { normalizeUuid } from '../uuid.ts';
import { isStep, type Step } from './routes.ts';

export const INSPECT_PATH = '/inspect';

/** Whether `pathname` is the inspector's page (a trailing slash allowed). */
export function isInspectPath(pathname: string): boolean {
  return pathname.replace(/\/+$/, '') === INSPECT_PATH;
}

/** The inspector's address, opened on `userId`'s /v4 stream when one is given. */
export function inspectHref(userId?: string): string {
  return userId ? `${INSPECT_PATH}?${new URLSearchParams({ step: 'v4', user: userId }).toString()}` : INSPECT_PATH;
}

/** The board's address, signed in as `userId` when it is a UUID (authorization off keeps the user there). */
export function boardHref(userId: string): string {
  const id = normalizeUuid(userId);
  return id ? `/?${new URLSearchParams({ user: id }).toString()}` : '/';
}

export interface InitialForm {
  step: Step;
  /** The username of /v1–/v3. */
  username: string;
  /** The user id (UUID) of /v4. */
  userId: string;
}

/** The form the inspector starts with: `?step=`, `?user=` (a UUID: the /v4 user) and `?username=`. */
export function initialForm(search: string): InitialForm {
  const q = new URLSearchParams(search);
  const userId = normalizeUuid(q.get('user') ?? '') ?? '';
  const step = q.get('step');
  return {
    step: isStep(step) ? step : userId ? 'v4' : 'v2',
    username: q.get('username') ?? 'demo',
    userId,
  };
}
