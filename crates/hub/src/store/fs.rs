//! Embedded object store: a content-addressed directory, `objects/<aa>/<sha256>`.
//!
//! An upload streams into `objects/tmp/` while it is hashed (SHA-256); at the end the hash is
//! checked, the file fsynced, renamed into place and the directory fsynced: a crash leaves
//! either no object or a whole one, never a truncated file under a valid name, and no body is
//! ever held in memory. Two concurrent uploads of the same object both rename identical bytes.
//!
//! Chunks of upload sessions (issue 11) are written in place into one file per session,
//! `objects/parts/<upload_id>/data`, at their offset in the object, hashed on the way; once
//! a chunk's bytes hash right they are fsynced and a marker `parts/<upload_id>/<index>`
//! (holding the chunk's length) is written, so a chunk acknowledged to the device survives a
//! crash or restart (a marker lost to a power cut only makes the commit ask for the chunk
//! again). The commit checks the whole hash (the API's running hash of chunks that came in
//! order, or a read of the session file) and renames the file into place: the object is
//! written once, not copied from its chunks (which cost a second write of every byte and
//! made chunked uploads a third as fast as one PUT; docs/benchmarks.md). A chunk is written in place, so the caller never starts a
//! writer for a chunk it has recorded, nor two at once for one chunk (the API holds a
//! per-chunk claim): bytes acknowledged are never overwritten.

use super::{
    ObjectEntry, ObjectStore, ObjectWriter, PartWriter, PartsEntry, Result, StoreError, WholeHash,
};
use fgw_format::durable::fsync_dir;
use fgw_format::ids::{Sha256Hex, UploadId};
use fgw_format::package::protocol::Stored;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
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
/// The session file, beside the chunk markers (which are named by index, all digits).
const DATA: &str = "data";
/// Bytes read at a time when a session file is hashed at commit.
const HASH_BUFFER: usize = 1 << 20;
/// A chunk's bytes are handed to the disk every this many bytes as they arrive, so the fsync
/// before its acknowledgement finds little left to write: with one chunk in flight, that
/// fsync is a pause in the device's stream.
const WRITEBACK_STEP: u64 = 256 << 10;

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

    /// The marker of a chunk whose bytes are in place and durable.
    fn part_path(&self, upload: &UploadId, index: u32) -> PathBuf {
        self.parts_dir(upload).join(index.to_string())
    }

    fn data_path(&self, upload: &UploadId) -> PathBuf {
        self.parts_dir(upload).join(DATA)
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

/// A chunk being written in place into its session file at `offset`; `finish` checks the
/// hash, fsyncs and writes the chunk's marker. Dropped without it, the chunk has no marker
/// (its bytes are overwritten by the next attempt).
struct FsPartWriter {
    upload: UploadId,
    index: u32,
    sha: Sha256Hex,
    marker: PathBuf,
    data: PathBuf,
    file: File,
    offset: u64,
    digest: ring::digest::Context,
    written: u64,
    /// Bytes of the chunk already handed to the disk.
    handed: u64,
}

impl PartWriter for FsPartWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let at = self.offset.saturating_add(self.written);
        self.file.write_all_at(bytes, at).map_err(io(&self.data))?;
        self.digest.update(bytes);
        self.written += bytes.len() as u64;
        if self.written - self.handed >= WRITEBACK_STEP {
            // POSIX_FADV_DONTNEED starts writeback of the range without waiting for it
            // (Linux), the same as sync_file_range(SYNC_FILE_RANGE_WRITE), which nix does not
            // offer. Only a hint: a failure changes nothing but speed.
            let (start, len) = (self.offset + self.handed, self.written - self.handed);
            if let (Ok(start), Ok(len)) = (i64::try_from(start), i64::try_from(len)) {
                let _ = nix::fcntl::posix_fadvise(
                    &self.file,
                    start,
                    len,
                    nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                );
            }
            self.handed = self.written;
        }
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
        // Bytes first, then the marker that says they are there. The bytes are durable
        // before the chunk is acknowledged; the marker's directory entry is not fsynced (a
        // pause in the stream per chunk): a marker lost to a power cut makes the commit ask
        // for the chunk again.
        self.file.sync_data().map_err(io(&self.data))?;
        std::fs::write(&self.marker, self.written.to_string()).map_err(io(&self.marker))?;
        Ok(())
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
        offset: u64,
        sha: &Sha256Hex,
    ) -> Result<Box<dyn PartWriter>> {
        let dir = self.parts_dir(upload);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            // The session's directory is new: make its entry durable.
            let parts = self.root.join(PARTS);
            fsync_dir(&parts).map_err(io(&parts))?;
        }
        // A marker left by an earlier attempt that was never recorded (a crash between the
        // two): the chunk is rewritten, so it is not there until this one finishes.
        let marker = self.part_path(upload, index);
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(io(&marker)(e)),
        }
        let data = self.data_path(upload);
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data)
            .map_err(io(&data))?;
        Ok(Box::new(FsPartWriter {
            upload: upload.clone(),
            index,
            sha: sha.clone(),
            marker,
            data,
            file,
            offset,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            written: 0,
            handed: 0,
        }))
    }

    fn part_size(&self, upload: &UploadId, index: u32) -> Result<Option<u64>> {
        let p = self.part_path(upload, index);
        match std::fs::read_to_string(&p) {
            // A torn marker (a crash while it was written) is no marker.
            Ok(s) => Ok(s.parse().ok()),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn assemble(
        &self,
        upload: &UploadId,
        sha: &Sha256Hex,
        lengths: &[u64],
        whole: WholeHash,
    ) -> Result<Stored> {
        match whole {
            WholeHash::Check | WholeHash::Checked => {}
            WholeHash::Mismatch => return Err(StoreError::HashMismatch { expected: sha.clone() }),
        }
        let mut total = 0u64;
        for (index, &len) in lengths.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            if self.part_size(upload, index)? != Some(len) {
                return Err(StoreError::PartMissing { upload: upload.clone(), index });
            }
            total = total.saturating_add(len);
        }
        let data = self.data_path(upload);
        let file = match File::options().read(true).write(true).open(&data) {
            Ok(f) => f,
            // Renamed into place by an earlier commit that ended before the session was
            // closed: the object is stored (checked when it was).
            Err(e) if not_found(&e) && self.size(sha)? == Some(total) => {
                return Ok(Stored::Duplicate)
            }
            Err(e) if not_found(&e) => {
                return Err(StoreError::PartMissing { upload: upload.clone(), index: 0 })
            }
            Err(e) => return Err(io(&data)(e)),
        };
        let on_disk = file.metadata().map_err(io(&data))?.len();
        if on_disk < total {
            // Markers without their bytes: the store was damaged; send the last chunk again.
            let last = u32::try_from(lengths.len().saturating_sub(1)).unwrap_or(u32::MAX);
            return Err(StoreError::PartMissing { upload: upload.clone(), index: last });
        }
        if on_disk > total {
            // Bytes past the object's end (an earlier session of the same name with another
            // size): not part of it.
            file.set_len(total).map_err(io(&data))?;
        }
        if whole == WholeHash::Check {
            let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
            let mut buf = vec![0u8; HASH_BUFFER];
            let mut reader = &file;
            loop {
                let n = reader.read(&mut buf).map_err(io(&data))?;
                if n == 0 {
                    break;
                }
                digest.update(&buf[..n]);
            }
            if hex::encode(digest.finish()) != sha.as_str() {
                return Err(StoreError::HashMismatch { expected: sha.clone() });
            }
        }
        let dst = self.path_of(sha);
        if dst.exists() {
            // As for a PUT of a stored object: keep the stored copy, make it young again.
            let _ = File::options()
                .write(true)
                .open(&dst)
                .and_then(|f| f.set_modified(SystemTime::now()));
            return Ok(Stored::Duplicate);
        }
        // Every chunk's bytes were fsynced before its marker; this covers a truncation.
        file.sync_all().map_err(io(&data))?;
        drop(file);
        let dir = dst.parent().expect("object path has a parent").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        std::fs::rename(&data, &dst).map_err(io(&dst))?;
        fsync_dir(&dir).map_err(io(&dir))?;
        Ok(Stored::New)
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

    /// The trait-level bodies every object store passes (store/object_conformance.rs).
    mod conformance {
        use super::*;
        crate::store::object_conformance::object_store_conformance!({
            let dir = tempfile::tempdir().unwrap();
            let store = FsObjectStore::open(dir.path()).unwrap();
            Some((dir, store))
        });
    }

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
        offset: u64,
        bytes: &[u8],
    ) -> Result<()> {
        let mut w = store.part_writer(upload, index, offset, &Sha256Hex::of(bytes))?;
        for piece in bytes.chunks(3) {
            w.write(piece)?;
        }
        assert_eq!(w.written(), bytes.len() as u64);
        w.finish()
    }

    #[test]
    fn parts_are_written_in_place_hash_checked_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).unwrap();
        let up = UploadId::new("0123456789abcdef0123456789abcdef").unwrap();
        let session = dir.path().join("parts").join(up.as_str());
        assert_eq!(store.part_size(&up, 0).unwrap(), None);

        // Chunk 1 (of 11 bytes each) first: it lands at its offset.
        write_part(&store, &up, 1, 11, b"second part").unwrap();
        assert_eq!(store.part_size(&up, 1).unwrap(), Some(11));
        assert_eq!(store.part_size(&up, 0).unwrap(), None);
        write_part(&store, &up, 0, 0, b"first chunk").unwrap();
        assert_eq!(std::fs::read(session.join("data")).unwrap(), b"first chunksecond part");

        // Bytes that do not hash to the header: refused, and the chunk is not there (its
        // marker went when the writer started: the caller only rewrites unrecorded chunks).
        let mut w = store.part_writer(&up, 0, 0, &Sha256Hex::of(b"something else")).unwrap();
        w.write(b"tampered").unwrap();
        assert!(matches!(w.finish(), Err(StoreError::ChunkHashMismatch { index: 0, .. })));
        assert_eq!(store.part_size(&up, 0).unwrap(), None);
        // A chunk abandoned half-way (cut body) has no marker either.
        let mut w = store.part_writer(&up, 2, 22, &Sha256Hex::of(b"x")).unwrap();
        w.write(b"hal").unwrap();
        drop(w);
        assert_eq!(store.part_size(&up, 2).unwrap(), None);
        // A torn marker is no marker.
        std::fs::write(session.join("1"), b"1x").unwrap();
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
        assert_eq!(store.part_size(&up, 1).unwrap(), None);
        assert!(!store.remove_parts(&up).unwrap());
        // Objects are listed apart from parts.
        store.for_each(&mut |_| panic!("no objects")).unwrap();
    }

    #[test]
    fn assembly_renames_the_session_file_after_checking_the_whole_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).unwrap();
        let up = UploadId::new("0123456789abcdef0123456789abcdef").unwrap();
        let object: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
        let sha = Sha256Hex::of(&object);
        let chunk = 300_000;
        let lengths: Vec<u64> = object.chunks(chunk).map(|c| c.len() as u64).collect();
        assert_eq!(lengths, vec![300_000, 300_000, 100_000]);
        let write = |i: usize| {
            let bytes = object.chunks(chunk).nth(i).unwrap();
            write_part(&store, &up, i as u32, (i * chunk) as u64, bytes).unwrap();
        };
        // Written out of order; one missing, then all.
        for i in [2, 0] {
            write(i);
        }
        assert!(matches!(
            store.assemble(&up, &sha, &lengths, WholeHash::Check),
            Err(StoreError::PartMissing { index: 1, .. })
        ));
        write(1);
        // A part recorded with another length is missing.
        let other = Sha256Hex::of(b"other");
        assert!(matches!(
            store.assemble(&up, &other, &[300_000, 300_001, 100_000], WholeHash::Check),
            Err(StoreError::PartMissing { index: 1, .. })
        ));
        assert!(matches!(
            store.assemble(&up, &other, &[300_000, 300_000, 100_000, 1], WholeHash::Check),
            Err(StoreError::PartMissing { index: 3, .. })
        ));
        // Another object's name: the whole hash fails, nothing is stored under it.
        assert!(matches!(
            store.assemble(&up, &other, &lengths, WholeHash::Check),
            Err(StoreError::HashMismatch { .. })
        ));
        assert!(!store.has(&other).unwrap());

        assert_eq!(store.assemble(&up, &sha, &lengths, WholeHash::Check).unwrap(), Stored::New);
        assert_eq!(store.get(&sha).unwrap().unwrap(), object);
        // The commit again (its answer was lost before the session was closed): stored.
        assert_eq!(
            store.assemble(&up, &sha, &lengths, WholeHash::Check).unwrap(),
            Stored::Duplicate
        );
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        // The caller's own check: `Checked` stores without reading back (the bytes are
        // those it hashed), `Mismatch` stores nothing.
        let up3 = UploadId::new("00112233445566778899aabbccddeeff").unwrap();
        let third = b"third object";
        write_part(&store, &up3, 0, 0, third).unwrap();
        let sha3 = Sha256Hex::of(third);
        let one = [third.len() as u64];
        assert!(matches!(
            store.assemble(&up3, &sha3, &one, WholeHash::Mismatch),
            Err(StoreError::HashMismatch { .. })
        ));
        assert!(!store.has(&sha3).unwrap());
        assert_eq!(store.assemble(&up3, &sha3, &one, WholeHash::Checked).unwrap(), Stored::New);
        assert_eq!(store.get(&sha3).unwrap().unwrap(), third);

        // A session file longer than its object (an earlier session of the name with another
        // size) is cut to the object.
        let up2 = UploadId::new("fedcba9876543210fedcba9876543210").unwrap();
        let small = b"small object";
        write_part(&store, &up2, 0, 0, b"an earlier, longer object").unwrap();
        write_part(&store, &up2, 0, 0, small).unwrap();
        let sha2 = Sha256Hex::of(small);
        assert_eq!(
            store.assemble(&up2, &sha2, &[small.len() as u64], WholeHash::Check).unwrap(),
            Stored::New
        );
        assert_eq!(store.get(&sha2).unwrap().unwrap(), small);
    }
}
