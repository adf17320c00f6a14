//! Durable file writes: the one fsync/atomic-write helper of the box and the hub.

use std::io::Write;
use std::path::Path;

/// fsync a directory so a rename inside it survives power loss.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Write `bytes` to `path` atomically and durably: a hidden temporary file beside it, fsync,
/// rename, fsync of the directory. A power cut leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no parent directory")
    })?;
    let tmp =
        dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        // A write cut short (ENOSPC) must not keep the space it took.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir)
}

/// Creates `path` (and its folder) holding `bytes`, readable by its owner only (0600), and
/// syncs it. Fails if `path` exists: a key is never written over.
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails (here the rename: the target is a non-empty folder; on a full disk,
    /// the write itself) leaves no temporary file taking space.
    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("x");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"1").unwrap();
        assert!(write_atomic(&target, b"data").is_err());
        let names: Vec<_> =
            std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["x"]);
        write_atomic(&d.path().join("y"), b"data").unwrap();
        assert_eq!(std::fs::read(d.path().join("y")).unwrap(), b"data");
    }
}
