//! Burned-in text on endoscopic frames, end to end through `deid::pixels`: synthetic frames
//! (`synth::overlay::render`) with overlays drawn in real Japanese fonts (Noto Sans CJK JP,
//! Noto Sans Mono CJK JP, IPA Gothic) the way video processors print them (left column,
//! top and bottom lines) and typed over the picture, at 1920x1080, 1280x1024 and 720x576.
//!
//! Every person here is fictitious; their values are planted markers.
//!
//! The proof that text is gone does not trust the stage's own verification: the output file
//! is written to disk and read by the `tesseract` command-line tool (a separate process,
//! `tesseract FILE - -l jpn+eng --psm 11`), whose text is searched for each planted value
//! (NFKC, spaces removed) and with `find::find_identifier`. Because one page-wide threshold
//! makes the CLI blind to some text (coloured lines next to the field, light text typed on
//! the mucosa), it also reads, in gray, the places where text was planted: the border lines
//! stacked on one sheet, and each typed line alone (see [`read_all`]). The same check on the
//! input must read the planted values, at every typed place too, or the test would prove
//! nothing. The CLI reads all five kinds (kanji, kana, romaji, id, birth date) at every size
//! here, 720x576 with a 20 px font included, so all five are required everywhere.
//!
//! Needs `tesseract` with `jpn` and `eng` (Debian `tesseract-ocr tesseract-ocr-jpn`) and the
//! fonts (`fonts-noto-cjk fonts-ipafont-gothic`); a missing one fails the tests, it does not
//! skip them. `BURNED_IN_TEXT_KEEP=DIR` keeps every input and output image in DIR.

use fgw_deid::identifiers::{fold, IdKind, IdentifierSet};
use fgw_deid::image_meta::{self, CleanImage};
use fgw_deid::pixels::find::{allowed_edits, approx_contains, find_identifier};
use fgw_deid::pixels::fov::Field;
use fgw_deid::pixels::jpeg_blocks::{self, Geometry};
use fgw_deid::pixels::layout::{DeviceLayout, FovShape, LayoutUse};
use fgw_deid::pixels::{Cleaned, FieldSource, PixelError, PixelSettings, PixelStage};
use fgw_records::Column;
use fgw_synth::overlay::{
    draw_text, encode_jpeg, encode_png, render, system_font, FontChoice, Fov, OverlayFont, Rng,
    TextBox,
};
use image::{Rgb, RgbImage};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;
use unicode_normalization::UnicodeNormalization;

// --- fictitious people ---

pub(super) struct Person {
    pub(super) kanji: &'static str,
    kana: &'static str,
    romaji: &'static str,
    pub(super) id: &'static str,
    /// ISO, as the export column holds it.
    birth: &'static str,
    /// As processors print it: era letter, era in kanji, Western.
    birth_era: &'static str,
    birth_era_kanji: &'static str,
    birth_western: &'static str,
}

pub(super) const TAKAHASHI: Person = Person {
    kanji: "髙橋 一郎",
    kana: "タカハシ イチロウ",
    romaji: "TAKAHASHI ICHIRO",
    id: "00123456",
    birth: "1952-01-21",
    birth_era: "S27.01.21",
    birth_era_kanji: "昭和27年1月21日",
    birth_western: "1952/01/21",
};

pub(super) const WATANABE: Person = Person {
    kanji: "渡邊 花子",
    kana: "ワタナベ ハナコ",
    romaji: "WATANABE HANAKO",
    id: "7305182",
    birth: "1973-05-18",
    birth_era: "S48.05.18",
    birth_era_kanji: "昭和48年5月18日",
    birth_western: "1973/05/18",
};

pub(super) const SAITO: Person = Person {
    kanji: "齋藤 健太",
    kana: "サイトウ ケンタ",
    romaji: "SAITO KENTA",
    id: "0040917",
    birth: "1990-03-15",
    birth_era: "H2.03.15",
    birth_era_kanji: "平成2年3月15日",
    birth_western: "1990/03/15",
};

impl Person {
    fn fields(&self, cols: &[Column]) -> BTreeMap<Column, String> {
        cols.iter()
            .map(|&c| {
                let v = match c {
                    Column::PatientName => self.kanji,
                    Column::PatientKana => self.kana,
                    Column::PatientId => self.id,
                    Column::BirthDate => self.birth,
                    _ => unreachable!(),
                };
                (c, v.to_string())
            })
            .collect()
    }

    /// What the stage searches for: the exam's identifier columns.
    pub(super) fn ids(&self) -> IdentifierSet {
        IdentifierSet::from_fields(&self.fields(&[
            Column::PatientName,
            Column::PatientKana,
            Column::PatientId,
            Column::BirthDate,
        ]))
    }

    /// Every planted value, as drawn and per name part, spaces removed.
    fn planted(&self) -> Vec<String> {
        let mut v = Vec::new();
        for name in [self.kanji, self.kana, self.romaji] {
            v.push(squash(name));
            v.extend(name.split(' ').map(squash));
        }
        for s in [self.id, self.birth_era, self.birth_era_kanji, self.birth_western] {
            v.push(squash(s));
        }
        v
    }

    /// Which identifiers `text` holds, by what was planted: "name" (kanji), "kana",
    /// "romaji", "id", "birth". Same matching as the stage (fold, edit allowance).
    fn readable_in(&self, text: &str) -> BTreeSet<&'static str> {
        let (folded, _) = fold(text);
        let hay: Vec<char> = folded.chars().collect();
        let mut out = BTreeSet::new();
        for (label, col) in [
            ("name", Column::PatientName),
            ("kana", Column::PatientKana),
            ("id", Column::PatientId),
            ("birth", Column::BirthDate),
        ] {
            let set = IdentifierSet::from_fields(&self.fields(&[col]));
            for (kind, v) in set.variants() {
                let needle: Vec<char> = v.chars().collect();
                if approx_contains(&hay, &needle, allowed_edits(needle.len())) {
                    // The kana column also yields the romaji spellings (as names).
                    let l = if col == Column::PatientKana && kind == IdKind::PatientName {
                        "romaji"
                    } else {
                        label
                    };
                    out.insert(l);
                }
            }
        }
        out
    }
}

fn squash(s: &str) -> String {
    s.nfkc().filter(|c| !c.is_whitespace()).collect()
}

// --- tools: fonts, the independent OCR ---

pub(super) fn font(which: FontChoice) -> &'static OverlayFont {
    static FONTS: OnceLock<Vec<OverlayFont>> = OnceLock::new();
    let fonts = FONTS.get_or_init(|| {
        FontChoice::ALL
            .iter()
            .map(|&f| system_font(f).unwrap_or_else(|e| panic!("fonts are required: {e}")))
            .collect()
    });
    &fonts[FontChoice::ALL.iter().position(|&f| f == which).unwrap()]
}

/// The `tesseract` CLI's text for an image file (an independent process, its own settings).
fn cli_ocr(path: &Path) -> String {
    cli_ocr_psm(path, "11")
}

/// [`cli_ocr`] with another page-segmentation mode (`--psm`).
pub(super) fn cli_ocr_psm(path: &Path, psm: &str) -> String {
    let out = Command::new("tesseract")
        .arg(path)
        .args(["-", "-l", "jpn+eng", "--psm", psm])
        // Tests already run in parallel on few cores.
        .env("OMP_THREAD_LIMIT", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the tesseract CLI is required for these tests ({e}): \
                 apt-get install tesseract-ocr tesseract-ocr-jpn"
            )
        });
    assert!(
        out.status.success(),
        "tesseract failed on {} (are the jpn and eng models installed? \
         apt-get install tesseract-ocr-jpn): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where images are written for the CLI: a temp dir, or `BURNED_IN_TEXT_KEEP`.
fn out_dir() -> &'static Path {
    static DIR: OnceLock<(PathBuf, Option<tempfile::TempDir>)> = OnceLock::new();
    let (p, _) = DIR.get_or_init(|| match std::env::var_os("BURNED_IN_TEXT_KEEP") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            (PathBuf::from(d), None)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            (t.path().to_path_buf(), Some(t))
        }
    });
    p
}

pub(super) fn write(name: &str, ext: &str, bytes: &[u8]) -> PathBuf {
    let p = out_dir().join(format!("{name}.{ext}"));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Writes the luma of `img` as PNG: on colour input the CLI missed green text on black that
/// it reads in gray.
pub(super) fn write_gray(name: &str, img: &RgbImage) -> PathBuf {
    let gray = image::DynamicImage::ImageRgb8(img.clone()).to_luma8();
    let mut bytes = std::io::Cursor::new(Vec::new());
    gray.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    write(name, "png", &bytes.into_inner())
}

/// What the CLI read of `person` in one pass: the identifiers found (see
/// [`Person::readable_in`]), the planted values found verbatim, and what the stage's own
/// matcher finds.
#[derive(Debug, Default)]
pub(super) struct Reading {
    pub(super) found: BTreeSet<&'static str>,
    verbatim: Vec<String>,
    matcher: Option<IdKind>,
}

impl Reading {
    pub(super) fn of(text: &str, p: &Person) -> Reading {
        let flat = squash(text);
        let verbatim = p.planted().into_iter().filter(|v| flat.contains(v.as_str())).collect();
        Reading { found: p.readable_in(text), verbatim, matcher: find_identifier(text, &p.ids()) }
    }

    pub(super) fn is_clean(&self) -> bool {
        self.found.is_empty() && self.verbatim.is_empty() && self.matcher.is_none()
    }

    pub(super) fn merge(mut self, o: &Reading) -> Reading {
        self.found.extend(o.found.iter().copied());
        self.verbatim.extend(o.verbatim.iter().cloned());
        self.matcher = self.matcher.or(o.matcher);
        self
    }
}

/// Where text was drawn: on the border like a processor's overlay, or typed over the picture.
#[derive(Default)]
struct Planted {
    outside: Vec<TextBox>,
    inside: Vec<TextBox>,
}

/// The independent check of one image, three kinds of pass of the CLI:
/// - `whole`: the file as written (`tesseract FILE - -l jpn+eng --psm 11`);
/// - `border`: one sheet of the regions where border text was drawn, cut out of the decoded
///   image and stacked on black. The CLI binarises the whole page with one threshold, which
///   can lose coloured text next to a large bright field;
/// - `inside`: each region where text was typed over the picture, alone. On the whole frame
///   that threshold falls between the black border and the mucosa, and white text on the
///   mucosa is lost with it: only a crop lets the CLI see it.
struct Readings {
    whole: Reading,
    border: Reading,
    inside: Vec<Reading>,
}

fn read_all(name: &str, img: &CleanImage, planted: &Planted, p: &Person) -> Readings {
    let whole = Reading::of(&cli_ocr(&write(name, img.ext, &img.bytes)), p);
    let rgb = PixelStage::decode(img).unwrap();
    let crop = |b: &TextBox, m: u32| {
        let g = b.grown(m);
        let (w, h) = (g.w.min(rgb.width() - g.x), g.h.min(rgb.height() - g.y));
        image::imageops::crop_imm(&rgb, g.x, g.y, w, h).to_image()
    };
    let border = if planted.outside.is_empty() {
        Reading::default()
    } else {
        let crops: Vec<RgbImage> = planted.outside.iter().map(|b| crop(b, 12)).collect();
        let sw = crops.iter().map(|c| c.width()).max().unwrap() + 40;
        let sh = crops.iter().map(|c| c.height() + 24).sum::<u32>() + 24;
        let mut sheet = RgbImage::new(sw, sh);
        let mut y = 24;
        for c in &crops {
            image::imageops::replace(&mut sheet, c, 20, i64::from(y));
            y += c.height() + 24;
        }
        let path = write_gray(&format!("{name}-border"), &sheet);
        Reading::of(&cli_ocr(&path), p)
    };
    let inside = planted
        .inside
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let path = write_gray(&format!("{name}-inside{i}"), &crop(b, 16));
            Reading::of(&cli_ocr(&path), p)
        })
        .collect();
    Readings { whole, border, inside }
}

// --- frames ---

/// One line of overlay text.
struct Line {
    x: i32,
    y: i32,
    text: String,
}

fn line(x: i32, y: i32, text: &str) -> Line {
    Line { x, y, text: text.to_string() }
}

/// Draws lines; returns the inked boxes.
fn draw(
    img: &mut RgbImage,
    f: FontChoice,
    px: f32,
    color: [u8; 3],
    lines: &[Line],
) -> Vec<TextBox> {
    lines.iter().map(|l| draw_text(img, font(f), px, l.x, l.y, &l.text, color)).collect()
}

/// A video processor's left column: id, names, birth date, exam date and time.
fn left_column(p: &Person, x: i32, y0: i32, step: i32, birth: &str) -> Vec<Line> {
    [
        format!("ID:{}", p.id),
        p.kanji.to_string(),
        p.kana.to_string(),
        p.romaji.to_string(),
        format!("M  {birth}"),
        "2024/11/08".to_string(),
        "09:47:30".to_string(),
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| line(x, y0 + i as i32 * step, t))
    .collect()
}

pub(super) fn frame(seed: u64, w: u32, h: u32, fov: Fov) -> RgbImage {
    render(&mut Rng::new(seed), w, h, fov)
}

pub(super) fn jpeg(img: &RgbImage) -> CleanImage {
    image_meta::strip(&encode_jpeg(img, 90).unwrap()).unwrap()
}

fn png(img: &RgbImage) -> CleanImage {
    image_meta::strip(&encode_png(img).unwrap()).unwrap()
}

pub(super) fn stage() -> PixelStage {
    PixelStage::new(PixelSettings { ocr_engines: 1, ..Default::default() })
}

/// Runs the stage on an image with detection; panics on a quarantine.
pub(super) fn clean(
    stage: &PixelStage,
    img: &CleanImage,
    p: &Person,
) -> (Cleaned, Field, FieldSource) {
    let rgb = PixelStage::decode(img).unwrap();
    let (field, source) = stage.field(img, &rgb).expect("field of view");
    let t = Instant::now();
    let c = stage
        .clean(img, &rgb, Some((field.clone(), source.clone())), &p.ids())
        .unwrap_or_else(|e| panic!("stage refused the image: {e}"));
    eprintln!("  stage: {:?} in {:.2?}", c.report, t.elapsed());
    (c, field, source)
}

/// The end-to-end check on one image: the CLI reads the planted identifiers in the input (at
/// least `must_read`, and something at every place text was typed over the picture), the
/// stage cleans it, and no pass of the CLI reads any in the output.
fn check_removed(
    name: &str,
    stage: &PixelStage,
    input: &CleanImage,
    planted: &Planted,
    p: &Person,
    must_read: &[&str],
) -> (Cleaned, Field, FieldSource) {
    let t = Instant::now();
    let before = read_all(&format!("{name}-in"), input, planted, p);
    let all = before.inside.iter().fold(Reading::default().merge(&before.whole), Reading::merge);
    let all = all.merge(&before.border);
    eprintln!(
        "{name}: the CLI reads in the input: whole {:?}, border {:?}, inside {:?}",
        before.whole.found,
        before.border.found,
        before.inside.iter().map(|r| &r.found).collect::<Vec<_>>()
    );
    for l in must_read {
        assert!(
            all.found.contains(l),
            "{name}: the CLI cannot read the planted {l} in the input, so its absence in the \
             output would prove nothing (read: {:?})",
            all.found
        );
    }
    assert!(all.matcher.is_some(), "{name}: find_identifier finds nothing in the input");
    for (r, b) in before.inside.iter().zip(&planted.inside) {
        assert!(!r.found.is_empty(), "{name}: the CLI cannot read the typed text at {b:?}");
    }

    let (cleaned, field, source) = clean(stage, input, p);
    let after = read_all(&format!("{name}-out"), &cleaned.image, planted, p);
    for (pass, r) in [("whole file", &after.whole), ("border regions", &after.border)] {
        assert!(r.is_clean(), "{name}: the CLI reads in the output ({pass}): {r:?}");
    }
    let leaks: Vec<(&TextBox, &Reading)> =
        planted.inside.iter().zip(&after.inside).filter(|(_, r)| !r.is_clean()).collect();
    // Text typed over the picture must be gone too. (This caught the stage OCRing the field
    // as it is: Tesseract's global threshold put light text with the mucosa. The stage now
    // reads a top-hat text layer, `deid::pixels::tophat`.)
    assert!(leaks.is_empty(), "{name}: the CLI reads typed text in the output at {leaks:?}");
    eprintln!("{name}: done in {:.2?}", t.elapsed());
    (cleaned, field, source)
}

// --- JPEG block checks ---

pub(super) fn mcu_rect(g: &Geometry, c: u32, r: u32) -> (u32, u32, u32, u32) {
    let (x, y) = (c * g.mcu_w, r * g.mcu_h);
    (x, y, g.mcu_w.min(g.width - x), g.mcu_h.min(g.height - y))
}

pub(super) fn mcu_inside(field: &Field, g: &Geometry, c: u32, r: u32) -> bool {
    let (x, y, w, h) = mcu_rect(g, c, r);
    (y..y + h).all(|yy| field.inside(x, yy) && field.inside(x + w - 1, yy))
}

/// A masked MCU: every AC coefficient zero, chroma DC zero, luma DC negative (black).
fn is_black_mcu(blocks: &[[i16; 64]], g: &Geometry) -> bool {
    let luma = g.du[0];
    blocks
        .iter()
        .enumerate()
        .all(|(i, b)| b[1..].iter().all(|&c| c == 0) && if i < luma { b[0] < 0 } else { b[0] == 0 })
}

/// Compares the MCUs of input and output JPEG. Every changed MCU must be a masked one (black
/// coefficients, black when decoded), and no more than the report counts. Returns the
/// geometry, which MCUs changed and which are masked blocks in the output.
pub(super) fn mcu_diff(
    input: &CleanImage,
    output: &CleanImage,
    report_masked: usize,
) -> (Geometry, Vec<bool>, Vec<bool>) {
    assert_eq!(output.media_type, "image/jpeg");
    let g = jpeg_blocks::geometry(&input.bytes).unwrap();
    assert_eq!(jpeg_blocks::geometry(&output.bytes).unwrap(), g, "same frame geometry");
    let a = jpeg_blocks::mcu_coefficients(&input.bytes, &g).unwrap();
    let b = jpeg_blocks::mcu_coefficients(&output.bytes, &g).unwrap();
    let dec = PixelStage::decode(output).unwrap();
    let changed: Vec<bool> = a.iter().zip(&b).map(|(x, y)| x != y).collect();
    let black: Vec<bool> = b.iter().map(|m| is_black_mcu(m, &g)).collect();
    for m in 0..a.len() {
        if !changed[m] {
            continue;
        }
        let (c, r) = (m as u32 % g.mcu_cols, m as u32 / g.mcu_cols);
        assert!(black[m], "MCU ({c},{r}) changed but is not a masked block");
        let (x, y, w, h) = mcu_rect(&g, c, r);
        for yy in y..y + h {
            for xx in x..x + w {
                let p = dec.get_pixel(xx, yy);
                assert!(p.0.iter().all(|&v| v <= 8), "masked MCU ({c},{r}) decodes to {p:?}");
            }
        }
    }
    // A masked MCU of the border may have been black already: counted, yet unchanged.
    let n = changed.iter().filter(|&&c| c).count();
    assert!(n > 0 && n <= report_masked, "{n} MCUs changed, {report_masked} reported masked");
    (g, changed, black)
}

/// Pixels of an inked box that are not black in `out`.
pub(super) fn unmasked_ink(out: &RgbImage, b: &TextBox) -> usize {
    (b.y..b.y + b.h)
        .flat_map(|y| (b.x..b.x + b.w).map(move |x| (x, y)))
        .filter(|&(x, y)| out.get_pixel(x, y).0.iter().any(|&v| v > 16))
        .count()
}

const ALL_IDS: [&str; 5] = ["name", "kana", "romaji", "id", "birth"];

// --- tests ---

/// Full HD, left column in Noto Sans Mono CJK JP, white, era-letter birth date; institution
/// on the bottom line. Circle field on the right.
#[test]
fn full_hd_left_column_is_removed() {
    let p = &TAKAHASHI;
    let mut img = frame(1, 1920, 1080, Fov::Circle);
    let mut lines = left_column(p, 40, 60, 56, p.birth_era);
    lines.push(line(40, 1010, "架空市立中央病院 内視鏡センター"));
    let outside = draw(&mut img, FontChoice::NotoSansMonoCjkJp, 36.0, [255, 255, 255], &lines);
    let input = jpeg(&img);
    let planted = Planted { outside, inside: Vec::new() };
    let (c, _, source) = check_removed("fullhd-left", &stage(), &input, &planted, p, &ALL_IDS);
    assert_eq!(source, FieldSource::Detected);
    assert!(c.report.dct_domain);
}

/// SXGA, top and bottom lines in IPA Gothic, yellow and green, era in kanji; octagon field.
#[test]
fn sxga_top_and_bottom_lines_are_removed() {
    let p = &WATANABE;
    let mut img = frame(2, 1280, 1024, Fov::Octagon);
    let top = [line(16, 8, &format!("ID {}  {}", p.id, p.kanji)), line(16, 44, p.kana)];
    let mut outside = draw(&mut img, FontChoice::IpaGothic, 28.0, [255, 255, 0], &top);
    let bottom = [
        line(16, 940, &format!("{}  {}", p.romaji, p.birth_era_kanji)),
        line(16, 980, "2024/11/08 09:47  架空市民病院"),
    ];
    outside.extend(draw(&mut img, FontChoice::IpaGothic, 28.0, [0, 255, 0], &bottom));
    let input = jpeg(&img);
    let planted = Planted { outside, inside: Vec::new() };
    let (c, _, _) = check_removed("sxga-lines", &stage(), &input, &planted, p, &ALL_IDS);
    assert!(c.report.dct_domain);
}

/// PAL SD, left column in Noto Sans CJK JP at 20 px, Western birth date. (The CLI still
/// reads every identifier at this size, so the same identifiers are required as above.)
#[test]
fn sd_left_column_is_removed() {
    let p = &SAITO;
    let mut img = frame(3, 720, 576, Fov::Circle);
    let mut lines = left_column(p, 8, 24, 30, p.birth_western);
    lines.push(line(8, 540, "架空市民病院"));
    let outside = draw(&mut img, FontChoice::NotoSansCjkJp, 20.0, [255, 255, 255], &lines);
    let input = jpeg(&img);
    let planted = Planted { outside, inside: Vec::new() };
    let (c, _, _) = check_removed("sd-left", &stage(), &input, &planted, p, &ALL_IDS);
    assert!(c.report.dct_domain);
}

/// Text-free frames: nothing inside the field is touched, bit for bit, and everything outside
/// it is masked black.
#[test]
fn text_free_frames_keep_every_mcu_inside_the_field() {
    let st = stage();
    for (seed, w, h, fov) in [(11, 1920, 1080, Fov::Circle), (12, 720, 576, Fov::Octagon)] {
        let input = jpeg(&frame(seed, w, h, fov));
        let (c, field, source) = clean(&st, &input, &TAKAHASHI);
        assert_eq!(source, FieldSource::Detected);
        assert_eq!(c.report.text_regions, 0, "{w}x{h}: texture taken for text");
        assert!(c.report.dct_domain);
        let (g, changed, black) = mcu_diff(&input, &c.image, c.report.masked_units);
        let (mut inside, mut masked) = (0, 0);
        for m in 0..changed.len() {
            let (col, row) = (m as u32 % g.mcu_cols, m as u32 / g.mcu_cols);
            if mcu_inside(&field, &g, col, row) {
                inside += 1;
                assert!(!changed[m], "{w}x{h}: MCU ({col},{row}) inside the field changed");
            } else {
                masked += 1;
                assert!(black[m], "{w}x{h}: MCU ({col},{row}) on the border not masked");
            }
        }
        assert_eq!(masked, c.report.masked_units, "{w}x{h}: masked = the MCUs off the field");
        // The field is the picture: a good part of the frame.
        let share = inside as f32 / changed.len() as f32;
        assert!(share > 0.25 && share < 0.8, "{w}x{h}: {share} of MCUs inside the field");
    }
}

/// A name and an id typed over the picture, plus the processor's column: the typed text is
/// masked where it is, and MCUs of the field away from it are kept bit for bit.
#[test]
fn text_typed_inside_the_field_is_masked_and_the_rest_kept() {
    let p = &TAKAHASHI;
    let mut img = frame(4, 1280, 1024, Fov::Circle);
    let column = left_column(p, 12, 80, 44, p.birth_era);
    let outside = draw(&mut img, FontChoice::NotoSansCjkJp, 28.0, [255, 255, 255], &column);
    // The field: a circle of r ~ 440-460 centred near (790, 512).
    let typed = [line(600, 250, p.kanji), line(620, 700, &format!("ID {}", p.id))];
    let inside = draw(&mut img, FontChoice::NotoSansCjkJp, 40.0, [255, 255, 255], &typed);
    let input = jpeg(&img);
    let planted = Planted { outside, inside };
    let (c, field, _) = check_removed("sxga-inside", &stage(), &input, &planted, p, &ALL_IDS);
    assert!(c.report.text_regions > 0, "text inside the field not masked");
    let out = PixelStage::decode(&c.image).unwrap();
    for b in &planted.inside {
        assert_eq!(unmasked_ink(&out, b), 0, "ink left of typed text at {b:?}");
    }
    let (g, changed, _) = mcu_diff(&input, &c.image, c.report.masked_units);
    let near: Vec<TextBox> = planted.inside.iter().map(|b| b.grown(64)).collect();
    let mut kept = 0;
    for (m, &changed) in changed.iter().enumerate() {
        let (col, row) = (m as u32 % g.mcu_cols, m as u32 / g.mcu_cols);
        let (x, y, w, h) = mcu_rect(&g, col, row);
        if mcu_inside(&field, &g, col, row) && !near.iter().any(|b| b.intersects(x, y, w, h)) {
            kept += 1;
            // (Also caught the field's own edge read as a word, when OCR saw raw pixels.)
            assert!(!changed, "MCU ({col},{row}) far from the typed text changed");
        }
    }
    assert!(kept > 1500, "{kept} MCUs checked");
}

/// PNG in: the pixel path (lossless PNG out), text outside and inside the field removed, the
/// border black and the picture away from the text identical pixel for pixel.
#[test]
fn png_input_takes_the_pixel_path() {
    let p = &WATANABE;
    let mut img = frame(5, 1920, 1080, Fov::Octagon);
    let column = left_column(p, 40, 80, 54, p.birth_western);
    let outside = draw(&mut img, FontChoice::IpaGothic, 34.0, [0, 255, 255], &column);
    let typed = [line(1250, 300, p.romaji)];
    let inside = draw(&mut img, FontChoice::IpaGothic, 44.0, [255, 255, 0], &typed);
    let input = png(&img);
    let planted = Planted { outside, inside };
    let (c, field, _) = check_removed("fullhd-png", &stage(), &input, &planted, p, &ALL_IDS);
    assert!(!c.report.dct_domain);
    assert_eq!((c.image.media_type, c.image.ext), ("image/png", "png"));
    assert!(c.report.text_regions > 0, "typed romaji not masked");
    let out = PixelStage::decode(&c.image).unwrap();
    assert_eq!(unmasked_ink(&out, &planted.inside[0]), 0, "ink left of the typed romaji");
    let near = planted.inside[0].grown(64);
    let mut kept = 0;
    for (x, y, px) in out.enumerate_pixels() {
        if !field.inside(x, y) {
            assert_eq!(px.0, [0, 0, 0], "pixel {x},{y} outside the field not black");
        } else if !near.intersects(x, y, 1, 1) {
            kept += 1;
            assert_eq!(px, img.get_pixel(x, y), "pixel {x},{y} inside the field changed");
        }
    }
    assert!(kept > 500_000, "{kept} pixels checked");
}

/// A fixed layout whose "field" is the whole frame and a confidence no word reaches: nothing
/// is masked, the overlay stays, and verification must refuse the image.
#[test]
fn unmaskable_identifier_is_quarantined() {
    let p = &TAKAHASHI;
    let mut img = frame(6, 1280, 1024, Fov::Circle);
    let column = left_column(p, 12, 80, 48, p.birth_era);
    draw(&mut img, FontChoice::NotoSansMonoCjkJp, 30.0, [255, 255, 255], &column);
    let input = jpeg(&img);
    let st = PixelStage::new(PixelSettings {
        ocr_engines: 1,
        min_word_confidence: 101.0,
        layouts: vec![DeviceLayout {
            name: "everything".into(),
            width: 1280,
            height: 1024,
            fov: FovShape::Rect { x: 0.0, y: 0.0, w: 1280.0, h: 1024.0 },
            mask: Vec::new(),
            use_: LayoutUse::Fixed,
        }],
        ..Default::default()
    });
    let rgb = PixelStage::decode(&input).unwrap();
    let field = st.field(&input, &rgb);
    let source = field.as_ref().map(|f| f.1.clone());
    assert_eq!(source, Some(FieldSource::Layout("everything".into())));
    match st.clean(&input, &rgb, field, &p.ids()) {
        Err(PixelError::IdentifierFound(kind)) => eprintln!("quarantined: {}", kind.key()),
        Err(e) => panic!("expected IdentifierFound, got {e}"),
        Ok(c) => panic!("released an image with its overlay intact: {:?}", c.report),
    }
}

/// A black frame with only text: no field, and no layout for its size: refused.
#[test]
fn text_on_black_without_field_is_quarantined() {
    let p = &SAITO;
    let mut img = RgbImage::from_pixel(1280, 1024, Rgb([2, 2, 2]));
    let column = left_column(p, 12, 80, 48, p.birth_era);
    draw(&mut img, FontChoice::NotoSansCjkJp, 30.0, [255, 255, 255], &column);
    draw(&mut img, FontChoice::NotoSansCjkJp, 60.0, [255, 255, 255], &[line(400, 500, p.kanji)]);
    let input = jpeg(&img);
    let st = stage();
    let rgb = PixelStage::decode(&input).unwrap();
    let field = st.field(&input, &rgb);
    assert_eq!(field, None, "text alone is no field");
    match st.clean(&input, &rgb, field, &p.ids()) {
        Err(PixelError::FieldNotFound { width: 1280, height: 1024 }) => {}
        Err(e) => panic!("expected FieldNotFound, got {e}"),
        Ok(c) => panic!("released: {:?}", c.report),
    }
}

/// A frame too dark to detect, with a fallback layout configured for its size: the layout's
/// field is used and the overlay removed.
#[test]
fn dark_frame_uses_the_fallback_layout() {
    let p = &WATANABE;
    let (w, h) = (1280u32, 1024u32);
    let mut img = frame(7, w, h, Fov::Circle);
    for px in img.pixels_mut() {
        px.0 = px.0.map(|v| (u16::from(v) * 8 / 100) as u8);
    }
    let column = left_column(p, 12, 80, 48, p.birth_era);
    let outside = draw(&mut img, FontChoice::NotoSansMonoCjkJp, 30.0, [255, 255, 255], &column);
    // render's circle: r = 0.45 h (x 0.95-1.0), centre w - r - 0.03 w; the layout's is a
    // little smaller, as a profile measured on the device would be.
    let (fw, fh) = (w as f32, h as f32);
    let layout = DeviceLayout {
        name: "dark-sxga".into(),
        width: w,
        height: h,
        fov: FovShape::Circle { cx: fw - 0.45 * fh - 0.03 * fw, cy: fh / 2.0, r: 0.45 * fh * 0.95 },
        mask: Vec::new(),
        use_: LayoutUse::Fallback,
    };
    let settings = PixelSettings { ocr_engines: 1, layouts: vec![layout], ..Default::default() };
    let st = PixelStage::new(settings);
    let input = jpeg(&img);
    let rgb = PixelStage::decode(&input).unwrap();
    assert!(
        fgw_deid::pixels::fov::detect(rgb.as_raw(), w, h, 24).is_none(),
        "the frame must be too dark for detection"
    );
    let planted = Planted { outside, inside: Vec::new() };
    let (c, _, source) = check_removed("sxga-dark", &st, &input, &planted, p, &ALL_IDS);
    assert_eq!(source, FieldSource::Layout("dark-sxga".into()));
    assert_eq!(c.report.field, FieldSource::Layout("dark-sxga".into()));
}
