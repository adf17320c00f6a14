//! File type detection by content. Exports mislabel files (`.jpg` that is a BMP, DICOM without
//! extension), so the extension is never trusted.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Number of leading bytes [`sniff`] needs to decide (DICOM preamble + "DICM").
pub const SNIFF_LEN: usize = 132;

/// What a file's bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// DICOM: Part 10 with preamble, or a bare data set.
    Dicom,
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// TIFF.
    Tiff,
    /// BMP.
    Bmp,
    /// Anything else.
    Other,
}

/// Classify `bytes` (the start of a file; [`SNIFF_LEN`] bytes are enough).
pub fn sniff(bytes: &[u8]) -> FileKind {
    // DICOM first: a Part 10 preamble may legally hold a TIFF header (dual-personality files),
    // and such a file must be handled as DICOM.
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        return FileKind::Dicom;
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return FileKind::Jpeg;
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return FileKind::Png;
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return FileKind::Tiff;
    }
    if bytes.len() >= 14 && bytes.starts_with(b"BM") && bmp_header_plausible(bytes) {
        return FileKind::Bmp;
    }
    if preambleless_dicom(bytes) {
        return FileKind::Dicom;
    }
    FileKind::Other
}

/// [`sniff`] on the first [`SNIFF_LEN`] bytes of a file (never reads more).
pub fn sniff_file(path: &Path) -> io::Result<FileKind> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    File::open(path)?.take(SNIFF_LEN as u64).read_to_end(&mut head)?;
    Ok(sniff(&head))
}

fn bmp_header_plausible(b: &[u8]) -> bool {
    // "BM" alone is too weak (any text starting with "BM"): the reserved words are zero and
    // the pixel offset points past the 14-byte file header.
    let reserved = u32::from_le_bytes([b[6], b[7], b[8], b[9]]);
    let offset = u32::from_le_bytes([b[10], b[11], b[12], b[13]]);
    reserved == 0 && offset >= 26
}

/// Explicit VRs of DICOM PS3.5; used to tell a real tag from random bytes.
const VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
];

/// Some devices write datasets without the 128-byte preamble: accept a stream that starts
/// with a little-endian tag of group 0x0002 (file meta) or 0x0008 (identification), followed
/// by either an explicit VR or a sane implicit-VR length.
fn preambleless_dicom(b: &[u8]) -> bool {
    if b.len() < 8 {
        return false;
    }
    let group = u16::from_le_bytes([b[0], b[1]]);
    let element = u16::from_le_bytes([b[2], b[3]]);
    if group != 0x0002 && group != 0x0008 {
        return false;
    }
    // Leading elements of these groups are all low-numbered.
    if element > 0x0200 {
        return false;
    }
    let vr = [b[4], b[5]];
    if VRS.iter().any(|v| **v == vr) {
        return true;
    }
    if group == 0x0002 {
        // File meta is always explicit VR.
        return false;
    }
    let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    (len.is_multiple_of(2) && len <= 0x1_0000) || len == u32::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part10() -> Vec<u8> {
        let mut v = vec![0u8; 128];
        v.extend_from_slice(b"DICM");
        v.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        v
    }

    #[test]
    fn dicom_with_preamble() {
        assert_eq!(sniff(&part10()), FileKind::Dicom);
    }

    #[test]
    fn dicom_preamble_holding_tiff_header_is_dicom() {
        let mut v = part10();
        v[..4].copy_from_slice(b"II*\0");
        assert_eq!(sniff(&v), FileKind::Dicom);
    }

    #[test]
    fn dicom_without_preamble() {
        // (0002,0000) UL 4
        assert_eq!(sniff(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0, 0, 0, 0, 0]), FileKind::Dicom);
        // implicit VR: (0008,0005) length 10
        assert_eq!(
            sniff(&[0x08, 0x00, 0x05, 0x00, 10, 0, 0, 0, b'I', b'S', b'O']),
            FileKind::Dicom
        );
        // explicit VR: (0008,0016) UI
        assert_eq!(sniff(&[0x08, 0x00, 0x16, 0x00, b'U', b'I', 26, 0]), FileKind::Dicom);
    }

    #[test]
    fn not_dicom() {
        // group 0x0002 with no VR, group 0x0010, odd implicit length, too short
        assert_eq!(sniff(&[0x02, 0x00, 0x00, 0x00, 4, 0, 0, 0]), FileKind::Other);
        assert_eq!(sniff(&[0x10, 0x00, 0x10, 0x00, b'P', b'N', 4, 0]), FileKind::Other);
        assert_eq!(sniff(&[0x08, 0x00, 0x05, 0x00, 11, 0, 0, 0]), FileKind::Other);
        assert_eq!(sniff(&[0x08, 0x00]), FileKind::Other);
        assert_eq!(sniff(b""), FileKind::Other);
        assert_eq!(sniff("検査ID,患者ID\r\n".as_bytes()), FileKind::Other);
        // "DICM" at the wrong place
        let mut v = vec![0u8; 127];
        v.extend_from_slice(b"DICM");
        assert_eq!(sniff(&v), FileKind::Other);
    }

    #[test]
    fn image_magics() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16]), FileKind::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), FileKind::Png);
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), FileKind::Tiff);
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), FileKind::Tiff);
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&1000u32.to_le_bytes());
        bmp.extend_from_slice(&0u32.to_le_bytes());
        bmp.extend_from_slice(&54u32.to_le_bytes());
        assert_eq!(sniff(&bmp), FileKind::Bmp);
        assert_eq!(sniff(b"BMW motor works are good"), FileKind::Other);
    }

    #[test]
    fn real_encoded_images() {
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 30, 30]));
        for (fmt, kind) in [
            (image::ImageFormat::Jpeg, FileKind::Jpeg),
            (image::ImageFormat::Png, FileKind::Png),
            (image::ImageFormat::Tiff, FileKind::Tiff),
            (image::ImageFormat::Bmp, FileKind::Bmp),
        ] {
            let mut buf = std::io::Cursor::new(Vec::new());
            img.write_to(&mut buf, fmt).unwrap();
            assert_eq!(sniff(buf.get_ref()), kind, "{fmt:?}");
        }
    }

    #[test]
    fn sniff_file_reads_head_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        let mut v = part10();
        v.resize(v.len() + 10_000, 0xAB);
        std::fs::write(&p, &v).unwrap();
        assert_eq!(sniff_file(&p).unwrap(), FileKind::Dicom);
        let short = dir.path().join("short");
        std::fs::write(&short, [0xFF, 0xD8, 0xFF]).unwrap();
        assert_eq!(sniff_file(&short).unwrap(), FileKind::Jpeg);
        assert!(sniff_file(&dir.path().join("absent")).is_err());
    }
}
