//! Group commit for the queue database: many operations, one fsync.
//!
//! The same idea as `ferrobase_kv::group_commit` (this crate may depend only on `core`, so it
//! has its own): an operation applies its batch (visible, not yet durable), then asks for
//! durability; the committer takes every request queued so far, runs one flush and answers
//! them all. A request is taken only after its batch was applied and the flush starts after
//! that, so the flush covers it.

use tokio::sync::{mpsc, oneshot};

use crate::QueueError;

type Reply = oneshot::Sender<Result<(), String>>;

#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    requests: mpsc::UnboundedSender<Reply>,
}

impl GroupCommit {
    /// Starts the committer on the current tokio runtime; it stops when every handle is gone.
    pub(super) fn start(db: sled::Db) -> Self {
        let (requests, mut queue) = mpsc::unbounded_channel::<Reply>();
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
                for reply in batch.drain(..) {
                    // A caller that stopped waiting is fine to skip.
                    let _ = reply.send(result.clone());
                }
            }
        });
        GroupCommit { requests }
    }

    /// Returns once everything applied before the call is on disk.
    pub(super) async fn durable(&self) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || QueueError::Storage("queue group committer has stopped".into());
        self.requests.send(reply).map_err(|_| stopped())?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(QueueError::Storage(format!("flush failed: {error}"))),
            Err(_) => Err(stopped()),
        }
    }
}
