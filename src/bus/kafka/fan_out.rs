//! Where a fan-out reader starts. Fan-out topics (`Group::EachInstance`) are read
//! by every instance from the offsets of `now − since` (offsets for times), and the
//! instance is ready once it has read up to the end each partition had when it
//! started: that rebuilds the history every instance keeps for resume. The
//! partitions are assigned directly, so an instance reads from its first second
//! without waiting for a rebalance.

use std::time::Duration;

use rdkafka::consumer::Consumer;

use super::reports::KafkaConsumer;
use rdkafka::{Offset, TopicPartitionList};

/// Where a fan-out reader began, and how far it must read to have caught up.
#[derive(Debug, Default)]
pub(super) struct CatchUp {
    /// Per partition, the first offset read.
    pub(super) starts: Vec<i64>,
    /// Per partition, the end it had at the start; `i64::MIN` once reached.
    ends: Vec<i64>,
}

impl CatchUp {
    pub(super) fn done(&self) -> bool {
        self.ends.iter().all(|&end| end == i64::MIN)
    }

    /// Notes a record read; `true` when that completes the catch-up.
    pub(super) fn read(&mut self, partition: i32, offset: i64) -> bool {
        if let Some(end) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.ends.get_mut(p))
            && offset + 1 >= *end
        {
            *end = i64::MIN;
            return self.done();
        }
        false
    }
}

/// Where a fan-out reader starts.
pub(super) enum Start {
    /// At the first record of the last `since` (a new reader).
    Since(Duration),
    /// At these next offsets per partition (a restarted reader).
    At(Vec<i64>),
}

/// Assigns every partition of `topic` at `start`: the first offset of the last
/// `since` (the end when nothing is that recent), or the given next offsets.
pub(super) fn assign_from(
    consumer: &KafkaConsumer,
    topic: &str,
    start: Start,
) -> anyhow::Result<CatchUp> {
    let timeout = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
        .unwrap_or_default();
    anyhow::ensure!(
        !partitions.is_empty(),
        "topic {topic} has no partitions yet"
    );
    let count = partitions.iter().max().map_or(0, |p| *p as usize + 1);
    let mut catch_up = CatchUp {
        starts: vec![0; count],
        ends: vec![i64::MIN; count],
    };
    let found = match &start {
        Start::Since(since) if !since.is_zero() => {
            let from_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_sub(*since)
                .as_millis() as i64;
            let mut query = TopicPartitionList::new();
            for &partition in &partitions {
                query.add_partition_offset(topic, partition, Offset::Offset(from_ms))?;
            }
            Some(consumer.offsets_for_times(query, timeout)?)
        }
        _ => None,
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        let start = match &start {
            // A partition the reader had not seen yet is read from its beginning.
            Start::At(next) => next
                .get(partition as usize)
                .copied()
                .unwrap_or(low)
                .clamp(low, high),
            Start::Since(_) => match found
                .as_ref()
                .and_then(|f| f.find_partition(topic, partition))
                .map(|e| e.offset())
            {
                Some(Offset::Offset(offset)) => offset.clamp(low, high),
                // Nothing that recent (or no answer): start at the end.
                _ => high,
            },
        };
        let p = partition as usize;
        catch_up.starts[p] = start;
        if start < high {
            catch_up.ends[p] = high;
        }
        assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    }
    consumer.assign(&assignment)?;
    Ok(catch_up)
}
