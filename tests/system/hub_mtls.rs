//! The hub over real mutual TLS on 127.0.0.1: authentication (CA chain + registry), the
//! upload protocol's status codes, idempotency, and facility scoping of listings.

use fgw_format::ids::{DeviceId, FacilityId, Sha256Hex, UploadId};
use fgw_format::package::protocol::{
    Ack, ApiError, ExamListing, MissingObjects, ObjectAck, Stored,
};
use fgw_format::package::{
    Body, DeidInfo, ExamRecord, FileEntry, Manifest, FORMAT, FORMAT_VERSION,
};
use fgw_hub::ca::{self, Role};
use fgw_hub::{HubConfig, RunningHub};

use fgw_outbound::uplink::{Uplink, UplinkConfig};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cfg: HubConfig,
    hub: RunningHub,
    base: String,
}

const NEW: (StatusCode, Option<Stored>) = (StatusCode::OK, Some(Stored::New));
const DUP: (StatusCode, Option<Stored>) = (StatusCode::OK, Some(Stored::Duplicate));
const F1: &str = "F0001";
const F2: &str = "F0002";

fn fid(s: &str) -> FacilityId {
    FacilityId::new(s).unwrap()
}

/// A hub with: gw-1 (device, F0001), gw-2 (device, F0002), ops-1 (operator, SOC).
async fn start() -> Fixture {
    let (dir, cfg) = pki();
    start_with(dir, cfg, |cfg| fgw_hub::Hub::open(cfg).unwrap()).await
}

/// Temp data dir, society CA, and the three registered certificates.
fn pki() -> (tempfile::TempDir, HubConfig) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut cfg = HubConfig::with_data_dir(root.join("hub"));
    cfg.listen = "127.0.0.1:0".into();
    ca::init(&cfg).unwrap();
    for (dev, fac, role) in
        [("gw-1", F1, Role::Device), ("gw-2", F2, Role::Device), ("ops-1", "SOC", Role::Operator)]
    {
        ca::issue_device(&cfg, &DeviceId::new(dev).unwrap(), &fid(fac), role, &root.join(dev))
            .unwrap();
    }
    (dir, cfg)
}

/// Same PKI and devices, with the hub built by `make` (e.g. over wrapped stores).
async fn start_with(
    dir: tempfile::TempDir,
    cfg: HubConfig,
    make: impl FnOnce(&HubConfig) -> fgw_hub::Hub,
) -> Fixture {
    let root = dir.path().to_path_buf();
    let hub = make(&cfg).bind().await.unwrap();
    let base = format!("https://127.0.0.1:{}", hub.addr().port());
    Fixture { _dir: dir, root, cfg, hub, base }
}

fn client_from(ca: &Path, cert: &Path, key: &Path) -> reqwest::Client {
    let tls = fgw_tls::client_config(ca, cert, key).unwrap();
    reqwest::Client::builder().use_preconfigured_tls(tls).http1_only().build().unwrap()
}

impl Fixture {
    fn client(&self, device: &str) -> reqwest::Client {
        let d = self.root.join(device);
        client_from(&d.join("ca.crt"), &d.join("device.crt"), &d.join("device.key"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Status, and the `stored` field of a 200.
    async fn put_object(&self, c: &reqwest::Client, bytes: &[u8]) -> (StatusCode, Option<Stored>) {
        let sha = Sha256Hex::of(bytes);
        let r = c
            .put(self.url(&format!("/v1/objects/{sha}")))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let stored = match status {
            StatusCode::OK => Some(r.json::<ObjectAck>().await.unwrap().stored),
            _ => None,
        };
        (status, stored)
    }

    async fn put_manifest(&self, c: &reqwest::Client, bytes: &[u8]) -> reqwest::Response {
        let id = Manifest::id_of(bytes);
        c.put(self.url(&format!("/v1/packages/{id}"))).body(bytes.to_vec()).send().await.unwrap()
    }

    /// Object files on disk (excluding the temp dir).
    fn object_files(&self) -> usize {
        let mut n = 0;
        for fan in std::fs::read_dir(self.cfg.objects_dir()).unwrap() {
            let fan = fan.unwrap();
            if fan.file_name() != "tmp" {
                n += std::fs::read_dir(fan.path()).unwrap().count();
            }
        }
        n
    }
}

fn manifest(facility: &str, exam_pid: &str, revision: u32, files: &[(&str, &[u8])]) -> Manifest {
    Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        facility_id: fid(facility),
        body: Body::Exam(ExamRecord {
            exam_pid: exam_pid.into(),
            revision,
            patient_pid: Some("p-0123456789abcdef01234567".into()),
            sex: Some("F".into()),
            exam_date: Some("2024-05".into()),
            exam_type: Some("upper".into()),
            images: vec![fgw_format::package::ImageRef {
                index: 0,
                path: None,
                withheld: Some("pixels-not-cleaned".into()),
            }],
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

/// Opens a raw TLS connection, sends one request and reads until the server's verdict.
/// Under TLS 1.3 the server judges the client certificate only after the client's Finished,
/// so an HTTP client may see the alert, or just a closed connection, depending on timing;
/// reading the stream to its end always surfaces the alert.
async fn refusal_alert(fx: &Fixture, cfg: rustls::ClientConfig) -> rustls::AlertDescription {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(fx.hub.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let io_err = match connector.connect(name, tcp).await {
        Err(e) => e,
        Ok(mut s) => {
            // The write may succeed before the alert arrives; the read must not.
            let _ = s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: hub\r\n\r\n").await;
            let mut buf = Vec::new();
            match s.read_to_end(&mut buf).await {
                Err(e) => e,
                Ok(n) => panic!("server answered {n} bytes instead of refusing"),
            }
        }
    };
    match io_err.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(a)) => *a,
        _ => panic!("not refused by a TLS alert: {io_err:?}"),
    }
}

const IMG1: &[u8] = b"\xff\xd8 de-identified image one";
const IMG2: &[u8] = b"\xff\xd8 de-identified image two";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_upload_is_acked_once_and_stored_once() {
    let fx = start().await;
    let c = fx.client("gw-1");
    assert_eq!(c.get(fx.url("/v1/health")).send().await.unwrap().status(), StatusCode::OK);

    let sha1 = Sha256Hex::of(IMG1);
    let head = |sha: Sha256Hex| c.head(fx.url(&format!("/v1/objects/{sha}"))).send();
    assert_eq!(head(sha1.clone()).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(fx.put_object(&c, IMG1).await, NEW);
    assert_eq!(fx.put_object(&c, IMG1).await, DUP, "re-upload is a duplicate");
    assert_eq!(fx.put_object(&c, IMG2).await, NEW);
    assert_eq!(head(sha1).await.unwrap().status(), StatusCode::OK);

    // The same image twice in one package is one object.
    let m = manifest(
        F1,
        "e-000000000000000000000001",
        1,
        &[("images/001.jpg", IMG1), ("images/002.jpg", IMG2), ("images/003.jpg", IMG1)],
    );
    let bytes = m.to_bytes();
    let id = Manifest::id_of(&bytes);
    let r = fx.put_manifest(&c, &bytes).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ack: Ack = r.json().await.unwrap();
    assert_eq!(ack, Ack { package_id: id.clone(), stored: Stored::New, facility_id: fid(F1) });

    let r = fx.put_manifest(&c, &bytes).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Ack>().await.unwrap().stored, Stored::Duplicate);

    assert_eq!(fx.hub.meta().package_count().unwrap(), 1);
    assert_eq!(fx.object_files(), 2);
    assert_eq!(fx.hub.objects().get(&Sha256Hex::of(IMG2)).unwrap().unwrap(), IMG2);
    fx.hub.shutdown().await.unwrap();
}

/// A client without a certificate (a browser) completes the handshake but reaches the
/// dashboard only: every API route, health included, answers 401 before routing, and
/// nothing it sends is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_gets_401_everywhere_but_the_dashboard() {
    let fx = start().await;
    let roots = fgw_tls::ca_roots(&fx.cfg.ca_cert()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(fgw_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let anon = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sha = Sha256Hex::of(IMG1);
    let m = manifest(F1, "e-000000000000000000000001", 1, &[("images/001.jpg", IMG1)]);
    let (bytes, id) = (m.to_bytes(), Manifest::id_of(&m.to_bytes()));
    let upload = UploadId::derive(&fid(F1), &sha);
    let heartbeat = serde_json::json!({
        "sent_at": "2026-12-05T10:00:00Z", "os_version": "0.1.0", "policy_version": "p@1",
        "queue": {}, "bytes_uploaded": 0, "quarantine": {}, "last_error_class": null,
        "cert_not_after": null, "disk": { "total_bytes": 1, "available_bytes": 1 },
        "key_store": "none", "vpn": "off"
    });
    use reqwest::Method;
    let routes: Vec<(Method, String, Vec<u8>)> = vec![
        (Method::GET, "/v1/health".into(), vec![]),
        (Method::PUT, format!("/v1/objects/{sha}"), IMG1.to_vec()),
        (Method::HEAD, format!("/v1/objects/{sha}"), vec![]),
        (Method::GET, format!("/v1/objects/{sha}"), vec![]),
        (Method::PUT, format!("/v1/packages/{id}"), bytes.clone()),
        (Method::GET, format!("/v1/facilities/{F1}/exams"), vec![]),
        (Method::GET, format!("/v1/facilities/{F1}/dicom"), vec![]),
        (Method::POST, "/v1/uploads".into(), br#"{"sha256":"x","size":1}"#.to_vec()),
        (Method::GET, format!("/v1/uploads/{upload}"), vec![]),
        (Method::PUT, format!("/v1/uploads/{upload}/chunks/0"), IMG1.to_vec()),
        (Method::POST, format!("/v1/uploads/{upload}/commit"), vec![]),
        (Method::PUT, "/v1/heartbeat".into(), heartbeat.to_string().into_bytes()),
        (Method::GET, "/v1/device/config".into(), vec![]),
        (Method::POST, "/.well-known/est/simpleenroll".into(), b"csr".to_vec()),
        (Method::POST, "/.well-known/est/simplereenroll".into(), b"csr".to_vec()),
        (Method::GET, "/".into(), vec![]),
        (Method::GET, "/v1/no-such-route".into(), vec![]),
        (Method::GET, "/dashboards".into(), vec![]),
    ];
    for (method, path, body) in routes {
        let r = anon.request(method.clone(), fx.url(&path)).body(body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        if method != Method::HEAD {
            let e: ApiError = r.json().await.unwrap();
            assert!(e.error.contains("client certificate"), "{method} {path}: {}", e.error);
        }
    }
    assert_eq!(fx.hub.meta().package_count().unwrap(), 0);
    assert_eq!(fx.object_files(), 0, "nothing reached the object store");
    assert!(fx.hub.meta().fleet().unwrap().is_empty());
    // The dashboard is reached, and sends to its login.
    let r = anon.get(fx.url("/dashboard")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/dashboard/login");
    let r = anon.get(fx.url("/dashboard/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains(r#"name="password""#));
    // With a certificate, the API is as before.
    let c = fx.client("gw-1");
    assert_eq!(c.get(fx.url("/v1/health")).send().await.unwrap().status(), StatusCode::OK);
    fx.hub.shutdown().await.unwrap();
}

/// `[dashboard] enabled = false`: a connection without a certificate reaches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_dashboard_a_client_without_certificate_reaches_nothing() {
    let (dir, mut cfg) = pki();
    cfg.dashboard.enabled = false;
    let fx = start_with(dir, cfg, |cfg| fgw_hub::Hub::open(cfg).unwrap()).await;
    let roots = fgw_tls::ca_roots(&fx.cfg.ca_cert()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(fgw_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let anon = reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap();
    for path in ["/dashboard", "/dashboard/login", "/v1/health"] {
        let status = anon.get(fx.url(path)).send().await.unwrap().status();
        assert!(status == StatusCode::NOT_FOUND || status == StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(
        anon.get(fx.url("/v1/health")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    fx.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_ca_is_refused() {
    let fx = start().await;
    // A self-made CA issuing a certificate with the very same subject as a real device.
    let dir = fx.root.join("rogue");
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca::CA_NAME);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let rogue_ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "gw-1");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, F1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &rogue_ca, &ca_key).unwrap();
    std::fs::write(dir.join("device.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("device.key"), key.serialize_pem()).unwrap();

    let cfg =
        fgw_tls::client_config(&fx.cfg.ca_cert(), &dir.join("device.crt"), &dir.join("device.key"))
            .unwrap();
    // The rogue CA bears the real CA's name, so the chain resolves to the real CA and the
    // signature check fails (decrypt_error), rather than an unknown issuer.
    let alert = refusal_alert(&fx, cfg).await;
    assert_eq!(alert, rustls::AlertDescription::DecryptError);
    fx.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_but_unregistered_certificate_gets_403() {
    let fx = start().await;
    let out = fx.root.join("unregistered");
    let issued =
        ca::sign_device_cert(&fx.cfg, &DeviceId::new("gw-9").unwrap(), &fid(F1), &out).unwrap();
    let c = client_from(&issued.ca_cert, &issued.cert, &issued.key);
    for r in [
        c.get(fx.url("/v1/health")).send().await.unwrap(),
        c.put(fx.url(&format!("/v1/objects/{}", Sha256Hex::of(IMG1))))
            .body(IMG1)
            .send()
            .await
            .unwrap(),
        c.get(fx.url("/v1/facilities/F0001/exams")).send().await.unwrap(),
    ] {
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let e: ApiError = r.json().await.unwrap();
        assert!(e.error.contains("not registered"), "{}", e.error);
    }
    assert_eq!(fx.object_files(), 0);
    fx.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_mismatches_are_422() {
    let fx = start().await;
    let c = fx.client("gw-1");
    let r = c
        .put(fx.url(&format!("/v1/objects/{}", Sha256Hex::of(IMG2))))
        .body(IMG1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fx.object_files(), 0);

    assert_eq!(fx.put_object(&c, IMG1).await, NEW);
    let bytes = manifest(F1, "e-1", 1, &[("images/001.jpg", IMG1)]).to_bytes();
    let wrong_id = Sha256Hex::of(b"another manifest");
    let r = c.put(fx.url(&format!("/v1/packages/{wrong_id}"))).body(bytes).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A manifest whose size for an existing object is wrong is refused too.
    let mut m = manifest(F1, "e-1", 1, &[("images/001.jpg", IMG1)]);
    m.files[0].size += 1;
    let r = fx.put_manifest(&c, &m.to_bytes()).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Not JSON at all: 422 and the message does not quote the body.
    let r = fx.put_manifest(&c, b"{\"format\": \"secret-value\"}").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!r.text().await.unwrap().contains("secret-value"));
    assert_eq!(fx.hub.meta().package_count().unwrap(), 0);
    fx.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_for_another_facility_is_403() {
    let fx = start().await;
    let c = fx.client("gw-2"); // certificate facility F0002
    assert_eq!(fx.put_object(&c, IMG1).await, NEW);
    let r =
        fx.put_manifest(&c, &manifest(F1, "e-1", 1, &[("images/001.jpg", IMG1)]).to_bytes()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(fx.hub.meta().package_count().unwrap(), 0);

    // Operators are read-only.
    let ops = fx.client("ops-1");
    assert_eq!(fx.put_object(&ops, IMG2).await.0, StatusCode::FORBIDDEN);
    fx.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_are_listed_in_a_409() {
    let fx = start().await;
    let c = fx.client("gw-1");
    assert_eq!(fx.put_object(&c, IMG1).await, NEW);
    let bytes =
        manifest(F1, "e-1", 1, &[("images/001.jpg", IMG1), ("images/002.jpg", IMG2)]).to_bytes();
    let r = fx.put_manifest(&c, &bytes).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: MissingObjects = r.json().await.unwrap();
    assert_eq!(body.missing, vec![Sha256Hex::of(IMG2)]);

    assert_eq!(fx.put_object(&c, IMG2).await, NEW);
    let r = fx.put_manifest(&c, &bytes).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Ack>().await.unwrap().stored, Stored::New);
    fx.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_scoped_by_facility_and_role() {
    let fx = start().await;
    let c = fx.client("gw-1");
    assert_eq!(fx.put_object(&c, IMG1).await, NEW);
    let exam = "e-000000000000000000000042";
    let rev1 = manifest(F1, exam, 1, &[("images/001.jpg", IMG1)]).to_bytes();
    let rev2 = manifest(F1, exam, 2, &[]).to_bytes();
    // Revision 2 first, then a late revision 1: the current one stays revision 2.
    assert_eq!(fx.put_manifest(&c, &rev2).await.status(), StatusCode::OK);
    assert_eq!(fx.put_manifest(&c, &rev1).await.status(), StatusCode::OK);

    let list = |client: reqwest::Client, facility: &'static str| {
        let url = fx.url(&format!("/v1/facilities/{facility}/exams"));
        async move { client.get(url).send().await.unwrap() }
    };
    let r = list(c.clone(), F1).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rows: Vec<ExamListing> = r.json().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].exam_pid, exam);
    assert_eq!(rows[0].revision, 2);
    assert_eq!(rows[0].package_id, Manifest::id_of(&rev2));
    assert_eq!(rows[0].images_withheld, 1);

    assert_eq!(list(c.clone(), F2).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(list(fx.client("gw-2"), F1).await.status(), StatusCode::FORBIDDEN);
    let r = list(fx.client("gw-2"), F2).await;
    assert!(r.json::<Vec<ExamListing>>().await.unwrap().is_empty());

    let ops = fx.client("ops-1");
    assert_eq!(list(ops.clone(), F1).await.json::<Vec<ExamListing>>().await.unwrap(), rows);
    assert_eq!(list(ops.clone(), F2).await.status(), StatusCode::OK);

    // The gateway's uplink sees the same listing.
    let up = uplink_for(&fx, "gw-1");
    up.health().await.unwrap();
    assert_eq!(up.list_exams(&fid(F1)).await.unwrap(), rows);
    let e = up.list_exams(&fid(F2)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(matches!(e, fgw_outbound::uplink::UplinkError::Rejected { status: 403, .. }), "{e}");
    fx.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplink_errors_are_classified() {
    let fx = start().await;
    let d = fx.root.join("gw-1");
    let cfg = UplinkConfig {
        hub_url: fx.base.clone(),
        ca_cert: d.join("ca.crt"),
        client_cert: d.join("device.crt"),
        client_key: d.join("device.key"),
        connect_timeout_secs: 2,
        ..UplinkConfig::default()
    };
    fx.hub.shutdown().await.unwrap();
    // Hub down: connection refused is retryable.
    let up = Uplink::new(&cfg).unwrap();
    let e = up.list_exams(&fid(F1)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

/// End to end through the gate: RawExam → deid → outbox → `Uplink::upload`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplink_uploads_a_staged_package_idempotently() {
    use fgw_deid::{deidentify_exam, DeidContext, DeidOutcome, Policy, Pseudonymizer};
    use fgw_records::{Column, RawExam, SourceRef};

    let fx = start().await;
    let facility = fid(F1);
    let mut fields = std::collections::BTreeMap::new();
    for (c, v) in [
        (Column::ExamId, "E2024-0001"),
        (Column::PatientId, "00123456"),
        (Column::PatientName, "山田 太郎"),
        (Column::BirthDate, "1960-04-01"),
        (Column::Sex, "M"),
        (Column::ExamDate, "2024-05-10"),
        (Column::ExamType, "上部消化管内視鏡"),
    ] {
        fields.insert(c, v.to_string());
    }
    let raw = RawExam {
        source: SourceRef { batch: "b1".into(), file: "export.csv".into(), row: 1, line: 2 },
        fields,
        extra: Default::default(),
        images: vec![],
        missing_images: vec![],
        report: None,
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7u8; 32]);
    let pseudonymizer = Pseudonymizer::new(key);
    let policy = Policy::default();
    let ctx = DeidContext {
        facility: &facility,
        pseudonymizer: &pseudonymizer,
        policy: &policy,
        profile: "reference",
        revision: 1,
        pixels: &fgw_deid::pixels::PixelStage::new(Default::default()),
    };
    let package = match deidentify_exam(&raw, &ctx) {
        DeidOutcome::Package { package, .. } => package,
        DeidOutcome::Quarantined { reason } => panic!("quarantined: {reason}"),
    };
    let outbox = fgw_outbound::outbox::Outbox::open(&fx.root.join("outbox"), outbox_key()).unwrap();
    let id = outbox.put(&package).unwrap();
    let staged = outbox.load(&id).unwrap();

    let d = fx.root.join("gw-1");
    let up = Uplink::new(&UplinkConfig {
        hub_url: fx.base.clone(),
        ca_cert: d.join("ca.crt"),
        client_cert: d.join("device.crt"),
        client_key: d.join("device.key"),
        ..UplinkConfig::default()
    })
    .unwrap();
    let ack = up.upload(&staged).await.unwrap();
    assert_eq!(
        (ack.package_id.clone(), ack.stored, ack.facility_id),
        (id.clone(), Stored::New, facility.clone())
    );
    assert_eq!(up.upload(&staged).await.unwrap().stored, Stored::Duplicate);
    assert_eq!(fx.hub.meta().package_count().unwrap(), 1);
    let rows = up.list_exams(&facility).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].package_id, id);
    fx.hub.shutdown().await.unwrap();
}

/// An object store that counts writes and can claim, once, to hold an object it lacks (the
/// hub losing an object between the gateway's HEAD and its manifest).
struct Instrumented {
    inner: fgw_hub::store::FsObjectStore,
    puts: std::sync::atomic::AtomicUsize,
    lie_once: std::sync::Mutex<Option<Sha256Hex>>,
}

impl fgw_hub::store::ObjectStore for Instrumented {
    fn size(&self, sha: &Sha256Hex) -> fgw_hub::store::Result<Option<u64>> {
        self.inner.size(sha)
    }
    fn has(&self, sha: &Sha256Hex) -> fgw_hub::store::Result<bool> {
        let mut lie = self.lie_once.lock().unwrap();
        if lie.as_ref() == Some(sha) {
            *lie = None;
            return Ok(true);
        }
        self.inner.has(sha)
    }
    fn writer(
        &self,
        sha: &Sha256Hex,
    ) -> fgw_hub::store::Result<Box<dyn fgw_hub::store::ObjectWriter>> {
        self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.writer(sha)
    }
    fn get(&self, sha: &Sha256Hex) -> fgw_hub::store::Result<Option<Vec<u8>>> {
        self.inner.get(sha)
    }
    fn remove(&self, sha: &Sha256Hex) -> fgw_hub::store::Result<bool> {
        self.inner.remove(sha)
    }
    fn for_each(
        &self,
        f: &mut dyn FnMut(fgw_hub::store::ObjectEntry) -> fgw_hub::store::Result<()>,
    ) -> fgw_hub::store::Result<()> {
        self.inner.for_each(f)
    }
    fn remove_stale_temp(&self, cutoff: std::time::SystemTime) -> fgw_hub::store::Result<u64> {
        self.inner.remove_stale_temp(cutoff)
    }
    fn part_writer(
        &self,
        upload: &UploadId,
        index: u32,
        offset: u64,
        sha: &Sha256Hex,
    ) -> fgw_hub::store::Result<Box<dyn fgw_hub::store::PartWriter>> {
        self.inner.part_writer(upload, index, offset, sha)
    }
    fn part_size(&self, upload: &UploadId, index: u32) -> fgw_hub::store::Result<Option<u64>> {
        self.inner.part_size(upload, index)
    }
    fn assemble(
        &self,
        upload: &UploadId,
        sha: &Sha256Hex,
        lengths: &[u64],
        whole: fgw_hub::store::WholeHash,
    ) -> fgw_hub::store::Result<fgw_format::package::protocol::Stored> {
        self.inner.assemble(upload, sha, lengths, whole)
    }
    fn remove_parts(&self, upload: &UploadId) -> fgw_hub::store::Result<bool> {
        self.inner.remove_parts(upload)
    }
    fn for_each_parts(
        &self,
        f: &mut dyn FnMut(fgw_hub::store::PartsEntry) -> fgw_hub::store::Result<()>,
    ) -> fgw_hub::store::Result<()> {
        self.inner.for_each_parts(f)
    }
}

/// The outbox key of these tests' box.
fn outbox_key() -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[5u8; 32])
}

/// Stage a package the way the outbox stores one (documented layout: `objects/<sha256>`,
/// `packages/<id>.json`, `seals/<id>.mac`: HMAC-SHA-256 of the manifest with the box's outbox
/// key, which this test holds) and read it back through `Outbox::load`, the uplink's only
/// input. Stands in for a package that passed the gate while `deid` is being written.
fn stage(outbox_dir: &Path, m: &Manifest, files: &[&[u8]]) -> fgw_outbound::outbox::StagedPackage {
    let outbox = fgw_outbound::outbox::Outbox::open(outbox_dir, outbox_key()).unwrap();
    for bytes in files {
        let p = outbox_dir.join("objects").join(Sha256Hex::of(bytes).as_str());
        std::fs::write(p, bytes).unwrap();
    }
    let bytes = m.to_bytes();
    let id = Manifest::id_of(&bytes);
    std::fs::write(outbox_dir.join("packages").join(format!("{id}.json")), &bytes).unwrap();
    let tag = ring::hmac::sign(&outbox_key(), &bytes);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(outbox_dir.join("seals").join(format!("{id}.mac")), hex).unwrap();
    outbox.load(&id).unwrap()
}

fn uplink_for(fx: &Fixture, device: &str) -> Uplink {
    let d = fx.root.join(device);
    Uplink::new(&UplinkConfig {
        hub_url: fx.base.clone(),
        ca_cert: d.join("ca.crt"),
        client_cert: d.join("device.crt"),
        client_key: d.join("device.key"),
        ..UplinkConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplink_resumes_at_file_granularity_and_handles_409() {
    use std::sync::atomic::Ordering::SeqCst;
    let (dir, cfg) = pki();
    let store = std::sync::Arc::new(Instrumented {
        inner: fgw_hub::store::FsObjectStore::open(&cfg.objects_dir()).unwrap(),
        puts: Default::default(),
        lie_once: Default::default(),
    });
    let objects: std::sync::Arc<dyn fgw_hub::store::ObjectStore> = store.clone();
    let fx = start_with(dir, cfg, move |cfg| {
        let meta =
            std::sync::Arc::new(fgw_hub::store::SqliteMetaStore::open(&cfg.db_path()).unwrap());
        fgw_hub::Hub::with_stores(cfg, objects, meta).unwrap()
    })
    .await;
    const IMG3: &[u8] = b"\xff\xd8 de-identified image three";
    let m = manifest(
        F1,
        "e-000000000000000000000007",
        1,
        &[("images/001.jpg", IMG1), ("images/002.jpg", IMG2), ("images/003.jpg", IMG3)],
    );
    let staged = stage(&fx.root.join("outbox"), &m, &[IMG1, IMG2, IMG3]);
    let up = uplink_for(&fx, "gw-1");

    // A previous attempt got IMG1 across before the line dropped.
    assert_eq!(fx.put_object(&fx.client("gw-1"), IMG1).await, NEW);
    // And IMG3, held by the facility, is lost from the blob store; the hub will claim to hold
    // it at HEAD time, then miss it at manifest time.
    assert_eq!(fx.put_object(&fx.client("gw-1"), IMG3).await, NEW);
    std::fs::remove_file(store.inner.path_of(&Sha256Hex::of(IMG3))).unwrap();
    *store.lie_once.lock().unwrap() = Some(Sha256Hex::of(IMG3));
    store.puts.store(0, SeqCst);

    let ack = up.upload(&staged).await.unwrap();
    assert_eq!(ack.stored, Stored::New);
    assert_eq!(&ack.package_id, staged.id());
    // IMG2 after HEAD said missing, IMG3 after the 409; IMG1 never again.
    assert_eq!(store.puts.load(SeqCst), 2);
    assert_eq!(fx.object_files(), 3);

    store.puts.store(0, SeqCst);
    assert_eq!(up.upload(&staged).await.unwrap().stored, Stored::Duplicate);
    assert_eq!(store.puts.load(SeqCst), 0, "nothing is re-sent once stored");
    assert_eq!(fx.hub.meta().package_count().unwrap(), 1);

    // A package for another facility is rejected for good (not retryable).
    let other = manifest(F2, "e-000000000000000000000008", 1, &[("images/001.jpg", IMG1)]);
    let staged = stage(&fx.root.join("outbox"), &other, &[IMG1]);
    let e = up.upload(&staged).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(matches!(e, fgw_outbound::uplink::UplinkError::Rejected { status: 403, .. }), "{e}");
    fx.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413() {
    let (dir, mut cfg) = pki();
    cfg.max_object_bytes = 1024;
    cfg.max_manifest_bytes = 256;
    let fx = start_with(dir, cfg, |cfg| fgw_hub::Hub::open(cfg).unwrap()).await;
    let c = fx.client("gw-1");
    let big = vec![0u8; 4096];
    assert_eq!(fx.put_object(&c, &big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let m = manifest(F1, "e-1", 1, &[("images/001.jpg", IMG1)]).to_bytes();
    assert!(m.len() > 256);
    let r = fx.put_manifest(&c, &m).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json::<ApiError>().await.is_ok(), "error bodies stay JSON");
    assert_eq!(fx.object_files(), 0);
    fx.hub.shutdown().await.unwrap();
}
