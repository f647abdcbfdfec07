//! Handling one record: a handler says how it failed ([`Failure`]). A transient
//! failure is retried on the same record (backoff with jitter) and the record is
//! committed only after it succeeded, so a write that was acknowledged to a client
//! is never skipped; a permanent one (a record that can never be handled) is logged,
//! counted as malformed and passed, so it never stalls its partition.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::Record;
use crate::backoff::Backoff;
use crate::events::{RecordSkipped, Skip};
use crate::metrics::Metrics;

/// How a handler failed on a record.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying (a service is unreachable): the record is handled again.
    Transient(String),
    /// Can never succeed (the record is malformed): logged, counted, passed.
    Permanent(String),
}

impl From<std::convert::Infallible> for Failure {
    fn from(never: std::convert::Infallible) -> Failure {
        match never {}
    }
}

/// Calls `handler` until it succeeds, fails permanently, or shutdown; waits longer
/// after each transient failure. Returns `false` when interrupted by shutdown.
pub(super) async fn handle_until_done<H, F, E>(
    handler: &H,
    record: Record,
    topic: &str,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> bool
where
    H: Fn(Record) -> F,
    F: Future<Output = Result<(), E>>,
    E: Into<Failure>,
{
    #[cfg(debug_assertions)]
    test_hook::panic_once_on(&record.payload);
    let mut backoff = Backoff::default();
    loop {
        match handler(record.clone()).await.map_err(Into::into) {
            Ok(()) => return true,
            Err(Failure::Permanent(why)) => {
                RecordSkipped {
                    topic,
                    partition: record.partition,
                    offset: record.offset,
                    why: Skip::Malformed(&why),
                }
                .emit(metrics);
                return true;
            }
            Err(Failure::Transient(why)) => {
                tracing::warn!(
                    topic,
                    partition = record.partition,
                    offset = record.offset,
                    "handling a record failed, will retry: {why}"
                );
                if !backoff.wait(shutdown).await {
                    return false;
                }
            }
        }
    }
}

/// A test hook, compiled into debug builds only: with
/// `SSE_TEST_PANIC_ONCE=<text>` set, the first record whose payload contains
/// `<text>` makes its reader panic (once per process), so tests can watch a
/// reader being restarted.
#[cfg(debug_assertions)]
mod test_hook {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    static PANICKED: AtomicBool = AtomicBool::new(false);

    /// The trigger, read from the environment once.
    fn trigger() -> Option<&'static [u8]> {
        static TRIGGER: OnceLock<Option<Vec<u8>>> = OnceLock::new();
        TRIGGER
            .get_or_init(|| {
                std::env::var_os("SSE_TEST_PANIC_ONCE")
                    .map(|t| t.as_encoded_bytes().to_vec())
                    .filter(|t| !t.is_empty())
            })
            .as_deref()
    }

    pub fn panic_once_on(payload: &[u8]) {
        let Some(trigger) = trigger() else {
            return;
        };
        if !trigger.is_empty()
            && payload.windows(trigger.len()).any(|w| w == trigger)
            && !PANICKED.swap(true, Ordering::SeqCst)
        {
            panic!("SSE_TEST_PANIC_ONCE: test hook triggered");
        }
    }
}
