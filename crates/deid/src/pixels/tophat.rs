//! White top-hat: the thin bright structures of an image (strokes of overlaid text), with
//! smooth background (mucosa, the black border, the field's edge) flattened to zero.
//!
//! Tesseract binarises a page with one global threshold. Over an endoscopic field that fails:
//! white text on bright mucosa falls on the same side of the threshold as the mucosa and is
//! never read. `image - opening(image)` keeps only what is narrower than the structuring
//! element (strokes), so text reads as text whatever the picture behind it, in the border or
//! inside the field. Computed on luma and on the brightest channel (yellow or green text on
//! red mucosa stands out there), the larger response wins.

/// Half-size of the square structuring element: strokes up to 2*R+1 = 13 px wide count.
pub(crate) const R: usize = 6;

/// Top-hat response from which a pixel is part of a stroke.
pub(crate) const STROKE_CONTRAST: u8 = 40;
/// The same for dark strokes: dark red on shaded mucosa stands only ~30 below it.
pub(crate) const DARK_STROKE_CONTRAST: u8 = 26;

/// Which strokes a layer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Polarity {
    /// Light text on darker ground (processor overlays, white typed text).
    Light,
    /// Dark text on lighter ground: near-black, dark blue or dark red typed text, black
    /// text on a white label.
    Dark,
}

/// The binarised stroke layer of one polarity: strokes 0 on a 255 page.
pub(crate) fn stroke_layer(rgb: &[u8], width: u32, height: u32, polarity: Polarity) -> Vec<u8> {
    match polarity {
        Polarity::Light => text_layer(rgb, width, height),
        Polarity::Dark => dark_layer(rgb, width, height),
    }
}

/// Black top-hat (`closing(image) - image`) on luma, on the darkest channel (near-black text
/// and label text) and on red: mucosa is red-dominant, so blue or green text that keeps the
/// luma of the tissue still falls far below it in red. The larger response wins.
fn dark_layer(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut luma = Vec::with_capacity(w * h);
    let mut minc = Vec::with_capacity(w * h);
    let mut red = Vec::with_capacity(w * h);
    for p in rgb.chunks_exact(3) {
        let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
        luma.push(((r * 77 + g * 150 + b * 29) >> 8) as u8);
        minc.push(p[0].min(p[1]).min(p[2]));
        red.push(p[0]);
    }
    let a = black_tophat(&luma, w, h, R);
    let b = black_tophat(&minc, w, h, R);
    let c = black_tophat(&red, w, h, R);
    a.iter()
        .zip(&b)
        .zip(&c)
        .map(|((&x, &y), &z)| if x.max(y).max(z) >= DARK_STROKE_CONTRAST { 0 } else { 255 })
        .collect()
}

/// `erode(dilate(img)) - img` with a (2r+1)^2 square: thin dark structures.
pub(crate) fn black_tophat(img: &[u8], w: usize, h: usize, r: usize) -> Vec<u8> {
    let closed = filter(&filter(img, w, h, r, false), w, h, r, true);
    closed.iter().zip(img).map(|(&c, &a)| c.saturating_sub(a)).collect()
}

/// The inverted, binarised top-hat of an RGB frame: dark strokes on white, what Tesseract
/// reads best.
pub(crate) fn text_layer(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut luma = Vec::with_capacity(w * h);
    let mut maxc = Vec::with_capacity(w * h);
    for p in rgb.chunks_exact(3) {
        let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
        luma.push(((r * 77 + g * 150 + b * 29) >> 8) as u8);
        maxc.push(p[0].max(p[1]).max(p[2]));
    }
    let a = white_tophat(&luma, w, h, R);
    let b = white_tophat(&maxc, w, h, R);
    // Binarised: a stroke stands at least STROKE_CONTRAST above its surroundings; grain and
    // soft texture stay below and become white page, which Tesseract skips quickly.
    a.iter().zip(&b).map(|(&x, &y)| if x.max(y) >= STROKE_CONTRAST { 0 } else { 255 }).collect()
}

/// `img - dilate(erode(img))` with a (2r+1)^2 square.
pub(crate) fn white_tophat(img: &[u8], w: usize, h: usize, r: usize) -> Vec<u8> {
    let opened = filter(&filter(img, w, h, r, true), w, h, r, false);
    img.iter().zip(&opened).map(|(&a, &o)| a.saturating_sub(o)).collect()
}

/// Separable square min (`min = true`) or max filter, edges clamped.
fn filter(img: &[u8], w: usize, h: usize, r: usize, min: bool) -> Vec<u8> {
    let mut tmp = vec![0u8; img.len()];
    let mut line = Vec::with_capacity(w.max(h));
    let mut out_line = Vec::with_capacity(w.max(h));
    for y in 0..h {
        line.clear();
        line.extend_from_slice(&img[y * w..(y + 1) * w]);
        sliding(&line, r, min, &mut out_line);
        tmp[y * w..(y + 1) * w].copy_from_slice(&out_line);
    }
    // Vertical pass row by row (contiguous, vectorised): each output row is the min/max of
    // the 2r+1 rows around it. Gathering columns instead cost most of the stage's own time.
    let mut out = vec![0u8; img.len()];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        let dst = &mut out[y * w..(y + 1) * w];
        dst.copy_from_slice(&tmp[y0 * w..(y0 + 1) * w]);
        for yy in y0 + 1..y1 {
            let src = &tmp[yy * w..(yy + 1) * w];
            if min {
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d = (*d).min(v));
            } else {
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d = (*d).max(v));
            }
        }
    }
    out
}

/// Sliding-window min/max over `[i-r, i+r]` with a monotonic deque: O(1) per sample.
fn sliding(line: &[u8], r: usize, min: bool, out: &mut Vec<u8>) {
    out.clear();
    let n = line.len();
    let mut dq: std::collections::VecDeque<usize> =
        std::collections::VecDeque::with_capacity(2 * r + 2);
    let better = |a: u8, b: u8| if min { a <= b } else { a >= b };
    let mut next = 0;
    for i in 0..n {
        while next < n && next <= i + r {
            while dq.back().is_some_and(|&j| better(line[next], line[j])) {
                dq.pop_back();
            }
            dq.push_back(next);
            next += 1;
        }
        while dq.front().is_some_and(|&j| j + r < i) {
            dq.pop_front();
        }
        out.push(line[*dq.front().expect("window never empty")]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strokes_stay_and_flat_areas_and_steps_vanish() {
        let (w, h) = (40, 20);
        let mut img = vec![150u8; w * h];
        for y in 0..h {
            for x in 20..w {
                img[y * w + x] = 10; // a step edge (the field's border)
            }
            img[y * w + 8] = 250; // a 2-px bright stroke
            img[y * w + 9] = 250;
        }
        let t = white_tophat(&img, w, h, 3);
        assert_eq!(t[10 * w + 8], 100);
        assert_eq!(t[10 * w + 3], 0);
        assert_eq!(t[10 * w + 19], 0, "step edge");
        assert_eq!(t[10 * w + 21], 0, "step edge");
    }

    #[test]
    fn black_tophat_keeps_dark_strokes_only() {
        let (w, h) = (40, 20);
        let mut img = vec![150u8; w * h];
        for y in 0..h {
            img[y * w + 8] = 20;
            img[y * w + 9] = 20;
            for x in 25..w {
                img[y * w + x] = 250; // a wide bright area: no dark stroke
            }
        }
        let t = black_tophat(&img, w, h, 3);
        assert_eq!(t[10 * w + 8], 130);
        assert_eq!(t[10 * w + 3], 0);
        assert_eq!(t[10 * w + 24], 0, "step edge");
        assert_eq!(t[10 * w + 30], 0);
    }

    #[test]
    fn sliding_min_max() {
        let mut o = Vec::new();
        sliding(&[5, 1, 7, 3, 9], 1, true, &mut o);
        assert_eq!(o, vec![1, 1, 1, 3, 3]);
        sliding(&[5, 1, 7, 3, 9], 1, false, &mut o);
        assert_eq!(o, vec![5, 7, 7, 9, 9]);
    }
}
