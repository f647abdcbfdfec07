//! Every reader runs supervised ([`supervise`]): a reader task that panics or
//! returns is logged and restarted with backoff, and while one is down its health
//! says so, so `/readyz` names it.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::ReaderHealth;
use crate::backoff::Backoff;
use crate::lock::Locked;

/// The first wait before a failed reader is restarted (doubling up to 30 s).
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(2);

/// A reader that ran this long before failing starts its backoff afresh.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// The longest pause between two restarts of a reader.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// Runs `run` as a task, and again (after a growing pause) whenever it panics or
/// returns before shutdown; `health` says meanwhile that the reader is down.
pub(super) fn supervise<R, F>(health: Arc<ReaderHealth>, shutdown: CancellationToken, mut run: R)
where
    R: FnMut() -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = Backoff::new(FIRST_RESTART_DELAY, MAX_RESTART_DELAY);
        loop {
            health.running.store(true, Ordering::Relaxed);
            let started = Instant::now();
            let ended = tokio::spawn(run()).await;
            if shutdown.is_cancelled() {
                return;
            }
            health.running.store(false, Ordering::Relaxed);
            health.idle();
            let why = match ended {
                Ok(()) => "its task returned".to_owned(),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
                Err(e) => format!("its task failed: {e}"),
            };
            if started.elapsed() > STABLE_RUN {
                backoff = Backoff::new(FIRST_RESTART_DELAY, MAX_RESTART_DELAY);
            }
            tracing::error!(
                reader = health.name,
                "reader stopped ({why}); restarting it in {:?}",
                backoff.upcoming()
            );
            *health.last_failure.locked() = Some(why);
            if !backoff.wait(&shutdown).await {
                return;
            }
            tracing::info!(reader = health.name, "restarting the reader");
        }
    });
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}
