//! Write a synthetic department-system export (fictitious patients) for demos and tests.
//!
//! cargo run --example synth_department -- OUT_DIR [--seed N] [--exams N]
//!     [--images-per-exam N] [--width PX] [--height PX] [--batch NAME] [--utf8] [--overlay]
//!     [--truth FILE]
//!
//! The same seed re-exports the same exams: run twice with another --batch for a re-export.

use fgw_synth::{generate, SynthEncoding, SynthOptions};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: synth_department OUT_DIR [--seed N] [--exams N] \
                     [--images-per-exam N] [--width PX] [--height PX] [--batch NAME] [--utf8] \
                     [--overlay] [--truth FILE]";

fn parse() -> Result<(PathBuf, SynthOptions, Option<PathBuf>), String> {
    let mut opts = SynthOptions::default();
    let mut out = None;
    let mut truth = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num =
            |s: String, name: &str| s.parse::<u64>().map_err(|_| format!("{name}: not a number"));
        let px = |n: u64, name: &str| u32::try_from(n).map_err(|_| format!("{name}: too large"));
        match a.as_str() {
            "--seed" => opts.seed = num(value("--seed")?, "--seed")?,
            "--exams" => opts.exams = num(value("--exams")?, "--exams")? as usize,
            "--images-per-exam" => {
                opts.images_per_exam =
                    num(value("--images-per-exam")?, "--images-per-exam")? as usize
            }
            "--width" => opts.width = px(num(value("--width")?, "--width")?, "--width")?,
            "--height" => opts.height = px(num(value("--height")?, "--height")?, "--height")?,
            "--batch" => opts.batch = value("--batch")?,
            "--utf8" => opts.encoding = SynthEncoding::Utf8Bom,
            "--overlay" => opts.overlay = fgw_synth::SynthOverlay::Processor,
            "--truth" => truth = Some(PathBuf::from(value("--truth")?)),
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ if out.is_none() => out = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument\n{USAGE}")),
        }
    }
    Ok((out.ok_or(USAGE)?, opts, truth))
}

fn main() -> ExitCode {
    let (out, opts, truth_path) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let truth = match generate(&out, &opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("synth_department: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(p) = &truth_path {
        let json = serde_json::to_vec_pretty(&truth).expect("truth serializes");
        if let Err(e) = std::fs::write(p, json) {
            eprintln!("synth_department: cannot write truth file: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Counts only: the summary must not print (even fictitious) personal data.
    let images: usize = truth.exams.iter().map(|e| e.images.len()).sum();
    let reports = truth.exams.iter().filter(|e| e.report.is_some()).count();
    println!(
        "batch {}: {} exams, {} images, {} reports, {:?}, seed {}{}",
        truth.batch,
        truth.exams.len(),
        images,
        reports,
        truth.encoding,
        truth.seed,
        if truth_path.is_some() { ", truth written" } else { "" }
    );
    ExitCode::SUCCESS
}
