//! Embedded object store: a content-addressed directory, `objects/<aa>/<sha256>`.
//!
//! An upload streams into `objects/tmp/` while it is hashed (SHA-256); at the end the hash is
//! checked, the file fsynced, renamed into place and the directory fsynced: a crash leaves
//! either no object or a whole one, never a truncated file under a valid name, and no body is
//! ever held in memory. Two concurrent uploads of the same object both rename identical bytes.
//!
//! Chunks of upload sessions (issue 11) live in `objects/parts/<upload_id>/<index>`, written
//! the same way (temporary file in `objects/tmp/` hashed on the way, fsync, rename, fsync of
//! the directory), so a chunk acknowledged to the device survives a crash or restart.

use super::{ObjectEntry, ObjectStore, ObjectWriter, PartWriter, PartsEntry, Result, StoreError};
use fgw_format::durable::fsync_dir;
use fgw_format::ids::{Sha256Hex, UploadId};
use fgw_format::package::protocol::Stored;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The embedded [`ObjectStore`]: one file per object.
#[derive(Debug, Clone)]
pub struct FsObjectStore {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

const TMP: &str = "tmp";
const PARTS: &str = "parts";

fn random_suffix() -> String {
    use ring::rand::SecureRandom;
    let mut r = [0u8; 8];
    // Unique per writer so concurrent uploads of one object never share a temp file.
    ring::rand::SystemRandom::new().fill(&mut r).expect("system RNG");
    hex::encode(r)
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

impl FsObjectStore {
    /// Opens (creating) the store rooted at `root`.
    pub fn open(root: &Path) -> Result<FsObjectStore> {
        for dir in [root.join(TMP), root.join(PARTS)] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(FsObjectStore { root: root.to_path_buf() })
    }

    /// `<root>/parts/<upload_id>`: the chunks of one session.
    pub fn parts_dir(&self, upload: &UploadId) -> PathBuf {
        self.root.join(PARTS).join(upload.as_str())
    }

    fn part_path(&self, upload: &UploadId, index: u32) -> PathBuf {
        self.parts_dir(upload).join(index.to_string())
    }

    /// `<root>/<first two hex digits>/<sha>`: fans out so no directory grows huge.
    pub fn path_of(&self, sha: &Sha256Hex) -> PathBuf {
        let s = sha.as_str();
        self.root.join(&s[..2]).join(s)
    }

    fn tmp_path(&self, sha: &Sha256Hex) -> PathBuf {
        self.root.join(TMP).join(format!("{sha}.{}.tmp", random_suffix()))
    }
}

/// A chunk in `objects/tmp/`, renamed to `parts/<upload_id>/<index>` by `finish`, removed on
/// drop otherwise.
struct FsPartWriter {
    upload: UploadId,
    index: u32,
    sha: Sha256Hex,
    dst: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    digest: ring::digest::Context,
    written: u64,
}

impl PartWriter for FsPartWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("file is open until finish");
        file.write_all(bytes).map_err(io(&self.tmp))?;
        self.digest.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let digest =
            std::mem::replace(&mut self.digest, ring::digest::Context::new(&ring::digest::SHA256))
                .finish();
        if hex::encode(digest) != self.sha.as_str() {
            return Err(StoreError::ChunkHashMismatch {
                upload: self.upload.clone(),
                index: self.index,
            });
        }
        let file = self.file.take().expect("file is open until finish");
        file.sync_all().map_err(io(&self.tmp))?;
        drop(file);
        let dir = self.dst.parent().expect("part path has a parent").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // Replaces an earlier copy of the chunk atomically.
        std::fs::rename(&self.tmp, &self.dst).map_err(io(&self.dst))?;
        fsync_dir(&dir).map_err(io(&dir))?;
        // The session's directory may be new: make its entry durable too.
        let parts = dir.parent().expect("parts dir has a parent");
        fsync_dir(parts).map_err(io(parts))?;
        Ok(())
    }
}

impl Drop for FsPartWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// An upload in `objects/tmp/`, removed on drop unless finished.
struct FsWriter {
    sha: Sha256Hex,
    dst: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    digest: ring::digest::Context,
    written: u64,
}

impl ObjectWriter for FsWriter {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("file is open until finish");
        file.write_all(chunk).map_err(io(&self.tmp))?;
        self.digest.update(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish(mut self: Box<Self>) -> Result<Stored> {
        let digest =
            std::mem::replace(&mut self.digest, ring::digest::Context::new(&ring::digest::SHA256))
                .finish();
        if hex::encode(digest) != self.sha.as_str() {
            // Drop removes the temp file.
            return Err(StoreError::HashMismatch { expected: self.sha.clone() });
        }
        let file = self.file.take().expect("file is open until finish");
        if self.dst.exists() {
            // Same name, same bytes: keep the stored copy and make it young again, so a
            // collection running now does not delete it from under this upload.
            let _ = File::options()
                .write(true)
                .open(&self.dst)
                .and_then(|f| f.set_modified(SystemTime::now()));
            return Ok(Stored::Duplicate);
        }
        file.sync_all().map_err(io(&self.tmp))?;
        drop(file);
        let dir = self.dst.parent().expect("object path has a parent").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        std::fs::rename(&self.tmp, &self.dst).map_err(io(&self.dst))?;
        fsync_dir(&dir).map_err(io(&dir))?;
        Ok(Stored::New)
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        // After a successful rename the temp path no longer exists: nothing to do.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn is_object_name(name: &str) -> Option<Sha256Hex> {
    Sha256Hex::new(name).ok()
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

    fn writer(&self, sha: &Sha256Hex) -> Result<Box<dyn ObjectWriter>> {
        let tmp = self.tmp_path(sha);
        let file = File::create(&tmp).map_err(io(&tmp))?;
        Ok(Box::new(FsWriter {
            sha: sha.clone(),
            dst: self.path_of(sha),
            tmp,
            file: Some(file),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            written: 0,
        }))
    }

    fn get(&self, sha: &Sha256Hex) -> Result<Option<Vec<u8>>> {
        let p = self.path_of(sha);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn remove(&self, sha: &Sha256Hex) -> Result<bool> {
        let p = self.path_of(sha);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn for_each(&self, f: &mut dyn FnMut(ObjectEntry) -> Result<()>) -> Result<()> {
        for fan in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let fan = fan.map_err(io(&self.root))?;
            let name = fan.file_name();
            let name = name.to_string_lossy();
            if name.len() != 2 || !fan.path().is_dir() {
                continue;
            }
            let dir = fan.path();
            // One fan-out directory at a time (1/256 of the store), listed before `f` runs
            // so that `f` may delete what it is given.
            let mut entries = Vec::new();
            for e in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let e = e.map_err(io(&dir))?;
                let Some(sha) = is_object_name(&e.file_name().to_string_lossy()) else {
                    continue;
                };
                let meta = match e.metadata() {
                    Ok(m) => m,
                    // Removed since the listing (a concurrent collection).
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(io(&e.path())(err)),
                };
                let modified = meta.modified().map_err(io(&e.path()))?;
                entries.push(ObjectEntry { sha256: sha, size: meta.len(), modified });
            }
            for entry in entries {
                f(entry)?;
            }
        }
        Ok(())
    }

    fn remove_stale_temp(&self, cutoff: SystemTime) -> Result<u64> {
        let dir = self.root.join(TMP);
        let mut removed = 0;
        for e in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let stale = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
            if stale && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn part_writer(
        &self,
        upload: &UploadId,
        index: u32,
        sha: &Sha256Hex,
    ) -> Result<Box<dyn PartWriter>> {
        let tmp =
            self.root.join(TMP).join(format!("part.{upload}.{index}.{}.tmp", random_suffix()));
        let file = File::create(&tmp).map_err(io(&tmp))?;
        Ok(Box::new(FsPartWriter {
            upload: upload.clone(),
            index,
            sha: sha.clone(),
            dst: self.part_path(upload, index),
            tmp,
            file: Some(file),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            written: 0,
        }))
    }

    fn part_size(&self, upload: &UploadId, index: u32) -> Result<Option<u64>> {
        let p = self.part_path(upload, index);
        match std::fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn read_part(&self, upload: &UploadId, index: u32) -> Result<Option<Box<dyn Read + Send>>> {
        let p = self.part_path(upload, index);
        match File::open(&p) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn remove_parts(&self, upload: &UploadId) -> Result<bool> {
        let dir = self.parts_dir(upload);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(io(&dir)(e)),
        }
    }

    fn for_each_parts(&self, f: &mut dyn FnMut(PartsEntry) -> Result<()>) -> Result<()> {
        let parts = self.root.join(PARTS);
        // Listed before `f` runs so that `f` may delete what it is given.
        let mut entries = Vec::new();
        for e in std::fs::read_dir(&parts).map_err(io(&parts))? {
            let e = e.map_err(io(&parts))?;
            let Ok(upload) = UploadId::new(e.file_name().to_string_lossy()) else { continue };
            // The directory's time changes whenever a chunk is renamed into it.
            let modified = match e.metadata().and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(err) if not_found(&err) => continue,
                Err(err) => return Err(io(&e.path())(err)),
            };
            entries.push(PartsEntry { upload, modified });
        }
        for entry in entries {
            f(entry)?;
        }
        Ok(())
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

    #[test]
    fn streamed_writes_hash_chunks_and_leave_nothing_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sha = Sha256Hex::of(&bytes);
        let mut w = store.writer(&sha).unwrap();
        for chunk in bytes.chunks(7000) {
            w.write(chunk).unwrap();
        }
        assert_eq!(w.written(), bytes.len() as u64);
        assert_eq!(w.finish().unwrap(), Stored::New);
        assert_eq!(store.get(&sha).unwrap().unwrap(), bytes);

        // An abandoned upload (cut body): no object, no temp file.
        let other = Sha256Hex::of(b"never finished");
        let mut w = store.writer(&other).unwrap();
        w.write(b"never").unwrap();
        drop(w);
        assert!(!store.has(&other).unwrap());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn listing_removal_and_stale_temp() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).unwrap();
        let (a, b) = (Sha256Hex::of(b"a"), Sha256Hex::of(b"bb"));
        store.put(&a, b"a").unwrap();
        store.put(&b, b"bb").unwrap();
        let mut seen = vec![];
        store
            .for_each(&mut |e| {
                seen.push((e.sha256.clone(), e.size));
                store.remove(&e.sha256).map(|_| ())
            })
            .unwrap();
        seen.sort();
        let mut want = vec![(a.clone(), 1), (b.clone(), 2)];
        want.sort();
        assert_eq!(seen, want);
        assert!(!store.has(&a).unwrap() && !store.has(&b).unwrap());
        assert!(!store.remove(&a).unwrap());

        std::fs::write(dir.path().join("tmp").join("x.tmp"), b"left by a crash").unwrap();
        assert_eq!(store.remove_stale_temp(SystemTime::UNIX_EPOCH).unwrap(), 0);
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        assert_eq!(store.remove_stale_temp(later).unwrap(), 1);
    }

    fn write_part(
        store: &FsObjectStore,
        upload: &UploadId,
        index: u32,
        bytes: &[u8],
    ) -> Result<()> {
        let mut w = store.part_writer(upload, index, &Sha256Hex::of(bytes))?;
        for piece in bytes.chunks(3) {
            w.write(piece)?;
        }
        assert_eq!(w.written(), bytes.len() as u64);
        w.finish()
    }

    #[test]
    fn parts_are_hash_checked_replaced_read_back_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).unwrap();
        let up = UploadId::new("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(store.part_size(&up, 0).unwrap(), None);
        assert!(store.read_part(&up, 0).unwrap().is_none());

        write_part(&store, &up, 0, b"first chunk").unwrap();
        assert_eq!(store.part_size(&up, 0).unwrap(), Some(11));
        assert_eq!(
            std::fs::read(dir.path().join("parts").join(up.as_str()).join("0")).unwrap(),
            b"first chunk"
        );
        // Sent again: replaced.
        write_part(&store, &up, 0, b"other chunk").unwrap();
        let mut back = Vec::new();
        store.read_part(&up, 0).unwrap().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"other chunk");

        // Bytes that do not hash to the header: refused, the earlier copy stays.
        let mut w = store.part_writer(&up, 0, &Sha256Hex::of(b"something else")).unwrap();
        w.write(b"tampered").unwrap();
        assert!(matches!(w.finish(), Err(StoreError::ChunkHashMismatch { index: 0, .. })));
        assert_eq!(store.part_size(&up, 0).unwrap(), Some(11));
        // A chunk abandoned half-way (cut body) leaves nothing.
        let mut w = store.part_writer(&up, 1, &Sha256Hex::of(b"x")).unwrap();
        w.write(b"hal").unwrap();
        drop(w);
        assert_eq!(store.part_size(&up, 1).unwrap(), None);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        let mut seen = Vec::new();
        store
            .for_each_parts(&mut |e| {
                seen.push(e.upload.clone());
                store.remove_parts(&e.upload).map(|_| ())
            })
            .unwrap();
        assert_eq!(seen, vec![up.clone()]);
        assert_eq!(store.part_size(&up, 0).unwrap(), None);
        assert!(!store.remove_parts(&up).unwrap());
        // Objects are listed apart from parts.
        store.for_each(&mut |_| panic!("no objects")).unwrap();
    }

    #[test]
    fn assembly_streams_parts_in_order_and_checks_the_whole_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).unwrap();
        let up = UploadId::new("0123456789abcdef0123456789abcdef").unwrap();
        let object: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
        let sha = Sha256Hex::of(&object);
        let chunk = 300_000;
        let lengths: Vec<u64> = object.chunks(chunk).map(|c| c.len() as u64).collect();
        assert_eq!(lengths, vec![300_000, 300_000, 100_000]);
        // Written out of order: assembly goes by index.
        for i in [2usize, 0, 1] {
            let bytes = object.chunks(chunk).nth(i).unwrap();
            write_part(&store, &up, i as u32, bytes).unwrap();
        }
        assert_eq!(store.assemble(&up, &sha, &lengths).unwrap(), Stored::New);
        assert_eq!(store.get(&sha).unwrap().unwrap(), object);
        assert_eq!(store.assemble(&up, &sha, &lengths).unwrap(), Stored::Duplicate);

        // Another object's name: the whole hash fails, nothing is stored under it.
        let wrong = Sha256Hex::of(b"not these bytes");
        assert!(matches!(
            store.assemble(&up, &wrong, &lengths),
            Err(StoreError::HashMismatch { .. })
        ));
        assert!(!store.has(&wrong).unwrap());
        // A part shorter or longer than its length, or absent, is missing.
        let other = Sha256Hex::of(b"other");
        assert!(matches!(
            store.assemble(&up, &other, &[300_000, 300_001, 100_000]),
            Err(StoreError::PartMissing { index: 1, .. })
        ));
        assert!(matches!(
            store.assemble(&up, &other, &[300_000, 299_999]),
            Err(StoreError::PartMissing { index: 1, .. })
        ));
        assert!(matches!(
            store.assemble(&up, &other, &[300_000, 300_000, 100_000, 1]),
            Err(StoreError::PartMissing { index: 3, .. })
        ));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
