//! The shared Server-Sent Events layer used by /v2, /v3 and /v4.
//!
//! A message is framed once into an [`Event`] (cheap to clone: the wire bytes are
//! shared), kept in a bounded history for `Last-Event-ID` resume, and handed by the
//! [`UserHub`] to every open connection of its user through a bounded queue. A
//! connection that cannot keep up is closed instead of slowing anyone down; the
//! browser reconnects and resumes from its last id. `hub` states the
//! invariants behind exact resume and the order its locks are taken in; `ids.rs`
//! what an id means; `positions.rs` where a hub stands. The bytes of a stream
//! reach its socket through `crate::server`. `open.rs` is how every stream route
//! opens one; `stream.rs` how a stream ends.

mod event;
mod history;
mod hub;
mod ids;
mod open;
mod positions;
mod queue;
mod stream;

pub use event::{Event, EventName, Position, frame, unnumbered};
pub use hub::{Audience, Change, HubLimits, Posted, ResetReason, Subscription, UserHub};
pub use ids::IdScheme;
pub use open::{Admitted, Subscribed};
pub use stream::{LastEventId, StreamSettings, Streams};

/// For `crate::fuzzing` and /v4's facts (whose events must be valid frames),
/// which cannot reach `event` and `ids` themselves.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use {event::properties as event_properties, ids::properties as ids_properties};
