//! Topic creation and the check of what exists. Topics are created with the
//! partitions and replicas [`Config::topics`](crate::config::Config::topics) gives
//! them (the broker is expected to have topic auto-creation off); a topic that
//! already exists with fewer replicas, or a cluster that acknowledges a record
//! held by one broker only (`min.insync.replicas` below 2 on three brokers or
//! more), is named at start-up and by `sse-server init`, since either loses
//! acknowledged records with one broker.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::metadata::Metadata;
use rdkafka::producer::Producer;

use super::reports::Reports;
use super::{KafkaBus, client_config};
use crate::config::Topic;

/// How long an admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the cluster holds of one of the server's topics, after creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    pub name: String,
    /// Created just now (otherwise it existed).
    pub created: bool,
    pub partitions: i32,
    /// The fewest replicas any of its partitions has.
    pub replicas: i32,
    /// The replicas asked for on this cluster.
    pub wanted_replicas: i32,
    /// The topic's `min.insync.replicas` (1 when the broker does not say).
    pub min_insync: i32,
    /// Brokers the cluster reports.
    pub brokers: i32,
}

impl TopicState {
    /// Sentences naming what makes this topic unsafe, if anything.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.replicas < self.wanted_replicas {
            warnings.push(format!(
                "topic {} has {} replica(s) per partition where {} are asked: while a broker holding its only copies is down its partitions take no writes, and a lost disk loses their records. Raise it with kafka-reassign-partitions (or delete and recreate the topic while nothing runs)",
                self.name, self.replicas, self.wanted_replicas
            ));
        }
        if self.brokers >= 3 && self.min_insync < 2 {
            warnings.push(format!(
                "topic {} has min.insync.replicas={} on a cluster of {} brokers: a record is acknowledged once one broker has it, and lost if that broker dies. Set min.insync.replicas=2 (kafka-configs --alter --entity-type topics --entity-name {} --add-config min.insync.replicas=2)",
                self.name, self.min_insync, self.brokers, self.name
            ));
        }
        warnings
    }
}

impl KafkaBus {
    /// Creates `topic` unless it exists, so a fresh broker works out of the box,
    /// and logs what is unsafe about it.
    pub(super) async fn create_topic(&self, topic: &str) -> anyhow::Result<()> {
        let Some(spec) = self.topics.iter().find(|t| t.name == topic) else {
            anyhow::bail!("{topic} is not one of this server's topics");
        };
        for state in self.create_topics(std::slice::from_ref(spec)).await? {
            for warning in state.warnings() {
                tracing::warn!("{warning}");
            }
        }
        Ok(())
    }

    /// Creates every topic of the server that is missing (`sse-server init`);
    /// returns what each topic is now.
    pub async fn create_all_topics(&self) -> anyhow::Result<Vec<TopicState>> {
        self.create_topics(&self.topics).await
    }

    async fn create_topics(&self, topics: &[Topic]) -> anyhow::Result<Vec<TopicState>> {
        let admin: AdminClient<Reports> =
            client_config(&self.brokers).create_with_context(Reports)?;
        let brokers = self.metadata().await?.brokers().len();
        let brokers = i32::try_from(brokers).unwrap_or(i32::MAX);
        // Segments close within the retention, or it would never apply.
        let retention_ms: Vec<Option<String>> = topics
            .iter()
            .map(|t| t.retention.map(|r| r.as_millis().to_string()))
            .collect();
        let new: Vec<NewTopic> = topics
            .iter()
            .zip(&retention_ms)
            .map(|(t, retention_ms)| {
                let replicas = TopicReplication::Fixed(t.replicas_on(brokers));
                let topic = NewTopic::new(&t.name, t.partitions, replicas);
                match retention_ms {
                    Some(ms) => topic.set("retention.ms", ms).set("segment.ms", ms),
                    None => topic,
                }
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
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
        let replicas = self.replicas_of(topics).await?;
        let mut states = Vec::new();
        for (topic, replicas) in topics.iter().zip(replicas) {
            let min_insync = min_insync_replicas(&admin, &topic.name).await;
            self.min_insync.insert(topic.name.clone(), min_insync);
            states.push(TopicState {
                name: topic.name.clone(),
                created: created.contains(&topic.name),
                partitions: topic.partitions,
                replicas,
                wanted_replicas: topic.replicas_on(brokers),
                min_insync,
                brokers,
            });
        }
        Ok(states)
    }

    /// The fewest replicas any partition of each topic has. A topic just created
    /// may take a moment to appear in every broker's metadata: asked again for up
    /// to [`ADMIN_TIMEOUT`] until each shows all its partitions.
    async fn replicas_of(&self, topics: &[Topic]) -> anyhow::Result<Vec<i32>> {
        let deadline = tokio::time::Instant::now() + ADMIN_TIMEOUT;
        loop {
            let metadata = self.metadata().await?;
            let found: Vec<Option<i32>> = topics
                .iter()
                .map(|topic| {
                    let t = metadata.topics().iter().find(|t| t.name() == topic.name)?;
                    let partitions = t.partitions();
                    if i32::try_from(partitions.len()).ok()? < topic.partitions {
                        return None;
                    }
                    let fewest = partitions.iter().map(|p| p.replicas().len()).min()?;
                    i32::try_from(fewest).ok().filter(|&r| r > 0)
                })
                .collect();
            if found.iter().all(Option::is_some) || tokio::time::Instant::now() >= deadline {
                return Ok(found.into_iter().map(|r| r.unwrap_or(0)).collect());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The cluster's brokers and topics.
    pub(super) async fn metadata(&self) -> anyhow::Result<Metadata> {
        let producer = self.producer();
        // A blocking call: off the runtime's threads.
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, ADMIN_TIMEOUT))
            .await?
            .map_err(|e| anyhow::anyhow!("Kafka at {} does not answer: {e}", self.brokers))
    }
}

/// The topic's `min.insync.replicas`, or 1 when the broker does not tell.
async fn min_insync_replicas(admin: &AdminClient<Reports>, topic: &str) -> i32 {
    let options = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT));
    let resource = ResourceSpecifier::Topic(topic);
    let Ok(results) = admin.describe_configs([&resource], &options).await else {
        return 1;
    };
    results
        .iter()
        .flatten()
        .find_map(|config| {
            config
                .get("min.insync.replicas")?
                .value
                .as_deref()?
                .parse()
                .ok()
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(replicas: i32, min_insync: i32, brokers: i32) -> TopicState {
        TopicState {
            name: "v3_messages".into(),
            created: false,
            partitions: 3,
            replicas,
            wanted_replicas: 3.min(brokers),
            min_insync,
            brokers,
        }
    }

    #[test]
    fn a_safe_topic_has_no_warning() {
        assert!(state(3, 2, 3).warnings().is_empty());
        // One broker: one replica and min.insync.replicas=1 are all there can be.
        assert!(state(1, 1, 1).warnings().is_empty());
    }

    #[test]
    fn too_few_replicas_are_named() {
        let warnings = state(1, 2, 3).warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("1 replica(s) per partition where 3 are asked"));
    }

    #[test]
    fn min_insync_below_two_on_three_brokers_is_named() {
        let warnings = state(3, 1, 3).warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("min.insync.replicas=1 on a cluster of 3 brokers"));
    }

    #[test]
    fn replicas_default_to_three_or_the_brokers_there_are() {
        let topic = |replicas| Topic {
            name: "t".into(),
            partitions: 3,
            replicas,
            retention: None,
        };
        assert_eq!(topic(None).replicas_on(1), 1);
        assert_eq!(topic(None).replicas_on(2), 2);
        assert_eq!(topic(None).replicas_on(5), 3);
        assert_eq!(topic(Some(5)).replicas_on(5), 5);
        assert_eq!(
            topic(Some(2)).replicas_on(1),
            2,
            "the flag is taken as given"
        );
    }
}
