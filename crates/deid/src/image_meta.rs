//! Image metadata removal. Pixels are untouched where the format allows it:
//!
//! - JPEG: an allow list of markers. Copied: SOF0/1/2 (baseline, extended, progressive: the
//!   processes the decoders take), DQT, DHT, DRI and SOS, each only with exactly the length
//!   its tables and components need (no room for trailing bytes), RSTn, EOI; APP0 `JFIF` and
//!   APP14 `Adobe` (the decoder needs those for colour) rewritten to their fixed fields only;
//!   a JFIF thumbnail is removed that way (a thumbnail is a picture of the screen, burned-in
//!   text included). Every other marker segment is dropped, whatever it is: APPn (EXIF, XMP,
//!   ICC, IPTC, maker notes, JFXX), COM, JPGn, DHP, EXP, DNL, DAC and reserved ones. Other
//!   frame types (lossless, hierarchical, arithmetic) are refused. The entropy-coded data of
//!   every scan is copied byte for byte. Anything after EOI is dropped.
//! - PNG: only chunks needed to render are kept (IHDR PLTE IDAT IEND tRNS gAMA cHRM sRGB sBIT
//!   pHYs bKGD); text, time, EXIF and unknown ancillary chunks are dropped. CRCs are checked.
//! - TIFF and BMP: decoded and re-encoded as PNG (lossless): TIFF tags can hold anything and
//!   are too varied to filter safely.
//!
//! The format is decided by the signature ([`fgw_format::sniff`]), never by the file name. Errors say what is wrong
//! with the structure, never what the bytes contain.

use fgw_format::sniff::{sniff, FileKind};
use std::io::Cursor;

/// An image with its metadata stripped, ready for the pixel stage.
#[derive(Clone, PartialEq, Eq)]
pub struct CleanImage {
    /// The image file.
    pub bytes: Vec<u8>,
    /// `image/jpeg` or `image/png`.
    pub media_type: &'static str,
    /// File extension for the package path (`jpg`, `png`).
    pub ext: &'static str,
}

impl std::fmt::Debug for CleanImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CleanImage({}, {} bytes)", self.media_type, self.bytes.len())
    }
}

/// Why an image could not be stripped. Carries no image content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageMetaError {
    #[error("unsupported image format")]
    /// Not JPEG, PNG, TIFF or BMP (by signature).
    Unsupported,
    #[error("dicom object, not a plain image")]
    /// A DICOM object where an image was expected.
    Dicom,
    #[error("jpeg: {0}")]
    /// JPEG structure broken (what).
    Jpeg(&'static str),
    #[error("png: {0}")]
    /// PNG structure broken (what).
    Png(&'static str),
    #[error("{0}: cannot be decoded")]
    /// Could not be decoded (format).
    Decode(&'static str),
    #[error("{0}: cannot be re-encoded as png")]
    /// Could not be re-encoded as PNG (format).
    Encode(&'static str),
    /// Over [`MAX_PICTURE_PIXELS`].
    #[error("{width}x{height} picture is over the {MAX_PICTURE_PIXELS}-pixel limit")]
    TooLarge {
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
    },
    #[error("{0}: picture over the size limit")]
    /// The decoder's limits refused it (format).
    OverLimits(&'static str),
}

/// Largest picture the box decodes: 4096 x 4096 pixels (16.7 megapixels), at most
/// [`MAX_PICTURE_SIDE`] a side. Endoscopy frames are at most 4K UHD (8.3 megapixels); a header
/// that declares more is refused before decoding, so a small file cannot make the box
/// allocate and decode gigabytes (libFuzzer found a 1 KB JPEG declaring 65344 x 2048 that took
/// over 10 s in the `jpeg_mask` target).
pub const MAX_PICTURE_PIXELS: u64 = 4096 * 4096;
/// Longest side taken (a 8192 x 2048 strip is within [`MAX_PICTURE_PIXELS`]).
pub const MAX_PICTURE_SIDE: u32 = 8192;

/// Within [`MAX_PICTURE_PIXELS`] and [`MAX_PICTURE_SIDE`].
pub fn picture_size_ok(width: u32, height: u32) -> bool {
    width <= MAX_PICTURE_SIDE
        && height <= MAX_PICTURE_SIDE
        && u64::from(width) * u64::from(height) <= MAX_PICTURE_PIXELS
}

/// Decode a picture (format from `format`, else from the content) after checking the size its
/// header declares; the decoder's own allocations are capped too. `name` names the format in
/// errors.
pub fn decode_picture(
    bytes: &[u8],
    format: Option<image::ImageFormat>,
    name: &'static str,
) -> Result<image::DynamicImage, ImageMetaError> {
    use image::ImageDecoder;
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    match format {
        Some(f) => reader.set_format(f),
        None => reader = reader.with_guessed_format().map_err(|_| ImageMetaError::Decode(name))?,
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PICTURE_SIDE);
    limits.max_image_height = Some(MAX_PICTURE_SIDE);
    // The decoded picture at up to 16 bits per sample and 4 channels, plus its buffers.
    limits.max_alloc = Some(MAX_PICTURE_PIXELS * 8 * 2);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageMetaError::OverLimits(name),
        _ => ImageMetaError::Decode(name),
    })?;
    let (width, height) = decoder.dimensions();
    if !picture_size_ok(width, height) {
        return Err(ImageMetaError::TooLarge { width, height });
    }
    image::DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => ImageMetaError::OverLimits(name),
        _ => ImageMetaError::Decode(name),
    })
}

impl ImageMetaError {
    /// Short description for quarantine reasons (no values).
    pub fn what(&self) -> String {
        self.to_string()
    }
}

/// Strip metadata: JPEG and PNG lose their metadata segments and chunks, TIFF and BMP are
/// re-encoded as PNG, anything else (DICOM included) is refused.
pub fn strip(bytes: &[u8]) -> Result<CleanImage, ImageMetaError> {
    match sniff(bytes) {
        FileKind::Jpeg => {
            Ok(CleanImage { bytes: strip_jpeg(bytes)?, media_type: "image/jpeg", ext: "jpg" })
        }
        FileKind::Png => {
            Ok(CleanImage { bytes: strip_png(bytes)?, media_type: "image/png", ext: "png" })
        }
        FileKind::Tiff => reencode(bytes, image::ImageFormat::Tiff, "tiff"),
        FileKind::Bmp => reencode(bytes, image::ImageFormat::Bmp, "bmp"),
        // A DICOM file may carry a TIFF header in its preamble; it is never an image here.
        FileKind::Dicom => Err(ImageMetaError::Dicom),
        FileKind::Other => Err(ImageMetaError::Unsupported),
    }
}

fn reencode(
    bytes: &[u8],
    format: image::ImageFormat,
    name: &'static str,
) -> Result<CleanImage, ImageMetaError> {
    let img = decode_picture(bytes, Some(format), name)?;
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).map_err(|_| ImageMetaError::Encode(name))?;
    Ok(CleanImage { bytes: out.into_inner(), media_type: "image/png", ext: "png" })
}

fn strip_jpeg(b: &[u8]) -> Result<Vec<u8>, ImageMetaError> {
    use ImageMetaError::Jpeg as E;
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]); // SOI
    let mut pos = 2;
    let mut scans = 0;
    loop {
        if pos >= b.len() {
            return Err(E("no end-of-image marker"));
        }
        if b[pos] != 0xFF {
            return Err(E("expected a marker"));
        }
        // Fill bytes (0xFF) may precede a marker.
        while pos + 1 < b.len() && b[pos + 1] == 0xFF {
            pos += 1;
        }
        let Some(&m) = b.get(pos + 1) else {
            return Err(E("truncated marker"));
        };
        match m {
            0xD9 => {
                if scans == 0 {
                    return Err(E("no scan before end-of-image"));
                }
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Ok(out);
            }
            // RSTn: no payload.
            0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, m]);
                pos += 2;
                continue;
            }
            // TEM: no payload, no meaning to a decoder.
            0x01 => {
                pos += 2;
                continue;
            }
            0x00 | 0xD8 => return Err(E("unexpected marker")),
            _ => {}
        }
        let len = b
            .get(pos + 2..pos + 4)
            .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
            .ok_or(E("truncated segment length"))?;
        if len < 2 {
            return Err(E("segment length too small"));
        }
        let end = pos + 2 + len;
        let seg = b.get(pos..end).ok_or(E("truncated segment"))?;
        let payload = &seg[4..];
        match m {
            0xE0 if payload.starts_with(b"JFIF\0") => {
                out.extend_from_slice(&jfif_without_thumbnail(seg)?)
            }
            0xEE if payload.starts_with(b"Adobe") => out.extend_from_slice(&adobe_fields(seg)?),
            // Frame headers of the processes the decoders take.
            0xC0..=0xC2 => {
                let n = payload.get(5).ok_or(E("frame header too short"))?;
                exact(payload, 6 + 3 * usize::from(*n), "frame header length does not match")?;
                out.extend_from_slice(seg);
            }
            // Lossless, hierarchical (differential) and arithmetic-coded frames.
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(E("frame type not supported (lossless, hierarchical or arithmetic)"))
            }
            0xC4 => {
                exact(payload, huffman_tables_len(payload), "huffman table length does not match")?;
                out.extend_from_slice(seg);
            }
            0xDB => {
                exact(
                    payload,
                    quantization_tables_len(payload),
                    "quantization table length does not match",
                )?;
                out.extend_from_slice(seg);
            }
            0xDD => {
                exact(payload, 2, "restart interval length does not match")?;
                out.extend_from_slice(seg);
            }
            0xDA => {
                let n = payload.first().ok_or(E("scan header too short"))?;
                exact(payload, 4 + 2 * usize::from(*n), "scan header length does not match")?;
                out.extend_from_slice(seg);
                scans += 1;
                pos = copy_entropy(b, end, &mut out)?;
                continue;
            }
            // Not on the allow list: other APPn, COM, JPGn (F0-FD), DHP, EXP, DNL, DAC, JPG
            // and reserved markers. Dropped with their payload, which can hold anything.
            _ => {}
        }
        pos = end;
    }
}

/// Copy entropy-coded data from `pos` up to the next real marker; returns its position.
/// Inside a scan, 0xFF00 is a stuffed 0xFF and RSTn markers belong to the scan.
fn copy_entropy(b: &[u8], mut pos: usize, out: &mut Vec<u8>) -> Result<usize, ImageMetaError> {
    let start = pos;
    loop {
        let Some(off) = b[pos..].iter().position(|&x| x == 0xFF) else {
            return Err(ImageMetaError::Jpeg("scan data runs past the end"));
        };
        let ff = pos + off;
        match b.get(ff + 1) {
            None => return Err(ImageMetaError::Jpeg("scan data runs past the end")),
            Some(0x00) | Some(0xD0..=0xD7) => pos = ff + 2,
            Some(0xFF) => pos = ff + 1, // fill byte; look at the next one
            Some(_) => {
                out.extend_from_slice(&b[start..ff]);
                return Ok(ff);
            }
        }
    }
}

/// A table or header segment's payload must be exactly as long as its content: bytes past
/// it would be copied unread.
fn exact(payload: &[u8], needed: usize, mismatch: &'static str) -> Result<(), ImageMetaError> {
    if payload.len() == needed {
        Ok(())
    } else {
        Err(ImageMetaError::Jpeg(mismatch))
    }
}

/// The length DHT tables take from the start of `p` (each: class/id, 16 counts, the
/// symbols); `usize::MAX` if they run past the end.
fn huffman_tables_len(p: &[u8]) -> usize {
    let mut at = 0;
    while at < p.len() {
        let Some(counts) = p.get(at + 1..at + 17) else { return usize::MAX };
        at += 17 + counts.iter().map(|&c| usize::from(c)).sum::<usize>();
    }
    if at == p.len() {
        at
    } else {
        usize::MAX
    }
}

/// The length DQT tables take (each: precision/id, then 64 bytes or 64 16-bit values).
fn quantization_tables_len(p: &[u8]) -> usize {
    let mut at = 0;
    while at < p.len() {
        at += 1 + if p[at] >> 4 == 0 { 64 } else { 128 };
    }
    if at == p.len() {
        at
    } else {
        usize::MAX
    }
}

/// APP0 JFIF: keep version, units and density; drop any thumbnail and whatever else the
/// segment carried past those fields.
fn jfif_without_thumbnail(seg: &[u8]) -> Result<Vec<u8>, ImageMetaError> {
    // FF E0 len(2) "JFIF\0"(5) version(2) units(1) xdens(2) ydens(2) xthumb(1) ythumb(1)
    if seg.len() < 18 {
        return Err(ImageMetaError::Jpeg("JFIF segment too short"));
    }
    let mut s = seg[..18].to_vec();
    s[2] = 0;
    s[3] = 16;
    s[16] = 0;
    s[17] = 0;
    Ok(s)
}

/// APP14 Adobe: its fixed fields only (version, two flag words, colour transform).
fn adobe_fields(seg: &[u8]) -> Result<Vec<u8>, ImageMetaError> {
    // FF EE len(2) "Adobe"(5) version(2) flags0(2) flags1(2) transform(1)
    if seg.len() < 16 {
        return Err(ImageMetaError::Jpeg("Adobe segment too short"));
    }
    let mut s = seg[..16].to_vec();
    s[2] = 0;
    s[3] = 14;
    Ok(s)
}

const PNG_SIG: &[u8] = b"\x89PNG\r\n\x1a\n";

const PNG_KEEP: [&[u8; 4]; 11] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs",
    b"bKGD",
];

fn strip_png(b: &[u8]) -> Result<Vec<u8>, ImageMetaError> {
    use ImageMetaError::Png as E;
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(PNG_SIG);
    let mut pos = PNG_SIG.len();
    let mut first = true;
    loop {
        let head = b.get(pos..pos + 8).ok_or(E("truncated chunk header (no IEND)"))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let ty: [u8; 4] = [head[4], head[5], head[6], head[7]];
        if !ty.iter().all(u8::is_ascii_alphabetic) {
            return Err(E("invalid chunk type"));
        }
        let end = pos.checked_add(12 + len).ok_or(E("chunk length overflow"))?;
        let chunk = b.get(pos..end).ok_or(E("truncated chunk"))?;
        let crc =
            u32::from_be_bytes([chunk[8 + len], chunk[9 + len], chunk[10 + len], chunk[11 + len]]);
        if crc32(&chunk[4..8 + len]) != crc {
            return Err(E("chunk CRC mismatch"));
        }
        if first && &ty != b"IHDR" {
            return Err(E("first chunk is not IHDR"));
        }
        first = false;
        if PNG_KEEP.contains(&&ty) {
            out.extend_from_slice(chunk);
        } else if ty[0].is_ascii_uppercase() {
            // A critical chunk we do not know cannot be dropped without breaking the image.
            return Err(E("unknown critical chunk"));
        }
        pos = end;
        if &ty == b"IEND" {
            return Ok(out);
        }
    }
}

/// CRC-32 (ISO 3309) as PNG uses it.
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &byte in data {
        c ^= byte as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    c ^ 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageEncoder, Luma, Rgb, RgbImage};

    fn picture() -> RgbImage {
        RgbImage::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]))
    }

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    fn jpeg_with_metadata() -> (Vec<u8>, Vec<u8>) {
        let mut plain = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90)
            .write_image(picture().as_raw(), 64, 48, image::ExtendedColorType::Rgb8)
            .unwrap();
        let mut dirty = plain[..2].to_vec();
        dirty.extend(segment(0xE1, b"Exif\0\0PLANTED-EXIF-YAMADA"));
        dirty.extend(segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x>PLANTED-XMP-TARO</x>"));
        dirty.extend(segment(0xFE, b"PLANTED-COM-123456"));
        dirty.extend(segment(0xED, b"Photoshop 3.0\0PLANTED-IPTC"));
        dirty.extend_from_slice(&plain[2..]);
        (plain, dirty)
    }

    fn scan_bytes(j: &[u8]) -> &[u8] {
        let sos = j.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        &j[sos..]
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn jpeg_metadata_removed_pixels_identical() {
        let (plain, dirty) = jpeg_with_metadata();
        let clean = strip(&dirty).unwrap();
        assert_eq!(clean.media_type, "image/jpeg");
        for m in ["PLANTED", "Exif", "http://ns.adobe.com", "Photoshop"] {
            assert!(!contains(&clean.bytes, m.as_bytes()), "{m}");
        }
        assert_eq!(scan_bytes(&clean.bytes), scan_bytes(&dirty));
        let a = image::load_from_memory(&dirty).unwrap().to_rgb8();
        let b = image::load_from_memory(&clean.bytes).unwrap().to_rgb8();
        assert_eq!(a, b);
        // Nothing but the dropped segments changed.
        assert_eq!(strip(&plain).unwrap().bytes, clean.bytes);
    }

    /// Markers the strip did not know were copied with their payload (issue 10, finding 7):
    /// JPGn, DHP, EXP, DNL, DAC, reserved ones, and bytes past the fixed fields of APP0 JFIF
    /// and APP14 Adobe. Now only the allow list passes; the planted text is gone and the
    /// picture decodes the same.
    #[test]
    fn unknown_markers_and_padding_are_dropped_with_their_text() {
        let (plain, _) = jpeg_with_metadata();
        let mut dirty = plain[..2].to_vec();
        for (marker, what) in [
            (0xF0u8, "JPG0"),
            (0xF7, "JPG7"),
            (0xFD, "JPG13"),
            (0xDE, "DHP"),
            (0xDF, "EXP"),
            (0xDC, "DNL"),
            (0xCC, "DAC"),
            (0xC8, "JPG"),
            (0x02, "RES"),
            (0xBF, "RES"),
        ] {
            dirty.extend(segment(marker, format!("PLANTED-{what}-YAMADA TARO").as_bytes()));
        }
        dirty.extend_from_slice(&[0xFF, 0x01]); // TEM
        dirty.extend_from_slice(&plain[2..]);
        let clean = strip(&dirty).unwrap();
        assert!(!contains(&clean.bytes, b"PLANTED"));
        assert!(!contains(&clean.bytes, b"YAMADA"));
        assert_eq!(clean.bytes, strip(&plain).unwrap().bytes, "only those segments went");
        let a = image::load_from_memory(&plain).unwrap().to_rgb8();
        let b = image::load_from_memory(&clean.bytes).unwrap().to_rgb8();
        assert_eq!(a, b);

        // Text after the fixed fields of JFIF (no thumbnail) and Adobe.
        let mut padded = plain[..2].to_vec();
        padded.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0PLANTED-JFIF"));
        padded.extend(segment(0xEE, b"Adobe\0\x64\0\0\0\0\x01PLANTED-ADOBE"));
        let app0 = plain.windows(2).position(|w| w == [0xFF, 0xE0]).unwrap();
        let app0_len = u16::from_be_bytes([plain[app0 + 2], plain[app0 + 3]]) as usize;
        padded.extend_from_slice(&plain[app0 + 2 + app0_len..]);
        let clean = strip(&padded).unwrap();
        assert!(!contains(&clean.bytes, b"PLANTED"));
        assert!(contains(&clean.bytes, b"\xFF\xE0\x00\x10JFIF\0"));
        assert!(contains(&clean.bytes, b"\xFF\xEE\x00\x0EAdobe\0\x64"));
        let b = image::load_from_memory(&clean.bytes).unwrap().to_rgb8();
        assert_eq!(a, b);
    }

    /// Tables and headers carry exactly what their counts say; frames of processes the
    /// decoders do not take are refused, not passed on.
    #[test]
    fn allowed_segments_have_exact_lengths_and_supported_frames() {
        let (plain, _) = jpeg_with_metadata();
        let at = |m: u8| plain.windows(2).position(|w| w == [0xFF, m]).unwrap();
        for (marker, msg) in [
            (0xDB, "jpeg: quantization table length does not match"),
            (0xC4, "jpeg: huffman table length does not match"),
            (0xC0, "jpeg: frame header length does not match"),
        ] {
            // Text appended inside the segment (its length grown to cover it).
            let i = at(marker);
            let len = u16::from_be_bytes([plain[i + 2], plain[i + 3]]) as usize;
            let mut bad = plain[..i + 2 + len].to_vec();
            bad.extend_from_slice(b"PLANTED");
            bad[i + 2..i + 4].copy_from_slice(&((len + 7) as u16).to_be_bytes());
            bad.extend_from_slice(&plain[i + 2 + len..]);
            assert_eq!(strip(&bad).unwrap_err().to_string(), msg);
        }
        for sof in [0xC3u8, 0xC5, 0xC9, 0xCF] {
            let mut other = plain.clone();
            other[at(0xC0) + 1] = sof;
            let e = strip(&other).unwrap_err().to_string();
            assert!(e.contains("frame type not supported"), "{sof:#x}: {e}");
        }
        // Extended sequential and progressive frames pass.
        for sof in [0xC1u8, 0xC2] {
            let mut ok = plain.clone();
            ok[at(0xC0) + 1] = sof;
            assert!(strip(&ok).is_ok(), "{sof:#x}");
        }
    }

    #[test]
    fn jpeg_multiple_scans_stuffing_and_restarts() {
        let mut j = vec![0xFF, 0xD8];
        j.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\x02\x01AAAAAA"));
        j.extend(segment(0xDB, &[0u8; 65]));
        j.extend(segment(0xC2, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
        let scan1: &[u8] =
            &[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56];
        let scan2: &[u8] = &[0xFF, 0xDA, 0, 8, 1, 1, 0, 1, 63, 0x10, 0xFF, 0xFF, 0x00, 0x78];
        j.extend_from_slice(scan1);
        j.extend(segment(0xFE, b"between scans"));
        j.extend(segment(0xC4, &[0u8; 17]));
        j.extend_from_slice(scan2);
        j.extend_from_slice(&[0xFF, 0xD9, b'T', b'A', b'I', b'L']);
        let out = strip(&j).unwrap().bytes;
        assert!(contains(&out, scan1));
        assert!(contains(&out, scan2));
        assert!(!contains(&out, b"between scans"));
        assert!(!contains(&out, b"AAAAAA"), "JFIF thumbnail removed");
        assert!(out.ends_with(&[0xFF, 0xD9]), "trailing bytes after EOI dropped");
        let mut expected = vec![0xFF, 0xD8];
        expected.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        expected.extend(segment(0xDB, &[0u8; 65]));
        expected.extend(segment(0xC2, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
        expected.extend_from_slice(scan1);
        expected.extend(segment(0xC4, &[0u8; 17]));
        expected.extend_from_slice(scan2);
        expected.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(out, expected);
    }

    #[test]
    fn jpeg_malformed() {
        let (_, dirty) = jpeg_with_metadata();
        assert!(matches!(strip(&dirty[..dirty.len() - 2]), Err(ImageMetaError::Jpeg(_))));
        assert!(matches!(strip(&dirty[..40]), Err(ImageMetaError::Jpeg(_))));
        let e = strip(&[0xFF, 0xD8, 0xFF, 0xD9]).unwrap_err();
        assert_eq!(e.to_string(), "jpeg: no scan before end-of-image");
        assert_eq!(strip(b"GIF89a...."), Err(ImageMetaError::Unsupported));
    }

    #[test]
    fn dicom_is_not_an_image() {
        // Dual-personality file: TIFF header in the DICOM preamble.
        let mut d = b"II*\0".to_vec();
        d.resize(128, 0);
        d.extend_from_slice(b"DICM\x02\0\x01\0OB");
        assert_eq!(strip(&d), Err(ImageMetaError::Dicom));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        // Corrupt files must give an error, not a panic.
        #[test]
        fn corrupted_inputs_never_panic(cut in 0usize..2000, flip in 0usize..2000, bit in 0u8..8) {
            let (_, dirty) = jpeg_with_metadata();
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(picture().as_raw(), 64, 48, image::ExtendedColorType::Rgb8)
                .unwrap();
            for mut b in [dirty, png] {
                let i = flip % b.len();
                b[i] ^= 1 << bit;
                b.truncate(cut.max(3));
                let _ = strip(&b);
            }
        }
    }

    fn chunk(ty: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(ty);
        c.extend_from_slice(data);
        let crc = crc32(&c[4..]);
        c.extend_from_slice(&crc.to_be_bytes());
        c
    }

    #[test]
    fn png_text_chunks_removed() {
        let mut plain = Vec::new();
        image::codecs::png::PngEncoder::new(&mut plain)
            .write_image(picture().as_raw(), 64, 48, image::ExtendedColorType::Rgb8)
            .unwrap();
        let ihdr_end = 8 + 8 + 13 + 4;
        let mut dirty = plain[..ihdr_end].to_vec();
        dirty.extend(chunk(b"tEXt", b"Comment\0PLANTED-TEXT"));
        dirty.extend(chunk(b"iTXt", b"Author\0\0\0ja\0\0PLANTED-ITXT"));
        dirty.extend(chunk(b"zTXt", b"Title\0\0PLANTED-ZTXT"));
        dirty.extend(chunk(b"tIME", &[7, 234, 11, 25, 9, 15, 0]));
        dirty.extend(chunk(b"eXIf", b"MM\0*PLANTED-EXIF"));
        dirty.extend(chunk(b"pHYs", &[0, 0, 11, 19, 0, 0, 11, 19, 1]));
        dirty.extend_from_slice(&plain[ihdr_end..]);
        let clean = strip(&dirty).unwrap();
        assert_eq!(clean.media_type, "image/png");
        for m in ["PLANTED", "tEXt", "iTXt", "zTXt", "tIME", "eXIf"] {
            assert!(!contains(&clean.bytes, m.as_bytes()), "{m}");
        }
        assert!(contains(&clean.bytes, b"pHYs"));
        let a = image::load_from_memory(&dirty).unwrap();
        let b = image::load_from_memory(&clean.bytes).unwrap();
        assert_eq!(a.to_rgb8(), b.to_rgb8());

        let mut bad = dirty.clone();
        bad[ihdr_end + 10] ^= 1;
        assert_eq!(strip(&bad), Err(ImageMetaError::Png("chunk CRC mismatch")));
        assert!(strip(&dirty[..dirty.len() - 12]).is_err(), "missing IEND");
    }

    /// An 8-bit grayscale TIFF written by hand so it can carry an ImageDescription tag.
    fn tiff_with_description(desc: &[u8], pixels: &GrayImage) -> Vec<u8> {
        let (w, h) = pixels.dimensions();
        let mut desc = desc.to_vec();
        desc.push(0);
        let entries: u16 = 9;
        let ifd_off = 8u32;
        let ifd_len = 2 + 12 * entries as u32 + 4;
        let desc_off = ifd_off + ifd_len;
        let data_off = desc_off + desc.len() as u32;
        let mut t = b"II*\0".to_vec();
        t.extend_from_slice(&ifd_off.to_le_bytes());
        t.extend_from_slice(&entries.to_le_bytes());
        let mut entry = |tag: u16, ty: u16, count: u32, value: u32| {
            t.extend_from_slice(&tag.to_le_bytes());
            t.extend_from_slice(&ty.to_le_bytes());
            t.extend_from_slice(&count.to_le_bytes());
            t.extend_from_slice(&value.to_le_bytes());
        };
        entry(256, 4, 1, w); // ImageWidth
        entry(257, 4, 1, h); // ImageLength
        entry(258, 3, 1, 8); // BitsPerSample
        entry(259, 3, 1, 1); // Compression: none
        entry(262, 3, 1, 1); // Photometric: BlackIsZero
        entry(270, 2, desc.len() as u32, desc_off); // ImageDescription
        entry(273, 4, 1, data_off); // StripOffsets
        entry(278, 4, 1, h); // RowsPerStrip
        entry(279, 4, 1, w * h); // StripByteCounts
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&desc);
        t.extend_from_slice(pixels.as_raw());
        t
    }

    #[test]
    fn tiff_becomes_png_without_tags() {
        let px = GrayImage::from_fn(16, 8, |x, y| Luma([(x * 16 + y) as u8]));
        let tiff = tiff_with_description(b"PLANTED-DESC Yamada Taro 00123456", &px);
        let original = image::load_from_memory(&tiff).unwrap().to_luma8();
        assert_eq!(original, px);
        let clean = strip(&tiff).unwrap();
        assert_eq!((clean.media_type, clean.ext), ("image/png", "png"));
        assert!(!contains(&clean.bytes, b"PLANTED"));
        assert!(!contains(&clean.bytes, b"Yamada"));
        assert_eq!(image::load_from_memory(&clean.bytes).unwrap().to_luma8(), px);
        assert_eq!(strip(&tiff[..60]), Err(ImageMetaError::Decode("tiff")));
    }

    #[test]
    fn bmp_becomes_png() {
        let mut bmp = Vec::new();
        image::DynamicImage::ImageRgb8(picture())
            .write_to(&mut Cursor::new(&mut bmp), image::ImageFormat::Bmp)
            .unwrap();
        let clean = strip(&bmp).unwrap();
        assert_eq!(clean.ext, "png");
        assert_eq!(image::load_from_memory(&clean.bytes).unwrap().to_rgb8(), picture());
    }
}
