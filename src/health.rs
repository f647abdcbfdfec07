//! Liveness, readiness and metrics, for load balancers and Prometheus, and the API's
//! contract (`/openapi.json`, the OpenAPI 3.1 document `docs/openapi.json`).
//!
//! `/readyz` asks the backing services at most once a second, however many load
//! balancers, probes and dashboards call it: callers within that second share one
//! answer, so polling readiness can never load Kafka or DynamoDB.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::bus::Bus;
use crate::drain::Stop;
use crate::metrics::Metrics;
use crate::v4::store::ReportStore;

/// How long one readiness answer is reused.
const READINESS_TTL: Duration = Duration::from_secs(1);

/// The OpenAPI 3.1 document of every route, served verbatim at `/openapi.json`.
/// `tests/openapi.rs` and `scripts/contract_test.sh` keep it true.
const OPENAPI: &str = include_str!("../docs/openapi.json");

/// The backing services `/readyz` asks.
#[derive(Clone)]
pub struct Probes {
    pub bus: Bus,
    pub store: Arc<dyn ReportStore>,
    /// Draining or stopping: not ready, whatever the services say.
    pub stop: Stop,
}

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Probes: FromRef<S>,
    Arc<Metrics>: FromRef<S>,
{
    let readiness = Arc::new(Readiness::new(READINESS_TTL));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move |State(probes): State<Probes>| async move {
                // Not from the cache: a drain is told at once.
                if probes.stop.leaving() {
                    return leaving().into_response();
                }
                readiness.answer(|| ready(&probes)).await.into_response()
            }),
        )
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A readiness answer: its status and JSON body.
type Answer = (StatusCode, axum::Json<Value>);

/// The last readiness answer and when it was found.
struct Readiness {
    /// How long an answer is reused.
    ttl: Duration,
    last: Mutex<Option<(Instant, Answer)>>,
}

impl Readiness {
    fn new(ttl: Duration) -> Readiness {
        Readiness {
            ttl,
            last: Mutex::new(None),
        }
    }

    /// The answer of the last second, or a fresh one from `check`. Callers that
    /// arrive while a check runs wait for it rather than starting their own.
    async fn answer<F, Fut>(&self, check: F) -> Answer
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return answer.clone();
        }
        let answer = check().await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

/// 503 while the server drains or stops (src/drain.rs).
fn leaving() -> Answer {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({
            "error": "this instance is shutting down (draining): send new requests to another",
            "service": "server",
        })),
    )
}

/// 200 when every configured backing service answers; otherwise 503 naming the
/// first one that does not. Either way the body lists the Kafka partitions that
/// take no writes (`unwritable`), when some do not: a partition down is 200, since
/// every instance shares it and the other partitions' users are served; only a
/// bus that takes no writes at all is 503 (`bus::kafka::writable`).
async fn ready(probes: &Probes) -> Answer {
    let store = probes.store.ping().await;
    let bus = probes.bus.ready();
    let failure = match (bus.not_ready, store) {
        (Some(why), _) => Some(("kafka", why)),
        (_, Err(why)) => Some(("dynamodb", why.to_string())),
        _ => None,
    };
    let (status, mut body) = match failure {
        None => (StatusCode::OK, json!({ "status": "ready" })),
        Some((service, why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "error": format!("{service} is not ready: {why}"),
                "service": service,
            }),
        ),
    };
    if !bus.unwritable.is_empty() {
        body["unwritable"] = json!(bus.unwritable);
    }
    (status, axum::Json(body))
}

async fn metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(checks: &AtomicUsize) -> impl Fn() -> std::future::Ready<Answer> + '_ {
        move || {
            checks.fetch_add(1, Ordering::SeqCst);
            std::future::ready((StatusCode::OK, axum::Json(json!({ "status": "ready" }))))
        }
    }

    #[test]
    fn openapi_document_is_json_and_describes_itself() {
        let document: Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        assert!(document["paths"]["/openapi.json"]["get"].is_object());
        assert!(document["components"]["schemas"]["Error"].is_object());
    }

    #[tokio::test]
    async fn callers_within_the_ttl_share_one_check() {
        let readiness = Readiness::new(Duration::from_secs(3600));
        let checks = AtomicUsize::new(0);
        let check = counting(&checks);
        let answers =
            futures_util::future::join_all((0..50).map(|_| readiness.answer(&check))).await;
        assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK));
        let _ = readiness.answer(&check).await;
        assert_eq!(checks.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_older_than_the_ttl_is_checked_again() {
        let readiness = Readiness::new(Duration::ZERO);
        let checks = AtomicUsize::new(0);
        let check = counting(&checks);
        let _ = readiness.answer(&check).await;
        let _ = readiness.answer(&check).await;
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }
}
