//! The vocabulary of the [`crate::Queue`] trait: names, configuration, messages, deliveries,
//! receipts and dead letters, with the validation every engine shares.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::QueueError;

/// Longest queue name, in bytes.
pub const MAX_QUEUE_NAME_LEN: usize = 128;
/// Longest consumer group name, in bytes.
pub const MAX_GROUP_NAME_LEN: usize = 64;
/// Longest ordering key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Longest deduplication id, in bytes.
pub const MAX_DEDUP_ID_LEN: usize = 128;
/// Longest error text kept with a nack or dead letter; longer texts are truncated.
pub const MAX_ERROR_LEN: usize = 4096;
/// The group a pull without a group name consumes as.
pub const DEFAULT_GROUP: &str = "default";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn validate_name(kind: &str, name: &str, max: usize) -> Result<(), QueueError> {
    if name.is_empty() || name.len() > max {
        return Err(QueueError::invalid(format!(
            "{kind} name must be 1 to {max} bytes long"
        )));
    }
    if !name.chars().all(is_name_char) {
        return Err(QueueError::invalid(format!(
            "{kind} name {name:?} may only contain A-Z, a-z, 0-9, '-', '_' and '.'"
        )));
    }
    Ok(())
}

/// A validated queue name: 1 to 128 characters of `A-Z a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    pub fn parse(name: &str) -> Result<Self, QueueError> {
        validate_name("queue", name, MAX_QUEUE_NAME_LEN)?;
        Ok(QueueName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated consumer group name: 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(name: &str) -> Result<Self, QueueError> {
        validate_name("group", name, MAX_GROUP_NAME_LEN)?;
        Ok(GroupName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for GroupName {
    fn default() -> Self {
        GroupName(DEFAULT_GROUP.to_owned())
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a queue keeps messages that are not yet consumed by every group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Drop messages published longer ago than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many messages (the newest).
    pub max_messages: Option<u64>,
}

/// Whether publishing appends `ferrobase.queue.message` events to the namespace change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventEmission {
    /// No events (the default, so that hot queues do not double their writes).
    #[default]
    Off,
    /// One event per published message.
    On,
}

/// Most deliveries a message may get before it is dead-lettered.
pub const MAX_DELIVER: u32 = 1000;
/// Longest dedup window: one day.
pub const MAX_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Longest retention age: about ten years. Ages are kept in milliseconds; this bound keeps
/// every sum with a timestamp far from overflow.
pub const MAX_RETENTION_AGE: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// Most messages a retention count may name: 10^12.
pub const MAX_RETENTION_MESSAGES: u64 = 1_000_000_000_000;

/// A duration in whole milliseconds, saturating where `as_millis()` does not fit 64 bits
/// (validated durations are far below that; this keeps an unvalidated one from wrapping).
pub trait SaturatingMillis {
    fn saturating_ms(&self) -> u64;
}

impl SaturatingMillis for Duration {
    fn saturating_ms(&self) -> u64 {
        u64::try_from(self.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A queue's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Deliveries a message gets before it moves to the group's dead-letter list. 1 to
    /// [`MAX_DELIVER`].
    pub max_deliver: u32,
    pub retention: Retention,
    pub events: EventEmission,
    /// A repeated `dedup_id` within this window is accepted once. At most
    /// [`MAX_DEDUP_WINDOW`].
    pub dedup_window: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_deliver: 5,
            retention: Retention::default(),
            events: EventEmission::Off,
            dedup_window: Duration::from_secs(120),
        }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), QueueError> {
        if !(1..=MAX_DELIVER).contains(&self.max_deliver) {
            return Err(QueueError::invalid(format!(
                "max_deliver must be between 1 and {MAX_DELIVER}"
            )));
        }
        if self.dedup_window > MAX_DEDUP_WINDOW {
            return Err(QueueError::invalid(format!(
                "the dedup window is at most {} seconds",
                MAX_DEDUP_WINDOW.as_secs()
            )));
        }
        if let Some(count) = self.retention.max_messages
            && !(1..=MAX_RETENTION_MESSAGES).contains(&count)
        {
            return Err(QueueError::invalid(format!(
                "retention.max_messages must be between 1 and {MAX_RETENTION_MESSAGES} (leave it unset for no limit)"
            )));
        }
        if let Some(age) = self.retention.max_age
            && (age.is_zero() || age > MAX_RETENTION_AGE)
        {
            return Err(QueueError::invalid(format!(
                "retention.max_age must be between 1 ms and {} seconds (leave it unset for no limit)",
                MAX_RETENTION_AGE.as_secs()
            )));
        }
        Ok(())
    }
}

/// Bounds an engine enforces on requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Largest message body in bytes. Default 256 KiB.
    pub max_message_bytes: usize,
    /// Most messages in one publish. Default 1000.
    pub max_batch: usize,
    /// Most messages one pull returns. Default 1000.
    pub max_pull: usize,
    /// Longest lease. Default 12 h.
    pub max_lease: Duration,
    /// Longest publish or nack delay. Default 7 days.
    pub max_delay: Duration,
    /// Longest long-poll wait. Default 60 s.
    pub max_wait: Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_message_bytes: 256 * 1024,
            max_batch: 1000,
            max_pull: 1000,
            max_lease: Duration::from_secs(12 * 3600),
            max_delay: Duration::from_secs(7 * 24 * 3600),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl QueueLimits {
    /// Refuses a nack whose delay is beyond [`QueueLimits::max_delay`].
    pub fn check_nack(&self, nack: &Nack) -> Result<(), QueueError> {
        if nack.delay > self.max_delay {
            return Err(QueueError::invalid(format!(
                "the nack delay exceeds the limit of {:?}",
                self.max_delay
            )));
        }
        Ok(())
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewMessage {
    pub body: Bytes,
    /// Messages with the same key are delivered in publish order, one at a time per group.
    pub key: Option<String>,
    /// Not delivered before this much time has passed.
    pub delay: Duration,
    /// A repeat of this id within the queue's dedup window is accepted once.
    pub dedup_id: Option<String>,
}

impl NewMessage {
    pub fn new(body: impl Into<Bytes>) -> Self {
        NewMessage {
            body: body.into(),
            ..NewMessage::default()
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup_id = Some(id.into());
        self
    }
}

/// Checks a whole batch before anything is written, so that a batch is all or nothing.
pub fn validate_batch(messages: &[NewMessage], limits: &QueueLimits) -> Result<(), QueueError> {
    if messages.is_empty() {
        return Err(QueueError::invalid("a publish needs at least one message"));
    }
    if messages.len() > limits.max_batch {
        return Err(QueueError::TooLarge(format!(
            "{} messages in one publish; at most {} are allowed",
            messages.len(),
            limits.max_batch
        )));
    }
    for (index, message) in messages.iter().enumerate() {
        if message.body.len() > limits.max_message_bytes {
            return Err(QueueError::TooLarge(format!(
                "message {index} has {} bytes; at most {} are allowed",
                message.body.len(),
                limits.max_message_bytes
            )));
        }
        if let Some(key) = &message.key {
            validate_text(&format!("message {index}: key"), key, MAX_KEY_LEN)?;
        }
        if let Some(id) = &message.dedup_id {
            validate_text(&format!("message {index}: dedup_id"), id, MAX_DEDUP_ID_LEN)?;
        }
        if message.delay > limits.max_delay {
            return Err(QueueError::invalid(format!(
                "message {index}: delay exceeds the limit of {:?}",
                limits.max_delay
            )));
        }
    }
    Ok(())
}

/// Keys and dedup ids: 1 to `max` bytes without control characters (they are stored after a
/// 0x00 separator).
fn validate_text(what: &str, text: &str, max: usize) -> Result<(), QueueError> {
    if text.is_empty() || text.len() > max {
        return Err(QueueError::invalid(format!(
            "{what} must be 1 to {max} bytes long"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(QueueError::invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// What a pull asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub group: GroupName,
    /// At most this many messages (1 to `max_pull`).
    pub max: usize,
    /// When nothing is available, wait up to this long for a message.
    pub wait: Duration,
    /// How long each delivered message stays leased to this consumer before it is redelivered.
    pub lease: Duration,
}

impl Default for PullRequest {
    fn default() -> Self {
        PullRequest {
            group: GroupName::default(),
            max: 10,
            wait: Duration::ZERO,
            lease: Duration::from_secs(30),
        }
    }
}

impl PullRequest {
    pub fn validate(&self, limits: &QueueLimits) -> Result<(), QueueError> {
        if !(1..=limits.max_pull).contains(&self.max) {
            return Err(QueueError::invalid(format!(
                "max must be between 1 and {}",
                limits.max_pull
            )));
        }
        if self.lease < Duration::from_millis(1) || self.lease > limits.max_lease {
            return Err(QueueError::invalid(format!(
                "the lease must be between 1 ms and {:?}",
                limits.max_lease
            )));
        }
        if self.wait > limits.max_wait {
            return Err(QueueError::invalid(format!(
                "wait must be at most {:?}",
                limits.max_wait
            )));
        }
        Ok(())
    }
}

/// A message's id: its sequence number in the queue, strictly increasing in publish order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl MessageId {
    pub fn parse(text: &str) -> Result<Self, QueueError> {
        text.parse()
            .map(MessageId)
            .map_err(|_| QueueError::invalid(format!("{text:?} is not a message id")))
    }
}

/// Proof of one delivery, needed to ack or nack it: `{group}:{id}:{lease}`. A receipt stops
/// working once its message is redelivered, acked or dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(String);

/// A receipt taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptParts {
    pub group: GroupName,
    pub id: MessageId,
    /// Which delivery of the message this receipt proves (never reused for the message).
    pub lease: u64,
}

impl Receipt {
    pub fn new(group: &GroupName, id: MessageId, lease: u64) -> Self {
        Receipt(format!("{group}:{id}:{lease}"))
    }

    /// Wraps client-supplied text; it is checked when parsed.
    pub fn from_text(text: impl Into<String>) -> Self {
        Receipt(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parts(&self) -> Result<ReceiptParts, QueueError> {
        let malformed = || QueueError::invalid(format!("malformed receipt {:?}", self.0));
        let mut fields = self.0.rsplitn(3, ':');
        let lease = fields.next().ok_or_else(malformed)?;
        let id = fields.next().ok_or_else(malformed)?;
        let group = fields.next().ok_or_else(malformed)?;
        Ok(ReceiptParts {
            group: GroupName::parse(group).map_err(|_| malformed())?,
            id: MessageId(id.parse().map_err(|_| malformed())?),
            lease: lease.parse().map_err(|_| malformed())?,
        })
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: MessageId,
    pub receipt: Receipt,
    pub body: Bytes,
    /// 1 on the first delivery to this group, counting up with every redelivery.
    pub attempt: u32,
    pub key: Option<String>,
    pub published_at_ms: u64,
}

/// What an ack or nack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettleOutcome {
    /// Receipts that were current and took effect.
    pub settled: usize,
    /// Receipts that no longer name a current lease (already acked, redelivered after their
    /// lease expired, or dead-lettered); they changed nothing.
    pub stale: Vec<Receipt>,
}

/// How a nack returns its messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nack {
    /// Redeliver no earlier than this.
    pub delay: Duration,
    /// Why the consumer gave up, kept as the message's last error.
    pub error: Option<String>,
}

/// A message that used up its deliveries in one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: MessageId,
    pub body: Bytes,
    pub key: Option<String>,
    pub attempts: u32,
    pub last_error: String,
    pub published_at_ms: u64,
    pub dead_at_ms: u64,
}

/// Which dead letters an operation concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterSelection {
    All,
    Ids(Vec<MessageId>),
}

/// A page of a group's dead-letter list, oldest message first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeadLetterPage {
    pub messages: Vec<DeadLetter>,
    /// Pass as `after` to continue; `None` at the end.
    pub next: Option<MessageId>,
}

/// A queue's configuration and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub config: QueueConfig,
    /// Messages stored: not yet consumed by every group, or kept by retention.
    pub messages: u64,
    pub groups: Vec<GroupInfo>,
}

/// One consumer group of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: GroupName,
    /// Messages the group has taken but not finished: leased, delayed, waiting on their key.
    pub pending: u64,
    /// Messages in the group's dead-letter list.
    pub dead: u64,
}

/// Truncates an error text to [`MAX_ERROR_LEN`] bytes on a character boundary.
pub fn bounded_error(text: &str) -> String {
    if text.len() <= MAX_ERROR_LEN {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retention(max_age: Option<Duration>, max_messages: Option<u64>) -> QueueConfig {
        QueueConfig {
            retention: Retention {
                max_age,
                max_messages,
            },
            ..QueueConfig::default()
        }
    }

    #[test]
    fn config_durations_and_counts_are_bounded() {
        let accepted = [
            with_retention(Some(MAX_RETENTION_AGE), Some(MAX_RETENTION_MESSAGES)),
            with_retention(Some(Duration::from_millis(1)), Some(1)),
            QueueConfig {
                dedup_window: MAX_DEDUP_WINDOW,
                max_deliver: MAX_DELIVER,
                ..QueueConfig::default()
            },
        ];
        for config in accepted {
            assert!(config.validate().is_ok(), "{config:?}");
        }
        let refused = [
            // 18446744073709552 s is 2^64 ms and a bit: as milliseconds it wrapped to 384.
            with_retention(Some(Duration::from_secs(18_446_744_073_709_552)), None),
            with_retention(Some(Duration::from_secs(u64::MAX)), None),
            with_retention(Some(MAX_RETENTION_AGE + Duration::from_secs(1)), None),
            with_retention(Some(Duration::ZERO), None),
            with_retention(None, Some(MAX_RETENTION_MESSAGES + 1)),
            with_retention(None, Some(u64::MAX)),
            with_retention(None, Some(0)),
            QueueConfig {
                dedup_window: MAX_DEDUP_WINDOW + Duration::from_secs(1),
                ..QueueConfig::default()
            },
            QueueConfig {
                max_deliver: MAX_DELIVER + 1,
                ..QueueConfig::default()
            },
            QueueConfig {
                max_deliver: 0,
                ..QueueConfig::default()
            },
        ];
        for config in refused {
            let error = config.validate().expect_err("refused");
            assert_eq!(error.code(), ferrobase_core::ErrorCode::InvalidArgument);
        }
    }

    #[test]
    fn milliseconds_saturate_instead_of_wrapping() {
        assert_eq!(
            Duration::from_secs(18_446_744_073_709_552).saturating_ms(),
            u64::MAX
        );
        assert_eq!(Duration::MAX.saturating_ms(), u64::MAX);
        assert_eq!(
            MAX_RETENTION_AGE.saturating_ms(),
            MAX_RETENTION_AGE.as_secs() * 1000
        );
    }

    #[test]
    fn receipts_round_trip_and_reject_garbage() {
        let group = GroupName::parse("workers.eu-1").unwrap();
        let receipt = Receipt::new(&group, MessageId(42), 7);
        assert_eq!(receipt.as_str(), "workers.eu-1:42:7");
        let parts = receipt.parts().unwrap();
        assert_eq!(parts.group, group);
        assert_eq!(parts.id, MessageId(42));
        assert_eq!(parts.lease, 7);
        for bad in ["", "x", "g:1", "g:x:1", ":1:1", "g:1:-1", "a b:1:1"] {
            assert!(Receipt::from_text(bad).parts().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(QueueName::parse("orders.v2_eu-1").is_ok());
        for bad in ["", "a/b", "a b", "a:b", &"x".repeat(129)] {
            assert!(QueueName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(GroupName::parse(&"g".repeat(65)).is_err());
    }

    #[test]
    fn batches_are_checked_before_writing() {
        let limits = QueueLimits {
            max_message_bytes: 4,
            max_batch: 2,
            ..QueueLimits::default()
        };
        assert!(validate_batch(&[NewMessage::new("abcd")], &limits).is_ok());
        assert!(validate_batch(&[], &limits).is_err());
        assert!(matches!(
            validate_batch(&[NewMessage::new("abcde")], &limits),
            Err(QueueError::TooLarge(_))
        ));
        let three = vec![NewMessage::new("a"); 3];
        assert!(matches!(
            validate_batch(&three, &limits),
            Err(QueueError::TooLarge(_))
        ));
        let bad_key = NewMessage::new("a").with_key("a\u{0}b");
        assert!(validate_batch(&[bad_key], &limits).is_err());
    }

    #[test]
    fn errors_are_truncated_on_char_boundaries() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let bounded = bounded_error(&long);
        assert!(bounded.len() <= MAX_ERROR_LEN);
        assert!(bounded.chars().all(|c| c == 'é'));
    }
}
