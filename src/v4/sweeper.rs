//! The sweeper: every instance makes sure every command gets its outcome, whatever
//! happened to the writer that should have applied it.
//!
//! Why: the writers share a consumer group, and the broker hands each partition to
//! one of them. When that instance dies, its partitions wait until the broker gives
//! them to another member, which Apache Kafka does after the consumer's
//! `session.timeout.ms` (10 s here) and a rebalance; a broker or managed service
//! that is slower to notice, or a member that hangs without dying, would leave
//! those commands, all acknowledged with 202, waiting longer still.
//!
//! How: every instance reads the command topic itself (fan-out, from `now −
//! --history-window` at start, like the fact topic) and notes each command as
//! *pending*; the fact reader clears a command when it sees a fact with the
//! command's id (its outcome). A command still pending [`SWEEP_AFTER`] after it was
//! read is settled here with [`writer::settle`]: the conditional write and the
//! applied-command ids on the item make a second attempt harmless, and a second
//! announcement carries the same fact id, which readers drop. A report's commands
//! are swept one at a time, in topic order (only the oldest pending command of a
//! report is ever due), so they are settled in the order they were accepted.
//!
//! Coverage: a new instance covers the commands of the last window, less
//! [`FACTS_FIRST`]; older ones are covered by the instances that were running when
//! they were sent. The fact reader starts its own window at its own start, up to
//! seconds later: a command read at the edge of the window whose outcome fell
//! before the fact reader's start looked unsettled, and was settled again (the
//! nemesis, docs/RELIABILITY.md: a change applied 10 minutes earlier, past the
//! report's remembered command ids, re-announced as rejected). So the commands
//! read are always newer than the facts read. Memory: at
//! most [`MAX_PENDING`] commands wait at once (beyond that, new ones are left to
//! the writers, with a warning).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Board;
use super::fact_reader::RecentIds;
use super::store::StatusChange;
use super::writer;
use crate::bus::{FanOut, Record};
use crate::events::CommandSwept;
use crate::lock::Locked;

/// How long a command may wait for its outcome before this instance settles it.
pub const SWEEP_AFTER: Duration = Duration::from_secs(4);
/// How much later than the fact reader's window the commands read start.
pub const FACTS_FIRST: Duration = Duration::from_secs(60);
/// How often pending commands are looked at.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Commands pending at once on one instance, at most.
const MAX_PENDING: usize = 100_000;
/// Outcomes remembered, for commands read after their fact (during catch-up).
const REMEMBERED_OUTCOMES: usize = 100_000;

/// Commands read but not yet seen settled, in topic order.
pub struct Sweeper {
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// By (partition, offset): topic order, per report too (one key, one partition).
    commands: BTreeMap<(i32, i64), Waiting>,
    by_id: HashMap<Uuid, (i32, i64)>,
    /// Command ids whose outcome was seen.
    settled: RecentIds,
}

struct Waiting {
    change: StatusChange,
    due: Instant,
}

impl Default for Sweeper {
    fn default() -> Sweeper {
        Sweeper {
            state: Mutex::new(Pending {
                settled: RecentIds::new(REMEMBERED_OUTCOMES),
                ..Pending::default()
            }),
        }
    }
}

impl Sweeper {
    fn state(&self) -> MutexGuard<'_, Pending> {
        self.state.locked()
    }

    /// A command record read from the command topic.
    fn command_read(&self, record: &Record) {
        // Malformed records are the writers' to log and count.
        let Ok(change) = writer::parse(&record.payload) else {
            return;
        };
        let mut state = self.state();
        if state.settled.contains(&change.command_id)
            || state.by_id.contains_key(&change.command_id)
        {
            return;
        }
        if state.commands.len() >= MAX_PENDING {
            tracing::warn!(
                command = %change.command_id,
                "{MAX_PENDING} commands are waiting for their outcome; this one is left to the writers"
            );
            return;
        }
        let at = (record.partition, record.offset);
        state.by_id.insert(change.command_id, at);
        state.commands.insert(
            at,
            Waiting {
                change,
                due: Instant::now() + SWEEP_AFTER,
            },
        );
    }

    /// A fact (the outcome of the command with this id, or a new report) was read.
    pub fn outcome_seen(&self, id: Uuid) {
        let mut state = self.state();
        state.settled.insert(id);
        if let Some(at) = state.by_id.remove(&id) {
            state.commands.remove(&at);
        }
    }

    /// The commands to settle now: for each report, its oldest pending command,
    /// if that one is due.
    fn due(&self) -> Vec<StatusChange> {
        let now = Instant::now();
        let state = self.state();
        let mut reports = HashSet::new();
        state
            .commands
            .values()
            .filter(|w| reports.insert(w.change.report_id) && w.due <= now)
            .map(|w| w.change.clone())
            .collect()
    }
}

/// Starts this instance's reader of the command topic and its sweep.
pub fn start(board: &Arc<Board>, sweeper: Arc<Sweeper>) {
    let reader = sweeper.clone();
    board.bus.consume(
        &board.command_topic,
        FanOut::group(board.history_window.saturating_sub(FACTS_FIRST), |_| {}),
        board.metrics.clone(),
        board.shutdown.clone(),
        move |record| {
            reader.command_read(&record);
            std::future::ready(Ok::<(), std::convert::Infallible>(()))
        },
    );
    let board = board.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = board.shutdown.cancelled() => return,
            }
            // Until the fact reader has caught up, outcomes of the commands read
            // meanwhile may still be on their way: settling them would only
            // announce them again.
            if !board.bus.caught_up(&board.event_topic) {
                continue;
            }
            for change in sweeper.due() {
                match writer::settle(&board, &change).await {
                    Ok(()) => {
                        CommandSwept {
                            command: change.command_id,
                            report: change.report_id,
                            after: SWEEP_AFTER,
                        }
                        .emit(&board.metrics);
                        sweeper.outcome_seen(change.command_id);
                    }
                    // Tried again at the next sweep; later commands of the report wait.
                    Err(e) => tracing::warn!(
                        command = %change.command_id,
                        "cannot settle a waiting command yet: {e}"
                    ),
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4::report::Status;

    fn command(report: Uuid, offset: i64) -> Record {
        let change = StatusChange {
            command_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            report_id: report,
            from: Status::Pending,
            to: Status::Queued,
            expected_version: 1,
            requested_at: chrono::Utc::now(),
        };
        Record {
            payload: serde_json::to_vec(&change).unwrap(),
            partition: 0,
            offset,
            timestamp_ms: None,
            id: None,
        }
    }

    fn due_later(sweeper: &Sweeper) -> Vec<StatusChange> {
        for waiting in sweeper.state().commands.values_mut() {
            waiting.due = Instant::now();
        }
        sweeper.due()
    }

    #[test]
    fn only_the_oldest_pending_command_of_a_report_is_due() {
        let sweeper = Sweeper::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let records = [command(a, 1), command(b, 2), command(a, 3)];
        for record in &records {
            sweeper.command_read(record);
        }
        assert!(
            sweeper.due().is_empty(),
            "nothing is due before SWEEP_AFTER"
        );
        let due: Vec<i64> = due_later(&sweeper)
            .iter()
            .map(|c| if c.report_id == a { 1 } else { 2 })
            .collect();
        assert_eq!(due, [1, 2]);
        let first = writer::parse(&records[0].payload).unwrap().command_id;
        sweeper.outcome_seen(first);
        let third = writer::parse(&records[2].payload).unwrap().command_id;
        let due: Vec<Uuid> = due_later(&sweeper).iter().map(|c| c.command_id).collect();
        assert!(
            due.contains(&third),
            "a's next command is due once the first settled"
        );
    }

    #[test]
    fn a_command_whose_outcome_was_seen_first_never_waits() {
        let sweeper = Sweeper::default();
        let record = command(Uuid::new_v4(), 7);
        sweeper.outcome_seen(writer::parse(&record.payload).unwrap().command_id);
        sweeper.command_read(&record);
        assert!(due_later(&sweeper).is_empty());
    }

    #[test]
    fn malformed_commands_are_not_kept() {
        let sweeper = Sweeper::default();
        let mut record = command(Uuid::new_v4(), 1);
        record.payload = b"not json".to_vec();
        sweeper.command_read(&record);
        assert!(due_later(&sweeper).is_empty());
    }
}
