//! Leaving the load balancer before leaving: what the server does between SIGTERM
//! and its exit, in one place.
//!
//! A proxy or Kubernetes moves traffic away from an instance only once it knows:
//! a readiness probe that fails, a connection that is refused. An instance that
//! stops accepting at once makes the proxy learn it from refused and broken
//! requests; one that answers 503 makes a proxy that retries on 503 mark every
//! instance down in turn. So on SIGTERM (or SIGINT):
//!
//! 1. **Drain** ([`Stop::drain`]): `/readyz` answers 503 at once, and the server
//!    keeps serving everything for `--drain-grace` (default 10 s: longer than a
//!    Kubernetes endpoint update takes to reach the proxies, and than the 5 s an
//!    nginx upstream keeps an idle connection in `deploy/nginx/`). Every HTTP/1.1
//!    answer says `Connection: close` ([`close_connections`]), so the proxy's
//!    kept-alive connections to this instance are gone by the end of the grace and
//!    none is closed under a request it is sending.
//! 2. **Stop** ([`Stop::now`], also a second signal): the listener closes, so a
//!    new connection is refused and a proxy sends it elsewhere (even a POST: nothing
//!    was sent); requests in flight are answered; every stream ends with a
//!    `retry:` drawn between [`RETRY_AFTER_STOP`]'s bounds, so clients come back
//!    spread out rather than all at once, to the other instances.
//! 3. **Exit** within [`EXIT_WITHIN`] of the stop, whatever is still open.
//!
//! Each step is logged once.

use std::ops::Range;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

/// The `retry:` a stream ends with when the server stops, in milliseconds: short,
/// so clients are back within seconds, and drawn at random so thousands of them
/// do not reconnect in the same instant.
pub const RETRY_AFTER_STOP: Range<u64> = 500..3_000;
/// How long open connections get after the stop before the process exits anyway.
pub const EXIT_WITHIN: Duration = Duration::from_secs(4);

/// How the server is told to stop.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    /// Drain first, then stop (SIGTERM).
    pub drain: CancellationToken,
    /// Stop now: the end of the drain, a second signal, or a test.
    pub now: CancellationToken,
}

impl Stop {
    /// Whether the server is draining or stopping: readiness then says 503.
    pub fn leaving(&self) -> bool {
        self.drain.is_cancelled() || self.now.is_cancelled()
    }

    /// Waits for a drain to be asked, holds it for `grace` (or until a stop comes
    /// first), then stops.
    pub async fn drain_then_stop(self, grace: Duration) {
        tokio::select! {
            _ = self.drain.cancelled() => {}
            _ = self.now.cancelled() => return,
        }
        tracing::info!(
            "draining: /readyz answers 503, every request is still served (with Connection: close) for {grace:?}"
        );
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = self.now.cancelled() => {}
        }
        tracing::info!(
            "stopping: no new connections; answering the requests in flight; ending every stream with a retry of {}-{} ms",
            RETRY_AFTER_STOP.start,
            RETRY_AFTER_STOP.end
        );
        self.now.cancel();
    }
}

/// The `retry:` for one stream ending at the stop.
pub fn retry_after_stop() -> Duration {
    Duration::from_millis(fastrand::u64(RETRY_AFTER_STOP))
}

/// While the server drains, every HTTP/1.1 answer closes its connection, so a
/// proxy stops reusing connections to this instance (HTTP/2 has no such header:
/// its connection ends with the stop).
pub async fn close_connections(State(stop): State<Stop>, request: Request, next: Next) -> Response {
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && stop.leaving() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_drain_holds_for_the_grace_then_stops() {
        let stop = Stop::default();
        let task = tokio::spawn(stop.clone().drain_then_stop(Duration::from_secs(10)));
        tokio::task::yield_now().await;
        assert!(!stop.leaving());
        stop.drain.cancel();
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert!(stop.leaving(), "readiness says 503 from the first instant");
        assert!(!stop.now.is_cancelled(), "still serving within the grace");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(stop.now.is_cancelled(), "stopped once the grace is over");
        task.await.expect("the drain ends");
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_cuts_the_grace_short() {
        let stop = Stop::default();
        let task = tokio::spawn(stop.clone().drain_then_stop(Duration::from_secs(3_600)));
        stop.drain.cancel();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.now.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("ends at once")
            .expect("no panic");
    }

    #[test]
    fn the_retry_after_the_stop_is_spread_within_its_bounds() {
        let draws: Vec<u64> = (0..1_000)
            .map(|_| u64::try_from(retry_after_stop().as_millis()).unwrap())
            .collect();
        assert!(draws.iter().all(|ms| RETRY_AFTER_STOP.contains(ms)));
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 500, "spread, not one value");
    }
}
