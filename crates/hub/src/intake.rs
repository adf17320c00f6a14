//! What the upload handlers check before anything is stored, free of HTTP and the network so
//! it can be fuzzed (`fuzz/fuzz_targets/hub_manifest.rs`, `hub_upload.rs`) and tested alone:
//! the object name and package id in the URL, the declared body length, the manifest bytes
//! against their package id and the caller's facility, and the streaming object body (size
//! limit, hash) on its way into an [`ObjectWriter`].
//!
//! Error texts name ids, limits and reasons, never a value from the body.

use crate::store::{ObjectWriter, StoreError};
use fgw_format::ids::{FacilityId, PackageId, Sha256Hex};
use fgw_format::package::protocol::Stored;
use fgw_format::package::{Manifest, PackageError};

/// Why an upload was refused before reaching the stores' bookkeeping.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// A URL parameter is not of its shape.
    #[error("{param} in the URL is malformed")]
    BadParam {
        /// `sha256` or `package_id`.
        param: &'static str,
    },
    /// `Content-Length` is not a decimal number.
    #[error("content-length is malformed")]
    BadLength,
    /// The body is (or is declared) larger than allowed.
    #[error("body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force (`max_object_bytes` or `max_manifest_bytes`).
        limit: u64,
    },
    /// The body does not hash to the name it was sent under.
    #[error("{what}: body does not hash to {expected}")]
    HashMismatch {
        /// `object` or `manifest`.
        what: &'static str,
        /// The name in the URL.
        expected: Sha256Hex,
    },
    /// The manifest does not parse or check.
    #[error("manifest rejected: {reason}")]
    BadManifest {
        /// Why, without quoting the manifest.
        reason: String,
    },
    /// The manifest names another facility than the caller's certificate.
    #[error("manifest facility {manifest} does not match the certificate's facility {caller}")]
    FacilityMismatch {
        /// The manifest's facility.
        manifest: FacilityId,
        /// The certificate's.
        caller: FacilityId,
    },
    /// Writing the object failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for IntakeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::HashMismatch { expected } => {
                IntakeError::HashMismatch { what: "object", expected }
            }
            other => IntakeError::Store(other),
        }
    }
}

/// The object name of `PUT/HEAD /v1/objects/{sha256}`.
pub fn object_name(param: &str) -> Result<Sha256Hex, IntakeError> {
    Sha256Hex::new(param).map_err(|_| IntakeError::BadParam { param: "sha256" })
}

/// The package id of `PUT /v1/packages/{package_id}`.
pub fn package_id(param: &str) -> Result<PackageId, IntakeError> {
    Sha256Hex::new(param).map_err(|_| IntakeError::BadParam { param: "package_id" })
}

/// The declared body length (`Content-Length`), refused above `limit`; `None` when the body
/// is chunked (its size is then checked as it arrives).
pub fn declared_length(header: Option<&[u8]>, limit: u64) -> Result<Option<u64>, IntakeError> {
    let Some(raw) = header else { return Ok(None) };
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(IntakeError::BadLength);
    }
    let n: u64 =
        std::str::from_utf8(raw).ok().and_then(|s| s.parse().ok()).ok_or(IntakeError::BadLength)?;
    if n > limit {
        return Err(IntakeError::TooLarge { limit });
    }
    Ok(Some(n))
}

/// Describe a manifest parse failure without quoting the manifest (serde_json's messages
/// can contain field values).
pub(crate) fn manifest_reason(e: &PackageError) -> String {
    match e {
        PackageError::Json(j) => {
            format!(
                "not valid package JSON ({:?} at line {}, column {})",
                j.classify(),
                j.line(),
                j.column()
            )
        }
        PackageError::KindMismatch { .. } => "kind does not match content".to_string(),
        PackageError::Version { .. } => {
            format!(
                "format or version not supported (expected {} v{})",
                fgw_format::package::FORMAT,
                fgw_format::package::FORMAT_VERSION
            )
        }
        PackageError::DuplicatePath { .. } => "a file path is listed twice".into(),
        PackageError::BadPath { .. } => "a file path is not a plain relative path".into(),
    }
}

/// Manifest bytes as the PUT handler takes them: they must hash to `id`, parse and check as a
/// manifest, and name the caller's facility. The bytes themselves are what the hub stores.
pub fn check_manifest(
    bytes: &[u8],
    id: &PackageId,
    caller: &FacilityId,
) -> Result<Manifest, IntakeError> {
    if &Manifest::id_of(bytes) != id {
        return Err(IntakeError::HashMismatch { what: "manifest", expected: id.clone() });
    }
    let manifest = Manifest::parse(bytes)
        .map_err(|e| IntakeError::BadManifest { reason: manifest_reason(&e) })?;
    if &manifest.facility_id != caller {
        return Err(IntakeError::FacilityMismatch {
            manifest: manifest.facility_id,
            caller: caller.clone(),
        });
    }
    Ok(manifest)
}

/// An object body on its way to the store, chunk by chunk: never more than one chunk in
/// memory, cut as soon as it passes `limit`, its hash checked at the end by the writer.
pub struct ObjectIntake {
    writer: Box<dyn ObjectWriter>,
    limit: u64,
}

impl ObjectIntake {
    /// Bodies up to `limit` bytes into `writer`.
    pub fn new(writer: Box<dyn ObjectWriter>, limit: u64) -> ObjectIntake {
        ObjectIntake { writer, limit }
    }

    /// Take the next chunk. After an error the intake is done (drop it: the temporary file
    /// goes with it).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), IntakeError> {
        if self.writer.written().saturating_add(chunk.len() as u64) > self.limit {
            return Err(IntakeError::TooLarge { limit: self.limit });
        }
        Ok(self.writer.write(chunk)?)
    }

    /// The body is complete: check its hash and store it. Returns whether the blob was new
    /// to the store, and its size.
    pub fn finish(self) -> Result<(Stored, u64), IntakeError> {
        let size = self.writer.written();
        Ok((self.writer.finish()?, size))
    }
}

/// Route template and package id of a request path, for the log line (so object hashes,
/// upload session ids and other path parts never reach the log).
pub fn log_route(path: &str) -> (&'static str, Option<PackageId>) {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["v1", "health"] => ("/v1/health", None),
        ["v1", "objects", _] => ("/v1/objects/{sha256}", None),
        ["v1", "packages", id] => ("/v1/packages/{package_id}", Sha256Hex::new(*id).ok()),
        ["v1", "facilities", _, "exams"] => ("/v1/facilities/{facility}/exams", None),
        ["v1", "facilities", _, "dicom"] => ("/v1/facilities/{facility}/dicom", None),
        ["v1", "uploads"] => ("/v1/uploads", None),
        ["v1", "uploads", _] => ("/v1/uploads/{upload_id}", None),
        ["v1", "uploads", _, "chunks", _] => ("/v1/uploads/{upload_id}/chunks/{index}", None),
        ["v1", "uploads", _, "commit"] => ("/v1/uploads/{upload_id}/commit", None),
        [".well-known", "est", "simpleenroll"] => ("/.well-known/est/simpleenroll", None),
        [".well-known", "est", "simplereenroll"] => ("/.well-known/est/simplereenroll", None),
        ["v1", "device", "config"] => ("/v1/device/config", None),
        ["dashboard"] => ("/dashboard", None),
        ["dashboard", "login"] => ("/dashboard/login", None),
        ["dashboard", "logout"] => ("/dashboard/logout", None),
        ["dashboard", "style.css"] => ("/dashboard/style.css", None),
        ["dashboard", "facility", _] => ("/dashboard/facility/{facility}", None),
        _ => ("(unknown)", None),
    }
}

/// Entry points on arbitrary bytes for the fuzz targets (`fuzz/fuzz_targets/hub_*.rs`) and
/// the stable mutation test (`tests/system/hub_mutated.rs`): the same calls the handlers make,
/// with the invariants they rely on asserted. Each must return, never panic.
pub mod exercise {
    use super::*;
    use crate::store::ObjectStore;

    /// The manifest PUT's checks on `data` as a manifest body, under its own id and a wrong
    /// one. An accepted manifest names the caller's facility and survives a round trip.
    pub fn manifest(data: &[u8]) {
        let caller = FacilityId::new("F0001").expect("valid id");
        let id = Manifest::id_of(data);
        let accepted = check_manifest(data, &id, &caller);
        if let Ok(m) = &accepted {
            assert_eq!(m.facility_id, caller);
            let again = Manifest::parse(&m.to_bytes()).expect("a parsed manifest re-parses");
            assert_eq!(&again, m);
        }
        if let Err(IntakeError::BadManifest { reason }) = &accepted {
            // Reasons are built from fixed texts and positions only.
            assert!(reason.is_ascii() && reason.len() < 200, "{reason}");
        }
        let wrong = Sha256Hex::of(&[data, b"!"].concat());
        assert!(matches!(
            check_manifest(data, &wrong, &caller),
            Err(IntakeError::HashMismatch { what: "manifest", .. })
        ));
    }

    /// Largest body [`upload`] accepts.
    pub const UPLOAD_LIMIT: u64 = 4096;

    /// An object PUT on `data`: first line the request path, second line the Content-Length
    /// value, then one control byte, then the body, fed in chunks whose sizes come from the
    /// control byte. The object is named by the path when it holds a valid name, else by the
    /// body's hash (or a wrong one). Whatever is stored is exactly the body, and is removed
    /// again so `objects` stays small.
    pub fn upload(data: &[u8], objects: &dyn ObjectStore) {
        let mut parts = data.splitn(3, |&b| b == b'\n');
        let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
        let length = parts.next();
        let rest = parts.next().unwrap_or_default();
        let (control, body) = rest.split_first().map_or((0, rest), |(c, b)| (*c, b));

        let _ = log_route(&path);
        let from_path = path.rsplit('/').next().map(object_name);
        let name = match (from_path, control & 3) {
            (Some(Ok(name)), 0) => name,
            (_, 1) => Sha256Hex::of(b"not the body"),
            _ => Sha256Hex::of(body),
        };
        let declared = declared_length(length, UPLOAD_LIMIT);
        if let Ok(Some(n)) = declared {
            assert!(n <= UPLOAD_LIMIT);
        }
        let Ok(writer) = objects.writer(&name) else { return };
        let mut intake = ObjectIntake::new(writer, UPLOAD_LIMIT);
        let step = usize::from(control >> 2).max(1) * 17;
        let mut pushed = Ok(());
        for chunk in body.chunks(step) {
            pushed = intake.push(chunk);
            if pushed.is_err() {
                break;
            }
        }
        match pushed {
            Err(IntakeError::TooLarge { limit }) => {
                assert!(body.len() as u64 > limit);
                drop(intake);
                // Nothing of a cut body is stored (every stored object is removed below).
                assert!(!objects.has(&name).unwrap_or(false));
            }
            Err(_) => {}
            Ok(()) => match intake.finish() {
                Ok((_, size)) => {
                    assert_eq!(size, body.len() as u64);
                    assert_eq!(name, Sha256Hex::of(body));
                    let stored = objects.get(&name).ok().flatten();
                    assert_eq!(stored.as_deref(), Some(body));
                    let _ = objects.remove(&name);
                }
                Err(IntakeError::HashMismatch { expected, .. }) => {
                    assert_ne!(Sha256Hex::of(body), expected);
                }
                Err(_) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FsObjectStore, ObjectStore};

    #[test]
    fn log_routes_hide_object_hashes() {
        let sha = Sha256Hex::of(b"x");
        assert_eq!(log_route(&format!("/v1/objects/{sha}")), ("/v1/objects/{sha256}", None));
        assert_eq!(
            log_route(&format!("/v1/packages/{sha}")),
            ("/v1/packages/{package_id}", Some(sha.clone()))
        );
        assert_eq!(log_route("/etc/passwd").0, "(unknown)");
        let upload = fgw_format::ids::UploadId::derive(&FacilityId::new("F0001").unwrap(), &sha);
        assert_eq!(
            log_route(&format!("/v1/uploads/{upload}/chunks/3")),
            ("/v1/uploads/{upload_id}/chunks/{index}", None)
        );
        assert_eq!(
            log_route(&format!("/v1/uploads/{upload}/commit")).0,
            "/v1/uploads/{upload_id}/commit"
        );
    }

    #[test]
    fn manifest_errors_do_not_quote_values() {
        let e = Manifest::parse(br#"{"format": "secret-value"}"#).unwrap_err();
        assert!(!manifest_reason(&e).contains("secret-value"));
        let e = serde_json::from_str::<u32>(r#""secret-value""#).unwrap_err();
        assert!(!manifest_reason(&PackageError::Json(e)).contains("secret-value"));
    }

    #[test]
    fn declared_lengths() {
        assert_eq!(declared_length(None, 10).unwrap(), None);
        assert_eq!(declared_length(Some(b"10"), 10).unwrap(), Some(10));
        assert!(matches!(declared_length(Some(b"11"), 10), Err(IntakeError::TooLarge { .. })));
        for bad in [&b""[..], b"-1", b"1 ", b"+1", b"0x10", b"999999999999999999999"] {
            assert!(matches!(declared_length(Some(bad), 10), Err(IntakeError::BadLength)));
        }
    }

    #[test]
    fn object_bodies_are_cut_at_the_limit_and_hash_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).unwrap();
        let body = vec![7u8; 1000];
        let sha = Sha256Hex::of(&body);
        let mut over = ObjectIntake::new(store.writer(&sha).unwrap(), 999);
        over.push(&body[..600]).unwrap();
        assert!(matches!(over.push(&body[600..]), Err(IntakeError::TooLarge { limit: 999 })));
        drop(over);
        let mut wrong = ObjectIntake::new(store.writer(&sha).unwrap(), 1000);
        wrong.push(&body[..999]).unwrap();
        assert!(matches!(wrong.finish(), Err(IntakeError::HashMismatch { what: "object", .. })));
        let mut ok = ObjectIntake::new(store.writer(&sha).unwrap(), 1000);
        for c in body.chunks(64) {
            ok.push(c).unwrap();
        }
        assert_eq!(ok.finish().unwrap(), (Stored::New, 1000));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn manifests_must_hash_parse_and_name_the_callers_facility() {
        let f1 = FacilityId::new("F0001").unwrap();
        let m = Manifest {
            format: fgw_format::package::FORMAT.into(),
            format_version: fgw_format::package::FORMAT_VERSION,
            facility_id: f1.clone(),
            body: fgw_format::package::Body::Exam(Default::default()),
            files: vec![],
            deid: fgw_format::package::DeidInfo {
                method: "t".into(),
                tool_version: "0".into(),
                policy_id: "p".into(),
                policy_version: 1,
                actions: vec![],
            },
        };
        let bytes = m.to_bytes();
        let id = Manifest::id_of(&bytes);
        assert_eq!(check_manifest(&bytes, &id, &f1).unwrap(), m);
        let other = FacilityId::new("F0002").unwrap();
        assert!(matches!(
            check_manifest(&bytes, &id, &other),
            Err(IntakeError::FacilityMismatch { .. })
        ));
        assert!(matches!(
            check_manifest(&bytes, &Sha256Hex::of(b"x"), &f1),
            Err(IntakeError::HashMismatch { what: "manifest", .. })
        ));
        let junk = b"{\"format\": 1}";
        assert!(matches!(
            check_manifest(junk, &Manifest::id_of(junk), &f1),
            Err(IntakeError::BadManifest { .. })
        ));
    }
}
