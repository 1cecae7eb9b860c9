//! `setTimeout` and `setInterval` on the executor's event loop. The queue lives here, in Rust;
//! the activation's loop (`Isolate::drive`) sleeps until the earliest timer is due, the SDK
//! answers, or the deadline passes, and fires one timer at a time with microtasks run between
//! them, as browsers do.
//!
//! Timers belong to one activation: they can only be set while it runs, an activation waits
//! for its pending timers (up to its deadline) before it ends, and whatever is left when it
//! ends (a deadline, an error) is cleared, so nothing fires into the next activation.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rquickjs::{Function, Persistent};

/// Most timers one activation may have pending at once.
pub const MAX_PENDING_TIMERS: usize = 10_000;
/// The longest delay; like browsers, anything longer (or negative, or NaN) means no delay.
const MAX_DELAY_MS: f64 = 2_147_483_647.0;
/// The shortest interval, so that `setInterval(f, 0)` cannot monopolise the thread.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Why a timer could not be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmError {
    NotRunning,
    TooMany,
}

/// How a timer repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    Once,
    Every(Duration),
}

/// One timer due to fire.
pub struct Due {
    pub callback: Persistent<Function<'static>>,
}

struct Timer {
    id: u32,
    callback: Persistent<Function<'static>>,
    repeat: Repeat,
}

/// The pending timers of the running activation, ordered by due time and then by the order
/// they were set.
#[derive(Default)]
pub struct Timers {
    queue: BTreeMap<(Instant, u64), Timer>,
    keys: HashMap<u32, (Instant, u64)>,
    next_id: u32,
    next_seq: u64,
    running: bool,
}

/// A delay in milliseconds from JavaScript as a duration.
pub fn delay(ms: f64) -> Duration {
    if ms.is_nan() || ms <= 0.0 || ms > MAX_DELAY_MS {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(ms / 1000.0)
    }
}

impl Timers {
    /// Allows timers: an activation started.
    pub fn start(&mut self) {
        self.clear();
        self.running = true;
    }

    /// Drops every pending timer and refuses new ones: the activation ended.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.keys.clear();
        self.running = false;
    }

    /// When the earliest timer is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Sets a timer; its id for `clear`.
    pub fn arm(
        &mut self,
        callback: Persistent<Function<'static>>,
        delay: Duration,
        repeat: Repeat,
    ) -> Result<u32, ArmError> {
        if !self.running {
            return Err(ArmError::NotRunning);
        }
        if self.queue.len() >= MAX_PENDING_TIMERS {
            return Err(ArmError::TooMany);
        }
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        let repeat = match repeat {
            Repeat::Once => Repeat::Once,
            Repeat::Every(every) => Repeat::Every(every.max(MIN_INTERVAL)),
        };
        let delay = match repeat {
            Repeat::Once => delay,
            Repeat::Every(every) => every,
        };
        self.insert(
            Instant::now() + delay,
            Timer {
                id,
                callback,
                repeat,
            },
        );
        Ok(id)
    }

    fn insert(&mut self, at: Instant, timer: Timer) {
        let key = (at, self.next_seq);
        self.next_seq += 1;
        self.keys.insert(timer.id, key);
        self.queue.insert(key, timer);
    }

    /// Cancels a timer; unknown ids (already fired, or never set) are ignored.
    pub fn cancel(&mut self, id: u32) {
        if let Some(key) = self.keys.remove(&id) {
            self.queue.remove(&key);
        }
    }

    /// The earliest timer if it is due at `now`; an interval is set again for its next turn.
    pub fn take_due(&mut self, now: Instant) -> Option<Due> {
        let (&key, _) = self.queue.iter().next().filter(|((at, _), _)| *at <= now)?;
        let timer = self.queue.remove(&key)?;
        self.keys.remove(&timer.id);
        let due = Due {
            callback: timer.callback.clone(),
        };
        if let Repeat::Every(every) = timer.repeat {
            self.insert(now + every, timer);
        }
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_clamped_like_browsers() {
        assert_eq!(delay(f64::NAN), Duration::ZERO);
        assert_eq!(delay(-5.0), Duration::ZERO);
        assert_eq!(delay(3e9), Duration::ZERO);
        assert_eq!(delay(1500.0), Duration::from_millis(1500));
    }
}
