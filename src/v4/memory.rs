//! The in-memory report store of the embedded default: a map guarded per report,
//! with the same compare-and-set semantics as the DynamoDB conditional write.

use async_trait::async_trait;
use dashmap::DashMap;
use uuid::Uuid;

use super::report::Report;
use super::store::{ChangeOutcome, ReportStore, StatusChange, StoreError, remember_command};

#[derive(Default)]
pub struct MemoryStore {
    reports: DashMap<Uuid, Report>,
}

#[async_trait]
impl ReportStore for MemoryStore {
    async fn create(&self, report: &Report) -> Result<(), StoreError> {
        self.reports.insert(report.report_id, report.clone());
        Ok(())
    }

    async fn get(&self, report_id: Uuid) -> Result<Option<Report>, StoreError> {
        Ok(self.reports.get(&report_id).map(|r| r.clone()))
    }

    async fn list(&self, user_id: Uuid) -> Result<Vec<Report>, StoreError> {
        let mut reports: Vec<Report> = self
            .reports
            .iter()
            .filter(|r| r.user_id == user_id)
            .map(|r| r.clone())
            .collect();
        reports.sort_by_key(|r| (r.created_at, r.report_id));
        Ok(reports)
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
