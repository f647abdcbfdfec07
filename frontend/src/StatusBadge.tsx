import type { Status } from './transitions.ts';
import { Icon, type IconName } from './Icon.tsx';

const ICON: Record<Status, IconName> = {
  pending: 'clock',
  queued: 'list',
  processing: 'rotate',
  completed: 'checkCircle',
  failed: 'xCircle',
  canceled: 'slash',
};

/** The status as a coloured pill that always carries the word, so colour is never the only signal. */
export function StatusBadge({ status }: { status: Status }) {
  return (
    <span className={`badge badge-${status}`} data-testid="report-status" data-status={status}>
      <Icon name={ICON[status]} size={14} className="badge-icon" />
      {status}
    </span>
  );
}
