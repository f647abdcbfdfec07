//! The /v4 HTTP API: create and list reports, request status changes, and stream
//! the user's board (a `snapshot`, then live facts).
//!
//! A PUT is validated against the stored report before anything is written, so an
//! invalid change is refused up front with the reason; a valid one becomes a
//! command on the command topic and is answered `202` once the broker has it.
//!
//! Sizes are bounded: a user has at most `--max-reports-per-user` reports (a create
//! past it is refused), `GET /v4/reports` lists at most that many, and the
//! stream's `snapshot` fits the connection's byte budget (`--queue-bytes`), see
//! [`snapshot`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, Query, State};
use axum::http::StatusCode;
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::Board;
use super::facts::{self, Fact, FactEvent};
use super::report::{Report, Status};
use super::store::{Created, StatusChange, StoreError};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{RequestKey, remember};
use crate::server::ConnectionHandle;
use crate::sse::{EventName, LastEventId, Lifetime, Streams, frame, sse_response};
use crate::user::UserIdQuery;

/// What the routes need beyond the [`Board`]: how many reports a user may keep
/// (`--max-reports-per-user`), and the bytes a stream's prelude may take
/// (`--queue-bytes`), which bounds the snapshot.
#[derive(Clone, Copy)]
pub struct Quotas {
    pub max_reports: usize,
    pub prelude_bytes: usize,
}

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Board>: FromRef<S>,
    Quotas: FromRef<S>,
    Streams: FromRef<S>,
{
    Router::new()
        .route("/v4/new/report", post(create).layer(from_fn(remember)))
        .route("/v4/reports", get(list))
        .route("/v4/report", put(change).layer(from_fn(remember)))
        .route("/v4/sse", get(stream))
}

fn store_down(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) => {
            ApiError::unavailable(format!("{e}. Check that DynamoDB is running and retry"))
        }
        StoreError::Permanent { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e}. Retrying will not help: check the table and the server's access"),
        ),
    }
}

async fn create(
    State(board): State<Arc<Board>>,
    State(quotas): State<Quotas>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
    key: Option<Extension<RequestKey>>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let mut report = Report::new(user_id);
    // With an Idempotency-Key the report's id comes from it: a repeat sent to
    // another instance finds the report the first one stored.
    if let Some(Extension(key)) = key {
        report.report_id = key.id;
        if let Some(stored) = board.store.get(key.id).await.map_err(store_down)?
            && stored.user_id == user_id
        {
            return Ok((StatusCode::CREATED, Json(stored)).into_response());
        }
    }
    let limit = quotas.max_reports;
    if let Created::LimitReached { count } = board
        .store
        .create(&report, limit)
        .await
        .map_err(store_down)?
    {
        // 409, not 422: the request itself is valid (the same one for another user
        // succeeds); it conflicts with the current state of this user's reports, as
        // a refused status change does (also 409 here), and succeeds once the limit
        // is raised.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "User {user_id} has {count} reports, and this server keeps at most {limit} per user (--max-reports-per-user). No report was created. Reports are not deleted, so use an existing one (GET /v4/reports lists them; a failed or canceled report can go back to pending), or ask the operator to raise the limit"
            ),
        )
        .with_extra(json!({ "limit": limit, "count": count })));
    }
    // Announced after the reply: the report is stored, other tabs learn of it live.
    let announcer = board.clone();
    let fact = Fact {
        fact_id: report.report_id,
        user_id,
        event: FactEvent::NewReport(report.clone()),
    };
    tokio::spawn(async move {
        if let Err(e) = facts::announce(&announcer, &fact).await {
            tracing::warn!("new report stored but not announced before shutdown: {e}");
        }
    });
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

async fn list(
    State(board): State<Arc<Board>>,
    State(quotas): State<Quotas>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let reports = board
        .store
        .list(user_id, quotas.max_reports)
        .await
        .map_err(store_down)?;
    Ok(Json(reports).into_response())
}

#[derive(Debug, Deserialize)]
struct ChangeBody {
    id: String,
    status: String,
}

async fn change(
    State(board): State<Arc<Board>>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
    key: Option<Extension<RequestKey>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let body: ChangeBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "The body must be JSON like {{\"id\": \"<report UUID>\", \"status\": \"queued\"}} ({e})"
        ))
    })?;
    let report_id: Uuid = body.id.trim().parse().map_err(|_| {
        ApiError::bad_request(format!("`id` must be a report UUID, not `{}`", body.id))
    })?;
    let to: Status = body.status.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Unknown status `{}`. Use one of: pending, queued, processing, canceled, failed, completed",
            body.status
        ))
    })?;
    let report = board
        .store
        .get(report_id)
        .await
        .map_err(store_down)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("No report {report_id}. Create one with POST /v4/new/report"),
            )
        })?;
    if report.user_id != user_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Report {report_id} belongs to another user. Use that user's user_id"),
        ));
    }
    let from = report.report_status;
    if !from.can_move_to(to) {
        let allowed: Vec<&str> = from.next().iter().map(|s| s.as_str()).collect();
        let message = if allowed.is_empty() {
            format!("A {from} report is final and cannot become {to}")
        } else {
            format!(
                "A {from} report cannot become {to}. From {from} it can become: {}",
                allowed.join(", ")
            )
        };
        return Err(ApiError::new(StatusCode::CONFLICT, message)
            .with_extra(json!({ "current": from, "allowed": allowed })));
    }
    let command = StatusChange {
        // With an Idempotency-Key the command's id comes from it: a repeat is the
        // same command, applied once (the report keeps its applied command ids).
        command_id: key.map_or_else(Uuid::new_v4, |k| k.0.id),
        user_id,
        report_id,
        from,
        to,
        expected_version: report.version,
        requested_at: Utc::now(),
    };
    // Plain fields and string keys: serializing cannot fail, and an empty command
    // must never be published in its place.
    let payload = serde_json::to_vec(&command).expect("a StatusChange always serializes");
    board
        .bus
        .publish(&board.command_topic, Some(&report_id.to_string()), &payload)
        .await
        .map_err(|e| ApiError::not_acknowledged(&e, "change", "applied"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": report_id,
            "from": from,
            "status": to,
            "commandId": command.command_id,
        })),
    )
        .into_response())
}

async fn stream(
    State(board): State<Arc<Board>>,
    State(quotas): State<Quotas>,
    State(streams): State<Streams>,
    ConnectInfo(connection): ConnectInfo<ConnectionHandle>,
    caller: Caller,
    last: LastEventId,
    Query(query): Query<UserIdQuery>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let permit = streams.limits.admit(&user_id.to_string())?;
    board.hub.caught_up().await;
    let mut subscription =
        board
            .hub
            .subscribe(&user_id.to_string(), last.as_deref(), Some(connection));
    let resumes_exactly = last.0.is_some() && subscription.reset.is_none();
    // Exact resume: only the missed events. Otherwise (after a `reset` when the id
    // could not be resumed) the board: a snapshot whose id is the hub's position at
    // registration, read after it, so an event that lands in between is in both
    // (applying a status twice is harmless) and none is missed.
    let mut prelude = subscription.take_prelude(last.as_deref());
    if !resumes_exactly {
        let reports = board
            .store
            .list(user_id, quotas.max_reports)
            .await
            .map_err(store_down)?;
        let used: usize = prelude.iter().map(Bytes::len).sum();
        let budget = quotas.prelude_bytes.saturating_sub(used);
        prelude.extend(snapshot(&subscription.position, &reports, budget));
    }
    Ok(sse_response(
        &streams.settings,
        prelude,
        subscription,
        Lifetime {
            permit,
            expiry: caller.expiry(),
            shutdown: None,
        },
    ))
}

/// The `snapshot` event of `reports` (a list, oldest first), and when they do not
/// all fit in `budget` bytes, a `snapshot_truncated` event after it: together
/// within `budget`, the connection's byte budget (`--queue-bytes`, less what the
/// stream starts with), so a board of any size never makes one connection hold
/// more than its live events may.
///
/// The snapshot stays a JSON array, in list order, for the clients that read it;
/// when it cannot hold everything it holds the newest reports by `createdAt` that
/// fit (creation order, unlike `updatedAt`, does not change, so what is left out is
/// always the oldest: the first `total - sent` of `GET /v4/reports`), and
/// `snapshot_truncated` says `{"total": N, "sent": M}` so a client can fetch the
/// rest with `GET /v4/reports`. Clients that do not know the event ignore it.
/// Both carry the snapshot's id. With a budget too small for even one report the
/// snapshot is `[]`, still followed by the notice.
fn snapshot(id: &str, reports: &[Report], budget: usize) -> Vec<Bytes> {
    let items: Vec<String> = reports.iter().map(Report::to_json).collect();
    let frame_of =
        |sent: &[String]| frame(id, EventName::Snapshot, &format!("[{}]", sent.join(",")));
    // The frame of `[]`, then each report and the comma before all but the first.
    let empty = frame_of(&[]).len();
    let whole =
        empty + items.iter().map(String::len).sum::<usize>() + items.len().saturating_sub(1);
    if items.is_empty() || whole <= budget {
        return vec![frame_of(&items)];
    }
    let notice = |sent: usize| {
        let data = json!({ "total": items.len(), "sent": sent }).to_string();
        frame(id, EventName::SnapshotTruncated, &data)
    };
    // `sent` has at most as many digits as `total`: this bounds every notice.
    let room = budget.saturating_sub(notice(items.len()).len());
    let mut first = items.len();
    let mut used = empty;
    while first > 0 {
        let comma = usize::from(first < items.len());
        let next = used + items[first - 1].len() + comma;
        if next > room {
            break;
        }
        first -= 1;
        used = next;
    }
    let sent = &items[first..];
    vec![frame_of(sent), notice(sent.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(n: usize) -> Vec<Report> {
        let user = Uuid::new_v4();
        let mut reports: Vec<Report> = (0..n).map(|_| Report::new(user)).collect();
        for (i, r) in reports.iter_mut().enumerate() {
            r.created_at += chrono::Duration::seconds(i as i64);
        }
        reports
    }

    fn text(frames: &[Bytes]) -> Vec<String> {
        frames
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).expect("utf-8"))
            .collect()
    }

    fn data(frame: &str) -> serde_json::Value {
        let line = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data");
        serde_json::from_str(line).expect("JSON")
    }

    #[test]
    fn a_snapshot_that_fits_is_whole_and_alone() {
        let all = reports(5);
        let whole = frame(
            "7",
            EventName::Snapshot,
            &serde_json::to_string(&all).expect("json"),
        );
        assert_eq!(snapshot("7", &all, whole.len()), vec![whole.clone()]);
        assert_eq!(snapshot("7", &all, usize::MAX), vec![whole]);
        assert_eq!(
            text(&snapshot("7", &[], 0)),
            ["id: 7\nevent: snapshot\ndata: []\n\n"]
        );
    }

    #[test]
    fn a_snapshot_too_big_keeps_the_newest_and_says_so_within_the_budget() {
        let all = reports(20);
        let whole = frame(
            "7",
            EventName::Snapshot,
            &serde_json::to_string(&all).expect("json"),
        );
        for budget in [0, 50, 200, 400, 1_000, 2_000, whole.len() - 1] {
            let frames = text(&snapshot("7", &all, budget));
            assert_eq!(frames.len(), 2, "{budget}");
            assert!(frames[0].starts_with("id: 7\nevent: snapshot\n"));
            assert!(frames[1].starts_with("id: 7\nevent: snapshot_truncated\n"));
            let sent: Vec<Report> = serde_json::from_value(data(&frames[0])).expect("reports");
            let sent_json = serde_json::to_value(&sent).expect("json");
            let newest = serde_json::to_value(&all[all.len() - sent.len()..]).expect("json");
            assert_eq!(sent_json, newest, "{budget}: the newest, oldest first");
            assert_eq!(
                data(&frames[1]),
                json!({ "total": 20, "sent": sent.len() }),
                "{budget}"
            );
            let size: usize = frames.iter().map(String::len).sum();
            if budget >= 200 {
                assert!(size <= budget, "{budget}: {size}");
                // Not one more would have fit (give or take the notice's digit).
                let one_more =
                    serde_json::to_string(&all[all.len() - sent.len() - 1]).expect("json");
                assert!(size + one_more.len() + 2 > budget, "{budget}: {size}");
            }
        }
    }
}
