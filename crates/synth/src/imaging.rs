//! Fake endoscope frames and the metadata segments that leak identifiers.

use super::rng::Rng;
use image::{Rgb, RgbImage};
use std::io::Cursor;

/// Shape of the endoscope's field of view in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fov {
    /// A round field.
    Circle,
    /// An octagonal field (corners cut).
    Octagon,
}

/// A dark frame with a reddish field of view (circle or octagon) on the right, mucosa-like
/// smooth texture, vignetting and a few specular highlights. No text: burned-in overlays are
/// out of scope for this generator.
pub fn render(rng: &mut Rng, width: u32, height: u32, fov: Fov) -> RgbImage {
    let (w, h) = (width.max(16) as f32, height.max(16) as f32);
    let r = 0.45 * h.min(w) * (0.95 + 0.05 * rng.unit() as f32);
    let cx = w - r - w * 0.03;
    let cy = h / 2.0 + (rng.unit() as f32 - 0.5) * 0.02 * h;
    let coarse = Noise::new(rng, width, height, 48);
    let fine = Noise::new(rng, width, height, 9);
    let hue = 0.85 + 0.15 * rng.unit() as f32;
    let highlights: Vec<(f32, f32, f32)> = (0..3)
        .map(|_| {
            let a = rng.unit() as f32 * std::f32::consts::TAU;
            let d = rng.unit() as f32 * 0.7 * r;
            (cx + a.cos() * d, cy + a.sin() * d, 3.0 + rng.unit() as f32 * 8.0)
        })
        .collect();

    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let (dx, dy) = (fx - cx, fy - cy);
        let inside = match fov {
            Fov::Circle => dx * dx + dy * dy <= r * r,
            Fov::Octagon => dx.abs() <= r && dy.abs() <= r && dx.abs() + dy.abs() <= 1.35 * r,
        };
        if !inside {
            // Processor borders are not perfectly black after JPEG; a little noise helps tests.
            let n = (fine.at(fx, fy) * 6.0) as u8;
            return Rgb([n, n, n]);
        }
        let t = 0.65 * coarse.at(fx, fy) + 0.35 * fine.at(fx, fy);
        let d2 = (dx * dx + dy * dy) / (r * r);
        let shade = (1.0 - 0.55 * d2).max(0.2);
        let mut px = [
            (120.0 + 120.0 * t) * shade * hue,
            (35.0 + 70.0 * t) * shade,
            (30.0 + 50.0 * t) * shade,
        ];
        for &(hx, hy, hr) in &highlights {
            let q = ((fx - hx).powi(2) + (fy - hy).powi(2)) / (hr * hr);
            if q < 1.0 {
                let k = 1.0 - q;
                for c in &mut px {
                    *c += (255.0 - *c) * k;
                }
            }
        }
        Rgb(px.map(|c| c.clamp(0.0, 255.0) as u8))
    })
}

/// Value noise on a `cell`-pixel grid, bilinearly interpolated, in [0, 1].
struct Noise {
    grid: Vec<f32>,
    cols: usize,
    cell: f32,
}

impl Noise {
    fn new(rng: &mut Rng, width: u32, height: u32, cell: u32) -> Self {
        let cols = (width / cell + 2) as usize;
        let rows = (height / cell + 2) as usize;
        let grid = (0..cols * rows).map(|_| rng.unit() as f32).collect();
        Noise { grid, cols, cell: cell as f32 }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let (gx, gy) = (x / self.cell, y / self.cell);
        let (ix, iy) = (gx as usize, gy as usize);
        let (tx, ty) = (gx - ix as f32, gy - iy as f32);
        let g = |c: usize, r: usize| self.grid[r * self.cols + c];
        let top = g(ix, iy) * (1.0 - tx) + g(ix + 1, iy) * tx;
        let bottom = g(ix, iy + 1) * (1.0 - tx) + g(ix + 1, iy + 1) * tx;
        top * (1.0 - ty) + bottom * ty
    }
}

/// Baseline JPEG at `quality` (1–100).
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img)?;
    Ok(out)
}

/// PNG.
pub fn encode_png(img: &RgbImage) -> image::ImageResult<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// Minimal little-endian TIFF-structured EXIF payload (for an APP1 segment) with IFD0 holding
/// ImageDescription (0x010E) and Artist (0x013B) as ASCII.
pub(crate) fn exif_payload(description: &str, artist: &str) -> Vec<u8> {
    // Tags must be ascending within an IFD.
    let entries: [(u16, &[u8]); 2] =
        [(0x010E, description.as_bytes()), (0x013B, artist.as_bytes())];
    let ifd_len = 2 + 12 * entries.len() + 4;
    let mut data_off = 8 + ifd_len;
    let mut ifd = Vec::new();
    let mut data = Vec::new();
    ifd.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, value) in entries {
        let mut v = value.to_vec();
        v.push(0); // ASCII count includes the NUL
        ifd.extend_from_slice(&tag.to_le_bytes());
        ifd.extend_from_slice(&2u16.to_le_bytes()); // type 2 = ASCII
        ifd.extend_from_slice(&(v.len() as u32).to_le_bytes());
        if v.len() <= 4 {
            v.resize(4, 0);
            ifd.extend_from_slice(&v);
        } else {
            ifd.extend_from_slice(&(data_off as u32).to_le_bytes());
            if v.len() % 2 == 1 {
                v.push(0); // keep offsets word-aligned
            }
            data_off += v.len();
            data.extend_from_slice(&v);
        }
    }
    ifd.extend_from_slice(&0u32.to_le_bytes()); // no IFD1
    let mut out = b"Exif\0\0II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&ifd);
    out.extend_from_slice(&data);
    out
}

/// Insert a marker segment right after SOI (and after a JFIF APP0 if present, which JFIF
/// requires to come first). Payload must fit a segment (≤ 65533 bytes).
pub(crate) fn jpeg_insert_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 65533, "segment too large");
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let mut at = 2;
    if jpeg.len() >= 6 && jpeg[2] == 0xFF && jpeg[3] == 0xE0 {
        at = 4 + u16::from_be_bytes([jpeg[4], jpeg[5]]) as usize;
    }
    let mut out = Vec::with_capacity(jpeg.len() + payload.len() + 4);
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// Insert a `tEXt` chunk before the first IDAT. `text` must be Latin-1; we only use ASCII.
pub(crate) fn png_insert_text(png: &[u8], keyword: &str, text: &str) -> Vec<u8> {
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        if &png[at + 4..at + 8] == b"IDAT" {
            break;
        }
        at += 12 + len;
    }
    let at = at.min(png.len());
    let mut body = b"tEXt".to_vec();
    body.extend_from_slice(keyword.as_bytes());
    body.push(0);
    body.extend_from_slice(text.as_bytes());
    let mut out = Vec::with_capacity(png.len() + body.len() + 8);
    out.extend_from_slice(&png[..at]);
    out.extend_from_slice(&((body.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out.extend_from_slice(&png[at..]);
    out
}

/// CRC-32 (ISO-HDLC) as PNG uses it; bitwise because it runs on a few bytes per file.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn segments_keep_images_decodable() {
        let mut rng = Rng::new(7);
        let img = render(&mut rng, 64, 48, Fov::Octagon);
        let jpeg = encode_jpeg(&img, 85).unwrap();
        let with = jpeg_insert_segment(&jpeg, 0xE1, &exif_payload("Patient: X", "X"));
        let with = jpeg_insert_segment(&with, 0xFE, b"Patient: X");
        assert!(with.windows(6).any(|w| w == b"Exif\0\0"));
        let d = image::load_from_memory(&with).unwrap();
        assert_eq!((d.width(), d.height()), (64, 48));

        let png = encode_png(&img).unwrap();
        let with = png_insert_text(&png, "Author", "X");
        let idat = with.windows(4).position(|w| w == b"IDAT").unwrap();
        let text = with.windows(4).position(|w| w == b"tEXt").unwrap();
        assert!(text < idat);
        // the png decoder verifies chunk CRCs
        image::load_from_memory(&with).unwrap();
    }

    #[test]
    fn exif_layout() {
        let p = exif_payload("abc", "LONGER NAME");
        let tiff = &p[6..];
        assert_eq!(&tiff[..4], b"II*\0");
        assert_eq!(u16::from_le_bytes([tiff[8], tiff[9]]), 2);
        // first entry: short value inline
        assert_eq!(&tiff[10..12], &0x010Eu16.to_le_bytes());
        assert_eq!(&tiff[18..22], b"abc\0");
        // second entry: offset to data area
        let off = u32::from_le_bytes([tiff[30], tiff[31], tiff[32], tiff[33]]) as usize;
        assert_eq!(&tiff[off..off + 12], b"LONGER NAME\0");
    }
}
