//! DICOM objects out of the hub: each as a Part 10 file named by its (remapped) UIDs, and
//! optionally stored into an Orthanc archive through its REST API (`POST /instances`), from
//! where researchers' viewers and DICOMweb clients (QIDO-RS/WADO-RS) read them.

use super::ExportError;
use fgw_format::package::protocol::DicomListing;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A UID usable as a file name: the de-identified UIDs the box writes are `2.25.<digits>`.
fn uid_name(uid: &str) -> Option<&str> {
    let ok = !uid.is_empty()
        && uid.len() <= 64
        && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !uid.starts_with('.');
    ok.then_some(uid)
}

/// Write one object to `<out_dir>/<study>/<sop-instance>.dcm` (the package id where a UID is
/// not a plain UID).
pub(crate) fn write_part10(
    out_dir: &Path,
    d: &DicomListing,
    bytes: &[u8],
) -> Result<PathBuf, ExportError> {
    let study = uid_name(&d.study_uid).unwrap_or(d.package_id.as_str());
    let sop = uid_name(&d.sop_instance_uid).unwrap_or(d.package_id.as_str());
    let dir = out_dir.join(study);
    std::fs::create_dir_all(&dir)
        .map_err(|source| ExportError::Io { path: dir.clone(), source })?;
    let path = dir.join(format!("{sop}.dcm"));
    fgw_format::durable::write_atomic(&path, bytes)
        .map_err(|source| ExportError::Io { path: path.clone(), source })?;
    Ok(path)
}

/// An Orthanc server's REST API, where exported objects are stored.
pub struct OrthancTarget {
    url: String,
    user: Option<(String, String)>,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for OrthancTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrthancTarget").field("url", &self.url).finish_non_exhaustive()
    }
}

impl OrthancTarget {
    /// `url`: `http://host:8042` (a private network) or `https://…` with `ca_pem`, the CA
    /// of its certificate. `user`: HTTP basic credentials, when Orthanc asks for them.
    pub fn new(
        url: &str,
        ca_pem: Option<&[u8]>,
        user: Option<(String, String)>,
    ) -> Result<OrthancTarget, ExportError> {
        let url = url.trim_end_matches('/').to_string();
        let fail = |reason: String| ExportError::Archive { url: url.clone(), reason };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(fail("expected an http:// or https:// address".into()));
        }
        fgw_tls::install_ring_provider();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(120));
        if let Some(pem) = ca_pem {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|_| fail("the CA file is not a PEM certificate".into()))?;
            builder = builder.add_root_certificate(ca);
        } else if url.starts_with("https://") {
            return Err(fail("https needs --orthanc-ca (no system roots are trusted)".into()));
        }
        let client = builder.build().map_err(|e| fail(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(OrthancTarget { url, user, client, rt })
    }

    /// The REST address (no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Store one Part 10 object (`POST /instances`); Orthanc answers 200 also for an object
    /// it already has, so a repeated export does not duplicate.
    pub(crate) fn store(&self, bytes: &[u8]) -> Result<(), ExportError> {
        let mut req = self
            .client
            .post(format!("{}/instances", self.url))
            .header("content-type", "application/dicom")
            .body(bytes.to_vec());
        if let Some((u, p)) = &self.user {
            req = req.basic_auth(u, Some(p));
        }
        let status = self
            .rt
            .block_on(async { req.send().await.map(|r| r.status()) })
            .map_err(|e| ExportError::Archive { url: self.url.clone(), reason: e.to_string() })?;
        if !status.is_success() {
            return Err(ExportError::Archive {
                url: self.url.clone(),
                reason: format!("POST /instances answered {status}"),
            });
        }
        Ok(())
    }
}
