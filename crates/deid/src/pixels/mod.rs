//! Burned-in text: masking it on the box, then proving it is gone.
//!
//! For each image: find the endoscopic field of view ([`fov`], or a configured device
//! [`layout`]) and blank everything outside it; inside it, find text of either polarity
//! (light and dark stroke layers, `tophat`; glyph-like components grouped into lines,
//! `regions`), blank every white label holding a dark line, and blank every other line that
//! OCR ([`ocr`], Tesseract `jpn+eng`) reads as words, whatever they say (overlaid text is
//! never anatomy). Then decode the result and read it other ways (`verify`: both
//! polarities, two scales, two page-segmentation modes), searching for the exam's own
//! identifiers ([`find`]) and identifier-shaped strings ([`shapes`]). A hit, or a frame whose
//! field cannot be placed, is quarantined.
//!
//! Baseline JPEGs are masked in the DCT domain ([`jpeg_blocks`]): touched MCUs go black,
//! all others keep their coefficients. Other images (and JPEGs that cannot be masked that
//! way) are decoded, masked per pixel and written as PNG, losslessly.
//!
//! Depends on no networking; image bytes and OCR text stay in memory, and nothing here logs
//! or reports what the text said, only where and how much was masked.

pub mod find;
pub mod fov;
pub mod jpeg_blocks;
pub mod layout;
mod ocr;
mod regions;
pub mod shapes;
mod tophat;
mod verify;

use super::identifiers::{IdKind, IdentifierSet};
use super::image_meta::{self, CleanImage, ImageMetaError};
use fov::Field;
use layout::{DeviceLayout, LayoutUse, Rect};
use ocr::{OcrError, OcrPool, OcrSettings, Psm, Word};
use serde::{Deserialize, Serialize};
use shapes::Shape;
use tophat::Polarity;

/// What happens to image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PixelMode {
    /// Mask the border and every text region, verify by OCR, upload what passes (default).
    #[default]
    Clean,
    /// Keep every image on the box (quarantined, `pixels-not-cleaned`): for a site that
    /// sends no images at all.
    Withhold,
}

/// `[deid.pixels]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PixelSettings {
    /// Clean or withhold images.
    pub mode: PixelMode,
    /// Tesseract languages (default `jpn+eng`).
    pub ocr_languages: String,
    /// Tesseract model directory; unset = Tesseract's default.
    pub tessdata: Option<String>,
    /// OCR engines kept (each ~60 MB); 0 = one per CPU core (default).
    pub ocr_engines: usize,
    /// Brightness (0-255) above which a pixel belongs to the field (default 24).
    pub fov_threshold: u8,
    /// Tesseract word confidence (0-100) from which a word inside the field is masked
    /// (default 50). Lower masks more texture; higher may leave faint text to verification.
    pub min_word_confidence: f32,
    /// Pixels added around each masked word box (default 6).
    pub text_margin: u32,
    /// Tallest word box taken for text (default 120 px): OCR reads texture as huge "words".
    pub max_text_height: u32,
    /// Known device layouts (`[[deid.pixels.layouts]]`); default none.
    pub layouts: Vec<DeviceLayout>,
}

impl Default for PixelSettings {
    fn default() -> Self {
        PixelSettings {
            mode: PixelMode::default(),
            ocr_languages: OcrSettings::default().languages,
            tessdata: None,
            ocr_engines: 0,
            fov_threshold: fov::DEFAULT_THRESHOLD,
            min_word_confidence: 50.0,
            text_margin: 6,
            max_text_height: 120,
            layouts: Vec::new(),
        }
    }
}

/// Why an image cannot be released. Carries no text the image contained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelError {
    #[error("image cannot be decoded ({0})")]
    /// Not decodable as its format (what failed).
    Decode(String),
    #[error("no field of view found and no layout for {width}x{height}")]
    /// No field of view found, no layout for the frame size.
    FieldNotFound {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    #[error("identifier still readable after masking: {}", .0.key())]
    /// An identifier of this exam was read (OCR) in the masked image.
    IdentifierFound(IdKind),
    #[error("identifier-shaped text still readable after masking: {}", .0.key())]
    /// An identifier-shaped string (digits, a date, an addressed name) was read (OCR) in
    /// the masked image.
    IdentifierShaped(Shape),
    #[error("ocr: {0}")]
    /// The OCR engine failed.
    Ocr(String),
    #[error("masked image cannot be encoded ({0})")]
    /// The masked image could not be encoded.
    Encode(String),
}

impl From<OcrError> for PixelError {
    fn from(e: OcrError) -> Self {
        PixelError::Ocr(e.to_string())
    }
}

/// Where the field came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldSource {
    /// Found in this frame.
    Detected,
    /// From the named device layout.
    Layout(String),
    /// Detection failed on this frame; another frame of the same exam and size gave it.
    SameExam,
}

/// What was done to one image (no content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelReport {
    /// Where the field of view came from.
    pub field: FieldSource,
    /// Text regions found inside the field and masked.
    pub text_regions: usize,
    /// True if masked in the DCT domain (JPEG out); false if decoded and written as PNG.
    pub dct_domain: bool,
    /// MCUs blackened (DCT path) or pixels blackened (pixel path).
    pub masked_units: usize,
}

/// An image the stage released, and what was done to it.
pub struct Cleaned {
    /// The masked image.
    pub image: CleanImage,
    /// What was masked.
    pub report: PixelReport,
}

/// The stage: settings plus a bounded pool of OCR engines. One per process.
pub struct PixelStage {
    settings: PixelSettings,
    pool: OcrPool,
}

impl PixelStage {
    /// The stage with its OCR pool (engines start on first use).
    pub fn new(settings: PixelSettings) -> PixelStage {
        let n = match settings.ocr_engines {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        };
        let ocr = OcrSettings {
            languages: settings.ocr_languages.clone(),
            datapath: settings.tessdata.clone(),
        };
        PixelStage { pool: OcrPool::new(ocr, n), settings }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &PixelSettings {
        &self.settings
    }

    /// How many images are worth cleaning at once (the OCR pool's size).
    pub fn parallelism(&self) -> usize {
        self.pool.size()
    }

    /// Starts every OCR engine now, so the first images do not pay for model loading (and a
    /// missing language pack is reported at start-up, not on the first image).
    pub fn warm(&self) -> Result<(), PixelError> {
        Ok(self.pool.warm()?)
    }

    /// Decodes an image (JPEG or PNG, as `image_meta::strip` leaves them) to RGB.
    pub fn decode(img: &CleanImage) -> Result<image::RgbImage, PixelError> {
        image_meta::decode_picture(&img.bytes, None, img.media_type).map(|i| i.to_rgb8()).map_err(
            |e| match e {
                e @ (ImageMetaError::TooLarge { .. } | ImageMetaError::OverLimits(_)) => {
                    PixelError::Decode(e.to_string())
                }
                _ => PixelError::Decode(img.media_type.into()),
            },
        )
    }

    /// The field of a frame: a fixed layout, else detection, else a fallback layout. A
    /// baseline JPEG is measured on its DC coefficients (the same map the field-only path
    /// uses), anything else on its decoded pixels.
    pub fn field(&self, img: &CleanImage, rgb: &image::RgbImage) -> Option<(Field, FieldSource)> {
        let (w, h) = rgb.dimensions();
        let layout = layout::for_size(&self.settings.layouts, w, h);
        if let Some(l) = layout.filter(|l| l.use_ == LayoutUse::Fixed) {
            return Some((Field::from_shape(&l.fov, w, h), FieldSource::Layout(l.name.clone())));
        }
        let detected = match jpeg_blocks::Coefficients::read(&img.bytes) {
            Ok(c)
                if img.media_type == "image/jpeg"
                    && (c.geometry().width, c.geometry().height) == (w, h) =>
            {
                // Frames too small for an MCU map (under 8x8 MCUs) are measured on pixels.
                self.field_of(&c)
                    .or_else(|| fov::detect(rgb.as_raw(), w, h, self.settings.fov_threshold))
            }
            _ => fov::detect(rgb.as_raw(), w, h, self.settings.fov_threshold),
        };
        if let Some(f) = detected {
            return Some((f, FieldSource::Detected));
        }
        layout.map(|l| (Field::from_shape(&l.fov, w, h), FieldSource::Layout(l.name.clone())))
    }

    /// The field from a JPEG's DC coefficients (no decode).
    pub fn field_of(&self, c: &jpeg_blocks::Coefficients) -> Option<Field> {
        let g = c.geometry();
        fov::detect_cells(
            &c.brightness(),
            g.mcu_cols,
            g.mcu_rows,
            (g.mcu_w, g.mcu_h),
            g.width,
            g.height,
            self.settings.fov_threshold,
        )
    }

    /// Masks everything outside the field of a baseline JPEG, in the DCT domain, without
    /// OCR: the first half of [`Self::clean`] on its own (what the field-only benchmark
    /// times). `None`: no field found.
    pub fn mask_outside_field(&self, jpeg: &[u8]) -> Result<Option<(Vec<u8>, usize)>, PixelError> {
        let mut c =
            jpeg_blocks::Coefficients::read(jpeg).map_err(|e| PixelError::Decode(e.to_string()))?;
        let Some(field) = self.field_of(&c) else { return Ok(None) };
        let (mw, mh) = (c.geometry().mcu_w, c.geometry().mcu_h);
        let n = c.blacken(|col, row| cell_touched(&field, &[], col * mw, row * mh, mw, mh));
        let out = c.write().map_err(|e| PixelError::Encode(e.to_string()))?;
        Ok(Some((out, n)))
    }

    /// Cleans one image. `rgb` is its decoded frame and `field` where its field is (see
    /// [`Self::field`]; the caller may lend another frame's field, [`FieldSource::SameExam`]).
    pub fn clean(
        &self,
        img: &CleanImage,
        rgb: &image::RgbImage,
        field: Option<(Field, FieldSource)>,
        ids: &IdentifierSet,
    ) -> Result<Cleaned, PixelError> {
        let (w, h) = rgb.dimensions();
        let (field, source) = field.ok_or(PixelError::FieldNotFound { width: w, height: h })?;
        let fixed: Vec<Rect> = layout::for_size(&self.settings.layouts, w, h)
            .map(|l| l.mask.clone())
            .unwrap_or_default();

        // 1. Text inside the field, field alone (border and fixed regions blanked first so
        //    nothing outside can be read as inside): text-like components of each polarity's
        //    stroke layer, grouped in lines; a white label holding a dark line goes whole;
        //    any other line is masked when OCR of its crop reads a word.
        let mut inner = rgb.clone();
        for (x, y, p) in inner.enumerate_pixels_mut() {
            if !field.inside(x, y) || fixed.iter().any(|r| in_rect(r, x, y)) {
                *p = image::Rgb([0, 0, 0]);
            }
        }
        let (bx, by, bw, bh) = field.bbox();
        let m = self.settings.text_margin;
        let mut boxes: Vec<Rect> = fixed;
        let mut text: Vec<Rect> = Vec::new();
        if bw > 0 && bh > 0 {
            let sub = image::imageops::crop_imm(&inner, bx, by, bw, bh).to_image();
            // Crop coordinates of what is already taken for text: a line of the other
            // polarity at the same place (the gaps between dark strokes are light strokes)
            // is the same text, masked with it without another OCR call.
            let mut found: Vec<Rect> = Vec::new();
            for polarity in [Polarity::Dark, Polarity::Light] {
                let layer = tophat::stroke_layer(sub.as_raw(), bw, bh, polarity);
                let mask: Vec<bool> = layer.iter().map(|&v| v == 0).collect();
                let comps = regions::components(&mask, bw, bh);
                let lines = regions::lines(&comps, self.settings.max_text_height);
                if polarity == Polarity::Dark {
                    found.extend(regions::labels(sub.as_raw(), bw, bh, &lines));
                }
                for l in &lines {
                    if found.iter().any(|b| contains(b, l)) {
                        found.push(*l);
                    } else if let Some(r) = self.read_line(&layer, &sub, polarity, l)? {
                        found.push(r);
                    }
                }
            }
            text.extend(found.iter().map(|r| grow(r, bx, by, m)));
        }
        let text_regions = text.len();
        boxes.extend(text);

        // 2. Mask: DCT domain for baseline JPEG, else per pixel to PNG.
        let keep = |x: u32, y: u32| field.inside(x, y) && !boxes.iter().any(|r| in_rect(r, x, y));
        let dct = if img.media_type == "image/jpeg" {
            jpeg_blocks::geometry(&img.bytes).ok().and_then(|g| {
                if (g.width, g.height) != (w, h) {
                    return None;
                }
                let touched = |c: u32, r: u32| {
                    cell_touched(&field, &boxes, c * g.mcu_w, r * g.mcu_h, g.mcu_w, g.mcu_h)
                };
                jpeg_blocks::mask_mcus(&img.bytes, &g, touched).ok()
            })
        } else {
            None
        };
        let (out, dct_domain, masked_units) = match dct {
            Some((bytes, n)) => {
                (CleanImage { bytes, media_type: "image/jpeg", ext: "jpg" }, true, n)
            }
            None => {
                let mut px = rgb.clone();
                let mut n = 0;
                for (x, y, p) in px.enumerate_pixels_mut() {
                    if !keep(x, y) {
                        *p = image::Rgb([0, 0, 0]);
                        n += 1;
                    }
                }
                let mut bytes = std::io::Cursor::new(Vec::new());
                px.write_to(&mut bytes, image::ImageFormat::Png)
                    .map_err(|_| PixelError::Encode("png".into()))?;
                let bytes = bytes.into_inner();
                (CleanImage { bytes, media_type: "image/png", ext: "png" }, false, n)
            }
        };

        // 3. Proof, independent of step 1: read the released frame (decoded from the bytes
        //    that leave) other ways and search it for this exam's identifiers and for
        //    identifier-shaped strings.
        let released = Self::decode(&out)?;
        match verify::check(&self.pool, &released, ids, self.settings.max_text_height)? {
            Some(verify::Finding::Identifier(kind)) => {
                return Err(PixelError::IdentifierFound(kind))
            }
            Some(verify::Finding::Shaped(shape)) => {
                return Err(PixelError::IdentifierShaped(shape))
            }
            None => {}
        }
        Ok(Cleaned {
            image: out,
            report: PixelReport { field: source, text_regions, dct_domain, masked_units },
        })
    }
}

impl PixelStage {
    /// OCR of one candidate line on its stroke layer (crop plus a margin), then, if nothing
    /// was read, on the crop of the picture itself binarised on its own (Otsu): faint dark
    /// text breaks up on the stroke layer. `Some`: text was read; the box to mask is the
    /// line with every word read in it (crop coordinates).
    fn read_line(
        &self,
        layer: &[u8],
        sub: &image::RgbImage,
        polarity: Polarity,
        l: &Rect,
    ) -> Result<Option<Rect>, PixelError> {
        let (w, h) = sub.dimensions();
        let pad = LINE_PAD.max(l.h / 2);
        let (x0, y0) = (l.x.saturating_sub(pad), l.y.saturating_sub(pad));
        let (x1, y1) = ((l.x + l.w + pad).min(w), (l.y + l.h + pad).min(h));
        let (cw, ch) = (x1 - x0, y1 - y0);
        let mut crop = Vec::with_capacity((cw * ch) as usize);
        for y in y0..y1 {
            crop.extend_from_slice(&layer[(y * w + x0) as usize..(y * w + x1) as usize]);
        }
        let s = &self.settings;
        let mut words = self.pool.with(|e| e.words_as(&crop, cw, ch, Psm::Block))??;
        let mut min_conf = s.min_word_confidence;
        if !words.iter().any(|wd| is_text(wd, s, min_conf)) {
            let gray = verify::binarised_crop(sub, (x0, y0, cw, ch), polarity == Polarity::Dark);
            words = self.pool.with(|e| e.words_as(&gray, cw, ch, Psm::Block))??;
            // A candidate line already looks like text: small kanji names, without a
            // dictionary, read at 35-45 here.
            min_conf = (min_conf - FALLBACK_CONFIDENCE_DROP).max(0.0);
        }
        let read: Vec<&Word> = words.iter().filter(|wd| is_text(wd, s, min_conf)).collect();
        if read.is_empty() {
            return Ok(None);
        }
        let (mut a, mut b) = ((l.x, l.y), (l.x + l.w, l.y + l.h));
        for wd in read {
            a = (a.0.min(x0 + wd.left), a.1.min(y0 + wd.top));
            b = ((x0 + wd.left + wd.width).max(b.0), (y0 + wd.top + wd.height).max(b.1));
        }
        Ok(Some(Rect { x: a.0, y: a.1, w: b.0 - a.0, h: b.1 - a.1 }))
    }
}

/// How much less word confidence the second reading of a candidate line needs (50 → 30).
const FALLBACK_CONFIDENCE_DROP: f32 = 20.0;

/// White page kept around a line for OCR (Tesseract wants some margin).
const LINE_PAD: u32 = 8;

/// `r` (crop coordinates, crop at `(bx, by)`) in frame coordinates, grown by `m`.
fn grow(r: &Rect, bx: u32, by: u32, m: u32) -> Rect {
    let (x, y) = ((bx + r.x).saturating_sub(m), (by + r.y).saturating_sub(m));
    Rect { x, y, w: bx + r.x + r.w + m - x, h: by + r.y + r.h + m - y }
}

/// True if `inner`'s centre lies in `outer`.
fn contains(outer: &Rect, inner: &Rect) -> bool {
    in_rect(outer, inner.x + inner.w / 2, inner.y + inner.h / 2)
}

/// Smallest word box taken for text: overlays are legible, so at least ~10 px high.
const MIN_TEXT_HEIGHT: u32 = 10;
/// Confidence a one-character word needs to count as text.
const SINGLE_GLYPH_CONFIDENCE: f32 = 75.0;

/// Overlaid text, not mucosa: confident enough, text-sized, and with a letter, digit, kana
/// or kanji. Texture read as text comes as low-confidence or oversized boxes.
fn is_text(w: &Word, s: &PixelSettings, min_conf: f32) -> bool {
    // A lone glyph is what a specular highlight most often passes for.
    let min_conf =
        if w.text.chars().count() == 1 { min_conf.max(SINGLE_GLYPH_CONFIDENCE) } else { min_conf };
    w.conf >= min_conf
        && (MIN_TEXT_HEIGHT..=s.max_text_height).contains(&w.height)
        && w.text.chars().any(char::is_alphanumeric)
}

fn in_rect(r: &Rect, x: u32, y: u32) -> bool {
    x >= r.x && y >= r.y && x < r.x.saturating_add(r.w) && y < r.y.saturating_add(r.h)
}

/// True if any pixel of the cell is outside the field or inside a masked box.
fn cell_touched(field: &Field, boxes: &[Rect], x0: u32, y0: u32, cw: u32, ch: u32) -> bool {
    let x1 = (x0 + cw).min(field.width);
    let y1 = (y0 + ch).min(field.height);
    if boxes.iter().any(|r| {
        r.x < x1 && x0 < r.x.saturating_add(r.w) && r.y < y1 && y0 < r.y.saturating_add(r.h)
    }) {
        return true;
    }
    (y0..y1).any(|y| {
        let (a, b) = field.spans[y as usize];
        !(a <= x0 && x1 <= b)
    })
}
