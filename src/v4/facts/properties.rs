//! What must hold for the reading of a /v4 fact ([`Fact`], as `fact_reader` reads
//! it off the event topic) on any payload.
//!
//! Every instance turns the facts it reads into events on its users' streams: what
//! is accepted as a fact must be written back as the same fact, and the event it
//! becomes must be a valid frame whose data is JSON, or the dashboard would
//! misread a report's state. The `record` fuzz target runs [`fact`]; the tests
//! below try it on generated facts, whole and cut short.

use super::Fact;

/// A /v4 fact the reader accepts (it reads them with `serde_json::from_slice`)
/// round trips, and the event it becomes is a valid frame whose data is JSON.
pub(crate) fn fact(payload: &[u8]) {
    let Ok(fact) = serde_json::from_slice::<Fact>(payload) else {
        return;
    };
    let json = serde_json::to_vec(&fact).expect("a fact serializes");
    let again: Fact = serde_json::from_slice(&json).expect("a fact reads back");
    assert_eq!(again, fact);
    let data = fact.event.data();
    assert!(
        serde_json::from_str::<serde_json::Value>(&data).is_ok(),
        "{data}"
    );
    crate::sse::event_properties::framed("12.0.7", fact.event.name(), &data);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategies::{config, statuses, text, times, uuids};
    use crate::v4::facts::FactEvent;
    use crate::v4::report::Report;

    fn facts() -> impl Strategy<Value = Fact> {
        let event = prop_oneof![
            (uuids(), statuses())
                .prop_map(|(id, status)| FactEvent::ReportStatusUpdate { id, status }),
            (uuids(), statuses(), text()).prop_map(|(id, status, reason)| {
                FactEvent::ReportStatusRejected { id, status, reason }
            }),
            (uuids(), uuids(), statuses(), times(), times()).prop_map(
                |(user_id, report_id, report_status, created_at, updated_at)| {
                    FactEvent::NewReport(Report {
                        user_id,
                        report_id,
                        report_status,
                        created_at,
                        updated_at,
                        version: 0,
                        applied_commands: Vec::new(),
                    })
                }
            ),
        ];
        (uuids(), uuids(), event).prop_map(|(fact_id, user_id, event)| Fact {
            fact_id,
            user_id,
            event,
        })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn facts_round_trip(fact in facts(), cut in any::<prop::sample::Index>()) {
            let json = serde_json::to_vec(&fact).unwrap();
            super::fact(&json);
            // Whole and cut short, a fact must pass every record parser.
            crate::fuzzing::record(&json);
            crate::fuzzing::record(&json[..cut.index(json.len())]);
        }
    }
}
