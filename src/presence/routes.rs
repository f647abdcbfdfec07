//! `GET /v2/presence?username=`, `/v3/presence?username=` and
//! `/v4/presence?user_id=`: a user's open streams on that step, under the same
//! authorization as the stream (a caller may ask about whom it may stream).

use std::sync::Arc;

use axum::extract::{FromRef, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::{Count, Presence};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::user::{UserIdQuery, UserQuery};

/// The presence of each step with users.
#[derive(Clone)]
pub struct Presences {
    pub v2: Arc<Presence>,
    pub v3: Arc<Presence>,
    pub v4: Arc<Presence>,
}

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Presences: FromRef<S>,
{
    Router::new()
        .route("/v2/presence", get(v2))
        .route("/v3/presence", get(v3))
        .route("/v4/presence", get(v4))
}

async fn v2(
    State(presences): State<Presences>,
    caller: Caller,
    Query(query): Query<UserQuery>,
) -> Result<Json<Count>, ApiError> {
    Ok(Json(presences.v2.count(&query.username(&caller)?)))
}

async fn v3(
    State(presences): State<Presences>,
    caller: Caller,
    Query(query): Query<UserQuery>,
) -> Result<Json<Count>, ApiError> {
    Ok(Json(presences.v3.count(&query.username(&caller)?)))
}

async fn v4(
    State(presences): State<Presences>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
) -> Result<Json<Count>, ApiError> {
    let user = query.user_id(&caller)?.to_string();
    Ok(Json(presences.v4.count(&user)))
}
