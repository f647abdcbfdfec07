//! A report and its status state machine: six statuses, eight transitions, and
//! nothing else. The dashboard mirrors this table in `frontend/src/transitions.ts`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Queued,
    Processing,
    Canceled,
    Failed,
    Completed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Queued,
        Status::Processing,
        Status::Canceled,
        Status::Failed,
        Status::Completed,
    ];

    /// The statuses a report in this status may move to.
    pub fn next(self) -> &'static [Status] {
        use Status::*;
        match self {
            Pending => &[Queued, Canceled],
            Queued => &[Processing, Canceled],
            Processing => &[Completed, Failed],
            Failed => &[Pending],
            Canceled => &[Pending],
            Completed => &[],
        }
    }

    pub fn can_move_to(self, to: Status) -> bool {
        self.next().contains(&to)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Canceled => "canceled",
            Status::Failed => "failed",
            Status::Completed => "completed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ();

    fn from_str(s: &str) -> Result<Status, ()> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

/// A report as the API shows it (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub user_id: Uuid,
    pub report_id: Uuid,
    pub report_status: Status,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every applied change; used for ordering, not shown by the API.
    #[serde(skip)]
    pub version: u64,
    /// The ids of the last commands applied (oldest first, at most
    /// `store::REMEMBERED_COMMANDS`), so a re-delivered command is recognised as
    /// applied on any instance, however long after.
    #[serde(skip)]
    pub applied_commands: Vec<Uuid>,
}

impl Report {
    /// The report as the API shows it. Serializing it cannot fail (plain fields,
    /// string keys), so there is no error to hand on; the `expect` says so rather
    /// than silently sending an empty report.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Report always serializes")
    }

    /// Whether `command` is the last change applied to this report: re-announcing
    /// its outcome then shows the status the report still has.
    pub fn last_applied_is(&self, command: Uuid) -> bool {
        self.applied_commands.last() == Some(&command)
    }

    pub fn new(user_id: Uuid) -> Report {
        let now = Utc::now();
        Report {
            user_id,
            report_id: Uuid::new_v4(),
            report_status: Status::Pending,
            created_at: now,
            updated_at: now,
            version: 1,
            applied_commands: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_eight_transitions_of_the_spec() {
        use Status::*;
        let allowed = [
            (Pending, Queued),
            (Pending, Canceled),
            (Queued, Processing),
            (Queued, Canceled),
            (Processing, Completed),
            (Processing, Failed),
            (Failed, Pending),
            (Canceled, Pending),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        assert!("done".parse::<Status>().is_err());
    }
}
