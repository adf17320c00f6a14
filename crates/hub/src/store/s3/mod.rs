//! Objects in an S3-compatible bucket (`[store] objects = "s3"`): what several hub nodes share
//! instead of `<data_dir>/objects` (docs/hub-scale.md, docs/decisions.md "Objects on S3").
//!
//! Key layout, under the optional `prefix`:
//!
//! - `objects/<sha256>`: one object per name, immutable, as [`super::FsObjectStore`] keeps them;
//! - `parts/<upload_id>/<index>`: each chunk of an upload session, its own key;
//! - `tmp/<sha256>.<random>`: the staging key of an object uploaded in several parts.
//!
//! Bytes are streamed: an object or chunk up to `part_bytes` is kept in memory until its hash
//! is checked and then PUT; a larger one goes up as a multipart upload, one part of
//! `part_bytes` at a time, completed only once its hash has been checked (a chunk to its
//! key, an object to its staging key, then copied into place server-side: Garage drops an
//! upload in progress when another upload of the same key completes). A failed or abandoned
//! write leaves nothing under a name (its multipart upload is aborted). An object already
//! stored is written again all the same: that gives it a new modification time, which is
//! what garbage collection's age test reads, and the answer is [`Stored::Duplicate`].
//!
//! The client (`object_store`) is async; this store owns a small tokio runtime and blocks on
//! it, which works from a plain thread and from a `spawn_blocking` thread of the API's runtime.

mod stale;
mod upload;
mod writer;

#[cfg(test)]
mod tests;

use super::{
    ObjectEntry, ObjectStore, ObjectWriter, PartWriter, PartsEntry, Result, StoreError, WholeHash,
};
use crate::store_settings::S3Settings;
use fgw_format::ids::{Sha256Hex, UploadId};
use fgw_format::package::protocol::Stored;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectMeta, ObjectStore as _, ObjectStoreExt, RetryConfig};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use upload::Upload;
use writer::{S3ObjectWriter, S3PartWriter};

const OBJECTS: &str = "objects";
const PARTS: &str = "parts";
/// Staging keys of multipart object uploads (`tmp/<sha>.<random>`).
const TMP: &str = "tmp";
/// Listing entries handed to a `for_each` callback at a time: one S3 listing page.
const LIST_BATCH: usize = 1000;

/// The [`ObjectStore`] on an S3-compatible bucket.
#[derive(Clone)]
pub struct S3ObjectStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for S3ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's own Debug would show its credentials.
        f.debug_struct("S3ObjectStore")
            .field("bucket", &self.inner.bucket)
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

/// What the store and its writers share.
struct Inner {
    client: AmazonS3,
    /// Owned so the store works without a runtime of the caller's; taken on drop.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    bucket: String,
    /// The key prefix, without slashes at either end; empty for none.
    prefix: String,
    part_bytes: usize,
    /// Lists incomplete multipart uploads for [`ObjectStore::remove_stale_temp`]; `None` if
    /// its HTTP client could not be made (then nothing is swept).
    lister: Option<stale::Lister>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last reference may go on an async thread (a writer dropped by a request that
        // failed), where dropping a runtime would panic; its workers only wait on sockets.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Inner {
    /// Run `f` on the store's runtime and wait for it. Called only from synchronous code (the
    /// trait's callers are blocking threads), never from inside another `block_on`.
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }

    fn path(&self, rest: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn object_path(&self, sha: &Sha256Hex) -> Path {
        self.path(&format!("{OBJECTS}/{sha}"))
    }

    /// A staging key no other writer uses.
    fn staging_path(&self, sha: &Sha256Hex) -> Path {
        use ring::rand::SecureRandom;
        let mut r = [0u8; 8];
        ring::rand::SystemRandom::new().fill(&mut r).expect("system RNG");
        self.path(&format!("{TMP}/{sha}.{}", hex::encode(r)))
    }

    fn parts_path(&self, upload: &UploadId) -> Path {
        self.path(&format!("{PARTS}/{upload}"))
    }

    fn part_path(&self, upload: &UploadId, index: u32) -> Path {
        self.path(&format!("{PARTS}/{upload}/{index}"))
    }

    /// A client error, named by bucket and key.
    fn err(&self, key: &Path) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        let key = key.to_string();
        move |source| StoreError::S3 { bucket: self.bucket.clone(), key, source: Box::new(source) }
    }

    /// The key's metadata, `None` if absent.
    fn head(&self, key: &Path) -> Result<Option<ObjectMeta>> {
        match self.block_on(self.client.head(key)) {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    fn delete(&self, key: &Path) -> Result<()> {
        match self.block_on(self.client.delete(key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    /// Call `f` with every key under `prefix`, a listing page at a time, outside the runtime
    /// (so `f` may use the store, e.g. delete what it is given).
    fn list(&self, prefix: &Path, f: &mut dyn FnMut(ObjectMeta) -> Result<()>) -> Result<()> {
        let mut stream: BoxStream<'static, object_store::Result<ObjectMeta>> =
            self.client.list(Some(prefix));
        loop {
            let batch = self.block_on(async {
                let mut batch = Vec::new();
                while batch.len() < LIST_BATCH {
                    match stream.next().await {
                        Some(Ok(meta)) => batch.push(meta),
                        Some(Err(e)) => return Err(e),
                        None => break,
                    }
                }
                Ok(batch)
            });
            let batch = batch.map_err(self.err(prefix))?;
            let last = batch.len() < LIST_BATCH;
            for meta in batch {
                f(meta)?;
            }
            if last {
                return Ok(());
            }
        }
    }
}

fn system_time(meta: &ObjectMeta) -> SystemTime {
    meta.last_modified.into()
}

impl S3ObjectStore {
    /// A store on the bucket `[store.s3]` names (checked by `StoreSettings::check`). Makes
    /// no request: a bucket that cannot be reached fails the first operation.
    pub fn open(settings: &S3Settings) -> Result<S3ObjectStore> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::S3 {
            bucket: settings.bucket.clone(),
            key: String::new(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-store")
            .enable_all()
            .build()
            .map_err(|e| fail(Box::new(e)))?;
        let options = ClientOptions::new()
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(10))
            // A part of up to 1 GiB must fit in one request.
            .with_timeout(Duration::from_secs(600));
        let client = AmazonS3Builder::new()
            .with_endpoint(&settings.endpoint)
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            // Path-style requests (`endpoint/bucket/key`): what Garage, RGW and MinIO take
            // without a wildcard DNS name.
            .with_virtual_hosted_style_request(false)
            .with_client_options(options.clone())
            .with_retry(RetryConfig {
                max_retries: 5,
                retry_timeout: Duration::from_secs(120),
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| fail(Box::new(e)))?;
        let credential = object_store::aws::AwsCredential {
            key_id: settings.access_key_id.clone(),
            secret_key: settings.secret_access_key.clone(),
            token: None,
        };
        let lister =
            stale::Lister::new(&options, &settings.endpoint, &settings.region, credential).ok();
        let prefix = settings.prefix.as_deref().unwrap_or("").trim_matches('/').to_string();
        let part_bytes = usize::try_from(settings.part_bytes).unwrap_or(usize::MAX);
        Ok(S3ObjectStore {
            inner: Arc::new(Inner {
                client,
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                bucket: settings.bucket.clone(),
                prefix,
                part_bytes,
                lister,
            }),
        })
    }

    /// Stream the bytes of `key` into `sink`; returns how many there were, `None` if the key
    /// is absent.
    fn read_into(
        &self,
        key: &Path,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<Option<u64>> {
        let inner = &self.inner;
        let got = match inner.block_on(inner.client.get(key)) {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(inner.err(key)(e)),
        };
        let mut stream = got.into_stream();
        let mut total = 0u64;
        // One buffer of the response at a time; `sink` runs outside the runtime because it
        // may block on it (an upload's next part).
        while let Some(bytes) = inner.block_on(stream.next()) {
            let bytes = bytes.map_err(inner.err(key))?;
            total += bytes.len() as u64;
            sink(&bytes)?;
        }
        Ok(Some(total))
    }

    /// The upload of object `sha`: a multipart one is staged under `tmp/`, since writers of
    /// one object on several nodes must not share a multipart key (module docs of upload.rs).
    fn object_upload(&self, sha: &Sha256Hex) -> Upload {
        Upload::staged(
            self.inner.clone(),
            self.inner.object_path(sha),
            self.inner.staging_path(sha),
        )
    }

    /// Sizes of the stored chunks of `upload`, by index.
    fn part_sizes(&self, upload: &UploadId) -> Result<HashMap<u32, u64>> {
        let mut sizes = HashMap::new();
        self.inner.list(&self.inner.parts_path(upload), &mut |meta| {
            if let Some(index) = meta.location.filename().and_then(|n| n.parse::<u32>().ok()) {
                sizes.insert(index, meta.size);
            }
            Ok(())
        })?;
        Ok(sizes)
    }
}

impl ObjectStore for S3ObjectStore {
    fn size(&self, sha: &Sha256Hex) -> Result<Option<u64>> {
        Ok(self.inner.head(&self.inner.object_path(sha))?.map(|m| m.size))
    }

    fn writer(&self, sha: &Sha256Hex) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(S3ObjectWriter::new(sha.clone(), self.object_upload(sha))))
    }

    fn get(&self, sha: &Sha256Hex) -> Result<Option<Vec<u8>>> {
        let key = self.inner.object_path(sha);
        let mut bytes = Vec::new();
        let found = self.read_into(&key, &mut |b| {
            bytes.extend_from_slice(b);
            Ok(())
        })?;
        Ok(found.map(|_| bytes))
    }

    fn remove(&self, sha: &Sha256Hex) -> Result<bool> {
        // S3 answers a DELETE the same whether the key was there or not.
        let key = self.inner.object_path(sha);
        if self.inner.head(&key)?.is_none() {
            return Ok(false);
        }
        self.inner.delete(&key)?;
        Ok(true)
    }

    fn for_each(&self, f: &mut dyn FnMut(ObjectEntry) -> Result<()>) -> Result<()> {
        let prefix = self.inner.path(OBJECTS);
        self.inner.list(&prefix, &mut |meta| {
            let Some(sha) = meta.location.filename().and_then(|n| Sha256Hex::new(n).ok()) else {
                return Ok(());
            };
            f(ObjectEntry { sha256: sha, size: meta.size, modified: system_time(&meta) })
        })
    }

    fn remove_stale_temp(&self, cutoff: SystemTime) -> Result<u64> {
        // Staging keys of multipart objects whose copy into place never ran or whose delete
        // failed (a crash between the two), then uploads a crash left incomplete.
        let mut stale = Vec::new();
        self.inner.list(&self.inner.path(TMP), &mut |meta| {
            if system_time(&meta) < cutoff {
                stale.push(meta.location);
            }
            Ok(())
        })?;
        for key in &stale {
            self.inner.delete(key)?;
        }
        Ok(stale.len() as u64 + self.inner.abort_stale_uploads(cutoff)?)
    }

    fn part_writer(
        &self,
        upload: &UploadId,
        index: u32,
        _offset: u64,
        sha: &Sha256Hex,
    ) -> Result<Box<dyn PartWriter>> {
        // A copy of the chunk from an earlier attempt that was never recorded: the chunk is
        // not there until this one finishes.
        let key = self.inner.part_path(upload, index);
        self.inner.delete(&key)?;
        Ok(Box::new(S3PartWriter::new(
            upload.clone(),
            index,
            sha.clone(),
            Upload::new(self.inner.clone(), key),
        )))
    }

    fn part_size(&self, upload: &UploadId, index: u32) -> Result<Option<u64>> {
        Ok(self.inner.head(&self.inner.part_path(upload, index))?.map(|m| m.size))
    }

    fn remove_parts(&self, upload: &UploadId) -> Result<bool> {
        let mut keys = Vec::new();
        self.inner.list(&self.inner.parts_path(upload), &mut |meta| {
            keys.push(meta.location);
            Ok(())
        })?;
        for key in &keys {
            self.inner.delete(key)?;
        }
        Ok(!keys.is_empty())
    }

    fn for_each_parts(&self, f: &mut dyn FnMut(PartsEntry) -> Result<()>) -> Result<()> {
        // Listed whole before `f` runs (one entry per session, not per chunk), so that `f`
        // may delete what it is given.
        let mut sessions: HashMap<UploadId, SystemTime> = HashMap::new();
        self.inner.list(&self.inner.path(PARTS), &mut |meta| {
            let mut parts = meta.location.parts();
            let mut tail = [None, None];
            for p in parts.by_ref() {
                tail = [tail[1].take(), Some(p)];
            }
            let [Some(session), Some(_index)] = tail else { return Ok(()) };
            let Ok(upload) = UploadId::new(session.as_ref()) else { return Ok(()) };
            let modified = system_time(&meta);
            let e = sessions.entry(upload).or_insert(modified);
            *e = (*e).max(modified);
            Ok(())
        })?;
        for (upload, modified) in sessions {
            f(PartsEntry { upload, modified })?;
        }
        Ok(())
    }

    fn assemble(
        &self,
        upload: &UploadId,
        sha: &Sha256Hex,
        lengths: &[u64],
        whole: WholeHash,
    ) -> Result<Stored> {
        if whole == WholeHash::Mismatch {
            return Err(StoreError::HashMismatch { expected: sha.clone() });
        }
        let sizes = self.part_sizes(upload)?;
        for (index, &len) in lengths.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            if sizes.get(&index) != Some(&len) {
                return Err(StoreError::PartMissing { upload: upload.clone(), index });
            }
        }
        // Chunks are at least `min_chunk_bytes` (1 MiB by default), under S3's 5 MiB minimum
        // part, and the client cannot copy a part server-side (UploadPartCopy): the chunks are
        // read back and streamed into the object's upload, hashed on the way.
        let mut w = S3ObjectWriter::new(sha.clone(), self.object_upload(sha));
        for (index, &len) in lengths.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let key = self.inner.part_path(upload, index);
            let read = self.read_into(&key, &mut |b| w.write(b))?;
            if read != Some(len) {
                // Removed or replaced since the listing (a concurrent expiry).
                return Err(StoreError::PartMissing { upload: upload.clone(), index });
            }
        }
        w.finish_checked(whole == WholeHash::Check)
    }
}
