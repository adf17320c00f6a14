//! A frame too dark for its field of view to be found (scope in the lumen, light off) is not
//! thrown away when another frame of the same exam, from the same processor, shows the field:
//! it borrows that field. Alone, it is withheld (`fov-not-found`), never released unmasked.

use fgw_deid::pixels::{PixelSettings, PixelStage};
use fgw_deid::{
    deidentify_exam, DeidContext, DeidOutcome, Policy, Pseudonymizer, QuarantineReason,
};
use fgw_format::ids::FacilityId;
use fgw_records::{Column, RawExam, RawImage};
use fgw_synth::overlay::{encode_jpeg, render, Fov, Rng};

fn frame(seed: u64, dim: f32) -> Vec<u8> {
    let mut img = render(&mut Rng::new(seed), 640, 512, Fov::Circle);
    for p in img.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (f32::from(*c) * dim) as u8;
        }
    }
    encode_jpeg(&img, 90).unwrap()
}

fn exam(images: Vec<Vec<u8>>) -> RawExam {
    let mut e = RawExam::with_fields(&[
        (Column::ExamId, "E1"),
        (Column::ExamDate, "2026/11/25"),
        (Column::PatientId, "00123456"),
        (Column::PatientName, "髙橋 一郎"),
    ]);
    e.images = images
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| RawImage { index: i as u32, rel_path: format!("{i}.jpg"), bytes })
        .collect();
    e
}

fn run(e: &RawExam) -> (usize, Vec<QuarantineReason>) {
    let fac = FacilityId::new("F0001").unwrap();
    let ps = Pseudonymizer::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[3; 32]));
    let policy = Policy::default();
    let stage = PixelStage::new(PixelSettings { ocr_engines: 1, ..Default::default() });
    let ctx = DeidContext {
        facility: &fac,
        pseudonymizer: &ps,
        policy: &policy,
        profile: "reference",
        revision: 1,
        pixels: &stage,
    };
    match deidentify_exam(e, &ctx) {
        DeidOutcome::Package { package, withheld } => {
            (package.files().len(), withheld.into_iter().map(|w| w.reason).collect())
        }
        DeidOutcome::Quarantined { reason } => panic!("{reason}"),
    }
}

#[test]
fn a_dark_frame_borrows_the_field_of_its_exam() {
    let dark = frame(2, 0.06);
    // Alone: no field, withheld.
    let (sent, withheld) = run(&exam(vec![dark.clone()]));
    assert_eq!((sent, withheld), (0, vec![QuarantineReason::FieldNotFound]));
    // With a normal frame of the same size: both released.
    let (sent, withheld) = run(&exam(vec![frame(1, 1.0), dark]));
    assert_eq!((sent, withheld.len()), (2, 0), "{withheld:?}");
}
