//! The board a /v4 stream opens with when it does not resume exactly: the
//! `snapshot` event, cut to the connection's byte budget, and the
//! `snapshot_truncated` notice when it is.

use bytes::Bytes;
use serde_json::json;

use super::report::Report;
use crate::sse::{EventName, frame};

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
pub fn snapshot(id: &str, reports: &[Report], budget: usize) -> Vec<Bytes> {
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
    use uuid::Uuid;

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
