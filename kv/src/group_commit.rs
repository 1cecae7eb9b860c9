//! Group commit: many writers, one fsync.
//!
//! A writer commits its transaction (visible, not yet durable), then asks the committer for
//! durability. The committer takes every request queued so far, runs one `flush` and answers
//! them all. A request is only taken after its transaction committed, and the flush starts
//! after the request is taken, so the flush covers the transaction. Writers that arrive while
//! a flush runs share the next one; under load, one fsync serves dozens of writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::KvError;

type Reply = oneshot::Sender<Result<(), String>>;

/// Counters for metrics: how many durability requests, and how many flushes served them.
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    pub requests: AtomicU64,
    pub flushes: AtomicU64,
}

/// Handle to the background committer of one sled database.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    requests: mpsc::UnboundedSender<Reply>,
    stats: Arc<GroupCommitStats>,
}

impl GroupCommit {
    /// Starts the committer task on the current tokio runtime.
    pub fn start(db: sled::Db) -> Self {
        let (requests, mut queue) = mpsc::unbounded_channel::<Reply>();
        let stats = Arc::new(GroupCommitStats::default());
        let task_stats = stats.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = queue.recv().await {
                batch.push(first);
                while let Ok(next) = queue.try_recv() {
                    batch.push(next);
                }
                let db = db.clone();
                let result = match tokio::task::spawn_blocking(move || db.flush()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(join) => Err(format!("flush task failed: {join}")),
                };
                task_stats.flushes.fetch_add(1, Ordering::Relaxed);
                task_stats
                    .requests
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for reply in batch.drain(..) {
                    // A writer that gave up waiting (its request was cancelled) is fine to skip.
                    let _ = reply.send(result.clone());
                }
            }
        });
        GroupCommit { requests, stats }
    }

    /// Returns once everything committed before the call is on disk.
    pub async fn durable(&self) -> Result<(), KvError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(reply)
            .map_err(|_| KvError::Storage("group committer has stopped".into()))?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(KvError::Storage(format!("flush failed: {error}"))),
            Err(_) => Err(KvError::Storage("group committer has stopped".into())),
        }
    }

    pub fn stats(&self) -> &GroupCommitStats {
        &self.stats
    }
}
