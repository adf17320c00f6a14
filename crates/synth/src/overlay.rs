//! Burned-in text on synthetic frames: what a video processor prints on the black border
//! (patient id, name in kanji, katakana or romaji, birth date, exam date, institution), or
//! what a user types over the picture, drawn with a real Japanese font so that OCR meets the
//! same glyph shapes it meets on real frames.
//!
//! Glyphs come from [`ab_glyph`]: pure Rust (font parsing by `ttf-parser`, coverage
//! rasterised by `ab_glyph_rasterizer`), so tests and the demo need no FreeType, fontconfig
//! or other C library, build the same on every target and give the same pixels for the same
//! font file. It reads TrueType/OpenType outlines and TrueType collections (`.ttc`, by
//! index), which is how Debian ships Noto Sans CJK; hinting, shaping and vertical text are
//! out of scope, and overlays need none of them (one horizontal line of CJK, kana, Latin
//! and digits, advance widths plus pair kerning).
//!
//! Fonts are not bundled: [`system_font`] loads them from the Debian packages
//! `fonts-noto-cjk` and `fonts-ipafont-gothic`, and says which package is missing if the
//! file is not there. Everything else in [`crate`] needs no font; only callers of
//! this module do.
//!
//! The frames to draw on are re-exported here ([`render`], [`Fov`], [`encode_jpeg`],
//! [`encode_png`], [`Rng`]) so that tests can build an overlaid frame from this module alone.

use ab_glyph::{Font, FontVec, PxScale, ScaleFont};
use image::RgbImage;
use std::path::{Path, PathBuf};

pub use super::imaging::{encode_jpeg, encode_png, render, Fov};
pub use super::rng::Rng;

/// Debian path of Noto Sans CJK (package `fonts-noto-cjk`), a collection: index 0 is
/// "Noto Sans CJK JP", 5 is "Noto Sans Mono CJK JP".
pub const NOTO_CJK_PATH: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";
/// Debian path of IPA Gothic (package `fonts-ipafont-gothic`, pulled in by `fonts-ipafont`).
pub const IPA_GOTHIC_PATH: &str = "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf";

/// The installed Japanese fonts [`system_font`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FontChoice {
    /// Noto Sans CJK JP (proportional Latin, the look of recent processors' menus).
    NotoSansCjkJp,
    /// Noto Sans Mono CJK JP (fixed-pitch Latin and digits, the look of most overlays).
    NotoSansMonoCjkJp,
    /// IPA Gothic (a different design of the same characters).
    IpaGothic,
}

impl FontChoice {
    /// Every choice, in declaration order.
    pub const ALL: [FontChoice; 3] =
        [FontChoice::NotoSansCjkJp, FontChoice::NotoSansMonoCjkJp, FontChoice::IpaGothic];

    /// (file, index in the collection, Debian package that installs the file).
    pub fn location(self) -> (&'static str, u32, &'static str) {
        match self {
            FontChoice::NotoSansCjkJp => (NOTO_CJK_PATH, 0, "fonts-noto-cjk"),
            FontChoice::NotoSansMonoCjkJp => (NOTO_CJK_PATH, 5, "fonts-noto-cjk"),
            FontChoice::IpaGothic => (IPA_GOTHIC_PATH, 0, "fonts-ipafont-gothic"),
        }
    }
}

/// A font that cannot be used, named by its file.
#[derive(Debug, thiserror::Error)]
pub enum FontError {
    /// The file is not installed.
    #[error("font file {path} not found (Debian package {package}: apt-get install {package})")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The Debian package that installs it.
        package: &'static str,
    },
    /// The file could not be read.
    #[error("font file {path} cannot be read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no font at that index.
    #[error("font file {path} has no usable font at index {index}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The index asked for.
        index: u32,
    },
}

/// A parsed font (the whole file stays in memory: ~20 MB for the Noto collection).
pub struct OverlayFont {
    font: FontVec,
    path: PathBuf,
    index: u32,
}

impl std::fmt::Debug for OverlayFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OverlayFont({}#{})", self.path.display(), self.index)
    }
}

impl OverlayFont {
    /// Loads font `index` of a font file (0 for a plain `.ttf`/`.otf`).
    pub fn load(path: impl AsRef<Path>, index: u32) -> Result<OverlayFont, FontError> {
        let path = path.as_ref().to_path_buf();
        let data = std::fs::read(&path)
            .map_err(|source| FontError::Read { path: path.clone(), source })?;
        let font = FontVec::try_from_vec_and_index(data, index)
            .map_err(|_| FontError::Invalid { path: path.clone(), index })?;
        Ok(OverlayFont { font, path, index })
    }

    /// The file the font was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True if the font has a glyph for `c` (else it would draw the "missing" box).
    pub fn has_glyph(&self, c: char) -> bool {
        self.font.glyph_id(c).0 != 0
    }

    /// Advance width of `text` at `px_size` pixels (line height), kerning included.
    pub fn text_width(&self, px_size: f32, text: &str) -> f32 {
        let sf = self.font.as_scaled(PxScale::from(px_size));
        let mut w = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                w += sf.kern(p, id);
            }
            w += sf.h_advance(id);
            prev = Some(id);
        }
        w
    }
}

/// One of the installed Japanese fonts, at its Debian path.
pub fn system_font(which: FontChoice) -> Result<OverlayFont, FontError> {
    let (path, index, package) = which.location();
    if !Path::new(path).is_file() {
        return Err(FontError::Missing { path: path.into(), package });
    }
    OverlayFont::load(path, index)
}

/// Pixel box `(x, y, w, h)` of what was inked; `w == 0` if nothing was (blank text, or all
/// of it outside the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TextBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl TextBox {
    /// True if the box and the rectangle `(x, y, w, h)` share a pixel.
    pub fn intersects(&self, x: u32, y: u32, w: u32, h: u32) -> bool {
        self.w > 0 && x < self.x + self.w && self.x < x + w && y < self.y + self.h && self.y < y + h
    }

    /// The box grown by `m` pixels on every side (clamped at 0).
    pub fn grown(&self, m: u32) -> TextBox {
        let (x, y) = (self.x.saturating_sub(m), self.y.saturating_sub(m));
        TextBox { x, y, w: self.x + self.w + m - x, h: self.y + self.h + m - y }
    }
}

/// Draws one line of `text` with its top (the font's ascent line) at `y` and its pen start at
/// `x`, `px_size` pixels high (ascent + descent), in `color`, alpha-blending each pixel by
/// the glyph's coverage. Parts outside the image are clipped. Returns the inked box.
pub fn draw_text(
    img: &mut RgbImage,
    font: &OverlayFont,
    px_size: f32,
    x: i32,
    y: i32,
    text: &str,
    color: [u8; 3],
) -> TextBox {
    let sf = font.font.as_scaled(PxScale::from(px_size));
    let baseline = y as f32 + sf.ascent();
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    let (mut x0, mut y0, mut x1, mut y1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
    let mut pen = x as f32;
    let mut prev = None;
    for c in text.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            pen += sf.kern(p, id);
        }
        let glyph = id.with_scale_and_position(sf.scale(), ab_glyph::point(pen, baseline));
        pen += sf.h_advance(id);
        prev = Some(id);
        let Some(outlined) = font.font.outline_glyph(glyph) else { continue };
        let b = outlined.px_bounds();
        let (gx, gy) = (b.min.x as i64, b.min.y as i64);
        outlined.draw(|dx, dy, coverage| {
            let (px, py) = (gx + i64::from(dx), gy + i64::from(dy));
            let a = coverage.clamp(0.0, 1.0);
            if a <= 0.0 || px < 0 || py < 0 || px >= iw || py >= ih {
                return;
            }
            let p = img.get_pixel_mut(px as u32, py as u32);
            for (ch, &c) in p.0.iter_mut().zip(&color) {
                *ch = (f32::from(*ch) * (1.0 - a) + f32::from(c) * a).round() as u8;
            }
            x0 = x0.min(px);
            y0 = y0.min(py);
            x1 = x1.max(px);
            y1 = y1.max(py);
        });
    }
    if x1 < x0 {
        return TextBox::default();
    }
    TextBox { x: x0 as u32, y: y0 as u32, w: (x1 - x0 + 1) as u32, h: (y1 - y0 + 1) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn font(which: FontChoice) -> OverlayFont {
        system_font(which).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn text_changes_pixels_inside_its_box_only() {
        let f = font(FontChoice::NotoSansCjkJp);
        let mut img = RgbImage::from_pixel(400, 80, Rgb([10, 10, 10]));
        let before = img.clone();
        let b = draw_text(&mut img, &f, 32.0, 12, 20, "ID 00123456", [255, 255, 255]);
        assert!(b.w > 100 && b.h > 15 && b.h <= 40, "{b:?}");
        assert!(b.x >= 12 && b.y >= 20, "ink starts at or after the pen and the top: {b:?}");
        let mut changed = 0;
        for (x, y, p) in img.enumerate_pixels() {
            if p != before.get_pixel(x, y) {
                changed += 1;
                assert!(b.intersects(x, y, 1, 1), "pixel {x},{y} changed outside {b:?}");
            }
        }
        assert!(changed > 300, "{changed} pixels changed");
        // Full coverage gives the colour itself; partial coverage a blend (anti-aliasing).
        assert!(img.pixels().any(|p| p.0 == [255, 255, 255]));
        assert!(img.pixels().any(|p| p.0[0] > 40 && p.0[0] < 220));
        // Width is about what the font says the advance is.
        let w = f.text_width(32.0, "ID 00123456");
        assert!((b.w as f32 - w).abs() < 16.0, "inked {} vs advance {w}", b.w);
    }

    #[test]
    fn kanji_and_kana_glyphs_render_in_every_font() {
        for which in FontChoice::ALL {
            let f = font(which);
            for c in ['髙', '橋', '一', '郎', 'タ', 'ウ', '昭', '和'] {
                assert!(f.has_glyph(c), "{which:?} lacks {c}");
                let mut img = RgbImage::new(64, 64);
                let b = draw_text(&mut img, &f, 48.0, 8, 8, &c.to_string(), [0, 255, 0]);
                let lit = img.pixels().filter(|p| p.0[1] > 128).count();
                // A CJK glyph fills much of its em square: 一 is one stroke, 髙 many.
                assert!(lit > 40, "{which:?} {c}: {lit} pixels");
                assert!(b.w > 20 && b.w <= 48, "{which:?} {c}: {b:?}");
                assert!(img.pixels().all(|p| p.0[0] == 0 && p.0[2] == 0), "colour is green");
            }
        }
        // The many-stroke kanji inks more than the one-stroke one.
        let f = font(FontChoice::IpaGothic);
        let ink = |s: &str| {
            let mut img = RgbImage::new(64, 64);
            draw_text(&mut img, &f, 48.0, 8, 8, s, [255, 255, 255]);
            img.pixels().map(|p| u64::from(p.0[0])).sum::<u64>()
        };
        assert!(ink("髙") > 2 * ink("一"));
    }

    #[test]
    fn blending_respects_the_background_and_clips_at_the_edges() {
        let f = font(FontChoice::IpaGothic);
        let mut img = RgbImage::from_pixel(50, 30, Rgb([200, 40, 30]));
        // Half the line lies left of and above the image.
        let b = draw_text(&mut img, &f, 40.0, -30, -10, "郎郎郎", [255, 255, 0]);
        assert!(b.w > 0 && b.x == 0 && b.y == 0, "{b:?}");
        // Yellow over red: red and green rise towards 255, blue falls towards 0.
        assert!(img.pixels().any(|p| p.0 == [255, 255, 0]));
        assert!(img.pixels().all(|p| p.0[0] >= 200 && p.0[2] <= 30));
        assert_eq!(draw_text(&mut img, &f, 40.0, 500, 500, "郎", [0, 0, 0]), TextBox::default());
    }

    #[test]
    fn a_missing_font_names_the_path_and_the_package() {
        let e = OverlayFont::load("/nonexistent/font.ttc", 0).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/font.ttc"));
        let e = FontError::Missing { path: NOTO_CJK_PATH.into(), package: "fonts-noto-cjk" };
        let s = e.to_string();
        assert!(s.contains(NOTO_CJK_PATH) && s.contains("apt-get install fonts-noto-cjk"), "{s}");
        // Index past the end of the collection.
        let e = OverlayFont::load(NOTO_CJK_PATH, 99).unwrap_err();
        assert!(matches!(e, FontError::Invalid { index: 99, .. }), "{e}");
    }
}
