//! DICOM header de-identification throughput (docs/benchmarks.md, issue 3).
//!
//! cargo run --release --example dicom_deid_bench -- IN_DIR OUT_DIR [--threads N]
//!     [--pixels withhold|clean]
//!
//! De-identifies every `*.dcm` under IN_DIR with `fgw_deid::dicom::deidentify_dicom_into`
//! (default `DicomPolicy`, a fixed test key, facility `BENCH`) and writes each result to
//! OUT_DIR under the same relative path, as the reference tools write theirs. Header only by
//! default: the context uses `PixelMode::Withhold`, so the burned-in text stage does not run
//! and the written files keep the source's pixel data (the stage is benchmarked by
//! bench/pixels.sh; in the pipeline, with the default `PixelMode::Clean`, every object with
//! pixel data goes through it and what it releases is uploaded as one package per object).
//! `--pixels clean` runs the stage as the pipeline does. The time covers reading,
//! de-identifying and writing; one worker by default (like-for-like with the single-process
//! Python tools), `--threads N` splits the files between N std threads, each reusing one input
//! and one output buffer.
//!
//! Prints one line: files, errors, threads, seconds, files/s. Errors (which name the file by
//! position and never a value) go to stderr; the exit code is 1 when any file failed.

use fgw_deid::dicom::{deidentify_dicom_into, DicomPolicy};
use fgw_deid::pixels::{PixelMode, PixelSettings, PixelStage};
use fgw_deid::{DeidContext, Policy, Pseudonymizer};
use fgw_format::ids::FacilityId;
use fgw_gateway::secrets::Secrets;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const USAGE: &str =
    "usage: dicom_deid_bench IN_DIR OUT_DIR [--threads N] [--pixels withhold|clean]";

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type()?;
        let p = e.path();
        if ft.is_dir() {
            collect(&p, out)?;
        } else if ft.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("dcm")) {
            out.push(p);
        }
    }
    Ok(())
}

fn parse() -> Result<(PathBuf, PathBuf, usize, PixelMode), String> {
    let mut pos = Vec::new();
    let mut threads = 1usize;
    let mut mode = PixelMode::Withhold;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--threads needs a positive number")?
            }
            "--pixels" => {
                mode = match args.next().as_deref() {
                    Some("withhold") => PixelMode::Withhold,
                    Some("clean") => PixelMode::Clean,
                    _ => return Err(format!("--pixels takes withhold or clean\n{USAGE}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => pos.push(PathBuf::from(a)),
        }
    }
    match <[PathBuf; 2]>::try_from(pos) {
        Ok([i, o]) => Ok((i, o, threads, mode)),
        Err(_) => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let (input, output, threads, mode) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut files = Vec::new();
    if let Err(e) = collect(&input, &mut files) {
        eprintln!("{}: {e}", input.display());
        return ExitCode::from(2);
    }

    let pseudonymizer = Pseudonymizer::new(Secrets::from_bytes([7; 32]).pseudonym_key());
    let facility = FacilityId::new("BENCH").expect("valid facility id");
    let policy = Policy::default();
    let dicom = DicomPolicy::default();
    let ctx = DeidContext {
        facility: &facility,
        pseudonymizer: &pseudonymizer,
        policy: &policy,
        profile: "dicom",
        revision: 1,
        // Header de-identification only by default: pixels are benchmarked by bench/pixels.sh.
        pixels: &PixelStage::new(PixelSettings { mode, ..Default::default() }),
    };

    let next = AtomicUsize::new(0);
    let errors = AtomicUsize::new(0);
    // Each worker reuses one input and one output buffer across its files.
    let worker = || {
        let (mut input_buf, mut output_buf) = (Vec::new(), Vec::new());
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let Some(f) = files.get(n) else { break };
            let label = format!("dicom file {}", n + 1);
            let fail = |what: String| {
                eprintln!("{what}");
                errors.fetch_add(1, Ordering::Relaxed);
            };
            input_buf.clear();
            if let Err(e) = std::fs::File::open(f).and_then(|mut r| r.read_to_end(&mut input_buf)) {
                fail(format!("{label}: cannot read: {e}"));
                continue;
            }
            let out = std::mem::take(&mut output_buf);
            match deidentify_dicom_into(&label, &input_buf, &ctx, &dicom, out) {
                Err(e) => fail(e.to_string()),
                Ok(res) => {
                    let dest = output.join(f.strip_prefix(&input).unwrap_or(f));
                    let written = dest
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| std::fs::write(&dest, &res.bytes));
                    if let Err(e) = written {
                        fail(format!("{label}: cannot write: {e}"));
                    }
                    output_buf = res.bytes;
                }
            }
        }
    };

    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(worker);
        }
        worker();
    });
    let secs = t0.elapsed().as_secs_f64();
    let errors = errors.into_inner();
    println!(
        "files {} errors {} threads {} seconds {:.3} files/s {:.1}",
        files.len(),
        errors,
        threads,
        secs,
        files.len() as f64 / secs.max(1e-9)
    );
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
