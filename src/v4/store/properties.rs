//! What must hold for the reading of a /v4 command ([`StatusChange`], as the
//! writer parses it off the command topic) on any payload.
//!
//! A command's wire form is [`StatusChange`]'s serde shape: every instance's
//! writer and sweeper read what the routes wrote, so whatever is accepted as a
//! command must be written back as the same command, or a re-delivery or another
//! instance would settle something else. The `record` fuzz target runs
//! [`command`]; the tests below try it on generated commands, whole and broken.

use super::StatusChange;
use crate::v4::writer;

/// A /v4 command the writer accepts is written back to the same command.
pub(crate) fn command(payload: &[u8]) {
    if let Ok(change) = writer::parse(payload) {
        let json = serde_json::to_vec(&change).expect("a command serializes");
        let again: Result<StatusChange, String> = writer::parse(&json);
        assert_eq!(again, Ok(change), "{}", String::from_utf8_lossy(&json));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategies::{config, mutated, statuses, times, uuids};

    fn commands() -> impl Strategy<Value = StatusChange> {
        (
            uuids(),
            uuids(),
            uuids(),
            statuses(),
            statuses(),
            any::<u64>(),
            times(),
        )
            .prop_map(
                |(command_id, user_id, report_id, from, to, expected_version, requested_at)| {
                    StatusChange {
                        command_id,
                        user_id,
                        report_id,
                        from,
                        to,
                        expected_version,
                        requested_at,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn commands_round_trip(command in commands(), edit in mutated(Just(Vec::new()))) {
            let json = serde_json::to_vec(&command).unwrap();
            prop_assert_eq!(writer::parse(&json), Ok(command));
            super::command(&json);
            // The same record slightly broken must still pass every record parser.
            let mut broken = json.clone();
            for (i, b) in edit.into_iter().enumerate() {
                let at = (usize::from(b) * 7 + i) % broken.len();
                broken[at] = b;
            }
            crate::fuzzing::record(&broken);
        }
    }
}
