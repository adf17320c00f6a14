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
    let mut out = vec![0u8; img.len()];
    for x in 0..w {
        line.clear();
        line.extend((0..h).map(|y| tmp[y * w + x]));
        sliding(&line, r, min, &mut out_line);
        for (y, &v) in out_line.iter().enumerate() {
            out[y * w + x] = v;
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
    fn sliding_min_max() {
        let mut o = Vec::new();
        sliding(&[5, 1, 7, 3, 9], 1, true, &mut o);
        assert_eq!(o, vec![1, 1, 1, 3, 3]);
        sliding(&[5, 1, 7, 3, 9], 1, false, &mut o);
        assert_eq!(o, vec![5, 7, 7, 9, 9]);
    }
}
