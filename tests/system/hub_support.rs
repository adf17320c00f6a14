//! Shared by the hub_* system tests (issue 10): a real `hub serve` process with devices of two
//! facilities and an operator, clients with their certificates, raw TLS connections for
//! requests an HTTP client will not make (trickled bodies, held uploads, idle connections).

use super::common::Hub;
use fgw_format::ids::{FacilityId, Sha256Hex};
use fgw_format::package::{
    Body, DeidInfo, ExamRecord, FileEntry, Manifest, FORMAT, FORMAT_VERSION,
};
use reqwest::StatusCode;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub(crate) const F1: &str = "F0001";
pub(crate) const F2: &str = "F0002";

/// A serving hub with gw-1 (device, F0001), gw-2 (device, F0002), gw-3 (device, F0001) and
/// ops-1 (operator, SOC), each certificate in `<root>/<device>/`.
pub(crate) struct Fx {
    pub(crate) hub: Hub,
    pub(crate) root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fx {
    /// `extra`: lines appended to `hub.toml`.
    pub(crate) fn start(extra: &str) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut hub = Hub::init_with(&root.join("hub"), extra);
        for (dev, fac, role) in [
            ("gw-1", F1, "device"),
            ("gw-2", F2, "device"),
            ("gw-3", F1, "device"),
            ("ops-1", "SOC", "operator"),
        ] {
            hub.issue(dev, fac, role, &root.join(dev));
        }
        hub.start();
        Fx { hub, root, _dir: dir }
    }

    pub(crate) fn tls(&self, device: &str) -> rustls::ClientConfig {
        let d = self.root.join(device);
        fgw_tls::install_ring_provider();
        fgw_tls::client_config(&d.join("ca.crt"), &d.join("device.crt"), &d.join("device.key"))
            .unwrap()
    }

    pub(crate) fn client(&self, device: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.tls(device))
            .http1_only()
            .build()
            .unwrap()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.hub.url())
    }

    pub(crate) async fn put_object(&self, c: &reqwest::Client, bytes: &[u8]) -> reqwest::Response {
        let sha = Sha256Hex::of(bytes);
        c.put(self.url(&format!("/v1/objects/{sha}"))).body(bytes.to_vec()).send().await.unwrap()
    }

    pub(crate) async fn head_object(&self, c: &reqwest::Client, sha: &Sha256Hex) -> StatusCode {
        c.head(self.url(&format!("/v1/objects/{sha}"))).send().await.unwrap().status()
    }

    pub(crate) async fn put_manifest(
        &self,
        c: &reqwest::Client,
        bytes: &[u8],
    ) -> reqwest::Response {
        let id = Manifest::id_of(bytes);
        c.put(self.url(&format!("/v1/packages/{id}"))).body(bytes.to_vec()).send().await.unwrap()
    }

    /// A TLS connection with `device`'s certificate, handshake done, no request sent.
    pub(crate) async fn raw(&self, device: &str) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.hub.port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls(device)));
        connector.connect(name, tcp).await.unwrap()
    }

    /// The hub's object store, whichever `[store] objects` names (files, or S3 under
    /// `FGW_TEST_STORES`), opened as `hub serve` opens it.
    pub(crate) fn objects(&self) -> std::sync::Arc<dyn fgw_hub::store::ObjectStore> {
        let cfg = fgw_hub::HubConfig::load(&self.hub.config).unwrap();
        off_runtime(|| fgw_hub::store::open_objects(&cfg).unwrap())
    }

    /// The hub's metadata store (SQLite, or PostgreSQL under `FGW_TEST_STORES`).
    pub(crate) fn meta(&self) -> std::sync::Arc<dyn fgw_hub::store::MetaStore> {
        let cfg = fgw_hub::HubConfig::load(&self.hub.config).unwrap();
        off_runtime(|| fgw_hub::store::open_meta(&cfg).unwrap())
    }

    /// An object's bytes as stored, `None` if absent.
    pub(crate) fn object(&self, sha: &Sha256Hex) -> Option<Vec<u8>> {
        let store = self.objects();
        off_runtime(|| store.get(sha).unwrap())
    }

    /// An object's size as stored, `None` if absent.
    pub(crate) fn object_size(&self, sha: &Sha256Hex) -> Option<u64> {
        let store = self.objects();
        off_runtime(|| store.size(sha).unwrap())
    }

    /// Whether the store holds the object.
    pub(crate) fn has_object(&self, sha: &Sha256Hex) -> bool {
        let store = self.objects();
        off_runtime(|| store.has(sha).unwrap())
    }

    /// Whether the store holds chunk `index` of an upload session.
    pub(crate) fn has_part(&self, upload: &fgw_format::ids::UploadId, index: u32) -> bool {
        let store = self.objects();
        off_runtime(|| store.part_size(upload, index).unwrap().is_some())
    }

    pub(crate) fn pki(&self, device: &str) -> PathBuf {
        self.root.join(device)
    }
}

/// Send one `GET /v1/health` on an open connection and return the status line's code.
pub(crate) async fn health_on(s: &mut TlsStream<TcpStream>) -> u16 {
    get_on(s, "/v1/health").await
}

/// Send one `GET <path>` on an open connection and return the status line's code.
pub(crate) async fn get_on(s: &mut TlsStream<TcpStream>, path: &str) -> u16 {
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: hub\r\n\r\n").as_bytes()).await.unwrap();
    let head = read_head(s).await.expect("a response");
    // The body is small JSON; read it so the connection is ready for the next request.
    let len = content_length(&head).unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    status_of(&head)
}

/// Read a response head (up to the blank line); `None` if the connection closed first.
pub(crate) async fn read_head(s: &mut TlsStream<TcpStream>) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8(buf).unwrap())
}

pub(crate) fn status_of(head: &str) -> u16 {
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

pub(crate) fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_string))
        .map(|v| v.trim().parse().unwrap())
}

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub(crate) fn manifest(
    facility: &str,
    exam_pid: &str,
    revision: u32,
    files: &[(&str, &[u8])],
) -> Manifest {
    Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        facility_id: FacilityId::new(facility).unwrap(),
        body: Body::Exam(ExamRecord {
            exam_pid: exam_pid.into(),
            revision,
            sex: Some("F".into()),
            exam_type: Some("upper".into()),
            ..Default::default()
        }),
        files: files
            .iter()
            .map(|(path, bytes)| FileEntry {
                path: (*path).into(),
                sha256: Sha256Hex::of(bytes),
                size: bytes.len() as u64,
                media_type: "image/jpeg".into(),
            })
            .collect(),
        deid: DeidInfo {
            method: "test".into(),
            tool_version: "0".into(),
            policy_id: "jed-basic".into(),
            policy_version: 1,
            actions: vec![],
        },
    }
}

/// Run a synchronous store call on its own thread: the stores block (the PostgreSQL driver,
/// the S3 store's runtime), which a test's async context must not do.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("store call panicked"))
}
