//! A write set over the tree: the changes of one operation, readable before they are applied,
//! then applied as one atomic sled batch.
//!
//! sled transactions cannot iterate, and queue operations need ordered reads ("the first entry
//! of this key queue") that see their own earlier writes. Operations on one queue are
//! serialised by the engine's queue lock, so reading the tree directly is consistent; this
//! overlay adds read-your-writes, and the batch makes the whole operation atomic on disk.
//!
//! The due index (which pending entries become deliverable when) lives in memory, in the
//! [`Stripe`] of the queue's lock: it is derived from the pending entries on disk, loaded per
//! group on first use, and changed only after the batch that changes those entries is applied.
//! Keeping it off disk halves the writes of a pull and of an ack.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use sled::IVec;

use super::keys::{PENDING, Scope, trailing_u64};
use crate::GroupName;
use crate::delivery::Pending;

/// A key and its value.
pub(super) type Entry = (Vec<u8>, Vec<u8>);

/// In-memory state guarded by one queue lock: the due index of each loaded group, keyed by
/// the group's pending-entry prefix, as `(due_at, seq)` pairs.
#[derive(Debug, Default)]
pub(super) struct Stripe {
    due: HashMap<Vec<u8>, BTreeSet<(u64, u64)>>,
}

/// A change to the due index, applied once the batch is.
#[derive(Debug)]
struct DueChange {
    group: Vec<u8>,
    insert: bool,
    entry: (u64, u64),
}

#[derive(Debug)]
pub(super) struct WriteSet<'a> {
    tree: &'a sled::Tree,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    stripe: &'a mut Stripe,
    due_changes: Vec<DueChange>,
}

impl<'a> WriteSet<'a> {
    pub(super) fn new(tree: &'a sled::Tree, stripe: &'a mut Stripe) -> Self {
        WriteSet {
            tree,
            writes: BTreeMap::new(),
            stripe,
            due_changes: Vec::new(),
        }
    }

    /// Up to `limit` due-index entries of `group` due at or before `now`, earliest first, as
    /// they stand before this operation's changes. Call it before changing the group's index.
    pub(super) fn due_until(
        &mut self,
        scope: &Scope,
        group: &GroupName,
        now: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, sled::Error> {
        let prefix = scope.group_prefix(PENDING, group);
        if !self.stripe.due.contains_key(&prefix) {
            let mut index = BTreeSet::new();
            for item in self.tree.scan_prefix(&prefix) {
                let (key, raw) = item?;
                if let Some(pending) = Pending::decode(&raw).filter(Pending::is_due_by_time) {
                    index.insert((pending.due_at, trailing_u64(&key)));
                }
            }
            self.stripe.due.insert(prefix.clone(), index);
        }
        Ok(self.stripe.due[&prefix]
            .range(..=(now, u64::MAX))
            .take(limit)
            .copied()
            .collect())
    }

    pub(super) fn due_insert(&mut self, scope: &Scope, group: &GroupName, at: u64, seq: u64) {
        self.due_changes.push(DueChange {
            group: scope.group_prefix(PENDING, group),
            insert: true,
            entry: (at, seq),
        });
    }

    pub(super) fn due_remove(&mut self, scope: &Scope, group: &GroupName, at: u64, seq: u64) {
        self.due_changes.push(DueChange {
            group: scope.group_prefix(PENDING, group),
            insert: false,
            entry: (at, seq),
        });
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.tree.get(key)?.map(|v| v.to_vec())),
        }
    }

    pub(super) fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub(super) fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The smallest live key starting with `prefix`, and its value.
    pub(super) fn first_with_prefix(&self, prefix: &[u8]) -> Result<Option<Entry>, sled::Error> {
        let mut stored = None;
        for item in self.tree.scan_prefix(prefix) {
            let (key, value): (IVec, IVec) = item?;
            match self.writes.get(key.as_ref()) {
                // Removed or overwritten here: the overlay answers for this key below.
                Some(_) => continue,
                None => {
                    stored = Some((key.to_vec(), value.to_vec()));
                    break;
                }
            }
        }
        let overlaid = self
            .writes
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .find_map(|(key, value)| value.as_ref().map(|v| (key.clone(), v.clone())));
        Ok(match (stored, overlaid) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Applies every change at once, then brings the loaded due indexes up to date. (A group
    /// whose index is not loaded yet will load the applied state from disk.)
    pub(super) fn apply(self) -> Result<(), sled::Error> {
        if !self.writes.is_empty() {
            let mut batch = sled::Batch::default();
            for (key, value) in self.writes {
                match value {
                    Some(value) => batch.insert(key, value),
                    None => batch.remove(key),
                }
            }
            self.tree.apply_batch(batch)?;
        }
        for change in self.due_changes {
            if let Some(index) = self.stripe.due.get_mut(&change.group) {
                if change.insert {
                    index.insert(change.entry);
                } else {
                    index.remove(&change.entry);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_reads_its_own_writes() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        tree.insert(b"k1", b"stored1").unwrap();
        tree.insert(b"k3", b"stored3").unwrap();
        let mut stripe = Stripe::default();
        let mut writes = WriteSet::new(&tree, &mut stripe);
        assert_eq!(
            writes.first_with_prefix(b"k").unwrap().unwrap().0,
            b"k1".to_vec()
        );
        writes.remove(b"k1".to_vec());
        writes.insert(b"k2".to_vec(), b"new".to_vec());
        assert_eq!(writes.get(b"k1").unwrap(), None);
        assert_eq!(
            writes.first_with_prefix(b"k").unwrap(),
            Some((b"k2".to_vec(), b"new".to_vec()))
        );
        writes.remove(b"k2".to_vec());
        assert_eq!(
            writes.first_with_prefix(b"k").unwrap().unwrap().0,
            b"k3".to_vec()
        );
        writes.apply().unwrap();
        assert_eq!(tree.get(b"k1").unwrap(), None);
        assert_eq!(tree.len(), 1);
    }
}
