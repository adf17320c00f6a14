//! Encrypted spool of raw, identifiable inputs (identifiable side). Each exam is one file
//! `<queue id>.fgws`: AES-256-GCM (ring) with a key derived from the box's secret store, a
//! random nonce, and the queue id as associated data (a file renamed to another id fails to
//! open). File names are random queue ids: nothing from the department system.

use crate::storage::{self, ByteCounter};
use fgw_format::ids::QueueId;
use fgw_records::{RawExam, RawReport};
use ring::aead::{Aad, LessSafeKey, Nonce, NONCE_LEN};
use ring::rand::SecureRandom;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"FGWS1\n";

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading, writing or listing failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not open with the box's key under this id.
    #[error("spool file for {id} is not a spool file or was tampered with")]
    Corrupt {
        /// The item whose file it is.
        id: QueueId,
    },
}

/// One encrypted spool directory (the spool, or the quarantine), with the bytes it holds.
pub struct Spool {
    dir: PathBuf,
    key: LessSafeKey,
    /// Bytes of the files in `dir`: walked at open, then kept by every write and removal
    /// made through this handle (the storage quotas read it).
    bytes: ByteCounter,
}

impl Spool {
    /// Open (creating) the directory; files are sealed with `key`. Walks the directory once
    /// to count its bytes.
    pub fn open(dir: &Path, key: LessSafeKey) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let bytes = ByteCounter::new(storage::dir_bytes(dir).map_err(io)?);
        Ok(Spool { dir: dir.to_path_buf(), key, bytes })
    }

    /// Bytes of the files in the directory.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// Write `sealed` as the file of `id`, keeping the count (a replaced file's bytes go).
    fn write(&self, id: &QueueId, sealed: &[u8]) -> Result<(), SpoolError> {
        let path = self.path(id);
        let replaced = storage::file_len(&path);
        fgw_format::durable::write_atomic(&path, sealed)
            .map_err(|source| SpoolError::Io { path, source })?;
        self.bytes.add(sealed.len() as u64);
        self.bytes.sub(replaced);
        Ok(())
    }

    /// The file of item `id`.
    pub fn path(&self, id: &QueueId) -> PathBuf {
        Spool::file_in(&self.dir, id)
    }

    /// Where a spool in `dir` keeps item `id`; for readers without the spool's key (status
    /// reads sizes only).
    pub fn file_in(dir: &Path, id: &QueueId) -> PathBuf {
        dir.join(format!("{id}.fgws"))
    }

    /// Store an exam with its images, durably.
    pub fn put(&self, id: &QueueId, exam: &RawExam) -> Result<(), SpoolError> {
        let sealed = self.seal(id, encode(exam));
        self.write(id, &sealed)
    }

    /// Read back an exam stored with [`Spool::put`].
    pub fn get(&self, id: &QueueId) -> Result<RawExam, SpoolError> {
        let path = self.path(id);
        let bytes = std::fs::read(&path).map_err(|source| SpoolError::Io { path, source })?;
        let plain = self.open_sealed(id, bytes)?;
        decode(&plain).ok_or_else(|| SpoolError::Corrupt { id: id.clone() })
    }

    /// Reports (HL7) have no images: plain JSON inside the same envelope.
    pub fn put_report(&self, id: &QueueId, report: &RawReport) -> Result<(), SpoolError> {
        let plain = serde_json::to_vec(report).expect("raw report serializes");
        let sealed = self.seal(id, plain);
        self.write(id, &sealed)
    }

    /// Read back a report stored with [`Spool::put_report`].
    pub fn get_report(&self, id: &QueueId) -> Result<RawReport, SpoolError> {
        let path = self.path(id);
        let bytes = std::fs::read(&path).map_err(|source| SpoolError::Io { path, source })?;
        let plain = self.open_sealed(id, bytes)?;
        serde_json::from_slice(&plain).map_err(|_| SpoolError::Corrupt { id: id.clone() })
    }

    /// A received DICOM object: its Part-10 bytes as they arrived.
    pub fn put_bytes(&self, id: &QueueId, bytes: &[u8]) -> Result<(), SpoolError> {
        let sealed = self.seal(id, bytes.to_vec());
        self.write(id, &sealed)
    }

    /// Read back an object stored with [`Spool::put_bytes`].
    pub fn get_bytes(&self, id: &QueueId) -> Result<Vec<u8>, SpoolError> {
        let path = self.path(id);
        let bytes = std::fs::read(&path).map_err(|source| SpoolError::Io { path, source })?;
        self.open_sealed(id, bytes)
    }

    /// Whether item `id` has a file here.
    pub fn exists(&self, id: &QueueId) -> bool {
        self.path(id).exists()
    }

    /// Delete a spool file (after acknowledgement). Missing is fine: deletion is idempotent
    /// so a crash between the state change and the unlink is repaired on restart.
    pub fn remove(&self, id: &QueueId) -> Result<(), SpoolError> {
        let path = self.path(id);
        let len = storage::file_len(&path);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                self.bytes.sub(len);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SpoolError::Io { path, source }),
        }
    }

    /// Move a spool file into another spool directory (quarantine keeps it, still encrypted).
    pub fn move_to(&self, id: &QueueId, other: &Spool) -> Result<(), SpoolError> {
        let from = self.path(id);
        let to = other.path(id);
        if !from.exists() {
            return Ok(());
        }
        let len = storage::file_len(&from);
        let replaced = storage::file_len(&to);
        std::fs::rename(&from, &to)
            .map_err(|source| SpoolError::Io { path: to.clone(), source })?;
        self.bytes.sub(len);
        other.bytes.add(len);
        other.bytes.sub(replaced);
        fgw_format::durable::fsync_dir(&other.dir)
            .map_err(|source| SpoolError::Io { path: to, source })
    }

    /// Number of spool files in the directory (for status and tests). An entry that cannot
    /// be read is an error naming the directory.
    pub fn len(&self) -> Result<usize, SpoolError> {
        let io = |source| SpoolError::Io { path: self.dir.clone(), source };
        let mut n = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            if entry.map_err(io)?.file_name().to_string_lossy().ends_with(".fgws") {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether the directory holds no spool file.
    pub fn is_empty(&self) -> Result<bool, SpoolError> {
        Ok(self.len()? == 0)
    }

    fn seal(&self, id: &QueueId, mut plain: Vec<u8>) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SystemRandom::new().fill(&mut nonce).expect("system RNG");
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_str().as_bytes()),
                &mut plain,
            )
            .expect("seal");
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + plain.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        out
    }

    fn open_sealed(&self, id: &QueueId, mut bytes: Vec<u8>) -> Result<Vec<u8>, SpoolError> {
        let corrupt = || SpoolError::Corrupt { id: id.clone() };
        if bytes.len() < MAGIC.len() + NONCE_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt());
        }
        let nonce: [u8; NONCE_LEN] =
            bytes[MAGIC.len()..MAGIC.len() + NONCE_LEN].try_into().expect("length checked");
        let mut body = bytes.split_off(MAGIC.len() + NONCE_LEN);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_str().as_bytes()),
                &mut body,
            )
            .map_err(|_| corrupt())?;
        Ok(plain.to_vec())
    }
}

/// Framing: u64 length + JSON of the exam without image bytes, then each image's bytes with a
/// u64 length (JSON arrays of numbers would triple the size).
fn encode(exam: &RawExam) -> Vec<u8> {
    let mut head = exam.clone();
    let images: Vec<Vec<u8>> =
        head.images.iter_mut().map(|i| std::mem::take(&mut i.bytes)).collect();
    let json = serde_json::to_vec(&head).expect("raw exam serializes");
    let mut out =
        Vec::with_capacity(json.len() + images.iter().map(|i| i.len() + 8).sum::<usize>() + 8);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for img in images {
        out.extend_from_slice(&(img.len() as u64).to_le_bytes());
        out.extend_from_slice(&img);
    }
    out
}

fn decode(bytes: &[u8]) -> Option<RawExam> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = bytes.get(pos..pos.checked_add(n)?)?;
        pos += n;
        Some(s)
    };
    let len = u64::from_le_bytes(take(8)?.try_into().ok()?) as usize;
    let mut exam: RawExam = serde_json::from_slice(take(len)?).ok()?;
    for img in exam.images.iter_mut() {
        let n = u64::from_le_bytes(take(8)?.try_into().ok()?) as usize;
        img.bytes = take(n)?.to_vec();
    }
    Some(exam)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fgw_records::{Column, RawImage, SourceRef};

    #[test]
    fn roundtrip_is_encrypted_and_bound_to_its_id() {
        let d = tempfile::tempdir().unwrap();
        let s = crate::secrets::Secrets::from_bytes([7; 32]);
        let spool = Spool::open(d.path(), s.spool_key()).unwrap();
        let mut exam = RawExam {
            source: SourceRef { batch: "b".into(), file: "b/exams.csv".into(), row: 1, line: 2 },
            fields: Default::default(),
            extra: Default::default(),
            images: vec![RawImage {
                index: 0,
                rel_path: "b/images/x/1.jpg".into(),
                bytes: b"JPEGDATA".to_vec(),
            }],
            missing_images: vec![],
            report: Some("報告".into()),
        };
        exam.fields.insert(Column::PatientName, "SPOOLMARKER".into());
        let id = QueueId::random();
        spool.put(&id, &exam).unwrap();
        let raw = std::fs::read(spool.path(&id)).unwrap();
        assert!(!raw.windows(11).any(|w| w == b"SPOOLMARKER"));
        assert!(!raw.windows(8).any(|w| w == b"JPEGDATA"));
        assert_eq!(spool.get(&id).unwrap(), exam);
        // Same bytes under another id must not open (AAD binds the id).
        let other = QueueId::random();
        std::fs::copy(spool.path(&id), spool.path(&other)).unwrap();
        assert!(matches!(spool.get(&other), Err(SpoolError::Corrupt { .. })));
    }

    /// The byte count follows every write, replacement, move and removal, and a reopened
    /// spool counts what is on disk.
    #[test]
    fn the_byte_count_follows_the_files() {
        let d = tempfile::tempdir().unwrap();
        let s = crate::secrets::Secrets::from_bytes([7; 32]);
        let spool = Spool::open(&d.path().join("spool"), s.spool_key()).unwrap();
        let quarantine = Spool::open(&d.path().join("quarantine"), s.spool_key()).unwrap();
        let on_disk = |dir: &str| storage::dir_bytes(&d.path().join(dir)).unwrap();
        assert_eq!(spool.bytes(), 0);
        let (a, b) = (QueueId::random(), QueueId::random());
        spool.put_bytes(&a, &[1; 1000]).unwrap();
        spool.put_bytes(&b, &[2; 50]).unwrap();
        assert_eq!(spool.bytes(), on_disk("spool"));
        assert!(spool.bytes() > 1050, "sealed files are a little larger than their input");
        // Written again under the same id: the old file's bytes are no longer counted.
        spool.put_bytes(&b, &[2; 10]).unwrap();
        assert_eq!(spool.bytes(), on_disk("spool"));
        spool.move_to(&a, &quarantine).unwrap();
        assert_eq!((spool.bytes(), quarantine.bytes()), (on_disk("spool"), on_disk("quarantine")));
        assert!(quarantine.bytes() > 1000);
        spool.remove(&b).unwrap();
        spool.remove(&b).unwrap();
        assert_eq!(spool.bytes(), 0);
        let reopened = Spool::open(&d.path().join("quarantine"), s.spool_key()).unwrap();
        assert_eq!(reopened.bytes(), quarantine.bytes());
        quarantine.remove(&a).unwrap();
        assert_eq!(quarantine.bytes(), 0);
    }
}
