//! How a report is stored as an item: `report_id`, `user_id` (S), `status`,
//! `created_at`, `updated_at` (RFC 3339), `version` (N, bumped by every change),
//! and `applied_commands` (L of S), the ids of the last 16 commands applied, oldest
//! first, which makes a re-delivered command harmless however late it comes
//! (`last_command` (S), written by earlier versions, is read as a one-id list).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::v4::report::{Report, Status};
use crate::v4::store::StoreError;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn to_item(report: &Report) -> Item {
    let mut item = HashMap::from([
        ("report_id".into(), s(report.report_id.to_string())),
        ("user_id".into(), s(report.user_id.to_string())),
        ("status".into(), s(report.report_status.to_string())),
        ("created_at".into(), s(report.created_at.to_rfc3339())),
        ("updated_at".into(), s(report.updated_at.to_rfc3339())),
        (
            "version".into(),
            AttributeValue::N(report.version.to_string()),
        ),
    ]);
    if !report.applied_commands.is_empty() {
        item.insert(
            "applied_commands".into(),
            applied_list(&report.applied_commands),
        );
    }
    item
}

pub(super) fn applied_list(ids: &[Uuid]) -> AttributeValue {
    AttributeValue::L(ids.iter().map(|id| s(id.to_string())).collect())
}

pub(super) fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

/// Reads an item back; an item this server cannot read is a permanent error
/// naming what is wrong with it, never a guess.
pub(super) fn from_item(item: &Item) -> Result<Report, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::unreadable(format!("item without a string `{name}`")))
    };
    let uuid = |name: &str| {
        text(name)?
            .parse::<Uuid>()
            .map_err(|_| StoreError::unreadable(format!("`{name}` is not a UUID")))
    };
    let time = |name: &str| {
        DateTime::parse_from_rfc3339(text(name)?)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| StoreError::unreadable(format!("`{name}` is not RFC 3339")))
    };
    let version = match item.get("version") {
        None => 0,
        Some(v) => v
            .as_n()
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::unreadable("`version` is not a whole number"))?,
    };
    let mut applied_commands = Vec::new();
    if let Some(legacy) = item.get("last_command") {
        applied_commands.push(
            legacy
                .as_s()
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::unreadable("`last_command` is not a UUID"))?,
        );
    }
    if let Some(list) = item.get("applied_commands") {
        let list = list
            .as_l()
            .map_err(|_| StoreError::unreadable("`applied_commands` is not a list"))?;
        applied_commands = list
            .iter()
            .map(|v| v.as_s().ok().and_then(|v| v.parse().ok()))
            .collect::<Option<Vec<Uuid>>>()
            .ok_or_else(|| StoreError::unreadable("`applied_commands` holds a non-UUID"))?;
    }
    Ok(Report {
        user_id: uuid("user_id")?,
        report_id: uuid("report_id")?,
        report_status: text("status")?
            .parse::<Status>()
            .map_err(|_| StoreError::unreadable("unknown `status`"))?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        version,
        applied_commands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4::store::Permanent;

    #[test]
    fn an_item_round_trips_and_a_damaged_one_is_unreadable() {
        let mut report = Report::new(Uuid::new_v4());
        report.applied_commands = vec![Uuid::new_v4(), Uuid::new_v4()];
        let item = to_item(&report);
        assert_eq!(from_item(&item).expect("readable"), report);
        for (name, value) in [
            ("status", s("half-done".into())),
            ("version", s("one".into())),
            ("applied_commands", s("not a list".into())),
        ] {
            let mut damaged = item.clone();
            damaged.insert(name.into(), value);
            assert!(
                matches!(
                    from_item(&damaged),
                    Err(StoreError::Permanent {
                        kind: Permanent::UnreadableItem,
                        ..
                    })
                ),
                "{name}"
            );
        }
    }
}
