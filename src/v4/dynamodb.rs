//! The DynamoDB report store (`aws-sdk-dynamodb`).
//!
//! Table (SPEC): partition key `report_id` (S), global secondary index
//! `UserIdIndex` on `user_id` (S) with projection ALL; attributes `status`,
//! `created_at`, `updated_at` (RFC 3339), `version` (N), and `last_command`, the id
//! of the last applied command, which makes a re-delivered command harmless.
//! A status change is one conditional `UpdateItem`: it only happens when the
//! status is still the one the transition starts from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ReturnValue, ScalarAttributeType,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::report::{Report, Status};
use super::store::{ChangeOutcome, ReportStore, StatusChange, StoreError};
use crate::metrics::Metrics;

pub const USER_INDEX: &str = "UserIdIndex";

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    table: String,
    metrics: Arc<Metrics>,
}

/// An SDK client for `endpoint`. Against a local endpoint with no credentials or
/// region configured, dummy credentials and `us-east-1` are used (DynamoDB Local
/// accepts any). Calls time out quickly so that an outage becomes a 503, not a hang.
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

/// Creates the table and its index; `recreate` deletes an existing one first.
/// Returns `false` when the table already existed (and was kept).
pub async fn create_table(client: &Client, table: &str, recreate: bool) -> anyhow::Result<bool> {
    let exists = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok();
    if exists && !recreate {
        return Ok(false);
    }
    if exists {
        client.delete_table().table_name(table).send().await?;
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
    Ok(true)
}

impl DynamoStore {
    pub fn new(client: Client, table: String, metrics: Arc<Metrics>) -> DynamoStore {
        DynamoStore {
            client,
            table,
            metrics,
        }
    }

    fn fail<E: std::error::Error + 'static>(&self, what: &str, e: E) -> StoreError {
        self.metrics.dynamodb_errors.inc();
        tracing::warn!("DynamoDB {what} failed: {}", DisplayErrorContext(&e));
        StoreError::Unavailable(format!(
            "DynamoDB {what} failed: {}",
            DisplayErrorContext(e)
        ))
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
    if let Some(command) = report.last_command {
        item.insert("last_command".into(), s(command.to_string()));
    }
    item
}

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

/// Reads an item back; an item this server did not write is reported, not trusted.
fn from_item(item: &Item) -> Result<Report, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Unavailable(format!("item without `{name}`")))
    };
    let uuid = |name: &str| {
        text(name)?
            .parse::<Uuid>()
            .map_err(|_| StoreError::Unavailable(format!("`{name}` is not a UUID")))
    };
    let time = |name: &str| {
        DateTime::parse_from_rfc3339(text(name)?)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| StoreError::Unavailable(format!("`{name}` is not RFC 3339")))
    };
    Ok(Report {
        user_id: uuid("user_id")?,
        report_id: uuid("report_id")?,
        report_status: text("status")?
            .parse::<Status>()
            .map_err(|_| StoreError::Unavailable("unknown `status` in the table".into()))?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        version: item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        last_command: item
            .get("last_command")
            .and_then(|v| v.as_s().ok())
            .and_then(|v| v.parse().ok()),
    })
}

#[async_trait]
impl ReportStore for DynamoStore {
    async fn create(&self, report: &Report) -> Result<(), StoreError> {
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

    async fn get(&self, report_id: Uuid) -> Result<Option<Report>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("report_id", s(report_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.fail("GetItem", e))?;
        out.item().map(from_item).transpose()
    }

    async fn list(&self, user_id: Uuid) -> Result<Vec<Report>, StoreError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(USER_INDEX)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", s(user_id.to_string()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| self.fail("Query", e))?;
        let mut reports = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        reports.sort_by_key(|r| (r.created_at, r.report_id));
        Ok(reports)
    }

    async fn change_status(&self, change: &StatusChange) -> Result<ChangeOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("report_id", s(change.report_id.to_string()))
            .condition_expression(
                "attribute_exists(report_id) AND #status = :from AND version = :expected",
            )
            .update_expression(
                "SET #status = :to, updated_at = :now, version = :next, last_command = :command",
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
            .expression_attribute_values(":command", s(change.command_id.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes() {
                Some(item) => Ok(ChangeOutcome::Applied(from_item(item)?)),
                None => Err(StoreError::Unavailable(
                    "UpdateItem returned no item".into(),
                )),
            },
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                // Why did it fail? Read the item as it is now.
                Ok(match self.get(change.report_id).await? {
                    None => ChangeOutcome::Missing,
                    Some(r) if r.last_command == Some(change.command_id) => {
                        ChangeOutcome::AlreadyApplied(r)
                    }
                    Some(r) => ChangeOutcome::Conflict(r),
                })
            }
            Err(e) => Err(self.fail("UpdateItem", e)),
        }
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
