//! Transaction batching for the sled engine: concurrent commits share one sled transaction
//! and one flush.
//!
//! sled serialises transactions behind a global lock, and every durable commit needs a flush,
//! so committing writers one by one caps throughput at one transaction plus a share of a
//! flush per write. The batcher takes every commit queued so far, applies them in order inside
//! one sled transaction (each with its own checks: a failed check skips that commit's writes
//! only, since checks run before writes), flushes once, then answers each writer. Commits that
//! arrive meanwhile form the next batch. Log offsets follow the order of application, so the
//! change log still reads exactly as if the commits had run one after another.

use std::sync::Arc;

use ferrobase_core::{Clock, Namespace};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::{mpsc, oneshot};

use crate::engine::LogNotifier;
use crate::sled_engine::{SledStore, Trees};
use crate::txn::{self, TxnFailure};
use crate::{KvError, Txn, TxnOutcome};

/// Most commits applied in one sled transaction.
const MAX_BATCH: usize = 512;

struct Request {
    ns: Namespace,
    txn: Txn,
    reply: oneshot::Sender<Result<TxnOutcome, KvError>>,
}

/// Handle to the batching committer of one sled database.
#[derive(Debug, Clone)]
pub(crate) struct TxnBatcher {
    requests: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("ns", &self.ns)
            .finish_non_exhaustive()
    }
}

impl TxnBatcher {
    /// Starts the committer task on the current tokio runtime.
    pub(crate) fn start(trees: Trees, clock: Arc<dyn Clock>, notifier: Arc<LogNotifier>) -> Self {
        let (requests, mut queue) = mpsc::unbounded_channel::<Request>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let now = clock.now_ms();
                let work: Vec<(Namespace, Txn)> = batch
                    .iter_mut()
                    .map(|r| (r.ns.clone(), std::mem::take(&mut r.txn)))
                    .collect();
                let trees = trees.clone();
                let applied = tokio::task::spawn_blocking(move || apply_batch(&trees, &work, now))
                    .await
                    .unwrap_or_else(|join| {
                        Err(KvError::Storage(format!("commit task failed: {join}")))
                    });
                match applied {
                    Ok(outcomes) => {
                        for (request, outcome) in batch.drain(..).zip(outcomes) {
                            let _ = request.reply.send(outcome);
                        }
                        notifier.notify();
                    }
                    Err(error) => {
                        let message = error.to_string();
                        for request in batch.drain(..) {
                            let _ = request.reply.send(Err(KvError::Storage(message.clone())));
                        }
                    }
                }
            }
        });
        TxnBatcher { requests }
    }

    /// Commits `txn` durably, together with whatever else is queued.
    pub(crate) async fn commit(&self, ns: &Namespace, txn: Txn) -> Result<TxnOutcome, KvError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || KvError::Storage("the committer has stopped".into());
        self.requests
            .send(Request {
                ns: ns.clone(),
                txn,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Applies every commit of the batch in one sled transaction, then flushes. Per-commit check
/// failures are answers, not batch failures; a storage failure fails the whole batch (and
/// nothing of it is applied).
fn apply_batch(
    trees: &Trees,
    work: &[(Namespace, Txn)],
    now: u64,
) -> Result<Vec<Result<TxnOutcome, KvError>>, KvError> {
    let result =
        (&trees.data, &trees.log, &trees.meta, &trees.ttl).transaction(|(data, log, meta, ttl)| {
            let mut outcomes = Vec::with_capacity(work.len());
            for (ns, txn) in work {
                let mut store = SledStore {
                    data,
                    log,
                    meta,
                    ttl,
                    ns,
                };
                match txn::apply(&mut store, ns, txn, now) {
                    Ok(outcome) => outcomes.push(Ok(outcome)),
                    Err(TxnFailure::Check(error)) => outcomes.push(Err(error)),
                    Err(TxnFailure::Store(error)) => return Err(error.into()),
                }
            }
            Ok::<_, ConflictableTransactionError<KvError>>(outcomes)
        });
    let outcomes = match result {
        Ok(outcomes) => outcomes,
        Err(TransactionError::Abort(error)) => return Err(error),
        Err(TransactionError::Storage(error)) => return Err(error.into()),
    };
    trees.db.flush()?;
    Ok(outcomes)
}
