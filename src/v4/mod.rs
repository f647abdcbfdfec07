//! /v4: a report status board. Reports are stored (DynamoDB or memory), status
//! changes travel as commands through the bus to the writers, and the resulting
//! facts reach every open stream of the report's owner on every instance.
//!
//! Request path: `routes` (validate, publish a command) → `writer` (conditional
//! write, publish a fact) → `facts` (every instance) → the user's streams; and on
//! every instance, `sweeper` settles any command whose fact does not show up.
//!
//! The delivery guarantees, in one place (each file says how it keeps its part):
//!
//! 1. **Every accepted command gets exactly one outcome.** A `202` means the
//!    command is in the command topic (idempotent producer: no duplicate, no
//!    reordering). From there it ends in one `report_status_update` or
//!    `report_status_rejected`, announced as a fact whose id is the command's id.
//! 2. **Any instance may settle any command, any number of times**
//!    (`writer::settle`): the write is conditional on the version read, and the
//!    item remembers the ids of its last 16 applied commands (`applied_commands`),
//!    so a second attempt finds "already applied" (never "rejected"), however late
//!    and on whichever instance. Repeated facts share the command's id; readers
//!    drop all but the first (`facts`).
//! 3. **Failover does not rest on the broker's group handling.** The writers share
//!    a consumer group for the normal path; every instance's `sweeper` also reads
//!    every command and settles one that has had no outcome for `SWEEP_AFTER`
//!    (4 s). A report's commands are settled in topic order by whoever settles
//!    them: the writer of its partition handles them one by one, the sweeper
//!    only ever takes a report's oldest pending command.
//! 4. **Failures say what they are** (`store::StoreError`): transient ones
//!    (unreachable, throttled) are retried with backoff and jitter until they
//!    succeed; permanent ones (unreadable item, missing table, access denied) are
//!    rejected with a reason and counted in `v4_commands_rejected_total{reason}`;
//!    a record that is not a command is skipped, logged and counted. Nothing is
//!    retried forever that can never succeed, and no partition stalls on bad data.
//! 5. **Readers are supervised** (`bus`): a reader task that dies is restarted
//!    (fan-out readers from the records they had handled, so no event is lost or
//!    repeated), and `/readyz` is 503, naming it, while it is down or behind.
//! 6. **Snapshots are never older than what was announced**: lists take ids from
//!    the `UserIdIndex` GSI and read the items with consistent reads.

pub mod change;
pub mod dynamodb;
pub mod fact_reader;
pub mod facts;
pub mod memory;
pub mod new_report;
pub mod report;
pub mod routes;
pub mod snapshot;
pub mod store;
pub mod sweeper;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::metrics::Metrics;
use crate::sse::UserHub;
use store::ReportStore;

/// What the writer, the sweeper and the fact reader work with, and nothing more:
/// built by `lib.rs`, so these background tasks cannot reach authorization, the
/// other steps' hubs or the connection limits.
pub struct Board {
    pub bus: Bus,
    pub store: Arc<dyn ReportStore>,
    /// The /v4 streams, where facts become events.
    pub hub: Arc<UserHub>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    /// Where commands go (`--v4-command-topic`).
    pub command_topic: String,
    /// Where facts go (`--v4-event-topic`).
    pub event_topic: String,
    /// The writers' consumer group (`--v4-writers-group`).
    pub writers_group: String,
    /// How far back a fan-out reader starts (`--history-window`).
    pub history_window: Duration,
}

/// Starts the writer, this instance's fact reader and its sweeper.
pub fn start(board: &Arc<Board>) {
    let sweeper = Arc::new(sweeper::Sweeper::default());
    writer::start(board);
    fact_reader::start_consumer(board, {
        let sweeper = sweeper.clone();
        move |id| sweeper.outcome_seen(id)
    });
    sweeper::start(board, sweeper);
}
