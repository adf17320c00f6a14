//! DICOM pixel data through the burned-in text stage, with real tools around it: a frame with
//! a processor-style overlay in a Japanese font is wrapped by DCMTK `img2dcm` (JPEG Baseline,
//! and native RGB from BMP), de-identified by the gate, then read back by `dcmdump` and
//! rendered by `dcmj2pnm`; the `tesseract` CLI reads the rendered output and none of the
//! planted identifiers is there (and all were readable in the input). Burned In Annotation
//! was NO in the source (wrong on purpose) and is NO in the output, which is now true.

use fgw_deid::dicom::{deidentify_dicom, DicomPolicy};
use fgw_deid::pixels::{PixelSettings, PixelStage};
use fgw_deid::{DeidContext, Policy, Pseudonymizer};
use fgw_format::ids::FacilityId;
use fgw_synth::overlay::{draw_text, render, system_font, FontChoice, Fov, Rng};
use std::path::Path;
use std::process::Command;

const NAME_ROMAJI: &str = "TAKAHASHI^ICHIRO";
const NAME_KANJI: &str = "髙橋 一郎";
const PATIENT_ID: &str = "00123456";
const BIRTH: &str = "19520121";

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (scripts/ensure-deps.sh): {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn squash(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfkc().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase()
}

/// Text the tesseract CLI reads in an image file.
fn ocr(path: &Path) -> String {
    let out = run("tesseract", &[path.to_str().unwrap(), "-", "-l", "jpn+eng", "--psm", "11"]);
    squash(&String::from_utf8_lossy(&out.stdout))
}

fn planted(text: &str) -> Vec<&'static str> {
    [("TAKAHASHI", "TAKAHASHI"), ("00123456", "00123456"), ("S27.01.21", "S27.01.21")]
        .into_iter()
        .filter(|(needle, _)| text.contains(needle))
        .map(|(_, n)| n)
        .collect()
}

/// A 1280x1024 frame, field on the right, overlay in the left border.
fn frame(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut img = render(&mut Rng::new(11), 1280, 1024, Fov::Circle);
    let font = system_font(FontChoice::NotoSansCjkJp).unwrap();
    for (i, line) in ["ID:00123456", "TAKAHASHI ICHIRO", NAME_KANJI, "S27.01.21", "2026/11/18"]
        .iter()
        .enumerate()
    {
        draw_text(&mut img, &font, 32.0, 24, 40 + 48 * i as i32, line, [235, 235, 235]);
    }
    let (jpg, bmp) = (dir.join("frame.jpg"), dir.join("frame.bmp"));
    std::fs::write(&jpg, fgw_synth::overlay::encode_jpeg(&img, 90).unwrap()).unwrap();
    img.save(&bmp).unwrap();
    (jpg, bmp)
}

fn wrap(dir: &Path, input: &Path, format: &str, name: &str) -> Vec<u8> {
    let out = dir.join(name);
    let k = |s: String| s;
    run(
        "img2dcm",
        &[
            "-i",
            format,
            "-k",
            &k(format!("PatientName={NAME_ROMAJI}")),
            "-k",
            &k(format!("PatientID={PATIENT_ID}")),
            "-k",
            &k(format!("PatientBirthDate={BIRTH}")),
            "-k",
            "BurnedInAnnotation=NO",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    std::fs::read(out).unwrap()
}

fn deid(bytes: &[u8], pixels: PixelSettings) -> fgw_deid::dicom::DicomResult {
    let fac = FacilityId::new("F0001").unwrap();
    let ps = Pseudonymizer::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7; 32]));
    let policy = Policy::default();
    let stage = PixelStage::new(pixels);
    let ctx = DeidContext {
        facility: &fac,
        pseudonymizer: &ps,
        policy: &policy,
        profile: "dicom",
        revision: 1,
        pixels: &stage,
    };
    deidentify_dicom("test.dcm", bytes, &ctx, &DicomPolicy::default()).expect("de-identified")
}

fn check(format: &str, source: &Path, expect_ts: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = wrap(dir.path(), source, format, "in.dcm");
    // The overlay is readable in the input, rendered by DCMTK itself.
    let in_png = dir.path().join("in.png");
    run(
        "dcmj2pnm",
        &["--write-png", dir.path().join("in.dcm").to_str().unwrap(), in_png.to_str().unwrap()],
    );
    let before = planted(&ocr(&in_png));
    assert_eq!(
        before.len(),
        3,
        "{format}: the CLI should read every planted identifier in the input: {before:?}"
    );

    let r = deid(&input, PixelSettings { ocr_engines: 1, ..Default::default() });
    assert!(r.has_pixel_data);
    assert!(r.pixels_cleaned, "{format}: refused: {:?}", r.pixels_refused);
    assert_eq!(r.quarantine_reason(), None);
    let out = dir.path().join("out.dcm");
    std::fs::write(&out, &r.bytes).unwrap();
    let dump =
        String::from_utf8_lossy(&run("dcmdump", &[out.to_str().unwrap()]).stdout).to_string();
    assert!(dump.contains(expect_ts), "{format}: transfer syntax: {dump}");
    assert!(dump.contains("(0028,0301) CS [NO]"), "{format}: burned in annotation: {dump}");
    assert!(!dump.contains("TAKAHASHI") && !dump.contains(PATIENT_ID), "{format}: header");
    let out_png = dir.path().join("out.png");
    run("dcmj2pnm", &["--write-png", out.to_str().unwrap(), out_png.to_str().unwrap()]);
    let after = planted(&ocr(&out_png));
    assert!(after.is_empty(), "{format}: identifiers read in the output: {after:?}");
    // The field survived: the rendered output is not blank.
    let img = image::open(&out_png).unwrap().to_rgb8();
    assert!(img.get_pixel(1280 - 450, 512).0.iter().any(|&v| v > 40), "{format}: field lost");
    assert_eq!(img.get_pixel(30, 60).0, [0, 0, 0], "{format}: border not black");
}

#[test]
fn jpeg_baseline_pixel_data_is_masked_in_place_and_stays_jpeg_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (jpg, _) = frame(dir.path());
    check("JPEG", &jpg, "JPEGBaseline");
}

#[test]
fn native_rgb_pixel_data_is_masked_and_stays_native() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bmp) = frame(dir.path());
    check("BMP", &bmp, "LittleEndianExplicit");
}

#[test]
fn withhold_mode_keeps_dicom_pixels_on_the_box() {
    let dir = tempfile::tempdir().unwrap();
    let (jpg, _) = frame(dir.path());
    let input = wrap(dir.path(), &jpg, "JPEG", "in.dcm");
    let r = deid(
        &input,
        PixelSettings { mode: fgw_deid::pixels::PixelMode::Withhold, ..Default::default() },
    );
    assert!(!r.pixels_cleaned);
    assert_eq!(r.quarantine_reason(), Some(fgw_deid::QuarantineReason::PixelsNotCleaned));
}
