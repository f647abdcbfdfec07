//! What the per-user channel routes of /v2 and /v3 share over HTTP: the stream of a
//! user's hub, the rule for a message body, and the `202` reply. The two versions
//! differ only in where messages come from (a POST, or a Kafka topic).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::server::ConnectionHandle;
use crate::sse::{LastEventId, Streams, UserHub};
use crate::user::UserQuery;

/// A message body: non-empty UTF-8 text (size is capped at 64 KiB by the router).
pub fn message_text(body: &Bytes) -> Result<&str, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("The message body is not valid UTF-8 text"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "The message body is empty. Send the message text as the request body",
        ));
    }
    Ok(text)
}

/// `202 Accepted` with the event id and how many open streams it reached.
pub fn accepted_at(id: String, delivered: usize) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "delivered": delivered })),
    )
        .into_response()
}

/// `GET /vN/sse?username=NAME` over the hub `hub_of` picks in the channel `C`:
/// missed events (or a `reset`) first, then live ones. Shared by /v2 and /v3,
/// which differ only in where messages come from.
pub fn stream_route<S, C>(hub_of: fn(&C) -> &Arc<UserHub>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    C: FromRef<S> + Send + 'static,
    Streams: FromRef<S>,
{
    get(
        move |State(channel): State<C>,
              State(streams): State<Streams>,
              ConnectInfo(connection): ConnectInfo<ConnectionHandle>,
              caller: Caller,
              last: LastEventId,
              Query(query): Query<UserQuery>| async move {
            let username = query.username(&caller)?;
            let admitted = streams.admit(&username, caller.expiry())?;
            let subscribed = admitted
                .subscribe(hub_of(&channel), &username, &last, connection)
                .await;
            Ok::<_, ApiError>(subscribed.respond())
        },
    )
}
