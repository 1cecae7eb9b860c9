//! The object backends: local files or an S3 service, both behind `object_store`.
//!
//! Bodies are stored as immutable blobs named `{ns}/{bucket}/{blob id}`; which blob holds
//! which object is known only to the metadata records (see [`crate::Storage`]). Writes stream
//! through a bounded buffer and, on local files, are fsynced before they count as written
//! (S3 services acknowledge only durable writes). Local writes skip `object_store` to
//! pipeline hashing with writing (see the `local` module).

mod local;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::StorageError;
use crate::digest::{BodyDigest, BodyHasher, Checksum, ChecksumAlgorithm};

/// How much of an upload is held in memory at once: one buffer being filled plus up to
/// [`UPLOAD_CONCURRENCY`] being sent, so about 24 MiB per upload at most.
const UPLOAD_BUFFER_BYTES: usize = 8 * 1024 * 1024;
const UPLOAD_CONCURRENCY: usize = 2;

/// Where object bodies live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// Files under `root` (created when missing).
    Local { root: PathBuf },
    /// An S3-compatible service (AWS S3, MinIO, R2, ...), path-style when `endpoint` is set.
    S3(S3BackendConfig),
}

/// Connection settings of an S3 backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3BackendConfig {
    /// e.g. `http://127.0.0.1:9000`; unset for AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    /// The one backend bucket that holds every Ferrobase bucket's blobs.
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow `http://` endpoints (MinIO on a private network, test servers).
    pub allow_http: bool,
}

/// An opened backend.
#[derive(Debug, Clone)]
pub struct Backend {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Set for local files: the root, for reading blobs in large chunks.
    local_root: Option<PathBuf>,
}

impl Backend {
    pub fn open(config: &BackendConfig) -> Result<Backend, StorageError> {
        match config {
            BackendConfig::Local { root } => {
                std::fs::create_dir_all(root).map_err(|error| {
                    StorageError::Backend(format!("creating {}: {error}", root.display()))
                })?;
                let root = std::fs::canonicalize(root).map_err(|error| {
                    StorageError::Backend(format!("resolving {}: {error}", root.display()))
                })?;
                // fsync each blob before it is renamed into place, and its directory after:
                // a write counts only once it is on disk.
                let store = LocalFileSystem::new_with_prefix(&root)?.with_fsync(true);
                Ok(Backend {
                    store: Arc::new(store),
                    local_root: Some(root),
                })
            }
            BackendConfig::S3(s3) => {
                let mut builder = AmazonS3Builder::new()
                    .with_region(&s3.region)
                    .with_bucket_name(&s3.bucket)
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(&s3.secret_access_key)
                    .with_allow_http(s3.allow_http)
                    .with_virtual_hosted_style_request(false);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                Ok(Backend {
                    store: Arc::new(builder.build()?),
                    local_root: None,
                })
            }
        }
    }

    /// The underlying store (tests use it to plant or inspect blobs).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// A backend over any `object_store` implementation (tests, decorators).
    pub fn from_store(store: Arc<dyn ObjectStore>) -> Backend {
        Backend {
            store,
            local_root: None,
        }
    }

    /// Streams `body` into a new blob at `path`, returning its size and digest (hashed by a
    /// [`BodyHasher`] with `md5_limit` and the declared length, see [`crate::digest`]). On
    /// any failure
    /// the partial blob is removed, so nothing is left behind but, after a crash, an
    /// unreferenced blob that [`crate::Storage::sweep_orphans`] removes.
    pub(crate) async fn write_blob<S>(
        &self,
        path: &Path,
        body: S,
        md5_limit: u64,
        declared_length: Option<u64>,
        checksum: Option<ChecksumAlgorithm>,
    ) -> Result<Written, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
    {
        if let Some(root) = &self.local_root {
            let hasher = BodyHasher::new(md5_limit, declared_length, checksum);
            return local::write_blob(root, root.join(path.as_ref()), body, hasher).await;
        }
        let mut writer =
            BufWriter::with_capacity(self.store.clone(), path.clone(), UPLOAD_BUFFER_BYTES)
                .with_max_concurrency(UPLOAD_CONCURRENCY);
        let mut hasher = BodyHasher::new(md5_limit, declared_length, checksum);
        let mut size = 0u64;
        let mut body = std::pin::pin!(body);
        let outcome: Result<(), StorageError> = async {
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|error| StorageError::IncompleteBody(error.to_string()))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                writer.put(chunk).await?;
            }
            writer
                .shutdown()
                .await
                .map_err(|error| StorageError::Backend(error.to_string()))
        }
        .await;
        if let Err(error) = outcome {
            let _ = writer.abort().await;
            let _ = self.store.delete(path).await;
            return Err(error);
        }
        let (digest, checksum) = hasher.finish();
        Ok(Written {
            size,
            digest,
            checksum,
        })
    }

    /// Copies a blob to a new path (server side where the backend can).
    pub(crate) async fn copy_blob(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.store.copy(from, to).await?;
        Ok(())
    }

    /// Reads `range` of a blob as a stream.
    pub(crate) async fn read_blob(
        &self,
        path: &Path,
        range: std::ops::Range<u64>,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>, StorageError>
    {
        if let Some(root) = &self.local_root {
            return read_local(root.join(path.as_ref()), range).await;
        }
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        let result = self.store.get_opts(path, options).await?;
        Ok(result.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// On local files: removes the staging files of multipart writes that a crash cut off
    /// (`{blob}#{n}`, which listings do not show) when older than `min_age`. Returns the count
    /// and bytes removed.
    pub(crate) async fn sweep_staging(
        &self,
        ns_dir: &str,
        min_age: std::time::Duration,
    ) -> Result<(u64, u64), StorageError> {
        let Some(root) = &self.local_root else {
            return Ok((0, 0));
        };
        let dir = root.join(ns_dir);
        tokio::task::spawn_blocking(move || -> std::io::Result<(u64, u64)> {
            let (mut count, mut bytes) = (0, 0);
            let Ok(buckets) = std::fs::read_dir(&dir) else {
                return Ok((0, 0));
            };
            for bucket in buckets.flatten() {
                let Ok(files) = std::fs::read_dir(bucket.path()) else {
                    continue;
                };
                for file in files.flatten() {
                    let staged = file.file_name().to_string_lossy().contains('#');
                    let meta = file.metadata()?;
                    let old = meta.modified()?.elapsed().is_ok_and(|age| age >= min_age);
                    if staged && old && meta.is_file() {
                        std::fs::remove_file(file.path())?;
                        count += 1;
                        bytes += meta.len();
                    }
                }
            }
            Ok((count, bytes))
        })
        .await
        .map_err(|error| StorageError::Backend(error.to_string()))?
        .map_err(|error| StorageError::Backend(format!("sweeping staging files: {error}")))
    }

    /// Deletes blobs, ignoring those already gone.
    pub(crate) async fn delete_blobs(&self, paths: Vec<Path>) {
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    tracing::warn!(%path, %error, "cannot delete a blob; the orphan sweep will retry")
                }
            }
        }
    }
}

/// How much of a local file one blocking read takes: large enough that the hop to the
/// blocking pool is noise (object_store's local reader takes 8 KiB per hop).
const LOCAL_READ_CHUNK: u64 = 1024 * 1024;

/// Streams `range` of a local file in [`LOCAL_READ_CHUNK`] pieces. The file is opened before
/// this returns, so a missing blob is an error here rather than mid-stream.
async fn read_local(
    file: PathBuf,
    range: std::ops::Range<u64>,
) -> Result<futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>, StorageError> {
    use std::io::{Read, Seek, SeekFrom};
    let opened = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let mut handle = std::fs::File::open(&file)?;
        handle.seek(SeekFrom::Start(range.start))?;
        Ok(handle)
    })
    .await
    .map_err(|error| StorageError::Backend(error.to_string()))?;
    let handle = match opened {
        Ok(handle) => handle,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::Backend(format!("blob not found: {error}")));
        }
        Err(error) => return Err(StorageError::Backend(error.to_string())),
    };
    let remaining = range.end - range.start;
    let stream =
        futures::stream::try_unfold((handle, remaining), |(handle, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = remaining.min(LOCAL_READ_CHUNK) as usize;
            let (handle, chunk) = tokio::task::spawn_blocking(move || {
                let mut handle = handle;
                let mut buffer = vec![0u8; want];
                let mut filled = 0;
                while filled < want {
                    let n = handle.read(&mut buffer[filled..])?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the blob is shorter than its record says",
                        ));
                    }
                    filled += n;
                }
                Ok::<_, std::io::Error>((handle, Bytes::from(buffer)))
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok(Some((chunk, (handle, remaining - want as u64))))
        });
    Ok(stream.boxed())
}

/// A blob as written.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub size: u64,
    /// What the ETag is made of.
    pub digest: BodyDigest,
    /// The additional checksum asked for.
    pub checksum: Option<Checksum>,
}

/// The backend path of a blob.
pub(crate) fn blob_path(ns: &ferrobase_core::Namespace, bucket: &str, id: &str) -> Path {
    Path::from(format!("{ns}/{bucket}/{id}"))
}
