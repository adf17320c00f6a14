//! Text of every polarity and colour typed inside the field (issue 16): near-black, dark
//! blue, dark red, black on a white label, and the processor's light style, on the textured
//! mucosa of `synth::overlay::render`, in Noto Sans CJK JP and IPA Gothic, at 1920x1080,
//! 1280x1024 and 720x576.
//!
//! The proof does not trust the stage: the `tesseract` CLI reads each output file whole with
//! `--psm 11` and `--psm 6`, and each place text was typed alone, in gray (see
//! `burned_in_text`); none of the planted identifiers may be read in a released frame. The
//! same passes on the input must read something, or the test would prove nothing. Frames
//! must be released (the picture kept), with the centre of the field unchanged, MCU for MCU.

use super::burned_in_text::{
    clean, cli_ocr_psm, font, frame, jpeg, mcu_diff, mcu_inside, mcu_rect, stage, unmasked_ink,
    write, write_gray, Person, Reading, SAITO, TAKAHASHI, WATANABE,
};
use fgw_deid::image_meta::CleanImage;
use fgw_deid::pixels::{FieldSource, PixelStage};
use fgw_synth::overlay::{FontChoice, Fov, TextBox};
use fgw_synth::text_styles::{draw_styled, TextStyle};
use image::RgbImage;

const SIZES: [(u32, u32); 3] = [(1920, 1080), (1280, 1024), (720, 576)];
const FONTS: [FontChoice; 2] = [FontChoice::NotoSansCjkJp, FontChoice::IpaGothic];

/// A frame with `p`'s name and id typed in `style` in the upper and lower left of the field
/// (away from its centre). Returns the frame and the boxes drawn (the label, for a label).
fn typed(
    seed: u64,
    (w, h): (u32, u32),
    f: FontChoice,
    style: TextStyle,
    p: &Person,
) -> (RgbImage, Vec<TextBox>) {
    let mut img = frame(seed, w, h, Fov::Circle);
    // render's circle: r ~ 0.45 h, centre (w - r - 0.03 w, h / 2).
    let r = 0.45 * h as f32;
    let (cx, cy) = (w as f32 - r - 0.03 * w as f32, h as f32 / 2.0);
    let size = (h as f32 / 22.0).max(24.0);
    let x = (cx - 0.55 * r) as i32;
    let boxes = [(cy - 0.55 * r, p.kanji.to_string()), (cy + 0.35 * r, format!("ID {}", p.id))]
        .iter()
        .map(|(y, t)| draw_styled(&mut img, font(f), size, x, *y as i32, t, style))
        .collect();
    (img, boxes)
}

/// Every CLI pass over one image: whole file at psm 11 and 6, each typed box alone in gray.
fn read(name: &str, img: &CleanImage, boxes: &[TextBox], p: &Person) -> Reading {
    let path = write(name, img.ext, &img.bytes);
    let mut all = Reading::of(&cli_ocr_psm(&path, "11"), p);
    all = all.merge(&Reading::of(&cli_ocr_psm(&path, "6"), p));
    let rgb = PixelStage::decode(img).unwrap();
    for (i, b) in boxes.iter().enumerate() {
        let g = b.grown(16);
        let (cw, ch) = (g.w.min(rgb.width() - g.x), g.h.min(rgb.height() - g.y));
        let crop = image::imageops::crop_imm(&rgb, g.x, g.y, cw, ch).to_image();
        let path = write_gray(&format!("{name}-typed{i}"), &crop);
        for psm in ["7", "11"] {
            all = all.merge(&Reading::of(&cli_ocr_psm(&path, psm), p));
        }
    }
    all
}

/// One style in every size, the two fonts in turn (each font meets each size across styles).
fn style_is_masked(style: TextStyle, k: usize) {
    let st = stage();
    let people = [&TAKAHASHI, &WATANABE, &SAITO];
    for (i, &size) in SIZES.iter().enumerate() {
        let p = people[(i + k) % 3];
        let f = FONTS[(i + k) % 2];
        let name = format!("styled-{}-{}x{}", style.name(), size.0, size.1);
        let (img, boxes) = typed(40 + (k * 3 + i) as u64, size, f, style, p);
        let input = jpeg(&img);
        let before = read(&format!("{name}-in"), &input, &boxes, p);
        eprintln!("{name} ({f:?}): the CLI reads in the input {:?}", before.found);
        assert!(!before.is_clean(), "{name}: the CLI reads nothing in the input");

        let (c, field, source) = clean(&st, &input, p);
        assert_eq!(source, FieldSource::Detected);
        assert!(c.report.text_regions > 0, "{name}: typed text not found");
        let after = read(&format!("{name}-out"), &c.image, &boxes, p);
        assert!(after.is_clean(), "{name}: the CLI reads in the output: {after:?}");
        let out = PixelStage::decode(&c.image).unwrap();
        for b in &boxes {
            // The inked text (or the whole label) is black; nothing of it is left.
            assert_eq!(unmasked_ink(&out, b), 0, "{name}: ink left at {b:?}");
        }
        centre_kept(&name, &input, &c.image, c.report.masked_units, &field, &boxes);
    }
}

/// MCUs of the central third of the field, away from the typed text, are unchanged.
fn centre_kept(
    name: &str,
    input: &CleanImage,
    output: &CleanImage,
    masked: usize,
    field: &fgw_deid::pixels::fov::Field,
    boxes: &[TextBox],
) {
    let (g, changed, _) = mcu_diff(input, output, masked);
    let (fx, fy, fw, fh) = field.bbox();
    let centre = TextBox { x: fx + fw / 3, y: fy + fh / 3, w: fw / 3, h: fh / 3 };
    let near: Vec<TextBox> = boxes.iter().map(|b| b.grown(48)).collect();
    let mut kept = 0;
    for (m, &changed) in changed.iter().enumerate() {
        let (col, row) = (m as u32 % g.mcu_cols, m as u32 / g.mcu_cols);
        let (x, y, w, h) = mcu_rect(&g, col, row);
        if mcu_inside(field, &g, col, row)
            && centre.intersects(x, y, w, h)
            && !near.iter().any(|b| b.intersects(x, y, w, h))
        {
            kept += 1;
            assert!(!changed, "{name}: MCU ({col},{row}) in the centre of the field changed");
        }
    }
    assert!(kept > 50, "{name}: {kept} central MCUs checked");
}

#[test]
fn near_black_text_is_masked() {
    style_is_masked(TextStyle::NearBlack, 0);
}

#[test]
fn dark_blue_text_is_masked() {
    style_is_masked(TextStyle::DarkBlue, 1);
}

#[test]
fn dark_red_text_is_masked() {
    style_is_masked(TextStyle::DarkRed, 2);
}

#[test]
fn black_text_on_a_white_label_is_masked_with_its_label() {
    style_is_masked(TextStyle::BlackOnWhiteLabel, 3);
}

#[test]
fn light_text_is_masked() {
    style_is_masked(TextStyle::Light, 4);
}

/// Text-free frames of every size and both shapes: released, no text region, every MCU
/// inside the field unchanged (the release check reads no identifier shape in mucosa).
#[test]
fn text_free_frames_are_released_unharmed() {
    let st = stage();
    for (i, &(w, h)) in SIZES.iter().enumerate() {
        for fov in [Fov::Circle, Fov::Octagon] {
            let input = jpeg(&frame(60 + i as u64 * 2 + u64::from(fov == Fov::Octagon), w, h, fov));
            let (c, field, _) = clean(&st, &input, &TAKAHASHI);
            assert_eq!(c.report.text_regions, 0, "{w}x{h} {fov:?}: texture taken for text");
            let (g, changed, _) = mcu_diff(&input, &c.image, c.report.masked_units);
            for (m, &changed) in changed.iter().enumerate() {
                let (col, row) = (m as u32 % g.mcu_cols, m as u32 / g.mcu_cols);
                if mcu_inside(&field, &g, col, row) {
                    assert!(!changed, "{w}x{h} {fov:?}: MCU ({col},{row}) inside changed");
                }
            }
        }
    }
}
