//! Chunked upload sessions (issue 11, `docs/package-format.md#chunked-uploads`): an object of
//! any size goes up in chunks, and a cut costs at most the chunk in flight.
//!
//! - `POST /v1/uploads` opens the session of the caller's facility for an object, or returns
//!   the open one with the chunks the hub holds;
//! - `GET /v1/uploads/{upload_id}` shows it;
//! - `PUT /v1/uploads/{upload_id}/chunks/{index}` streams one chunk to the object store under
//!   the same rate rule and per-device upload slots as an object PUT, checks its length and
//!   its hash (header `x-chunk-sha256`), and records it once it is durable. The store may
//!   write it in place, so a chunk is written by one request at a time (a claim held until
//!   it is recorded) and a recorded chunk is never written again: sent again with the same
//!   hash it is acknowledged as held, with another hash refused (409);
//! - `POST /v1/uploads/{upload_id}/commit` has the store assemble the chunks into the object
//!   (the whole hash checked), holds it for the facility under its quota, and deletes the
//!   session and its chunks. A commit retried after its answer was lost is answered
//!   `duplicate`.
//!
//! Sessions are the caller's facility's only: the id is derived from facility and object,
//! and every lookup is by both, so another facility's session id is 404. Only devices may
//! use sessions. Errors name sessions, chunk indexes and limits, never data.

use super::api::{
    blocking, content_length, require_device, stream_body, ApiFailure, BodyReader, BodySink,
    HubState,
};
use super::intake::{self, IntakeError};
use super::store::{
    ChunkRecord, Opened, PartWriter, StoreError, UploadAdmission, UploadRecord, UploadState,
    WholeHash,
};
use super::Caller;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fgw_format::ids::{FacilityId, Sha256Hex, UploadId};
use fgw_format::package::protocol::{
    ChunkAck, ObjectAck, Stored, UploadRequest, UploadSession, CHUNK_SHA256_HEADER,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Largest `POST /v1/uploads` body: three fields of JSON.
const MAX_REQUEST_BYTES: u64 = 4096;

/// Why a session request failed; each maps to one status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    #[error("upload request body is not valid JSON of {{sha256, size, chunk_bytes}}")]
    BadRequest,
    #[error("upload request body is larger than {MAX_REQUEST_BYTES} bytes")]
    RequestTooLarge,
    #[error("object is larger than max_upload_bytes ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("header {CHUNK_SHA256_HEADER} is missing or not 64 lowercase hex digits")]
    BadChunkHeader,
    #[error("no upload session {upload} for this facility")]
    NoSession { upload: UploadId },
    #[error("upload {upload} has {chunks} chunk(s): there is no chunk {index}")]
    NoChunk { upload: UploadId, index: u32, chunks: u32 },
    #[error("upload {upload}: chunk {index} must be exactly {expected} bytes")]
    ChunkLength { upload: UploadId, index: u32, expected: u64 },
    #[error("upload {upload}: chunk {index} does not hash to its {CHUNK_SHA256_HEADER} header")]
    ChunkHash { upload: UploadId, index: u32 },
    #[error("upload {upload}: {} chunk(s) missing; send them, then commit again", missing.len())]
    MissingChunks { upload: UploadId, missing: Vec<u32> },
    #[error(
        "upload {upload}: the assembled chunks do not hash to {expected}; the session is \
         deleted, start again"
    )]
    AssembledHash { upload: UploadId, expected: Sha256Hex },
    #[error("facility {facility} already has {limit} open upload session(s); commit or wait")]
    TooManyOpen { facility: FacilityId, limit: u32 },
    #[error("upload {upload}: chunk {index} is being received on another request; retry")]
    ChunkBusy { upload: UploadId, index: u32 },
    #[error(
        "upload {upload}: chunk {index} is held with other bytes; a held chunk is not replaced"
    )]
    ChunkHeld { upload: UploadId, index: u32 },
}

impl UploadError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            UploadError::BadRequest | UploadError::BadChunkHeader => StatusCode::BAD_REQUEST,
            UploadError::ChunkLength { .. } => StatusCode::BAD_REQUEST,
            UploadError::RequestTooLarge | UploadError::TooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            UploadError::NoSession { .. } | UploadError::NoChunk { .. } => StatusCode::NOT_FOUND,
            UploadError::ChunkHash { .. } | UploadError::AssembledHash { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            UploadError::MissingChunks { .. } | UploadError::ChunkHeld { .. } => {
                StatusCode::CONFLICT
            }
            UploadError::TooManyOpen { .. } | UploadError::ChunkBusy { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
        }
    }

    /// Refused while (or before) its body was read: the connection ends with the answer.
    pub(crate) fn leaves_body_unread(&self) -> bool {
        matches!(
            self,
            UploadError::ChunkLength { .. }
                | UploadError::RequestTooLarge
                | UploadError::ChunkBusy { .. }
                | UploadError::ChunkHeld { .. }
        )
    }
}

/// The chunks being received now, one request per chunk.
#[derive(Debug, Default)]
pub(crate) struct ChunkClaims {
    busy: Arc<Mutex<HashSet<(UploadId, u32)>>>,
}

/// A claim on one chunk, given back on drop (also when the request is cut).
pub(crate) struct ChunkClaim {
    busy: Arc<Mutex<HashSet<(UploadId, u32)>>>,
    key: (UploadId, u32),
}

impl ChunkClaims {
    fn claim(&self, upload: &UploadId, index: u32) -> Result<ChunkClaim, ApiFailure> {
        let key = (upload.clone(), index);
        let mut busy = self.busy.lock().map_err(|_| ApiFailure::Internal)?;
        if !busy.insert(key.clone()) {
            return Err(UploadError::ChunkBusy { upload: upload.clone(), index }.into());
        }
        Ok(ChunkClaim { busy: self.busy.clone(), key })
    }
}

impl Drop for ChunkClaim {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(&self.key);
        }
    }
}

fn upload_id(param: &str) -> Result<UploadId, ApiFailure> {
    UploadId::new(param).map_err(|_| IntakeError::BadParam { param: "upload_id" }.into())
}

fn session_of(state: &UploadState) -> UploadSession {
    let r = &state.record;
    UploadSession {
        upload_id: r.upload_id.clone(),
        sha256: r.sha256.clone(),
        size: r.size,
        chunk_bytes: r.chunk_bytes,
        chunks: r.chunks(),
        received: state
            .received
            .iter()
            .map(|c| ChunkAck { index: c.index, sha256: c.sha256.clone() })
            .collect(),
    }
}

/// The body of `POST /v1/uploads`, read whole (it is a few hundred bytes at most). The
/// parse error is not passed on: serde's messages can quote the input.
async fn read_request(
    state: &HubState,
    headers: &HeaderMap,
    body: Body,
) -> Result<UploadRequest, ApiFailure> {
    match intake::declared_length(content_length(headers), MAX_REQUEST_BYTES) {
        Err(IntakeError::TooLarge { .. }) => return Err(UploadError::RequestTooLarge.into()),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let mut bytes = Vec::new();
    let mut reader = BodyReader::new(body, &state.limits);
    while let Some(chunk) = reader.next().await? {
        if bytes.len() as u64 + chunk.len() as u64 > MAX_REQUEST_BYTES {
            return Err(UploadError::RequestTooLarge.into());
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|_| UploadError::BadRequest.into())
}

/// `POST /v1/uploads`: open (or find) the caller's facility's session for an object.
pub(crate) async fn open(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadSession>, ApiFailure> {
    require_device(&caller, "open upload sessions")?;
    let req = read_request(&state, &headers, body).await?;
    let limits = &state.limits;
    if req.size > limits.max_upload_bytes {
        return Err(UploadError::TooLarge { limit: limits.max_upload_bytes }.into());
    }
    let record = UploadRecord {
        upload_id: UploadId::derive(&caller.facility, &req.sha256),
        facility: caller.facility.clone(),
        sha256: req.sha256,
        size: req.size,
        chunk_bytes: req.chunk_bytes.clamp(limits.min_chunk_bytes, limits.max_chunk_bytes),
        opened_by: caller.device.clone(),
    };
    let admit = UploadAdmission {
        max_open: limits.max_open_uploads_per_facility,
        quota: limits.facility_quota_bytes,
    };
    let (meta, objects) = (state.meta.clone(), state.objects.clone());
    let (session, opened) = blocking(move || {
        let (session, opened) = meta.open_upload(&record, admit)?;
        // Bytes left by an earlier session of this id (a crash before its chunks were
        // removed, or one replaced for another size) are not this session's.
        if opened != Opened::Existing {
            objects.remove_parts(&record.upload_id)?;
        }
        Ok((session, opened))
    })
    .await?;
    if opened != Opened::Existing {
        // Nor is a running hash of its chunks.
        state.running.forget(&session.record.upload_id);
    }
    Ok(Json(session_of(&session)))
}

/// `GET /v1/uploads/{upload_id}`: the session and the chunks the hub holds.
pub(crate) async fn show(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<UploadSession>, ApiFailure> {
    require_device(&caller, "read upload sessions")?;
    let upload = upload_id(&id)?;
    let (meta, facility, key) = (state.meta.clone(), caller.facility.clone(), upload.clone());
    let session = blocking(move || meta.upload_state(&facility, &key)).await?;
    let session = session.ok_or(UploadError::NoSession { upload })?;
    Ok(Json(session_of(&session)))
}

/// One chunk's body into the object store: exactly `expected` bytes (cut as soon as it
/// passes them), its hash checked by the writer.
struct ChunkSink {
    writer: Box<dyn PartWriter>,
    upload: UploadId,
    index: u32,
    expected: u64,
    /// The session's whole-object hash over the chunks before this one, when they arrived
    /// in order: continued with this chunk's bytes.
    running: Option<ring::digest::Context>,
}

impl ChunkSink {
    fn wrong_length(&self) -> ApiFailure {
        UploadError::ChunkLength {
            upload: self.upload.clone(),
            index: self.index,
            expected: self.expected,
        }
        .into()
    }
}

impl BodySink for ChunkSink {
    type Done = Option<ring::digest::Context>;

    fn push(&mut self, bytes: &[u8]) -> Result<(), ApiFailure> {
        if self.writer.written().saturating_add(bytes.len() as u64) > self.expected {
            return Err(self.wrong_length());
        }
        self.writer.write(bytes)?;
        if let Some(r) = self.running.as_mut() {
            r.update(bytes);
        }
        Ok(())
    }

    fn finish(self) -> Result<Option<ring::digest::Context>, ApiFailure> {
        if self.writer.written() != self.expected {
            return Err(self.wrong_length());
        }
        self.writer.finish()?;
        Ok(self.running)
    }
}

/// Per session, the SHA-256 of its chunks `0..next` while they arrive in order, so a commit
/// need not read the object back to check it (that read was a fifth of a loopback upload's
/// time). Kept in this process's memory only: after a restart, on another hub node, or
/// when chunks came out of order, the commit hashes the stored bytes instead. Sound because
/// a recorded chunk is never written again (claims and the held check).
#[derive(Default)]
pub(crate) struct RunningHashes {
    map: Mutex<std::collections::HashMap<UploadId, (u32, ring::digest::Context)>>,
}

/// Sessions followed at most; past it the map starts again (it only saves work).
const MAX_RUNNING: usize = 4096;

impl RunningHashes {
    /// The hash to continue with chunk `index`, if the chunks before it came in order.
    fn before(&self, upload: &UploadId, index: u32) -> Option<ring::digest::Context> {
        if index == 0 {
            return Some(ring::digest::Context::new(&ring::digest::SHA256));
        }
        let map = self.map.lock().ok()?;
        map.get(upload).filter(|(next, _)| *next == index).map(|(_, ctx)| ctx.clone())
    }

    /// Chunk `index` is recorded, and `ctx` covers chunks `0..=index`.
    fn recorded(&self, upload: &UploadId, index: u32, ctx: ring::digest::Context) {
        let Ok(mut map) = self.map.lock() else { return };
        let follows = index == 0 || map.get(upload).is_some_and(|(next, _)| *next == index);
        if !follows {
            return;
        }
        if map.len() >= MAX_RUNNING && !map.contains_key(upload) {
            map.clear();
        }
        map.insert(upload.clone(), (index.saturating_add(1), ctx));
    }

    /// The whole object's hash if all `chunks` came in order; forgets the session.
    fn take_whole(&self, upload: &UploadId, chunks: u32) -> Option<Sha256Hex> {
        let (next, ctx) = self.map.lock().ok()?.remove(upload)?;
        (next == chunks).then(|| Sha256Hex::new(hex::encode(ctx.finish())).ok()).flatten()
    }

    fn forget(&self, upload: &UploadId) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(upload);
        }
    }
}

/// `PUT /v1/uploads/{upload_id}/chunks/{index}`: store one chunk durably, then record it.
/// An answer given before the body was read (a refusal, or a chunk already held) says
/// `Connection: close`: the unread body ends the connection, and a client that finished
/// writing it must not send its next request there.
pub(crate) async fn put_chunk(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path((id, index)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut body_read = false;
    let answer = receive_chunk(&state, &caller, &id, &index, &headers, body, &mut body_read).await;
    let mut resp = answer.into_response();
    if !body_read {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn receive_chunk(
    state: &HubState,
    caller: &Caller,
    id: &str,
    index: &str,
    headers: &HeaderMap,
    body: Body,
    body_read: &mut bool,
) -> Result<Json<ChunkAck>, ApiFailure> {
    require_device(caller, "send chunks")?;
    let upload = upload_id(id)?;
    let index: u32 = index.parse().map_err(|_| IntakeError::BadParam { param: "index" })?;
    let sha = headers
        .get(CHUNK_SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Sha256Hex::new(v).ok())
        .ok_or(UploadError::BadChunkHeader)?;
    let declared = intake::declared_length(content_length(headers), u64::MAX)?;

    // Claimed before the session is read, and held until the chunk is recorded: a
    // concurrent request for the chunk cannot write over it once it is acknowledged.
    let _claim = state.chunks.claim(&upload, index)?;
    // Read, not written: recording the chunk touches the session (a write here too was a
    // second fsync per chunk). A session collected while its chunk arrives is not recorded
    // to, and the device opens it again.
    let (meta, objects, facility, key) =
        (state.meta.clone(), state.objects.clone(), caller.facility.clone(), upload.clone());
    let found = blocking(move || {
        let Some(session) = meta.upload_state(&facility, &key)? else { return Ok(None) };
        // Recorded, and its bytes still in the store (a damaged store lost them: the commit
        // asks for the chunk again, and it is written again).
        let held = match session.received.iter().find(|c| c.index == index) {
            Some(c) if objects.part_size(&key, index)? == Some(c.size) => Some(c.sha256.clone()),
            _ => None,
        };
        Ok(Some((session, held)))
    })
    .await?;
    let (session, held) = found.ok_or_else(|| UploadError::NoSession { upload: upload.clone() })?;
    let record = &session.record;
    let expected = record.chunk_len(index).ok_or_else(|| UploadError::NoChunk {
        upload: upload.clone(),
        index,
        chunks: record.chunks(),
    })?;
    if declared.is_some_and(|n| n != expected) {
        return Err(UploadError::ChunkLength { upload, index, expected }.into());
    }
    if let Some(held) = held {
        // Held: never written again. The same bytes are acknowledged (the device's earlier
        // answer was lost); other bytes are refused (the commit's whole-object check would
        // fail with them anyway).
        if held == sha {
            return Ok(Json(ChunkAck { index, sha256: sha }));
        }
        return Err(UploadError::ChunkHeld { upload, index }.into());
    }
    let _slot = state.uploads.acquire(&caller.device, state.limits.max_uploads_per_device)?;

    let offset = u64::from(index) * record.chunk_bytes;
    let (objects, key, chunk_sha) = (state.objects.clone(), upload.clone(), sha.clone());
    let writer = blocking(move || objects.part_writer(&key, index, offset, &chunk_sha)).await?;
    let running = state.running.before(&upload, index);
    let sink = ChunkSink { writer, upload: upload.clone(), index, expected, running };
    // A body cut short ends the connection by its own error (closes_connection).
    *body_read = true;
    let running = stream_body(&state.limits, body, sink).await?;

    let chunk = ChunkRecord { index, sha256: sha.clone(), size: expected };
    let (meta, facility, key) = (state.meta.clone(), caller.facility.clone(), upload.clone());
    // The session may have been committed or expired meanwhile: its chunks are collected.
    if !blocking(move || meta.record_chunk(&facility, &key, &chunk)).await? {
        return Err(UploadError::NoSession { upload }.into());
    }
    if let Some(ctx) = running {
        state.running.recorded(&upload, index, ctx);
    }
    Ok(Json(ChunkAck { index, sha256: sha }))
}

/// The commit of a session that is gone: `duplicate` if the facility committed it lately and
/// still holds the object, else 404.
async fn gone(
    state: &HubState,
    caller: &Caller,
    upload: UploadId,
) -> Result<ObjectAck, ApiFailure> {
    let (meta, objects, facility, key) =
        (state.meta.clone(), state.objects.clone(), caller.facility.clone(), upload.clone());
    let held = blocking(move || {
        let Some(sha) = meta.committed_upload(&facility, &key)? else { return Ok(None) };
        let held = meta.held_size(&facility, &sha)?.is_some() && objects.has(&sha)?;
        Ok(held.then_some(sha))
    })
    .await?;
    match held {
        Some(sha256) => Ok(ObjectAck { sha256, stored: Stored::Duplicate }),
        None => Err(UploadError::NoSession { upload }.into()),
    }
}

/// `POST /v1/uploads/{upload_id}/commit`: assemble, check, store, hold, delete the session.
pub(crate) async fn commit(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ObjectAck>, ApiFailure> {
    require_device(&caller, "commit uploads")?;
    let upload = upload_id(&id)?;
    // Assembly writes the whole object: it takes one of the device's upload slots.
    let _slot = state.uploads.acquire(&caller.device, state.limits.max_uploads_per_device)?;
    let quota = state.limits.facility_quota_bytes;

    let (meta, facility, key) = (state.meta.clone(), caller.facility.clone(), upload.clone());
    let Some(session) = blocking(move || meta.upload_state(&facility, &key)).await? else {
        return gone(&state, &caller, upload).await.map(Json);
    };
    let record = session.record;
    let lengths = record.chunk_lengths();

    // Every chunk recorded with its length and its bytes present, and the object within the
    // quota (one the facility holds already costs nothing), before anything is written.
    let (meta, objects, facility, key) =
        (state.meta.clone(), state.objects.clone(), caller.facility.clone(), upload.clone());
    let (sha, size, want) = (record.sha256.clone(), record.size, lengths.clone());
    let missing = blocking(move || {
        let mut missing = Vec::new();
        let mut received = session.received.iter().peekable();
        for (index, &len) in want.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            while received.next_if(|c| c.index < index).is_some() {}
            let recorded = received.next_if(|c| c.index == index).is_some_and(|c| c.size == len);
            if !recorded || objects.part_size(&key, index)? != Some(len) {
                missing.push(index);
            }
        }
        if missing.is_empty()
            && meta.held_size(&facility, &sha)?.is_none()
            && meta.facility_usage(&facility)?.saturating_add(size) > quota
        {
            return Err(StoreError::QuotaExceeded { facility, quota });
        }
        Ok(missing)
    })
    .await?;
    if !missing.is_empty() {
        return Err(UploadError::MissingChunks { upload, missing }.into());
    }

    // Chunks that came in order to this process were hashed into the whole as they arrived.
    let whole = match state.running.take_whole(&upload, record.chunks()) {
        Some(h) if h == record.sha256 => WholeHash::Checked,
        Some(_) => WholeHash::Mismatch,
        None => WholeHash::Check,
    };
    let (objects, key, sha) = (state.objects.clone(), upload.clone(), record.sha256.clone());
    let assembled = match whole {
        WholeHash::Mismatch => Err(StoreError::HashMismatch { expected: sha }),
        whole => tokio::task::spawn_blocking(move || objects.assemble(&key, &sha, &lengths, whole))
            .await
            .map_err(|_| ApiFailure::Internal)?,
    };
    match assembled {
        Ok(_) => {}
        Err(StoreError::HashMismatch { expected }) => {
            // The chunks are not this object (a file changed since staging): start again.
            let (meta, objects, facility, key) = (
                state.meta.clone(),
                state.objects.clone(),
                caller.facility.clone(),
                upload.clone(),
            );
            state.running.forget(&upload);
            blocking(move || {
                meta.drop_upload(&facility, &key)?;
                objects.remove_parts(&key)
            })
            .await?;
            return Err(UploadError::AssembledHash { upload, expected }.into());
        }
        Err(StoreError::PartMissing { index, .. }) => {
            // A concurrent commit of the same session may have finished and removed the
            // chunks: answer as it would be answered now.
            let (meta, facility, key) =
                (state.meta.clone(), caller.facility.clone(), upload.clone());
            if blocking(move || meta.upload_state(&facility, &key)).await?.is_none() {
                return gone(&state, &caller, upload).await.map(Json);
            }
            return Err(UploadError::MissingChunks { upload, missing: vec![index] }.into());
        }
        Err(e) => return Err(e.into()),
    }

    // A blob refused here for the quota is held by no one and goes at the next collection;
    // the session stays, so the commit can be retried.
    let (meta, facility, sha) =
        (state.meta.clone(), caller.facility.clone(), record.sha256.clone());
    let stored = blocking(move || meta.hold_object(&facility, &sha, size, quota)).await?;

    let (meta, facility, key) = (state.meta.clone(), caller.facility.clone(), upload.clone());
    blocking(move || meta.finish_upload(&facility, &key)).await?;
    // The object is stored and held: chunks left by a failure here are collected as
    // orphans, so the device still gets its answer.
    let (objects, key) = (state.objects.clone(), upload.clone());
    match tokio::task::spawn_blocking(move || objects.remove_parts(&key)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "chunks of a committed session not removed"),
        Err(_) => tracing::error!("removing the chunks of a committed session failed"),
    }
    Ok(Json(ObjectAck { sha256: record.sha256, stored }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> UploadId {
        UploadId::new(format!("{n:02x}").repeat(16)).unwrap()
    }

    fn feed(r: &RunningHashes, up: &UploadId, index: u32, bytes: &[u8]) -> bool {
        let Some(mut ctx) = r.before(up, index) else { return false };
        ctx.update(bytes);
        r.recorded(up, index, ctx);
        true
    }

    #[test]
    fn the_running_hash_follows_chunks_in_order_only() {
        let r = RunningHashes::default();
        let object: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<&[u8]> = object.chunks(1000).collect();
        let up = id(1);
        for (i, c) in chunks.iter().enumerate() {
            assert!(feed(&r, &up, i as u32, c));
        }
        assert_eq!(r.take_whole(&up, 3), Some(Sha256Hex::of(&object)));
        // Taken: the next commit of the session hashes the stored bytes.
        assert_eq!(r.take_whole(&up, 3), None);

        // Out of order: chunk 2 before 1 is not followed, and the whole is unknown.
        let up = id(2);
        assert!(feed(&r, &up, 0, chunks[0]));
        assert!(!feed(&r, &up, 2, chunks[2]));
        assert!(feed(&r, &up, 1, chunks[1]));
        assert_eq!(r.take_whole(&up, 3), None);

        // Fewer chunks than the session has: unknown, not a mismatch.
        let up = id(3);
        assert!(feed(&r, &up, 0, chunks[0]));
        assert_eq!(r.take_whole(&up, 3), None);
    }
}
