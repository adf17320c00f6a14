//! The parsers of untrusted bytes, on many deterministic mutations of valid inputs (bit
//! flips, byte overwrites, truncations, inserted and deleted runs). The coverage-guided
//! targets in fuzz/ need a nightly toolchain and run outside the test suite
//! (`bash scripts/fuzz.sh`); this runs the same entry points on stable, in every test run.
//! Each call must return Ok or Err: a panic fails the test.

use fgw_deid::dicom::{deidentify_dicom, DicomPolicy};
use fgw_deid::image_meta;
use fgw_deid::pixels::{jpeg_blocks, PixelMode, PixelSettings, PixelStage};
use fgw_deid::{DeidContext, Policy, Pseudonymizer};
use fgw_format::ids::FacilityId;
use fgw_synth::overlay::{encode_jpeg, render, Fov, Rng};
use std::process::Command;

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Mut(u64);
impl Mut {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn mutate(&mut self, src: &[u8]) -> Vec<u8> {
        let mut v = src.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(v.len());
            match self.below(6) {
                0 => v[at] ^= 1 << self.below(8),
                1 => v[at] = self.next() as u8,
                2 => v.truncate(at),
                3 => {
                    let n = self.below(64);
                    let end = (at + n).min(v.len());
                    v.drain(at..end);
                }
                4 => {
                    let b: Vec<u8> = (0..self.below(32)).map(|_| self.next() as u8).collect();
                    v.splice(at..at, b);
                }
                _ => {
                    // A length-like field set to an extreme value.
                    if at + 4 <= v.len() {
                        v[at..at + 4].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
                    }
                }
            }
            if v.is_empty() {
                break;
            }
        }
        v
    }
}

#[test]
fn dicom_read_path_survives_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let jpg = dir.path().join("f.jpg");
    image::RgbImage::from_fn(48, 32, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 90]))
        .save(&jpg)
        .unwrap();
    let dcm = dir.path().join("f.dcm");
    let out = Command::new("img2dcm")
        .args(["-i", "JPEG", "-k", "PatientName=MUTANT^MARKER", "-k", "PatientID=99887766"])
        .arg(&jpg)
        .arg(&dcm)
        .output()
        .expect("img2dcm (dcmtk) must be installed: scripts/ensure-deps.sh");
    assert!(out.status.success());
    let good = std::fs::read(&dcm).unwrap();

    let fac = FacilityId::new("F0001").unwrap();
    let ps = Pseudonymizer::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7; 32]));
    let policy = Policy::default();
    // Header path only: OCR on thousands of mutants would only measure Tesseract.
    let stage = PixelStage::new(PixelSettings { mode: PixelMode::Withhold, ..Default::default() });
    let ctx = DeidContext {
        facility: &fac,
        pseudonymizer: &ps,
        policy: &policy,
        profile: "mutants",
        revision: 1,
        pixels: &stage,
    };
    assert!(deidentify_dicom("good.dcm", &good, &ctx, &DicomPolicy::default()).is_ok());
    let mut m = Mut(0x9E3779B97F4A7C15);
    let mut refused = 0;
    for i in 0..3000 {
        let bad = m.mutate(&good);
        match deidentify_dicom(&format!("mutant {i}"), &bad, &ctx, &DicomPolicy::default()) {
            Err(e) => {
                refused += 1;
                let s = e.to_string();
                assert!(s.starts_with(&format!("mutant {i}")), "error names the file: {s}");
                assert!(!s.contains("MUTANT") && !s.contains("99887766"), "value in error: {s}");
            }
            Ok(r) => assert!(!String::from_utf8_lossy(&r.bytes).contains("99887766")),
        }
    }
    assert!(refused > 300, "mutations too gentle: only {refused} refused");
}

#[test]
fn image_paths_survive_mutations() {
    let img = render(&mut Rng::new(5), 160, 128, Fov::Circle);
    let good = encode_jpeg(&img, 85).unwrap();
    assert!(jpeg_blocks::geometry(&good).is_ok());
    let mut m = Mut(0xD1B54A32D192ED03);
    for _ in 0..3000 {
        let bad = m.mutate(&good);
        if let Ok(g) = jpeg_blocks::geometry(&bad) {
            let _ = jpeg_blocks::mask_mcus(&bad, &g, |c, r| (c + r) % 3 == 0);
        }
        if let Ok(clean) = image_meta::strip(&bad) {
            let _ = PixelStage::decode(&clean);
        }
    }
}

/// What libFuzzer found (`jpeg_mask`, a timeout): a 1 KB JPEG whose frame header declares
/// 65344 x 2048 pixels. Every path refuses it from the header, before decoding or reading
/// coefficients; a TIFF declaring as much is refused the same way (DICOM rows x columns:
/// tests/dicom_deid.rs).
#[test]
fn a_small_file_declaring_a_huge_picture_is_refused_from_its_header() {
    let img = render(&mut Rng::new(9), 64, 48, Fov::Circle);
    let good = encode_jpeg(&img, 85).unwrap();
    let sof = good.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline SOF");
    // Height then width, big endian: the fuzzer's 2048 x 65344, then one within the side
    // limit but over the pixel count.
    for (dims, h, w) in [("65344x2048", 2048u16, 65344u16), ("4100x4100", 4100, 4100)] {
        let mut jpeg = good.clone();
        jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        let g = jpeg_blocks::geometry(&jpeg);
        assert!(
            matches!(g, Err(jpeg_blocks::JpegBlockError::Unsupported(w)) if w.contains("size limit")),
            "{dims}: {g:?}"
        );
        let stripped = image_meta::strip(&jpeg).expect("metadata stripping does not decode");
        let e = PixelStage::decode(&stripped).expect_err("must not decode").to_string();
        assert!(e.contains("size limit") || e.contains(&format!("{dims} picture is over")), "{e}");
    }

    // Within the limit a picture decodes (the check is not refusing everything).
    let ok = encode_jpeg(&render(&mut Rng::new(9), 4096, 64, Fov::Circle), 85).unwrap();
    assert!(PixelStage::decode(&image_meta::strip(&ok).unwrap()).is_ok());

    // TIFF is re-encoded, so decoded: refused from its header too.
    let mut tiff = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(8193, 1).write_to(&mut tiff, image::ImageFormat::Tiff).unwrap();
    let e = image_meta::strip(&tiff.into_inner()).expect_err("must not decode");
    assert!(
        matches!(
            e,
            image_meta::ImageMetaError::OverLimits(_) | image_meta::ImageMetaError::TooLarge { .. }
        ),
        "{e:?}"
    );
}
