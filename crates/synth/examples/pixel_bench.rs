//! Benchmark of the burned-in text stage on a corpus from `shared/bench/make_corpus.py`
//! (driven by `bench/pixels.sh`, results in docs/benchmarks.md).
//!
//! usage: pixel_bench CORPUS OUT_DIR [--images N] [--threads T] [--fov-only]
//!
//! For the first N exam images (1 per exam first, then the rest, as the corpus lists them):
//! metadata strip, decode, field of view, and either the full stage (OCR of the field, mask,
//! OCR verification against the exam's identifiers from truth.json) or, with --fov-only, the
//! field-of-view mask alone (DCT domain). Cleaned images go to OUT_DIR (named by position) so
//! an independent OCR can check them; a JSON summary goes to stdout.

use fgw_deid::identifiers::IdentifierSet;
use fgw_deid::image_meta;
use fgw_deid::pixels::{PixelSettings, PixelStage};
use fgw_records::Column;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let corpus = PathBuf::from(&args[1]);
    let out = PathBuf::from(&args[2]);
    let opt = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let limit: usize = opt("--images").map(|v| v.parse().unwrap()).unwrap_or(50);
    let threads: usize = opt("--threads").map(|v| v.parse().unwrap()).unwrap_or(2);
    let fov_only = args.iter().any(|a| a == "--fov-only");
    std::fs::create_dir_all(&out).unwrap();

    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(corpus.join("truth.json")).unwrap()).unwrap();
    let mut jobs = Vec::new();
    for e in truth["exams"].as_array().unwrap() {
        let p = &e["pii"];
        let mut f = BTreeMap::new();
        f.insert(Column::PatientName, p["name_kanji"].as_str().unwrap().to_string());
        f.insert(Column::PatientKana, p["name_kana"].as_str().unwrap().to_string());
        f.insert(Column::PatientId, p["patient_id"].as_str().unwrap().to_string());
        f.insert(Column::BirthDate, p["birth_date"]["iso"].as_str().unwrap().to_string());
        let ids = IdentifierSet::from_fields(&f);
        for img in e["images"].as_array().unwrap() {
            jobs.push((corpus.join(img["path"].as_str().unwrap()), ids.clone()));
        }
    }
    jobs.truncate(limit);
    let n = jobs.len();
    let stage = PixelStage::new(PixelSettings { ocr_engines: threads, ..Default::default() });
    // Start the engines before the clock: model loading is a once-per-process cost.
    if !fov_only {
        stage.warm().expect("tesseract with jpn+eng");
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (path, ids) = &jobs[i];
                let t = Instant::now();
                let bytes = std::fs::read(path).unwrap();
                let img = image_meta::strip(&bytes).unwrap();
                let r = if fov_only {
                    match stage.mask_outside_field(&img.bytes).unwrap() {
                        None => "fov-not-found".to_string(),
                        Some((o, _)) => {
                            std::fs::write(out.join(format!("{i}.jpg")), o).unwrap();
                            "ok".into()
                        }
                    }
                } else {
                    let rgb = PixelStage::decode(&img).unwrap();
                    let field = stage.field(&img, &rgb);
                    match stage.clean(&img, &rgb, field, ids) {
                        Ok(c) => {
                            std::fs::write(
                                out.join(format!("{i}.{}", c.image.ext)),
                                &c.image.bytes,
                            )
                            .unwrap();
                            format!("ok text={} dct={}", c.report.text_regions, c.report.dct_domain)
                        }
                        Err(e) => format!("quarantined: {e}"),
                    }
                };
                results.lock().unwrap().push((i, t.elapsed().as_secs_f64(), r));
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let mut res = results.into_inner().unwrap();
    res.sort_by_key(|r| r.0);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, r) in &res {
        *outcomes.entry(r.clone()).or_default() += 1;
    }
    let mean = res.iter().map(|r| r.1).sum::<f64>() / n.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "images": n, "threads": threads, "fov_only": fov_only, "wall_s": wall,
            "images_per_s": n as f64 / wall, "mean_s_per_image": mean, "outcomes": outcomes,
        })
    );
}
