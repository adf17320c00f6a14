//! The writers of the S3 store: an object or a chunk, hashed as its bytes go up, put in place
//! only once the hash is right.

use super::upload::Upload;
use crate::store::{ObjectWriter, PartWriter, Result, StoreError};
use fgw_format::ids::{Sha256Hex, UploadId};
use fgw_format::package::protocol::Stored;

fn sha256() -> ring::digest::Context {
    ring::digest::Context::new(&ring::digest::SHA256)
}

/// An object being written to `objects/<sha>`.
pub(super) struct S3ObjectWriter {
    sha: Sha256Hex,
    upload: Upload,
    digest: ring::digest::Context,
    written: u64,
}

impl S3ObjectWriter {
    pub(super) fn new(sha: Sha256Hex, upload: Upload) -> S3ObjectWriter {
        S3ObjectWriter { sha, upload, digest: sha256(), written: 0 }
    }

    /// Finish, comparing the hash only if `check` (an assembly whose caller hashed the
    /// chunks already says not to).
    pub(super) fn finish_checked(self, check: bool) -> Result<Stored> {
        let S3ObjectWriter { sha, upload, digest, .. } = self;
        if check && hex::encode(digest.finish()) != sha.as_str() {
            upload.abort();
            return Err(StoreError::HashMismatch { expected: sha });
        }
        // Written again if already there (the bytes are here or up already): the new
        // modification time keeps a collection from taking it from under this upload.
        // Two nodes finishing the same object at the same instant may both see it absent and
        // both answer New: the bytes are the same, one object remains (S3 has no create-if-
        // absent that Garage implements; docs/decisions.md).
        let existed = upload.inner_head()?.is_some();
        upload.finish()?;
        Ok(if existed { Stored::Duplicate } else { Stored::New })
    }
}

impl ObjectWriter for S3ObjectWriter {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.digest.update(chunk);
        self.written += chunk.len() as u64;
        self.upload.write(chunk)
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish(self: Box<Self>) -> Result<Stored> {
        self.finish_checked(true)
    }
}

/// A chunk being written to `parts/<upload>/<index>`.
pub(super) struct S3PartWriter {
    upload_id: UploadId,
    index: u32,
    sha: Sha256Hex,
    upload: Upload,
    digest: ring::digest::Context,
    written: u64,
}

impl S3PartWriter {
    pub(super) fn new(upload_id: UploadId, index: u32, sha: Sha256Hex, upload: Upload) -> Self {
        S3PartWriter { upload_id, index, sha, upload, digest: sha256(), written: 0 }
    }
}

impl PartWriter for S3PartWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.digest.update(bytes);
        self.written += bytes.len() as u64;
        self.upload.write(bytes)
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let S3PartWriter { upload_id, index, sha, upload, digest, .. } = *self;
        if hex::encode(digest.finish()) != sha.as_str() {
            upload.abort();
            return Err(StoreError::ChunkHashMismatch { upload: upload_id, index });
        }
        // S3 acknowledges a PUT or a completed upload once it is durable (Garage: on a
        // quorum of nodes).
        upload.finish()
    }
}
