//! `loadgen`: the hub's load generator (`docs/hub-scale.md#load-test`).
//!
//! ```text
//! loadgen prepare --corpus DIR --exams N [--images-per-exam K --width W --height H]
//! loadgen issue --config HUB_TOML --devices N --facilities M --out CERTS
//! loadgen run --hub-url URL [--hub-url URL2] --certs CERTS --corpus DIR --devices N
//!             --packages-per-device K --concurrency C [--hub-pid PID]… [--json OUT]
//! ```

use clap::{Parser, Subcommand};
use fgw_loadgen::{certs, corpus, prepare, run};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator for the society hub")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a corpus of real de-identified packages (synth_department + gateway deid).
    Prepare {
        /// Output directory (packages/, objects/); must not exist.
        #[arg(long)]
        corpus: PathBuf,
        /// Exams.
        #[arg(long, default_value_t = 40)]
        exams: u32,
        /// Images per exam.
        #[arg(long, default_value_t = 30)]
        images_per_exam: u32,
        /// Image width in pixels.
        #[arg(long, default_value_t = 1280)]
        width: u32,
        /// Image height in pixels.
        #[arg(long, default_value_t = 1024)]
        height: u32,
        /// Seed of the synthetic department.
        #[arg(long, default_value_t = 15)]
        seed: u64,
        /// The synth_department example binary (cargo build -p fgw-synth --example synth_department).
        #[arg(long)]
        synth_bin: PathBuf,
        /// The gateway binary.
        #[arg(long)]
        gateway_bin: PathBuf,
    },
    /// Issue device certificates (and one operator's) with `hub issue-device`.
    Issue {
        /// The hub's configuration (its CA and registry).
        #[arg(long)]
        config: PathBuf,
        /// Devices.
        #[arg(long)]
        devices: usize,
        /// Facilities the devices are spread over.
        #[arg(long)]
        facilities: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The hub binary.
        #[arg(long, default_value = "hub")]
        hub_bin: PathBuf,
        /// `hub issue-device` processes at once (1 on SQLite: it refuses concurrent writers).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
    /// Run the load and print (and write) the JSON summary.
    Run {
        /// A hub node's base URL; repeat for several (devices are spread round-robin).
        #[arg(long = "hub-url", required = true)]
        hub_urls: Vec<String>,
        /// Certificate directory of `loadgen issue`.
        #[arg(long)]
        certs: PathBuf,
        /// Corpus directory of `loadgen prepare`.
        #[arg(long)]
        corpus: PathBuf,
        /// Simulated devices.
        #[arg(long)]
        devices: usize,
        /// Packages each device uploads, one at a time.
        #[arg(long, default_value_t = 2)]
        packages_per_device: u32,
        /// Devices uploading at once, at most.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// A hub process whose CPU time is measured; repeat for several.
        #[arg(long = "hub-pid")]
        hub_pids: Vec<u32>,
        /// A store process (PostgreSQL, Garage) whose CPU time is measured; repeat.
        #[arg(long = "store-pid")]
        store_pids: Vec<u32>,
        /// Pad every object to at least this many bytes with JPEG comment segments.
        #[arg(long, default_value_t = 0)]
        pad_to: usize,
        /// Files per package, at most (0: all); the rest are listed as withheld.
        #[arg(long, default_value_t = 0)]
        max_files: usize,
        /// Run id, part of every exam pseudonym (default: the current Unix time).
        #[arg(long)]
        run_id: Option<String>,
        /// Attempts per package beyond the first.
        #[arg(long, default_value_t = 5)]
        retries: u32,
        /// Timeout of one request, seconds.
        #[arg(long, default_value_t = 120)]
        request_timeout_secs: u64,
        /// Skip the exactly-once check.
        #[arg(long)]
        no_verify: bool,
        /// Also write the summary here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Worker threads of the runtime (default: the CPU count).
        #[arg(long)]
        threads: Option<usize>,
    },
}

fn main() -> ExitCode {
    match real_main(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.cmd {
        Cmd::Prepare {
            corpus,
            exams,
            images_per_exam,
            width,
            height,
            seed,
            synth_bin,
            gateway_bin,
        } => {
            prepare::prepare(&prepare::PrepareOptions {
                synth_bin,
                gateway_bin,
                corpus: corpus.clone(),
                exams,
                images_per_exam,
                width,
                height,
                seed,
            })?;
            let c = corpus::Corpus::load(&corpus)?;
            println!(
                "corpus {}: {} exam packages, {:.1} images each, {:.0} bytes per image",
                corpus.display(),
                c.packages.len(),
                c.mean_files(),
                c.mean_file_bytes()
            );
        }
        Cmd::Issue { config, devices, facilities, out, hub_bin, jobs } => {
            let t = std::time::Instant::now();
            certs::issue(&hub_bin, &config, devices, facilities, jobs, &out)?;
            println!(
                "issued {devices} devices over {facilities} facilities into {} in {:.1}s",
                out.display(),
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::Run {
            hub_urls,
            certs,
            corpus,
            devices,
            packages_per_device,
            concurrency,
            hub_pids,
            store_pids,
            pad_to,
            max_files,
            run_id,
            retries,
            request_timeout_secs,
            no_verify,
            json,
            threads,
        } => {
            let corpus = Arc::new(corpus::Corpus::load(&corpus)?);
            let run_id = run_id.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs().to_string())
                    .unwrap_or_default()
            });
            let opts = run::RunOptions {
                hub_urls: hub_urls.iter().map(|u| u.trim_end_matches('/').to_string()).collect(),
                certs,
                devices,
                packages_per_device,
                concurrency,
                hub_pids,
                store_pids,
                pad_to,
                max_files,
                run_id,
                retries,
                request_timeout: Duration::from_secs(request_timeout_secs),
                verify: !no_verify,
            };
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            rt.enable_all();
            if let Some(n) = threads {
                rt.worker_threads(n.max(1));
            }
            let summary = rt.build()?.block_on(run::run(corpus, &opts))?;
            let text = serde_json::to_string_pretty(&summary)?;
            println!("{text}");
            if let Some(path) = json {
                std::fs::write(&path, format!("{text}\n"))?;
            }
            let clean =
                summary.packages_failed == 0 && summary.verification.as_ref().is_none_or(|v| v.ok);
            return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(2) });
        }
    }
    Ok(ExitCode::SUCCESS)
}
