//! `Idempotency-Key`: a client that did not get an answer (a timeout, a proxy's
//! 502, a `503` saying `"written": "maybe"`) sends the same request again with the
//! same key, and it takes effect once (the IETF httpapi working group's
//! `Idempotency-Key` header draft; Centrifugo's publish API has the same idea).
//!
//! On the routes that take it (posting, broadcasting, creating and changing
//! reports: each marks itself with [`remember`]):
//!
//! - **On this instance**, a repeat within `--idempotency-window` (10 min) gets the
//!   first answer again, with `Idempotent-Replayed: true`, and nothing runs twice;
//!   a repeat while the first is still running gets `409`; the same key with a
//!   different body `422`. Answers `5xx` are not kept: the retry runs again.
//! - **Across instances** (a retry that a proxy sends elsewhere) the request runs
//!   again, and [`RequestKey::id`], the same for the same key, method, path and
//!   query everywhere, makes it harmless: /v3 gives it to the record's
//!   `message-id`, so every reader drops the second copy (`bus::repeats`); /v4
//!   makes it the new report's id (stored once) or the command's id (applied
//!   once).
//!
//! Memory is bounded: kept answers older than the window, or beyond
//! `--idempotency-bytes` (oldest first), are forgotten; a key is at most
//! [`MAX_KEY_LEN`] bytes and an answer kept at most [`MAX_ANSWER_BYTES`].

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::error::ApiError;
use crate::lock::Locked;

/// The request header.
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer given again.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest key accepted (a UUID is 36).
pub const MAX_KEY_LEN: usize = 255;
/// The largest answer kept; a larger one is not replayed (these routes answer a
/// few hundred bytes).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// The largest request body read to tell a repeat from a different request (the
/// server refuses larger bodies anyway).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Bookkeeping counted for each kept answer besides its body.
const ENTRY_OVERHEAD: usize = 128;

/// A request's key, as the handlers see it: the same for the same key, method,
/// path and query on every instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKey {
    pub id: Uuid,
}

/// The answers kept on this instance.
pub struct Idempotency {
    window: Duration,
    budget: usize,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    entries: HashMap<Uuid, Entry>,
    /// Keys in the order first seen, to forget the oldest first.
    order: VecDeque<(Instant, Uuid)>,
    bytes: usize,
}

enum Entry {
    Running { body: u64 },
    Answered { body: u64, answer: Answer },
}

#[derive(Clone)]
struct Answer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

impl Idempotency {
    pub fn new(window: Duration, budget: usize) -> Idempotency {
        Idempotency {
            window,
            budget,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Bytes the kept answers take now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.kept.locked().bytes
    }

    /// What to answer a request for `id` whose body hashes to `body` without
    /// running it, if anything (`None`: run it).
    fn begin(&self, id: Uuid, body: u64) -> Option<Response> {
        let mut kept = self.kept.locked();
        kept.forget_older_than(self.window);
        match kept.entries.get(&id) {
            None => {
                kept.entries.insert(id, Entry::Running { body });
                kept.order.push_back((Instant::now(), id));
                kept.bytes += ENTRY_OVERHEAD;
                None
            }
            Some(Entry::Running { body: first } | Entry::Answered { body: first, .. })
                if *first != body =>
            {
                Some(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "This Idempotency-Key was used for a request with another body. Use a new key for a new request",
                )
                .into_response())
            }
            Some(Entry::Running { .. }) => Some(ApiError::new(
                StatusCode::CONFLICT,
                "A request with this Idempotency-Key is still being answered. Retry in a moment",
            )
            .into_response()),
            Some(Entry::Answered { answer, .. }) => Some(answer.replay()),
        }
    }

    /// Keeps `answer` for `id` (or forgets `id`, so a retry runs again).
    fn finish(&self, id: Uuid, body: u64, answer: Option<Answer>) {
        let mut kept = self.kept.locked();
        match answer {
            Some(answer) if kept.entries.contains_key(&id) => {
                kept.bytes += answer.body.len();
                kept.entries.insert(id, Entry::Answered { body, answer });
            }
            _ => {
                if kept.entries.remove(&id).is_some() {
                    kept.bytes = kept.bytes.saturating_sub(ENTRY_OVERHEAD);
                }
            }
        }
        while kept.bytes > self.budget && kept.forget_oldest() {}
    }
}

impl Kept {
    fn forget_older_than(&mut self, window: Duration) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| at.elapsed() > window)
        {
            self.forget_oldest();
        }
    }

    /// Forgets the oldest key; false when none is left.
    fn forget_oldest(&mut self) -> bool {
        let Some((_, id)) = self.order.pop_front() else {
            return false;
        };
        match self.entries.remove(&id) {
            Some(Entry::Answered { answer, .. }) => {
                self.bytes = self
                    .bytes
                    .saturating_sub(ENTRY_OVERHEAD + answer.body.len());
            }
            Some(Entry::Running { .. }) => {
                self.bytes = self.bytes.saturating_sub(ENTRY_OVERHEAD);
            }
            // Forgotten already (a 5xx): its place in the order was stale.
            None => {}
        }
        true
    }
}

impl Answer {
    fn replay(&self) -> Response {
        let mut response = (self.status, self.body.clone()).into_response();
        if let Some(content_type) = &self.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
        }
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
        response
    }
}

/// The middleware of the routes that take an `Idempotency-Key` (see the module's
/// doc). A request without the header passes untouched.
pub async fn remember(
    Extension(idempotency): Extension<Arc<Idempotency>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = request.headers().get(&HEADER) else {
        return next.run(request).await;
    };
    let key = match valid_key(key) {
        Ok(key) => key.to_owned(),
        Err(refusal) => return refusal.into_response(),
    };
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than 64 KiB. Send a smaller body.",
        )
        .into_response();
    };
    let id = request_id(parts.method.as_str(), &parts.uri.to_string(), &key);
    let fingerprint = hash(&body);
    if let Some(answer) = idempotency.begin(id, fingerprint) {
        return answer;
    }
    parts.extensions.insert(RequestKey { id });
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await.ok();
    let keep = body.as_ref().filter(|_| !parts.status.is_server_error());
    idempotency.finish(
        id,
        fingerprint,
        keep.map(|body| Answer {
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body: body.clone(),
        }),
    );
    Response::from_parts(parts, Body::from(body.unwrap_or_default()))
}

/// A key of 1 to [`MAX_KEY_LEN`] visible ASCII characters (the draft's key is a
/// string; quotes around it, as a structured-field string, are kept as given).
fn valid_key(value: &HeaderValue) -> Result<&str, ApiError> {
    value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters, such as a UUID"
            ))
        })
}

/// The same for the same key, method, path and query, on every instance.
fn request_id(method: &str, uri: &str, key: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("sse-server idempotency {method} {uri} {key}").as_bytes(),
    )
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    /// A route that counts its runs and answers with the count, behind the
    /// middleware.
    fn app(idempotency: Arc<Idempotency>, runs: Arc<AtomicUsize>) -> Router {
        Router::new()
            .route(
                "/things",
                post(move |key: Option<Extension<RequestKey>>| async move {
                    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                    let key = key.map(|k| k.0.id.to_string()).unwrap_or_default();
                    (StatusCode::ACCEPTED, format!("run {n} {key}"))
                })
                .layer(axum::middleware::from_fn(remember)),
            )
            .layer(Extension(idempotency))
    }

    async fn send(app: &Router, key: Option<&str>, body: &str) -> (StatusCode, String, bool) {
        let mut request = Request::post("/things?user=a");
        if let Some(key) = key {
            request = request.header(HEADER, key);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let replayed = response.headers().contains_key(REPLAYED);
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), replayed)
    }

    fn fresh() -> (Router, Arc<AtomicUsize>, Arc<Idempotency>) {
        let idempotency = Arc::new(Idempotency::new(Duration::from_secs(600), 1 << 20));
        let runs = Arc::new(AtomicUsize::new(0));
        (app(idempotency.clone(), runs.clone()), runs, idempotency)
    }

    #[tokio::test]
    async fn a_repeat_gets_the_first_answer_and_runs_nothing() {
        let (app, runs, _) = fresh();
        let first = send(&app, Some("k1"), "hello").await;
        let again = send(&app, Some("k1"), "hello").await;
        assert_eq!(first.0, StatusCode::ACCEPTED);
        assert!(first.1.starts_with("run 1 "), "{first:?}");
        assert_eq!((again.0, &again.1), (first.0, &first.1));
        assert!(again.2, "marked as replayed");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Another key, or none, runs.
        assert!(
            send(&app, Some("k2"), "hello")
                .await
                .1
                .starts_with("run 2 ")
        );
        assert!(send(&app, None, "hello").await.1.starts_with("run 3 "));
    }

    #[tokio::test]
    async fn the_key_handlers_see_is_the_same_for_the_same_request_only() {
        let (app, _, _) = fresh();
        let id =
            |answer: (StatusCode, String, bool)| answer.1.split(' ').nth(2).unwrap().to_owned();
        let first = id(send(&app, Some("same"), "x").await);
        let (other_app, _, _) = fresh();
        assert_eq!(
            id(send(&other_app, Some("same"), "x").await),
            first,
            "on any instance"
        );
        assert_ne!(id(send(&app, Some("other"), "x").await), first);
    }

    #[tokio::test]
    async fn the_same_key_with_another_body_is_refused() {
        let (app, runs, _) = fresh();
        send(&app, Some("k"), "one").await;
        let other = send(&app, Some("k"), "two").await;
        assert_eq!(other.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_bad_key_is_refused_with_the_reason() {
        let (app, runs, _) = fresh();
        let long = "k".repeat(MAX_KEY_LEN + 1);
        for key in ["", "has space", long.as_str()] {
            let answer = send(&app, Some(key), "x").await;
            assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{key:?}");
            assert!(answer.1.contains("Idempotency-Key"), "{answer:?}");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_repeat_while_the_first_runs_is_told_to_wait_and_a_5xx_is_not_kept() {
        let idempotency = Idempotency::new(Duration::from_secs(600), 1 << 20);
        let id = Uuid::new_v4();
        assert!(idempotency.begin(id, 1).is_none());
        let busy = idempotency.begin(id, 1).expect("running");
        assert_eq!(busy.status(), StatusCode::CONFLICT);
        idempotency.finish(id, 1, None);
        assert!(
            idempotency.begin(id, 1).is_none(),
            "a retry after a 5xx runs"
        );
    }

    #[test]
    fn memory_stays_within_the_budget_and_the_window() {
        let budget = 10 * (ENTRY_OVERHEAD + 100);
        let idempotency = Idempotency::new(Duration::from_secs(600), budget);
        for _ in 0..1_000 {
            let id = Uuid::new_v4();
            assert!(idempotency.begin(id, 1).is_none());
            let answer = Answer {
                status: StatusCode::ACCEPTED,
                content_type: None,
                body: Bytes::from(vec![b'x'; 100]),
            };
            idempotency.finish(id, 1, Some(answer));
            assert!(idempotency.bytes() <= budget, "{}", idempotency.bytes());
        }
        let expired = Idempotency::new(Duration::ZERO, budget);
        let id = Uuid::new_v4();
        assert!(expired.begin(id, 1).is_none());
        expired.finish(id, 1, None);
        std::thread::sleep(Duration::from_millis(2));
        assert!(expired.begin(Uuid::new_v4(), 1).is_none());
        assert_eq!(
            expired.kept.locked().entries.len(),
            1,
            "the old one is forgotten"
        );
    }
}
