//! Opening a stream, in one place. Every stream route reads its user, then:
//!
//! 1. [`Streams::admit`]: a permit under the open-stream caps (`429` past them),
//!    taken before anything else is held, so a refused stream costs nothing;
//! 2. [`Admitted::subscribe`], for a step with a hub (/v2, /v3, /v4): once the
//!    hub has read its bus up to now, the connection is registered and its
//!    prelude taken (the events missed since the client's id, or a `reset`);
//! 3. the answer: [`Subscribed::respond`], or [`Admitted::respond_unheld`] for a
//!    stream no hub holds (/v1), which then watches the server's stop itself.
//!
//! A route adds only what is its own: /v4 a snapshot after a prelude that did not
//! resume exactly ([`Subscribed::extend_prelude`]).

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::Instant;

use super::hub::{Subscription, UserHub};
use super::stream::{LastEventId, Lifetime, StreamSettings, Streams, sse_response};
use crate::error::ApiError;
use crate::limits::StreamPermit;
use crate::server::ConnectionHandle;

/// A stream admitted under the caps, not yet answered.
pub struct Admitted {
    permit: StreamPermit,
    expiry: Option<Instant>,
    settings: StreamSettings,
}

/// A stream registered with its hub, with what it starts with.
pub struct Subscribed {
    admitted: Admitted,
    subscription: Subscription,
    prelude: Vec<Bytes>,
    resumes_exactly: bool,
}

impl Streams {
    /// Admits a stream of `user` whose caller's token expires at `expiry`
    /// (`None`: never), or refuses it past `--max-streams` or
    /// `--max-streams-per-user`.
    pub fn admit(&self, user: &str, expiry: Option<Instant>) -> Result<Admitted, ApiError> {
        Ok(Admitted {
            permit: self.limits.admit(user)?,
            expiry,
            settings: self.settings.clone(),
        })
    }
}

impl Admitted {
    /// Registers the stream with `hub` as `user`'s connection `connection`,
    /// resuming after `last` when the client sent an id.
    pub async fn subscribe(
        self,
        hub: &Arc<UserHub>,
        user: &str,
        last: &LastEventId,
        connection: ConnectionHandle,
    ) -> Subscribed {
        hub.caught_up().await;
        let mut subscription = hub.subscribe(user, last.as_deref(), Some(connection));
        let resumes_exactly = last.as_deref().is_some() && subscription.reset.is_none();
        let prelude = subscription.take_prelude(last.as_deref());
        Subscribed {
            admitted: self,
            subscription,
            prelude,
            resumes_exactly,
        }
    }

    /// Answers with `live`, a stream no hub holds, with a keep-alive comment every
    /// `keep_alive`: it ends at the server's stop by itself.
    pub fn respond_unheld<S>(self, keep_alive: Duration, live: S) -> Response
    where
        S: Stream<Item = Bytes> + Send + Unpin + 'static,
    {
        let settings = StreamSettings {
            keep_alive,
            ..self.settings
        };
        let lifetime = Lifetime {
            permit: self.permit,
            expiry: self.expiry,
            shutdown: Some(settings.shutdown.clone()),
        };
        sse_response(&settings, Vec::new(), live, lifetime)
    }
}

impl Subscribed {
    /// Whether the client's id was resumed exactly: the prelude holds just the
    /// events it missed.
    pub fn resumes_exactly(&self) -> bool {
        self.resumes_exactly
    }

    /// The id of the hub's position when the stream was registered.
    pub fn position(&self) -> &str {
        &self.subscription.position
    }

    /// The bytes the prelude takes so far.
    pub fn prelude_bytes(&self) -> usize {
        self.prelude.iter().map(Bytes::len).sum()
    }

    /// Adds `more` after what the stream starts with.
    pub fn extend_prelude(&mut self, more: impl IntoIterator<Item = Bytes>) {
        self.prelude.extend(more);
    }

    /// Answers with the prelude, then the hub's live events; the hub ends the
    /// stream (an overflow, the connection closed, the server's stop).
    pub fn respond(self) -> Response {
        let Admitted {
            permit,
            expiry,
            settings,
        } = self.admitted;
        let lifetime = Lifetime {
            permit,
            expiry,
            shutdown: None,
        };
        sse_response(&settings, self.prelude, self.subscription, lifetime)
    }
}
