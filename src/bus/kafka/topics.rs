//! Topic creation. Topics are created with the partitions
//! [`Config::topics`](crate::config::Config::topics) gives them: the broker is
//! expected to have topic auto-creation off.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use super::{KafkaBus, client_config};
use crate::config::Topic;

impl KafkaBus {
    /// Creates `topic` unless it exists, so a fresh broker works out of the box.
    pub(super) async fn create_topic(&self, topic: &str) -> anyhow::Result<()> {
        let Some(spec) = self.topics.iter().find(|t| t.name == topic) else {
            anyhow::bail!("{topic} is not one of this server's topics");
        };
        self.create_topics(std::slice::from_ref(spec)).await?;
        Ok(())
    }

    /// Creates every topic of the server that is missing (`sse-server init`);
    /// returns the names of those it created.
    pub async fn create_all_topics(&self) -> anyhow::Result<Vec<String>> {
        self.create_topics(&self.topics).await
    }

    async fn create_topics(&self, topics: &[Topic]) -> anyhow::Result<Vec<String>> {
        let admin: AdminClient<DefaultClientContext> = client_config(&self.brokers).create()?;
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        let mut created = Vec::new();
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(topic) => {
                    tracing::info!(topic, "created Kafka topic");
                    created.push(topic);
                }
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, e)) => anyhow::bail!("cannot create topic {topic}: {e}"),
            }
        }
        Ok(created)
    }
}
