//! What the other instances said: each one's last snapshot of one step, and when
//! it was heard from. Pure bookkeeping, so its rules are tested without a bus:
//! a part replaces the same part, a shorter snapshot drops the parts beyond it,
//! and an instance silent for [`EXPIRY`](super::EXPIRY) is no longer counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::EXPIRY;
use super::record::Snapshot;

/// Other instances counted at most: a record from one more is dropped (and the
/// instance counted once one of the others expires). Bounds the tally's memory
/// with [`Snapshot::read`]'s bounds on each record.
pub const MAX_INSTANCES: usize = 1_024;

#[derive(Default)]
pub struct Tally {
    instances: HashMap<String, Instance>,
}

struct Instance {
    parts: Vec<HashMap<Arc<str>, u32>>,
    seen: Instant,
}

/// A user's streams on the other instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Elsewhere {
    pub connections: usize,
    pub instances: usize,
}

impl Tally {
    /// Takes one part of an instance's snapshot, heard at `seen`; returns the users
    /// whose count there changed; `None` when the record was dropped (too many
    /// instances).
    pub fn apply(&mut self, snapshot: Snapshot, seen: Instant) -> Option<Vec<Arc<str>>> {
        if !self.instances.contains_key(&snapshot.instance) && self.instances.len() >= MAX_INSTANCES
        {
            return None;
        }
        let instance = self
            .instances
            .entry(snapshot.instance)
            .or_insert_with(|| Instance {
                parts: Vec::new(),
                seen,
            });
        instance.seen = instance.seen.max(seen);
        let parts = snapshot.parts as usize;
        let mut changed: Vec<Arc<str>> = Vec::new();
        // Parts beyond the new count are gone, their users with them.
        for dropped in instance.parts.drain(parts.min(instance.parts.len())..) {
            changed.extend(dropped.into_keys());
        }
        instance.parts.resize_with(parts, HashMap::new);
        let new: HashMap<Arc<str>, u32> = snapshot
            .users
            .into_iter()
            .map(|(user, n)| (Arc::from(user), n))
            .collect();
        let old = std::mem::replace(&mut instance.parts[snapshot.part as usize], new);
        let new = &instance.parts[snapshot.part as usize];
        changed.extend(
            old.iter()
                .filter(|(u, n)| new.get(*u) != Some(n))
                .map(|(u, _)| u.clone()),
        );
        changed.extend(new.keys().filter(|u| !old.contains_key(*u)).cloned());
        Some(changed)
    }

    /// Forgets the instances not heard from since `now - EXPIRY`; returns their users.
    pub fn expire(&mut self, now: Instant) -> Vec<Arc<str>> {
        let mut gone = Vec::new();
        self.instances.retain(|_, instance| {
            let alive = now.saturating_duration_since(instance.seen) < EXPIRY;
            if !alive {
                gone.extend(instance.parts.drain(..).flat_map(HashMap::into_keys));
            }
            alive
        });
        gone
    }

    /// `user`'s streams on the other instances.
    pub fn elsewhere(&self, user: &str) -> Elsewhere {
        let mut total = Elsewhere::default();
        for instance in self.instances.values() {
            let n: u32 = instance.parts.iter().filter_map(|p| p.get(user)).sum();
            if n > 0 {
                total.connections += n as usize;
                total.instances += 1;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn part(instance: &str, part: u32, parts: u32, users: &[(&str, u32)]) -> Snapshot {
        Snapshot {
            instance: instance.into(),
            step: "v3".into(),
            part,
            parts,
            users: users.iter().map(|(u, n)| ((*u).to_owned(), *n)).collect(),
        }
    }

    fn names(mut users: Vec<Arc<str>>) -> Vec<String> {
        users.sort();
        users.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn counts_streams_and_instances_and_names_what_changed() {
        let mut tally = Tally::default();
        let now = Instant::now();
        let changed = tally.apply(part("a", 0, 1, &[("alice", 2)]), now).unwrap();
        assert_eq!(names(changed), ["alice"]);
        tally.apply(part("b", 0, 1, &[("alice", 1), ("bob", 1)]), now);
        assert_eq!(
            tally.elsewhere("alice"),
            Elsewhere {
                connections: 3,
                instances: 2
            }
        );
        // The same snapshot again changes nothing; a new one names who moved.
        assert!(
            tally
                .apply(part("b", 0, 1, &[("alice", 1), ("bob", 1)]), now)
                .unwrap()
                .is_empty()
        );
        let changed = tally.apply(part("b", 0, 1, &[("alice", 2)]), now).unwrap();
        assert_eq!(names(changed), ["alice", "bob"]);
        assert_eq!(tally.elsewhere("bob"), Elsewhere::default());
    }

    #[test]
    fn a_shorter_snapshot_drops_the_parts_beyond_it() {
        let mut tally = Tally::default();
        let now = Instant::now();
        tally.apply(part("a", 0, 2, &[("alice", 1)]), now);
        tally.apply(part("a", 1, 2, &[("zoe", 1)]), now);
        assert_eq!(tally.elsewhere("zoe").connections, 1);
        let changed = tally.apply(part("a", 0, 1, &[("alice", 1)]), now).unwrap();
        assert_eq!(names(changed), ["zoe"]);
        assert_eq!(tally.elsewhere("zoe").connections, 0);
        assert_eq!(tally.elsewhere("alice").connections, 1);
    }

    #[test]
    fn a_silent_instance_expires_and_a_heard_one_does_not() {
        let mut tally = Tally::default();
        let start = Instant::now();
        tally.apply(part("quiet", 0, 1, &[("alice", 1)]), start);
        tally.apply(part("talking", 0, 1, &[("bob", 1)]), start);
        let later = start + EXPIRY - Duration::from_millis(1);
        assert!(tally.expire(later).is_empty());
        tally.apply(part("talking", 0, 1, &[("bob", 1)]), later);
        let gone = tally.expire(start + EXPIRY);
        assert_eq!(names(gone), ["alice"]);
        assert_eq!(tally.elsewhere("alice"), Elsewhere::default());
        assert_eq!(tally.elsewhere("bob").instances, 1);
    }

    #[test]
    fn instances_beyond_the_cap_are_not_counted() {
        let mut tally = Tally::default();
        let now = Instant::now();
        for i in 0..MAX_INSTANCES {
            assert!(
                tally
                    .apply(part(&format!("i{i}"), 0, 1, &[]), now)
                    .is_some()
            );
        }
        assert!(
            tally
                .apply(part("one-more", 0, 1, &[("alice", 1)]), now)
                .is_none()
        );
        assert_eq!(tally.elsewhere("alice"), Elsewhere::default());
        assert!(
            tally
                .apply(part("i0", 0, 1, &[("alice", 1)]), now)
                .is_some()
        );
    }
}
