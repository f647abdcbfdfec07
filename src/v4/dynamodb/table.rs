//! The report table. Partition key `report_id` (S), global secondary index
//! `UserIdIndex` on `user_id` (S) with projection ALL (what an item holds: `item`).

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};

pub const USER_INDEX: &str = "UserIdIndex";

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
