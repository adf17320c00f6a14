//! Shared test harness: starts the real `hub` and `gateway` binaries on loopback with
//! certificates made by `hub init` / `hub issue-device`. Real TLS, real processes.
#![allow(dead_code)]

pub mod freetext;
pub mod scaled_stores;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const FACILITY: &str = "F0001";

/// The `hub` binary of this build.
pub fn hub_bin() -> &'static str {
    &bins().1
}
/// The `gateway` binary of this build.
pub fn gateway_bin() -> &'static str {
    &bins().0
}

/// The binaries live in other packages of the workspace, so Cargo gives this package no
/// `CARGO_BIN_EXE_*`. They are built once per test process with the same profile and target
/// directory (a no-op when `scripts/test.sh` built them first), so a test never runs a stale
/// binary. `FGW_BIN_DIR` points at prebuilt binaries instead.
fn bins() -> &'static (String, String) {
    static BINS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    BINS.get_or_init(|| {
        let dir = match std::env::var_os("FGW_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                // <target>/<profile>/deps/<test binary>
                let exe = std::env::current_exe().expect("test binary path");
                let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
                let mut cmd = Command::new(env!("CARGO"));
                cmd.args(["build", "--workspace", "--bins", "--quiet"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"));
                if profile_dir.file_name().is_some_and(|n| n == "release") {
                    cmd.arg("--release");
                }
                if let Some(target) = profile_dir.parent() {
                    cmd.arg("--target-dir").arg(target);
                }
                let st = cmd.status().expect("run cargo build for the binaries");
                assert!(st.success(), "cargo build --workspace --bins failed");
                profile_dir.to_path_buf()
            }
        };
        let s = |n: &str| dir.join(n).to_str().expect("utf-8 path").to_string();
        (s("gateway"), s("hub"))
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct Hub {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Hub {
    /// `hub init` in `dir` (CA, server cert), not yet serving.
    pub fn init(dir: &Path) -> Hub {
        Hub::init_with(dir, "")
    }

    /// `hub init` with `extra` lines of `hub.toml` (limits, quota, GC) after `listen` and
    /// `data_dir`.
    pub fn init_with(dir: &Path, extra: &str) -> Hub {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let config = dir.join("hub.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n{extra}\n{}",
                scaled_stores::store_table(dir)
            ),
        )
        .unwrap();
        run_ok(Command::new(hub_bin()).args(["init", "--config"]).arg(&config));
        Hub { dir: dir.to_path_buf(), config, port, child: None, log: dir.join("hub.log") }
    }

    /// A second node of this hub: the same data directory (stores, CA, registry), its own
    /// port and log. Not started.
    pub fn second_node(&self) -> Hub {
        let port = free_port();
        let config = self.dir.join("hub-b.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n{}",
                scaled_stores::same_stores(&self.config)
            ),
        )
        .unwrap();
        Hub { dir: self.dir.clone(), config, port, child: None, log: self.dir.join("hub-b.log") }
    }

    /// Issue a client certificate into `out` (device.crt, device.key, ca.crt).
    pub fn issue(&self, device: &str, facility: &str, role: &str, out: &Path) {
        run_ok(
            Command::new(hub_bin())
                .args(["issue-device", "--config"])
                .arg(&self.config)
                .args(["--device", device, "--facility", facility, "--role", role, "--out"])
                .arg(out),
        );
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(hub_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "hub did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The serving process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Peak resident set of the serving process (`VmHWM` of /proc/<pid>/status), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.pid().expect("hub is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Everything the hub stored: its data directory's files and, on the national stores,
    /// its database (a pg_dump) and its bucket's objects (named `postgres:…`, `object:…`).
    pub fn stored(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut all = all_files(&self.data_dir());
        all.extend(
            scaled_stores::stored_outside(&self.config)
                .into_iter()
                .map(|(name, bytes)| (PathBuf::from(name), bytes)),
        );
        all
    }

    /// The hub's exam listing, called with an operator certificate over mTLS.
    pub fn list(&self, operator_pki: &Path, facility: &str) -> Vec<serde_json::Value> {
        self.list_of(operator_pki, facility, "exams")
    }

    /// A listing route (`exams`, `dicom`) of a facility, with an operator certificate.
    pub fn list_of(
        &self,
        operator_pki: &Path,
        facility: &str,
        what: &str,
    ) -> Vec<serde_json::Value> {
        let cfg = fgw_tls::client_config(
            &operator_pki.join("ca.crt"),
            &operator_pki.join("device.crt"),
            &operator_pki.join("device.key"),
        )
        .unwrap();
        let url = format!("{}/v1/facilities/{facility}/{what}", self.url());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let client = reqwest::Client::builder().use_preconfigured_tls(cfg).build().unwrap();
            let resp = client.get(url).send().await.unwrap();
            assert!(resp.status().is_success(), "listing: {}", resp.status());
            resp.json::<Vec<serde_json::Value>>().await.unwrap()
        })
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A gateway's directory: config, certificates, state.
pub struct Gateway {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub watch: PathBuf,
}

impl Gateway {
    pub fn new(dir: &Path, hub_url: &str, pki: &Path, watch: &Path, extra: &str) -> Gateway {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("gateway.toml");
        let text = format!(
            "facility_id = \"{FACILITY}\"\ndevice_id = \"gw-test\"\nstate_dir = \"state\"\n{extra}\n\
             [export]\nwatch_dir = \"{}\"\npoll_interval_secs = 1\n\n\
             [pipeline]\nretry_initial_ms = 50\nretry_max_ms = 200\npaused_retry_secs = 1\n\n\
             [uplink]\nhub_url = \"{hub_url}\"\nca_cert = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
            watch.display(),
            pki.join("ca.crt").display(),
            pki.join("device.crt").display(),
            pki.join("device.key").display(),
        );
        std::fs::write(&config, text).unwrap();
        Gateway { dir: dir.to_path_buf(), config, watch: watch.to_path_buf() }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(gateway_bin());
        c.arg("--config").arg(&self.config).env("RUST_LOG", "debug");
        c
    }

    /// `gateway run --exit-when-idle`, with a time limit; returns the output.
    pub fn run_until_idle(&self, limit: Duration) -> Output {
        let mut child = self
            .cmd()
            .args(["run", "--exit-when-idle"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "gateway did not become idle in {limit:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `gateway run` (the daemon) in the background, its log in `log` (a file, so a chatty
    /// debug log can never fill a pipe and stall the daemon).
    pub fn spawn_run(&self, log: &Path) -> Child {
        self.cmd()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = run_ok(self.cmd().args(["status", "--json"]));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Appends TOML tables (`[hl7]`, `[dicom_scp]`, …) after the generated sections.
    pub fn append_config(&self, tables: &str) {
        let mut cfg = std::fs::read_to_string(&self.config).unwrap();
        cfg.push('\n');
        cfg.push_str(tables);
        std::fs::write(&self.config, cfg).unwrap();
    }

    /// A connection to the state database (tests read and plant rows).
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.state_dir().join("state.sqlite")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    pub fn spool_files(&self) -> usize {
        std::fs::read_dir(self.state_dir().join("spool")).map(|d| d.count()).unwrap_or(0)
    }

    /// How this box names the batch folder `name` in its state, logs and reports (its keyed
    /// label, never the name: issue 10). Needs the box's root secret: call it after a run.
    pub fn batch_label(&self, name: &str) -> String {
        use fgw_gateway::secrets::{ExistingState, Secrets};
        let dir = self.state_dir().join("secrets");
        assert!(dir.join("root.key").is_file(), "the gateway has made no root secret yet");
        let secrets = Secrets::open_or_create(&dir, &ExistingState::Fresh).unwrap();
        fgw_gateway::state::BatchLabel::of(&secrets.batch_label_key(), name).to_string()
    }
}

/// Copies the folder `from` to `to`, sub-folders included.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir`: (path, bytes).
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A marker's byte forms: UTF-8, CP932, and UTF-16LE (SQLite may store either).
pub fn byte_forms(marker: &str) -> Vec<Vec<u8>> {
    let mut v = vec![marker.as_bytes().to_vec()];
    let (cp, _, bad) = encoding_rs::SHIFT_JIS.encode(marker);
    if !bad && AsRef::<[u8]>::as_ref(&cp) != marker.as_bytes() {
        v.push(cp.into_owned());
    }
    v.push(marker.encode_utf16().flat_map(|u| u.to_le_bytes()).collect());
    v
}

/// A log file's text without terminal colour codes (`ESC [ ... m`); empty if it cannot be
/// read (yet).
pub fn plain_log(log: &Path) -> String {
    let raw = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
