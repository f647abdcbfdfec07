//! Facts: what happened to reports, published on the event topic (by the writer,
//! the sweeper and the create route, through [`announce`]) and pushed by every
//! instance to the owner's open /v4 streams (`fact_reader`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sse::EventName;

use super::Board;
use super::report::{Report, Status};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fact {
    pub fact_id: Uuid,
    pub user_id: Uuid,
    #[serde(flatten)]
    pub event: FactEvent,
}

/// The SSE event a fact becomes: `event` is the SSE event name, `data` its JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum FactEvent {
    ReportStatusUpdate {
        id: Uuid,
        status: Status,
    },
    NewReport(Report),
    ReportStatusRejected {
        id: Uuid,
        status: Status,
        reason: String,
    },
}

impl FactEvent {
    pub fn name(&self) -> EventName {
        match self {
            FactEvent::ReportStatusUpdate { .. } => EventName::ReportStatusUpdate,
            FactEvent::NewReport(_) => EventName::NewReport,
            FactEvent::ReportStatusRejected { .. } => EventName::ReportStatusRejected,
        }
    }

    /// The event's `data:` JSON (the enum's content, without its tag).
    pub fn data(&self) -> String {
        match self {
            FactEvent::ReportStatusUpdate { id, status } => {
                serde_json::json!({ "id": id, "status": status }).to_string()
            }
            FactEvent::NewReport(report) => report.to_json(),
            FactEvent::ReportStatusRejected { id, status, reason } => {
                serde_json::json!({ "id": id, "status": status, "reason": reason }).to_string()
            }
        }
    }
}

/// Publishes a fact on the event topic, keyed by its user (their facts stay in
/// order). Its cause is already stored, so it is retried until the bus takes it;
/// it fails only when the server shuts down first.
pub async fn announce(board: &Board, fact: &Fact) -> Result<(), crate::bus::BusError> {
    // Plain fields and string keys: serializing cannot fail, and an empty record
    // must never be published in its place.
    let payload = serde_json::to_vec(fact).expect("a Fact always serializes");
    board
        .bus
        .publish_until_done(
            &board.event_topic,
            Some(&fact.user_id.to_string()),
            &payload,
            &board.shutdown,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_round_trips_and_names_its_event() {
        let fact = Fact {
            fact_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            event: FactEvent::ReportStatusUpdate {
                id: Uuid::nil(),
                status: Status::Queued,
            },
        };
        let json = serde_json::to_string(&fact).unwrap();
        assert_eq!(serde_json::from_str::<Fact>(&json).unwrap(), fact);
        assert_eq!(fact.event.name(), EventName::ReportStatusUpdate);
        assert_eq!(
            fact.event.data(),
            r#"{"id":"00000000-0000-0000-0000-000000000000","status":"queued"}"#
        );
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod properties;
