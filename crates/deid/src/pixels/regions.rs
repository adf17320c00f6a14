//! Where text may be: connected components of a binarised stroke layer that look like glyphs
//! (size, stroke width), grouped into lines, and white label boxes that hold such lines.
//! OCR then runs on these regions alone: a text-free field costs no OCR, and each call sees
//! a small crop instead of a whole frame.

use super::layout::Rect;

/// A connected component: bounding box and pixel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Component {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub area: u32,
}

impl Component {
    fn w(&self) -> u32 {
        self.x1 - self.x0 + 1
    }
    fn h(&self) -> u32 {
        self.y1 - self.y0 + 1
    }
}

/// Lines shorter than this are not text (legible overlays are ~10 px high or more).
const MIN_LINE_HEIGHT: u32 = 8;
/// Smallest piece of a glyph kept (dakuten, dots of i and j).
const MIN_PIECE: u32 = 3;
/// A line holds at least this many pieces, or is this many heights wide.
const MIN_PIECES: usize = 3;
const MIN_ASPECT: f32 = 2.0;

/// Components of `mask` (8-connected; `true` = stroke pixel).
pub(crate) fn components(mask: &[bool], w: u32, h: u32) -> Vec<Component> {
    let (wu, hu) = (w as usize, h as usize);
    let mut seen = vec![false; mask.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (sx, sy) = ((start % wu) as u32, (start / wu) as u32);
        let mut c = Component { x0: sx, y0: sy, x1: sx, y1: sy, area: 0 };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % wu, i / wu);
            c.area += 1;
            c.x0 = c.x0.min(x as u32);
            c.x1 = c.x1.max(x as u32);
            c.y0 = c.y0.min(y as u32);
            c.y1 = c.y1.max(y as u32);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= wu as i64 || ny >= hu as i64 {
                        continue;
                    }
                    let j = ny as usize * wu + nx as usize;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push(c);
    }
    out
}

/// A glyph or part of one: not a speck, no taller than `max_h`, and made of strokes (the
/// stroke layer already drops anything wider than its structuring element, so a large
/// component that fills its box is texture or a highlight, not a letter).
fn glyph_like(c: &Component, max_h: u32) -> bool {
    let (w, h) = (c.w(), c.h());
    if w.max(h) < MIN_PIECE || h > max_h || w > 4 * max_h {
        return false;
    }
    let fill = c.area as f32 / (w * h) as f32;
    // Big and solid: a blob. Small pieces (dots, short strokes) may be solid.
    !(w.min(h) > 14 && fill > 0.75)
}

/// Text lines among `comps`: glyph-like components chained left to right with overlapping
/// rows and gaps under about a glyph's height. Returns each line's box.
pub(crate) fn lines(comps: &[Component], max_h: u32) -> Vec<Rect> {
    let mut g: Vec<Component> = comps.iter().copied().filter(|c| glyph_like(c, max_h)).collect();
    g.sort_by_key(|c| (c.x0, c.y0));
    let n = g.len();
    // Union-find over "neighbours in a line".
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for i in 0..n {
        let a = g[i];
        for (j, &b) in g.iter().enumerate().skip(i + 1) {
            if b.x0 > a.x1 + max_h * 3 / 2 {
                break; // sorted by x0: nothing further right can be near
            }
            let reach = a.h().max(b.h()).max(MIN_LINE_HEIGHT) * 3 / 2;
            if b.x0 > a.x1 + reach {
                continue;
            }
            let overlap = a.y1.min(b.y1) as i64 - a.y0.max(b.y0) as i64 + 1;
            let small = a.h().min(b.h());
            // Rows overlap by half the smaller piece, and heights are of one font size
            // (small pieces, such as dakuten and dots, may join any line they touch).
            let same_row = overlap * 2 >= i64::from(small);
            let same_size = a.h().max(b.h()) <= 3 * small.max(MIN_LINE_HEIGHT);
            if same_row && same_size {
                let (ra, rb) = (root(&mut parent, i), root(&mut parent, j));
                parent[ra] = rb;
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<Component>> = Default::default();
    for (i, c) in g.iter().enumerate() {
        groups.entry(root(&mut parent, i)).or_default().push(*c);
    }
    // Every group, marked strong when it alone looks like a line of text; weak groups (a
    // lone glyph, a flat stroke such as 一) count only when joined to a strong one.
    let found: Vec<(Rect, bool)> = groups
        .values()
        .filter_map(|cs| {
            let x0 = cs.iter().map(|c| c.x0).min()?;
            let y0 = cs.iter().map(|c| c.y0).min()?;
            let x1 = cs.iter().map(|c| c.x1).max()?;
            let y1 = cs.iter().map(|c| c.y1).max()?;
            let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
            let tall = cs.iter().filter(|c| c.h() >= MIN_LINE_HEIGHT / 2).count();
            let strong = h >= MIN_LINE_HEIGHT
                && h <= max_h
                && (tall >= MIN_PIECES || w as f32 >= MIN_ASPECT * h as f32);
            Some((Rect { x: x0, y: y0, w, h }, strong))
        })
        .collect();
    merge_rows(found)
        .into_iter()
        .filter(|&(r, strong)| strong && r.h <= max_h)
        .map(|r| r.0)
        .collect()
}

/// Joins groups of one row with gaps under two heights: a name split at the space between
/// family and given name, or at a many-piece kanji, is read (and masked) as one line.
fn merge_rows(mut ls: Vec<(Rect, bool)>) -> Vec<(Rect, bool)> {
    loop {
        let mut merged = false;
        'outer: for i in 0..ls.len() {
            for j in i + 1..ls.len() {
                let ((a, sa), (b, sb)) = (ls[i], ls[j]);
                if !(sa || sb) {
                    continue;
                }
                let overlap = (a.y + a.h).min(b.y + b.h) as i64 - a.y.max(b.y) as i64;
                let gap = b.x.max(a.x) as i64 - (a.x + a.w).min(b.x + b.w) as i64;
                let strong_h = if sa { a.h } else { b.h };
                if overlap * 2 >= i64::from(a.h.min(b.h)) && gap <= 2 * i64::from(strong_h) {
                    let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
                    let x1 = (a.x + a.w).max(b.x + b.w);
                    let y1 = (a.y + a.h).max(b.y + b.h);
                    ls[i] = (Rect { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }, true);
                    ls.swap_remove(j);
                    merged = true;
                    break 'outer;
                }
            }
        }
        if !merged {
            return ls;
        }
    }
}

/// Near-white, unsaturated: the ground of a label box.
fn label_white(p: &[u8]) -> bool {
    let (lo, hi) = (p[0].min(p[1]).min(p[2]), p[0].max(p[1]).max(p[2]));
    lo >= 200 && hi - lo <= 40
}

/// White label boxes of an RGB image: near-white regions, at least text-sized, that fill
/// most of their box and hold one of `text` (boxes of dark lines). Returned whole: the label
/// is masked with the text it carries.
pub(crate) fn labels(rgb: &[u8], w: u32, h: u32, text: &[Rect]) -> Vec<Rect> {
    if text.is_empty() {
        return Vec::new();
    }
    let white: Vec<bool> = rgb.chunks_exact(3).map(label_white).collect();
    components(&white, w, h)
        .into_iter()
        .filter(|c| c.h() >= MIN_LINE_HEIGHT + 4 && c.w() >= 2 * MIN_LINE_HEIGHT)
        // Glyph holes and the ink take their share; a highlight's disc fills pi/4.
        .filter(|c| c.area as f32 >= 0.5 * (c.w() * c.h()) as f32)
        .map(|c| Rect { x: c.x0, y: c.y0, w: c.w(), h: c.h() })
        .filter(|l| {
            text.iter().any(|t| {
                let (cx, cy) = (t.x + t.w / 2, t.y + t.h / 2);
                cx >= l.x && cx < l.x + l.w && cy >= l.y && cy < l.y + l.h
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_of(w: u32, h: u32, rects: &[(u32, u32, u32, u32)]) -> Vec<bool> {
        let mut m = vec![false; (w * h) as usize];
        for &(x, y, rw, rh) in rects {
            for yy in y..y + rh {
                for xx in x..x + rw {
                    m[(yy * w + xx) as usize] = true;
                }
            }
        }
        m
    }

    #[test]
    fn glyph_row_is_a_line_and_a_lone_blob_is_not() {
        // Five "glyphs" (2-px strokes making 12x16 boxes) in a row, and one solid 20x20 blob.
        let mut rects = Vec::new();
        for i in 0..5 {
            let x = 10 + i * 16;
            rects.extend([(x, 10, 2, 16), (x, 10, 12, 2), (x + 10, 10, 2, 16)]);
        }
        rects.push((150, 60, 20, 20));
        let m = mask_of(200, 100, &rects);
        let c = components(&m, 200, 100);
        assert_eq!(c.len(), 6);
        let l = lines(&c, 120);
        assert_eq!(l, vec![Rect { x: 10, y: 10, w: 76, h: 16 }]);
    }

    #[test]
    fn label_holding_a_line_is_found() {
        let (w, h) = (120u32, 60u32);
        let mut rgb = vec![100u8; (w * h * 3) as usize];
        for y in 10..40 {
            for x in 20..100 {
                let i = ((y * w + x) * 3) as usize;
                rgb[i..i + 3].copy_from_slice(&[250, 250, 250]);
            }
        }
        let line = Rect { x: 30, y: 18, w: 60, h: 14 };
        assert_eq!(labels(&rgb, w, h, &[line]), vec![Rect { x: 20, y: 10, w: 80, h: 30 }]);
        assert!(labels(&rgb, w, h, &[Rect { x: 0, y: 45, w: 10, h: 10 }]).is_empty());
    }
}
