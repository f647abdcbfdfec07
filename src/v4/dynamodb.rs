//! The DynamoDB report store (`aws-sdk-dynamodb`).
//!
//! Table: partition key `report_id` (S), global secondary index
//! `UserIdIndex` on `user_id` (S) with projection ALL; attributes `status`,
//! `created_at`, `updated_at` (RFC 3339), `version` (N, bumped by every change),
//! and `applied_commands` (L of S), the ids of the last 16 commands applied, oldest
//! first, which makes a re-delivered command harmless however late it comes
//! (`last_command` (S), written by earlier versions, is read as a one-id list).
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
//! Errors are classified ([`StoreError`]): `ResourceNotFoundException`, access
//! denied, validation errors and items this server cannot read are permanent;
//! anything else (unreachable, timeouts, throttling) is transient.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, ReturnValue, ScalarAttributeType,
    Select, TableStatus,
};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use uuid::Uuid;

use super::report::{Report, Status};
use super::store::{
    ChangeOutcome, Created, Permanent, ReportStore, StatusChange, StoreError, newest,
    remember_command,
};
use crate::backoff::Backoff;
use crate::metrics::Metrics;

pub const USER_INDEX: &str = "UserIdIndex";
/// Keys per `BatchGetItem` call (DynamoDB's limit).
const BATCH_GET_KEYS: usize = 100;
/// Rounds of `UnprocessedKeys` (throttling) before a list gives up as unavailable.
const BATCH_GET_ROUNDS: u32 = 8;
/// The first pause before asking again for keys BatchGetItem left unprocessed.
const BATCH_GET_FIRST_RETRY: Duration = Duration::from_millis(100);
/// Times a status change re-reads an item that changed between its read and write.
const CHANGE_ATTEMPTS: usize = 4;

type Item = HashMap<String, AttributeValue>;

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

/// An SDK client for `endpoint`. Against a local endpoint with no credentials or
/// region configured, dummy credentials and `us-east-1` are used (a local server
/// such as dynalite accepts any). Calls time out quickly so that an outage becomes a 503, not a hang.
pub async fn client(endpoint: &str) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(4))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    let local = !endpoint.contains("amazonaws.com");
    let unset = |var: &str| std::env::var_os(var).is_none();
    if local && unset("AWS_REGION") && unset("AWS_DEFAULT_REGION") && unset("AWS_PROFILE") {
        loader = loader.region(Region::new("us-east-1"));
    }
    if local && unset("AWS_ACCESS_KEY_ID") && unset("AWS_PROFILE") {
        loader = loader.credentials_provider(Credentials::new(
            "dummy",
            "dummy",
            None,
            None,
            "sse-server-local",
        ));
    }
    Client::new(&loader.load().await)
}

/// How long [`create_table`] waits for a table to be deleted or to become ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(30);

/// The table's status, `None` when there is no such table.
async fn table_status(client: &Client, table: &str) -> anyhow::Result<Option<TableStatus>> {
    match client.describe_table().table_name(table).send().await {
        Ok(found) => Ok(Some(
            found
                .table()
                .and_then(|t| t.table_status().cloned())
                .unwrap_or(TableStatus::Active),
        )),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("{}", DisplayErrorContext(e))),
    }
}

/// Waits until `done` holds for the table's status (DynamoDB, and dynalite, create
/// and delete tables asynchronously).
async fn wait_for_table(
    client: &Client,
    table: &str,
    what: &str,
    done: impl Fn(Option<&TableStatus>) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + TABLE_WAIT;
    while !done(table_status(client, table).await?.as_ref()) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "table {table} is not {what} after {TABLE_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Creates the table and its index and waits until it is ACTIVE; `recreate`
/// deletes an existing one first. Returns `false` when the table already existed
/// (and was kept).
pub async fn create_table(client: &Client, table: &str, recreate: bool) -> anyhow::Result<bool> {
    let active = |status: Option<&TableStatus>| status == Some(&TableStatus::Active);
    let exists = table_status(client, table).await?.is_some();
    if exists && !recreate {
        wait_for_table(client, table, "ACTIVE", active).await?;
        return Ok(false);
    }
    if exists {
        client
            .delete_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))?;
        wait_for_table(client, table, "deleted", |status| status.is_none()).await?;
    }
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let string_attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr("report_id")?)
        .attribute_definitions(string_attr("user_id")?)
        .key_schema(key("report_id", KeyType::Hash)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(USER_INDEX)
                .key_schema(key("user_id", KeyType::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))?;
    wait_for_table(client, table, "ACTIVE", active).await?;
    Ok(true)
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

    /// How many reports the user has, by the `UserIdIndex` (`Select COUNT`),
    /// counted no further than the page that reaches `enough`.
    async fn count(&self, user_id: Uuid, enough: usize) -> Result<usize, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(USER_INDEX)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", s(user_id.to_string()))
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

    /// Counts, logs and classifies a failed call.
    fn fail<E, R>(&self, what: &str, e: SdkError<E, R>) -> StoreError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug + 'static,
    {
        self.metrics.dynamodb_errors.inc();
        let permanent = match &e {
            SdkError::ServiceError(service) => permanent_kind(service.err().code()),
            _ => None,
        };
        let detail = format!("DynamoDB {what} failed: {}", DisplayErrorContext(&e));
        tracing::warn!("{detail}");
        match permanent {
            Some(kind) => StoreError::Permanent { kind, detail },
            None => StoreError::Unavailable(detail),
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

    /// The items of `ids`, read consistently (`BatchGetItem`), in no given order.
    async fn batch_get(&self, ids: &[String]) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_KEYS) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| HashMap::from([("report_id".to_owned(), s(id.clone()))]))
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("BatchGetItem request: {e}")))?;
            let mut round = 0;
            let mut backoff = Backoff::new(BATCH_GET_FIRST_RETRY, BATCH_GET_FIRST_RETRY * 16);
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.fail("BatchGetItem", e))?;
                if let Some(found) = out.responses().and_then(|r| r.get(&self.table)) {
                    items.extend(found.iter().cloned());
                }
                match out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        round += 1;
                        if round >= BATCH_GET_ROUNDS {
                            return Err(StoreError::Unavailable(
                                "DynamoDB keeps throttling BatchGetItem".into(),
                            ));
                        }
                        tokio::time::sleep(backoff.next_delay()).await;
                        request = rest.clone();
                    }
                    _ => break,
                }
            }
        }
        Ok(items)
    }
}

/// The permanent failures among DynamoDB's error codes; `None`: worth retrying.
fn permanent_kind(code: Option<&str>) -> Option<Permanent> {
    match code? {
        "ResourceNotFoundException" => Some(Permanent::MissingTable),
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "MissingAuthenticationTokenException"
        | "InvalidSignatureException" => Some(Permanent::AccessDenied),
        "ValidationException" => Some(Permanent::InvalidRequest),
        _ => None,
    }
}

fn to_item(report: &Report) -> Item {
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

fn applied_list(ids: &[Uuid]) -> AttributeValue {
    AttributeValue::L(ids.iter().map(|id| s(id.to_string())).collect())
}

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

/// Reads an item back; an item this server cannot read is a permanent error
/// naming what is wrong with it, never a guess.
fn from_item(item: &Item) -> Result<Report, StoreError> {
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
            .client
            .query()
            .table_name(&self.table)
            .index_name(USER_INDEX)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", s(user_id.to_string()))
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
                    self.metrics.dynamodb_errors.inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_that_no_retry_can_fix_are_permanent() {
        assert_eq!(
            permanent_kind(Some("ResourceNotFoundException")),
            Some(Permanent::MissingTable)
        );
        assert_eq!(
            permanent_kind(Some("AccessDeniedException")),
            Some(Permanent::AccessDenied)
        );
        assert_eq!(permanent_kind(Some("ThrottlingException")), None);
        assert_eq!(
            permanent_kind(Some("ProvisionedThroughputExceededException")),
            None
        );
        assert_eq!(permanent_kind(None), None);
    }

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
