//! The society CA (development / pilot PKI): creates the CA and the hub's server certificate,
//! and issues device certificates that are registered in the hub's metadata store.
//!
//! Keys are ECDSA P-256, written 0600 with `O_EXCL` so nothing is ever overwritten. Production
//! enrollment (keys generated in the gateway's TPM, CSR-based) replaces `issue_device` later.

pub use super::Role;

use super::config::HubConfig;
use super::store::{MetaStore, SqliteMetaStore, StoreError};
use chrono::Datelike;
use fgw_format::ids::{DeviceId, FacilityId, Sha256Hex};
use fgw_tls::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Subject common name of the society CA.
pub const CA_NAME: &str = "FGW Society CA";
/// CA validity: 20 years (rotating the root means touching every gateway).
pub const CA_VALID_DAYS: u64 = 20 * 365;
/// Hub server certificate validity: 5 years.
pub const SERVER_VALID_DAYS: u64 = 5 * 365;
/// Device certificate validity: 3 years.
pub const DEVICE_VALID_DAYS: u64 = 3 * 365;

/// The device certificate, one of the files [`issue_device`] writes into its output directory.
pub const DEVICE_CERT_FILE: &str = "device.crt";
/// The device's private key (0600).
pub const DEVICE_KEY_FILE: &str = "device.key";
/// The society CA certificate, for the device to trust the hub.
pub const CA_CERT_FILE: &str = "ca.crt";

/// Why a CA operation failed; named by path or by what was being made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The file exists; identities are never overwritten.
    #[error("ca: {path} already exists; refusing to overwrite it")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("ca: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Key or certificate generation failed.
    #[error("ca: generating {what}: {source}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// Why.
        source: rcgen::Error,
    },
    /// The CA key file is not a usable key.
    #[error("ca: key {path} is not a usable ECDSA P-256 PEM key: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: rcgen::Error,
    },
    /// A certificate just issued does not verify against the CA certificate.
    #[error("ca: issued certificate does not chain to {path} (CA key and certificate differ?)")]
    NotChained {
        /// The CA certificate file.
        path: PathBuf,
    },
    /// Loading a certificate failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Registering the device failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct InitOutput {
    /// The CA certificate written.
    pub ca_cert: PathBuf,
    /// The server certificate written.
    pub server_cert: PathBuf,
    /// SHA-256 of the CA certificate (DER), for out-of-band checking.
    pub ca_fingerprint: Sha256Hex,
}

/// Where a device bundle was written.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The device certificate.
    pub cert: PathBuf,
    /// The device key.
    pub key: PathBuf,
    /// The CA certificate.
    pub ca_cert: PathBuf,
    /// SHA-256 of the device certificate (DER): its registry key.
    pub fingerprint: Sha256Hex,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io { path: path.to_path_buf(), source }
}

/// Write a new file (never overwriting) with the given mode, durably.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(
            |e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => CaError::Exists { path: path.to_path_buf() },
                _ => io(path)(e),
            },
        )?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn create_dir_private(dir: &Path) -> Result<(), CaError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))
}

fn validity(params: &mut CertificateParams, days: u64) {
    // Start yesterday: a gateway whose clock lags a little must still accept the chain.
    let start = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let end = start + chrono::Days::new(days);
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(start);
    params.not_after = ymd(end);
}

fn random_serial() -> SerialNumber {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).expect("system RNG");
    b[0] &= 0x7f; // DER INTEGER stays positive
    b[0] |= 0x01; // and keeps its full length
    SerialNumber::from_slice(&b)
}

fn new_key(what: &'static str) -> Result<KeyPair, CaError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| CaError::Generate { what, source })
}

/// CA parameters. Deterministic apart from validity and serial, because signing re-creates
/// the issuer from them (rcgen cannot parse the stored certificate without x509-parser):
/// the issuer name and key identifier of children depend only on the name and the key.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Create the society CA and the hub's server certificate. Refuses if any of the four files
/// already exists (re-initialising would orphan every issued device certificate).
pub fn init(cfg: &HubConfig) -> Result<InitOutput, CaError> {
    let (ca_cert_p, ca_key_p) = (cfg.ca_cert(), cfg.ca_key());
    let (srv_cert_p, srv_key_p) = (cfg.server_cert(), cfg.server_key());
    for p in [&ca_cert_p, &ca_key_p, &srv_cert_p, &srv_key_p] {
        if p.exists() {
            return Err(CaError::Exists { path: p.clone() });
        }
    }
    for p in [&ca_cert_p, &ca_key_p, &srv_cert_p, &srv_key_p] {
        if let Some(dir) = p.parent() {
            create_dir_private(dir)?;
        }
    }

    let ca_key = new_key("CA key")?;
    let mut params = ca_params();
    validity(&mut params, CA_VALID_DAYS);
    params.serial_number = Some(random_serial());
    let ca_cert =
        params.self_signed(&ca_key).map_err(|source| CaError::Generate { what: "CA", source })?;

    let srv_key = new_key("server key")?;
    let mut params = CertificateParams::new(cfg.server_names.clone())
        .map_err(|source| CaError::Generate { what: "server certificate names", source })?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cfg.server_names.first().map(String::as_str).unwrap_or("hub"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, SERVER_VALID_DAYS);
    params.serial_number = Some(random_serial());
    let srv_cert = params
        .signed_by(&srv_key, &ca_cert, &ca_key)
        .map_err(|source| CaError::Generate { what: "server certificate", source })?;

    // Keys first: a crash in between leaves a key without a certificate (init refuses and
    // the operator removes it), never a certificate whose key was lost.
    write_new(&ca_key_p, ca_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&ca_cert_p, ca_cert.pem().as_bytes(), 0o644)?;
    write_new(&srv_key_p, srv_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&srv_cert_p, srv_cert.pem().as_bytes(), 0o644)?;
    Ok(InitOutput {
        ca_cert: ca_cert_p,
        server_cert: srv_cert_p,
        ca_fingerprint: fgw_tls::cert_fingerprint(ca_cert.der()),
    })
}

/// A signed device certificate and its key, not yet written anywhere.
pub struct SignedDevice {
    cert_pem: String,
    key_pem: String,
    ca_pem: Vec<u8>,
    /// SHA-256 of the certificate (DER): its registry key.
    pub fingerprint: Sha256Hex,
}

impl std::fmt::Debug for SignedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Holds a private key: print only the fingerprint.
        write!(f, "SignedDevice({})", self.fingerprint)
    }
}

impl SignedDevice {
    fn paths(out_dir: &Path, fingerprint: &Sha256Hex) -> IssuedCert {
        IssuedCert {
            cert: out_dir.join(DEVICE_CERT_FILE),
            key: out_dir.join(DEVICE_KEY_FILE),
            ca_cert: out_dir.join(CA_CERT_FILE),
            fingerprint: fingerprint.clone(),
        }
    }

    /// Fail early if `out_dir` already holds a device bundle (never overwrite an identity).
    pub fn check_out_dir(&self, out_dir: &Path) -> Result<(), CaError> {
        let p = Self::paths(out_dir, &self.fingerprint);
        for path in [p.key, p.cert, p.ca_cert] {
            if path.exists() {
                return Err(CaError::Exists { path });
            }
        }
        Ok(())
    }

    /// Write `device.key` (0600), `device.crt` and `ca.crt` into `out_dir` (created 0700).
    pub fn write_to(&self, out_dir: &Path) -> Result<IssuedCert, CaError> {
        self.check_out_dir(out_dir)?;
        create_dir_private(out_dir)?;
        let issued = Self::paths(out_dir, &self.fingerprint);
        write_new(&issued.key, self.key_pem.as_bytes(), 0o600)?;
        write_new(&issued.cert, self.cert_pem.as_bytes(), 0o644)?;
        write_new(&issued.ca_cert, &self.ca_pem, 0o644)?;
        Ok(issued)
    }
}

/// Sign a client certificate in memory: CN = device id, O = facility id, EKU clientAuth.
pub fn sign_device(
    cfg: &HubConfig,
    device: &DeviceId,
    facility: &FacilityId,
) -> Result<SignedDevice, CaError> {
    let ca_key_p = cfg.ca_key();
    let ca_cert_p = cfg.ca_cert();
    let pem = std::fs::read_to_string(&ca_key_p).map_err(io(&ca_key_p))?;
    let ca_key = KeyPair::from_pem(&pem)
        .map_err(|source| CaError::Key { path: ca_key_p.clone(), source })?;
    let ca_pem = std::fs::read(&ca_cert_p).map_err(io(&ca_cert_p))?;
    let issuer = ca_params()
        .self_signed(&ca_key)
        .map_err(|source| CaError::Key { path: ca_key_p.clone(), source })?;

    let key = new_key("device key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, device.as_str());
    dn.push(DnType::OrganizationName, facility.as_str());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, DEVICE_VALID_DAYS);
    params.serial_number = Some(random_serial());
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|source| CaError::Generate { what: "device certificate", source })?;

    // Check the result the way the hub will, so a mismatched ca.key / ca.crt pair is caught
    // here and not at the first upload.
    verify_chains(&ca_cert_p, cert.der())?;
    Ok(SignedDevice {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem,
        fingerprint: fgw_tls::cert_fingerprint(cert.der()),
    })
}

/// Sign a device certificate and write its bundle into `out_dir` **without** registering it
/// (the hub will answer 403): see [`issue_device`]. Refuses to overwrite files in `out_dir`.
pub fn sign_device_cert(
    cfg: &HubConfig,
    device: &DeviceId,
    facility: &FacilityId,
    out_dir: &Path,
) -> Result<IssuedCert, CaError> {
    sign_device(cfg, device, facility)?.write_to(out_dir)
}

fn verify_chains(
    ca_cert: &Path,
    leaf: &rustls::pki_types::CertificateDer<'_>,
) -> Result<(), CaError> {
    let roots = std::sync::Arc::new(fgw_tls::ca_roots(ca_cert)?);
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, fgw_tls::provider())
            .build()
            .map_err(|_| CaError::NotChained { path: ca_cert.to_path_buf() })?;
    verifier
        .verify_client_cert(leaf, &[], rustls::pki_types::UnixTime::now())
        .map_err(|_| CaError::NotChained { path: ca_cert.to_path_buf() })?;
    Ok(())
}

/// Issue a device certificate into `out_dir` and register its fingerprint in the hub's
/// metadata store with device id, facility and role. Returns the fingerprint.
pub fn issue_device(
    cfg: &HubConfig,
    device: &DeviceId,
    facility: &FacilityId,
    role: Role,
    out_dir: &Path,
) -> Result<Sha256Hex, CaError> {
    let meta = SqliteMetaStore::open(&cfg.db_path())?;
    issue_device_into(&meta, cfg, device, facility, role, out_dir)
}

/// [`issue_device`] against any metadata store.
pub fn issue_device_into(
    meta: &dyn MetaStore,
    cfg: &HubConfig,
    device: &DeviceId,
    facility: &FacilityId,
    role: Role,
    out_dir: &Path,
) -> Result<Sha256Hex, CaError> {
    let signed = sign_device(cfg, device, facility)?;
    signed.check_out_dir(out_dir)?;
    // Register before writing: a refused registration (device bound to another facility)
    // then leaves no usable key behind; a failed write leaves a fingerprint nobody holds.
    meta.register_device(&signed.fingerprint, device, facility, role)?;
    signed.write_to(out_dir)?;
    Ok(signed.fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_issue_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HubConfig::with_data_dir(dir.path());
        init(&cfg).unwrap();
        let mode = std::fs::metadata(cfg.ca_key()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(init(&cfg), Err(CaError::Exists { .. })));

        let out = dir.path().join("dev1");
        let dev = DeviceId::new("gw-1").unwrap();
        let fac = FacilityId::new("F0001").unwrap();
        let fp = issue_device(&cfg, &dev, &fac, Role::Device, &out).unwrap();
        let certs = fgw_tls::load_certs(&out.join(DEVICE_CERT_FILE)).unwrap();
        assert_eq!(fgw_tls::cert_fingerprint(&certs[0]), fp);
        let mode = std::fs::metadata(out.join(DEVICE_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The device's bundle is a working client config.
        fgw_tls::client_config(
            &out.join(CA_CERT_FILE),
            &out.join(DEVICE_CERT_FILE),
            &out.join(DEVICE_KEY_FILE),
        )
        .unwrap();
        let meta = SqliteMetaStore::open(&cfg.db_path()).unwrap();
        assert_eq!(meta.device_by_fingerprint(&fp).unwrap().unwrap().device, dev);
        assert!(matches!(
            issue_device(&cfg, &dev, &fac, Role::Device, &out),
            Err(CaError::Exists { .. })
        ));
        // A device id stays with its facility; the refused attempt writes nothing.
        let other = dir.path().join("dev1b");
        let f2 = FacilityId::new("F0002").unwrap();
        assert!(matches!(
            issue_device(&cfg, &dev, &f2, Role::Device, &other),
            Err(CaError::Store(_))
        ));
        assert!(!other.exists());
    }
}
