//! The S3 store against a real Garage cluster of three nodes (scripts/lib/garage.sh), started
//! once per test process in a temporary folder and stopped when the process ends (a watchdog
//! shell waits for it). The test bodies of every object store (store/object_conformance.rs)
//! run here too, each under a key prefix of its own in the shared bucket.
//!
//! Without a garage binary ($GARAGE_BIN, PATH, target/tools/bin/garage) the tests fail, saying
//! how to get one, unless FGW_SKIP_S3=1.

use super::*;
use crate::store::object_conformance::{object_store_conformance, write_part};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};

/// The smallest part S3 takes: multipart code paths are reached with small objects.
const PART: u64 = 5 << 20;

/// A running Garage cluster.
struct Cluster {
    dir: PathBuf,
    env: HashMap<String, String>,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn garage_lib() -> PathBuf {
    workspace().join("scripts/lib/garage.sh")
}

/// `source scripts/lib/garage.sh; <script>` with the arguments as `$1`, `$2`, ….
fn garage_sh(script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("source \"$0\" && {script}"))
        .arg(garage_lib())
        .args(args)
        .current_dir(workspace())
        .stdin(Stdio::null());
    cmd
}

/// Whether the tests may run; panics (no garage, and no FGW_SKIP_S3=1).
fn garage_present() -> bool {
    let found = garage_sh("garage_bin >/dev/null", &[]).status().is_ok_and(|s| s.success());
    if !found && std::env::var("FGW_SKIP_S3").as_deref() != Ok("1") {
        panic!(
            "the S3 store tests need Garage: set GARAGE_BIN, put garage on PATH or run \
             scripts/lib/ensure-garage.sh (cargo install garage --locked --version 2.5.0 \
             --root target/tools); FGW_SKIP_S3=1 skips them"
        );
    }
    found
}

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("t{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

impl Cluster {
    fn start(nodes: u32) -> Cluster {
        let dir = std::env::temp_dir().join(format!("fgw-garage-{}", unique()));
        let d = dir.to_str().expect("temp dir is UTF-8");
        let out = garage_sh("garage_up \"$1\" \"$2\"", &[d, &nodes.to_string()])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "garage_up {d} {nodes} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Stops the cluster and removes its folder once this test process has ended.
        let pid = std::process::id().to_string();
        let watchdog = garage_sh(
            "(while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; garage_down \"$2\"; \
             rm -rf \"$2\") >/dev/null 2>&1 &",
            &[&pid, d],
        )
        .status();
        assert!(watchdog.is_ok_and(|s| s.success()), "watchdog starts");
        let env = std::fs::read_to_string(dir.join("garage.env")).expect("garage.env written");
        let env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        // garage_up returns once an object went through every node's S3 endpoint.
        Cluster { dir, env }
    }

    fn settings(&self, endpoint: &str, prefix: &str) -> S3Settings {
        S3Settings {
            endpoint: self.env[endpoint].clone(),
            bucket: self.env["S3_BUCKET"].clone(),
            region: self.env["S3_REGION"].clone(),
            access_key_id: self.env["S3_ACCESS_KEY_ID"].clone(),
            secret_access_key: self.env["S3_SECRET_ACCESS_KEY"].clone(),
            prefix: Some(format!("{prefix}/")),
            part_bytes: PART,
        }
    }

    /// A store on the node whose endpoint is `endpoint` (`S3_ENDPOINT`, `S3_ENDPOINT2`).
    fn store(&self, endpoint: &str, prefix: &str) -> S3ObjectStore {
        S3ObjectStore::open(&self.settings(endpoint, prefix)).unwrap()
    }

    /// Kill node `n` (SIGKILL).
    fn kill_node(&self, n: u32) {
        let d = self.dir.to_str().unwrap();
        let ok = garage_sh("garage_stop_node \"$1\" \"$2\"", &[d, &n.to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()));
    }
}

/// The cluster the tests share, `None` when skipped.
fn shared() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER.get_or_init(|| garage_present().then(|| Cluster::start(3))).as_ref()
}

/// An empty store of its own (a fresh prefix) on node 1.
fn fresh() -> Option<((), S3ObjectStore)> {
    Some(((), shared()?.store("S3_ENDPOINT", &unique())))
}

object_store_conformance!(fresh());

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8).collect()
}

fn listed(store: &dyn ObjectStore) -> Vec<(Sha256Hex, u64)> {
    let mut seen = Vec::new();
    store
        .for_each(&mut |e| {
            seen.push((e.sha256, e.size));
            Ok(())
        })
        .unwrap();
    seen.sort();
    seen
}

#[test]
fn multipart_objects_and_chunks_round_trip() {
    let Some((_, store)) = fresh() else { return };
    // 12 MiB in parts of 5 MiB (5 + 5 + 2), written in pieces that do not line up with them.
    let big = pattern(12 << 20, 1);
    let sha = Sha256Hex::of(&big);
    let mut w = store.writer(&sha).unwrap();
    for piece in big.chunks((1 << 20) + 13) {
        w.write(piece).unwrap();
    }
    assert_eq!(w.finish().unwrap(), Stored::New);
    assert_eq!(store.size(&sha).unwrap(), Some(big.len() as u64));
    let got = store.get(&sha).unwrap().unwrap();
    assert!(got == big, "the object reads back as written");
    assert_eq!(store.put(&sha, &big).unwrap(), Stored::Duplicate);

    // Exactly two parts: the last part is a full one.
    let two = pattern(2 * PART as usize, 2);
    let sha2 = Sha256Hex::of(&two);
    assert_eq!(store.put(&sha2, &two).unwrap(), Stored::New);
    assert!(store.get(&sha2).unwrap().unwrap() == two);

    // A wrong hash on a multipart object: aborted, nothing under the name.
    let mut w = store.writer(&Sha256Hex::of(b"not these bytes")).unwrap();
    w.write(&big).unwrap();
    assert!(matches!(w.finish(), Err(StoreError::HashMismatch { .. })));
    assert_eq!(listed(&store).len(), 2);

    // A chunk larger than a part, and a small one, assembled.
    let up = UploadId::new("abcdefabcdefabcdefabcdefabcdef01").unwrap();
    let (c0, c1) = big.split_at(11 << 20);
    write_part(&store, &up, 0, 0, c0).unwrap();
    write_part(&store, &up, 1, c0.len() as u64, c1).unwrap();
    assert_eq!(store.part_size(&up, 0).unwrap(), Some(c0.len() as u64));
    let lengths = [c0.len() as u64, c1.len() as u64];
    assert_eq!(store.assemble(&up, &sha, &lengths, WholeHash::Check).unwrap(), Stored::Duplicate);
    assert!(store.remove(&sha).unwrap());
    assert_eq!(store.assemble(&up, &sha, &lengths, WholeHash::Checked).unwrap(), Stored::New);
    assert!(store.get(&sha).unwrap().unwrap() == big);
    assert!(store.remove_parts(&up).unwrap());
}

#[test]
fn a_writer_dropped_mid_way_leaves_nothing() {
    let Some((_, store)) = fresh() else { return };
    let big = pattern(7 << 20, 3);
    let sha = Sha256Hex::of(&big);
    let mut w = store.writer(&sha).unwrap();
    // More than a part: a multipart upload has begun.
    w.write(&big[..(6 << 20)]).unwrap();
    drop(w);
    assert!(!store.has(&sha).unwrap());
    assert!(listed(&store).is_empty());

    // A process killed mid-upload aborts nothing: its multipart upload stays, invisible,
    // until the collection sweeps uploads begun before its cutoff.
    let mut w = store.writer(&sha).unwrap();
    w.write(&big[..(6 << 20)]).unwrap();
    std::mem::forget(w);
    let up = UploadId::new("5555555555555555555555555555555a").unwrap();
    let mut w = store.part_writer(&up, 0, 0, &sha).unwrap();
    w.write(&big[..(6 << 20)]).unwrap();
    std::mem::forget(w);
    assert!(listed(&store).is_empty());
    let earlier = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.remove_stale_temp(earlier).unwrap(), 0, "young uploads are kept");
    let later = SystemTime::now() + Duration::from_secs(5);
    assert!(store.remove_stale_temp(later).unwrap() >= 2);
    assert_eq!(store.remove_stale_temp(later).unwrap(), 0);

    // The name is free for the next attempt.
    assert_eq!(store.put(&sha, &big).unwrap(), Stored::New);
}

#[test]
fn two_nodes_writing_one_object_keep_one_copy() {
    let Some(cluster) = shared() else { return };
    let prefix = unique();
    let stores = [cluster.store("S3_ENDPOINT", &prefix), cluster.store("S3_ENDPOINT2", &prefix)];
    // Streams interleaved, finishes one after the other: one New, one Duplicate.
    let run = |bytes: &Vec<u8>, serial: bool| {
        let sha = Sha256Hex::of(bytes);
        let barrier = Barrier::new(2);
        let turn = Mutex::new(());
        let mut results: Vec<Stored> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .map(|store| {
                    let (sha, barrier, turn) = (&sha, &barrier, &turn);
                    s.spawn(move || {
                        let mut w = store.writer(sha).unwrap();
                        for piece in bytes.chunks(256 << 10) {
                            w.write(piece).unwrap();
                        }
                        barrier.wait();
                        let _one_at_a_time = serial.then(|| turn.lock().unwrap());
                        w.finish().unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        results.sort_by_key(|r| matches!(r, Stored::Duplicate));
        (sha, results)
    };
    let first = pattern(6 << 20, 4);
    let (sha, results) = run(&first, true);
    assert_eq!(results, vec![Stored::New, Stored::Duplicate]);
    assert_eq!(listed(&stores[0]), vec![(sha.clone(), first.len() as u64)]);
    assert!(stores[1].get(&sha).unwrap().unwrap() == first);

    // At the same instant: both succeed, one copy (both may answer New, docs/decisions.md).
    let second = pattern(6 << 20, 5);
    let (sha2, results) = run(&second, false);
    assert_eq!(results[0], Stored::New);
    let mut want = vec![(sha, first.len() as u64), (sha2.clone(), second.len() as u64)];
    want.sort();
    assert_eq!(listed(&stores[1]), want);
    assert!(stores[0].get(&sha2).unwrap().unwrap() == second);
}

#[test]
fn works_from_plain_threads_and_from_the_api_runtime() {
    let Some(cluster) = shared() else { return };
    let store = Arc::new(cluster.store("S3_ENDPOINT", &unique()));
    let s = store.clone();
    std::thread::spawn(move || {
        let b = b"from a plain thread";
        assert_eq!(s.put(&Sha256Hex::of(b), b).unwrap(), Stored::New);
    })
    .join()
    .unwrap();

    for flavor in ["multi_thread", "current_thread"] {
        let rt = match flavor {
            "multi_thread" => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
            _ => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        }
        .unwrap();
        let s = store.clone();
        rt.block_on(async move {
            let bytes = format!("from spawn_blocking on {flavor}").into_bytes();
            let sha = Sha256Hex::of(&bytes);
            let s2 = s.clone();
            let got = tokio::task::spawn_blocking(move || {
                s2.put(&sha, &bytes).unwrap();
                s2.get(&sha).unwrap().unwrap() == bytes
            })
            .await
            .unwrap();
            assert!(got);
            // A writer that began a multipart upload, dropped on the async thread (a request
            // that failed): no panic, its upload is aborted in the background.
            let s2 = s.clone();
            let w = tokio::task::spawn_blocking(move || {
                let mut w = s2.writer(&Sha256Hex::of(b"abandoned")).unwrap();
                w.write(&vec![9u8; (PART + 1) as usize]).unwrap();
                w
            })
            .await
            .unwrap();
            drop(w);
            // A store whose last handle goes on the async thread.
            let settings = cluster.settings("S3_ENDPOINT", &unique());
            let other = tokio::task::spawn_blocking(move || S3ObjectStore::open(&settings))
                .await
                .unwrap()
                .unwrap();
            drop(other);
        });
    }
    assert_eq!(listed(&*store).len(), 3);
}

#[test]
fn the_store_works_with_one_node_of_three_down() {
    if !garage_present() {
        return;
    }
    // A cluster of its own: the others keep all three nodes.
    let cluster = Cluster::start(3);
    let store = cluster.store("S3_ENDPOINT", &unique());
    let small = b"written before the crash".to_vec();
    let big = pattern(11 << 20, 6);
    assert_eq!(store.put(&Sha256Hex::of(&small), &small).unwrap(), Stored::New);
    assert_eq!(store.put(&Sha256Hex::of(&big), &big).unwrap(), Stored::New);

    cluster.kill_node(3);

    // Reads and writes need two copies of three.
    assert!(store.get(&Sha256Hex::of(&small)).unwrap().unwrap() == small);
    assert!(store.get(&Sha256Hex::of(&big)).unwrap().unwrap() == big);
    let after = pattern(6 << 20, 7);
    let sha = Sha256Hex::of(&after);
    assert_eq!(store.put(&sha, &after).unwrap(), Stored::New);
    assert_eq!(store.put(&sha, &after).unwrap(), Stored::Duplicate);
    let up = UploadId::new("0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f").unwrap();
    let (c0, c1) = after.split_at(4 << 20);
    write_part(&store, &up, 0, 0, c0).unwrap();
    write_part(&store, &up, 1, c0.len() as u64, c1).unwrap();
    let lengths = [c0.len() as u64, c1.len() as u64];
    assert!(store.remove(&sha).unwrap());
    assert_eq!(store.assemble(&up, &sha, &lengths, WholeHash::Check).unwrap(), Stored::New);
    assert!(store.get(&sha).unwrap().unwrap() == after);
    assert_eq!(listed(&store).len(), 3);
    // The other node's endpoint serves the same objects.
    let other = cluster.store("S3_ENDPOINT2", store.inner.prefix.trim_end_matches('/'));
    assert_eq!(listed(&other).len(), 3);
}
