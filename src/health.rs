//! Liveness, readiness and metrics, for load balancers and Prometheus.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

/// 200 when every configured backing service answers; otherwise 503 naming the
/// first one that does not.
async fn ready(State(app): State<Arc<AppState>>) -> Response {
    let (kafka, store) = tokio::join!(app.bus.ready(), app.store.ping());
    let failure = match (kafka, store) {
        (Err(why), _) => Some(("kafka", why)),
        (_, Err(why)) => Some(("dynamodb", why.to_string())),
        _ => None,
    };
    match failure {
        None => (StatusCode::OK, axum::Json(json!({ "status": "ready" }))).into_response(),
        Some((service, why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": format!("{service} is not ready: {why}"),
                "service": service,
            })),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}
