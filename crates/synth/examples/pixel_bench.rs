//! Benchmark of the burned-in text stage on a corpus from `shared/bench/make_corpus.py`
//! (driven by `bench/pixels.sh`, results in docs/benchmarks.md).
//!
//! usage: pixel_bench CORPUS OUT_DIR [--images N] [--threads T] [--fov-only]
//!        pixel_bench --styled OUT_DIR [--threads T] [--no-cli]
//!
//! For the first N exam images (1 per exam first, then the rest, as the corpus lists them):
//! metadata strip, decode, field of view, and either the full stage (OCR of the field, mask,
//! OCR verification against the exam's identifiers from truth.json) or, with --fov-only, the
//! field-of-view mask alone (DCT domain). Cleaned images go to OUT_DIR (named by position) so
//! an independent OCR can check them; a JSON summary goes to stdout.
//!
//! `--styled` is issue 16's measurement, on a corpus generated here (no corpus needed): 5
//! exams of 10 frames (1920x1080, 1280x1024, 720x576 in turn), each with a processor's
//! light overlay in the border; in 20 of the 50 the patient's name and id are also typed
//! inside the field in one of the four dark styles (near-black, dark blue, dark red, black on
//! a white label; Noto Sans CJK JP and IPA Gothic in turn). It reports frames released, the
//! masked share of the field, and (unless `--no-cli`) the frames where the tesseract CLI
//! (`--psm 11` and `--psm 6`) still reads one of the exam's identifiers in the output.

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
    if args.get(1).map(String::as_str) == Some("--styled") {
        return styled::run(&args);
    }
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
    let (res, wall) = run_parallel(threads, n, |i| {
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
                    std::fs::write(out.join(format!("{i}.{}", c.image.ext)), &c.image.bytes)
                        .unwrap();
                    format!("ok text={} dct={}", c.report.text_regions, c.report.dct_domain)
                }
                Err(e) => format!("quarantined: {e}"),
            }
        };
        (t.elapsed().as_secs_f64(), r)
    });
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, r) in &res {
        *outcomes.entry(r.clone()).or_default() += 1;
    }
    let mean = res.iter().map(|r| r.0).sum::<f64>() / n.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "images": n, "threads": threads, "fov_only": fov_only, "wall_s": wall,
            "images_per_s": n as f64 / wall, "mean_s_per_image": mean, "outcomes": outcomes,
        })
    );
}

/// Runs `job(0..n)` on `threads` threads taking the next index as they free up; the results
/// in index order, and the wall time of the whole run.
fn run_parallel<R: Send>(
    threads: usize,
    n: usize,
    job: impl Fn(usize) -> R + Sync,
) -> (Vec<R>, f64) {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(n));
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = job(i);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let mut res = results.into_inner().unwrap();
    res.sort_by_key(|r| r.0);
    (res.into_iter().map(|(_, r)| r).collect(), wall)
}

mod styled {
    use fgw_deid::identifiers::IdentifierSet;
    use fgw_deid::image_meta;
    use fgw_deid::pixels::find::find_identifier;
    use fgw_deid::pixels::{PixelSettings, PixelStage};
    use fgw_records::Column;
    use fgw_synth::overlay::{
        draw_text, encode_jpeg, render, system_font, FontChoice, Fov, OverlayFont, Rng,
    };
    use fgw_synth::text_styles::{draw_styled, TextStyle};
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::Command;

    /// Fictitious patients: kanji, kana, id, birth date (ISO) and as printed (era letter).
    const PEOPLE: [(&str, &str, &str, &str, &str); 5] = [
        ("髙橋 一郎", "タカハシ イチロウ", "00123456", "1952-01-21", "S27.01.21"),
        ("渡邊 花子", "ワタナベ ハナコ", "7305182", "1973-05-18", "S48.05.18"),
        ("齋藤 健太", "サイトウ ケンタ", "0040917", "1990-03-15", "H2.03.15"),
        ("小野 美咲", "オノ ミサキ", "5512093", "1968-11-02", "S43.11.02"),
        ("森田 大輔", "モリタ ダイスケ", "20418837", "1985-07-30", "S60.07.30"),
    ];
    const SIZES: [(u32, u32); 3] = [(1920, 1080), (1280, 1024), (720, 576)];

    struct Job {
        exam: usize,
        input: Vec<u8>,
        styled: Option<TextStyle>,
    }

    fn ids(p: usize) -> IdentifierSet {
        let (kanji, kana, id, birth, _) = PEOPLE[p];
        let mut f = BTreeMap::new();
        f.insert(Column::PatientName, kanji.to_string());
        f.insert(Column::PatientKana, kana.to_string());
        f.insert(Column::PatientId, id.to_string());
        f.insert(Column::BirthDate, birth.to_string());
        IdentifierSet::from_fields(&f)
    }

    fn frame(exam: usize, n: usize, fonts: &[OverlayFont]) -> Job {
        let (kanji, _, id, _, era) = PEOPLE[exam];
        let (w, h) = SIZES[(exam * 10 + n) % 3];
        let fov = if n.is_multiple_of(2) { Fov::Circle } else { Fov::Octagon };
        let mut img = render(&mut Rng::new(1000 + (exam * 10 + n) as u64), w, h, fov);
        let px = h as f32 / 30.0;
        let font = &fonts[(exam + n) % 2];
        for (i, t) in [format!("ID:{id}"), kanji.to_string(), era.to_string()].iter().enumerate() {
            draw_text(&mut img, font, px, 12, 20 + i as i32 * (px * 1.6) as i32, t, [255; 3]);
        }
        // Frames 0..4 of each exam carry typed text: 4 per exam, 20 in all, styles in turn.
        let styled = (n < 4).then(|| TextStyle::DARK[(exam + n) % 4]);
        if let Some(style) = styled {
            let fx = (w as f32 - 0.45 * h as f32 - 0.03 * w as f32) as i32;
            let size = (h as f32 / 22.0).max(22.0);
            let (x, y) = (fx - (3.0 * size) as i32, (h / 2) as i32 - (size * 1.5) as i32);
            draw_styled(&mut img, font, size, x, y, kanji, style);
            draw_styled(
                &mut img,
                font,
                size,
                x,
                y + (size * 1.8) as i32,
                &format!("ID {id}"),
                style,
            );
        }
        Job { exam, input: encode_jpeg(&img, 90).expect("jpeg"), styled }
    }

    /// Frames where the tesseract CLI reads an identifier of the exam in `path`.
    fn cli_reads(path: &Path, ids: &IdentifierSet) -> bool {
        ["11", "6"].iter().any(|psm| {
            let out = Command::new("tesseract")
                .arg(path)
                .args(["-", "-l", "jpn+eng", "--psm", psm])
                .env("OMP_THREAD_LIMIT", "1")
                .output()
                .expect("tesseract CLI");
            find_identifier(&String::from_utf8_lossy(&out.stdout), ids).is_some()
        })
    }

    pub(super) fn run(args: &[String]) {
        let out = std::path::PathBuf::from(&args[2]);
        let opt = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
        let threads: usize = opt("--threads").map(|v| v.parse().unwrap()).unwrap_or(2);
        let cli = !args.iter().any(|a| a == "--no-cli");
        std::fs::create_dir_all(&out).unwrap();
        let fonts: Vec<OverlayFont> = [FontChoice::NotoSansCjkJp, FontChoice::IpaGothic]
            .iter()
            .map(|&f| system_font(f).expect("fonts"))
            .collect();
        let jobs: Vec<Job> = (0..5)
            .flat_map(|e| (0..10).map(move |n| (e, n)))
            .map(|(e, n)| frame(e, n, &fonts))
            .collect();
        let stage = PixelStage::new(PixelSettings { ocr_engines: threads, ..Default::default() });
        stage.warm().expect("tesseract with jpn+eng");
        let (res, wall) = super::run_parallel(threads, jobs.len(), |i| {
            let job = &jobs[i];
            let img = image_meta::strip(&job.input).unwrap();
            let rgb = PixelStage::decode(&img).unwrap();
            let field = stage.field(&img, &rgb);
            let area = field.as_ref().map(|f| f.0.clone());
            let r = stage.clean(&img, &rgb, field, &ids(job.exam));
            r.map(|c| (c.image, area))
        });
        let (mut released, mut styled_released, mut readable, mut readable_styled) = (0, 0, 0, 0);
        let mut masked_share = Vec::new();
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (i, r) in res.into_iter().enumerate() {
            let job = &jobs[i];
            std::fs::write(out.join(format!("{i}-in.jpg")), &job.input).unwrap();
            match r {
                Err(e) => *reasons.entry(e.to_string()).or_default() += 1,
                Ok((img, field)) => {
                    released += 1;
                    styled_released += usize::from(job.styled.is_some());
                    let path = out.join(format!("{i}-out.{}", img.ext));
                    std::fs::write(&path, &img.bytes).unwrap();
                    if let Some(f) = field {
                        let o = PixelStage::decode(&img).unwrap();
                        let inp = image::load_from_memory(&job.input).unwrap().to_rgb8();
                        let (mut inside, mut black) = (0u64, 0u64);
                        for (x, y, p) in o.enumerate_pixels() {
                            if f.inside(x, y) {
                                inside += 1;
                                let dark = |q: &image::Rgb<u8>| q.0.iter().all(|&v| v <= 8);
                                black += u64::from(dark(p) && !dark(inp.get_pixel(x, y)));
                            }
                        }
                        masked_share.push(black as f64 / inside.max(1) as f64);
                    }
                    if cli && cli_reads(&path, &ids(job.exam)) {
                        readable += 1;
                        readable_styled += usize::from(job.styled.is_some());
                    }
                }
            }
        }
        let mean_masked = masked_share.iter().sum::<f64>() / masked_share.len().max(1) as f64;
        let max_masked = masked_share.iter().copied().fold(0.0, f64::max);
        println!(
            "{}",
            serde_json::json!({
                "frames": jobs.len(), "styled_frames": jobs.iter().filter(|j| j.styled.is_some()).count(),
                "released": released, "styled_released": styled_released,
                "cli_reads_identifier": if cli { Some(readable) } else { None },
                "cli_reads_identifier_styled": if cli { Some(readable_styled) } else { None },
                "field_masked_mean": mean_masked, "field_masked_max": max_masked,
                "withheld": reasons, "threads": threads, "wall_s": wall,
                "images_per_s": jobs.len() as f64 / wall,
            })
        );
    }
}
