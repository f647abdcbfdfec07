//! Reading many items at once, consistently: `BatchGetItem` in chunks of its key
//! limit, asking again (with backoff) for the keys DynamoDB left unprocessed.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::DynamoStore;
use super::item::{Item, s};
use crate::backoff::Backoff;
use crate::v4::store::StoreError;

/// Keys per `BatchGetItem` call (DynamoDB's limit).
const BATCH_GET_KEYS: usize = 100;
/// Rounds of `UnprocessedKeys` (throttling) before a list gives up as unavailable.
const BATCH_GET_ROUNDS: u32 = 8;
/// The first pause before asking again for keys BatchGetItem left unprocessed.
const BATCH_GET_FIRST_RETRY: Duration = Duration::from_millis(100);

impl DynamoStore {
    /// The items of `ids`, read consistently (`BatchGetItem`), in no given order.
    pub(super) async fn batch_get(&self, ids: &[String]) -> Result<Vec<Item>, StoreError> {
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
