//! Finding the endoscopic field of view: the bright, convex picture the scope delivers,
//! surrounded by the black border where processors print the overlay.
//!
//! On a 1/4-scale brightness map (the brightest channel, so coloured overlays count as
//! bright), the field is the largest connected bright region after an opening that cuts thin
//! links to nearby text. Its convex hull is the field: circles, octagons and rounded
//! rectangles are convex, and the hull fills the dark lumen and notches that vignetting cuts
//! into the thresholded region. A region smaller than [`MIN_AREA_FRACTION`] of the frame is
//! no field (a dark frame): the caller falls back to a configured layout or quarantines.

use super::layout::FovShape;

/// Scale of the analysis map: 4 keeps a 1280x1024 frame at 320x256 (fast; the field's edge
/// is still placed within a few pixels).
const SCALE: u32 = 4;
/// Brightness (0-255) above which a map cell is field, not border. Borders are black with
/// JPEG noise below ~10; vignetted field edges stay above ~30.
pub const DEFAULT_THRESHOLD: u8 = 24;
/// The field covers at least this share of the frame.
pub const MIN_AREA_FRACTION: f32 = 0.08;

/// The kept area as one horizontal span per row (convex shapes have one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// `spans[y] = (x0, x1)`: pixels x0..x1 of row y are inside; x0 == x1 means none.
    pub spans: Vec<(u32, u32)>,
}

impl Field {
    /// Whether pixel (x, y) is inside the field.
    pub fn inside(&self, x: u32, y: u32) -> bool {
        self.spans.get(y as usize).is_some_and(|&(a, b)| x >= a && x < b)
    }

    /// Share of the frame inside the field.
    pub fn area_fraction(&self) -> f32 {
        let a: u64 = self.spans.iter().map(|&(a, b)| u64::from(b - a)).sum();
        a as f32 / (u64::from(self.width) * u64::from(self.height)).max(1) as f32
    }

    /// Bounding box (x, y, w, h) of the field.
    pub fn bbox(&self) -> (u32, u32, u32, u32) {
        let rows: Vec<u32> = (0..self.height)
            .filter(|&y| self.spans[y as usize].0 < self.spans[y as usize].1)
            .collect();
        let (Some(&y0), Some(&y1)) = (rows.first(), rows.last()) else { return (0, 0, 0, 0) };
        let x0 = rows.iter().map(|&y| self.spans[y as usize].0).min().unwrap_or(0);
        let x1 = rows.iter().map(|&y| self.spans[y as usize].1).max().unwrap_or(0);
        (x0, y0, x1 - x0, y1 + 1 - y0)
    }

    /// The field of a configured shape.
    pub fn from_shape(shape: &FovShape, width: u32, height: u32) -> Field {
        let pts = shape.polygon();
        Field::from_polygon(&pts, width, height)
    }

    /// Rasterises a convex polygon (vertices in pixel coordinates, any order on the hull).
    pub fn from_polygon(pts: &[(f32, f32)], width: u32, height: u32) -> Field {
        let mut spans = vec![(0u32, 0u32); height as usize];
        for (y, span) in spans.iter_mut().enumerate() {
            let yc = y as f32 + 0.5;
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for i in 0..pts.len() {
                let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
                if (a.1 <= yc && b.1 >= yc) || (b.1 <= yc && a.1 >= yc) {
                    let x = if (b.1 - a.1).abs() < f32::EPSILON {
                        lo = lo.min(a.0.min(b.0));
                        hi = hi.max(a.0.max(b.0));
                        continue;
                    } else {
                        a.0 + (yc - a.1) * (b.0 - a.0) / (b.1 - a.1)
                    };
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
            if lo < hi {
                let x0 = lo.max(0.0).ceil() as u32;
                let x1 = (hi.min(width as f32)).floor().max(0.0) as u32;
                if x0 < x1 {
                    *span = (x0, x1);
                }
            }
        }
        Field { width, height, spans }
    }
}

/// Detects the field in an RGB image (row-major, 3 bytes per pixel). `None`: no field large
/// enough (dark or blank frame).
pub fn detect(rgb: &[u8], width: u32, height: u32, threshold: u8) -> Option<Field> {
    let (sw, sh) = (width / SCALE, height / SCALE);
    if sw < 8 || sh < 8 {
        return None;
    }
    // Mean of the brightest channel over each SCALExSCALE cell, row by row (cache-friendly).
    let mut sums = vec![0u32; (sw * sh) as usize];
    for y in 0..sh * SCALE {
        let row = &rgb[(y * width) as usize * 3..((y * width + sw * SCALE) as usize) * 3];
        let acc = &mut sums[((y / SCALE) * sw) as usize..((y / SCALE + 1) * sw) as usize];
        for (cell, px) in acc.iter_mut().zip(row.chunks_exact(3 * SCALE as usize)) {
            *cell += px.chunks_exact(3).map(|p| u32::from(p[0].max(p[1]).max(p[2]))).sum::<u32>();
        }
    }
    let limit = u32::from(threshold) * SCALE * SCALE;
    let map: Vec<bool> = sums.iter().map(|&s| s > limit).collect();
    from_map(&map, sw, sh, (SCALE, SCALE), width, height)
}

/// Detects the field from a brightness map with one value per `cell` (w, h) pixels, such as
/// the per-MCU means a JPEG's DC coefficients give ([`super::jpeg_blocks::Coefficients`]).
pub fn detect_cells(
    brightness: &[u8],
    cols: u32,
    rows: u32,
    cell: (u32, u32),
    width: u32,
    height: u32,
    threshold: u8,
) -> Option<Field> {
    if cols < 8 || rows < 8 || brightness.len() != (cols * rows) as usize {
        return None;
    }
    let map: Vec<bool> = brightness.iter().map(|&v| v > threshold).collect();
    from_map(&map, cols, rows, cell, width, height)
}

/// The field from a thresholded map: opening, largest region, convex hull of its cells.
fn from_map(
    map: &[bool],
    sw: u32,
    sh: u32,
    cell: (u32, u32),
    width: u32,
    height: u32,
) -> Option<Field> {
    // Opening (erode then dilate, 5x5): text strokes and thin links vanish, the field stays.
    let map = dilate(&erode(map, sw, sh, 2), sw, sh, 2);
    let comp = largest_component(&map, sw, sh)?;
    if (comp.len() as f32) < MIN_AREA_FRACTION * (sw * sh) as f32 {
        return None;
    }
    // Row extremes of the component, then their hull, in full-resolution coordinates.
    let mut rows: std::collections::BTreeMap<u32, (u32, u32)> = Default::default();
    for &i in &comp {
        let (x, y) = (i % sw, i / sw);
        let e = rows.entry(y).or_insert((x, x));
        e.0 = e.0.min(x);
        e.1 = e.1.max(x);
    }
    let (cw, ch) = (cell.0 as f32, cell.1 as f32);
    let mut pts: Vec<(f32, f32)> = Vec::with_capacity(rows.len() * 4);
    for (y, (a, b)) in rows {
        // Cell corners, so the hull covers whole cells.
        let (y0, y1) = (y as f32 * ch, (y + 1) as f32 * ch);
        pts.push((a as f32 * cw, y0));
        pts.push((a as f32 * cw, y1));
        pts.push(((b + 1) as f32 * cw, y0));
        pts.push(((b + 1) as f32 * cw, y1));
    }
    let hull = convex_hull(pts);
    Some(Field::from_polygon(&hull, width, height))
}

fn erode(m: &[bool], w: u32, h: u32, r: i32) -> Vec<bool> {
    morph(m, w, h, r, true)
}

fn dilate(m: &[bool], w: u32, h: u32, r: i32) -> Vec<bool> {
    morph(m, w, h, r, false)
}

/// Separable square min (erode) or max (dilate) filter; outside the map counts as border.
/// Each pass counts set cells in a sliding window, so the cost does not grow with `r`.
fn morph(m: &[bool], w: u32, h: u32, r: i32, erode: bool) -> Vec<bool> {
    let (w, h, r) = (w as usize, h as usize, r as usize);
    let full = 2 * r + 1;
    let decide = |count: usize| if erode { count == full } else { count > 0 };
    // Horizontal.
    let mut a = vec![false; m.len()];
    for y in 0..h {
        let row = &m[y * w..(y + 1) * w];
        let mut count = row[..r.min(w)].iter().filter(|&&v| v).count();
        for x in 0..w {
            if x + r < w && row[x + r] {
                count += 1;
            }
            if x > r && row[x - r - 1] {
                count -= 1;
            }
            a[y * w + x] = decide(count);
        }
    }
    // Vertical.
    let mut out = vec![false; m.len()];
    for x in 0..w {
        let mut count = (0..r.min(h)).filter(|&y| a[y * w + x]).count();
        for y in 0..h {
            if y + r < h && a[(y + r) * w + x] {
                count += 1;
            }
            if y > r && a[(y - r - 1) * w + x] {
                count -= 1;
            }
            out[y * w + x] = decide(count);
        }
    }
    out
}

/// Indices of the largest 4-connected set of `true` cells.
fn largest_component(m: &[bool], w: u32, h: u32) -> Option<Vec<u32>> {
    let mut seen = vec![false; m.len()];
    let mut best: Vec<u32> = Vec::new();
    let mut stack = Vec::new();
    for start in 0..m.len() {
        if !m[start] || seen[start] {
            continue;
        }
        let mut comp = Vec::new();
        seen[start] = true;
        stack.push(start as u32);
        while let Some(i) = stack.pop() {
            comp.push(i);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: u32| {
                if m[j as usize] && !seen[j as usize] {
                    seen[j as usize] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        if comp.len() > best.len() {
            best = comp;
        }
    }
    (!best.is_empty()).then_some(best)
}

/// Andrew's monotone chain; returns the hull counter-clockwise without repeating the start.
pub fn convex_hull(mut pts: Vec<(f32, f32)>) -> Vec<(f32, f32)> {
    pts.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: (f32, f32), a: (f32, f32), b: (f32, f32)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut lower: Vec<(f32, f32)> = Vec::new();
    for &p in &pts {
        while lower.len() >= 2 && cross(lower[lower.len() - 2], lower[lower.len() - 1], p) <= 0.0 {
            lower.pop();
        }
        lower.push(p);
    }
    let mut upper: Vec<(f32, f32)> = Vec::new();
    for &p in pts.iter().rev() {
        while upper.len() >= 2 && cross(upper[upper.len() - 2], upper[upper.len() - 1], p) <= 0.0 {
            upper.pop();
        }
        upper.push(p);
    }
    lower.pop();
    upper.pop();
    lower.extend(upper);
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, inside: impl Fn(u32, u32) -> bool) -> Vec<u8> {
        let mut v = vec![0u8; (w * h * 3) as usize];
        for y in 0..h {
            for x in 0..w {
                if inside(x, y) {
                    let i = ((y * w + x) * 3) as usize;
                    v[i] = 180;
                    v[i + 1] = 90;
                    v[i + 2] = 80;
                }
            }
        }
        v
    }

    #[test]
    fn circle_is_found_and_text_beside_it_is_not_part_of_it() {
        let (w, h) = (640u32, 480u32);
        let (cx, cy, r) = (400.0f32, 240.0f32, 200.0f32);
        let img = frame(w, h, |x, y| {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            // A "text line" of bright strokes in the border, left of the circle.
            dx * dx + dy * dy < r * r || (y > 40 && y < 56 && x > 20 && x < 150 && x % 6 < 2)
        });
        let f = detect(&img, w, h, DEFAULT_THRESHOLD).expect("field");
        assert!(!f.inside(60, 48), "text in the border must be outside");
        assert!(f.inside(400, 240) && f.inside(400, 60) && f.inside(230, 240));
        assert!(!f.inside(620, 20) && !f.inside(210, 50), "corners of the circle's box");
        let (x, _, bw, _) = f.bbox();
        assert!((x as f32 - (cx - r)).abs() <= 6.0 && (bw as f32 - 2.0 * r).abs() <= 10.0);
    }

    #[test]
    fn dark_lumen_inside_does_not_cut_the_field() {
        let (w, h) = (640u32, 480u32);
        let img = frame(w, h, |x, y| {
            let (dx, dy) = (x as f32 - 320.0, y as f32 - 240.0);
            let d2 = dx * dx + dy * dy;
            d2 < 200.0 * 200.0
                && (x as f32 - 380.0).powi(2) + (y as f32 - 240.0).powi(2) >= 80.0 * 80.0
        });
        let f = detect(&img, w, h, DEFAULT_THRESHOLD).expect("field");
        assert!(f.inside(380, 240), "the lumen is part of the field");
    }

    #[test]
    fn a_black_frame_has_no_field() {
        let img = vec![3u8; 640 * 480 * 3];
        assert_eq!(detect(&img, 640, 480, DEFAULT_THRESHOLD), None);
    }

    #[test]
    fn polygon_spans() {
        let f =
            Field::from_polygon(&[(10.0, 10.0), (30.0, 10.0), (30.0, 20.0), (10.0, 20.0)], 40, 30);
        assert!(f.inside(10, 10) && f.inside(29, 19) && !f.inside(30, 15) && !f.inside(15, 20));
        assert!(!f.inside(9, 15));
    }
}
