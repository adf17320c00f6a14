//! Chunked uploads of large objects (`docs/package-format.md#chunked-uploads`): open (or
//! find) the session with `POST /v1/uploads`, whose answer lists the chunks the hub holds and
//! the chunk size to use; `PUT` each missing chunk; commit. A cut costs at most the chunk in
//! flight: the next attempt's `POST` shows what arrived.
//!
//! The staged file is read in ranges, never whole. Before anything is sent, one pass over the
//! file hashes every chunk and the whole object; a file that no longer matches its name is
//! refused there ([`UplinkError::LocalCorrupt`]), and each chunk is hashed again as it is sent
//! (the hub's commit checks the whole object too).
//!
//! A 404 from a session route means the session is gone (expired, collected, or committed by
//! another attempt): it is opened again, once per upload; a second 404 is
//! [`UplinkError::SessionGone`] (retried later), not a pause of the uplink. A chunk whose
//! request fails outright is followed by a `GET` of the session, since the hub's early 404 is
//! usually lost to the connection it closes.

use crate::body::{range_body, FileRange};
use crate::uplink::{failure, json_answer, send_failed, Uplink, UplinkError};
use fgw_format::ids::Sha256Hex;
use fgw_format::package::protocol::{
    ChunkAck, MissingChunks, ObjectAck, UploadRequest, UploadSession, CHUNK_SHA256_HEADER, UPLOADS,
};
use fgw_format::package::FileEntry;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

pub(crate) const ROUTE_OPEN: &str = "POST /v1/uploads";
pub(crate) const ROUTE_PUT_CHUNK: &str = "PUT /v1/uploads/chunks";
pub(crate) const ROUTE_COMMIT: &str = "POST /v1/uploads/commit";

/// Rate at which a commit's assembly (reading and hashing every chunk at the hub) is assumed
/// to run at worst, for its timeout: a slow disk.
const ASSEMBLY_BYTES_PER_SEC: u64 = 8 << 20;

/// Read buffer of the hashing pass.
const HASH_BUF: usize = 256 * 1024;

/// The chunk hashes of a staged file at one chunk size (the whole file's hash checked).
#[derive(Debug)]
struct ChunkPlan {
    chunk_bytes: u64,
    /// SHA-256 (lowercase hex) of each chunk, by index.
    hashes: Vec<String>,
}

enum Commit {
    Done,
    Missing(Vec<u32>),
}

/// `ceil(size / chunk_bytes)`, at least 1 (an empty object is one empty chunk).
fn chunk_count(size: u64, chunk_bytes: u64) -> u64 {
    size.div_ceil(chunk_bytes).max(1)
}

/// Checks the hub's session against the object asked for: the same object, a usable chunk
/// size, a chunk count that follows from it, and held chunks among them.
fn check_session(s: &UploadSession, entry: &FileEntry) -> Result<(), UplinkError> {
    let bad = |what: String| Err(UplinkError::Protocol { route: ROUTE_OPEN, what });
    if s.sha256 != entry.sha256 || s.size != entry.size {
        return bad(format!("session {} is for another object than {}", s.upload_id, entry.sha256));
    }
    if s.chunk_bytes == 0 || u64::from(s.chunks) != chunk_count(s.size, s.chunk_bytes) {
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

/// One pass over the staged file: each chunk's hash, and the whole file's, which must be the
/// name it is sent under. Blocking (run off the async threads).
fn plan_chunks(path: &Path, entry: &FileEntry, chunk_bytes: u64) -> Result<ChunkPlan, UplinkError> {
    let io = |source| UplinkError::Io { path: path.to_path_buf(), source };
    let corrupt =
        || UplinkError::LocalCorrupt { path: path.to_path_buf(), sha256: entry.sha256.clone() };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut whole = ring::digest::Context::new(&ring::digest::SHA256);
    let chunks = chunk_count(entry.size, chunk_bytes);
    let mut hashes = Vec::with_capacity(usize::try_from(chunks).unwrap_or(0));
    let mut buf = vec![0u8; HASH_BUF];
    let mut left = entry.size;
    for _ in 0..chunks {
        let mut chunk = ring::digest::Context::new(&ring::digest::SHA256);
        let mut in_chunk = chunk_bytes.min(left);
        left -= in_chunk;
        while in_chunk > 0 {
            let n = in_chunk.min(HASH_BUF as u64) as usize;
            match file.read_exact(&mut buf[..n]) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(corrupt()),
                Err(e) => return Err(io(e)),
            }
            chunk.update(&buf[..n]);
            whole.update(&buf[..n]);
            in_chunk -= n as u64;
        }
        hashes.push(hex::encode(chunk.finish()));
    }
    // More bytes than the manifest says: not the object named either.
    if file.read(&mut buf[..1]).map_err(io)? != 0
        || hex::encode(whole.finish()) != entry.sha256.as_str()
    {
        return Err(corrupt());
    }
    Ok(ChunkPlan { chunk_bytes, hashes })
}

impl Uplink {
    /// Sends one object through an upload session, reopening it once if it vanishes.
    pub(crate) async fn put_chunked(
        &self,
        entry: &FileEntry,
        path: &Path,
    ) -> Result<(), UplinkError> {
        let mut plan = None;
        let mut reopened = false;
        loop {
            match self.chunked_attempt(entry, path, &mut plan).await {
                Err(UplinkError::SessionGone { route, upload_id }) if !reopened => {
                    tracing::info!(object = %entry.sha256, upload = %upload_id, route, "upload session gone at the hub; opening it again");
                    reopened = true;
                }
                other => return other,
            }
        }
    }

    async fn chunked_attempt(
        &self,
        entry: &FileEntry,
        path: &Path,
        plan: &mut Option<ChunkPlan>,
    ) -> Result<(), UplinkError> {
        let session = self.open_session(entry).await?;
        check_session(&session, entry)?;
        let plan = match plan {
            Some(p) if p.chunk_bytes == session.chunk_bytes => p,
            _ => {
                let (p, e, cb) = (path.to_path_buf(), entry.clone(), session.chunk_bytes);
                let made = tokio::task::spawn_blocking(move || plan_chunks(&p, &e, cb))
                    .await
                    .map_err(|e| UplinkError::Io {
                        path: path.to_path_buf(),
                        source: std::io::Error::other(e.to_string()),
                    })??;
                plan.insert(made)
            }
        };
        let held: HashMap<u32, &Sha256Hex> =
            session.received.iter().map(|c| (c.index, &c.sha256)).collect();
        let sent_before = held.len();
        for index in 0..session.chunks {
            // A held chunk with other bytes (another attempt's file) is replaced.
            if held.get(&index).map(|s| s.as_str()) == Some(plan.hashes[index as usize].as_str()) {
                continue;
            }
            self.put_chunk(&session, entry, path, plan, index).await?;
        }
        tracing::debug!(object = %entry.sha256, upload = %session.upload_id, chunks = session.chunks, held = sent_before, "chunks sent; committing");
        let missing = match self.commit(&session, entry).await? {
            Commit::Done => return Ok(()),
            Commit::Missing(missing) => missing,
        };
        // Chunks lost at the hub between their ack and the commit: send what it lists, once.
        for &index in &missing {
            if index >= session.chunks {
                return Err(UplinkError::Protocol {
                    route: ROUTE_COMMIT,
                    what: format!(
                        "session {} asks for chunk {index} of {}",
                        session.upload_id, session.chunks
                    ),
                });
            }
            self.put_chunk(&session, entry, path, plan, index).await?;
        }
        match self.commit(&session, entry).await? {
            Commit::Done => Ok(()),
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

    async fn open_session(&self, entry: &FileEntry) -> Result<UploadSession, UplinkError> {
        let req = UploadRequest {
            sha256: entry.sha256.clone(),
            size: entry.size,
            chunk_bytes: self.chunk_bytes,
        };
        let resp = self
            .client
            .post(format!("{}{UPLOADS}", self.base))
            .timeout(self.timeout)
            .json(&req)
            .send()
            .await
            .map_err(|e| send_failed(ROUTE_OPEN, e))?;
        if !resp.status().is_success() {
            return Err(failure(ROUTE_OPEN, resp).await);
        }
        json_answer(ROUTE_OPEN, resp, "session").await
    }

    async fn put_chunk(
        &self,
        session: &UploadSession,
        entry: &FileEntry,
        path: &Path,
        plan: &ChunkPlan,
        index: u32,
    ) -> Result<(), UplinkError> {
        let offset = u64::from(index) * session.chunk_bytes;
        let len = session.chunk_bytes.min(session.size - offset);
        let sha256 = plan.hashes[index as usize].clone();
        let range = FileRange { path: path.to_path_buf(), offset, len, sha256: sha256.clone() };
        let (body, outcome) = range_body(range, self.throttle.clone())
            .map_err(|f| self.local_fault(f, entry, path))?;
        let resp = self
            .client
            .put(format!("{}{UPLOADS}/{}/chunks/{index}", self.base, session.upload_id))
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
                if let Some(f) = outcome.take() {
                    return Err(self.local_fault(f, entry, path));
                }
                let failed = send_failed(ROUTE_PUT_CHUNK, e);
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
            .get(format!("{}{UPLOADS}/{}", self.base, session.upload_id))
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
            .post(format!("{}{UPLOADS}/{}/commit", self.base, session.upload_id))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| send_failed(ROUTE_COMMIT, e))?;
        match resp.status() {
            StatusCode::NOT_FOUND => {
                return Err(UplinkError::SessionGone {
                    route: ROUTE_COMMIT,
                    upload_id: session.upload_id.clone(),
                })
            }
            StatusCode::CONFLICT => {
                let body = resp.bytes().await.map_err(|e| send_failed(ROUTE_COMMIT, e))?;
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
    use fgw_format::ids::{FacilityId, UploadId};
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
        check_session(&session(&e, 1000, 3), &e).unwrap();
        let bad = |s: UploadSession| {
            matches!(check_session(&s, &e), Err(UplinkError::Protocol { route: ROUTE_OPEN, .. }))
        };
        assert!(bad(session(&e, 1000, 2)), "too few chunks");
        assert!(bad(session(&e, 0, 3)), "zero chunk size");
        assert!(bad(UploadSession { size: 2499, ..session(&e, 1000, 3) }));
        assert!(bad(UploadSession { sha256: Sha256Hex::of(b"other"), ..session(&e, 1000, 3) }));
        let held = ChunkAck { index: 3, sha256: Sha256Hex::of(b"x") };
        assert!(bad(UploadSession { received: vec![held], ..session(&e, 1000, 3) }));
    }

    #[test]
    fn the_plan_hashes_each_chunk_and_checks_the_whole() {
        let bytes: Vec<u8> = (0..2500u32).map(|i| (i % 253) as u8).collect();
        let e = entry_of(&bytes);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("obj");
        std::fs::write(&p, &bytes).unwrap();
        let plan = plan_chunks(&p, &e, 1000).unwrap();
        let want: Vec<String> = bytes.chunks(1000).map(|c| Sha256Hex::of(c).to_string()).collect();
        assert_eq!(plan.hashes, want);

        // One byte changed, a byte more, a byte less: refused before anything is sent.
        for changed in [
            {
                let mut b = bytes.clone();
                b[1234] ^= 1;
                b
            },
            [bytes.as_slice(), b"x"].concat(),
            bytes[..2499].to_vec(),
        ] {
            std::fs::write(&p, &changed).unwrap();
            assert!(
                matches!(plan_chunks(&p, &e, 1000), Err(UplinkError::LocalCorrupt { .. })),
                "{}",
                changed.len()
            );
        }
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(plan_chunks(&p, &e, 1000), Err(UplinkError::Io { .. })));
    }
}
