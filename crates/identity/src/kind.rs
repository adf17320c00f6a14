//! Which key store the box uses, and how to reach its TPM: the two settings of
//! `gateway.toml`'s `[identity]` that this crate reads (`key_store`, `tpm_tcti`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Where the box's private keys live. There is no default: the configuration names it, so a
/// box never falls back to the file store silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStoreKind {
    /// `"tpm"`: keys are created inside the TPM and never leave it.
    Tpm,
    /// `"insecure-file"`: a PKCS#8 file on disk, readable by whoever copies the disk.
    /// Development only; the name says so wherever it is configured or shown.
    InsecureFile,
}

impl KeyStoreKind {
    /// The configuration spelling (`"tpm"`, `"insecure-file"`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStoreKind::Tpm => "tpm",
            KeyStoreKind::InsecureFile => "insecure-file",
        }
    }
}

impl fmt::Display for KeyStoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyStoreKind {
    type Err = KindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tpm" => Ok(KeyStoreKind::Tpm),
            "insecure-file" => Ok(KeyStoreKind::InsecureFile),
            _ => Err(KindError::UnknownKeyStore),
        }
    }
}

/// A key-store setting that cannot be used. The rejected text is not echoed: configuration
/// errors name the setting, which is enough to find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// `key_store` is neither value.
    #[error("identity: key_store must be \"tpm\" or \"insecure-file\"")]
    UnknownKeyStore,
    /// The TCTI does not start with a supported interface name.
    #[error("identity: tpm_tcti must start with device:, swtpm: or mssim:")]
    TctiInterface,
    /// `device:` needs an absolute path of plain characters.
    #[error("identity: tpm_tcti device: needs an absolute path such as /dev/tpmrm0")]
    TctiDevicePath,
    /// `swtpm:`/`mssim:` need exactly `host=…` and `port=…`.
    #[error("identity: tpm_tcti {interface}: needs exactly host=… and port=…, comma-separated")]
    TctiNetworkFields {
        /// `swtpm` or `mssim`.
        interface: &'static str,
    },
    /// The host is neither an IP address nor a DNS name.
    #[error("identity: tpm_tcti host= is not an IP address or host name")]
    TctiHost,
    /// The port is not 1..=65535.
    #[error("identity: tpm_tcti port= is not a port number (1-65535)")]
    TctiPort,
}

/// How to reach the TPM: a tpm2-tss TCTI string, checked when parsed so that a typo is a
/// configuration error at start-up rather than a connection failure at enrollment.
///
/// Accepted forms (strict: every field named, nothing else):
/// - `device:/dev/tpmrm0`: the kernel's resource-managed TPM device (the box);
/// - `swtpm:host=127.0.0.1,port=2321`: swtpm in socket mode (tests, the demo); its control
///   channel is `port + 1`;
/// - `mssim:host=…,port=…`: the Microsoft/IBM simulator protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tcti(String);

impl Tcti {
    /// The TCTI string, as tpm2-tss reads it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The swtpm TCTI for a server on `host:port` (control channel on `port + 1`).
    pub fn swtpm(host: IpAddr, port: u16) -> Tcti {
        Tcti(format!("swtpm:host={host},port={port}"))
    }
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Tcti> for String {
    fn from(t: Tcti) -> String {
        t.0
    }
}

impl TryFrom<String> for Tcti {
    type Error = KindError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if let Some(path) = s.strip_prefix("device:") {
            check_device_path(path)?;
        } else if let Some(fields) = s.strip_prefix("swtpm:") {
            check_network_fields("swtpm", fields)?;
        } else if let Some(fields) = s.strip_prefix("mssim:") {
            check_network_fields("mssim", fields)?;
        } else {
            return Err(KindError::TctiInterface);
        }
        Ok(Tcti(s))
    }
}

impl FromStr for Tcti {
    type Err = KindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tcti::try_from(s.to_string())
    }
}

fn check_device_path(path: &str) -> Result<(), KindError> {
    // Plain characters only: the string is handed to a C library that splits on ':' and ','.
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.');
    if path.starts_with('/') && path.len() > 1 && path.chars().all(plain) {
        Ok(())
    } else {
        Err(KindError::TctiDevicePath)
    }
}

fn check_network_fields(interface: &'static str, fields: &str) -> Result<(), KindError> {
    let missing = KindError::TctiNetworkFields { interface };
    let (mut host, mut port) = (None, None);
    for field in fields.split(',') {
        match field.split_once('=') {
            Some(("host", v)) if host.is_none() => host = Some(v),
            Some(("port", v)) if port.is_none() => port = Some(v),
            _ => return Err(missing),
        }
    }
    let (Some(host), Some(port)) = (host, port) else { return Err(missing) };
    if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
        return Err(KindError::TctiHost);
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.chars().all(|c| c.is_ascii_digit()) => Ok(()),
        _ => Err(KindError::TctiPort),
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
fn is_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_store_kind_uses_the_configuration_spelling() {
        #[derive(Deserialize)]
        struct Identity {
            key_store: KeyStoreKind,
        }
        let tpm: Identity = serde_json::from_str(r#"{"key_store":"tpm"}"#).unwrap();
        assert_eq!(tpm.key_store, KeyStoreKind::Tpm);
        let file: Identity = serde_json::from_str(r#"{"key_store":"insecure-file"}"#).unwrap();
        assert_eq!(file.key_store, KeyStoreKind::InsecureFile);
        assert!(serde_json::from_str::<Identity>(r#"{"key_store":"file"}"#).is_err());
        assert!(serde_json::from_str::<Identity>(r#"{"key_store":"Tpm"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&KeyStoreKind::InsecureFile).unwrap(),
            "\"insecure-file\""
        );
        for kind in [KeyStoreKind::Tpm, KeyStoreKind::InsecureFile] {
            assert_eq!(kind.as_str().parse::<KeyStoreKind>().unwrap(), kind);
        }
    }

    #[test]
    fn tcti_accepts_the_supported_forms() {
        for ok in [
            "device:/dev/tpmrm0",
            "device:/dev/tpm0",
            "swtpm:host=127.0.0.1,port=2321",
            "swtpm:port=2321,host=localhost",
            "swtpm:host=::1,port=2321",
            "mssim:host=tpm.example.org,port=2321",
        ] {
            let t: Tcti = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(t.as_str(), ok);
        }
        assert_eq!(
            Tcti::swtpm("127.0.0.1".parse().unwrap(), 4000).as_str(),
            "swtpm:host=127.0.0.1,port=4000"
        );
    }

    #[test]
    fn tcti_rejects_what_tpm2_tss_would_misread() {
        use KindError::*;
        let cases: &[(&str, KindError)] = &[
            ("", TctiInterface),
            ("tabrmd:bus_type=session", TctiInterface),
            ("swtpm", TctiInterface),
            ("device:", TctiDevicePath),
            ("device:dev/tpm0", TctiDevicePath),
            ("device:/dev/tpm0,x", TctiDevicePath),
            ("swtpm:host=127.0.0.1", TctiNetworkFields { interface: "swtpm" }),
            ("swtpm:port=2321", TctiNetworkFields { interface: "swtpm" }),
            ("swtpm:host=a,port=1,host=b", TctiNetworkFields { interface: "swtpm" }),
            ("mssim:host=a,port=1,extra=2", TctiNetworkFields { interface: "mssim" }),
            ("swtpm:host=-bad,port=2321", TctiHost),
            ("swtpm:host=a@b,port=2321", TctiHost),
            ("swtpm:host=,port=2321", TctiHost),
            ("swtpm:host=127.0.0.1,port=0", TctiPort),
            ("swtpm:host=127.0.0.1,port=65536", TctiPort),
            ("swtpm:host=127.0.0.1,port=+80", TctiPort),
        ];
        for (bad, want) in cases {
            assert_eq!(bad.parse::<Tcti>().unwrap_err(), *want, "{bad}");
        }
        // Through serde too (the configuration path).
        assert!(serde_json::from_str::<Tcti>(r#""swtpm:port=1""#).is_err());
        let t: Tcti = serde_json::from_str(r#""device:/dev/tpmrm0""#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""device:/dev/tpmrm0""#);
    }
}
