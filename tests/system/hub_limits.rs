//! Hub exhaustion (issue 10, finding 4), against a real `hub serve` over mutual TLS: memory
//! stays bounded under parallel large uploads, a trickling body is cut, the per-device upload
//! limit answers 429, connections above the cap wait, the facility quota answers 507, and
//! unreferenced objects are collected after the grace period (periodic task and `hub gc`).

use super::hub_support::{self, manifest, noise, read_head, status_of, Fx, F1};
use fgw_format::ids::Sha256Hex;
use fgw_format::package::protocol::{ApiError, ObjectAck, Stored};
use reqwest::StatusCode;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const MIB: usize = 1024 * 1024;

/// Four 64 MiB objects at once from one device: the old hub buffered every body whole (at
/// least 256 MiB at once); a streaming hub holds a few buffers per connection. The bound is
/// on the hub process's peak RSS (VmHWM), not on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_large_uploads_keep_hub_memory_bounded() {
    let fx = Fx::start("");
    let c = fx.client("gw-1");
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| noise(64 * MIB, 100 + i)).collect();
    let shas: Vec<Sha256Hex> = bodies.iter().map(|b| Sha256Hex::of(b)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (body, sha) in bodies.into_iter().zip(&shas) {
        let (c, url) = (c.clone(), fx.url(&format!("/v1/objects/{sha}")));
        tasks.spawn(async move { c.put(url).body(body).send().await.unwrap().status() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    for sha in &shas {
        assert_eq!(fx.head_object(&c, sha).await, StatusCode::OK);
        assert_eq!(fx.object_size(sha), Some(64 * MIB as u64));
    }
    let peak_kib = fx.hub.peak_rss_kib();
    eprintln!("hub peak RSS after 4 x 64 MiB in parallel: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 128 * 1024, "hub peak RSS {peak_kib} KiB is not below 128 MiB");
}

/// A body that trickles (1 byte per 100 ms, far under `min_body_bytes_per_sec`) is cut once
/// `body_timeout_secs` has passed; the hub keeps serving others meanwhile and afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_cut_and_others_are_still_served() {
    let fx = Fx::start("body_timeout_secs = 1\nmin_body_bytes_per_sec = 1024\n");
    let declared = vec![0u8; 1 << 20];
    let sha = Sha256Hex::of(&declared);
    let mut s = fx.raw("gw-1").await;
    let head = format!(
        "PUT /v1/objects/{sha} HTTP/1.1\r\nhost: hub\r\ncontent-length: {}\r\n\r\n",
        declared.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut verdict = None;
    // At most 30 s of trickling; the hub must end it well before (after ~1 s).
    for _ in 0..300 {
        if s.write_all(&[0]).await.is_err() {
            verdict = Some("closed while writing".to_string());
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), read_head(&mut s)).await {
            Err(_) => continue,
            Ok(None) => verdict = Some("closed".into()),
            Ok(Some(h)) => verdict = Some(format!("status {}", status_of(&h))),
        }
        break;
    }
    let verdict = verdict.expect("the hub never cut the trickling body");
    assert!(verdict == "status 408" || verdict.starts_with("closed"), "{verdict}");

    // Others are served, and so is the same device on a new connection.
    let c = fx.client("gw-1");
    let small = noise(4096, 7);
    assert_eq!(fx.put_object(&c, &small).await.status(), StatusCode::OK);
    let c2 = fx.client("gw-2");
    assert_eq!(c2.get(fx.url("/v1/health")).send().await.unwrap().status(), StatusCode::OK);
    // Nothing of the cut body was kept.
    assert_eq!(fx.head_object(&c, &sha).await, StatusCode::NOT_FOUND);
    assert!(!fx.has_object(&sha));
}

/// With `max_uploads_per_device = 1`, a device's second upload while its first is still in
/// its body gets 429 with Retry-After; another device is not affected; once the first ends
/// the device may upload again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_per_device_limit_get_429() {
    let fx = Fx::start("max_uploads_per_device = 1\n");
    let held = noise(1024, 1);
    let sha = Sha256Hex::of(&held);
    let mut s = fx.raw("gw-1").await;
    let head = format!(
        "PUT /v1/objects/{sha} HTTP/1.1\r\nhost: hub\r\ncontent-length: {}\r\n\
         expect: 100-continue\r\n\r\n",
        held.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The hub answers 100 Continue when the handler starts reading the body: the upload is
    // under way and holds the device's slot.
    let cont = read_head(&mut s).await.expect("100 Continue");
    assert_eq!(status_of(&cont), 100, "{cont}");

    let c1 = fx.client("gw-1");
    let r = fx.put_object(&c1, &noise(2048, 2)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = r.headers().get("retry-after").expect("Retry-After").to_str().unwrap();
    assert!(retry_after.parse::<u64>().unwrap() >= 1, "{retry_after}");
    let e: ApiError = r.json().await.unwrap();
    assert!(e.error.contains("gw-1"), "{}", e.error);
    // Another device, even of the same facility, has its own slot.
    let c3 = fx.client("gw-3");
    assert_eq!(fx.put_object(&c3, &noise(2048, 3)).await.status(), StatusCode::OK);

    // The held upload completes normally, then the slot is free again.
    s.write_all(&held).await.unwrap();
    let done = read_head(&mut s).await.expect("response to the held upload");
    assert_eq!(status_of(&done), 200, "{done}");
    drop(s);
    let r = fx.put_object(&c1, &noise(2048, 2)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<ObjectAck>().await.unwrap().stored, Stored::New);
}

/// With `max_connections = 2`, a third connection is not served while two are open (its
/// handshake waits in the listen backlog), the open ones keep working, and the third goes
/// through as soon as one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_while_open_ones_work() {
    let fx = Fx::start("max_connections = 2\n");
    let mut a = fx.raw("gw-1").await;
    let b = fx.raw("gw-2").await;
    let tls = std::sync::Arc::new(fx.tls("gw-3"));
    let port = fx.hub.port;
    let mut third = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await
    });
    assert_eq!(hub_support::health_on(&mut a).await, 200);
    assert_eq!(hub_support::health_on(&mut a).await, 200);
    // Not a timing bound: under the cap the third handshake cannot complete at all; the two
    // seconds only limit how long the test looks.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), &mut third).await.is_err(),
        "a third connection was served while two were open"
    );
    drop(b);
    let mut c = tokio::time::timeout(Duration::from_secs(30), third)
        .await
        .expect("the third connection is served once one closes")
        .unwrap()
        .expect("handshake");
    assert_eq!(hub_support::health_on(&mut c).await, 200);
    assert_eq!(hub_support::health_on(&mut a).await, 200);
}

/// `facility_quota_bytes`: an object that would take a facility over its quota gets 507 with
/// a message naming the facility; duplicates cost nothing; other facilities are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facility_quota_answers_507() {
    let fx = Fx::start("facility_quota_bytes = 100000\n");
    let (c1, c3, c2) = (fx.client("gw-1"), fx.client("gw-3"), fx.client("gw-2"));
    let first = noise(60_000, 1);
    assert_eq!(fx.put_object(&c1, &first).await.status(), StatusCode::OK);
    // gw-3 is in the same facility: the quota is the facility's.
    let r = fx.put_object(&c3, &noise(60_000, 2)).await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let e: ApiError = r.json().await.unwrap();
    assert!(e.error.contains(F1) && e.error.contains("quota"), "{}", e.error);
    // Same bytes again: already held, no charge.
    let r = fx.put_object(&c3, &first).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<ObjectAck>().await.unwrap().stored, Stored::Duplicate);
    // Another facility has its own quota.
    assert_eq!(fx.put_object(&c2, &noise(60_000, 2)).await.status(), StatusCode::OK);
    // Chunked (no Content-Length) is checked at the end of the body just the same.
    let more = noise(60_000, 3);
    let r = c1
        .put(fx.url(&format!("/v1/objects/{}", Sha256Hex::of(&more))))
        .body(reqwest::Body::from(more.clone()))
        .header("transfer-encoding", "chunked")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
}

/// A body over `max_object_bytes` sent without Content-Length is cut at the limit (413).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_object_limit_is_413() {
    let fx = Fx::start("max_object_bytes = 65536\n");
    let big = noise(200_000, 4);
    let sha = Sha256Hex::of(&big);
    let mut s = fx.raw("gw-1").await;
    let head = format!(
        "PUT /v1/objects/{sha} HTTP/1.1\r\nhost: hub\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut status = None;
    for chunk in big.chunks(16 * 1024) {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
        if s.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    if let Some(h) = read_head(&mut s).await {
        status = Some(status_of(&h));
    }
    assert_eq!(status, Some(413));
    assert!(!fx.has_object(&sha));
}

fn gc_fixture(extra: &str) -> (Fx, Vec<u8>, Vec<u8>) {
    let fx = Fx::start(extra);
    (fx, noise(5000, 11), noise(5000, 12))
}

/// Upload `kept` with a manifest naming it and `orphan` with none.
async fn upload_pair(fx: &Fx, kept: &[u8], orphan: &[u8]) {
    let c = fx.client("gw-1");
    assert_eq!(fx.put_object(&c, kept).await.status(), StatusCode::OK);
    assert_eq!(fx.put_object(&c, orphan).await.status(), StatusCode::OK);
    let m = manifest(F1, "e-000000000000000000000001", 1, &[("images/001.jpg", kept)]);
    assert_eq!(fx.put_manifest(&c, &m.to_bytes()).await.status(), StatusCode::OK);
}

/// The periodic collection deletes an object no manifest references once the grace period
/// has passed, keeps a referenced one, and logs counts only (never a hash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_objects_are_collected_after_the_grace_period() {
    let (fx, kept, orphan) = gc_fixture("gc_grace_secs = 1\ngc_interval_secs = 1\n");
    upload_pair(&fx, &kept, &orphan).await;
    let (kept, orphan) = (Sha256Hex::of(&kept), Sha256Hex::of(&orphan));
    let c = fx.client("gw-1");
    let mut collected = false;
    for _ in 0..300 {
        if !fx.has_object(&orphan) {
            collected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(collected, "the unreferenced object was never collected");
    assert_eq!(fx.head_object(&c, &orphan).await, StatusCode::NOT_FOUND);
    assert_eq!(fx.head_object(&c, &kept).await, StatusCode::OK);
    assert!(fx.has_object(&kept));
    let log = std::fs::read_to_string(&fx.hub.log).unwrap();
    assert!(log.contains("garbage collection"), "no gc log line");
    assert!(!log.contains(orphan.as_str()) && !log.contains(kept.as_str()), "a hash was logged");
}

/// `hub gc` does the same on demand (here with the periodic task effectively off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_gc_collects_unreferenced_objects_and_keeps_referenced_ones() {
    let (fx, kept, orphan) = gc_fixture("gc_grace_secs = 4\ngc_interval_secs = 86400\n");
    upload_pair(&fx, &kept, &orphan).await;
    let (kept, orphan) = (Sha256Hex::of(&kept), Sha256Hex::of(&orphan));
    // Younger than the grace period (4 s): kept.
    let out = run_gc(&fx);
    assert_eq!(out["objects_deleted"], 0, "{out}");
    assert!(fx.has_object(&orphan));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let out = run_gc(&fx);
    assert_eq!(out["objects_deleted"], 1, "{out}");
    assert_eq!(out["bytes_freed"], 5000, "{out}");
    assert!(!fx.has_object(&orphan));
    assert!(fx.has_object(&kept));
    let c = fx.client("gw-1");
    assert_eq!(fx.head_object(&c, &orphan).await, StatusCode::NOT_FOUND);
    assert_eq!(fx.head_object(&c, &kept).await, StatusCode::OK);
    // A collected object can be uploaded again.
    assert_eq!(fx.put_object(&c, &noise(5000, 12)).await.status(), StatusCode::OK);
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
