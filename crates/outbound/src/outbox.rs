//! Content-addressed outbox (de-identified side). Layout:
//! `outbox/objects/<sha256>` (file bytes), `outbox/packages/<package id>.json` (manifest) and
//! `outbox/seals/<package id>.mac` (the manifest's seal). Written tmp → fsync → rename →
//! fsync dir, so a power cut leaves either nothing or a whole file. Only a [`DeidPackage`] can
//! be written; only a [`StagedPackage`] (re-verified on read) reaches the uplink.
//!
//! The seal is HMAC-SHA-256 over the manifest bytes with the box's outbox key (derived from
//! its root secret under a label of its own). `put` writes it; `load` checks it, so a
//! manifest that `put` did not write (dropped into the folder by anything else) is never
//! staged: it is moved to `outbox/rejected/` and reported. The manifest names every object
//! by its hash, so the seal covers the whole package.

use fgw_deid::DeidPackage;
use fgw_format::ids::{PackageId, Sha256Hex};
use fgw_format::package::{FileEntry, Manifest, PackageError};
use ring::hmac;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An outbox operation that failed, named by path or package id.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file or directory of the outbox could not be used.
    #[error("outbox {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stored manifest does not parse.
    #[error("outbox package {id}: {source}")]
    Manifest {
        /// The package.
        id: PackageId,
        /// Why.
        source: PackageError,
    },
    /// Stored bytes no longer hash to their name.
    #[error("outbox package {id}: stored bytes do not match their hash ({what})")]
    Corrupt {
        /// The package.
        id: PackageId,
        /// Which part: the manifest or a file path.
        what: String,
    },
    /// The manifest has no valid seal of this box: it was not written by `put` (or was
    /// altered). It is never staged; it was moved to `rejected`.
    #[error("outbox package {id}: {why}; not uploaded, moved to {rejected}")]
    Unsealed {
        /// The package.
        id: PackageId,
        /// `no seal` or `seal does not match`.
        why: &'static str,
        /// Where the manifest went.
        rejected: PathBuf,
    },
}

/// The outbox directory; clones share the sweep lock.
#[derive(Clone)]
pub struct Outbox {
    root: PathBuf,
    /// Held by `put` and `gc`, so a sweep never sees objects whose manifest is not yet written.
    sweep: Arc<std::sync::Mutex<()>>,
    /// Seals manifests at `put`, checks them at `load`.
    key: Arc<hmac::Key>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("root", &self.root).finish_non_exhaustive()
    }
}

/// Why a manifest's seal did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SealCheck {
    Valid,
    Missing,
    Mismatch,
}

/// A package read back from the outbox with every hash re-checked.
#[derive(Debug)]
pub struct StagedPackage {
    id: PackageId,
    manifest_bytes: Vec<u8>,
    manifest: Manifest,
    files: Vec<(FileEntry, PathBuf)>,
}

impl StagedPackage {
    /// The package id (SHA-256 of the manifest bytes, checked).
    pub fn id(&self) -> &PackageId {
        &self.id
    }
    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The manifest bytes as stored (what the id hashes).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }
    /// Manifest entries with the path of their bytes in the outbox.
    pub fn files(&self) -> &[(FileEntry, PathBuf)] {
        &self.files
    }
    /// Bytes the package puts on the wire at most: its files and its manifest.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(e, _)| e.size).sum::<u64>() + self.manifest_bytes.len() as u64
    }
}

use fgw_format::durable::write_atomic;

impl Outbox {
    /// Opens (creating) the outbox at `root`, sealing and checking with `key` (the box's
    /// outbox key).
    pub fn open(root: &Path, key: hmac::Key) -> Result<Outbox, OutboxError> {
        for sub in ["objects", "packages", "seals"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| OutboxError::Io { path: p, source })?;
        }
        Ok(Outbox { root: root.to_path_buf(), sweep: Default::default(), key: Arc::new(key) })
    }

    fn seal_path(&self, id: &PackageId) -> PathBuf {
        self.root.join("seals").join(format!("{id}.mac"))
    }

    fn seal_of(&self, manifest: &[u8]) -> String {
        hex::encode(hmac::sign(&self.key, manifest).as_ref())
    }

    fn check_seal(&self, id: &PackageId, manifest: &[u8]) -> Result<SealCheck, OutboxError> {
        let p = self.seal_path(id);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SealCheck::Missing),
            // Not UTF-8: not a seal we wrote.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Ok(SealCheck::Mismatch)
            }
            Err(source) => return Err(OutboxError::Io { path: p, source }),
        };
        let Ok(tag) = hex::decode(text.trim()) else { return Ok(SealCheck::Mismatch) };
        Ok(match hmac::verify(&self.key, manifest, &tag) {
            Ok(()) => SealCheck::Valid,
            Err(_) => SealCheck::Mismatch,
        })
    }

    /// Moves an unsealed manifest (and its seal, if any) to `rejected/`, where an operator
    /// can look at it; its objects are reclaimed by the next [`Outbox::gc`].
    fn reject(&self, id: &PackageId, why: &'static str) -> Result<OutboxError, OutboxError> {
        let dir = self.root.join("rejected");
        std::fs::create_dir_all(&dir)
            .map_err(|source| OutboxError::Io { path: dir.clone(), source })?;
        let to = dir.join(format!("{id}.json"));
        let from = self.manifest_path(id);
        std::fs::rename(&from, &to).map_err(|source| OutboxError::Io { path: from, source })?;
        let seal = self.seal_path(id);
        if seal.exists() {
            let _ = std::fs::rename(&seal, dir.join(format!("{id}.mac")));
        }
        tracing::warn!(package = %id, reason = why, "outbox manifest not sealed by this box: moved aside, never uploaded");
        Ok(OutboxError::Unsealed { id: id.clone(), why, rejected: to })
    }

    fn object_path(&self, sha: &Sha256Hex) -> PathBuf {
        self.root.join("objects").join(sha.as_str())
    }

    fn manifest_path(&self, id: &PackageId) -> PathBuf {
        self.root.join("packages").join(format!("{id}.json"))
    }

    /// Store a package; idempotent (content-addressed).
    pub fn put(&self, pkg: &DeidPackage) -> Result<PackageId, OutboxError> {
        let _guard = self.sweep.lock().unwrap_or_else(|p| p.into_inner());
        for (entry, bytes) in pkg.files() {
            let p = self.object_path(&entry.sha256);
            if !p.exists() {
                write_atomic(&p, bytes).map_err(|source| OutboxError::Io { path: p, source })?;
            }
        }
        // The seal before the manifest, whose presence means the package is complete.
        let sp = self.seal_path(pkg.id());
        write_atomic(&sp, self.seal_of(pkg.manifest_bytes()).as_bytes())
            .map_err(|source| OutboxError::Io { path: sp, source })?;
        let p = self.manifest_path(pkg.id());
        if std::fs::read(&p).ok().as_deref() != Some(pkg.manifest_bytes()) {
            write_atomic(&p, pkg.manifest_bytes())
                .map_err(|source| OutboxError::Io { path: p, source })?;
        }
        Ok(pkg.id().clone())
    }

    /// Read a package back, verifying the manifest hash, its seal and every file hash. A
    /// manifest without a valid seal of this box is moved aside ([`OutboxError::Unsealed`]).
    pub fn load(&self, id: &PackageId) -> Result<StagedPackage, OutboxError> {
        let mp = self.manifest_path(id);
        let manifest_bytes =
            std::fs::read(&mp).map_err(|source| OutboxError::Io { path: mp.clone(), source })?;
        if &Manifest::id_of(&manifest_bytes) != id {
            return Err(OutboxError::Corrupt { id: id.clone(), what: "manifest".into() });
        }
        match self.check_seal(id, &manifest_bytes)? {
            SealCheck::Valid => {}
            SealCheck::Missing => return Err(self.reject(id, "no seal")?),
            SealCheck::Mismatch => return Err(self.reject(id, "seal does not match")?),
        }
        let manifest = Manifest::parse(&manifest_bytes)
            .map_err(|source| OutboxError::Manifest { id: id.clone(), source })?;
        let mut files = Vec::with_capacity(manifest.files.len());
        for entry in &manifest.files {
            let p = self.object_path(&entry.sha256);
            // Streamed: an object may be a slide of several GB.
            let io = |source| OutboxError::Io { path: p.clone(), source };
            let file = std::fs::File::open(&p).map_err(io)?;
            let (sha, size) = Sha256Hex::of_reader(file).map_err(io)?;
            if sha != entry.sha256 || size != entry.size {
                return Err(OutboxError::Corrupt { id: id.clone(), what: entry.path.clone() });
            }
            files.push((entry.clone(), p));
        }
        Ok(StagedPackage { id: id.clone(), manifest_bytes, manifest, files })
    }

    /// Remove a package's manifest after the hub acknowledged it. Objects may be shared by
    /// several packages (content addressing), so they are reclaimed by [`Outbox::gc`].
    pub fn remove(&self, id: &PackageId) -> Result<(), OutboxError> {
        for p in [self.manifest_path(id), self.seal_path(id)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(OutboxError::Io { path: p, source }),
            }
        }
        Ok(())
    }

    /// The packages whose manifests are in the outbox (names that are no package id, such as
    /// interrupted writes, are left to [`Outbox::gc`]).
    pub fn package_ids(&self) -> Result<Vec<PackageId>, OutboxError> {
        let dir = self.root.join("packages");
        let entries = std::fs::read_dir(&dir)
            .map_err(|source| OutboxError::Io { path: dir.clone(), source })?;
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|source| OutboxError::Io { path: dir.clone(), source })?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json").and_then(|s| PackageId::new(s).ok()) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Delete objects no remaining manifest refers to, after moving manifests without a valid
    /// seal aside (they keep nothing alive), and seals of no manifest. Run at start and when idle; cost is one read of
    /// each pending manifest.
    pub fn gc(&self) -> Result<usize, OutboxError> {
        let _guard = self.sweep.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.root.join("packages");
        let mut live = std::collections::HashSet::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|source| OutboxError::Io { path: dir.clone(), source })?;
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            let Ok(bytes) = std::fs::read(e.path()) else { continue };
            let id = Manifest::id_of(&bytes);
            // A file named for other bytes is left to `load` (reported as corrupt); its
            // objects are kept.
            let named_for_its_bytes = e.file_name().to_string_lossy() == format!("{id}.json");
            let sealed = !named_for_its_bytes
                || match self.check_seal(&id, &bytes)? {
                    SealCheck::Valid => true,
                    SealCheck::Missing => {
                        self.reject(&id, "no seal")?;
                        false
                    }
                    SealCheck::Mismatch => {
                        self.reject(&id, "seal does not match")?;
                        false
                    }
                };
            if sealed {
                if let Ok(m) = Manifest::parse(&bytes) {
                    live.extend(m.files.into_iter().map(|f| f.sha256));
                }
            }
        }
        // Seals whose manifest is gone: `remove` was interrupted between the two (a seal
        // written by `put` before its manifest cannot be seen here, `put` holds the lock).
        let sdir = self.root.join("seals");
        let seals = std::fs::read_dir(&sdir)
            .map_err(|source| OutboxError::Io { path: sdir.clone(), source })?;
        for e in seals.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let manifest = name
                .strip_suffix(".mac")
                .and_then(|s| PackageId::new(s).ok())
                .map(|id| self.manifest_path(&id));
            if !manifest.is_some_and(|m| m.exists()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let odir = self.root.join("objects");
        let mut removed = 0;
        let objects = std::fs::read_dir(&odir)
            .map_err(|source| OutboxError::Io { path: odir.clone(), source })?;
        for e in objects.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            match Sha256Hex::new(name) {
                Ok(sha) if live.contains(&sha) => {}
                _ => {
                    if std::fs::remove_file(e.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[b; 32])
    }

    /// A manifest dropped into `packages/` by something other than `put` (well-formed or
    /// not: the seal is checked before anything else is read).
    fn drop_manifest(root: &Path, bytes: &[u8]) -> PackageId {
        let id = Manifest::id_of(bytes);
        std::fs::write(root.join("packages").join(format!("{id}.json")), bytes).unwrap();
        id
    }

    /// A sealed package with one object, written as `put` writes one.
    fn plant(root: &Path, outbox: &Outbox, object: &[u8]) -> PackageId {
        use fgw_format::ids::FacilityId;
        use fgw_format::package::{Body, DeidInfo, ExamRecord, FORMAT, FORMAT_VERSION};
        let m = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            facility_id: FacilityId::new("F0001").unwrap(),
            body: Body::Exam(ExamRecord {
                exam_pid: "e-000000000000000000000001".into(),
                revision: 1,
                ..Default::default()
            }),
            files: vec![FileEntry {
                path: "images/001.jpg".into(),
                sha256: Sha256Hex::of(object),
                size: object.len() as u64,
                media_type: "image/jpeg".into(),
            }],
            deid: DeidInfo {
                method: "test".into(),
                tool_version: "0".into(),
                policy_id: "jed-basic".into(),
                policy_version: 1,
                actions: vec![],
            },
        };
        let bytes = m.to_bytes();
        let id = Manifest::id_of(&bytes);
        std::fs::write(outbox.object_path(&Sha256Hex::of(object)), object).unwrap();
        std::fs::write(outbox.seal_path(&id), outbox.seal_of(&bytes)).unwrap();
        std::fs::write(root.join("packages").join(format!("{id}.json")), &bytes).unwrap();
        id
    }

    #[test]
    fn objects_changed_after_staging_are_caught_by_the_streamed_check() {
        let d = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(d.path(), key(1)).unwrap();
        let object: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let id = plant(d.path(), &outbox, &object);
        assert!(outbox.load(&id).is_ok(), "intact");
        let path = outbox.object_path(&Sha256Hex::of(&object));
        let mut flipped = object.clone();
        flipped[299_999] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(outbox.load(&id), Err(OutboxError::Corrupt { .. })), "one bit");
        std::fs::write(&path, &object[..200_000]).unwrap();
        assert!(matches!(outbox.load(&id), Err(OutboxError::Corrupt { .. })), "truncated");
    }

    #[test]
    fn a_manifest_not_written_by_put_is_refused_and_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(d.path(), key(1)).unwrap();
        let id = drop_manifest(d.path(), br#"{"format":"foreign"}"#);
        match outbox.load(&id) {
            Err(OutboxError::Unsealed { why: "no seal", rejected, .. }) => {
                assert_eq!(rejected, d.path().join("rejected").join(format!("{id}.json")));
                assert!(rejected.exists());
            }
            other => panic!("staged a foreign manifest: {other:?}"),
        }
        assert!(!outbox.manifest_path(&id).exists(), "no longer in packages/");
    }

    #[test]
    fn a_seal_made_with_another_key_does_not_count() {
        let d = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(d.path(), key(1)).unwrap();
        let bytes = br#"{"format":"other box"}"#;
        let id = drop_manifest(d.path(), bytes);
        let other = Outbox::open(d.path(), key(2)).unwrap();
        std::fs::write(outbox.seal_path(&id), other.seal_of(bytes)).unwrap();
        assert!(matches!(
            outbox.load(&id),
            Err(OutboxError::Unsealed { why: "seal does not match", .. })
        ));
        // With this box's seal the check passes (the bytes then fail to parse: not a
        // manifest), so the seal is what refused it above.
        let id = drop_manifest(d.path(), bytes);
        std::fs::write(outbox.seal_path(&id), outbox.seal_of(bytes)).unwrap();
        assert!(matches!(outbox.load(&id), Err(OutboxError::Manifest { .. })));
    }

    #[test]
    fn gc_moves_foreign_manifests_aside() {
        let d = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(d.path(), key(1)).unwrap();
        let object = b"image bytes";
        let sha = Sha256Hex::of(object);
        std::fs::write(d.path().join("objects").join(sha.as_str()), object).unwrap();
        let manifest = format!(r#"{{"files":[{{"sha256":"{sha}"}}]}}"#);
        let id = drop_manifest(d.path(), manifest.as_bytes());
        assert_eq!(outbox.gc().unwrap(), 1, "the unreferenced object is collected");
        assert!(d.path().join("rejected").join(format!("{id}.json")).exists());
    }

    /// A kill between `remove`'s two deletions leaves the seal of an acknowledged package
    /// (found by the 1,000-kill crash harness): the next collection deletes it, and keeps
    /// the seals of packages still pending.
    #[test]
    fn gc_deletes_seals_whose_manifest_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(d.path(), key(1)).unwrap();
        let kept = plant(d.path(), &outbox, b"pending image");
        let acked = plant(d.path(), &outbox, b"acknowledged image");
        std::fs::remove_file(outbox.manifest_path(&acked)).unwrap();
        std::fs::write(d.path().join("seals").join("junk.mac.tmp"), b"x").unwrap();
        outbox.gc().unwrap();
        assert!(!outbox.seal_path(&acked).exists(), "orphaned seal left");
        assert!(outbox.seal_path(&kept).exists());
        assert_eq!(std::fs::read_dir(d.path().join("seals")).unwrap().count(), 1);
        assert!(outbox.load(&kept).is_ok());
    }
}
