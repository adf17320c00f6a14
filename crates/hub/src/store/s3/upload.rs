//! One key being written: bytes are kept until a part's worth (`part_bytes`) is there; a key
//! that stays within one part is PUT whole at the end, a larger one goes up as a multipart
//! upload, a part at a time. Nothing is visible under the key until [`Upload::finish`]; an
//! upload dropped before that is aborted.
//!
//! A multipart upload may go to a staging key of its own, copied to the key at the end
//! (server-side): Garage drops a multipart upload in progress when another upload of the
//! same key completes, so two writers of one object must not share a key while they stream.

use super::Inner;
use crate::store::Result;
use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, ObjectStore as _, ObjectStoreExt, PutOptions, PutPayload};
use std::sync::Arc;

/// A multipart upload under way.
struct Multipart {
    /// The key it goes to: the upload's key or its staging key.
    key: Path,
    id: MultipartId,
    parts: Vec<PartId>,
}

/// Bytes on their way to one key.
pub(super) struct Upload {
    inner: Arc<Inner>,
    key: Path,
    /// Where a multipart upload goes, if not to `key`.
    staging: Option<Path>,
    /// At most one part: the bytes not yet sent.
    buf: Vec<u8>,
    multipart: Option<Multipart>,
}

impl Upload {
    /// Nothing is sent until a part is full (or [`Upload::finish`]).
    pub(super) fn new(inner: Arc<Inner>, key: Path) -> Upload {
        Upload { inner, key, staging: None, buf: Vec::new(), multipart: None }
    }

    /// Like [`Upload::new`], but a multipart upload goes to `staging` and is copied to `key`
    /// when it finishes.
    pub(super) fn staged(inner: Arc<Inner>, key: Path, staging: Path) -> Upload {
        Upload { inner, key, staging: Some(staging), buf: Vec::new(), multipart: None }
    }

    /// Append bytes; sends a part when a full one is followed by more bytes (so an object of
    /// exactly one part is one PUT).
    pub(super) fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        let part = self.inner.part_bytes;
        while !bytes.is_empty() {
            if self.buf.len() == part {
                self.send_part()?;
            }
            let take = (part - self.buf.len()).min(bytes.len());
            if self.buf.capacity() < self.buf.len() + take {
                // Grow by doubling but never past one part: a small object costs little, a
                // large one holds exactly one part.
                let want = (self.buf.len() * 2).max(self.buf.len() + take).min(part);
                self.buf.reserve_exact(want - self.buf.len());
            }
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        Ok(())
    }

    fn send_part(&mut self) -> Result<()> {
        let inner = self.inner.clone();
        let client = &inner.client;
        if self.multipart.is_none() {
            let key = self.staging.clone().unwrap_or_else(|| self.key.clone());
            let id = inner.block_on(client.create_multipart(&key)).map_err(inner.err(&key))?;
            self.multipart = Some(Multipart { key, id, parts: Vec::new() });
        }
        let mp = self.multipart.as_mut().expect("started above");
        let payload = PutPayload::from(Bytes::from(std::mem::take(&mut self.buf)));
        let part = inner
            .block_on(client.put_part(&mp.key, &mp.id, mp.parts.len(), payload))
            .map_err(inner.err(&mp.key))?;
        mp.parts.push(part);
        Ok(())
    }

    /// Make the bytes written the key's content (replacing what it had).
    pub(super) fn finish(mut self) -> Result<()> {
        let inner = self.inner.clone();
        let client = &inner.client;
        let payload = PutPayload::from(Bytes::from(std::mem::take(&mut self.buf)));
        match self.multipart.take() {
            None => {
                inner
                    .block_on(client.put_opts(&self.key, payload, PutOptions::default()))
                    .map_err(inner.err(&self.key))?;
            }
            Some(mut mp) => {
                // The last part: never empty, since a part is sent only when more follows.
                let last =
                    inner.block_on(client.put_part(&mp.key, &mp.id, mp.parts.len(), payload));
                let done = last.and_then(|part| {
                    mp.parts.push(part);
                    inner.block_on(client.complete_multipart(
                        &mp.key,
                        &mp.id,
                        std::mem::take(&mut mp.parts),
                    ))
                });
                if let Err(e) = done {
                    let key = mp.key.clone();
                    self.multipart = Some(mp);
                    return Err(inner.err(&key)(e));
                }
                if mp.key != self.key {
                    // Server-side: Garage copies block references, S3 copies within the
                    // store (one request up to 5 GiB).
                    let copied = inner.block_on(client.copy(&mp.key, &self.key));
                    // The staging key goes either way; one left by a crash is swept by
                    // `remove_stale_temp`.
                    let _ = inner.delete(&mp.key);
                    copied.map_err(inner.err(&self.key))?;
                }
            }
        }
        Ok(())
    }

    /// The metadata the key has now (before this upload finishes: what was there), `None` if
    /// absent.
    pub(super) fn inner_head(&self) -> Result<Option<object_store::ObjectMeta>> {
        self.inner.head(&self.key)
    }

    /// Give up: the multipart upload (if one was started) is aborted now.
    pub(super) fn abort(mut self) {
        if let Some(mp) = self.multipart.take() {
            // Best effort: an upload left behind is invisible and the bucket's lifecycle rule
            // removes it.
            let _ = self.inner.block_on(self.inner.client.abort_multipart(&mp.key, &mp.id));
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(mp) = self.multipart.take() {
            // Possibly on an async thread (a request that failed drops its writer), where
            // blocking is not allowed: the abort runs on the store's runtime by itself.
            let client = self.inner.client.clone();
            self.inner.handle.spawn(async move {
                let _ = client.abort_multipart(&mp.key, &mp.id).await;
            });
        }
    }
}
