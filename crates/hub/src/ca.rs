//! The hub's two CAs and what they sign.
//!
//! - The **society CA** signs the hub's server certificate, the boxes' operational
//!   certificates (enrollment, [`sign_operational`]) and the development certificates of
//!   [`issue_device`] (key made here; the demo and tests use it).
//! - The **manufacturing CA** signs only IDevIDs ([`sign_idevid`], `hub device add`): the
//!   long-lived factory identity of a box, good for nothing but enrollment. It is a separate
//!   key so that the factory step never holds the key the API trusts, and so that it can be
//!   kept offline: `hub serve` reads only its certificate. `hub init` creates it when absent;
//!   `hub init-manufacturing` creates it for a hub initialised before it existed.
//!
//! Keys are ECDSA P-256, written 0600 with `O_EXCL` so nothing is ever overwritten.

pub use super::Role;

use super::config::HubConfig;
use super::store::{MetaStore, StoreError};
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
/// Subject common name of the manufacturing CA.
pub const MANUFACTURING_CA_NAME: &str = "FGW Manufacturing CA";
/// Organization of the IDevID and operational certificate subjects.
const SUBJECT_ORGANIZATION: &str = "FGW Society";
/// An IDevID is valid until 9999-12-31 23:59:59 UTC: IEEE 802.1AR's value for a device
/// identity with no well-defined expiration (it lives as long as the box).
pub const IDEVID_NOT_AFTER: (i32, u8, u8) = (9999, 12, 31);
/// Operational certificates start this long before they are issued (the hub's clock may be
/// corrected backwards a little).
pub(crate) const OPERATIONAL_BACKDATE: std::time::Duration = std::time::Duration::from_secs(3600);

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
    /// A time outside what a certificate can carry.
    #[error("ca: {what} is out of range for a certificate")]
    Time {
        /// Which time.
        what: &'static str,
    },
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
    /// The manufacturing CA, if `init` created it (`None`: it existed already).
    pub manufacturing: Option<CaCreated>,
}

/// A CA certificate and key written.
#[derive(Debug, Clone)]
pub struct CaCreated {
    /// The CA certificate written.
    pub cert: PathBuf,
    /// SHA-256 of the certificate (DER), for out-of-band checking.
    pub fingerprint: Sha256Hex,
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
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
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

pub(crate) fn create_dir_private(dir: &Path) -> Result<(), CaError> {
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
/// the issuer from them: the issuer name and key identifier of children depend only on the
/// name and the key.
fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A new self-signed CA named `name`.
fn new_ca(name: &str, what: &'static str) -> Result<(KeyPair, rcgen::Certificate), CaError> {
    let key = new_key(what)?;
    let mut params = ca_params(name);
    validity(&mut params, CA_VALID_DAYS);
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key).map_err(|source| CaError::Generate { what, source })?;
    Ok((key, cert))
}

/// Whether the manufacturing CA exists: both files, or neither (one alone is an error: a
/// key without its certificate or the reverse is left for the operator to look at).
fn manufacturing_present(cfg: &HubConfig) -> Result<bool, CaError> {
    match (cfg.manufacturing_ca_cert(), cfg.manufacturing_ca_key()) {
        (c, k) if c.exists() && k.exists() => Ok(true),
        (c, k) if !c.exists() && !k.exists() => Ok(false),
        (c, _) if c.exists() => Err(CaError::Exists { path: c }),
        (_, k) => Err(CaError::Exists { path: k }),
    }
}

/// Write a new manufacturing CA (both files must be absent).
fn write_manufacturing(cfg: &HubConfig) -> Result<CaCreated, CaError> {
    let (cert_p, key_p) = (cfg.manufacturing_ca_cert(), cfg.manufacturing_ca_key());
    for p in [&cert_p, &key_p] {
        if p.exists() {
            return Err(CaError::Exists { path: p.clone() });
        }
    }
    for p in [&cert_p, &key_p] {
        if let Some(dir) = p.parent() {
            create_dir_private(dir)?;
        }
    }
    let (key, cert) = new_ca(MANUFACTURING_CA_NAME, "manufacturing CA")?;
    write_new(&key_p, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_p, cert.pem().as_bytes(), 0o644)?;
    Ok(CaCreated { cert: cert_p, fingerprint: fgw_tls::cert_fingerprint(cert.der()) })
}

/// Create the manufacturing CA of a hub initialised without one (`hub init-manufacturing`).
/// Refuses if either of its files exists.
pub fn init_manufacturing(cfg: &HubConfig) -> Result<CaCreated, CaError> {
    write_manufacturing(cfg)
}

/// Create the society CA and the hub's server certificate, and the manufacturing CA unless it
/// exists. Refuses if any of the society's four files already exists (re-initialising would
/// orphan every issued device certificate).
pub fn init(cfg: &HubConfig) -> Result<InitOutput, CaError> {
    let (ca_cert_p, ca_key_p) = (cfg.ca_cert(), cfg.ca_key());
    let (srv_cert_p, srv_key_p) = (cfg.server_cert(), cfg.server_key());
    for p in [&ca_cert_p, &ca_key_p, &srv_cert_p, &srv_key_p] {
        if p.exists() {
            return Err(CaError::Exists { path: p.clone() });
        }
    }
    let manufacturing_exists = manufacturing_present(cfg)?;
    for p in [&ca_cert_p, &ca_key_p, &srv_cert_p, &srv_key_p] {
        if let Some(dir) = p.parent() {
            create_dir_private(dir)?;
        }
    }

    let (ca_key, ca_cert) = new_ca(CA_NAME, "CA")?;

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
    let manufacturing = if manufacturing_exists { None } else { Some(write_manufacturing(cfg)?) };
    Ok(InitOutput {
        ca_cert: ca_cert_p,
        server_cert: srv_cert_p,
        ca_fingerprint: fgw_tls::cert_fingerprint(ca_cert.der()),
        manufacturing,
    })
}

/// A CA that can sign: its key, and an issuer rebuilt from its name and key.
pub(crate) struct Authority {
    key: KeyPair,
    issuer: rcgen::Certificate,
    cert_path: PathBuf,
    cert_pem: Vec<u8>,
}

impl Authority {
    fn load(cert_path: PathBuf, key_path: PathBuf, name: &str) -> Result<Authority, CaError> {
        let pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&pem)
            .map_err(|source| CaError::Key { path: key_path.clone(), source })?;
        let cert_pem = std::fs::read(&cert_path).map_err(io(&cert_path))?;
        let issuer = ca_params(name)
            .self_signed(&key)
            .map_err(|source| CaError::Key { path: key_path.clone(), source })?;
        Ok(Authority { key, issuer, cert_path, cert_pem })
    }

    /// The society CA (operational and development certificates).
    pub(crate) fn society(cfg: &HubConfig) -> Result<Authority, CaError> {
        Authority::load_society(&cfg.ca_cert(), &cfg.ca_key())
    }

    /// The society CA from these files.
    pub(crate) fn load_society(cert: &Path, key: &Path) -> Result<Authority, CaError> {
        Authority::load(cert.to_path_buf(), key.to_path_buf(), CA_NAME)
    }

    /// The manufacturing CA (IDevIDs).
    pub(crate) fn manufacturing(cfg: &HubConfig) -> Result<Authority, CaError> {
        Authority::load(
            cfg.manufacturing_ca_cert(),
            cfg.manufacturing_ca_key(),
            MANUFACTURING_CA_NAME,
        )
    }

    /// Sign `params` for `public_key`, then check the result chains to the CA certificate
    /// on disk the way the hub will (a mismatched key / certificate pair is caught here).
    fn sign(
        &self,
        params: CertificateParams,
        public_key: &rcgen::SubjectPublicKeyInfo,
        what: &'static str,
    ) -> Result<Issued, CaError> {
        let cert = params
            .signed_by(public_key, &self.issuer, &self.key)
            .map_err(|source| CaError::Generate { what, source })?;
        verify_chains(&self.cert_path, cert.der())?;
        Ok(Issued { pem: cert.pem(), fingerprint: fgw_tls::cert_fingerprint(cert.der()) })
    }
}

/// A certificate just signed for a public key that was handed in (no private key here).
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    /// The certificate (PEM).
    pub(crate) pem: String,
    /// SHA-256 of the certificate (DER).
    pub(crate) fingerprint: Sha256Hex,
}

/// A box certificate's subject: serialNumber and CN = the serial (IEEE 802.1AR puts the
/// serial in serialNumber; CN too, for tools that show only CN), O = the society.
fn box_subject(serial: &crate::enroll::Serial) -> Result<DistinguishedName, CaError> {
    let printable = rcgen::PrintableString::try_from(serial.as_str())
        .map_err(|source| CaError::Generate { what: "serialNumber attribute", source })?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), rcgen::DnValue::PrintableString(printable));
    dn.push(DnType::CommonName, serial.as_str());
    dn.push(DnType::OrganizationName, SUBJECT_ORGANIZATION);
    Ok(dn)
}

fn client_params(dn: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    params
}

/// Time since the Unix epoch, for a certificate's validity (rcgen takes it as an offset
/// from 1970-01-01, so `time` need not be named here).
fn since_epoch(
    t: std::time::SystemTime,
    what: &'static str,
) -> Result<std::time::Duration, CaError> {
    t.duration_since(std::time::UNIX_EPOCH).map_err(|_| CaError::Time { what })
}

/// Sign an IDevID (IEEE 802.1AR style) for `serial` with the manufacturing CA: subject from
/// the serial alone, clientAuth, valid from yesterday until [`IDEVID_NOT_AFTER`].
pub(crate) fn sign_idevid(
    manufacturing: &Authority,
    serial: &crate::enroll::Serial,
    public_key: &rcgen::SubjectPublicKeyInfo,
) -> Result<Issued, CaError> {
    let mut params = client_params(box_subject(serial)?);
    validity(&mut params, 1);
    let (y, m, d) = IDEVID_NOT_AFTER;
    params.not_after = rcgen::date_time_ymd(y, m, d) + std::time::Duration::from_secs(86_399);
    manufacturing.sign(params, public_key, "IDevID")
}

/// Sign an operational certificate for a box with the society CA: subject from the registry
/// (serial, and the facility as OU), never from the request; valid from
/// `issued - OPERATIONAL_BACKDATE` until `not_after`.
pub(crate) fn sign_operational(
    society: &Authority,
    serial: &crate::enroll::Serial,
    facility: &FacilityId,
    public_key: &rcgen::SubjectPublicKeyInfo,
    issued: std::time::SystemTime,
    not_after: std::time::SystemTime,
) -> Result<Issued, CaError> {
    let mut dn = box_subject(serial)?;
    dn.push(DnType::OrganizationalUnitName, facility.as_str());
    let mut params = client_params(dn);
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch(issued - OPERATIONAL_BACKDATE, "not_before")?;
    params.not_after = epoch + since_epoch(not_after, "not_after")?;
    society.sign(params, public_key, "operational certificate")
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
    let society = Authority::society(cfg)?;

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
        .signed_by(&key, &society.issuer, &society.key)
        .map_err(|source| CaError::Generate { what: "device certificate", source })?;

    // Check the result the way the hub will, so a mismatched ca.key / ca.crt pair is caught
    // here and not at the first upload.
    verify_chains(&society.cert_path, cert.der())?;
    Ok(SignedDevice {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: society.cert_pem,
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

pub(crate) fn verify_chains(
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
    let meta = super::store::open_meta(cfg)?;
    issue_device_into(&*meta, cfg, device, facility, role, out_dir)
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
        let out = init(&cfg).unwrap();
        assert_eq!(out.manufacturing.unwrap().cert, cfg.manufacturing_ca_cert());
        for key in [cfg.ca_key(), cfg.manufacturing_ca_key()] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(init(&cfg), Err(CaError::Exists { .. })));
        assert!(matches!(init_manufacturing(&cfg), Err(CaError::Exists { .. })));

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
        let meta = crate::store::SqliteMetaStore::open(&cfg.db_path()).unwrap();
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

    #[test]
    fn a_hub_without_a_manufacturing_ca_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HubConfig::with_data_dir(dir.path());
        // An existing manufacturing CA is kept by `init`.
        let first = init_manufacturing(&cfg).unwrap();
        assert!(init(&cfg).unwrap().manufacturing.is_none());
        let certs = fgw_tls::load_certs(&cfg.manufacturing_ca_cert()).unwrap();
        assert_eq!(fgw_tls::cert_fingerprint(&certs[0]), first.fingerprint);
        // Half of one (a key without its certificate) is refused before anything is written.
        let dir2 = tempfile::tempdir().unwrap();
        let cfg2 = HubConfig::with_data_dir(dir2.path());
        std::fs::create_dir_all(cfg2.pki_dir()).unwrap();
        std::fs::write(cfg2.manufacturing_ca_key(), "x").unwrap();
        assert!(matches!(init(&cfg2), Err(CaError::Exists { .. })));
        assert!(!cfg2.ca_cert().exists());
    }
}
