//! Device identity on the hub (issue 12, part B), against a real `hub serve` over mutual TLS
//! with reqwest + rustls: `hub device add` signs an IDevID from a CSR, the box enrolls with it
//! (`/.well-known/est/simpleenroll`), uploads with the operational certificate, renews
//! (`simplereenroll`), and `hub device revoke` cuts it on a connection already open. Refusals:
//! a CSR whose signature does not verify, a non-P-256 key, an IDevID of an unknown serial, an
//! IDevID of another manufacturing CA, an expired operational certificate, a second `device
//! add` with another key. Keys are rcgen software keys made here (the TPM is the box's side).

use super::common::{hub_bin, plain_log, Hub};
use super::hub_support::{get_on, manifest, F1};
use fgw_format::ids::Sha256Hex;
use fgw_format::package::protocol::{Ack, ApiError, ObjectAck};
use fgw_hub::enroll::{DeviceConfig, EnrollResponse, VpnStatus};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

const SIMPLEENROLL: &str = "/.well-known/est/simpleenroll";
const SIMPLEREENROLL: &str = "/.well-known/est/simplereenroll";
const SERIAL: &str = "fgw-00c0ffee00c0ffee";

/// `hub.toml` lines: a facility's settings, handed out at enrollment. No `[vpn]`: the
/// tunnel is `hospital_vpn.rs`.
fn enroll_config() -> String {
    format!(
        "operational_cert_days = 30\n\
         [facility_config.{F1}]\nupload_lane = \"test\"\nretries = 3\n"
    )
}

fn p256() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// A CSR for `key`; its subject asks for a name the hub must not copy.
fn csr(key: &rcgen::KeyPair, serial: Option<&str>) -> rcgen::CertificateSigningRequest {
    let mut params = rcgen::CertificateParams::new(vec!["asked-for.example".into()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "asked-for-name");
    if let Some(s) = serial {
        params.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]),
            rcgen::DnValue::PrintableString(s.try_into().unwrap()),
        );
    }
    params.serialize_request(key).unwrap()
}

/// Base64 with CRLF every 64 characters: how EST (RFC 7030) sends a PKCS#10 body.
fn est_base64(der: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in der.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn hub_cmd(hub: &Hub, args: &[&str]) -> Output {
    let (first, rest) = args.split_first().unwrap();
    let mut cmd = Command::new(hub_bin());
    cmd.arg(first);
    // `device add|revoke|show` take --config after their own subcommand.
    let mut rest = rest.to_vec();
    if *first == "device" {
        cmd.arg(rest.remove(0));
    }
    cmd.arg("--config").arg(&hub.config).args(rest).output().unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "hub failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn device_add(hub: &Hub, serial: &str, csr_file: &Path, out: &Path) -> Output {
    hub_cmd(
        hub,
        &[
            "device",
            "add",
            "--serial",
            serial,
            "--facility",
            F1,
            "--csr",
            csr_file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

/// A reqwest client (HTTP/1.1, keep-alive) presenting `cert_pem` with `key`, trusting `ca`.
fn client(
    dir: &Path,
    name: &str,
    ca: &Path,
    cert_pem: &str,
    key: &rcgen::KeyPair,
) -> reqwest::Client {
    let (cert, key_p) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key_p, key.serialize_pem()).unwrap();
    fgw_tls::install_ring_provider();
    let tls = fgw_tls::client_config(ca, &cert, &key_p).unwrap();
    reqwest::Client::builder().use_preconfigured_tls(tls).http1_only().build().unwrap()
}

/// A raw TLS connection presenting `cert_pem` with `key`, handshake done.
async fn raw(
    hub: &Hub,
    ca: &Path,
    cert_pem: &str,
    key: &rcgen::KeyPair,
    dir: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let (cert, key_p) = (dir.join("raw.crt"), dir.join("raw.key"));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key_p, key.serialize_pem()).unwrap();
    let tls = fgw_tls::client_config(ca, &cert, &key_p).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp).await.unwrap()
}

async fn enroll(
    c: &reqwest::Client,
    url: &str,
    body: String,
) -> Result<EnrollResponse, (StatusCode, String)> {
    let r = c
        .post(url)
        .header("content-type", "application/pkcs10")
        .header("content-transfer-encoding", "base64")
        .body(body)
        .send()
        .await
        .unwrap();
    match r.status() {
        StatusCode::OK => Ok(r.json().await.unwrap()),
        s => Err((s, r.json::<ApiError>().await.map(|e| e.error).unwrap_or_default())),
    }
}

/// A hub serving, with one box imaged: its IDevID key and the `hub device add` output.
struct Imaged {
    hub: Hub,
    dir: tempfile::TempDir,
    idevid_key: rcgen::KeyPair,
    idevid_pem: String,
    ca: PathBuf,
}

impl Imaged {
    fn start() -> Imaged {
        let dir = tempfile::tempdir().unwrap();
        let mut hub = Hub::init_with(&dir.path().join("hub"), &enroll_config());
        let idevid_key = p256();
        let csr_file = dir.path().join("box.csr");
        std::fs::write(&csr_file, csr(&idevid_key, Some(SERIAL)).pem().unwrap()).unwrap();
        let img = dir.path().join("image");
        let added = json_of(&device_add(&hub, SERIAL, &csr_file, &img));
        assert_eq!(
            (added["serial"].as_str(), added["existing"].as_bool()),
            (Some(SERIAL), Some(false))
        );
        let idevid_pem = std::fs::read_to_string(img.join("idevid.crt")).unwrap();
        let ca = img.join("ca.crt");
        // ca.crt is the society CA alone: the box trusts nothing else for the hub.
        assert_eq!(
            std::fs::read(&ca).unwrap(),
            std::fs::read(hub.data_dir().join("pki/ca.crt")).unwrap()
        );
        hub.start();
        Imaged { hub, dir, idevid_key, idevid_pem, ca }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.hub.url())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn idevid_client(&self) -> reqwest::Client {
        client(self.dir.path(), "idevid", &self.ca, &self.idevid_pem, &self.idevid_key)
    }

    fn show(&self) -> serde_json::Value {
        json_of(&hub_cmd(&self.hub, &["device", "show", SERIAL]))
    }
}

/// The `conn=` number of the first hub log line containing every one of `needles`.
fn logged_conn(log: &Path, needles: &[&str]) -> u64 {
    let text = plain_log(log);
    let line = text
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no hub log line with {needles:?}"));
    let at = line.find("conn=").unwrap() + 5;
    line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_upload_renew_and_revoke_on_an_open_connection() {
    let bx = Imaged::start();
    assert_eq!(bx.show()["status"], "assigned");
    let idevid = bx.idevid_client();

    // An IDevID may only enroll.
    let r = idevid.get(bx.url("/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = b"x".to_vec();
    let r = idevid
        .put(bx.url(&format!("/v1/objects/{}", Sha256Hex::of(&body))))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        enroll(&idevid, &bx.url(SIMPLEREENROLL), "x".into()).await.unwrap_err().0
            == StatusCode::FORBIDDEN
    );

    // simpleenroll: base64 DER as EST sends it; the answer's subject is the registry's.
    let op_key = p256();
    let req = csr(&op_key, None);
    let first = enroll(&idevid, &bx.url(SIMPLEENROLL), est_base64(req.der())).await.unwrap();
    assert_eq!((first.serial.as_str(), first.facility_id.as_str()), (SERIAL, F1));
    assert_eq!(first.config.settings["upload_lane"], "test");
    assert_eq!(first.config.settings["retries"], 3);
    assert_eq!(first.config.vpn.status, VpnStatus::Off, "a hub without [vpn] offers no tunnel");
    let not_after = chrono::DateTime::parse_from_rfc3339(&first.not_after).unwrap();
    let days =
        (not_after.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.1).contains(&days), "operational certificate valid {days} days");
    assert!(first.not_before < first.renew_after && first.renew_after < first.not_after);
    let shown = bx.show();
    assert_eq!(shown["status"], "enrolled");
    assert_eq!(shown["operational_not_after"], first.not_after.as_str());

    // The operational certificate (with the CSR's key: the handshake proves it) uploads.
    let op = client(bx.dir.path(), "op1", &bx.ca, &first.certificate, &op_key);
    let image = b"an endoscopy image".to_vec();
    let sha = Sha256Hex::of(&image);
    let r = op.put(bx.url(&format!("/v1/objects/{sha}"))).body(image.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<ObjectAck>().await.unwrap().sha256, sha);
    let m = manifest(F1, "e-enroll", 1, &[("images/001.jpg", &image)]).to_bytes();
    let id = fgw_format::package::Manifest::id_of(&m);
    let r = op.put(bx.url(&format!("/v1/packages/{id}"))).body(m).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Ack>().await.unwrap().facility_id.as_str(), F1);
    let cfg: DeviceConfig =
        op.get(bx.url("/v1/device/config")).send().await.unwrap().json().await.unwrap();
    assert_eq!(cfg, first.config);
    // Renewal is simplereenroll; simpleenroll is the IDevID's.
    let (status, _) = enroll(&op, &bx.url(SIMPLEENROLL), est_base64(req.der())).await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);

    // simplereenroll with the operational certificate, a new key, PEM this time.
    let op2_key = p256();
    let second =
        enroll(&op, &bx.url(SIMPLEREENROLL), csr(&op2_key, None).pem().unwrap()).await.unwrap();
    assert_ne!(second.certificate, first.certificate);
    assert!(second.not_after >= first.not_after);
    let op2 = client(bx.dir.path(), "op2", &bx.ca, &second.certificate, &op2_key);
    assert_eq!(bx.show()["operational_not_after"], second.not_after.as_str());

    // Revocation reaches connections already open: the reqwest client's keep-alive
    // connection, and a raw TLS connection that sends both requests itself.
    let mut held = raw(&bx.hub, &bx.ca, &first.certificate, &op_key, bx.dir.path()).await;
    assert_eq!(get_on(&mut held, "/v1/device/config").await, 200);
    assert_eq!(op2.get(bx.url("/v1/health")).send().await.unwrap().status(), StatusCode::OK);
    let revoked = json_of(&hub_cmd(&bx.hub, &["device", "revoke", SERIAL]));
    assert_eq!(
        (revoked["status"].as_str(), revoked["previous"].as_str()),
        (Some("revoked"), Some("enrolled"))
    );
    let r = op2.get(bx.url("/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.json::<ApiError>().await.unwrap().error.contains("revoked"));
    assert_eq!(get_on(&mut held, "/v1/device/config").await, 403);
    // The reqwest client's two requests went over one connection.
    let log = &bx.hub.log;
    let before = logged_conn(log, &["route=\"/v1/health\"", "status=200", SERIAL]);
    let after = logged_conn(log, &["route=\"/v1/health\"", "status=403", "revoked"]);
    assert_eq!(before, after, "the request after the revocation came on the same connection");

    // Every certificate of the serial, on new connections too; and it cannot enroll again.
    let fresh = client(bx.dir.path(), "op1b", &bx.ca, &first.certificate, &op_key);
    assert_eq!(
        fresh.get(bx.url("/v1/device/config")).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let (status, _) =
        enroll(&bx.idevid_client(), &bx.url(SIMPLEENROLL), est_base64(csr(&p256(), None).der()))
            .await
            .unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(bx.show()["status"], "revoked");
    let csr_file = bx.path("again.csr");
    std::fs::write(&csr_file, csr(&bx.idevid_key, None).pem().unwrap()).unwrap();
    let again = device_add(&bx.hub, SERIAL, &csr_file, &bx.path("image-again"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_unknown_serials_and_foreign_idevids_are_refused() {
    let bx = Imaged::start();
    let idevid = bx.idevid_client();

    // A CSR whose subject was changed after signing: the self-signature does not verify.
    let key = p256();
    let signed = csr(&key, None).der().to_vec();
    let at = signed.windows(14).position(|w| w == b"asked-for-name").unwrap();
    let mut forged = signed.clone();
    forged[at] = b'A';
    let (status, error) =
        enroll(&idevid, &bx.url(SIMPLEENROLL), est_base64(&forged)).await.unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.contains("signature"), "{error}");
    let forged_file = bx.path("forged.csr");
    std::fs::write(&forged_file, &forged).unwrap();
    let out = device_add(&bx.hub, "fgw-0000000000000002", &forged_file, &bx.path("img-forged"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature"));
    assert!(!bx.path("img-forged").exists());
    // A P-384 key, and something that is not a CSR.
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let (status, error) =
        enroll(&idevid, &bx.url(SIMPLEENROLL), est_base64(csr(&p384, None).der()))
            .await
            .unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.contains("P-256"), "{error}");
    let (status, _) =
        enroll(&idevid, &bx.url(SIMPLEENROLL), "not a request".into()).await.unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bx.show()["status"], "assigned");

    // `device add` for the serial again: the same key gives the same IDevID (a retried
    // imaging step); another key is refused and writes nothing.
    let same = bx.path("same.csr");
    std::fs::write(&same, csr(&bx.idevid_key, Some(SERIAL)).pem().unwrap()).unwrap();
    let again = json_of(&device_add(&bx.hub, SERIAL, &same, &bx.path("img-same")));
    assert_eq!(again["existing"], true);
    assert_eq!(std::fs::read_to_string(bx.path("img-same/idevid.crt")).unwrap(), bx.idevid_pem);
    let other = bx.path("other.csr");
    std::fs::write(&other, csr(&p256(), None).pem().unwrap()).unwrap();
    let out = device_add(&bx.hub, SERIAL, &other, &bx.path("img-other"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already registered"));
    assert!(!bx.path("img-other").exists());
    // The output directory is never overwritten.
    let out = device_add(&bx.hub, SERIAL, &same, &bx.path("img-same"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));

    // An IDevID signed by the hub's own manufacturing CA for a serial never added.
    let pki = bx.hub.data_dir().join("pki");
    let manufacturing =
        ca_issuer(&pki.join("manufacturing-ca.key"), fgw_hub::ca::MANUFACTURING_CA_NAME);
    let ghost_key = p256();
    let ghost = leaf(&manufacturing, &ghost_key, "fgw-0000000000000bad", None);
    let c = client(bx.dir.path(), "ghost", &bx.ca, &ghost, &ghost_key);
    let (status, error) =
        enroll(&c, &bx.url(SIMPLEENROLL), est_base64(csr(&p256(), None).der())).await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error.contains("not registered"), "{error}");
    let out = hub_cmd(&bx.hub, &["device", "revoke", "fgw-0000000000000bad"]);
    assert!(!out.status.success());

    // An IDevID of another manufacturing CA, even one with the same name: no handshake.
    let key_file = bx.path("rogue-ca.key");
    std::fs::write(&key_file, p256().serialize_pem()).unwrap();
    let rogue = ca_issuer(&key_file, fgw_hub::ca::MANUFACTURING_CA_NAME);
    let rogue_key = p256();
    let cert = leaf(&rogue, &rogue_key, SERIAL, None);
    let c = client(bx.dir.path(), "rogue", &bx.ca, &cert, &rogue_key);
    let r = c.post(bx.url(SIMPLEENROLL)).body(est_base64(csr(&p256(), None).der())).send().await;
    assert!(r.is_err(), "a foreign IDevID got an HTTP answer: {:?}", r.map(|r| r.status()));
    // The box's real IDevID still works after all this.
    enroll(&idevid, &bx.url(SIMPLEENROLL), est_base64(csr(&p256(), None).der())).await.unwrap();
}

/// An operational certificate that is expired is refused by TLS, while the same certificate
/// made valid gets an HTTP answer (403: the hub did not issue it): only the dates differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_operational_certificate_is_refused() {
    let bx = Imaged::start();
    let op_key = p256();
    let first =
        enroll(&bx.idevid_client(), &bx.url(SIMPLEENROLL), est_base64(csr(&op_key, None).der()))
            .await
            .unwrap();
    let op = client(bx.dir.path(), "op", &bx.ca, &first.certificate, &op_key);
    assert_eq!(op.get(bx.url("/v1/health")).send().await.unwrap().status(), StatusCode::OK);

    let society = ca_issuer(&bx.hub.data_dir().join("pki/ca.key"), fgw_hub::ca::CA_NAME);
    let key = p256();
    let expired = leaf(&society, &key, SERIAL, Some(((2020, 1, 1), (2020, 2, 1))));
    let c = client(bx.dir.path(), "expired", &bx.ca, &expired, &key);
    let r = c.get(bx.url("/v1/health")).send().await;
    assert!(r.is_err(), "an expired certificate got an HTTP answer: {:?}", r.map(|r| r.status()));
    let valid = leaf(&society, &key, SERIAL, None);
    let c = client(bx.dir.path(), "unexpired", &bx.ca, &valid, &key);
    assert_eq!(c.get(bx.url("/v1/health")).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let r = c.post(bx.url(SIMPLEREENROLL)).body(est_base64(csr(&p256(), None).der())).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::FORBIDDEN);
}

/// `hub init-manufacturing` gives a hub initialised before the manufacturing CA one, once.
#[test]
fn init_manufacturing_for_an_existing_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::init(&dir.path().join("hub"));
    let pki = hub.data_dir().join("pki");
    for f in ["manufacturing-ca.crt", "manufacturing-ca.key"] {
        std::fs::remove_file(pki.join(f)).unwrap();
    }
    let out = json_of(&hub_cmd(&hub, &["init-manufacturing"]));
    assert_eq!(
        out["manufacturing_ca_cert"].as_str().map(PathBuf::from),
        Some(pki.join("manufacturing-ca.crt"))
    );
    assert!(!hub_cmd(&hub, &["init-manufacturing"]).status.success());
    assert!(!hub_cmd(&hub, &["init"]).status.success());
}

/// A CA rebuilt from its key and name, as the hub rebuilds it to sign.
fn ca_issuer(key_file: &Path, name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(key_file).unwrap()).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    (params.self_signed(&key).unwrap(), key)
}

type Ymd = (i32, u8, u8);

/// A client certificate for `serial` signed by `ca`, valid between the dates if given.
fn leaf(
    ca: &(rcgen::Certificate, rcgen::KeyPair),
    key: &rcgen::KeyPair,
    serial: &str,
    validity: Option<(Ymd, Ymd)>,
) -> String {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, serial);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    if let Some(((y0, m0, d0), (y1, m1, d1))) = validity {
        params.not_before = rcgen::date_time_ymd(y0, m0, d0);
        params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    }
    params.signed_by(key, &ca.0, &ca.1).unwrap().pem()
}
