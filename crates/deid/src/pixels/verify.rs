//! The release check: reads the frame that would leave, decoded from its bytes, and looks
//! for this exam's identifiers and for identifier-shaped strings. It does not trust the
//! detector: besides today's top-hat reading of the whole frame, it finds text candidates
//! with another preprocessing (a local-mean threshold, both polarities, plus the red channel
//! for hue-differing text), binarises each candidate on its own (Otsu), and reads the
//! candidates stacked on one sheet at two scales and two page-segmentation modes.

use super::find;
use super::layout::Rect;
use super::ocr::{OcrError, OcrPool, Psm, Word};
use super::regions;
use super::shapes::{self, Shape};
use super::tophat;
use crate::identifiers::{IdKind, IdentifierSet};

/// What the check found (kinds only, never the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finding {
    /// One of the exam's own identifiers, edits allowed.
    Identifier(IdKind),
    /// An identifier-shaped string.
    Shaped(Shape),
}

/// Half-size of the local-mean window.
const MEAN_R: usize = 12;
/// Distance from the local mean from which a pixel is ink.
const INK_CONTRAST: i32 = 36;
/// Margin around a candidate line on the sheet.
const CROP_MARGIN: u32 = 6;
/// Space between crops on the sheet.
const GAP: u32 = 16;

/// Checks a released frame. `Ok(None)`: nothing found, the frame may leave.
pub(crate) fn check(
    pool: &OcrPool,
    rgb: &image::RgbImage,
    ids: &IdentifierSet,
    max_text_height: u32,
) -> Result<Option<Finding>, OcrError> {
    let (w, h) = rgb.dimensions();
    // 1. As before: the white top-hat of the whole frame, sparse text.
    let layer = tophat::text_layer(rgb.as_raw(), w, h);
    let seen = pool.with(|e| e.words(&layer, w, h))??;
    if let Some(f) = search(&seen, ids) {
        return Ok(Some(f));
    }
    // 2. Candidates of another preprocessing, each polarity on its own sheet.
    let luma: Vec<u8> = rgb
        .as_raw()
        .chunks_exact(3)
        .map(|p| ((u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29) >> 8) as u8)
        .collect();
    let red: Vec<u8> = rgb.as_raw().chunks_exact(3).map(|p| p[0]).collect();
    let (wu, hu) = (w as usize, h as usize);
    let mean_l = box_mean(&luma, wu, hu, MEAN_R);
    let mean_r = box_mean(&red, wu, hu, MEAN_R);
    for dark in [true, false] {
        let ink: Vec<bool> = (0..luma.len())
            .map(|i| {
                let d = i32::from(luma[i]) - i32::from(mean_l[i]);
                let dr = i32::from(red[i]) - i32::from(mean_r[i]);
                if dark {
                    d <= -INK_CONTRAST || dr <= -INK_CONTRAST
                } else {
                    d >= INK_CONTRAST
                }
            })
            .collect();
        let comps = regions::components(&ink, w, h);
        let lines = regions::lines(&comps, max_text_height);
        if lines.is_empty() {
            continue;
        }
        let (sheet, sw, sh) = sheet(&luma, w, h, &lines, dark);
        let seen = pool.with(|e| e.words_as(&sheet, sw, sh, Psm::Block))??;
        if let Some(f) = search(&seen, ids) {
            return Ok(Some(f));
        }
        let (big, bw, bh) = upscale2(&sheet, sw, sh);
        let seen = pool.with(|e| e.words_as(&big, bw, bh, Psm::SparseText))??;
        if let Some(f) = search(&seen, ids) {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

fn search(words: &[Word], ids: &IdentifierSet) -> Option<Finding> {
    let all: String = words.iter().map(|wd| wd.text.as_str()).collect::<Vec<_>>().join(" ");
    if let Some(kind) = find::find_identifier(&all, ids) {
        return Some(Finding::Identifier(kind));
    }
    shapes::find_shape(&all).map(Finding::Shaped)
}

/// Mean over a (2r+1)^2 window, edges clamped (integral image).
fn box_mean(img: &[u8], w: usize, h: usize, r: usize) -> Vec<u8> {
    let mut ii = vec![0u32; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0u32;
        for x in 0..w {
            row += u32::from(img[y * w + x]);
            ii[(y + 1) * (w + 1) + x + 1] = ii[y * (w + 1) + x + 1] + row;
        }
    }
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let s = ii[y1 * (w + 1) + x1] + ii[y0 * (w + 1) + x0]
                - ii[y0 * (w + 1) + x1]
                - ii[y1 * (w + 1) + x0];
            out[y * w + x] = (s / ((x1 - x0) * (y1 - y0)) as u32) as u8;
        }
    }
    out
}

/// The candidate lines cut out of `luma`, each binarised on its own (Otsu; ink black), and
/// stacked on a white sheet.
fn sheet(luma: &[u8], w: u32, h: u32, lines: &[Rect], dark: bool) -> (Vec<u8>, u32, u32) {
    let crops: Vec<(u32, u32, u32, u32)> = lines
        .iter()
        .map(|r| {
            let (x0, y0) = (r.x.saturating_sub(CROP_MARGIN), r.y.saturating_sub(CROP_MARGIN));
            let x1 = (r.x + r.w + CROP_MARGIN).min(w);
            let y1 = (r.y + r.h + CROP_MARGIN).min(h);
            (x0, y0, x1 - x0, y1 - y0)
        })
        .collect();
    let sw = crops.iter().map(|c| c.2).max().unwrap_or(0) + 2 * GAP;
    let sh = crops.iter().map(|c| c.3 + GAP).sum::<u32>() + GAP;
    let mut out = vec![255u8; (sw * sh) as usize];
    let mut top = GAP;
    for &(x0, y0, cw, ch) in &crops {
        let px = |x: u32, y: u32| {
            let v = luma[((y0 + y) * w + x0 + x) as usize];
            if dark {
                v
            } else {
                255 - v
            }
        };
        let mut hist = [0u32; 256];
        for y in 0..ch {
            for x in 0..cw {
                hist[px(x, y) as usize] += 1;
            }
        }
        let t = otsu(&hist);
        for y in 0..ch {
            for x in 0..cw {
                if px(x, y) <= t {
                    out[((top + y) * sw + GAP + x) as usize] = 0;
                }
            }
        }
        top += ch + GAP;
    }
    (out, sw, sh)
}

/// A crop `(x, y, w, h)` of an RGB image, its luma binarised on its own (Otsu): ink black
/// on white (`dark`: ink darker than its ground, else lighter).
pub(crate) fn binarised_crop(
    rgb: &image::RgbImage,
    (x0, y0, cw, ch): (u32, u32, u32, u32),
    dark: bool,
) -> Vec<u8> {
    let luma: Vec<u8> = (y0..y0 + ch)
        .flat_map(|y| (x0..x0 + cw).map(move |x| (x, y)))
        .map(|(x, y)| {
            let p = rgb.get_pixel(x, y).0;
            let v =
                ((u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29) >> 8) as u8;
            if dark {
                v
            } else {
                255 - v
            }
        })
        .collect();
    let mut hist = [0u32; 256];
    for &v in &luma {
        hist[v as usize] += 1;
    }
    let t = otsu(&hist);
    luma.iter().map(|&v| if v <= t { 0 } else { 255 }).collect()
}

/// Otsu's threshold of a histogram: values `<= t` are one class.
fn otsu(hist: &[u32; 256]) -> u8 {
    let total: f64 = hist.iter().map(|&n| f64::from(n)).sum();
    let sum: f64 = hist.iter().enumerate().map(|(i, &n)| i as f64 * f64::from(n)).sum();
    let (mut wb, mut sb, mut best, mut t) = (0.0, 0.0, -1.0, 0u8);
    for (i, &n) in hist.iter().enumerate() {
        wb += f64::from(n);
        sb += i as f64 * f64::from(n);
        let wf = total - wb;
        if wb == 0.0 || wf == 0.0 {
            continue;
        }
        let (mb, mf) = (sb / wb, (sum - sb) / wf);
        let between = wb * wf * (mb - mf) * (mb - mf);
        if between > best {
            best = between;
            t = i as u8;
        }
    }
    t
}

/// Nearest-neighbour 2x: small text reads better at twice the size.
fn upscale2(img: &[u8], w: u32, h: u32) -> (Vec<u8>, u32, u32) {
    let (w2, h2) = (w * 2, h * 2);
    let mut out = vec![0u8; (w2 * h2) as usize];
    for y in 0..h2 {
        for x in 0..w2 {
            out[(y * w2 + x) as usize] = img[((y / 2) * w + x / 2) as usize];
        }
    }
    (out, w2, h2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otsu_splits_two_modes() {
        let mut h = [0u32; 256];
        h[20] = 100;
        h[200] = 300;
        let t = otsu(&h);
        assert!((20..200).contains(&t), "{t}");
    }

    #[test]
    fn box_mean_of_a_flat_image_is_flat() {
        let m = box_mean(&[7u8; 30 * 20], 30, 20, 3);
        assert!(m.iter().all(|&v| v == 7));
    }
}
