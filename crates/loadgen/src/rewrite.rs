//! Makes a corpus package distinct for one device and one upload, so that the hub stores new
//! data rather than deduplicating: the device's facility in the manifest, an exam pseudonym
//! of this run, device and sequence number, and every object changed by a JPEG comment
//! segment (`FF FE`) right after the start-of-image marker (bytes appended at the end for a
//! file that is not a JPEG). Optionally objects are padded with comment segments of
//! pseudo-random bytes up to a size (synthetic images compress better than real endoscopy
//! images). Digests, sizes and the package id are recomputed.

use crate::corpus::CorpusPackage;
use fgw_format::ids::{FacilityId, PackageId, Sha256Hex};
use fgw_format::package::Body;
use std::sync::Arc;

/// Largest payload of one JPEG comment segment (the length field counts itself).
const MAX_COM_PAYLOAD: usize = 65_533;

/// Why a package could not be rewritten.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The corpus package is not an exam package.
    #[error("corpus package for exam variant {seq} of device {device} is not an exam package")]
    NotExam {
        /// The device.
        device: String,
        /// The sequence number.
        seq: u32,
    },
}

/// Who a rewritten package is for.
#[derive(Debug, Clone)]
pub struct Variant<'a> {
    /// The run (keeps runs against the same hub distinct).
    pub run_id: &'a str,
    /// The simulated device.
    pub device: &'a str,
    /// The device's facility (the manifest must name the caller's).
    pub facility: &'a FacilityId,
    /// The package's number among the device's uploads.
    pub seq: u32,
    /// Pad every object to at least this many bytes (0: no padding).
    pub pad_to: usize,
    /// Keep at most this many files (0: all); the exam record then lists the others as
    /// withheld (`loadgen-trimmed`), as the box does for images it keeps.
    pub max_files: usize,
}

/// A package ready to upload.
#[derive(Debug, Clone)]
pub struct Generated {
    /// SHA-256 of `manifest`.
    pub id: PackageId,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The facility it names.
    pub facility: FacilityId,
    /// Its exam pseudonym.
    pub exam_pid: String,
    /// Its objects (digest, bytes), in manifest order.
    pub objects: Vec<(Sha256Hex, Arc<Vec<u8>>)>,
}

impl Generated {
    /// Bytes of all objects.
    pub fn object_bytes(&self) -> u64 {
        self.objects.iter().map(|(_, b)| b.len() as u64).sum()
    }
}

/// `pkg` rewritten for `v`.
pub fn distinct(pkg: &CorpusPackage, v: &Variant<'_>) -> Result<Generated, RewriteError> {
    let mut manifest = pkg.manifest.clone();
    let tag = format!("fgw-loadgen run={} device={} seq={}", v.run_id, v.device, v.seq);
    let exam_pid = match &mut manifest.body {
        Body::Exam(e) => {
            let h = Sha256Hex::of(format!("{tag}\0{}", e.exam_pid).as_bytes());
            e.exam_pid = format!("e-{}", &h.as_str()[..24]);
            e.exam_pid.clone()
        }
        _ => return Err(RewriteError::NotExam { device: v.device.into(), seq: v.seq }),
    };
    manifest.facility_id = v.facility.clone();
    let keep = if v.max_files == 0 { pkg.files.len() } else { v.max_files.min(pkg.files.len()) };
    if keep < manifest.files.len() {
        manifest.files.truncate(keep);
        let kept: std::collections::BTreeSet<String> =
            manifest.files.iter().map(|f| f.path.clone()).collect();
        if let Body::Exam(e) = &mut manifest.body {
            for img in &mut e.images {
                if img.path.as_ref().is_some_and(|p| !kept.contains(p)) {
                    img.path = None;
                    img.withheld = Some("loadgen-trimmed".into());
                }
            }
        }
    }
    let mut objects = Vec::with_capacity(pkg.files.len());
    for (i, (entry, data)) in manifest.files.iter_mut().zip(&pkg.files).enumerate() {
        let bytes = mark(data, format!("{tag} file={i}").as_bytes(), v.pad_to);
        entry.sha256 = Sha256Hex::of(&bytes);
        entry.size = bytes.len() as u64;
        objects.push((entry.sha256.clone(), Arc::new(bytes)));
    }
    let bytes = manifest.to_bytes();
    Ok(Generated {
        id: fgw_format::package::Manifest::id_of(&bytes),
        manifest: bytes,
        facility: v.facility.clone(),
        exam_pid,
        objects,
    })
}

/// `data` with `tag` (and padding up to `pad_to` bytes) in comment segments after the SOI
/// marker, or appended when `data` is not a JPEG.
fn mark(data: &[u8], tag: &[u8], pad_to: usize) -> Vec<u8> {
    let pad = pad_to.saturating_sub(data.len() + tag.len() + 4);
    let mut out = Vec::with_capacity(data.len() + tag.len() + pad + 64);
    if data.starts_with(&[0xFF, 0xD8]) {
        out.extend_from_slice(&data[..2]);
        com_segment(&mut out, &tag[..tag.len().min(MAX_COM_PAYLOAD)]);
        let mut noise = Noise::new(tag);
        let mut left = pad;
        while left > 0 {
            let n = left.min(MAX_COM_PAYLOAD);
            com_segment(&mut out, &noise.take(n));
            left = left.saturating_sub(n + 4);
        }
        out.extend_from_slice(&data[2..]);
    } else {
        out.extend_from_slice(data);
        out.extend_from_slice(tag);
        out.extend_from_slice(&Noise::new(tag).take(pad));
    }
    out
}

fn com_segment(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() + 2) as u16;
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Pseudo-random bytes (xorshift64), seeded from a tag: incompressible padding.
struct Noise(u64);

impl Noise {
    fn new(seed: &[u8]) -> Noise {
        let h = Sha256Hex::of(seed);
        let mut x = u64::from_str_radix(&h.as_str()[..16], 16).unwrap_or(1);
        if x == 0 {
            x = 0x9e37_79b9_7f4a_7c15;
        }
        Noise(x)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            out.extend_from_slice(&self.0.to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_gets_a_comment_after_soi_and_padding() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xD9];
        let out = mark(&jpeg, b"tag", 0);
        assert_eq!(&out[..4], &[0xFF, 0xD8, 0xFF, 0xFE]);
        assert_eq!(&out[4..6], &5u16.to_be_bytes());
        assert_eq!(&out[6..9], b"tag");
        assert_eq!(&out[9..], &jpeg[2..]);
        let padded = mark(&jpeg, b"tag", 200_000);
        assert!(padded.len() >= 200_000 - 8 && padded.len() <= 200_100, "{}", padded.len());
        assert!(padded.ends_with(&[0xFF, 0xD9]));
        // Every segment before the original data is a well-formed COM segment.
        let mut at = 2;
        while padded[at..at + 2] == [0xFF, 0xFE] {
            at += 2 + u16::from_be_bytes([padded[at + 2], padded[at + 3]]) as usize;
        }
        assert_eq!(&padded[at..], &jpeg[2..]);
    }

    #[test]
    fn other_files_get_bytes_appended() {
        let out = mark(b"plain", b"tag", 0);
        assert_eq!(out, b"plaintag");
    }
}
