//! Issue 11 benchmarks, run by `bench/uplink.sh` (ignored in the suite: they measure, they do
//! not assert a speed). Each prints `RESULT …` lines that docs/benchmarks.md records.
//!
//! - Throughput over loopback TLS: the gateway's uplink (default chunking, as the box runs
//!   it) against `curl -T` putting objects of the same size to the same `hub serve`, with the
//!   same device certificate, alternating, `FGW_BENCH_ROUNDS` rounds of `FGW_BENCH_MIB` MiB.
//! - Bytes re-sent after a cut at 50% of a `FGW_BENCH_CUT_MIB` MiB object (1 GiB by default):
//!   a TCP proxy counts the bytes going up and closes every connection at half the object;
//!   the upload is then run again. Re-sent = bytes of both attempts − object size (TLS records,
//!   headers and the manifest included, so an upper bound).

use super::hub_support::{noise, Fx};
use super::uplink_chunked::{proxy, stage_exam, ProxyCtl};
use fgw_format::ids::Sha256Hex;
use fgw_outbound::uplink::{Uplink, UplinkConfig};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

const MIB: u64 = 1 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The box's uplink with its default chunking (or `FGW_BENCH_CHUNK_MIB`, and
/// `FGW_BENCH_SINGLE_PUT_MIB` for the largest object sent in one request), for `gw-1` at
/// `port`.
fn default_uplink(fx: &Fx, port: u16) -> Uplink {
    let d = fx.root.join("gw-1");
    let defaults = UplinkConfig::default();
    let chunk_bytes = env_u64("FGW_BENCH_CHUNK_MIB", defaults.chunk_bytes / MIB) * MIB;
    Uplink::new(&UplinkConfig {
        hub_url: format!("https://127.0.0.1:{port}"),
        ca_cert: d.join("ca.crt"),
        client_cert: d.join("device.crt"),
        client_key: d.join("device.key"),
        chunk_bytes,
        single_put_max_bytes: env_u64(
            "FGW_BENCH_SINGLE_PUT_MIB",
            defaults.single_put_max_bytes.min(chunk_bytes) / MIB,
        ) * MIB,
        ..defaults
    })
    .unwrap()
}

fn exam(n: u64) -> String {
    format!("e-{n:024x}")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/uplink.sh runs it"]
async fn bench_uplink_throughput_against_curl() {
    let mib = env_u64("FGW_BENCH_MIB", 256);
    let rounds = env_u64("FGW_BENCH_ROUNDS", 3);
    let bytes = mib * MIB;
    // Room for curl's single PUT of the whole object.
    let fx = Fx::start(&format!("max_object_bytes = {}", bytes.max(256 * MIB)));
    let up = default_uplink(&fx, fx.hub.port);
    let d = fx.root.join("gw-1");
    let (mut ours, mut curls) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // curl: one PUT of a fresh object read from a file, as a desktop tool would send it.
        let object = noise(bytes as usize, 1000 + round);
        let file = fx.root.join("curl.bin");
        std::fs::write(&file, &object).unwrap();
        let sha = Sha256Hex::of(&object);
        drop(object);
        let t = Instant::now();
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--http1.1"])
            .arg("--cacert")
            .arg(d.join("ca.crt"))
            .arg("--cert")
            .arg(d.join("device.crt"))
            .arg("--key")
            .arg(d.join("device.key"))
            .arg("-T")
            .arg(&file)
            .arg(fx.url(&format!("/v1/objects/{sha}")))
            .output()
            .expect("curl");
        let curl_s = t.elapsed().as_secs_f64();
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(code.starts_with('2'), "curl: {code} {}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_file(&file).unwrap();

        // The uplink: a fresh object of the same size, staged in an outbox on the same disk.
        let object = noise(bytes as usize, 2000 + round);
        let staged = stage_exam(&fx.root.join(format!("outbox-{round}")), &exam(round), &object);
        drop(object);
        let t = Instant::now();
        up.upload(&staged).await.unwrap();
        let ours_s = t.elapsed().as_secs_f64();
        println!(
            "round {round}: uplink {:.1} MiB/s, curl {:.1} MiB/s",
            mib as f64 / ours_s,
            mib as f64 / curl_s
        );
        ours.push(mib as f64 / ours_s);
        curls.push(mib as f64 / curl_s);
    }
    let (o, c) = (median(ours), median(curls));
    println!(
        "RESULT uplink_throughput object_mib={mib} rounds={rounds} uplink_mib_s={o:.1} \
         curl_mib_s={c:.1} ratio={:.2}",
        o / c
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/uplink.sh runs it"]
async fn bench_bytes_resent_after_a_cut_at_half() {
    let bytes = env_u64("FGW_BENCH_CUT_MIB", 1024) * MIB;
    let fx = Fx::start("");
    let object = noise(bytes as usize, 77);
    let staged = stage_exam(&fx.root.join("outbox"), &exam(77), &object);
    drop(object);
    let ctl = Arc::new(ProxyCtl::default());
    let port = proxy(fx.hub.port, ctl.clone()).await;
    let up = default_uplink(&fx, port);
    let chunk = UplinkConfig::default().chunk_bytes;

    let progress = up.progress();

    ctl.cut_at.store(bytes / 2, Ordering::SeqCst);
    assert!(up.upload(&staged).await.is_err(), "the cut upload cannot succeed");
    let first = ctl.up.load(Ordering::SeqCst);
    let first_body = progress.bytes_sent();
    ctl.cut_at.store(0, Ordering::SeqCst);
    ctl.up.store(0, Ordering::SeqCst);
    up.upload(&staged).await.unwrap();
    let second = ctl.up.load(Ordering::SeqCst);
    let bodies = progress.bytes_sent();
    // Wire: TLS records, headers and the manifest included (an upper bound). Bodies: the
    // object's bytes the uplink handed to the connection, over both attempts.
    let resent_wire = (first + second).saturating_sub(bytes);
    let resent_body = bodies.saturating_sub(bytes);
    println!(
        "RESULT resume_after_cut object_mib={} chunk_mib={} wire_first={first} \
         wire_second={second} body_first={first_body} body_total={bodies} \
         resent_body_bytes={resent_body} resent_body_chunks={:.2} resent_wire_bytes={resent_wire} \
         resent_wire_chunks={:.2}",
        bytes / MIB,
        chunk / MIB,
        resent_body as f64 / chunk as f64,
        resent_wire as f64 / chunk as f64
    );
}
