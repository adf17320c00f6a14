//! Embedded object store: a content-addressed directory, `objects/<aa>/<sha256>`.
//!
//! Writes go to `objects/tmp/` first, are fsynced, then renamed into place and the directory
//! fsynced: a crash leaves either no object or a whole one, never a truncated file under a
//! valid name. Two concurrent uploads of the same object both rename identical bytes.

use super::{ObjectStore, Result, StoreError};
use fgw_format::ids::Sha256Hex;
use fgw_format::package::protocol::Stored;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The embedded [`ObjectStore`]: one file per object.
#[derive(Debug, Clone)]
pub struct FsObjectStore {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

use fgw_format::durable::fsync_dir;

impl FsObjectStore {
    /// Opens (creating) the store rooted at `root`.
    pub fn open(root: &Path) -> Result<FsObjectStore> {
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(FsObjectStore { root: root.to_path_buf() })
    }

    /// `<root>/<first two hex digits>/<sha>`: fans out so no directory grows huge.
    pub fn path_of(&self, sha: &Sha256Hex) -> PathBuf {
        let s = sha.as_str();
        self.root.join(&s[..2]).join(s)
    }

    fn tmp_path(&self, sha: &Sha256Hex) -> PathBuf {
        use ring::rand::SecureRandom;
        let mut r = [0u8; 8];
        // Unique per writer so concurrent uploads of one object never share a temp file.
        ring::rand::SystemRandom::new().fill(&mut r).expect("system RNG");
        self.root.join("tmp").join(format!("{sha}.{}.tmp", hex::encode(r)))
    }
}

impl ObjectStore for FsObjectStore {
    fn size(&self, sha: &Sha256Hex) -> Result<Option<u64>> {
        let p = self.path_of(sha);
        match std::fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn put(&self, sha: &Sha256Hex, bytes: &[u8]) -> Result<Stored> {
        if &Sha256Hex::of(bytes) != sha {
            return Err(StoreError::HashMismatch { expected: sha.clone() });
        }
        let dst = self.path_of(sha);
        if dst.exists() {
            return Ok(Stored::Duplicate);
        }
        let dir = dst.parent().expect("object path has a parent");
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = self.tmp_path(sha);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp)(e));
        }
        std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
        fsync_dir(dir).map_err(io(dir))?;
        Ok(Stored::New)
    }

    fn get(&self, sha: &Sha256Hex) -> Result<Option<Vec<u8>>> {
        let p = self.path_of(sha);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verifies_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).unwrap();
        let bytes = b"jpeg bytes";
        let sha = Sha256Hex::of(bytes);
        assert!(!store.has(&sha).unwrap());
        assert_eq!(store.put(&sha, bytes).unwrap(), Stored::New);
        assert_eq!(store.put(&sha, bytes).unwrap(), Stored::Duplicate);
        assert_eq!(store.size(&sha).unwrap(), Some(bytes.len() as u64));
        assert_eq!(store.get(&sha).unwrap().unwrap(), bytes);
        let other = Sha256Hex::of(b"other");
        assert!(matches!(store.put(&other, bytes), Err(StoreError::HashMismatch { .. })));
        assert!(store.get(&other).unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
