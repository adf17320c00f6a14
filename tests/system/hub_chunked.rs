//! Chunked upload sessions at the hub (issue 11), against a real `hub serve` over mutual TLS:
//! an object goes up in chunks and is committed; a session survives a hub restart and
//! resumes with what the hub holds; missing, wrong and short chunks are refused with their
//! index; a commit is idempotent; sessions are per facility; an object above
//! `max_object_bytes` goes through a session; expired sessions are collected by `hub gc`.

use super::hub_support::{manifest, noise, Fx, F1};
use fgw_format::ids::{FacilityId, Sha256Hex, UploadId};
use fgw_format::package::protocol::{
    ApiError, ChunkAck, MissingChunks, ObjectAck, Stored, UploadRequest, UploadSession,
    CHUNK_SHA256_HEADER, UPLOADS,
};
use reqwest::StatusCode;
use std::path::PathBuf;
use std::time::Duration;

/// Small chunks so a test object of a few KiB has several; objects above 16 KiB cannot be
/// PUT whole.
const LIMITS: &str = "min_chunk_bytes = 4096\nmax_chunk_bytes = 65536\n\
                      max_object_bytes = 16384\nmax_upload_bytes = 1048576\n";
const CHUNK: usize = 8192;

async fn open(fx: &Fx, c: &reqwest::Client, bytes: &[u8], chunk_bytes: u64) -> reqwest::Response {
    let req = UploadRequest { sha256: Sha256Hex::of(bytes), size: bytes.len() as u64, chunk_bytes };
    c.post(fx.url(UPLOADS)).json(&req).send().await.unwrap()
}

async fn open_ok(fx: &Fx, c: &reqwest::Client, bytes: &[u8]) -> UploadSession {
    let r = open(fx, c, bytes, CHUNK as u64).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// `PUT` chunk `index` with `body`, its header naming `header_of`'s hash.
async fn put_chunk_as(
    fx: &Fx,
    c: &reqwest::Client,
    id: &UploadId,
    index: u32,
    body: &[u8],
    header_of: &[u8],
) -> reqwest::Response {
    c.put(fx.url(&format!("{UPLOADS}/{id}/chunks/{index}")))
        .header(CHUNK_SHA256_HEADER, Sha256Hex::of(header_of).as_str())
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// Send chunk `index` of `object` (chunks of [`CHUNK`] bytes) and expect its ack.
async fn send(fx: &Fx, c: &reqwest::Client, id: &UploadId, object: &[u8], index: u32) {
    let bytes = object.chunks(CHUNK).nth(index as usize).unwrap();
    let r = put_chunk_as(fx, c, id, index, bytes, bytes).await;
    assert_eq!(r.status(), StatusCode::OK, "chunk {index}");
    let ack: ChunkAck = r.json().await.unwrap();
    assert_eq!(ack, ChunkAck { index, sha256: Sha256Hex::of(bytes) });
}

async fn commit(fx: &Fx, c: &reqwest::Client, id: &UploadId) -> reqwest::Response {
    c.post(fx.url(&format!("{UPLOADS}/{id}/commit"))).send().await.unwrap()
}

async fn show(fx: &Fx, c: &reqwest::Client, id: &UploadId) -> reqwest::Response {
    c.get(fx.url(&format!("{UPLOADS}/{id}"))).send().await.unwrap()
}

fn parts_dir(fx: &Fx, id: &UploadId) -> PathBuf {
    fx.hub.data_dir().join("objects").join("parts").join(id.as_str())
}

fn run_gc(fx: &Fx) -> serde_json::Value {
    let out = std::process::Command::new(super::common::hub_bin())
        .args(["gc", "--config"])
        .arg(&fx.hub.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "hub gc: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A 3-chunk object larger than `max_object_bytes`: refused whole, accepted through a
/// session, stored byte for byte, usable in a manifest; a second commit is `duplicate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_chunk_object_is_uploaded_and_committed() {
    let fx = Fx::start(LIMITS);
    let c = fx.client("gw-1");
    let object = noise(2 * CHUNK + 3616, 41);
    let sha = Sha256Hex::of(&object);
    assert_eq!(fx.put_object(&c, &object).await.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let s = open_ok(&fx, &c, &object).await;
    let id = UploadId::derive(&FacilityId::new(F1).unwrap(), &sha);
    assert_eq!((&s.upload_id, &s.sha256, s.size), (&id, &sha, object.len() as u64));
    assert_eq!((s.chunk_bytes, s.chunks, s.received.len()), (CHUNK as u64, 3, 0));
    for index in [2, 0, 1] {
        send(&fx, &c, &id, &object, index).await;
    }
    let got: UploadSession = show(&fx, &c, &id).await.json().await.unwrap();
    assert_eq!(got.received.iter().map(|a| a.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(fx.has_part(&id, 0) && fx.has_part(&id, 2));

    let r = commit(&fx, &c, &id).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<ObjectAck>().await.unwrap(),
        ObjectAck { sha256: sha.clone(), stored: Stored::New }
    );
    assert_eq!(fx.head_object(&c, &sha).await, StatusCode::OK);
    assert_eq!(fx.object(&sha).unwrap(), object);
    // The session and its chunks are gone.
    assert_eq!(show(&fx, &c, &id).await.status(), StatusCode::NOT_FOUND);
    assert!(!fx.has_part(&id, 0));

    // The answer was lost, the device commits again: 200 duplicate.
    let r = commit(&fx, &c, &id).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<ObjectAck>().await.unwrap().stored, Stored::Duplicate);

    // The facility holds it: a manifest naming it is accepted.
    let m = manifest(F1, "e-000000000000000000000011", 1, &[("images/001.jpg", &object)]);
    assert_eq!(fx.put_manifest(&c, &m.to_bytes()).await.status(), StatusCode::OK);

    // Chunk sizes asked for are clamped to min_chunk_bytes ..= max_chunk_bytes.
    let other = noise(100_000, 42);
    let small: UploadSession = open(&fx, &c, &other, 1).await.json().await.unwrap();
    assert_eq!((small.chunk_bytes, small.chunks), (4096, 25));
    // An open session keeps its chunk size whatever is asked next.
    let again: UploadSession = open(&fx, &c, &other, 1 << 30).await.json().await.unwrap();
    assert_eq!(again.chunk_bytes, 4096);
    let big: UploadSession =
        open(&fx, &c, &noise(200_000, 43), 1 << 30).await.json().await.unwrap();
    assert_eq!((big.chunk_bytes, big.chunks), (65536, 4));
}

/// Chunk 0 is sent, the hub process restarts, the device opens again and is told it holds
/// chunk 0; it sends the rest and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_after_a_hub_restart() {
    let mut fx = Fx::start(LIMITS);
    let object = noise(3 * CHUNK - 100, 44);
    let sha = Sha256Hex::of(&object);
    let id = {
        let c = fx.client("gw-1");
        let s = open_ok(&fx, &c, &object).await;
        send(&fx, &c, &s.upload_id, &object, 0).await;
        s.upload_id
    };

    fx.hub.stop();
    fx.hub.start();

    // Another device of the same facility picks it up.
    let c = fx.client("gw-3");
    let s = open_ok(&fx, &c, &object).await;
    assert_eq!(s.upload_id, id);
    let first = &object[..CHUNK];
    assert_eq!(s.received, vec![ChunkAck { index: 0, sha256: Sha256Hex::of(first) }]);
    for index in 1..s.chunks {
        send(&fx, &c, &id, &object, index).await;
    }
    let r = commit(&fx, &c, &id).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<ObjectAck>().await.unwrap().stored, Stored::New);
    assert_eq!(fx.head_object(&c, &sha).await, StatusCode::OK);
    assert_eq!(fx.object(&sha).unwrap(), object);
}

/// Missing chunks (409 with their indexes), a chunk not matching its hash (422), a held chunk
/// sent with other bytes (409, kept), a chunk of the wrong length (400), an index past the end (404), chunks that do not make the object
/// (422, session deleted), a session too large (413), too many open sessions (429).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_and_missing_chunks_are_refused_with_their_index() {
    let fx = Fx::start(&format!("{LIMITS}max_open_uploads_per_facility = 3\n"));
    let c = fx.client("gw-1");
    let object = noise(4 * CHUNK, 45);
    let s = open_ok(&fx, &c, &object).await;
    let id = s.upload_id.clone();
    send(&fx, &c, &id, &object, 0).await;
    send(&fx, &c, &id, &object, 2).await;

    let r = commit(&fx, &c, &id).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<MissingChunks>().await.unwrap().missing, vec![1, 3]);

    // The body does not hash to its header: 422, the chunk stays missing.
    let chunk1 = &object[CHUNK..2 * CHUNK];
    let mut tampered = chunk1.to_vec();
    tampered[100] ^= 1;
    let r = put_chunk_as(&fx, &c, &id, 1, &tampered, chunk1).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json::<ApiError>().await.unwrap().error.contains("chunk 1"));
    // A held chunk is never written again: the same bytes are acknowledged, other bytes
    // (with their own hash) refused with 409, and the held bytes stay.
    let chunk0 = &object[..CHUNK];
    let r = put_chunk_as(&fx, &c, &id, 0, chunk0, chunk0).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Answered without reading the body: the connection ends, and the client is told so.
    assert_eq!(r.headers()["connection"], "close");
    let other0 = &noise(CHUNK, 47)[..];
    let r = put_chunk_as(&fx, &c, &id, 0, other0, other0).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.json::<ApiError>().await.unwrap().error.contains("chunk 0"));
    // The embedded store's session file still holds the first chunk's bytes (S3 parts cannot be
    // read back through the store's interface; its own tests cover the same refusal).
    if !crate::common::scaled_stores::active() {
        let held = std::fs::read(parts_dir(&fx, &id).join("data")).unwrap();
        assert_eq!(&held[..CHUNK], chunk0);
    }
    assert!(fx.has_part(&id, 0));
    // Not the chunk's length (its own hash in the header): 400.
    let short = &chunk1[..CHUNK - 1];
    let r = put_chunk_as(&fx, &c, &id, 1, short, short).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.json::<ApiError>().await.unwrap().error.contains("8192"));
    // Past the last chunk: 404.
    let r = put_chunk_as(&fx, &c, &id, 4, chunk1, chunk1).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // No header: 400.
    let r = c
        .put(fx.url(&format!("{UPLOADS}/{id}/chunks/1")))
        .body(chunk1.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = commit(&fx, &c, &id).await;
    assert_eq!(r.json::<MissingChunks>().await.unwrap().missing, vec![1, 3]);

    // Chunks that each match their header but are not the object (a file changed since it
    // was staged): the commit's whole-object check refuses it and the session is deleted.
    let changed = noise(4 * CHUNK, 46);
    for index in [1, 3] {
        let bytes = changed.chunks(CHUNK).nth(index).unwrap();
        let r = put_chunk_as(&fx, &c, &id, index as u32, bytes, bytes).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = commit(&fx, &c, &id).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(show(&fx, &c, &id).await.status(), StatusCode::NOT_FOUND);
    assert!(!fx.has_part(&id, 0));
    assert!(!fx.has_object(&Sha256Hex::of(&object)));
    assert_eq!(commit(&fx, &c, &id).await.status(), StatusCode::NOT_FOUND);

    // Above max_upload_bytes: 413.
    let req = UploadRequest { sha256: Sha256Hex::of(b"x"), size: 1_048_577, chunk_bytes: 4096 };
    let r = c.post(fx.url(UPLOADS)).json(&req).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json::<ApiError>().await.unwrap().error.contains("max_upload_bytes"));
    // Not an upload request: 400.
    let r = c.post(fx.url(UPLOADS)).body("{\"sha256\": 1}").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Three open sessions at most for the facility: the fourth is 429.
    for seed in [47, 48, 49] {
        assert_eq!(open(&fx, &c, &noise(5000, seed), 4096).await.status(), StatusCode::OK);
    }
    let r = open(&fx, &c, &noise(5000, 50), 4096).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.json::<ApiError>().await.unwrap().error.contains("F0001"));
    // Another facility is not limited by F0001's sessions.
    let c2 = fx.client("gw-2");
    assert_eq!(open(&fx, &c2, &noise(5000, 50), 4096).await.status(), StatusCode::OK);
}

/// A session is its facility's: another facility's device gets 404 for its id (read, chunk,
/// commit), a device of the same facility sees it, an operator may not use sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_facility_cannot_see_the_session() {
    let fx = Fx::start(LIMITS);
    let (c1, c2, c3) = (fx.client("gw-1"), fx.client("gw-2"), fx.client("gw-3"));
    let object = noise(2 * CHUNK, 51);
    let s = open_ok(&fx, &c1, &object).await;
    let id = s.upload_id.clone();
    send(&fx, &c1, &id, &object, 0).await;

    assert_eq!(show(&fx, &c2, &id).await.status(), StatusCode::NOT_FOUND);
    let chunk = &object[CHUNK..];
    assert_eq!(put_chunk_as(&fx, &c2, &id, 1, chunk, chunk).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(commit(&fx, &c2, &id).await.status(), StatusCode::NOT_FOUND);
    // F0002's own session for the same object is another session, with nothing received.
    let other = open_ok(&fx, &c2, &object).await;
    assert_ne!(other.upload_id, id);
    assert!(other.received.is_empty());

    assert_eq!(show(&fx, &c3, &id).await.status(), StatusCode::OK);
    let ops = fx.client("ops-1");
    assert_eq!(show(&fx, &ops, &id).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(open(&fx, &ops, &object, 4096).await.status(), StatusCode::FORBIDDEN);

    // F0001's session is untouched by all this.
    let s: UploadSession = show(&fx, &c1, &id).await.json().await.unwrap();
    assert_eq!(s.received.len(), 1);
    send(&fx, &c1, &id, &object, 1).await;
    assert_eq!(commit(&fx, &c1, &id).await.status(), StatusCode::OK);
    assert_eq!(fx.head_object(&c2, &Sha256Hex::of(&object)).await, StatusCode::NOT_FOUND);
}

/// A session untouched for `upload_session_ttl_secs` is deleted with its chunks by `hub gc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_collected_by_hub_gc() {
    let fx = Fx::start(&format!("{LIMITS}upload_session_ttl_secs = 4\ngc_interval_secs = 86400\n"));
    let c = fx.client("gw-1");
    let object = noise(2 * CHUNK, 52);
    let s = open_ok(&fx, &c, &object).await;
    let id = s.upload_id.clone();
    send(&fx, &c, &id, &object, 0).await;

    // Touched just now: kept.
    let out = run_gc(&fx);
    assert_eq!(out["uploads_expired"], 0, "{out}");
    assert!(fx.has_part(&id, 0));

    tokio::time::sleep(Duration::from_millis(4500)).await;
    let out = run_gc(&fx);
    assert_eq!(out["uploads_expired"], 1, "{out}");
    assert!(!fx.has_part(&id, 0));
    assert_eq!(show(&fx, &c, &id).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(commit(&fx, &c, &id).await.status(), StatusCode::NOT_FOUND);
    // Opening again starts from nothing.
    let s = open_ok(&fx, &c, &object).await;
    assert!(s.received.is_empty());
    let log = std::fs::read_to_string(&fx.hub.log).unwrap();
    assert!(!log.contains(id.as_str()), "an upload id was logged");
}
