//! What must hold for [`IdScheme::parse`] and [`IdScheme::format`] on any input.
//!
//! `Last-Event-ID` is whatever a client sends, and the cursor it parses to decides
//! what a reconnecting stream replays: `parse` must accept only ids that stand for
//! a cursor this hub can hold (checked against an independent reading), and every
//! id the server writes must read back as the cursor it was made from. The
//! `event_id` fuzz target runs [`event_id`]; the tests below try both halves on
//! near-valid ids and cursors.

use super::IdScheme;

/// A fixed epoch for in-process ids (a real one is random base36).
pub(crate) const EPOCH: &str = "k3x9z";

/// Event ids. The first byte picks the scheme (bit 4: in-process, else Kafka), the
/// partition count (low 4 bits, plus one) and the mode (bit 5): the rest is a
/// cursor (8 bytes a partition) formatted and parsed back, or a raw
/// `Last-Event-ID` to parse.
pub fn event_id(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let partitions = usize::from(mode & 0x0f) + 1;
    let scheme = if mode & 0x10 != 0 {
        IdScheme::Local {
            epoch: EPOCH.to_owned(),
        }
    } else {
        IdScheme::Kafka
    };
    if mode & 0x20 != 0 {
        let cursor: Vec<i64> = rest
            .chunks(8)
            .take(partitions)
            .map(|chunk| {
                let mut bytes = [0; 8];
                bytes[..chunk.len()].copy_from_slice(chunk);
                i64::from_le_bytes(bytes) & i64::MAX
            })
            .collect();
        id_round_trip(&scheme, &cursor);
    } else {
        id_parse(&scheme, &String::from_utf8_lossy(rest), partitions);
    }
}

/// `parse` accepts exactly the ids that stand for a cursor of `partitions`
/// non-negative offsets, and `format` of what it returns reads back the same.
fn id_parse(scheme: &IdScheme, raw: &str, partitions: usize) {
    let parsed = scheme.parse(raw, partitions);
    let trimmed = raw.trim();
    let fits = !trimmed.is_empty() && trimmed.len() <= 256;
    // What the id stands for, read independently (in i128, so out-of-range offsets
    // are seen as such rather than failing to parse).
    let expected: Option<Vec<i64>> = match scheme {
        IdScheme::Kafka => trimmed
            .split('.')
            .map(|part| {
                part.parse::<i128>()
                    .ok()
                    .filter(|o| (0..=i128::from(i64::MAX)).contains(o))
                    .map(|o| o as i64)
            })
            .collect::<Option<Vec<i64>>>()
            .filter(|c| c.len() == partitions),
        IdScheme::Local { epoch } => trimmed
            .split_once('-')
            .filter(|(theirs, _)| theirs == epoch)
            .and_then(|(_, seq)| seq.parse::<i128>().ok())
            // The cursor is the next sequence number: it must fit too.
            .filter(|seq| (0..i128::from(i64::MAX)).contains(seq))
            .map(|seq| vec![seq as i64 + 1]),
    }
    .filter(|_| fits);
    assert_eq!(parsed, expected, "{raw:?} ({partitions} partitions)");
    if let Some(cursor) = parsed {
        assert!(cursor.iter().all(|o| *o >= 0));
        let id = scheme.format(&cursor);
        assert_eq!(scheme.parse(&id, partitions), Some(cursor), "{id:?}");
    }
}

/// A cursor the server can hold formats to an id that parses back to it: for
/// Kafka every partition's next offset (at least one partition), in process the
/// next sequence number (at least 1: the hub's first position).
fn id_round_trip(scheme: &IdScheme, cursor: &[i64]) {
    if cursor.is_empty() || cursor.iter().any(|o| *o < 0) {
        return;
    }
    let cursor = match scheme {
        IdScheme::Kafka => cursor.to_vec(),
        IdScheme::Local { .. } => vec![cursor[0].max(1)],
    };
    let id = scheme.format(&cursor);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
        "{id:?}"
    );
    // An id over 256 bytes (more than 13 partitions of 19-digit offsets) is not
    // read back: no topic here comes near.
    if id.len() <= 256 {
        assert_eq!(scheme.parse(&id, cursor.len()), Some(cursor), "{id:?}");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategies::config;

    fn schemes() -> impl Strategy<Value = IdScheme> {
        prop_oneof![
            Just(IdScheme::Kafka),
            Just(IdScheme::Local {
                epoch: EPOCH.to_owned()
            }),
        ]
    }

    fn raw_ids() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,20}(\\.[0-9]{1,20}){0,4}",
            "[+-]?[0-9]{0,3}(\\.[+-]?[0-9]{0,3}){0,3}",
            " ?k3x9z-[+-]?[0-9]{1,20} ?",
            "k3x9z-9223372036854775[0-9]{3}",
            "[0-9a-z.+ -]{0,24}",
            "\\PC{0,12}",
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn ids_parse_only_what_they_stand_for(
            scheme in schemes(),
            raw in raw_ids(),
            partitions in 1usize..6,
        ) {
            id_parse(&scheme, &raw, partitions);
        }

        #[test]
        fn ids_round_trip(
            scheme in schemes(),
            cursor in prop::collection::vec(0..=i64::MAX, 1..14),
        ) {
            id_round_trip(&scheme, &cursor);
        }
    }
}
