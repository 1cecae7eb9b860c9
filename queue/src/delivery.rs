//! Delivery rules of a consumer group, written once for every engine.
//!
//! An engine supplies a [`PendingStore`]: the pending entries of one group (messages the group
//! has taken and not finished), read and written inside the engine's atomic step (a sled write
//! set under the queue's lock, a group entry changed by compare-and-set). The functions here
//! decide everything else: when a taken message waits for its delay or behind its key, what a
//! lease does to attempts and lease numbers, what an expired lease or a nack does once the
//! attempts are used up (dead-lettering, and with which error), which receipts are stale, how
//! finishing a message lets the next one of its key through, and how a replayed dead letter
//! comes back. They do no I/O of their own; record encodings stay with each engine.
//!
//! Invariants the rules keep (the property test below checks them):
//! - Of the pending entries sharing a key, at most one is not [`PendingState::Blocked`], and it
//!   is the one with the lowest id.
//! - A message is delivered at most `max_deliver` times before it is dead-lettered; its lease
//!   number grows with every delivery and never repeats, so an old receipt stays stale.

use crate::model::{MAX_ERROR_LEN, ReceiptParts, SaturatingMillis};
use crate::{Delivery, GroupName, MessageId, Nack, QueueConfig, QueueError, QueueLimits, Receipt};

/// Why a message whose lease ran out with its last attempt was dead-lettered.
pub(crate) const LEASE_EXPIRED: &str = "lease expired";
/// Why a message due again without attempts left, and without an error of its own, was
/// dead-lettered.
const MAX_DELIVER_REACHED: &str = "max_deliver reached";
/// Why a message nacked on its last attempt, without an error, was dead-lettered.
const NACKED: &str = "nacked";

/// Where a pending message stands in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingState {
    /// Deliverable from `due_at` (delayed, nacked, or replayed).
    Waiting,
    /// Leased to a consumer until `due_at`; due again then, for redelivery.
    Leased,
    /// Behind an earlier message with the same key; not due until that one is finished.
    /// `due_at` keeps the message's own earliest delivery time.
    Blocked,
}

/// A message a group has taken and not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub state: PendingState,
    pub due_at: u64,
    /// Deliveries so far (reset by a dead-letter replay).
    pub attempt: u32,
    /// Deliveries ever, naming the current (or last) lease in receipts; never reset.
    pub lease: u64,
    pub key: Option<String>,
    pub last_error: Option<String>,
}

impl Pending {
    /// Whether the entry falls due at `due_at` (a blocked one waits for its key instead).
    pub(crate) fn is_due_by_time(&self) -> bool {
        match self.state {
            PendingState::Waiting | PendingState::Leased => true,
            PendingState::Blocked => false,
        }
    }
}

/// The pending entries of one group, inside one engine's atomic step.
pub(crate) trait PendingStore {
    type Error;
    /// The pending entry of message `id`.
    fn get(&mut self, id: u64) -> Result<Option<Pending>, Self::Error>;
    /// Stores `pending` for `id` in place of `previous` (what is stored now; `None` for a
    /// message the group takes now), keeping any index of due times and keys in step.
    fn put(
        &mut self,
        id: u64,
        pending: &Pending,
        previous: Option<&Pending>,
    ) -> Result<(), Self::Error>;
    /// Removes the entry `previous` of `id`.
    fn remove(&mut self, id: u64, previous: &Pending) -> Result<(), Self::Error>;
    /// Whether a message with `key` is pending.
    fn key_busy(&mut self, key: &str) -> Result<bool, Self::Error>;
    /// The pending message with `key` and the lowest id.
    fn first_of_key(&mut self, key: &str) -> Result<Option<(u64, Pending)>, Self::Error>;
}

/// Messages published before this time are past the queue's retention by age.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetentionCut(Option<u64>);

impl RetentionCut {
    pub(crate) fn new(config: &QueueConfig, now: u64) -> Self {
        RetentionCut(
            config
                .retention
                .max_age
                .map(|age| now.saturating_sub(age.saturating_ms())),
        )
    }

    pub(crate) fn too_old(&self, published_at: u64) -> bool {
        self.0.is_some_and(|cut| published_at < cut)
    }
}

/// What a new message past the group's cursor became.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// Stored as pending: delayed, or behind an earlier message with its key.
    Held,
    /// Deliverable now: lease it with [`lease`] (nothing is stored yet).
    Ready(Pending),
}

/// Takes message `id` (with `key`, deliverable from `due_at`) into the group.
pub(crate) fn admit<S: PendingStore>(
    store: &mut S,
    id: u64,
    key: Option<String>,
    due_at: u64,
    now: u64,
) -> Result<Admitted, S::Error> {
    let pending = waiting_or_blocked(store, key, due_at, 0)?;
    if pending.state == PendingState::Blocked || due_at > now {
        store.put(id, &pending, None)?;
        return Ok(Admitted::Held);
    }
    Ok(Admitted::Ready(pending))
}

/// What to do with a pending entry that fell due, given its message (`None` when retention
/// dropped it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due<M> {
    /// Nothing left to deliver: [`finish`] it.
    Gone,
    /// No attempts left: dead-letter `message` with `error`, then [`finish`] it.
    Exhausted { message: M, error: String },
    /// Lease it again.
    Deliver(M),
}

pub(crate) fn due<M>(pending: &Pending, message: Option<M>, max_deliver: u32) -> Due<M> {
    let Some(message) = message else {
        return Due::Gone;
    };
    if pending.attempt < max_deliver {
        return Due::Deliver(message);
    }
    let error = match pending.state {
        PendingState::Leased => LEASE_EXPIRED.to_owned(),
        PendingState::Waiting | PendingState::Blocked => pending
            .last_error
            .clone()
            .unwrap_or_else(|| MAX_DELIVER_REACHED.to_owned()),
    };
    Due::Exhausted { message, error }
}

/// Leases `id` to a consumer: one more attempt, a new lease number, due again at the lease's
/// end. `previous` is the stored entry (`None` for an [`Admitted::Ready`] message).
pub(crate) fn lease<S: PendingStore>(
    store: &mut S,
    id: u64,
    mut pending: Pending,
    previous: Option<&Pending>,
    now: u64,
    lease_ms: u64,
) -> Result<Pending, S::Error> {
    pending.state = PendingState::Leased;
    pending.attempt += 1;
    pending.lease += 1;
    pending.due_at = now.saturating_add(lease_ms);
    store.put(id, &pending, previous)?;
    Ok(pending)
}

/// The delivery a lease hands out.
pub(crate) fn delivery(
    group: &GroupName,
    id: u64,
    leased: &Pending,
    body: bytes::Bytes,
    key: Option<String>,
    published_at_ms: u64,
) -> Delivery {
    Delivery {
        id: MessageId(id),
        receipt: Receipt::new(group, MessageId(id), leased.lease),
        body,
        attempt: leased.attempt,
        key,
        published_at_ms,
    }
}

/// Removes a pending entry (acked, dead-lettered or dropped); when it was its key's active
/// entry, the next message of that key becomes due at its own time.
pub(crate) fn finish<S: PendingStore>(
    store: &mut S,
    id: u64,
    pending: &Pending,
) -> Result<(), S::Error> {
    store.remove(id, pending)?;
    let Some(key) = &pending.key else {
        return Ok(());
    };
    if pending.state == PendingState::Blocked {
        return Ok(());
    }
    if let Some((next_id, next)) = store.first_of_key(key)?
        && next.state == PendingState::Blocked
    {
        let waiting = Pending {
            state: PendingState::Waiting,
            ..next.clone()
        };
        store.put(next_id, &waiting, Some(&next))?;
    }
    Ok(())
}

/// What an ack or nack of one receipt did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The receipt no longer names the current lease; nothing changed.
    Stale,
    /// Acked: finished.
    Acked(Pending),
    /// Nacked: waiting again until the nack's delay passed.
    Retried,
    /// Nacked on its last attempt: dead-letter the message with `error` and [`finish`] it
    /// (only [`finish`] it when the message is gone).
    Exhausted { pending: Pending, error: String },
}

/// Acks (`nack` is `None`) or nacks the lease `part` names. A nack's error is kept with the
/// pending entry cut to `kept_error` bytes (the dead letter gets up to [`MAX_ERROR_LEN`]).
pub(crate) fn settle<S: PendingStore>(
    store: &mut S,
    part: &ReceiptParts,
    nack: Option<&Nack>,
    max_deliver: u32,
    kept_error: usize,
    now: u64,
) -> Result<Settled, S::Error> {
    let id = part.id.0;
    let current = store
        .get(id)?
        .filter(|p| p.state == PendingState::Leased && p.lease == part.lease);
    let Some(pending) = current else {
        return Ok(Settled::Stale);
    };
    let Some(nack) = nack else {
        finish(store, id, &pending)?;
        return Ok(Settled::Acked(pending));
    };
    let error = nack.error.as_deref().map(|e| truncate(e, MAX_ERROR_LEN));
    if pending.attempt >= max_deliver {
        let error = error
            .or(pending.last_error.clone())
            .unwrap_or_else(|| NACKED.to_owned());
        return Ok(Settled::Exhausted { pending, error });
    }
    let mut waiting = pending.clone();
    waiting.state = PendingState::Waiting;
    waiting.due_at = now.saturating_add(nack.delay.saturating_ms());
    if let Some(error) = error {
        waiting.last_error = Some(truncate(&error, kept_error));
    }
    store.put(id, &waiting, Some(&pending))?;
    Ok(Settled::Retried)
}

/// Puts dead letter `id` back: fresh attempts, due now (or behind its key), its lease
/// numbering continued from `lease` so that receipts are never reused.
pub(crate) fn replay<S: PendingStore>(
    store: &mut S,
    id: u64,
    key: Option<String>,
    lease: u64,
    now: u64,
) -> Result<Pending, S::Error> {
    let pending = waiting_or_blocked(store, key, now, lease)?;
    store.put(id, &pending, None)?;
    Ok(pending)
}

/// A message the group takes with fresh attempts: waiting for `due_at`, or blocked while a
/// message with its key is pending.
fn waiting_or_blocked<S: PendingStore>(
    store: &mut S,
    key: Option<String>,
    due_at: u64,
    lease: u64,
) -> Result<Pending, S::Error> {
    let busy = match &key {
        Some(key) => store.key_busy(key)?,
        None => false,
    };
    Ok(Pending {
        state: if busy {
            PendingState::Blocked
        } else {
            PendingState::Waiting
        },
        due_at,
        attempt: 0,
        lease,
        key,
        last_error: None,
    })
}

/// Checks an ack (`nack` is `None`) or nack before anything is read, and takes its receipts
/// apart.
pub(crate) fn check_settle(
    receipts: &[Receipt],
    nack: Option<&Nack>,
    limits: &QueueLimits,
) -> Result<Vec<ReceiptParts>, QueueError> {
    if let Some(nack) = nack {
        limits.check_nack(nack)?;
    }
    if receipts.is_empty() {
        return Err(QueueError::invalid("no receipts given"));
    }
    if receipts.len() > limits.max_pull {
        return Err(QueueError::TooLarge(format!(
            "at most {} receipts at once",
            limits.max_pull
        )));
    }
    receipts.iter().map(Receipt::parts).collect()
}

/// `text` cut to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    /// The simplest store: the group's entries in a map.
    #[derive(Debug, Default)]
    struct Map(BTreeMap<u64, Pending>);

    impl PendingStore for Map {
        type Error = Infallible;
        fn get(&mut self, id: u64) -> Result<Option<Pending>, Infallible> {
            Ok(self.0.get(&id).cloned())
        }
        fn put(&mut self, id: u64, p: &Pending, _: Option<&Pending>) -> Result<(), Infallible> {
            self.0.insert(id, p.clone());
            Ok(())
        }
        fn remove(&mut self, id: u64, _: &Pending) -> Result<(), Infallible> {
            self.0.remove(&id);
            Ok(())
        }
        fn key_busy(&mut self, key: &str) -> Result<bool, Infallible> {
            Ok(self.0.values().any(|p| p.key.as_deref() == Some(key)))
        }
        fn first_of_key(&mut self, key: &str) -> Result<Option<(u64, Pending)>, Infallible> {
            Ok(self
                .0
                .iter()
                .find(|(_, p)| p.key.as_deref() == Some(key))
                .map(|(id, p)| (*id, p.clone())))
        }
    }

    fn part(id: u64, lease: u64) -> ReceiptParts {
        ReceiptParts {
            group: GroupName::default(),
            id: MessageId(id),
            lease,
        }
    }

    fn ok<T>(result: Result<T, Infallible>) -> T {
        match result {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    #[test]
    fn messages_wait_for_their_delay_and_their_key() {
        let mut store = Map::default();
        let ready = ok(admit(&mut store, 1, Some("k".into()), 10, 10));
        let Admitted::Ready(first) = ready else {
            panic!("due now: {ready:?}");
        };
        let first = ok(lease(&mut store, 1, first, None, 10, 5));
        assert_eq!((first.attempt, first.lease, first.due_at), (1, 1, 15));
        assert_eq!(
            ok(admit(&mut store, 2, Some("k".into()), 0, 10)),
            Admitted::Held
        );
        assert_eq!(store.0[&2].state, PendingState::Blocked);
        assert_eq!(ok(admit(&mut store, 3, None, 20, 10)), Admitted::Held);
        assert_eq!(store.0[&3].state, PendingState::Waiting);

        assert!(matches!(
            ok(settle(&mut store, &part(1, 1), None, 5, 256, 11)),
            Settled::Acked(_)
        ));
        assert_eq!(store.0[&2].state, PendingState::Waiting);
        assert_eq!(
            ok(settle(&mut store, &part(1, 1), None, 5, 256, 11)),
            Settled::Stale
        );
    }

    #[test]
    fn exhausted_messages_name_why() {
        let leased = Pending {
            state: PendingState::Leased,
            due_at: 0,
            attempt: 3,
            lease: 3,
            key: None,
            last_error: Some("boom".into()),
        };
        let expired = due(&leased, Some(()), 3);
        assert_eq!(
            expired,
            Due::Exhausted {
                message: (),
                error: LEASE_EXPIRED.into()
            }
        );
        let waiting = Pending {
            state: PendingState::Waiting,
            ..leased.clone()
        };
        assert!(
            matches!(due(&waiting, Some(()), 3), Due::Exhausted { error, .. } if error == "boom")
        );
        assert_eq!(due(&waiting, Some(()), 4), Due::Deliver(()));
        assert_eq!(due::<()>(&waiting, None, 4), Due::Gone);

        let mut store = Map::default();
        store.0.insert(7, leased);
        let nack = Nack {
            delay: Duration::ZERO,
            error: None,
        };
        assert!(matches!(
            ok(settle(&mut store, &part(7, 3), Some(&nack), 3, 256, 0)),
            Settled::Exhausted { error, .. } if error == "boom"
        ));
    }

    #[test]
    fn settle_checks_come_before_reads() {
        let limits = QueueLimits {
            max_pull: 1,
            ..QueueLimits::default()
        };
        let receipt = Receipt::new(&GroupName::default(), MessageId(1), 1);
        assert!(check_settle(std::slice::from_ref(&receipt), None, &limits).is_ok());
        assert!(check_settle(&[], None, &limits).is_err());
        assert!(matches!(
            check_settle(&[receipt.clone(), receipt.clone()], None, &limits),
            Err(QueueError::TooLarge(_))
        ));
        assert!(check_settle(&[Receipt::from_text("x")], None, &limits).is_err());
        let slow = Nack {
            delay: limits.max_delay + Duration::from_secs(1),
            error: None,
        };
        assert!(check_settle(std::slice::from_ref(&receipt), Some(&slow), &limits).is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Publish { key: Option<u8>, delay: u64 },
        Pull,
        Ack(usize),
        Nack(usize),
        Tick(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (proptest::option::of(0u8..3), 0u64..3)
                .prop_map(|(key, delay)| Op::Publish { key, delay }),
            Just(Op::Pull),
            (0usize..8).prop_map(Op::Ack),
            (0usize..8).prop_map(Op::Nack),
            (1u64..4).prop_map(Op::Tick),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A small engine over the rules: whatever consumers do, keys keep their order and
        /// nothing is delivered more than `max_deliver` times.
        #[test]
        fn keys_stay_ordered_and_attempts_bounded(ops in proptest::collection::vec(op(), 1..80)) {
            const MAX_DELIVER: u32 = 3;
            const LEASE: u64 = 2;
            let mut store = Map::default();
            let mut messages: Vec<Option<String>> = Vec::new();
            let mut cursor = 0usize;
            let mut receipts: Vec<ReceiptParts> = Vec::new();
            let mut delivered: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            let mut dead: Vec<u64> = Vec::new();
            let mut acked: Vec<u64> = Vec::new();
            let mut now = 0u64;
            let mut publish_due: Vec<u64> = Vec::new();
            for op in ops {
                match op {
                    Op::Publish { key, delay } => {
                        messages.push(key.map(|k| format!("k{k}")));
                        publish_due.push(now + delay);
                    }
                    Op::Tick(by) => now += by,
                    Op::Pull => {
                        let mut due_now: Vec<(u64, u64)> = store.0.iter()
                            .filter(|(_, p)| p.is_due_by_time() && p.due_at <= now)
                            .map(|(id, p)| (p.due_at, *id)).collect();
                        due_now.sort_unstable();
                        let mut leased = Vec::new();
                        for (_, id) in due_now {
                            let pending = store.0[&id].clone();
                            match due(&pending, Some(()), MAX_DELIVER) {
                                Due::Gone => unreachable!(),
                                Due::Exhausted { .. } => {
                                    dead.push(id);
                                    ok(finish(&mut store, id, &pending));
                                }
                                Due::Deliver(()) => {
                                    leased.push(ok(lease(&mut store, id, pending.clone(), Some(&pending), now, LEASE)));
                                    leased.last().map(|p| (id, p.lease)).into_iter().for_each(|(id, l)| receipts.push(part(id, l)));
                                    delivered.entry(id).or_default().push(store.0[&id].lease);
                                }
                            }
                        }
                        while cursor < messages.len() {
                            let id = cursor as u64;
                            cursor += 1;
                            if let Admitted::Ready(pending) = ok(admit(&mut store, id, messages[id as usize].clone(), publish_due[id as usize], now)) {
                                let leased = ok(lease(&mut store, id, pending, None, now, LEASE));
                                receipts.push(part(id, leased.lease));
                                delivered.entry(id).or_default().push(leased.lease);
                            }
                        }
                    }
                    Op::Ack(index) | Op::Nack(index) if index >= receipts.len() => {}
                    Op::Ack(index) => {
                        let receipt = receipts[index].clone();
                        if let Settled::Acked(_) = ok(settle(&mut store, &receipt, None, MAX_DELIVER, 256, now)) {
                            acked.push(receipt.id.0);
                        }
                    }
                    Op::Nack(index) => {
                        let receipt = receipts[index].clone();
                        let nack = Nack { delay: Duration::from_millis(1), error: Some("no".into()) };
                        if let Settled::Exhausted { pending, .. } = ok(settle(&mut store, &receipt, Some(&nack), MAX_DELIVER, 256, now)) {
                            dead.push(receipt.id.0);
                            ok(finish(&mut store, receipt.id.0, &pending));
                        }
                    }
                }
                // Of each key's pending entries only the lowest id is not blocked.
                let mut seen_key: BTreeMap<String, ()> = BTreeMap::new();
                for p in store.0.values() {
                    if let Some(key) = &p.key {
                        let first = seen_key.insert(key.clone(), ()).is_none();
                        prop_assert_eq!(first, p.state != PendingState::Blocked, "{:?}", store.0);
                    }
                }
            }
            for leases in delivered.values() {
                prop_assert!(leases.len() <= MAX_DELIVER as usize);
                prop_assert!(leases.windows(2).all(|w| w[0] < w[1]));
            }
            // Every message taken is in exactly one place.
            let taken = cursor;
            prop_assert_eq!(store.0.len() + acked.len() + dead.len(), taken);
        }
    }
}
