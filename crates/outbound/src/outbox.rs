//! Content-addressed outbox (de-identified side). Layout:
//! `outbox/objects/<sha256>` (file bytes) and `outbox/packages/<package id>.json` (manifest).
//! Written tmp → fsync → rename → fsync dir, so a power cut leaves either nothing or a whole
//! file. Only a [`DeidPackage`] can be written; only a [`StagedPackage`] (re-verified on read)
//! reaches the uplink.

use fgw_deid::DeidPackage;
use fgw_format::ids::{PackageId, Sha256Hex};
use fgw_format::package::{FileEntry, Manifest, PackageError};

use std::path::{Path, PathBuf};

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
}

/// The outbox directory; clones share the sweep lock.
#[derive(Debug, Clone)]
pub struct Outbox {
    root: PathBuf,
    /// Held by `put` and `gc`, so a sweep never sees objects whose manifest is not yet written.
    sweep: std::sync::Arc<std::sync::Mutex<()>>,
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
}

use fgw_format::durable::write_atomic;

impl Outbox {
    /// Opens (creating) the outbox at `root`.
    pub fn open(root: &Path) -> Result<Outbox, OutboxError> {
        for sub in ["objects", "packages"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| OutboxError::Io { path: p, source })?;
        }
        Ok(Outbox { root: root.to_path_buf(), sweep: Default::default() })
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
        // Manifest last: its presence means the package is complete.
        let p = self.manifest_path(pkg.id());
        if !p.exists() {
            write_atomic(&p, pkg.manifest_bytes())
                .map_err(|source| OutboxError::Io { path: p, source })?;
        }
        Ok(pkg.id().clone())
    }

    /// Read a package back, verifying the manifest hash and every file hash.
    pub fn load(&self, id: &PackageId) -> Result<StagedPackage, OutboxError> {
        let mp = self.manifest_path(id);
        let manifest_bytes =
            std::fs::read(&mp).map_err(|source| OutboxError::Io { path: mp.clone(), source })?;
        if &Manifest::id_of(&manifest_bytes) != id {
            return Err(OutboxError::Corrupt { id: id.clone(), what: "manifest".into() });
        }
        let manifest = Manifest::parse(&manifest_bytes)
            .map_err(|source| OutboxError::Manifest { id: id.clone(), source })?;
        let mut files = Vec::with_capacity(manifest.files.len());
        for entry in &manifest.files {
            let p = self.object_path(&entry.sha256);
            let bytes =
                std::fs::read(&p).map_err(|source| OutboxError::Io { path: p.clone(), source })?;
            if Sha256Hex::of(&bytes) != entry.sha256 {
                return Err(OutboxError::Corrupt { id: id.clone(), what: entry.path.clone() });
            }
            files.push((entry.clone(), p));
        }
        Ok(StagedPackage { id: id.clone(), manifest_bytes, manifest, files })
    }

    /// Remove a package's manifest after the hub acknowledged it. Objects may be shared by
    /// several packages (content addressing), so they are reclaimed by [`Outbox::gc`].
    pub fn remove(&self, id: &PackageId) -> Result<(), OutboxError> {
        let mp = self.manifest_path(id);
        match std::fs::remove_file(&mp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(OutboxError::Io { path: mp, source }),
        }
    }

    /// Delete objects no remaining manifest refers to. Run at start and when idle; cost is one
    /// read of each pending manifest.
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
            if let Ok(bytes) = std::fs::read(e.path()) {
                if let Ok(m) = Manifest::parse(&bytes) {
                    live.extend(m.files.into_iter().map(|f| f.sha256));
                }
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
