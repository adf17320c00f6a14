//! Masking a baseline JPEG in the DCT domain: every MCU the mask touches becomes black
//! (luma DC at black level, chroma neutral, all AC zero); every other block keeps its
//! quantized coefficients bit for bit, so the kept picture loses nothing to a re-encode.
//!
//! Coefficients are read and written with `dct-io` (Huffman decode/encode of the scan with
//! the file's own tables, every other segment copied verbatim). This module adds what it
//! needs on top: the frame geometry, the quantization table of luma (for the black level)
//! and the checks that the file is one interleaved 8-bit YCbCr or grayscale scan. Anything
//! else is [`JpegBlockError::Unsupported`] and the caller takes the lossless pixel path.

/// Why a JPEG cannot be masked in the DCT domain (the caller then takes the pixel path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegBlockError {
    #[error("jpeg not maskable in the DCT domain: {0}")]
    /// A JPEG this module does not take (what).
    Unsupported(&'static str),
    #[error("jpeg structure: {0}")]
    /// Broken marker structure (what).
    Structure(&'static str),
    #[error("jpeg coefficients: {0}")]
    /// The scan could not be decoded or encoded (`dct-io`).
    Coefficients(String),
}

/// Frame layout: MCU size in pixels and grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// MCU width in pixels.
    pub mcu_w: u32,
    /// MCU height in pixels.
    pub mcu_h: u32,
    /// MCUs per row.
    pub mcu_cols: u32,
    /// MCU rows.
    pub mcu_rows: u32,
    /// Per component: data units per MCU.
    pub du: Vec<usize>,
    /// DC quantizer of the first (luma) component.
    luma_q0: u16,
    /// DC quantizer of every component, in frame order.
    q0: Vec<u16>,
}

/// The frame geometry, if the file is one this module can mask.
pub fn geometry(jpeg: &[u8]) -> Result<Geometry, JpegBlockError> {
    use JpegBlockError::{Structure, Unsupported};
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(Structure("no SOI"));
    }
    let mut q0: [Option<u16>; 4] = [None; 4];
    // (width, height, per component (h, v, Tq)).
    type Frame = (u32, u32, Vec<(u8, u8, u8)>);
    let mut frame: Option<Frame> = None;
    let mut scans = 0;
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xFF {
            return Err(Structure("marker expected"));
        }
        let m = jpeg[i + 1];
        if m == 0xFF {
            i += 1;
            continue;
        }
        if m == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        let seg = jpeg.get(i + 4..i + 2 + len).ok_or(Structure("segment past the end"))?;
        if len < 2 {
            return Err(Structure("segment length"));
        }
        match m {
            0xC0 | 0xC1 => {
                if seg.len() < 6 || seg[0] != 8 {
                    return Err(Unsupported("not 8-bit"));
                }
                let h = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
                let w = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
                let n = usize::from(seg[5]);
                if seg.len() < 6 + 3 * n || w == 0 || h == 0 {
                    return Err(Structure("SOF"));
                }
                if !crate::image_meta::picture_size_ok(w, h) {
                    return Err(Unsupported("frame over the picture size limit"));
                }
                let comps = (0..n)
                    .map(|k| {
                        let c = &seg[6 + 3 * k..9 + 3 * k];
                        (c[1] >> 4, c[1] & 15, c[2])
                    })
                    .collect();
                frame = Some((w, h, comps));
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(Unsupported("not baseline or extended sequential huffman"));
            }
            0xDB => {
                let mut k = 0;
                while k < seg.len() {
                    let (pq, tq) = (seg[k] >> 4, usize::from(seg[k] & 3));
                    let n = if pq == 0 { 64 } else { 128 };
                    let t = seg.get(k + 1..k + 1 + n).ok_or(Structure("DQT"))?;
                    q0[tq] = Some(if pq == 0 {
                        u16::from(t[0])
                    } else {
                        u16::from_be_bytes([t[0], t[1]])
                    });
                    k += 1 + n;
                }
            }
            0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe") && seg[11] == 0 => {
                // Adobe transform 0: RGB or CMYK samples, where "black" is not luma 0.
                return Err(Unsupported("adobe non-ycc transform"));
            }
            0xDA => {
                scans += 1;
                // Skip the entropy-coded data to the next marker that is not RST or stuffing.
                let mut j = i + 2 + len;
                while j + 1 < jpeg.len() {
                    if jpeg[j] == 0xFF && jpeg[j + 1] != 0 && !(0xD0..=0xD7).contains(&jpeg[j + 1])
                    {
                        break;
                    }
                    j += 1;
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 2 + len;
    }
    let (width, height, comps) = frame.ok_or(Structure("no SOF"))?;
    if scans != 1 {
        return Err(Unsupported("more than one scan"));
    }
    if comps.len() != 1 && comps.len() != 3 {
        return Err(Unsupported("component count"));
    }
    if comps.iter().any(|c| c.0 == 0 || c.1 == 0 || c.0 > 4 || c.1 > 4) {
        return Err(Structure("sampling factors"));
    }
    if comps.len() == 1 && (comps[0].0 != 1 || comps[0].1 != 1) {
        // A lone component is coded non-interleaved, one block per MCU whatever it declares.
        return Err(Unsupported("grayscale with sampling factors"));
    }
    let hmax = comps.iter().map(|c| u32::from(c.0)).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| u32::from(c.1)).max().unwrap_or(1);
    let dc_q: Vec<u16> = comps
        .iter()
        .map(|c| q0[usize::from(c.2 & 3)].map(|q| q.max(1)).ok_or(Structure("missing DQT")))
        .collect::<Result<_, _>>()?;
    let luma_q0 = dc_q[0];
    let (mcu_w, mcu_h) = (8 * hmax, 8 * vmax);
    Ok(Geometry {
        width,
        height,
        mcu_w,
        mcu_h,
        mcu_cols: width.div_ceil(mcu_w),
        mcu_rows: height.div_ceil(mcu_h),
        du: comps.iter().map(|c| usize::from(c.0) * usize::from(c.1)).collect(),
        luma_q0,
        q0: dc_q,
    })
}

/// A JPEG's quantized coefficients, read once: the field of view is found from their DC
/// terms ([`Coefficients::brightness`]) and the mask applied to them, with one read and one
/// write of the entropy-coded data.
pub struct Coefficients<'a> {
    jpeg: &'a [u8],
    g: Geometry,
    c: dct_io::JpegCoefficients,
}

impl<'a> Coefficients<'a> {
    /// Decode the scan's coefficients (checked against the frame's geometry).
    pub fn read(jpeg: &'a [u8]) -> Result<Coefficients<'a>, JpegBlockError> {
        let g = geometry(jpeg)?;
        let c = read(jpeg)?;
        let n_mcu = (g.mcu_cols * g.mcu_rows) as usize;
        if c.components.len() != g.du.len()
            || c.components.iter().zip(&g.du).any(|(c, &du)| c.blocks.len() != n_mcu * du)
        {
            return Err(JpegBlockError::Unsupported("block layout"));
        }
        Ok(Coefficients { jpeg, g, c })
    }

    /// The frame geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.g
    }

    /// Mean brightest channel (0-255) of every MCU, from DC terms alone: a map of the frame
    /// at 1/8-1/16 scale without decoding it.
    pub fn brightness(&self) -> Vec<u8> {
        let g = &self.g;
        let n_mcu = (g.mcu_cols * g.mcu_rows) as usize;
        let mean = |ci: usize, m: usize| -> f32 {
            let du = g.du[ci];
            let blocks = &self.c.components[ci].blocks[m * du..(m + 1) * du];
            let dc: f32 = blocks.iter().map(|b| f32::from(b[0])).sum::<f32>() / du as f32;
            dc * f32::from(g.q0[ci]) / 8.0
        };
        (0..n_mcu)
            .map(|m| {
                let y = mean(0, m) + 128.0;
                if g.du.len() < 3 {
                    return y.clamp(0.0, 255.0) as u8;
                }
                let (cb, cr) = (mean(1, m), mean(2, m));
                let r = y + 1.402 * cr;
                let gg = y - 0.344_136 * cb - 0.714_136 * cr;
                let b = y + 1.772 * cb;
                r.max(gg).max(b).clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    /// Blackens every MCU for which `touched(col, row)` is true; returns how many.
    pub fn blacken(&mut self, touched: impl Fn(u32, u32) -> bool) -> usize {
        let g = &self.g;
        let n_mcu = (g.mcu_cols * g.mcu_rows) as usize;
        // Level-shifted black (-128) has a DCT DC of -1024; chroma's neutral is 0.
        let black_dc = -((1024.0 / f32::from(g.luma_q0)).round() as i16);
        let mut masked = 0;
        for m in 0..n_mcu {
            let (col, row) = ((m as u32) % g.mcu_cols, (m as u32) / g.mcu_cols);
            if !touched(col, row) {
                continue;
            }
            masked += 1;
            for (ci, comp) in self.c.components.iter_mut().enumerate() {
                let du = g.du[ci];
                for b in &mut comp.blocks[m * du..(m + 1) * du] {
                    *b = [0; 64];
                    if ci == 0 {
                        b[0] = black_dc;
                    }
                }
            }
        }
        masked
    }

    /// The file with the current coefficients (every other segment as it was).
    pub fn write(&self) -> Result<Vec<u8>, JpegBlockError> {
        contained(|| dct_io::write_coefficients(self.jpeg, &self.c))
    }
}

/// Blackens every MCU for which `touched(col, row)` is true. Returns the new file and the
/// number of MCUs blackened.
pub fn mask_mcus(
    jpeg: &[u8],
    g: &Geometry,
    touched: impl Fn(u32, u32) -> bool,
) -> Result<(Vec<u8>, usize), JpegBlockError> {
    let mut c = Coefficients::read(jpeg)?;
    if c.g != *g {
        return Err(JpegBlockError::Unsupported("geometry differs"));
    }
    let masked = c.blacken(touched);
    if masked == 0 {
        return Ok((jpeg.to_vec(), 0));
    }
    Ok((c.write()?, masked))
}

/// Quantized coefficients per MCU, for proving untouched blocks identical (tests, audits).
pub fn mcu_coefficients(jpeg: &[u8], g: &Geometry) -> Result<Vec<Vec<[i16; 64]>>, JpegBlockError> {
    let coeffs = read(jpeg)?;
    let n_mcu = (g.mcu_cols * g.mcu_rows) as usize;
    Ok((0..n_mcu)
        .map(|m| {
            coeffs
                .components
                .iter()
                .zip(&g.du)
                .flat_map(|(c, &du)| c.blocks[m * du..(m + 1) * du].iter().copied())
                .collect()
        })
        .collect())
}

fn read(jpeg: &[u8]) -> Result<dct_io::JpegCoefficients, JpegBlockError> {
    contained(|| dct_io::read_coefficients(jpeg))
}

/// Runs a dct-io call, turning a panic into an error: on some corrupt entropy streams (a
/// Huffman category above 11) its magnitude decoding overflows, which panics in builds with
/// overflow checks (found by tests/mutated_inputs.rs). A corrupt file must be refused, not
/// stop the pipeline.
fn contained<T>(
    f: impl FnOnce() -> Result<T, dct_io::DctError> + std::panic::UnwindSafe,
) -> Result<T, JpegBlockError> {
    match std::panic::catch_unwind(f) {
        Ok(r) => r.map_err(|e| JpegBlockError::Coefficients(e.to_string())),
        Err(_) => Err(JpegBlockError::Coefficients("corrupt entropy-coded data".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn sample() -> Vec<u8> {
        let img = RgbImage::from_fn(97, 61, |x, y| Rgb([(x * 2) as u8, (y * 3) as u8, 200]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn touched_mcus_go_black_and_the_rest_stays_identical() {
        let jpeg = sample();
        let g = geometry(&jpeg).unwrap();
        // image's encoder writes 4:4:4; 4:2:0 and 4:2:2 (cjpeg) are in tests/jpeg_dct_mask.rs.
        assert_eq!((g.mcu_w, g.mcu_h), (8, 8));
        let cols = g.mcu_cols as usize;
        assert_eq!((cols, g.mcu_rows), (13, 8));
        let (out, n) = mask_mcus(&jpeg, &g, |c, r| c == 0 && r < 2).unwrap();
        assert_eq!(n, 2);
        let (a, b) = (mcu_coefficients(&jpeg, &g).unwrap(), mcu_coefficients(&out, &g).unwrap());
        for m in 0..a.len() {
            if m % cols == 0 && m / cols < 2 {
                assert!(b[m].iter().all(|blk| blk[1..].iter().all(|&c| c == 0)));
            } else {
                assert_eq!(a[m], b[m], "mcu {m}");
            }
        }
        let dec = image::load_from_memory(&out).unwrap().to_rgb8();
        let p = dec.get_pixel(3, 3);
        assert!(p.0.iter().all(|&c| c < 8), "masked pixel {p:?}");
    }

    #[test]
    fn dc_terms_give_the_brightness_of_each_mcu() {
        // Left half white, right half dark red: the brightest channel is 255 then ~120.
        let img =
            RgbImage::from_fn(
                64,
                32,
                |x, _| if x < 32 { Rgb([255; 3]) } else { Rgb([120, 10, 10]) },
            );
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        let c = Coefficients::read(&jpeg).unwrap();
        let b = c.brightness();
        let cols = c.geometry().mcu_cols as usize;
        assert!(b[0] > 245 && b[cols - 1] > 105 && b[cols - 1] < 135, "{b:?}");
    }

    #[test]
    fn progressive_is_unsupported() {
        let mut jpeg = sample();
        let at = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[at + 1] = 0xC2;
        assert_eq!(
            geometry(&jpeg),
            Err(JpegBlockError::Unsupported("not baseline or extended sequential huffman"))
        );
    }
}
