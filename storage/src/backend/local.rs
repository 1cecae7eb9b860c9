//! Blob writes on local files, without `object_store` in the way.
//!
//! A large PUT is CPU-bound here: receiving the body, hashing it (for the ETag, see
//! [`crate::digest`]) and writing it into the page cache each take CPU time per byte. Through
//! `object_store` (and earlier, inline hashing) these steps ran one after the other, and the
//! final fsync started only after the last byte was hashed. Here the body is handed, chunk
//! by chunk and without copies, to two blocking threads: one writes the staging file and,
//! once the body has ended, fsyncs and publishes it; the other hashes. So hashing overlaps
//! with both the writes and the final fsync, and the request task only receives.
//!
//! The file layout is `object_store`'s, so that either side reads what the other wrote: the
//! body goes to a staging file `{blob}#{n}` (which listings skip and the staging sweep
//! removes after a crash), is fsynced once, then renamed into place, and the directory is
//! fsynced so that the rename is durable too.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::Written;
use crate::StorageError;
use crate::digest::BodyHasher;

/// Chunks travel to the writer and the hasher in groups of about this many bytes: large
/// enough that the hand-over and the write syscall are noise, small enough that a small
/// object is one group.
const GROUP_BYTES: usize = 1024 * 1024;
/// Groups queued per thread before receiving waits. With [`GROUP_BYTES`], an upload holds at
/// most about 9 MiB in memory, whichever thread is behind (both share the same buffers).
const QUEUE_GROUPS: usize = 8;

/// A large body is flushed to disk every this many bytes while it is written.
const SYNC_EVERY_BYTES: u64 = 8 * 1024 * 1024;

/// What the writer thread is told.
enum WriteStep {
    Group(Vec<Bytes>),
    /// The body ended well: fsync and publish. A channel closed without this means the
    /// upload failed and the staging file is removed.
    Finish,
}

/// Streams `body` into the file `dest` (a blob path under the local root), published only
/// once complete and durable. On any failure nothing is left at `dest` nor in staging.
pub(super) async fn write_blob<S>(
    root: &Path,
    dest: PathBuf,
    body: S,
    hasher: BodyHasher,
) -> Result<Written, StorageError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
{
    let mut body = std::pin::pin!(body);
    let (first, ended) = next_group(&mut body).await?;
    let root = root.to_owned();
    if ended {
        // A small body: one hop to the blocking pool, hashed here meanwhile.
        let size = group_len(&first);
        let body = first.clone();
        let write = tokio::task::spawn_blocking(move || {
            let (mut file, staging) = create_staging(&root, &dest)?;
            let written =
                write_group(&mut file, &body).and_then(|()| publish(file, &staging, &dest));
            if written.is_err() {
                let _ = std::fs::remove_file(&staging);
            }
            written
        });
        let (digest, checksum) = hash(hasher, &first).finish();
        write
            .await
            .map_err(|error| StorageError::Backend(error.to_string()))?
            .map_err(|error| StorageError::Backend(format!("writing a blob: {error}")))?;
        return Ok(Written {
            size,
            digest,
            checksum,
        });
    }

    let (write_tx, mut write_rx) = mpsc::channel::<WriteStep>(QUEUE_GROUPS);
    let (hash_tx, mut hash_rx) = mpsc::channel::<Vec<Bytes>>(QUEUE_GROUPS);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let (mut file, staging) = create_staging(&root, &dest)?;
        let outcome = (|| {
            let mut unsynced = 0;
            while let Some(step) = write_rx.blocking_recv() {
                match step {
                    WriteStep::Group(group) => {
                        write_group(&mut file, &group)?;
                        unsynced += group_len(&group);
                        // Flush as the body arrives, while hashing keeps this thread waiting
                        // anyway, so that the fsync at the end has little left to write.
                        if unsynced >= SYNC_EVERY_BYTES {
                            file.sync_data()?;
                            unsynced = 0;
                        }
                    }
                    WriteStep::Finish => return publish(file, &staging, &dest),
                }
            }
            Err(std::io::Error::other("the upload was abandoned"))
        })();
        if outcome.is_err() {
            let _ = std::fs::remove_file(&staging);
        }
        outcome
    });
    let hasher = tokio::task::spawn_blocking(move || {
        let mut hasher = hasher;
        while let Some(group) = hash_rx.blocking_recv() {
            hasher = hash(hasher, &group);
        }
        hasher.finish()
    });

    let mut size = group_len(&first);
    let mut group = first;
    let received: Result<(), StorageError> = async {
        loop {
            // A send fails only when the writer stopped on an error; its result says which.
            if hash_tx.send(group.clone()).await.is_err()
                || write_tx.send(WriteStep::Group(group)).await.is_err()
            {
                return Ok(());
            }
            let (next, ended) = next_group(&mut body).await?;
            size += group_len(&next);
            if ended {
                // As above, a failed send means the writer stopped; its result tells why.
                let _ = write_tx.send(WriteStep::Group(next.clone())).await;
                let _ = hash_tx.send(next).await;
                let _ = write_tx.send(WriteStep::Finish).await;
                return Ok(());
            }
            group = next;
        }
    }
    .await;
    drop((write_tx, hash_tx));
    let written = writer
        .await
        .map_err(|error| StorageError::Backend(error.to_string()));
    let (digest, checksum) = hasher
        .await
        .map_err(|error| StorageError::Backend(error.to_string()))?;
    // A body that failed mid-way is the client's error, whatever the writer then said.
    received?;
    written?.map_err(|error| StorageError::Backend(format!("writing a blob: {error}")))?;
    Ok(Written {
        size,
        digest,
        checksum,
    })
}

/// Collects chunks up to about [`GROUP_BYTES`]; `true` when the body ended with them.
async fn next_group<S>(body: &mut std::pin::Pin<&mut S>) -> Result<(Vec<Bytes>, bool), StorageError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
{
    let mut group = Vec::new();
    let mut bytes = 0;
    // `<=`: a body of exactly GROUP_BYTES is seen to end here, and so takes the small path.
    while bytes <= GROUP_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => {
                bytes += chunk.len();
                if !chunk.is_empty() {
                    group.push(chunk);
                }
            }
            Some(Err(error)) => return Err(StorageError::IncompleteBody(error.to_string())),
            None => return Ok((group, true)),
        }
    }
    Ok((group, false))
}

fn group_len(group: &[Bytes]) -> u64 {
    group.iter().map(|chunk| chunk.len() as u64).sum()
}

fn hash(mut hasher: BodyHasher, group: &[Bytes]) -> BodyHasher {
    for chunk in group {
        hasher.update(chunk);
    }
    hasher
}

/// Writes a group with as few syscalls as the kernel allows.
fn write_group(file: &mut File, group: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = group.iter().map(|chunk| IoSlice::new(chunk)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = file.write_vectored(slices)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// A new staging file beside `dest`, creating (durably) the directories on the way.
fn create_staging(root: &Path, dest: &Path) -> std::io::Result<(File, PathBuf)> {
    let mut n = 1u32;
    loop {
        let mut staging = dest.as_os_str().to_owned();
        staging.push(format!("#{n}"));
        let staging = PathBuf::from(staging);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(file) => return Ok((file, staging)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let dir = dest.parent().unwrap_or(root);
                std::fs::create_dir_all(dir)?;
                // New directory entries are durable only once their parents are fsynced.
                let mut at = dir;
                while at.starts_with(root) {
                    sync_dir(at)?;
                    if at == root {
                        break;
                    }
                    at = at.parent().unwrap_or(root);
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// Makes the staging file durable, then moves it into place durably.
fn publish(file: File, staging: &Path, dest: &Path) -> std::io::Result<()> {
    file.sync_all()?;
    drop(file);
    std::fs::rename(staging, dest)?;
    sync_dir(dest.parent().unwrap_or(Path::new("/")))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
