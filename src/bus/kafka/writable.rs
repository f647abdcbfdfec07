//! Which partitions of the server's topics take writes now, for `/readyz` and the
//! `kafka_unwritable_partitions` gauge.
//!
//! A partition takes writes when its leader answers and enough of its in-sync
//! replicas answer to reach the topic's `min.insync.replicas`. The broker's
//! metadata alone cannot tell: a broker that is cut off (nothing reaches it, while
//! it still reaches the controller) stays the leader of its partitions, and with
//! two brokers of three gone the survivor still lists them in every in-sync set,
//! since no controller quorum is left to shrink it. So every few seconds this
//! instance asks the metadata and opens a TCP connection to each broker itself: a
//! broker it cannot reach is one its producer cannot write to either.
//!
//! Readiness answers 503 only when no partition takes writes: a third of the users
//! unwritable is this instance's and every other's condition alike, and taking
//! every instance out of the load balancer would refuse the other two thirds.
//! A partition whose leader went silent while enough of its in-sync replicas
//! answer is moving: Kafka fences the silent broker and elects one of them, and
//! publishes wait for that instead of failing. Such a partition counts as one that
//! takes writes for readiness during [`FAILOVER_WITHIN`], so a failover does not
//! take every instance out of the load balancer when the silent broker led every
//! partition (as after a cluster's restart, until Kafka rebalances its leaders);
//! a leader that stays silent longer is one Kafka is not moving (a broker cut off
//! that still reaches the controller).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::metadata::Metadata;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::KafkaBus;
use crate::lock::Locked;
use crate::metrics::Metrics;

/// How often the partitions are checked.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long a broker may take to accept a TCP connection before it counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How old the last answer of the cluster may be before the whole bus counts as
/// unwritable.
const STALE_AFTER: Duration = Duration::from_secs(10);
/// How long Kafka may take to move the partitions of a broker that went silent:
/// a new controller when it was the controller, its session (3 s in
/// `scripts/kafka/cluster.properties`), an election. Measured: 3.9-6.9 s from
/// a pause to every publish acknowledged (chaos/scenarios.py).
const FAILOVER_WITHIN: Duration = Duration::from_secs(10);

/// A partition that takes no writes now, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unwritable {
    pub topic: String,
    pub partition: i32,
    pub why: String,
}

/// The last verdict: which partitions take no writes, out of how many.
#[derive(Debug, Default)]
pub(super) struct Writability {
    checked: Mutex<Option<Verdict>>,
}

#[derive(Debug, Clone)]
struct Verdict {
    at: Instant,
    /// `Err` when the cluster did not answer.
    partitions: Result<Partitions, String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Partitions {
    total: usize,
    unwritable: Vec<Unwritable>,
    /// How many of the unwritable are moving to a new leader (see the module's
    /// doc).
    moving: usize,
}

/// What readiness reports of the bus's partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WriteState {
    /// Partitions that take no writes now (empty when all do).
    pub unwritable: Vec<Unwritable>,
    /// Set when nothing can be written: the reason.
    pub none_writable: Option<String>,
}

impl Writability {
    /// What the last check found; before any check, that all is writable.
    pub(super) fn state(&self) -> WriteState {
        let Some(verdict) = self.checked.locked().clone() else {
            return WriteState::default();
        };
        if verdict.at.elapsed() > STALE_AFTER {
            return WriteState {
                unwritable: Vec::new(),
                none_writable: Some(format!(
                    "no answer from the Kafka cluster for {:.0?}",
                    verdict.at.elapsed()
                )),
            };
        }
        match verdict.partitions {
            Err(why) => WriteState {
                unwritable: Vec::new(),
                none_writable: Some(why),
            },
            Ok(partitions) => {
                let none = partitions.total > 0
                    && partitions.unwritable.len() == partitions.total
                    && partitions.moving == 0;
                WriteState {
                    none_writable: none
                        .then(|| "no partition of the server's topics takes writes".to_owned()),
                    unwritable: partitions.unwritable,
                }
            }
        }
    }
}

impl KafkaBus {
    /// Checks every [`CHECK_EVERY`] until `shutdown`, logging each partition once
    /// when it stops and once when it starts taking writes again, and keeping the
    /// gauge current.
    pub fn watch_writability(self: &Arc<Self>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut before = Partitions::default();
            let mut cluster_answered = true;
            let mut silent_since = BTreeMap::new();
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                let checked = bus.check_partitions(&mut silent_since).await;
                match &checked {
                    Ok(now) => {
                        if !cluster_answered {
                            tracing::info!("the Kafka cluster answers again");
                            cluster_answered = true;
                        }
                        log_changes(&before.unwritable, &now.unwritable);
                        let mut per_topic: HashMap<&str, i64> =
                            bus.topics.iter().map(|t| (t.name.as_str(), 0)).collect();
                        for u in &now.unwritable {
                            *per_topic.entry(&u.topic).or_default() += 1;
                        }
                        for (topic, count) in per_topic {
                            metrics.set_unwritable(topic, count);
                        }
                        before = now.clone();
                    }
                    Err(why) if cluster_answered => {
                        tracing::warn!("the Kafka cluster does not answer: {why}");
                        cluster_answered = false;
                    }
                    Err(_) => {}
                }
                // A failed check keeps the last good answer until it is stale.
                let mut slot = bus.writability.checked.locked();
                match (checked, slot.as_ref()) {
                    (Ok(partitions), _) => {
                        *slot = Some(Verdict {
                            at: Instant::now(),
                            partitions: Ok(partitions),
                        });
                    }
                    (Err(why), None) => {
                        *slot = Some(Verdict {
                            at: Instant::now(),
                            partitions: Err(why),
                        });
                    }
                    (Err(_), Some(_)) => {}
                }
            }
        });
    }

    /// One check: the metadata, then a connection to each broker. `silent_since`
    /// keeps when each broker that does not answer stopped answering.
    async fn check_partitions(
        &self,
        silent_since: &mut BTreeMap<i32, Instant>,
    ) -> Result<Partitions, String> {
        let metadata = self.metadata().await.map_err(|e| e.to_string())?;
        let brokers: Vec<(i32, String)> = metadata
            .brokers()
            .iter()
            .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
            .collect();
        let probes = brokers.iter().map(|(id, address)| async move {
            let connect = tokio::net::TcpStream::connect(address.as_str());
            let up = matches!(
                tokio::time::timeout(CONNECT_TIMEOUT, connect).await,
                Ok(Ok(_))
            );
            (*id, up)
        });
        let now = Instant::now();
        let mut seen = BTreeMap::new();
        for (id, up) in futures_util::future::join_all(probes).await {
            let probe = if up {
                silent_since.remove(&id);
                Probe::Up
            } else {
                Probe::SilentFor(now - *silent_since.entry(id).or_insert(now))
            };
            seen.insert(id, probe);
        }
        let min_insync = |topic: &str| self.min_insync.get(topic).map_or(1, |m| *m);
        Ok(judge(
            &metadata_view(&metadata),
            &self.topic_names(),
            &seen,
            min_insync,
        ))
    }

    fn topic_names(&self) -> Vec<String> {
        self.topics.iter().map(|t| t.name.clone()).collect()
    }
}

/// What this instance saw of a broker the metadata lists.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Up,
    /// Unreachable, since this long.
    SilentFor(Duration),
}

/// One partition as the metadata describes it.
#[derive(Debug, Clone)]
struct PartitionView {
    topic: String,
    id: i32,
    /// The broker's error for this partition, if any.
    error: Option<String>,
    leader: i32,
    isr: Vec<i32>,
}

fn metadata_view(metadata: &Metadata) -> Vec<PartitionView> {
    metadata
        .topics()
        .iter()
        .flat_map(|t| {
            t.partitions().iter().map(|p| PartitionView {
                topic: t.name().to_owned(),
                id: p.id(),
                error: p
                    .error()
                    .map(|e| format!("{:?}", rdkafka::types::RDKafkaErrorCode::from(e))),
                leader: p.leader(),
                isr: p.isr().to_vec(),
            })
        })
        .collect()
}

/// Which partitions of `topics` take no writes, given the metadata and what this
/// instance saw of each broker (one it did not probe counts as unreachable). Pure,
/// so the rules are tested without a cluster.
fn judge(
    partitions: &[PartitionView],
    topics: &[String],
    seen: &BTreeMap<i32, Probe>,
    min_insync: impl Fn(&str) -> i32,
) -> Partitions {
    let up = |broker: i32| matches!(seen.get(&broker), Some(Probe::Up));
    let mut out = Partitions::default();
    for topic in topics {
        let mut of_topic: Vec<&PartitionView> =
            partitions.iter().filter(|p| &p.topic == topic).collect();
        of_topic.sort_by_key(|p| p.id);
        if of_topic.is_empty() {
            out.total += 1;
            out.unwritable.push(Unwritable {
                topic: topic.clone(),
                partition: -1,
                why: "the topic does not exist".into(),
            });
            continue;
        }
        for p in of_topic {
            out.total += 1;
            let needed = min_insync(topic);
            let in_sync_up = p.isr.iter().filter(|&&b| up(b)).count();
            let enough_in_sync = i32::try_from(in_sync_up).unwrap_or(i32::MAX) >= needed;
            let why = if let Some(error) = &p.error {
                Some(format!("the broker reports {error}"))
            } else if p.leader < 0 {
                Some("no leader".to_owned())
            } else if !up(p.leader) {
                let lately = matches!(seen.get(&p.leader), Some(Probe::SilentFor(d)) if *d < FAILOVER_WITHIN);
                if enough_in_sync && lately {
                    out.moving += 1;
                    Some(format!(
                        "its leader, broker {}, is unreachable; {in_sync_up} reachable in-sync replicas can take over",
                        p.leader
                    ))
                } else {
                    Some(format!("its leader, broker {}, is unreachable", p.leader))
                }
            } else if !enough_in_sync {
                Some(format!(
                    "{in_sync_up} reachable in-sync replica(s), below min.insync.replicas={needed}"
                ))
            } else {
                None
            };
            if let Some(why) = why {
                out.unwritable.push(Unwritable {
                    topic: topic.clone(),
                    partition: p.id,
                    why,
                });
            }
        }
    }
    out
}

/// Logs each partition that stopped or started taking writes, once.
fn log_changes(before: &[Unwritable], now: &[Unwritable]) {
    let key = |u: &Unwritable| (u.topic.clone(), u.partition);
    let was: HashMap<_, _> = before.iter().map(|u| (key(u), u)).collect();
    let is: HashMap<_, _> = now.iter().map(|u| (key(u), u)).collect();
    for (k, u) in &is {
        match was.get(k) {
            Some(old) if old.why == u.why => {}
            _ => tracing::warn!(
                topic = u.topic,
                partition = u.partition,
                "Kafka partition takes no writes: {}",
                u.why
            ),
        }
    }
    for (k, u) in &was {
        if !is.contains_key(k) {
            tracing::info!(
                topic = u.topic,
                partition = u.partition,
                "Kafka partition takes writes again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(id: i32, leader: i32, isr: &[i32]) -> PartitionView {
        PartitionView {
            topic: "t".into(),
            id,
            error: None,
            leader,
            isr: isr.to_vec(),
        }
    }

    /// Brokers 1 to 3: those in `up` up, the others silent for `silent`.
    fn silent_but(up: &[i32], silent: Duration) -> BTreeMap<i32, Probe> {
        (1..=3)
            .map(|b| {
                let probe = if up.contains(&b) {
                    Probe::Up
                } else {
                    Probe::SilentFor(silent)
                };
                (b, probe)
            })
            .collect()
    }

    /// Judged a second after the brokers but `up` went silent.
    fn judged(partitions: &[PartitionView], up: &[i32]) -> Partitions {
        judged_after(partitions, up, Duration::from_secs(1))
    }

    fn judged_after(partitions: &[PartitionView], up: &[i32], silent: Duration) -> Partitions {
        judge(
            partitions,
            &["t".to_owned()],
            &silent_but(up, silent),
            |_| 2,
        )
    }

    fn state_of(partitions: Partitions) -> WriteState {
        let writability = Writability::default();
        *writability.checked.locked() = Some(Verdict {
            at: Instant::now(),
            partitions: Ok(partitions),
        });
        writability.state()
    }

    fn cluster() -> Vec<PartitionView> {
        vec![
            partition(0, 1, &[1, 2, 3]),
            partition(1, 2, &[2, 3, 1]),
            partition(2, 3, &[3, 1, 2]),
        ]
    }

    #[test]
    fn a_healthy_cluster_takes_writes_everywhere() {
        let verdict = judged(&cluster(), &[1, 2, 3]);
        assert_eq!(verdict.total, 3);
        assert!(verdict.unwritable.is_empty());
    }

    #[test]
    fn a_cut_off_leader_makes_its_partitions_unwritable_and_no_other() {
        let verdict = judged(&cluster(), &[1, 2]);
        assert_eq!(verdict.unwritable.len(), 1);
        assert_eq!(verdict.unwritable[0].partition, 2);
        assert!(verdict.unwritable[0].why.contains("broker 3"));
    }

    #[test]
    fn two_brokers_gone_leave_nothing_writable() {
        let verdict = judged(&cluster(), &[1]);
        assert_eq!(verdict.unwritable.len(), 3);
        assert!(
            verdict.unwritable[0]
                .why
                .contains("below min.insync.replicas=2")
        );
        assert_eq!(verdict.moving, 0);
        assert!(state_of(verdict).none_writable.is_some());
    }

    #[test]
    fn a_silent_leader_of_every_partition_is_a_failover_until_it_lasts_too_long() {
        let led_by_one = vec![
            partition(0, 1, &[1, 2, 3]),
            partition(1, 1, &[1, 2, 3]),
            partition(2, 1, &[1, 2, 3]),
        ];
        let moving = judged(&led_by_one, &[2, 3]);
        assert_eq!((moving.unwritable.len(), moving.moving), (3, 3));
        assert!(moving.unwritable[0].why.contains("can take over"));
        let state = state_of(moving);
        assert_eq!(state.none_writable, None);
        assert_eq!(state.unwritable.len(), 3);

        let stuck = judged_after(&led_by_one, &[2, 3], FAILOVER_WITHIN);
        assert_eq!((stuck.unwritable.len(), stuck.moving), (3, 0));
        assert!(state_of(stuck).none_writable.is_some());
    }

    #[test]
    fn a_leader_that_was_not_probed_is_unreachable_and_not_moving() {
        let verdict = judged(&[partition(0, 4, &[4, 1, 2])], &[1, 2, 3]);
        assert_eq!((verdict.unwritable.len(), verdict.moving), (1, 0));
        assert_eq!(
            verdict.unwritable[0].why,
            "its leader, broker 4, is unreachable"
        );
    }

    #[test]
    fn a_silent_leader_without_enough_in_sync_replicas_is_no_failover() {
        let verdict = judged(&[partition(0, 1, &[1, 2])], &[2]);
        assert_eq!((verdict.unwritable.len(), verdict.moving), (1, 0));
        assert!(state_of(verdict).none_writable.is_some());
    }

    #[test]
    fn a_moved_leader_with_a_shrunk_in_sync_set_takes_writes() {
        let after_election = vec![
            partition(0, 1, &[1, 2]),
            partition(1, 2, &[2, 1]),
            partition(2, 1, &[1, 2]),
        ];
        assert!(judged(&after_election, &[1, 2]).unwritable.is_empty());
    }

    #[test]
    fn no_leader_and_missing_topics_are_named() {
        let verdict = judge(
            &[partition(0, -1, &[])],
            &["t".to_owned(), "gone".to_owned()],
            &silent_but(&[1, 2, 3], Duration::ZERO),
            |_| 1,
        );
        let whys: Vec<&str> = verdict.unwritable.iter().map(|u| u.why.as_str()).collect();
        assert_eq!(whys, ["no leader", "the topic does not exist"]);
    }

    #[test]
    fn an_old_answer_means_nothing_is_known_writable() {
        let writability = Writability::default();
        assert_eq!(writability.state(), WriteState::default());
        *writability.checked.locked() = Some(Verdict {
            at: Instant::now() - STALE_AFTER - Duration::from_secs(1),
            partitions: Ok(Partitions::default()),
        });
        assert!(writability.state().none_writable.is_some());
    }
}
