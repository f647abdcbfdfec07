import type { Status } from './transitions.ts';

/** A report as the server sends it (camelCase, RFC 3339 times). */
export interface Report {
  userId: string;
  reportId: string;
  reportStatus: Status;
  createdAt: string;
  updatedAt: string;
}
