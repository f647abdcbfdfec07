//! The in-memory report store of the embedded default: a map guarded per report,
//! with the same compare-and-set semantics as the DynamoDB conditional write, and
//! each user's report ids, under whose entry lock a create counts and inserts, so
//! the per-user limit is exact however many creates race.

use async_trait::async_trait;
use dashmap::DashMap;
use uuid::Uuid;

use super::report::Report;
use super::store::{
    ChangeOutcome, Created, ReportStore, StatusChange, StoreError, newest, remember_command,
};

#[derive(Default)]
pub struct MemoryStore {
    reports: DashMap<Uuid, Report>,
    /// Each user's report ids (a report never changes user). Lock order: an entry
    /// here, then `reports`, never the other way round.
    by_user: DashMap<Uuid, Vec<Uuid>>,
}

#[async_trait]
impl ReportStore for MemoryStore {
    async fn create(&self, report: &Report, limit: usize) -> Result<Created, StoreError> {
        let mut ids = self.by_user.entry(report.user_id).or_default();
        if ids.len() >= limit {
            return Ok(Created::LimitReached { count: ids.len() });
        }
        ids.push(report.report_id);
        self.reports.insert(report.report_id, report.clone());
        Ok(Created::Stored)
    }

    async fn get(&self, report_id: Uuid) -> Result<Option<Report>, StoreError> {
        Ok(self.reports.get(&report_id).map(|r| r.clone()))
    }

    async fn list(&self, user_id: Uuid, limit: usize) -> Result<Vec<Report>, StoreError> {
        let ids = self
            .by_user
            .get(&user_id)
            .map(|ids| ids.clone())
            .unwrap_or_default();
        let reports = ids
            .iter()
            .filter_map(|id| self.reports.get(id).map(|r| r.clone()))
            .collect();
        Ok(newest(reports, limit))
    }

    async fn change_status(&self, change: &StatusChange) -> Result<ChangeOutcome, StoreError> {
        let Some(mut report) = self.reports.get_mut(&change.report_id) else {
            return Ok(ChangeOutcome::Missing);
        };
        if report.applied_commands.contains(&change.command_id) {
            return Ok(ChangeOutcome::AlreadyApplied(report.clone()));
        }
        if report.report_status != change.from || report.version != change.expected_version {
            return Ok(ChangeOutcome::Conflict(report.clone()));
        }
        report.report_status = change.to;
        report.updated_at = chrono::Utc::now();
        report.version += 1;
        report.applied_commands = remember_command(&report.applied_commands, change.command_id);
        Ok(ChangeOutcome::Applied(report.clone()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limit_is_exact_under_concurrent_creates() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let user = Uuid::new_v4();
        let creates = (0..50).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create(&Report::new(user), 7).await })
        });
        let mut stored = 0;
        for create in futures_util::future::join_all(creates).await {
            match create.expect("task").expect("create") {
                Created::Stored => stored += 1,
                Created::LimitReached { count } => assert_eq!(count, 7),
            }
        }
        assert_eq!(stored, 7);
        assert_eq!(store.list(user, 100).await.expect("list").len(), 7);
        assert_eq!(store.list(user, 3).await.expect("list").len(), 3);
        assert!(
            store
                .list(Uuid::new_v4(), 3)
                .await
                .expect("list")
                .is_empty()
        );
    }
}
