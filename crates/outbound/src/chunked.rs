//! Chunked uploads of large objects (`docs/package-format.md#chunked-uploads`): open (or
//! find) the session with `POST /v1/uploads`, whose answer lists the chunks the hub holds and
//! the chunk size to use; `PUT` each missing chunk; commit. A cut costs at most the chunk in
//! flight: the next attempt's `POST` shows what arrived.
//!
//! Each chunk is read into memory and hashed there, then sent from memory, while the next
//! one is read (so the disk, the hash and the network overlap with one chunk in flight on
//! the wire, and a cut still costs at most that chunk). Memory: two chunks (16 MiB at the
//! default 8 MiB). A chunk's header hash is the hash of the very bytes sent. The whole
//! object's hash is checked once, by the hub's commit (hashing it here too cost a quarter of
//! the CPU both ends spend on a loopback upload): a 422 there deletes the session. When this
//! attempt sent every chunk, the bytes read from the staged file are not the object named,
//! and the package is refused ([`UplinkError::LocalCorrupt`]); when some chunks were held
//! from an earlier attempt, the session is opened again and every chunk sent.
//!
//! A 404 from a session route means the session is gone (expired, collected, or committed by
//! another attempt): it is opened again, once per upload; a second 404 is
//! [`UplinkError::SessionGone`] (retried later), not a pause of the uplink. A chunk whose
//! request fails outright is followed by a `GET` of the session, since the hub's early 404 is
//! usually lost to the connection it closes.

use crate::body::memory_body;
use crate::uplink::{failure, json_answer, Uplink, UplinkError};
use bytes::Bytes;
use fgw_format::package::protocol::{
    ChunkAck, MissingChunks, ObjectAck, UploadRequest, UploadSession, CHUNK_SHA256_HEADER, UPLOADS,
};
use fgw_format::package::FileEntry;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) const ROUTE_OPEN: &str = "POST /v1/uploads";
pub(crate) const ROUTE_PUT_CHUNK: &str = "PUT /v1/uploads/chunks";
pub(crate) const ROUTE_COMMIT: &str = "POST /v1/uploads/commit";

/// Rate at which a commit's assembly (reading and hashing every chunk at the hub) is assumed
/// to run at worst, for its timeout: a slow disk.
const ASSEMBLY_BYTES_PER_SEC: u64 = 8 << 20;

/// Largest chunk size this box follows (two chunks are held in memory); a hub asking for
/// more is refused as a protocol error. The box's own `chunk_bytes` may be larger.
const MAX_FOLLOWED_CHUNK: u64 = 64 << 20;

/// One chunk read from the staged file, with the SHA-256 (lowercase hex) of its bytes.
struct ChunkBytes {
    bytes: Bytes,
    sha256: String,
}

/// Reads the chunks of one staged object.
struct ChunkReader {
    path: PathBuf,
    entry: FileEntry,
    chunk_bytes: u64,
}

impl ChunkReader {
    /// Reads and hashes chunk `index` (blocking: run off the async threads).
    fn read(&self, index: u32) -> Result<ChunkBytes, UplinkError> {
        let offset = u64::from(index) * self.chunk_bytes;
        let len = self.chunk_bytes.min(self.entry.size.saturating_sub(offset));
        let io = |source| UplinkError::Io { path: self.path.clone(), source };
        let file = std::fs::File::open(&self.path).map_err(io)?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => {}
            // Shorter than its manifest says: not the object named.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(self.corrupt()),
            Err(e) => return Err(io(e)),
        }
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &buf));
        Ok(ChunkBytes { bytes: Bytes::from(buf), sha256 })
    }

    fn corrupt(&self) -> UplinkError {
        UplinkError::LocalCorrupt { path: self.path.clone(), sha256: self.entry.sha256.clone() }
    }
}

/// Reads chunk `index` on a blocking thread; the reader comes back with it.
fn read_ahead(
    reader: ChunkReader,
    index: u32,
) -> tokio::task::JoinHandle<(ChunkReader, Result<ChunkBytes, UplinkError>)> {
    tokio::task::spawn_blocking(move || {
        let chunk = reader.read(index);
        (reader, chunk)
    })
}

enum Commit {
    Done,
    Missing(Vec<u32>),
    /// 422: the chunks do not make the object; the hub deleted the session.
    NotTheObject,
}

/// `ceil(size / chunk_bytes)`, at least 1 (an empty object is one empty chunk).
fn chunk_count(size: u64, chunk_bytes: u64) -> u64 {
    size.div_ceil(chunk_bytes).max(1)
}

/// Checks the hub's session against the object asked for: the same object, a usable chunk
/// size, a chunk count that follows from it, and held chunks among them.
fn check_session(
    s: &UploadSession,
    entry: &FileEntry,
    own_chunk_bytes: u64,
) -> Result<(), UplinkError> {
    let bad = |what: String| Err(UplinkError::Protocol { route: ROUTE_OPEN, what });
    if s.sha256 != entry.sha256 || s.size != entry.size {
        return bad(format!("session {} is for another object than {}", s.upload_id, entry.sha256));
    }
    if s.chunk_bytes == 0
        || s.chunk_bytes > MAX_FOLLOWED_CHUNK.max(own_chunk_bytes)
        || u64::from(s.chunks) != chunk_count(s.size, s.chunk_bytes)
    {
        return bad(format!(
            "session {}: {} chunks of {} bytes do not make {} bytes",
            s.upload_id, s.chunks, s.chunk_bytes, s.size
        ));
    }
    if let Some(c) = s.received.iter().find(|c| c.index >= s.chunks) {
        return bad(format!("session {} holds chunk {} of {}", s.upload_id, c.index, s.chunks));
    }
    Ok(())
}

impl Uplink {
    /// Sends one object through an upload session, reopening it once if it vanishes.
    pub(crate) async fn put_chunked(
        &self,
        entry: &FileEntry,
        path: &Path,
    ) -> Result<(), UplinkError> {
        let mut reopened = false;
        loop {
            match self.chunked_attempt(entry, path).await {
                Err(UplinkError::SessionGone { route, upload_id }) if !reopened => {
                    tracing::info!(object = %entry.sha256, upload = %upload_id, route, "upload session gone at the hub; opening it again");
                    reopened = true;
                }
                other => return other,
            }
        }
    }

    async fn chunked_attempt(&self, entry: &FileEntry, path: &Path) -> Result<(), UplinkError> {
        let session = self.open_session(entry).await?;
        check_session(&session, entry, self.chunk_bytes)?;
        let held: HashSet<u32> = session.received.iter().map(|c| c.index).collect();
        let reader = ChunkReader {
            path: path.to_path_buf(),
            entry: entry.clone(),
            chunk_bytes: session.chunk_bytes,
        };
        // Every chunk from this attempt's reads: a whole that does not hash right is ours.
        let sent_all = held.is_empty();
        let not_the_object = || {
            if sent_all {
                UplinkError::LocalCorrupt { path: path.to_path_buf(), sha256: entry.sha256.clone() }
            } else {
                UplinkError::SessionGone {
                    route: ROUTE_COMMIT,
                    upload_id: session.upload_id.clone(),
                }
            }
        };
        let missing: Vec<u32> = (0..session.chunks).filter(|i| !held.contains(i)).collect();
        let reader = self.send_chunks(&session, path, reader, &missing).await?;
        tracing::debug!(object = %entry.sha256, upload = %session.upload_id, chunks = session.chunks, held = held.len(), "chunks sent; committing");
        let missing = match self.commit(&session, entry).await? {
            Commit::Done => return Ok(()),
            Commit::NotTheObject => return Err(not_the_object()),
            Commit::Missing(missing) => missing,
        };
        // Chunks lost at the hub between their ack and the commit: send what it lists, once.
        if let Some(&index) = missing.iter().find(|&&i| i >= session.chunks) {
            return Err(UplinkError::Protocol {
                route: ROUTE_COMMIT,
                what: format!(
                    "session {} asks for chunk {index} of {}",
                    session.upload_id, session.chunks
                ),
            });
        }
        self.send_chunks(&session, path, reader, &missing).await?;
        match self.commit(&session, entry).await? {
            Commit::Done => Ok(()),
            Commit::NotTheObject => Err(not_the_object()),
            Commit::Missing(missing) => Err(UplinkError::Retryable {
                route: ROUTE_COMMIT,
                reason: format!(
                    "session {}: {} chunk(s) still missing after resending",
                    session.upload_id,
                    missing.len()
                ),
            }),
        }
    }

    /// Sends `indexes` in order, reading each next chunk while the one before is sent.
    async fn send_chunks(
        &self,
        session: &UploadSession,
        path: &Path,
        reader: ChunkReader,
        indexes: &[u32],
    ) -> Result<ChunkReader, UplinkError> {
        let join = |e: tokio::task::JoinError| UplinkError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        };
        let mut next = match indexes.first() {
            Some(&first) => read_ahead(reader, first),
            None => return Ok(reader),
        };
        for (k, &index) in indexes.iter().enumerate() {
            let (reader, chunk) = next.await.map_err(join)?;
            let chunk = chunk?;
            let Some(&after) = indexes.get(k + 1) else {
                self.put_chunk(session, index, chunk).await?;
                return Ok(reader);
            };
            next = read_ahead(reader, after);
            self.put_chunk(session, index, chunk).await?;
        }
        unreachable!("the last index returns inside the loop")
    }

    async fn open_session(&self, entry: &FileEntry) -> Result<UploadSession, UplinkError> {
        let req = UploadRequest {
            sha256: entry.sha256.clone(),
            size: entry.size,
            chunk_bytes: self.chunk_bytes,
        };
        let resp = self
            .client
            .post(format!("{}{UPLOADS}", self.base()))
            .timeout(self.timeout)
            .json(&req)
            .send()
            .await
            .map_err(|e| self.unreachable(ROUTE_OPEN, e))?;
        if !resp.status().is_success() {
            return Err(failure(ROUTE_OPEN, resp).await);
        }
        json_answer(ROUTE_OPEN, resp, "session").await
    }

    async fn put_chunk(
        &self,
        session: &UploadSession,
        index: u32,
        chunk: ChunkBytes,
    ) -> Result<(), UplinkError> {
        let len = chunk.bytes.len() as u64;
        let sha256 = chunk.sha256;

        let body = memory_body(chunk.bytes, self.throttle.clone());
        let resp = self
            .client
            .put(format!("{}{UPLOADS}/{}/chunks/{index}", self.base(), session.upload_id))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            .header(CHUNK_SHA256_HEADER, &sha256)
            .timeout(self.body_timeout(len))
            .body(body)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let failed = self.unreachable(ROUTE_PUT_CHUNK, e);
                // The hub answers 404 for a vanished session before reading the body and
                // then closes the connection, so the answer is often lost to a broken pipe:
                // ask whether the session is still there.
                if self.session_gone(session).await {
                    return Err(UplinkError::SessionGone {
                        route: ROUTE_PUT_CHUNK,
                        upload_id: session.upload_id.clone(),
                    });
                }
                return Err(failed);
            }
        };
        match resp.status() {
            StatusCode::NOT_FOUND => {
                return Err(UplinkError::SessionGone {
                    route: ROUTE_PUT_CHUNK,
                    upload_id: session.upload_id.clone(),
                })
            }
            // Another request of ours is writing the chunk, or the hub holds it with other
            // bytes (listed after our session was read): the next attempt sees the session
            // as it is.
            StatusCode::CONFLICT => {
                let reason = failure(ROUTE_PUT_CHUNK, resp).await.to_string();
                return Err(UplinkError::Retryable { route: ROUTE_PUT_CHUNK, reason });
            }
            s if !s.is_success() => return Err(failure(ROUTE_PUT_CHUNK, resp).await),
            _ => {}
        }
        let ack: ChunkAck = json_answer(ROUTE_PUT_CHUNK, resp, "chunk acknowledgement").await?;
        if ack.index != index || ack.sha256.as_str() != sha256 {
            return Err(UplinkError::Protocol {
                route: ROUTE_PUT_CHUNK,
                what: format!(
                    "session {}: acknowledgement does not match chunk {index}",
                    session.upload_id
                ),
            });
        }
        Ok(())
    }

    /// True only if the hub says the session does not exist (`GET` answers 404); any other
    /// answer or failure leaves the caller's own error standing.
    async fn session_gone(&self, session: &UploadSession) -> bool {
        let resp = self
            .client
            .get(format!("{}{UPLOADS}/{}", self.base(), session.upload_id))
            .timeout(self.timeout)
            .send()
            .await;
        matches!(resp, Ok(r) if r.status() == StatusCode::NOT_FOUND)
    }

    async fn commit(
        &self,
        session: &UploadSession,
        entry: &FileEntry,
    ) -> Result<Commit, UplinkError> {
        let timeout = self.timeout + Duration::from_secs(session.size / ASSEMBLY_BYTES_PER_SEC);
        let resp = self
            .client
            .post(format!("{}{UPLOADS}/{}/commit", self.base(), session.upload_id))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(ROUTE_COMMIT, e))?;
        match resp.status() {
            StatusCode::UNPROCESSABLE_ENTITY => return Ok(Commit::NotTheObject),
            StatusCode::NOT_FOUND => {
                return Err(UplinkError::SessionGone {
                    route: ROUTE_COMMIT,
                    upload_id: session.upload_id.clone(),
                })
            }
            StatusCode::CONFLICT => {
                let body = resp.bytes().await.map_err(|e| self.unreachable(ROUTE_COMMIT, e))?;
                return Ok(Commit::Missing(match serde_json::from_slice::<MissingChunks>(&body) {
                    Ok(m) if !m.missing.is_empty() => m.missing,
                    // No usable list: send every chunk again.
                    _ => (0..session.chunks).collect(),
                }));
            }
            s if !s.is_success() => return Err(failure(ROUTE_COMMIT, resp).await),
            _ => {}
        }
        let ack: ObjectAck = json_answer(ROUTE_COMMIT, resp, "object acknowledgement").await?;
        if ack.sha256 != entry.sha256 {
            return Err(UplinkError::Protocol {
                route: ROUTE_COMMIT,
                what: format!(
                    "session {}: acknowledgement names another object",
                    session.upload_id
                ),
            });
        }
        Ok(Commit::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fgw_format::ids::{FacilityId, Sha256Hex, UploadId};
    use fgw_format::package::protocol::ChunkAck;

    fn entry_of(bytes: &[u8]) -> FileEntry {
        FileEntry {
            path: "images/001.jpg".into(),
            sha256: Sha256Hex::of(bytes),
            size: bytes.len() as u64,
            media_type: "image/jpeg".into(),
        }
    }

    fn session(entry: &FileEntry, chunk_bytes: u64, chunks: u32) -> UploadSession {
        UploadSession {
            upload_id: UploadId::derive(&FacilityId::new("F0001").unwrap(), &entry.sha256),
            sha256: entry.sha256.clone(),
            size: entry.size,
            chunk_bytes,
            chunks,
            received: vec![],
        }
    }

    #[test]
    fn chunk_counts_round_up() {
        assert_eq!(chunk_count(0, 10), 1);
        assert_eq!(chunk_count(1, 10), 1);
        assert_eq!(chunk_count(10, 10), 1);
        assert_eq!(chunk_count(11, 10), 2);
        assert_eq!(chunk_count(20 << 20, 1 << 20), 20);
    }

    #[test]
    fn sessions_that_do_not_fit_the_object_are_refused() {
        let e = entry_of(&[7u8; 2500]);
        check_session(&session(&e, 1000, 3), &e, 1000).unwrap();
        let bad = |s: UploadSession| {
            matches!(
                check_session(&s, &e, 1000),
                Err(UplinkError::Protocol { route: ROUTE_OPEN, .. })
            )
        };
        assert!(bad(session(&e, 1000, 2)), "too few chunks");
        assert!(bad(session(&e, 0, 3)), "zero chunk size");
        // More than this box holds in memory (two chunks): refused.
        let huge = MAX_FOLLOWED_CHUNK + 1;
        assert!(bad(UploadSession { size: huge, ..session(&e, huge, 1) }));
        assert!(bad(UploadSession { size: 2499, ..session(&e, 1000, 3) }));
        assert!(bad(UploadSession { sha256: Sha256Hex::of(b"other"), ..session(&e, 1000, 3) }));
        let held = ChunkAck { index: 3, sha256: Sha256Hex::of(b"x") };
        assert!(bad(UploadSession { received: vec![held], ..session(&e, 1000, 3) }));
    }

    #[test]
    fn chunks_are_hashed_as_read() {
        let bytes: Vec<u8> = (0..2500u32).map(|i| (i % 253) as u8).collect();
        let e = entry_of(&bytes);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("obj");
        std::fs::write(&p, &bytes).unwrap();
        let r = ChunkReader { path: p.clone(), entry: e.clone(), chunk_bytes: 1000 };
        for (i, want) in bytes.chunks(1000).enumerate() {
            let c = r.read(i as u32).unwrap();
            assert_eq!(&c.bytes[..], want);
            assert_eq!(c.sha256, Sha256Hex::of(want).to_string());
        }
        // A byte less than the manifest says: not the object named.
        std::fs::write(&p, &bytes[..2499]).unwrap();
        assert!(matches!(r.read(2), Err(UplinkError::LocalCorrupt { .. })));
        r.read(1).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(r.read(0), Err(UplinkError::Io { .. })));
    }
}
