//! The command line: clap parsing and dispatch to the library. Errors are reported with
//! anyhow here, in the binary; the library has its own error enums.

use clap::{Parser, Subcommand};
use fgw_format::ids::QueueId;
use fgw_gateway::config::{GatewayConfig, DEFAULT_CONFIG_PATH};
use fgw_gateway::pipeline::{self, RunMode};
use fgw_gateway::state::{Db, ItemState, MetaKey, Origin};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Facility gateway: de-identify endoscopy exams on the box and upload them to the society hub"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon: watch the export folder, de-identify, upload.
    Run {
        /// Stop once every ready batch is ingested and every item is finished.
        #[arg(long)]
        exit_when_idle: bool,
    },
    /// Queue counts per state, last upload, last error (no personal data).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// One-shot de-identification of a folder (exports and/or DICOM) into OUTPUT_DIR.
    Deid { input: PathBuf, output: PathBuf },
    /// Items kept on the box.
    Quarantine {
        #[command(subcommand)]
        cmd: QuarantineCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate a configuration file (same checks as the daemon's start).
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum QuarantineCmd {
    /// List quarantined items: id, kind, reason.
    List,
    /// Show one item, including where it came from. Local use only: the location may
    /// name the patient's exam.
    Show { id: String },
}

/// Parse the command line, run the command, and turn its error into a message and exit code.
pub(crate) fn run() -> ExitCode {
    let cli = Cli::parse();
    fgw_gateway::logging::init("gateway");
    fgw_tls::install_ring_provider();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gateway: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<GatewayConfig> {
    Ok(GatewayConfig::load(path)?)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Config { cmd: ConfigCmd::Check { file } } => {
            let cfg = load(&file)?;
            println!(
                "{}: ok (facility {}, device {})",
                file.display(),
                cfg.facility_id,
                cfg.device_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { exit_when_idle } => {
            let cfg = load(&cli.config)?;
            let mode = if exit_when_idle { RunMode::UntilIdle } else { RunMode::Forever };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("SIGTERM handler");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    tracing::info!("shutdown requested");
                    let _ = tx.send(true);
                });
                pipeline::run(cfg, mode, rx).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { json } => {
            let cfg = load(&cli.config)?;
            let db = Db::open(&cfg.db_path())?;
            let counts = db.counts(Origin::Daemon)?;
            let last_upload = db.meta(MetaKey::LastUploadAt)?;
            let last_error = db.meta(MetaKey::LastError)?;
            // Dates only (window bounds of our own queries), never a study's values.
            let pull = match &cfg.dicom_pull.archive_ae {
                Some(ae) => db.pull_mark(ae.as_str())?.map(|m| (ae.clone(), m)),
                None => None,
            };
            if json {
                let v = serde_json::json!({
                    "facility_id": cfg.facility_id,
                    "device_id": cfg.device_id,
                    "counts": counts.iter().map(|(k, v)| (k.as_str(), v)).collect::<std::collections::BTreeMap<_, _>>(),
                    "last_upload_at": last_upload,
                    "last_error": last_error,
                    "dicom_pull": pull.map(|(ae, m)| serde_json::json!({
                        "archive_ae": ae.as_str(),
                        "start_date": m.start.to_string(),
                        "watermark": m.watermark.map(|w| w.to_string()),
                    })),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("facility {}  device {}", cfg.facility_id, cfg.device_id);
                for (state, n) in &counts {
                    println!("  {:<13} {n}", state.as_str());
                }
                println!("  last upload   {}", last_upload.as_deref().unwrap_or("never"));
                println!("  last error    {}", last_error.as_deref().unwrap_or("none"));
                if let Some((ae, m)) = pull {
                    let w = m.watermark.map_or("none".to_string(), |w| w.to_string());
                    println!("  dicom pull    {ae}: from {} complete up to {w}", m.start);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Deid { input, output } => {
            let cfg = load(&cli.config)?;
            let bar = indicatif::ProgressBar::new(0);
            if !std::io::stderr().is_terminal() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed}")
                    .expect("template"),
            );
            let progress = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let report = fgw_gateway::offline::run(&cfg, &input, &output, &progress)?;
            bar.finish_and_clear();
            let c = &report.counts;
            println!(
                "exams {}/{} out, images {}/{} out, dicom {}/{} out, {} quarantined, {} superseded; report: {}",
                c.exams_out,
                c.exams_in,
                c.images_out,
                c.images_in,
                c.dicom_out,
                c.dicom_in,
                c.quarantined,
                c.superseded,
                output.join("report.json").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Quarantine { cmd } => {
            let cfg = load(&cli.config)?;
            let db = Db::open(&cfg.db_path())?;
            match cmd {
                QuarantineCmd::List => {
                    for item in db.quarantined()? {
                        println!(
                            "{}  {:<6} {:<8} {}",
                            item.id,
                            item.kind.as_str(),
                            item.origin.as_str(),
                            item.reason.map(|r| r.to_string()).unwrap_or_default()
                        );
                    }
                }
                QuarantineCmd::Show { id } => {
                    let id = QueueId::new(id)?;
                    let item = db.get(&id)?;
                    if item.state != ItemState::Quarantined {
                        anyhow::bail!(
                            "item {id} is not quarantined (state {})",
                            item.state.as_str()
                        );
                    }
                    println!("{}", serde_json::to_string_pretty(&item)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
