//! Issue 11: large objects go up in chunks, and a cut costs at most the chunk in flight.
//!
//! The gateway's uplink (fgw-outbound `Uplink`, as the pipeline drives it) sends a staged
//! package with a 20 MiB object to a real `hub serve` over mTLS, through a TCP proxy in the
//! test that counts the bytes going up and can cut the connection or hold the hub's answer:
//!
//! - cut after ~half the bytes: the first attempt fails (retry later); the second sends only
//!   what the hub lacks (fewer than two chunks' worth sent twice), and the object and the
//!   package are at the hub;
//! - the session vanishes mid-upload (expired and collected while a chunk's answer is held):
//!   the chunk after it gets 404, the uplink opens the session again within the same attempt
//!   and the upload completes, instead of pausing the uplink;
//! - the staged file changes between a cut attempt and its resume: the hub's commit refuses
//!   the chunks, the session is opened again, every chunk is sent from the file, the commit
//!   refuses them again and the uplink refuses the package as changed on the box; nothing is
//!   stored under its name.
//!
//! The package is planted in an outbox the way `Outbox::put` writes one (objects, manifest,
//! and the manifest's seal with the outbox key), since the gate does not make 20 MiB objects
//! from synthetic exports quickly; `Outbox::load` re-checks it as the pipeline does.

use super::hub_support::{manifest, noise, Fx, F1};
use fgw_format::ids::{FacilityId, PackageId, Sha256Hex};
use fgw_format::package::protocol::{Stored, UploadRequest, UploadSession, CHUNK_SHA256_HEADER};
use fgw_format::package::Manifest;
use fgw_outbound::outbox::{Outbox, StagedPackage};
use fgw_outbound::uplink::{Disposition, Uplink, UplinkConfig};
use reqwest::StatusCode;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: u64 = 1 << 20;
const OBJECT_BYTES: u64 = 20 * MIB;

/// A package holding `object`, planted as `Outbox::put` writes one (the seal is the hex
/// HMAC-SHA-256 of the manifest bytes under the outbox key), loaded back through its checks.
fn stage(dir: &Path, object: &[u8]) -> StagedPackage {
    stage_exam(dir, "e-000000000000000000000011", object)
}

/// [`stage`] for the exam `exam_pid`.
pub(crate) fn stage_exam(dir: &Path, exam_pid: &str, object: &[u8]) -> StagedPackage {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[5u8; 32]);
    let outbox = Outbox::open(dir, key.clone()).unwrap();
    let m = manifest(F1, exam_pid, 1, &[("images/001.jpg", object)]);
    let bytes = m.to_bytes();
    let id: PackageId = Manifest::id_of(&bytes);
    std::fs::write(dir.join("objects").join(Sha256Hex::of(object).as_str()), object).unwrap();
    std::fs::write(
        dir.join("seals").join(format!("{id}.mac")),
        ring::hmac::sign(&key, &bytes)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::write(dir.join("packages").join(format!("{id}.json")), &bytes).unwrap();
    outbox.load(&id).unwrap()
}

/// What the proxy does, shared with the test.
#[derive(Default)]
pub(crate) struct ProxyCtl {
    /// Bytes from the gateway to the hub (TLS records: bodies, headers, handshakes).
    pub(crate) up: AtomicU64,
    /// Close every connection once `up` reaches this (0 = never).
    pub(crate) cut_at: AtomicU64,
    /// Once `up` reaches this (0 = never), hold the next answer of the hub until the hub's
    /// hub whose config is `sessions_db` has no upload session left (at most `HOLD_LIMIT`).
    hold_at: AtomicU64,
    held: AtomicBool,
    sessions_db: std::sync::Mutex<Option<std::path::PathBuf>>,
}

/// How long a held answer may wait for the session's collection: the hub collects every
/// second, but a loaded CI machine may be slow to; waiting on the fact, not a guess.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// Whether the hub whose config is `config` holds no upload session (read-only; a database
/// that cannot be read counts as one with sessions left).
fn no_sessions(config: &std::path::Path) -> bool {
    if let Some(rows) =
        crate::common::scaled_stores::query_rows(config, "SELECT COUNT(*) FROM upload_sessions")
    {
        return rows.first().is_some_and(|r| r[0] == "0");
    }
    let db = config.parent().unwrap().join("data").join("hub.sqlite");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(c) = rusqlite::Connection::open_with_flags(&db, flags) else { return false };
    c.query_row("SELECT COUNT(*) FROM upload_sessions", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|n| n == 0)
}

/// A TCP proxy to `hub_port` on loopback; returns its port.
pub(crate) async fn proxy(hub_port: u16, ctl: Arc<ProxyCtl>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let ctl = ctl.clone();
            tokio::spawn(async move {
                let Ok(hub) = TcpStream::connect(("127.0.0.1", hub_port)).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut hr, mut hw) = hub.into_split();
                let up_ctl = ctl.clone();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let cut = up_ctl.cut_at.load(Ordering::SeqCst);
                        let before = up_ctl.up.load(Ordering::SeqCst);
                        // Never past the cut: read at most up to it.
                        let room =
                            if cut == 0 { buf.len() as u64 } else { cut.saturating_sub(before) };
                        if room == 0 {
                            return;
                        }
                        let want = room.min(buf.len() as u64) as usize;
                        let n = match cr.read(&mut buf[..want]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        up_ctl.up.fetch_add(n as u64, Ordering::SeqCst);
                        if hw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match hr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let hold = ctl.hold_at.load(Ordering::SeqCst);
                        if hold != 0
                            && ctl.up.load(Ordering::SeqCst) >= hold
                            && !ctl.held.swap(true, Ordering::SeqCst)
                        {
                            let db = ctl.sessions_db.lock().unwrap().clone();
                            let deadline = tokio::time::Instant::now() + HOLD_LIMIT;
                            while tokio::time::Instant::now() < deadline {
                                if db.as_deref().is_some_and(no_sessions) {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                // Either direction ending closes both (a cut drops the hub side too).
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
    port
}

/// Waits until the hub no longer holds a claim on any chunk of the session for `object` (the
/// cut request's chunk stays claimed while the store winds its write down: an S3 part takes
/// a round trip to abort). Probes go straight to the hub, not through the counting proxy, and
/// carry no body: a free chunk answers 400 (wrong length, nothing written), a claimed one 429.
async fn until_no_chunk_is_claimed(fx: &Fx, object: &[u8]) {
    let c = fx.client("gw-1");
    let request = UploadRequest {
        sha256: Sha256Hex::of(object),
        size: object.len() as u64,
        chunk_bytes: MIB,
    };
    let session: UploadSession = c
        .post(fx.url("/v1/uploads"))
        .json(&request)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + HOLD_LIMIT;
    'wait: loop {
        for index in 0..session.chunks {
            if session.received.iter().any(|r| r.index == index) {
                continue;
            }
            let path = format!("/v1/uploads/{}/chunks/{index}", session.upload_id);
            let status = c
                .put(fx.url(&path))
                .header(CHUNK_SHA256_HEADER, Sha256Hex::of(b"").as_str())
                .header(reqwest::header::CONTENT_LENGTH, "0")
                .body(Vec::new())
                .send()
                .await
                .unwrap()
                .status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert!(tokio::time::Instant::now() < deadline, "chunk {index} stays claimed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'wait;
            }
            assert_eq!(status, StatusCode::BAD_REQUEST, "chunk {index}: a probe writes nothing");
        }
        return;
    }
}

pub(crate) fn uplink_via(fx: &Fx, port: u16) -> Uplink {
    let d = fx.pki("gw-1");
    Uplink::new(&UplinkConfig {
        hub_url: format!("https://127.0.0.1:{port}"),
        ca_cert: d.join("ca.crt"),
        client_cert: d.join("device.crt"),
        client_key: d.join("device.key"),
        single_put_max_bytes: MIB,
        chunk_bytes: MIB,
        ..UplinkConfig::default()
    })
    .unwrap()
}

/// The object is stored at the hub for F0001, byte for byte, and the package is listed.
async fn assert_at_hub(fx: &Fx, staged: &StagedPackage, object: &[u8]) {
    let sha = Sha256Hex::of(object);
    let c = fx.client("gw-1");
    assert_eq!(fx.head_object(&c, &sha).await, StatusCode::OK);
    let stored = fx.object(&sha).unwrap();
    assert_eq!(Sha256Hex::of(&stored), sha, "the stored blob is the object");
    let listing: Vec<serde_json::Value> = fx
        .client("ops-1")
        .get(fx.url(&format!("/v1/facilities/{F1}/exams")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listing.iter().any(|e| e["package_id"] == staged.id().as_str()),
        "package not listed: {listing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_upload_resumes_with_the_chunks_the_hub_lacks() {
    let fx = Fx::start("");
    let object = noise(OBJECT_BYTES as usize, 11);
    let staged = stage(&fx.root.join("outbox"), &object);
    let ctl = Arc::new(ProxyCtl::default());
    let port = proxy(fx.hub.port, ctl.clone()).await;
    let up = uplink_via(&fx, port);
    let progress = up.progress();

    // 1. The line drops after half the object.
    ctl.cut_at.store(OBJECT_BYTES / 2, Ordering::SeqCst);
    let e = up.upload(&staged).await.expect_err("the cut upload cannot succeed");
    assert_eq!(e.disposition(), Disposition::RetryLater, "{e}");
    let first = ctl.up.load(Ordering::SeqCst);
    // At the cut (a request on a second connection may slip a record past it).
    assert!((OBJECT_BYTES / 2..OBJECT_BYTES / 2 + 64 * 1024).contains(&first), "cut at {first}");
    let c = fx.client("gw-1");
    assert_eq!(fx.head_object(&c, &Sha256Hex::of(&object)).await, StatusCode::NOT_FOUND);

    // 2. The line is back: the same upload again sends what the hub lacks.
    ctl.cut_at.store(0, Ordering::SeqCst);
    // The hub answers 429 for the cut request's chunk until its store has wound that write
    // down (the gateway's outbox retries later); the bytes measured are the resume's.
    until_no_chunk_is_claimed(&fx, &object).await;
    ctl.up.store(0, Ordering::SeqCst);
    let sent_before = progress.bytes_sent();
    let ack = up.upload(&staged).await.expect("the upload resumes");
    assert_eq!((&ack.package_id, ack.stored.clone()), (staged.id(), Stored::New));
    assert_eq!(ack.facility_id, FacilityId::new(F1).unwrap());
    let second = ctl.up.load(Ordering::SeqCst);
    // Everything that went up twice (plus headers, TLS and the manifest) is under two chunks.
    assert!(
        first + second < OBJECT_BYTES + 2 * MIB,
        "resent too much: {first} + {second} bytes for a {OBJECT_BYTES}-byte object"
    );
    assert!(second < OBJECT_BYTES / 2 + 2 * MIB, "second attempt sent {second} bytes");
    let bodies = progress.bytes_sent() - sent_before;
    assert!(bodies < OBJECT_BYTES / 2 + 2 * MIB, "second attempt's bodies: {bodies} bytes");
    assert!(bodies >= OBJECT_BYTES / 2 - 2 * MIB, "the rest was sent: {bodies} bytes");
    assert_eq!(progress.rate_cap_now(), None, "no cap configured");
    assert_at_hub(&fx, &staged, &object).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_vanishes_mid_upload_is_opened_again() {
    // Sessions untouched for a second are collected every second.
    let fx = Fx::start("upload_session_ttl_secs = 1\ngc_interval_secs = 1");
    let object = noise(OBJECT_BYTES as usize, 12);
    let staged = stage(&fx.root.join("outbox"), &object);
    let ctl = Arc::new(ProxyCtl::default());
    let port = proxy(fx.hub.port, ctl.clone()).await;
    let up = uplink_via(&fx, port);

    // Mid-upload, the hub's answer to a chunk is held until the session has been collected:
    // the next chunk gets 404.
    *ctl.sessions_db.lock().unwrap() = Some(fx.hub.config.clone());
    ctl.hold_at.store(OBJECT_BYTES / 4, Ordering::SeqCst);
    let ack = up.upload(&staged).await.expect("one attempt survives the vanished session");
    assert_eq!(ack.package_id, *staged.id());
    assert!(ctl.held.load(Ordering::SeqCst), "the answer was held");
    // The collected chunks went again: the new session started empty.
    let sent = ctl.up.load(Ordering::SeqCst);
    assert!(sent > OBJECT_BYTES + OBJECT_BYTES / 8, "only {sent} bytes: was the session lost?");
    assert_at_hub(&fx, &staged, &object).await;
}

/// The staged file changes between a cut attempt and its resume (a damaged disk): the resumed
/// chunks do not make the object, the hub's commit refuses them and deletes the session, the
/// uplink opens it again within the attempt and sends every chunk; refused again, the file
/// itself no longer matches its name and the package is refused; nothing is stored under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_between_attempts_is_never_stored_under_its_name() {
    let fx = Fx::start("");
    let object = noise(OBJECT_BYTES as usize, 13);
    let staged = stage(&fx.root.join("outbox"), &object);
    let ctl = Arc::new(ProxyCtl::default());
    let port = proxy(fx.hub.port, ctl.clone()).await;
    let up = uplink_via(&fx, port);

    ctl.cut_at.store(OBJECT_BYTES / 2, Ordering::SeqCst);
    let e = up.upload(&staged).await.expect_err("the cut upload cannot succeed");
    assert_eq!(e.disposition(), Disposition::RetryLater, "{e}");
    ctl.cut_at.store(0, Ordering::SeqCst);

    // The last byte of the staged object flips (the chunks the hub holds are unchanged).
    let (entry, path) = staged.files().iter().find(|(e, _)| e.size == OBJECT_BYTES).unwrap();
    let (sha, path) = (entry.sha256.clone(), path.to_path_buf());
    let mut changed = object.clone();
    *changed.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &changed).unwrap();

    until_no_chunk_is_claimed(&fx, &object).await;
    let e = up.upload(&staged).await.expect_err("a changed file cannot be uploaded");
    assert!(matches!(e, fgw_outbound::uplink::UplinkError::LocalCorrupt { .. }), "{e}");
    assert_eq!(e.disposition(), Disposition::RefusePackage, "{e}");
    let c = fx.client("gw-1");
    assert_eq!(fx.head_object(&c, &sha).await, StatusCode::NOT_FOUND);
    assert!(!fx.has_object(&sha));
}

/// Issue 15: the hub node a box is sending a large object to is killed (SIGKILL) mid-object.
/// The box's next attempt goes to the next node of `hub_urls`, which shares the stores (one
/// data directory here; one PostgreSQL database and S3 prefix under `FGW_TEST_STORES`): it
/// finds the session with the chunks the dead node recorded, sends only the rest, and the
/// package is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_object_loses_nothing_and_the_next_node_finishes() {
    let fx = Fx::start("");
    let mut b = fx.hub.second_node();
    b.start();
    let object = noise(OBJECT_BYTES as usize, 12);
    let staged = stage(&fx.root.join("outbox"), &object);
    let d = fx.pki("gw-1");
    let up = Uplink::new(&UplinkConfig {
        hub_urls: vec![fx.hub.url(), b.url()],
        ca_cert: d.join("ca.crt"),
        client_cert: d.join("device.crt"),
        client_key: d.join("device.key"),
        single_put_max_bytes: MIB,
        chunk_bytes: MIB,
        ..UplinkConfig::default()
    })
    .unwrap();
    let progress = up.progress();
    let node_a = nix::unistd::Pid::from_raw(fx.hub.pid().unwrap() as i32);

    // Node A dies once half the object has gone up to it.
    let watch = progress.clone();
    let killer = async move {
        while watch.bytes_sent() < OBJECT_BYTES / 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        nix::sys::signal::kill(node_a, nix::sys::signal::Signal::SIGKILL).unwrap();
        watch.bytes_sent()
    };
    let (first, at_kill) = tokio::join!(up.upload(&staged), killer);
    assert!(first.is_err(), "the upload to the killed node cannot have finished");
    assert!(at_kill < OBJECT_BYTES, "killed mid-object ({at_kill} bytes sent)");

    // The outbox tries again later; the uplink has moved on to node B.
    let before = progress.bytes_sent();
    let mut busy = 0;
    let ack = loop {
        match up.upload(&staged).await {
            Ok(ack) => break ack,
            Err(e) if busy < 20 => {
                busy += 1;
                assert_eq!(e.disposition(), Disposition::RetryLater, "{e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the upload did not finish on node B: {e:?}"),
        }
    };
    assert_eq!((&ack.package_id, ack.stored.clone()), (staged.id(), Stored::New));
    let second = progress.bytes_sent() - before;
    assert!(
        second <= OBJECT_BYTES - at_kill + 3 * MIB,
        "node B was sent {second} bytes; node A had received about {at_kill} of {OBJECT_BYTES}"
    );

    // Stored once, byte for byte, and listed by node B.
    let stored = fx.object(&Sha256Hex::of(&object)).unwrap();
    assert_eq!(Sha256Hex::of(&stored), Sha256Hex::of(&object));
    let ops = fx.root.join("ops-1");
    let listing = super::hub_support::off_runtime(|| b.list(&ops, F1));
    assert_eq!(listing.len(), 1, "{listing:?}");
    assert_eq!(listing[0]["package_id"], staged.id().as_str());
}
