//! Device identity, the hub's side (issue 12; `docs/enrollment.md`).
//!
//! - At imaging, `hub device add` ([`device_add`]) signs the box's IDevID from its CSR with the
//!   manufacturing CA and registers the serial to a facility (status `assigned`).
//! - On first start the box enrolls over mTLS with that IDevID (`POST
//!   /.well-known/est/simpleenroll`), then renews with its operational certificate
//!   (`simplereenroll`): [`issue_operational`] signs a short-lived certificate with the society
//!   CA for the CSR's key, its subject taken from the registry, never from the CSR.
//! - `hub device revoke` ([`device_revoke`]) marks the serial revoked: the API looks every
//!   request's certificate up, so each certificate of the box is refused from its next
//!   request on.
//!
//! The wire format of the enrollment answers is [`EnrollResponse`] and [`DeviceConfig`].

use crate::ca::{self, Authority, CaError};
use crate::config::HubConfig;
use crate::store::{Enrollment, MetaStore, NewSerial, Revocation, SerialAdded, StoreError};
use crate::vpn::VpnOffer;
use fgw_format::ids::{FacilityId, Sha256Hex};
use rcgen::PublicKeyData;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Largest CSR accepted, as a request body or a file (a P-256 CSR is well under 1 KiB).
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// The IDevID, one of the files [`device_add`] writes into its output directory.
pub const IDEVID_CERT_FILE: &str = "idevid.crt";
/// The society CA certificate: the one root the box trusts for the hub's server certificate.
pub const CA_CERT_FILE: &str = ca::CA_CERT_FILE;

pub use fgw_format::ids::{BadSerial, Serial};

/// Why a CSR was refused. Reasons only: a CSR's content is never quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrProblem {
    /// Larger than [`MAX_CSR_BYTES`].
    #[error("larger than {MAX_CSR_BYTES} bytes")]
    TooLarge,
    /// Neither PEM, base64 DER nor DER.
    #[error("not a PEM, base64 or DER PKCS#10 request")]
    Encoding,
    /// Not a PKCS#10 structure.
    #[error("not a well-formed PKCS#10 request")]
    Malformed,
    /// The self-signature does not verify with the request's key.
    #[error("its signature does not verify with its key")]
    BadSignature,
    /// The key is not ECDSA P-256.
    #[error("its key is not an ECDSA P-256 key")]
    NotP256,
}

/// Why a device identity operation failed; named by serial, path or reason.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The CSR (file or request body) is refused.
    #[error("enroll: certificate request {source_name}: {problem}")]
    Csr {
        /// Where it came from: the file, or "request body".
        source_name: String,
        /// Why.
        problem: CsrProblem,
    },
    /// The CSR's subject carries a serialNumber other than the serial being registered.
    #[error("enroll: the certificate request names another serial than {serial}")]
    SerialMismatch {
        /// The serial being registered.
        serial: Serial,
    },
    /// A file could not be read.
    #[error("enroll: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `hub device revoke` of a serial the hub does not know.
    #[error("enroll: serial {serial} is not registered")]
    UnknownSerial {
        /// The serial.
        serial: Serial,
    },
    /// Signing, or writing the output, failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The registry refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A PKCS#10 request whose self-signature verified and whose key is ECDSA P-256. Only the
/// key is used; the requested subject and extensions are ignored.
pub struct Csr {
    key: rcgen::SubjectPublicKeyInfo,
    key_sha256: Sha256Hex,
    subject_serial: Option<Option<String>>,
}

impl fmt::Debug for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Csr(key {})", self.key_sha256)
    }
}

impl Csr {
    /// Parse a DER request, verify its self-signature, require a P-256 key.
    pub fn from_der(der: &[u8]) -> Result<Csr, CsrProblem> {
        use x509_parser::certification_request::X509CertificationRequest;
        use x509_parser::prelude::FromDer;
        if der.len() > MAX_CSR_BYTES {
            return Err(CsrProblem::TooLarge);
        }
        let (rest, req) =
            X509CertificationRequest::from_der(der).map_err(|_| CsrProblem::Malformed)?;
        if !rest.is_empty() {
            return Err(CsrProblem::Malformed);
        }
        req.verify_signature().map_err(|_| CsrProblem::BadSignature)?;
        let spki = req.certification_request_info.subject_pki.raw;
        // rcgen matches the whole algorithm identifier (id-ecPublicKey + prime256v1).
        let key = rcgen::SubjectPublicKeyInfo::from_der(spki).map_err(|_| CsrProblem::NotP256)?;
        let point = key.der_bytes();
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256
            || point.len() != 65
            || point[0] != 0x04
        {
            return Err(CsrProblem::NotP256);
        }
        let subject_serial = req
            .certification_request_info
            .subject
            .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
            .next()
            .map(|attr| attr.as_str().ok().map(str::to_string));
        Ok(Csr { key, key_sha256: Sha256Hex::of(spki), subject_serial })
    }

    /// Parse a request as EST (RFC 7030 §4.2.1) sends it: base64 of the DER, line breaks
    /// allowed; also PEM (`CERTIFICATE REQUEST`) and raw DER.
    pub fn from_est_body(body: &[u8]) -> Result<Csr, CsrProblem> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateSigningRequestDer;
        if body.len() > MAX_CSR_BYTES * 2 {
            return Err(CsrProblem::TooLarge);
        }
        // DER is a SEQUENCE (0x30, which is '0' and begins no base64 of a CSR); taken as it
        // is, since its last byte may well look like whitespace.
        if body.first() == Some(&0x30) {
            return Csr::from_der(body);
        }
        let text = body.trim_ascii();
        let pem = if text.starts_with(b"-----BEGIN") {
            text.to_vec()
        } else {
            // Bare base64: only its alphabet and whitespace, so nothing can end the section.
            let b64 = |b: &u8| b.is_ascii_alphanumeric() || b"+/=".contains(b);
            if text.is_empty() || !text.iter().all(|b| b64(b) || b.is_ascii_whitespace()) {
                return Err(CsrProblem::Encoding);
            }
            let mut pem = b"-----BEGIN CERTIFICATE REQUEST-----\n".to_vec();
            pem.extend_from_slice(text);
            pem.extend_from_slice(b"\n-----END CERTIFICATE REQUEST-----\n");
            pem
        };
        let der =
            CertificateSigningRequestDer::from_pem_slice(&pem).map_err(|_| CsrProblem::Encoding)?;
        Csr::from_der(der.as_ref())
    }

    /// SHA-256 of the key's SubjectPublicKeyInfo (DER).
    pub fn key_sha256(&self) -> &Sha256Hex {
        &self.key_sha256
    }

    /// The request's key, as rcgen signs for it.
    pub(crate) fn key(&self) -> &rcgen::SubjectPublicKeyInfo {
        &self.key
    }

    /// Whether the subject's serialNumber, if it has one, is `serial`.
    fn names(&self, serial: &Serial) -> bool {
        match &self.subject_serial {
            None => true,
            Some(s) => s.as_deref() == Some(serial.as_str()),
        }
    }
}

/// RFC 3339, UTC, whole seconds: how the registry and the wire write times.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `t` without its fraction of a second (certificate times have none).
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// What [`device_add`] did.
#[derive(Debug, Clone)]
pub struct DeviceAdded {
    /// The serial.
    pub serial: Serial,
    /// Its facility.
    pub facility: FacilityId,
    /// `DIR/idevid.crt`.
    pub idevid: PathBuf,
    /// `DIR/ca.crt`.
    pub ca_cert: PathBuf,
    /// SHA-256 of the IDevID certificate (DER).
    pub fingerprint: Sha256Hex,
    /// `false`: registered by this call; `true`: the serial was already registered with the
    /// same facility and key, and its IDevID was written again.
    pub existing: bool,
}

fn read_csr_file(path: &Path) -> Result<Csr, EnrollError> {
    use std::io::Read;
    let io = |source| EnrollError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CSR_BYTES as u64 * 2 + 1).read_to_end(&mut bytes).map_err(io)?;
    Csr::from_est_body(&bytes)
        .map_err(|problem| EnrollError::Csr { source_name: path.display().to_string(), problem })
}

/// `hub device add`: sign the box's IDevID from the CSR in `csr_file` with the manufacturing
/// CA, register `serial` → `facility` (status `assigned`), and write `out_dir/idevid.crt`
/// and `out_dir/ca.crt` (the society CA only). Refuses to overwrite either file.
///
/// Idempotent for one box: the same serial with the same facility and key again writes the
/// IDevID issued the first time (a retried imaging step); another facility or key for a
/// registered serial, or a revoked serial, is refused.
pub fn device_add(
    cfg: &HubConfig,
    meta: &dyn MetaStore,
    serial: &Serial,
    facility: &FacilityId,
    csr_file: &Path,
    out_dir: &Path,
) -> Result<DeviceAdded, EnrollError> {
    let csr = read_csr_file(csr_file)?;
    if !csr.names(serial) {
        return Err(EnrollError::SerialMismatch { serial: serial.clone() });
    }
    let idevid_p = out_dir.join(IDEVID_CERT_FILE);
    let ca_p = out_dir.join(CA_CERT_FILE);
    for p in [&idevid_p, &ca_p] {
        if p.exists() {
            return Err(CaError::Exists { path: p.clone() }.into());
        }
    }
    let manufacturing = Authority::manufacturing(cfg)?;
    let society_pem = std::fs::read(cfg.ca_cert())
        .map_err(|source| EnrollError::Io { path: cfg.ca_cert(), source })?;
    let issued = ca::sign_idevid(&manufacturing, serial, csr.key())?;
    let (y, m, d) = ca::IDEVID_NOT_AFTER;
    let new = NewSerial {
        serial: serial.clone(),
        facility: facility.clone(),
        idevid_key: csr.key_sha256().clone(),
        idevid_fingerprint: issued.fingerprint.clone(),
        idevid_pem: issued.pem.clone(),
        idevid_not_after: format!("{y:04}-{m:02}-{d:02}T23:59:59Z"),
    };
    // Registered before the files are written: a failed write is mended by running the same
    // command again (same key: the same certificate comes back).
    let (pem, existing) = match meta.add_serial(&new)? {
        SerialAdded::New => (issued.pem, false),
        SerialAdded::Existing { idevid_pem } => (idevid_pem, true),
    };
    let fingerprint =
        pem_certificate(&pem).map(|der| fgw_tls::cert_fingerprint(&der)).ok_or_else(|| {
            StoreError::Corrupt { path: cfg.db_path(), what: "device_serials.idevid_cert".into() }
        })?;
    ca::create_dir_private(out_dir)?;
    ca::write_new(&idevid_p, pem.as_bytes(), 0o644)?;
    ca::write_new(&ca_p, &society_pem, 0o644)?;
    Ok(DeviceAdded {
        serial: serial.clone(),
        facility: facility.clone(),
        idevid: idevid_p,
        ca_cert: ca_p,
        fingerprint,
        existing,
    })
}

/// The first certificate of a PEM text, `None` if there is none.
fn pem_certificate(pem: &str) -> Option<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok()
}

/// `hub device revoke`: mark the serial revoked (and drop `issue-device` registrations of
/// the same id). Revoking twice is not an error; an unknown serial is.
pub fn device_revoke(meta: &dyn MetaStore, serial: &Serial) -> Result<Revocation, EnrollError> {
    let r = meta.revoke_serial(serial)?;
    if r.previous.is_none() && r.device_certificates_removed == 0 {
        return Err(EnrollError::UnknownSerial { serial: serial.clone() });
    }
    Ok(r)
}

pub use fgw_format::package::protocol::{DeviceConfig, EnrollResponse, VpnPeer, VpnStatus};

/// What enrollment needs from `hub.toml`, kept by the serving hub.
#[derive(Debug, Clone)]
pub(crate) struct EnrollSettings {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    operational_cert_days: u32,
    facility_config: BTreeMap<FacilityId, serde_json::Map<String, serde_json::Value>>,
    /// What boxes are told about the tunnel; `None` without `[vpn]`.
    vpn: Option<VpnOffer>,
}

impl EnrollSettings {
    /// The settings of `cfg`; with `[vpn]`, `vpn_key` is the hub's WireGuard key.
    pub(crate) fn from_config(
        cfg: &HubConfig,
        vpn_key: Option<&fgw_vpn::WgPrivateKey>,
    ) -> Result<EnrollSettings, crate::config::ConfigError> {
        let vpn = match (&cfg.vpn, vpn_key) {
            (Some(vpn), Some(key)) => Some(VpnOffer::new(vpn, key)?),
            _ => None,
        };
        Ok(EnrollSettings {
            ca_cert: cfg.ca_cert(),
            ca_key: cfg.ca_key(),
            operational_cert_days: cfg.operational_cert_days,
            facility_config: cfg.facility_config.clone(),
            vpn,
        })
    }

    /// The configuration handed to a box of `facility`, with `vpn` as its tunnel.
    pub(crate) fn device_config(&self, facility: &FacilityId, vpn: VpnPeer) -> DeviceConfig {
        DeviceConfig {
            facility_id: facility.clone(),
            settings: self.facility_config.get(facility).cloned().unwrap_or_default(),
            vpn,
        }
    }

    /// The tunnel of `serial` as the registry has it (off without `[vpn]` or without a key).
    pub(crate) fn vpn_of(
        &self,
        meta: &dyn MetaStore,
        serial: &Serial,
    ) -> Result<VpnPeer, StoreError> {
        let Some(offer) = &self.vpn else { return Ok(VpnPeer::off()) };
        let record = meta.active_tunnels()?.into_iter().find(|t| &t.serial == serial);
        Ok(record.map(|t| offer.peer_for(t.host_index)).unwrap_or_else(VpnPeer::off))
    }
}

/// Sign an operational certificate for the CSR's key with the society CA (read from disk
/// now: the key may be rotated or withdrawn without a restart), register it, and build the
/// answer. `serial` and `facility` come from the registry entry of the authenticated
/// certificate. Blocking (files, SQLite).
pub(crate) fn issue_operational(
    settings: &EnrollSettings,
    meta: &dyn MetaStore,
    serial: &Serial,
    facility: &FacilityId,
    csr: &Csr,
    enrollment: Enrollment,
    wg_key: Option<&fgw_vpn::WgPublicKey>,
) -> Result<EnrollResponse, EnrollError> {
    let society = Authority::load_society(&settings.ca_cert, &settings.ca_key)?;
    let issued_at = whole_seconds(SystemTime::now());
    let lifetime = Duration::from_secs(u64::from(settings.operational_cert_days) * 86_400);
    let not_after = issued_at + lifetime;
    let cert = ca::sign_operational(&society, serial, facility, csr.key(), issued_at, not_after)?;
    let not_after_s = rfc3339(not_after);
    meta.record_operational(serial, &cert.fingerprint, &not_after_s, enrollment)?;
    // The box's WireGuard key, when the hub has a tunnel and the box sent one: registered
    // (the interface picks it up at its next reconcile) and answered with its address.
    let vpn = match (&settings.vpn, wg_key) {
        (Some(offer), Some(key)) => offer.peer_for(meta.set_tunnel_key(serial, &key.to_string())?),
        _ => settings.vpn_of(meta, serial)?,
    };
    Ok(EnrollResponse {
        serial: serial.clone(),
        facility_id: facility.clone(),
        certificate: cert.pem,
        not_before: rfc3339(issued_at - ca::OPERATIONAL_BACKDATE),
        not_after: not_after_s,
        renew_after: rfc3339(issued_at + lifetime * 2 / 3),
        config: settings.device_config(facility, vpn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SerialStatus, SqliteMetaStore};

    fn csr_pem(key: &rcgen::KeyPair, serial: Option<&str>) -> String {
        let mut params = rcgen::CertificateParams::default();
        if let Some(s) = serial {
            params.distinguished_name.push(
                rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]),
                rcgen::DnValue::PrintableString(s.try_into().unwrap()),
            );
        }
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    fn p256() -> rcgen::KeyPair {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
    }

    #[test]
    fn serials_have_a_printable_shape() {
        assert!(Serial::new("fgw-0123456789abcdef").is_ok());
        for bad in ["", "a_b", "a b", "é", "-fgw", &"x".repeat(65)] {
            assert!(Serial::new(bad).is_err(), "{bad}");
        }
        // Every serial is a device id (`device_id` relies on it).
        for good in ["fgw-0123456789abcdef", "A", "a-", &"x".repeat(64)] {
            assert_eq!(Serial::new(good).unwrap().device_id().as_str(), good);
        }
        assert!(!Serial::new("x y").unwrap_err().to_string().contains("x y"));
    }

    #[test]
    fn csrs_in_every_est_encoding_and_the_refusals() {
        let key = p256();
        let pem = csr_pem(&key, None);
        let a = Csr::from_est_body(pem.as_bytes()).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|d: rustls::pki_types::CertificateSigningRequestDer<'_>| d.as_ref().to_vec())
            .unwrap();
        let b = Csr::from_est_body(&der).unwrap();
        // Base64 as EST sends it: the PEM body without its markers, CRLF line breaks.
        let b64: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let c = Csr::from_est_body(b64.join("\r\n").as_bytes()).unwrap();
        assert_eq!(a.key_sha256(), &Sha256Hex::of(&key.public_key_der()));
        assert_eq!((b.key_sha256(), c.key_sha256()), (a.key_sha256(), a.key_sha256()));

        // The subject changed after signing, or the signature itself: it no longer verifies.
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, "box-a");
        let signed = params.serialize_request(&key).unwrap().der().to_vec();
        let at = signed.windows(5).position(|w| w == b"box-a").unwrap();
        let mut renamed = signed.clone();
        renamed[at + 4] = b'b';
        assert_eq!(Csr::from_der(&renamed).unwrap_err(), CsrProblem::BadSignature);
        let mut resigned = signed.clone();
        *resigned.last_mut().unwrap() ^= 0x01;
        assert_eq!(Csr::from_der(&resigned).unwrap_err(), CsrProblem::BadSignature);
        assert!(Csr::from_der(&signed).is_ok());
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let e = Csr::from_est_body(csr_pem(&p384, None).as_bytes()).unwrap_err();
        assert_eq!(e, CsrProblem::NotP256);
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(
            Csr::from_est_body(csr_pem(&ed, None).as_bytes()).unwrap_err(),
            CsrProblem::NotP256
        );
        assert_eq!(Csr::from_est_body(b"not a csr!").unwrap_err(), CsrProblem::Encoding);
        assert_eq!(Csr::from_est_body(b"").unwrap_err(), CsrProblem::Encoding);
        assert_eq!(Csr::from_est_body(b"MIIB").unwrap_err(), CsrProblem::Malformed);
        // A marker smuggled into "base64" does not open a second section.
        let smuggled = format!("AAAA\n-----END CERTIFICATE REQUEST-----\n{pem}");
        assert!(Csr::from_est_body(smuggled.as_bytes()).is_err());
    }

    #[test]
    fn device_add_signs_registers_and_is_idempotent_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HubConfig::with_data_dir(dir.path().join("hub"));
        ca::init(&cfg).unwrap();
        let meta = SqliteMetaStore::open(&cfg.db_path()).unwrap();
        let serial = Serial::new("fgw-00000000000000aa").unwrap();
        let f1 = FacilityId::new("F0001").unwrap();
        let key = p256();
        let csr = dir.path().join("box.csr");
        std::fs::write(&csr, csr_pem(&key, Some(serial.as_str()))).unwrap();

        let out = dir.path().join("img1");
        let added = device_add(&cfg, &meta, &serial, &f1, &csr, &out).unwrap();
        assert!(!added.existing);
        let idevid = fgw_tls::load_certs(&added.idevid).unwrap();
        assert_eq!(fgw_tls::cert_fingerprint(&idevid[0]), added.fingerprint);
        // The IDevID chains to the manufacturing CA, not to the society CA; ca.crt is the
        // society CA alone.
        ca::verify_chains(&cfg.manufacturing_ca_cert(), &idevid[0]).unwrap();
        assert!(ca::verify_chains(&cfg.ca_cert(), &idevid[0]).is_err());
        assert_eq!(std::fs::read(&added.ca_cert).unwrap(), std::fs::read(cfg.ca_cert()).unwrap());
        assert_eq!(meta.serial(&serial).unwrap().unwrap().status, SerialStatus::Assigned);

        // Never overwrites.
        assert!(matches!(
            device_add(&cfg, &meta, &serial, &f1, &csr, &out),
            Err(EnrollError::Ca(CaError::Exists { .. }))
        ));
        // Same key again, elsewhere: the same certificate.
        let again = device_add(&cfg, &meta, &serial, &f1, &csr, &dir.path().join("img2")).unwrap();
        assert!(again.existing);
        assert_eq!(again.fingerprint, added.fingerprint);
        // Another facility, or another key, for the serial: refused, nothing written.
        let f2 = FacilityId::new("F0002").unwrap();
        let img3 = dir.path().join("img3");
        assert!(matches!(
            device_add(&cfg, &meta, &serial, &f2, &csr, &img3),
            Err(EnrollError::Store(StoreError::SerialTaken { .. }))
        ));
        let other = dir.path().join("other.csr");
        std::fs::write(&other, csr_pem(&p256(), None)).unwrap();
        assert!(matches!(
            device_add(&cfg, &meta, &serial, &f1, &other, &img3),
            Err(EnrollError::Store(StoreError::SerialTaken { .. }))
        ));
        assert!(!img3.exists());
        // A CSR naming another serial.
        let named = dir.path().join("named.csr");
        std::fs::write(&named, csr_pem(&p256(), Some("fgw-00000000000000bb"))).unwrap();
        assert!(matches!(
            device_add(&cfg, &meta, &serial, &f1, &named, &img3),
            Err(EnrollError::SerialMismatch { .. })
        ));

        let r = device_revoke(&meta, &serial).unwrap();
        assert_eq!(r.previous, Some(SerialStatus::Assigned));
        assert!(matches!(
            device_revoke(&meta, &Serial::new("fgw-unknown").unwrap()),
            Err(EnrollError::UnknownSerial { .. })
        ));
    }

    #[test]
    fn operational_certificates_take_their_subject_from_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = HubConfig::with_data_dir(dir.path().join("hub"));
        cfg.operational_cert_days = 3;
        ca::init(&cfg).unwrap();
        let meta = SqliteMetaStore::open(&cfg.db_path()).unwrap();
        let serial = Serial::new("fgw-00000000000000cc").unwrap();
        let f1 = FacilityId::new("F0001").unwrap();
        let csr_file = dir.path().join("box.csr");
        std::fs::write(&csr_file, csr_pem(&p256(), None)).unwrap();
        device_add(&cfg, &meta, &serial, &f1, &csr_file, &dir.path().join("img")).unwrap();

        let op_key = p256();
        // The request asks for another name; the certificate names the registry's box.
        let mut params = rcgen::CertificateParams::new(vec!["evil.example".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "someone-else");
        let csr = Csr::from_est_body(
            params.serialize_request(&op_key).unwrap().pem().unwrap().as_bytes(),
        )
        .unwrap();
        let settings = EnrollSettings::from_config(&cfg, None).unwrap();
        let r = issue_operational(&settings, &meta, &serial, &f1, &csr, Enrollment::Initial, None)
            .unwrap();
        assert_eq!((&r.serial, &r.facility_id), (&serial, &f1));
        assert_eq!(r.config.vpn.status, VpnStatus::Off, "no [vpn]: no tunnel");
        assert!(r.not_before < r.renew_after && r.renew_after < r.not_after);
        let der = pem_certificate(&r.certificate).unwrap();
        ca::verify_chains(&cfg.ca_cert(), &der).unwrap();
        let text = String::from_utf8_lossy(der.as_ref()).into_owned();
        assert!(!text.contains("someone-else") && !text.contains("evil.example"));
        let rec = meta.serial(&serial).unwrap().unwrap();
        assert_eq!(rec.status, SerialStatus::Enrolled);
        assert_eq!(rec.operational_not_after.as_deref(), Some(r.not_after.as_str()));
        let cred = meta.credential_by_fingerprint(&fgw_tls::cert_fingerprint(&der)).unwrap();
        assert_eq!(cred.unwrap().serial, serial);
    }

    #[test]
    fn with_a_vpn_each_box_gets_its_own_address_and_a_revoked_one_leaves_the_tunnel() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = HubConfig::with_data_dir(dir.path().join("hub"));
        cfg.vpn = Some(
            toml::from_str("address = \"10.88.0.1/16\"\nendpoint = \"hub.example.org:51820\"\n")
                .unwrap(),
        );
        ca::init(&cfg).unwrap();
        let meta = SqliteMetaStore::open(&cfg.db_path()).unwrap();
        let hub_key = fgw_vpn::WgPrivateKey::from_bytes([9; 32]);
        let settings = EnrollSettings::from_config(&cfg, Some(&hub_key)).unwrap();
        let f1 = FacilityId::new("F0001").unwrap();
        let mut enrolled = Vec::new();
        for (i, name) in ["fgw-00000000000000d1", "fgw-00000000000000d2"].iter().enumerate() {
            let serial = Serial::new(*name).unwrap();
            let csr_file = dir.path().join(format!("box{i}.csr"));
            std::fs::write(&csr_file, csr_pem(&p256(), None)).unwrap();
            device_add(&cfg, &meta, &serial, &f1, &csr_file, &dir.path().join(format!("img{i}")))
                .unwrap();
            let csr = Csr::from_est_body(csr_pem(&p256(), None).as_bytes()).unwrap();
            let wg = fgw_vpn::WgPrivateKey::from_bytes([i as u8 + 1; 32]).public_key();
            let r = issue_operational(
                &settings,
                &meta,
                &serial,
                &f1,
                &csr,
                Enrollment::Initial,
                Some(&wg),
            )
            .unwrap();
            let vpn = r.config.vpn;
            assert_eq!(vpn.status, VpnStatus::Active);
            assert_eq!(vpn.hub_public_key, Some(hub_key.public_key().to_string()));
            assert_eq!(vpn.address, Some(format!("10.88.0.{}/32", i + 2)));
            assert_eq!(vpn.api_url.as_deref(), Some("https://10.88.0.1:8443"));
            enrolled.push((serial, wg, csr));
        }
        // A renewal keeps the box's address; another box's key is refused.
        let (serial, wg, csr) = &enrolled[0];
        let again =
            issue_operational(&settings, &meta, serial, &f1, csr, Enrollment::Renewal, Some(wg))
                .unwrap();
        assert_eq!(again.config.vpn.address.as_deref(), Some("10.88.0.2/32"));
        let taken = issue_operational(
            &settings,
            &meta,
            serial,
            &f1,
            csr,
            Enrollment::Renewal,
            Some(&enrolled[1].1),
        );
        assert!(matches!(taken, Err(EnrollError::Store(StoreError::TunnelKeyTaken { .. }))));
        // Revoked: no longer among the tunnel's peers.
        assert_eq!(meta.active_tunnels().unwrap().len(), 2);
        device_revoke(&meta, serial).unwrap();
        let left = meta.active_tunnels().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].serial, enrolled[1].0);
        assert_eq!(settings.vpn_of(&meta, serial).unwrap().status, VpnStatus::Off);
    }
}
