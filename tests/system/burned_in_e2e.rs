//! Burned-in text end to end: a department export whose frames carry the processor's overlay
//! (ID, romaji name, era birth date, exam date, in a real Japanese font) goes through the
//! running gateway to the running hub. Every image ends either stored at the hub or withheld
//! on the box with a reason; the independent `tesseract` CLI reads none of the planted
//! identifiers in any image the hub stored, although it reads them in the inputs.

use crate::common;
use common::*;
use fgw_synth::{generate, SynthOptions, SynthOverlay};
use std::process::Command;
use std::time::Duration;

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase()
}

fn ocr(path: &std::path::Path) -> String {
    let out = Command::new("tesseract")
        .arg(path)
        .args(["-", "-l", "jpn+eng", "--psm", "11"])
        .output()
        .expect("tesseract CLI (tesseract-ocr) must be installed: scripts/ensure-deps.sh");
    assert!(out.status.success());
    squash(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn overlays_are_masked_before_upload_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    let opts = SynthOptions {
        exams: 4,
        images_per_exam: 2,
        overlay: SynthOverlay::Processor,
        ..SynthOptions::default()
    };
    let truth = generate(&export, &opts).unwrap();
    // What the overlay says, per exam: patient id and romaji name (spaces removed).
    let planted: Vec<(String, String)> =
        truth.exams.iter().map(|e| (e.patient_id.clone(), squash(&e.name_romaji))).collect();
    // The overlay is readable in the inputs (else this test would prove nothing).
    let first = all_files(&export).into_iter().find(|(p, _)| {
        p.extension().is_some_and(|x| x == "jpg")
            && p.to_string_lossy().contains(&truth.exams[0].exam_id)
    });
    let (first, _) = first.expect("a jpeg of the first exam");
    let text = ocr(&first);
    assert!(
        text.contains(&planted[0].0) || text.contains(&planted[0].1),
        "input overlay unreadable: {text}"
    );

    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    let out = gw.run_until_idle(Duration::from_secs(300));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let listing = hub.list(&root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), truth.exams.len(), "{listing:#?}");
    let sent: u64 = listing.iter().map(|r| r["files"].as_u64().unwrap()).sum();
    let withheld: u64 = listing.iter().map(|r| r["images_withheld"].as_u64().unwrap()).sum();
    assert_eq!(sent + withheld, (opts.exams * opts.images_per_exam) as u64, "an image was lost");
    assert!(sent > 0, "no image passed the stage: {listing:#?}");
    hub.stop();

    // Every image the hub stored, read by the CLI: no planted id or name.
    let dir = root.join("stored");
    std::fs::create_dir_all(&dir).unwrap();
    let mut images = 0;
    for (i, (_, bytes)) in hub.stored().into_iter().enumerate() {
        let ext = if bytes.starts_with(&[0xFF, 0xD8]) {
            "jpg"
        } else if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
            "png"
        } else {
            continue;
        };
        let p = dir.join(format!("{i}.{ext}"));
        std::fs::write(&p, &bytes).unwrap();
        images += 1;
        let text = ocr(&p);
        for (id, name) in &planted {
            assert!(!text.contains(id.as_str()), "patient id readable in a stored image");
            assert!(!text.contains(name.as_str()), "patient name readable in a stored image");
        }
    }
    assert_eq!(images as u64, sent, "stored images vs listing");
}
