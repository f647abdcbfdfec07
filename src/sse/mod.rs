//! The shared Server-Sent Events layer used by /v2, /v3 and /v4.
//!
//! A message is framed once into an [`Event`] (cheap to clone: the wire bytes are
//! shared), kept in a bounded per-user [`History`] for `Last-Event-ID` resume, and
//! handed by the [`UserHub`] to every open connection of its user through a bounded
//! queue. A connection that cannot keep up is closed instead of slowing anyone down;
//! the browser reconnects and resumes from its last id.

mod event;
mod history;
mod hub;
mod queue;
mod stream;

pub use event::{Event, EventId, IdGenerator};
pub use history::History;
pub use hub::{Subscription, UserHub};
pub use stream::{LastEventId, StreamSettings, sse_response};
