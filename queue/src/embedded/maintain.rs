//! Maintenance and the overview of a queue.
//!
//! A message is reclaimed once every group is past it: below every group's cursor and not
//! pending in any group (dead letters carry their own copy of the body). A queue that has no
//! group yet keeps its messages, for the first group to come. Retention drops messages older
//! than `max_age` and all but the newest `max_messages` sequence numbers, consumed or not;
//! groups skip dropped messages.

use super::Inner;
use super::keys::{
    CONFIG, DEAD, DEDUP_TIME, GROUP, MESSAGE, PENDING, Scope, StoredMessage, decode_u64,
    parse_scope, trailing_u64,
};
use super::writes::WriteSet;
use crate::engine::MaintenanceReport;
use crate::model::SaturatingMillis;
use crate::{GroupInfo, GroupName, QueueConfig, QueueError, QueueInfo};

/// Most deletions of one kind one pass makes in one queue, so that a pass never builds a huge
/// batch or holds the queue's lock long; the next pass continues.
const PASS_LIMIT: usize = 10_000;

impl Inner {
    pub(super) fn maintain_all(&self) -> Result<MaintenanceReport, QueueError> {
        let mut report = MaintenanceReport::default();
        let queues: Vec<_> = self
            .tree
            .scan_prefix([CONFIG])
            .keys()
            .filter_map(|key| key.ok().and_then(|key| parse_scope(&key)))
            .collect();
        for (ns, queue) in queues {
            let scope = Scope::new(&ns, &queue);
            // Pass after pass while passes come back full, each under the lock briefly, so
            // that reclaiming keeps up with any publish rate.
            loop {
                let now = self.clock.now_ms();
                let (pass, _) = self.locked(&scope, |writes| {
                    let Some(config) = self.config(&scope)? else {
                        return Ok(MaintenanceReport::default());
                    };
                    self.maintain_locked(writes, &scope, &config, now)
                })?;
                report.consumed += pass.consumed;
                report.expired += pass.expired;
                report.dedup_forgotten += pass.dedup_forgotten;
                let full = (pass.consumed + pass.expired) as usize >= PASS_LIMIT
                    || pass.dedup_forgotten as usize >= PASS_LIMIT;
                if !full {
                    break;
                }
            }
        }
        Ok(report)
    }

    fn maintain_locked(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        config: &QueueConfig,
        now: u64,
    ) -> Result<MaintenanceReport, QueueError> {
        let mut report = MaintenanceReport::default();
        let last = self
            .tree
            .get(scope.last_seq())?
            .map_or(0, |raw| decode_u64(&raw));

        // Everything below `low_water` is done for every group.
        let mut low_water: Option<u64> = None;
        for item in self.tree.scan_prefix(scope.prefix(GROUP)) {
            let (raw_key, cursor) = item?;
            let name = std::str::from_utf8(&raw_key[scope.prefix(GROUP).len()..]).unwrap_or("");
            let Ok(group) = GroupName::parse(name) else {
                continue;
            };
            let mut group_low = decode_u64(&cursor);
            if let Some(first) = self
                .tree
                .scan_prefix(scope.group_prefix(PENDING, &group))
                .keys()
                .next()
            {
                group_low = group_low.min(trailing_u64(&first?));
            }
            low_water = Some(low_water.map_or(group_low, |low| low.min(group_low)));
        }
        let count_floor = config
            .retention
            .max_messages
            .map(|max| last.saturating_sub(max) + 1);
        let oldest_kept = config
            .retention
            .max_age
            .map(|age| now.saturating_sub(age.saturating_ms()));

        for item in self
            .tree
            .scan_prefix(scope.prefix(MESSAGE))
            .take(PASS_LIMIT)
        {
            let (raw_key, raw) = item?;
            let seq = trailing_u64(&raw_key);
            let consumed = low_water.is_some_and(|low| seq < low);
            let over_count = count_floor.is_some_and(|floor| seq < floor);
            let too_old = oldest_kept.is_some_and(|cutoff| {
                StoredMessage::decode(&raw).is_some_and(|m| m.published_at < cutoff)
            });
            if !(consumed || over_count || too_old) {
                // Sequence order is publish order, so nothing further is due either, except
                // messages put back by a dead-letter replay, which the next passes reach.
                break;
            }
            writes.remove(raw_key.to_vec());
            if over_count || too_old {
                report.expired += 1;
            } else {
                report.consumed += 1;
            }
        }

        // Dedup ids in the order they expire; an id published again since has a newer time
        // entry and keeps its dedup entry.
        let window = config.dedup_window.saturating_ms();
        let times = scope.prefix(DEDUP_TIME);
        for item in self.tree.scan_prefix(&times).take(PASS_LIMIT) {
            let (raw_key, _) = item?;
            let rest = &raw_key[times.len()..];
            let at = decode_u64(rest.get(..8).unwrap_or_default());
            if rest.len() >= 8 && at.saturating_add(window) > now {
                break;
            }
            writes.remove(raw_key.to_vec());
            report.dedup_forgotten += 1;
            let Some(id) = rest.get(8..).and_then(|id| std::str::from_utf8(id).ok()) else {
                continue;
            };
            let entry = scope.dedup(id);
            if let Some(raw) = self.tree.get(&entry)?
                && decode_u64(raw.get(8..16).unwrap_or_default()) == at
            {
                writes.remove(entry);
            }
        }
        Ok(report)
    }

    pub(super) fn info(&self, scope: &Scope) -> Result<Option<QueueInfo>, QueueError> {
        let Some(config) = self.config(scope)? else {
            return Ok(None);
        };
        let messages = self.tree.scan_prefix(scope.prefix(MESSAGE)).count() as u64;
        let mut groups = Vec::new();
        for item in self.tree.scan_prefix(scope.prefix(GROUP)).keys() {
            let raw_key = item?;
            let name = std::str::from_utf8(&raw_key[scope.prefix(GROUP).len()..]).unwrap_or("");
            let Ok(name) = GroupName::parse(name) else {
                continue;
            };
            let pending = self
                .tree
                .scan_prefix(scope.group_prefix(PENDING, &name))
                .count() as u64;
            let dead = self
                .tree
                .scan_prefix(scope.group_prefix(DEAD, &name))
                .count() as u64;
            groups.push(GroupInfo {
                name,
                pending,
                dead,
            });
        }
        Ok(Some(QueueInfo {
            config,
            messages,
            groups,
        }))
    }
}
