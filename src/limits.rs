//! Limits no client can push past: well-formed usernames, and a cap on open
//! streams in all and per user.
//!
//! Each open stream holds a socket (one open file) and a queue, so the server
//! admits at most `--max-streams` of them (by default what the open-files limit
//! leaves after 256 for everything else) and `--max-streams-per-user` for one user
//! (so one user's runaway tabs or scripts cannot take every slot). A stream over a
//! limit is refused with 429 and `Retry-After` before anything is allocated for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use dashmap::DashMap;
use serde_json::json;

use crate::error::ApiError;

/// Longest username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 128;
/// Open files kept for everything but streams (listener, Kafka, DynamoDB, logs).
const RESERVED_FILES: u64 = 256;
/// What a refused stream is told to wait before it retries, in seconds.
const RETRY_AFTER_SECS: u64 = 5;

/// A username as given, trimmed of spaces, if it is 1–128 bytes of printable text.
/// Control characters (CR and LF included) are refused anywhere in it: they would
/// end up in logs and event ids.
pub fn username(raw: &str) -> Result<&str, ApiError> {
    if raw.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "The username contains control characters (such as line breaks). Use printable text",
        ));
    }
    let name = raw.trim();
    if name.is_empty() || name.len() > MAX_USERNAME_BYTES {
        return Err(ApiError::bad_request(format!(
            "A username is 1 to {MAX_USERNAME_BYTES} bytes of text; this one is {} bytes",
            name.len()
        )));
    }
    Ok(name)
}

/// Open files kept for the backing services, the listener and logs, out of
/// reach of client connections.
const FILES_FOR_SERVICES: u64 = 128;

/// The default `--max-connections`: the open-files soft limit (read after the
/// server raised it) minus what the backing services need, and at least half of it.
pub fn default_max_connections() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let connections = soft.saturating_sub(FILES_FOR_SERVICES).max(soft / 2).max(1);
    usize::try_from(connections).unwrap_or(usize::MAX)
}

/// The default `--max-streams`: the open-files soft limit (read after the server
/// raised it) minus what the rest of the process needs.
pub fn default_max_streams() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX)
}

/// Counts open streams in all and per user.
pub struct StreamLimits {
    max_total: usize,
    max_per_user: usize,
    total: AtomicUsize,
    per_user: DashMap<String, usize>,
}

/// One admitted stream: counted until dropped.
pub struct StreamPermit {
    limits: Arc<StreamLimits>,
    user: String,
}

impl StreamLimits {
    pub fn new(max_total: usize, max_per_user: usize) -> Arc<StreamLimits> {
        Arc::new(StreamLimits {
            max_total,
            max_per_user,
            total: AtomicUsize::new(0),
            per_user: DashMap::new(),
        })
    }

    /// Admits one more stream of `user`, or refuses it with 429 naming the limit.
    pub fn admit(self: &Arc<Self>, user: &str) -> Result<StreamPermit, ApiError> {
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_total).then_some(n + 1)
            })
            .map_err(|_| {
                too_many(
                    "max-streams",
                    format!(
                        "The server has {} streams open, its limit (--max-streams). Retry in a few seconds",
                        self.max_total
                    ),
                )
            })?;
        let mut count = self.per_user.entry(user.to_owned()).or_insert(0);
        if *count >= self.max_per_user {
            drop(count);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(too_many(
                "max-streams-per-user",
                format!(
                    "This user has {} streams open, the limit per user (--max-streams-per-user). Close a tab or another client, then retry",
                    self.max_per_user
                ),
            ));
        }
        *count += 1;
        Ok(StreamPermit {
            limits: self.clone(),
            user: user.to_owned(),
        })
    }
}

fn too_many(limit: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
        .with_extra(json!({ "limit": limit }))
        .with_header(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS))
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.limits.per_user.remove_if_mut(&self.user, |_, count| {
            *count -= 1;
            *count == 0
        });
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_printable_and_at_most_128_bytes() {
        assert_eq!(username(" alice ").ok(), Some("alice"));
        assert!(username(&"é".repeat(64)).is_ok(), "128 bytes");
        assert!(
            username(&format!("{}a", "é".repeat(64))).is_err(),
            "129 bytes"
        );
        for bad in ["", "   ", "a\r\nb", "a\nb", "bob\n", "a\u{7}b", "a\u{85}b"] {
            assert_eq!(
                username(bad).map_err(|e| e.status),
                Err(StatusCode::BAD_REQUEST),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn streams_are_counted_in_all_and_per_user_until_dropped() {
        let limits = StreamLimits::new(3, 2);
        let a1 = limits.admit("a").expect("first");
        let a2 = limits.admit("a").expect("second");
        let refused = limits.admit("a").err().expect("third of a user");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.extra,
            Some(json!({ "limit": "max-streams-per-user" }))
        );
        let b1 = limits.admit("b").expect("another user");
        let refused = limits.admit("c").err().expect("over the total");
        assert_eq!(refused.extra, Some(json!({ "limit": "max-streams" })));
        drop(a1);
        let a3 = limits.admit("a").expect("a slot came free");
        drop((a2, a3, b1));
        assert_eq!(limits.total.load(Ordering::Acquire), 0);
        assert!(limits.per_user.is_empty());
    }
}
