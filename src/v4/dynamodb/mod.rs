//! The DynamoDB report store (`aws-sdk-dynamodb`): [`DynamoStore`], the
//! [`ReportStore`] operations on one table (`table` creates it, `item` says how a
//! report is stored in it, `client` connects to it).
//!
//! A status change reads the item (consistent read), then writes it with one
//! `UpdateItem` conditional on the version it read, so it only happens when
//! nothing changed in between. Lists take report ids (and creation times, to keep
//! the newest `limit`) from the `UserIdIndex` GSI (only eventually consistent on
//! real DynamoDB) and then read those items with `BatchGetItem` consistent reads,
//! so a snapshot never shows a status older than one already announced.
//!
//! The per-user limit (`--max-reports-per-user`): a create first counts the user's
//! reports on the `UserIdIndex` (`Query` with `Select COUNT`), then puts the item.
//! This is not atomic. Creates for one user take turns on each instance, so one
//! instance never overshoots; creates for one user on several instances at once
//! may each count before any of them is stored, so the user may end up with up to
//! `limit - 1 + n` reports for `n` instances creating at the same moment (and on AWS
//! the index is eventually consistent, typically well under a second behind, so
//! creates in quicker succession than that may overshoot the same way). Nothing
//! stricter is cheap: a counter item updated in a transaction with the put would
//! be, but dynalite has no transactions. Lists never return more than the limit,
//! so an overshoot never makes a snapshot or `GET /v4/reports` unbounded.
//!
//! Errors are classified ([`StoreError`], see `error`): permanent ones are never
//! retried, anything else is transient.

mod batch;
mod client;
mod error;
mod item;
mod table;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use uuid::Uuid;

use super::report::Report;
use super::store::{
    ChangeOutcome, Created, ReportStore, StatusChange, StoreError, newest, remember_command,
};
use crate::metrics::Metrics;
use item::{Item, applied_list, from_item, s, to_item};

pub use client::client;
pub use table::{USER_INDEX, create_table};

/// Times a status change re-reads an item that changed between its read and write.
const CHANGE_ATTEMPTS: usize = 4;

pub struct DynamoStore {
    client: Client,
    table: String,
    metrics: Arc<Metrics>,
    /// Users with a create under way on this instance: their creates take turns,
    /// so that each counts the reports of the one before (see the module's doc).
    creating: DashMap<Uuid, Arc<tokio::sync::Mutex<()>>>,
}

/// Forgets a user's turn lock when the last create waiting on it is done (or was
/// cancelled), so `creating` holds only users with a create under way.
struct ForgetTurn<'a> {
    creating: &'a DashMap<Uuid, Arc<tokio::sync::Mutex<()>>>,
    user: Uuid,
}

impl Drop for ForgetTurn<'_> {
    fn drop(&mut self) {
        self.creating
            .remove_if(&self.user, |_, lock| Arc::strong_count(lock) == 1);
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: String, metrics: Arc<Metrics>) -> DynamoStore {
        DynamoStore {
            client,
            table,
            metrics,
            creating: DashMap::new(),
        }
    }

    /// A query of `user_id`'s reports by the `UserIdIndex`: what counting and
    /// listing them share.
    fn user_reports(&self, user_id: Uuid) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(USER_INDEX)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", s(user_id.to_string()))
    }

    /// How many reports the user has, by the `UserIdIndex` (`Select COUNT`),
    /// counted no further than the page that reaches `enough`.
    async fn count(&self, user_id: Uuid, enough: usize) -> Result<usize, StoreError> {
        let mut pages = self
            .user_reports(user_id)
            .select(Select::Count)
            .into_paginator()
            .send();
        let mut count = 0;
        while count < enough
            && let Some(page) = pages.next().await
        {
            let page = page.map_err(|e| self.fail("Query", e))?;
            count += usize::try_from(page.count()).unwrap_or(0);
        }
        Ok(count)
    }

    /// Stores a new item (idempotent across the SDK's retries).
    async fn put_new(&self, report: &Report) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(report)))
            .condition_expression("attribute_not_exists(report_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Report ids are fresh UUIDs: the item exists because the SDK retried a
            // PutItem whose first attempt was stored but not answered in time.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                match self.get(report.report_id).await? {
                    Some(stored) if stored.user_id == report.user_id => Ok(()),
                    _ => Err(StoreError::Unavailable(format!(
                        "report id {} is already taken",
                        report.report_id
                    ))),
                }
            }
            Err(e) => Err(self.fail("PutItem", e)),
        }
    }

    /// Reads an item whatever it holds (consistent read).
    async fn get_item(&self, report_id: Uuid) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("report_id", s(report_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.fail("GetItem", e))?;
        Ok(out.item().cloned())
    }
}

#[async_trait]
impl ReportStore for DynamoStore {
    async fn create(&self, report: &Report, limit: usize) -> Result<Created, StoreError> {
        // Declared first, dropped last: after the turn is released.
        let _forget = ForgetTurn {
            creating: &self.creating,
            user: report.user_id,
        };
        let lock = self.creating.entry(report.user_id).or_default().clone();
        let _turn = lock.lock_owned().await;
        let count = self.count(report.user_id, limit).await?;
        if count >= limit {
            return Ok(Created::LimitReached { count });
        }
        self.put_new(report).await?;
        Ok(Created::Stored)
    }

    async fn get(&self, report_id: Uuid) -> Result<Option<Report>, StoreError> {
        self.get_item(report_id)
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn list(&self, user_id: Uuid, limit: usize) -> Result<Vec<Report>, StoreError> {
        // Ids and creation times from the index; only the newest `limit` are read.
        let keys: Vec<Item> = self
            .user_reports(user_id)
            .projection_expression("report_id, created_at")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| self.fail("Query", e))?;
        let mut found: Vec<(DateTime<Utc>, String)> = keys
            .iter()
            .filter_map(|k| {
                let id = k.get("report_id")?.as_s().ok()?.clone();
                // An unreadable time sorts first; reading the item reports it.
                let created_at = k
                    .get("created_at")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));
                Some((created_at, id))
            })
            .collect();
        found.sort();
        let excess = found.len().saturating_sub(limit);
        let ids: Vec<String> = found.drain(excess..).map(|(_, id)| id).collect();
        let mut reports = Vec::with_capacity(ids.len());
        for item in self.batch_get(&ids).await? {
            match from_item(&item) {
                // The index may lag behind a move to another user: trust the item.
                Ok(report) if report.user_id == user_id => reports.push(report),
                Ok(_) => {}
                // One damaged item must not hide the user's whole board.
                Err(e) => {
                    self.metrics.count_dynamodb_error();
                    tracing::warn!(%user_id, "leaving an item out of the list: {e}");
                }
            }
        }
        Ok(newest(reports, limit))
    }

    async fn change_status(&self, change: &StatusChange) -> Result<ChangeOutcome, StoreError> {
        // Read, decide, then write only if the version is still the one read: a
        // write that loses a race is decided again on the item as it is then.
        for _ in 0..CHANGE_ATTEMPTS {
            let Some(item) = self.get_item(change.report_id).await? else {
                return Ok(ChangeOutcome::Missing);
            };
            let report = from_item(&item)?;
            if report.applied_commands.contains(&change.command_id) {
                return Ok(ChangeOutcome::AlreadyApplied(report));
            }
            if report.report_status != change.from || report.version != change.expected_version {
                return Ok(ChangeOutcome::Conflict(report));
            }
            let applied = remember_command(&report.applied_commands, change.command_id);
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("report_id", s(change.report_id.to_string()))
                .condition_expression(
                    "attribute_exists(report_id) AND #status = :from AND version = :expected",
                )
                .update_expression(
                    "SET #status = :to, updated_at = :now, version = :next, applied_commands = :applied REMOVE last_command",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":from", s(change.from.to_string()))
                .expression_attribute_values(":to", s(change.to.to_string()))
                .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N(change.expected_version.to_string()),
                )
                .expression_attribute_values(
                    ":next",
                    AttributeValue::N((change.expected_version + 1).to_string()),
                )
                .expression_attribute_values(":applied", applied_list(&applied))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match result {
                Ok(out) => {
                    return match out.attributes() {
                        Some(item) => Ok(ChangeOutcome::Applied(from_item(item)?)),
                        None => Err(StoreError::Unavailable(
                            "UpdateItem returned no item".into(),
                        )),
                    };
                }
                // Changed since it was read (or an SDK retry of a write that was
                // stored): decide again on what is there now.
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(self.fail("UpdateItem", e)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "report {} kept changing during {CHANGE_ATTEMPTS} attempts",
            change.report_id
        )))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| self.fail("DescribeTable", e))?;
        Ok(())
    }
}
