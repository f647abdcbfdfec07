//! Presence: how many streams a user has open on a step, on how many instances.
//! Answered by `GET /vN/presence` and told to the user's own streams as a
//! `presence` event (without an id: a state, not history) whenever it changes.
//!
//! /v2 is in-process by design, so its presence counts this instance's streams.
//! /v3 and /v4 count every instance's, through the bus, in one place:
//!
//! 1. **Each instance publishes snapshots, not changes** (`record`): its open
//!    streams per user, at most every [`PUBLISH_EVERY`] when they changed and
//!    every [`HEARTBEAT`] otherwise. A churn of 1,000 streams a second costs one
//!    record a second per instance (plus a part per 2,000 connected users), and a
//!    lost or repeated record is corrected by the next.
//! 2. **Every instance reads every snapshot** (a fan-out reader starting
//!    [`LOOKBACK`] back, which holds the last snapshot of every live instance) into
//!    its `tally`; its own are skipped, since it counts its streams directly.
//! 3. **An instance that stops publishing stops counting** [`EXPIRY`] after its
//!    last record (judged by the record's timestamp): a `kill -9`'s streams leave
//!    every count within 15 s. One that shuts down says so with an empty snapshot.
//! 4. **Changes are told every [`TELL_EVERY`]**, coalesced: a user whose count
//!    changed, or who opened a stream, gets one event on each of their streams
//!    here. So a change on one instance reaches the streams on another within
//!    about `PUBLISH_EVERY` + the bus + `TELL_EVERY` (measured: `tests/presence.rs`).
//!
//! Memory is bounded by the users connected here (the stream budget) and, for
//! the other instances, by `record`'s and `tally`'s bounds.

mod record;
mod routes;
mod tally;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, FanOut, Record};
use crate::events::{RecordSkipped, Skip};
use crate::lock::Locked;
use crate::metrics::Metrics;
use crate::sse::{Change, EventName, UserHub, unnumbered};
use record::Snapshot;
use tally::Tally;

pub use routes::{Presences, routes};

/// A changed snapshot is published at most this often.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// An unchanged snapshot is published again this often: the instance is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// An instance not heard from for this long is no longer counted: more than two
/// heartbeats, so one late record does not drop it.
pub const EXPIRY: Duration = Duration::from_secs(12);
/// How far back a starting reader reads: past every live instance's last snapshot.
pub const LOOKBACK: Duration = Duration::from_secs(6);
/// How often changed counts are told to the users' streams.
pub const TELL_EVERY: Duration = Duration::from_millis(250);

/// A user's open streams, everywhere the step counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub connections: usize,
    pub instances: usize,
}

impl Count {
    /// `here` streams on this instance and what the others hold.
    fn of(here: usize, elsewhere: tally::Elsewhere) -> Count {
        Count {
            connections: here + elsewhere.connections,
            instances: usize::from(here > 0) + elsewhere.instances,
        }
    }
}

/// One step's presence: its hub's streams here, and the other instances' tally.
pub struct Presence {
    step: &'static str,
    hub: Arc<UserHub>,
    instance: Arc<str>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tally: Tally,
    /// Users whose count may have changed since the last telling.
    changed: HashSet<Arc<str>>,
    /// Users who opened a stream since: told even if their count is the same.
    opened: HashSet<Arc<str>>,
    /// What each user connected here was last told.
    told: HashMap<Arc<str>, Count>,
    /// The streams here changed since the last snapshot was published.
    unpublished: bool,
}

impl Presence {
    /// The presence of `hub`'s streams, `step` on the bus, this instance being
    /// `instance`. Tells the users' streams until `shutdown`.
    pub fn start(
        step: &'static str,
        hub: &Arc<UserHub>,
        instance: &Arc<str>,
        shutdown: &CancellationToken,
    ) -> Arc<Presence> {
        let presence = Arc::new(Presence {
            step,
            hub: hub.clone(),
            instance: instance.clone(),
            state: Mutex::new(State::default()),
        });
        // Weak: the hub outlives nothing it holds.
        let watcher: Weak<Presence> = Arc::downgrade(&presence);
        hub.watch_connections(move |user, change| {
            if let Some(presence) = watcher.upgrade() {
                let mut state = presence.state.locked();
                state.changed.insert(user.clone());
                if change == Change::Opened {
                    state.opened.insert(user.clone());
                }
                state.unpublished = true;
            }
        });
        let teller = presence.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TELL_EVERY);
            loop {
                tokio::select! {
                    _ = every.tick() => teller.tell(),
                    _ = shutdown.cancelled() => return,
                }
            }
        });
        presence
    }

    /// `user`'s open streams, here and on the instances heard from.
    pub fn count(&self, user: &str) -> Count {
        let here = self.hub.connection_count(Some(user));
        Count::of(here, self.state.locked().tally.elsewhere(user))
    }

    /// Tells each user whose count changed (or who opened a stream) on every
    /// stream here, and forgets the instances gone silent.
    fn tell(&self) {
        let (changed, opened) = {
            let mut state = self.state.locked();
            let gone = state.tally.expire(Instant::now());
            state.changed.extend(gone);
            if state.changed.is_empty() {
                return;
            }
            (
                std::mem::take(&mut state.changed),
                std::mem::take(&mut state.opened),
            )
        };
        for user in changed {
            let here = self.hub.connection_count(Some(&user));
            let mut state = self.state.locked();
            if here == 0 {
                state.told.remove(&user);
                continue;
            }
            let count = Count::of(here, state.tally.elsewhere(&user));
            if state.told.get(&user) == Some(&count) && !opened.contains(&user) {
                continue;
            }
            state.told.insert(user.clone(), count);
            drop(state);
            let data = serde_json::to_string(&count).unwrap_or_default();
            self.hub
                .tell(&user, &unnumbered(EventName::Presence, &data));
        }
    }

    /// Takes one record of the presence topic: another instance's snapshot.
    fn heard(&self, snapshot: Snapshot, age: Duration) {
        let seen = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let mut state = self.state.locked();
        match state.tally.apply(snapshot, seen) {
            Some(changed) => state.changed.extend(changed),
            None => tracing::debug!(
                step = self.step,
                "presence: more instances than counted ({}); a record is left out",
                tally::MAX_INSTANCES
            ),
        }
    }

    /// This instance's snapshot if it is due: changed and [`PUBLISH_EVERY`] since
    /// the last, or [`HEARTBEAT`] since.
    fn snapshot(&self, since_last: Duration) -> Option<Vec<Snapshot>> {
        {
            let mut state = self.state.locked();
            if !(state.unpublished || since_last >= HEARTBEAT) {
                return None;
            }
            state.unpublished = false;
        }
        Some(Snapshot::parts(
            &self.instance,
            self.step,
            self.hub.connected_users(),
        ))
    }
}

/// Shares the presence of `steps` through `topic` on `bus`: publishes this
/// instance's snapshots and reads everyone's, until `shutdown` (then publishes an
/// empty one, so the others stop counting these streams at once).
pub fn share(
    bus: &Bus,
    topic: &str,
    steps: &[Arc<Presence>],
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    for presence in steps {
        tokio::spawn(publish(
            bus.clone(),
            topic.to_owned(),
            presence.clone(),
            shutdown.clone(),
        ));
    }
    let steps: Vec<Arc<Presence>> = steps.to_vec();
    let (read_topic, read_metrics) = (topic.to_owned(), metrics.clone());
    bus.consume(
        topic,
        FanOut::group(LOOKBACK, |_| {}),
        metrics.clone(),
        shutdown.clone(),
        move |record: Record| {
            read(&steps, &read_topic, &read_metrics, record);
            std::future::ready(Ok::<(), std::convert::Infallible>(()))
        },
    );
}

fn read(steps: &[Arc<Presence>], topic: &str, metrics: &Metrics, record: Record) {
    let snapshot = match Snapshot::read(&record.payload) {
        Ok(snapshot) => snapshot,
        Err(what) => {
            RecordSkipped {
                topic,
                partition: record.partition,
                offset: record.offset,
                why: Skip::Malformed(&what),
            }
            .emit(metrics);
            return;
        }
    };
    let Some(presence) = steps.iter().find(|p| p.step == snapshot.step) else {
        return;
    };
    if *snapshot.instance == *presence.instance {
        return;
    }
    // The record's age by its timestamp (the writer's clock) against this one's:
    // at most LOOKBACK, the oldest a reader reads, so clocks that disagree by more
    // than that cannot make a live instance look expired.
    let age = record.age().unwrap_or_default().min(LOOKBACK);
    presence.heard(snapshot, age);
}

/// Publishes `presence`'s snapshots when due (see [`Presence::snapshot`]). A
/// failure is logged once until a publish succeeds again; the snapshot is due
/// again at the next tick.
async fn publish(bus: Bus, topic: String, presence: Arc<Presence>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(PUBLISH_EVERY);
    let mut last = Instant::now() - HEARTBEAT;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        let Some(parts) = presence.snapshot(last.elapsed()) else {
            continue;
        };
        match send(&bus, &topic, &parts).await {
            Ok(()) => {
                last = Instant::now();
                if std::mem::take(&mut failing) {
                    tracing::info!(step = presence.step, "presence: publishing again");
                }
            }
            Err(e) => {
                presence.state.locked().unpublished = true;
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        step = presence.step,
                        "presence: cannot publish this instance's streams ({e}); the other instances stop counting them after {EXPIRY:?}"
                    );
                }
            }
        }
    }
    let goodbye = Snapshot::parts(&presence.instance, presence.step, Vec::new());
    let _ = tokio::time::timeout(Duration::from_secs(1), send(&bus, &topic, &goodbye)).await;
}

async fn send(bus: &Bus, topic: &str, parts: &[Snapshot]) -> Result<(), crate::bus::BusError> {
    for part in parts {
        let payload = serde_json::to_vec(part).unwrap_or_default();
        bus.publish(topic, Some(&part.instance), &payload).await?;
    }
    Ok(())
}
