//! The command line: clap parsing and dispatch to the library. Errors are reported with
//! anyhow here, in the binary; the library has its own error enums.

use clap::{Parser, Subcommand};
use fgw_format::ids::{FacilityId, QueueId};
use fgw_gateway::config::{GatewayConfig, DEFAULT_CONFIG_PATH};
use fgw_gateway::offline::KeySource;
use fgw_gateway::pipeline::{self, RunMode};
use fgw_gateway::state::{Db, ItemReason, ItemState, Lane, MetaKey, Origin, Redrive, RedriveTo};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Facility gateway: de-identify endoscopy exams on the box and upload them to the society hub"
)]
struct Cli {
    /// Configuration file [default: /etc/facility-gateway/gateway.toml]. `gateway deid` runs
    /// without one, with an ephemeral key.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
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
    /// One-shot de-identification of a folder (exports and/or DICOM) into OUTPUT_DIR. With
    /// the box's configuration it uses the box's key (pseudonyms match the daemon's); without
    /// one (no --config, no /etc/facility-gateway/gateway.toml) a key made for this run only.
    Deid {
        input: PathBuf,
        output: PathBuf,
        /// Facility id for the packages of a run without a configuration (default `local`).
        #[arg(long)]
        facility: Option<FacilityId>,
    },
    /// Items kept on the box.
    Quarantine {
        #[command(subcommand)]
        cmd: QuarantineCmd,
    },
    /// The box's identity: its key store, serial and certificates (`[identity]`).
    Identity {
        #[command(subcommand)]
        cmd: IdentityCmd,
    },
    /// The facility's keys: the recovery kit that lets a replacement box keep the same
    /// pseudonyms.
    Secrets {
        #[command(subcommand)]
        cmd: SecretsCmd,
    },
    /// The de-identification policy in force: show it, or export it as a policy bundle.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
    /// The firewall's allow-lists (nftables sets) from the configuration: the department
    /// system's addresses and the listeners' ports, the hub nodes and the proxy. Printed, or
    /// written whole to --out (facility-gateway-firewall.service loads it with the ruleset).
    Firewall {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// OS updates: check a RAUC bundle against the box's keyring and hardware.
    Update {
        #[command(subcommand)]
        cmd: UpdateCmd,
    },
}

/// Where `update check|apply` take releases from, and an offer given by hand.
#[derive(clap::Args)]
struct UpdateSource {
    /// Read the repository from a folder (a USB stick holding `metadata/` and `targets/`)
    /// instead of the hub; with --kind and --version, as if offered.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    #[arg(long, requires = "version")]
    kind: Option<String>,
    #[arg(long, requires = "kind")]
    version: Option<String>,
}

#[derive(Subcommand)]
enum UpdateCmd {
    /// What the box would install, and why or why not: the hub's rollout offers, verified
    /// against the signed TUF targets (root from `[update] tuf_root`). Installs nothing.
    Check {
        /// One JSON document (`os_version`, `policy_version`, `updates`: per kind `verdict`
        /// and `reason`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: UpdateSource,
    },
    /// The health check after an OS update boots: daemon unit active, state database,
    /// identity, hub reachable, an authenticated round trip. With --mark, RAUC marks the
    /// slot good, or bad and the box reboots into the other slot. Exit 1 when unhealthy.
    Health {
        #[arg(long)]
        json: bool,
        /// Mark the booted slot with `rauc status mark-good|mark-bad`.
        #[arg(long)]
        mark: bool,
        /// The daemon's systemd unit to check (the image's: facility-gateway.service).
        #[arg(long)]
        unit: Option<String>,
    },
    /// Check, then install what the check says to install (the daemon does this by itself
    /// every `[update] check_secs`). Prints the outcomes as JSON.
    Apply {
        #[command(flatten)]
        source: UpdateSource,
    },
    /// Verify BUNDLE with rauc: signed by the update key of `[update] keyring`, for this
    /// box's `[update] compatible`. Prints its version.
    Verify {
        /// The `.raucb` file.
        bundle: PathBuf,
        /// JSON (`compatible`, `version`, `images`).
        #[arg(long)]
        json: bool,
    },
}

/// The update check of `gateway update check|apply`: offers from the hub (through the
/// uplink with the box's certificate), or, with `from`, a repository folder and the offer
/// given by hand.
async fn update_check(
    cfg: &GatewayConfig,
    UpdateSource { from, kind, version }: UpdateSource,
) -> anyhow::Result<(
    fgw_gateway::updater::CheckReport,
    Option<fgw_release::Trusted>,
    fgw_gateway::release_transport::RepoSource,
)> {
    use fgw_format::package::protocol::UpdateOffer;
    use fgw_gateway::release_transport::{RepoSource, UplinkTransport};
    use fgw_gateway::updater::{self, CheckError};
    let db = Db::open(&cfg.db_path())?;
    let waiting = updater::waiting(&db);
    let by_hand = kind.zip(version).map(|(kind, version)| UpdateOffer {
        kind,
        state: "offered".into(),
        version: Some(version),
        rollout: 0,
        wave: None,
        wave_starts: None,
        force: true,
    });
    if let Some(dir) = from {
        let offers = Ok(by_hand.into_iter().collect());
        let source = RepoSource::Folder(dir);
        let (report, trusted) = updater::check(cfg, offers, &source, waiting).await;
        return Ok((report, trusted, source));
    }
    let uplink = cli_uplink(cfg)?;
    let offers = match by_hand {
        Some(o) => Ok(vec![o]),
        None => uplink
            .update_offers()
            .await
            .map(|o| o.offers)
            .map_err(|e| CheckError { class: "hub_unreachable".into(), message: e.to_string() }),
    };
    let transport = UplinkTransport::new(uplink.http_client().clone(), uplink.request_timeout())
        .resumable(updater::partial_dir(cfg));
    let source = RepoSource::Hub(transport, uplink.base_url().to_string());
    let (report, trusted) = updater::check(cfg, offers, &source, waiting).await;
    Ok((report, trusted, source))
}

/// An uplink for a command: the certificate files of `[uplink]`, or the enrolled identity
/// (its operational certificate; through the tunnel's API address when the box uses one).
fn cli_uplink(cfg: &GatewayConfig) -> anyhow::Result<fgw_outbound::uplink::Uplink> {
    use fgw_outbound::uplink::{ClientCredential, Uplink};
    let Some(id_cfg) = &cfg.identity else {
        return Ok(Uplink::new(&cfg.uplink)?);
    };
    let identity = fgw_gateway::identity::BoxIdentity::open(cfg, id_cfg)?;
    let cert = identity.client_certificate()?;
    let mut uplink_cfg = cfg.uplink.clone();
    if cfg.vpn.mode != fgw_gateway::tunnel::VpnMode::Off {
        let dir = fgw_gateway::identity::identity_dir(cfg);
        if let Some(enrollment) = fgw_gateway::identity::stored_enrollment(&dir)? {
            if let Some(api) = fgw_gateway::tunnel::peer_of(&enrollment.config)?.api_url {
                uplink_cfg.hub_url = api;
            }
        }
    }
    let credential =
        ClientCredential::Resolver { ca_cert: identity.ca_cert().to_path_buf(), resolver: cert };
    Ok(Uplink::with_credential(&uplink_cfg, credential)?)
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Write the active policy as files (policy.toml, profile.toml, terms.toml, bundle.json)
    /// into DIR, a new or empty folder: the form a policy release is made from.
    Export {
        /// The folder to write.
        dir: PathBuf,
    },
    /// The policy's id, version and vendor profile.
    Show {
        /// JSON (`id`, `version`, `profile`, `source`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum IdentityCmd {
    /// At imaging: create the device identity key in the key store (kept if it exists) and
    /// write its CSR, for `hub device add --csr`. Prints the serial and the CSR's path.
    Init {
        #[arg(long)]
        json: bool,
        /// Where to write the CSR [default: <state_dir>/identity/idevid.csr].
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
    },
    /// Which key store the box uses, its serial, and the operational certificate's dates.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Enroll with the hub now if needed (the daemon does this at start and renews by
    /// itself); `--renew` asks for a new certificate even if the current one is not due.
    Enroll {
        #[arg(long)]
        renew: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SecretsCmd {
    /// Split the box's root secret into a recovery kit: N share sheets in DIR, any K of
    /// which rebuild the facility's keys on a replacement box. The hospital keeps them apart;
    /// the society must never receive K of them.
    ExportRecovery {
        /// Folder for the sheets (made 0700 if missing; refused if it holds a kit already).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// N, the number of share sheets (at most 9).
        #[arg(
            long,
            value_name = "N",
            default_value_t = fgw_gateway::recovery::KitParams::DEFAULT.shares()
        )]
        shares: u8,
        /// K, how many sheets rebuild the keys (at least 2).
        #[arg(
            long,
            value_name = "K",
            default_value_t = fgw_gateway::recovery::KitParams::DEFAULT.threshold()
        )]
        threshold: u8,
    },
    /// On a replacement box: combine K share sheets of the facility's kit into the box's root
    /// secret (refused if the box already has another one).
    ImportRecovery {
        /// The share sheets (`recovery-share-<i>-of-<n>.txt`).
        #[arg(required = true, value_name = "SHARE_FILE")]
        files: Vec<PathBuf>,
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
    /// Send items back into the pipeline once the cause is fixed: those the hub refused
    /// (`hub-refused`, uploaded again) and DICOM conflicts an operator decided for
    /// (`dicom-instance-conflict`, through the gate again). The daemon takes them up at its
    /// next start.
    Redrive {
        /// Every item whose reason has this code.
        #[arg(long, value_name = "CODE", conflicts_with = "ids", required_unless_present = "ids")]
        reason: Option<String>,
        /// These items (each must be re-drivable).
        ids: Vec<String>,
    },
    /// Delete the raw data of items kept on the box (quarantined, or withheld images) for
    /// longer than DAYS, writing an audit record. The daemon does this daily with
    /// `quarantine.retention_days`.
    Purge {
        /// Days kept; default `quarantine.retention_days` (90).
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u32>,
    },
}

/// Parse the command line, run the command, and turn its error into a message and exit code.
pub(crate) fn run() -> ExitCode {
    let cli = Cli::parse();
    fgw_gateway::logging::init("gateway");
    fgw_tls::install_ring_provider();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gateway: error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: most of our errors already quote their source in
/// their own message (`config {path}: {io error}`), which `{:#}` would print twice.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn load(path: &Path) -> anyhow::Result<GatewayConfig> {
    Ok(GatewayConfig::load(path)?)
}

/// The file `--config` names, or the default.
fn config_path(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
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
            let cfg = load(&config_path(&cli.config))?;
            // No rules-only scrubbing: without the analyser's dictionary, refuse to start.
            fgw_deid::text::analyser_ready()?;
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
        Cmd::Identity { cmd } => {
            let cfg = load(&config_path(&cli.config))?;
            let Some(id_cfg) = cfg.identity.clone() else {
                anyhow::bail!("the configuration has no [identity] section (key_store, tpm_tcti, idevid_cert, ca_cert)");
            };
            let identity = fgw_gateway::identity::BoxIdentity::open(&cfg, &id_cfg)?;
            match cmd {
                IdentityCmd::Init { json, csr } => {
                    let csr = csr.unwrap_or_else(|| identity.default_csr_path());
                    let report = identity.init(&csr)?;
                    if json {
                        println!("{}", serde_json::to_string(&report)?);
                    } else {
                        println!("serial {}\ncsr {}", report.serial, report.csr.display());
                    }
                }
                IdentityCmd::Show { json } => {
                    let report = identity.show();
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        println!("key store: {}", report.key_store.as_str());
                        if let Some(t) = &report.tpm_tcti {
                            println!("tpm: {t}");
                        }
                        println!(
                            "serial: {}",
                            report
                                .serial
                                .as_deref()
                                .unwrap_or("(no identity key yet: run `gateway identity init`)")
                        );
                        println!(
                            "idevid certificate: {}",
                            if report.idevid_cert { "present" } else { "missing" }
                        );
                        match &report.operational {
                            Some(o) => println!(
                                "operational certificate: facility {}, valid {} to {}, renewed after {}",
                                o.facility_id, o.not_before, o.not_after, o.renew_after
                            ),
                            None => println!("operational certificate: none (not enrolled yet)"),
                        }
                    }
                }
                IdentityCmd::Enroll { renew, json } => {
                    // With the tunnel on, enrolling also registers the box's WireGuard key.
                    let (identity, _) = fgw_gateway::tunnel::attach_key(&cfg, identity)?;
                    let rt = tokio::runtime::Runtime::new()?;
                    let connect = std::time::Duration::from_secs(cfg.uplink.connect_timeout_secs);
                    let rec = rt.block_on(identity.ensure_enrolled(
                        cfg.uplink.hub_list()[0],
                        connect,
                        renew,
                    ))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&rec)?);
                    } else {
                        println!(
                            "enrolled: serial {}, facility {}, valid to {}",
                            rec.serial, rec.facility_id, rec.not_after
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Policy { cmd } => {
            let path = config_path(&cli.config);
            let cfg = load(&path)?;
            match cmd {
                PolicyCmd::Export { dir } => {
                    let base = path.parent().unwrap_or(std::path::Path::new("."));
                    let done = fgw_gateway::policy_bundle::export(&cfg, base, &dir)?;
                    println!(
                        "policy {} version {} written to {} ({} files and {})",
                        done.manifest.policy_id,
                        done.manifest.version,
                        done.dir.display(),
                        done.manifest.files.len(),
                        fgw_gateway::policy_bundle::BUNDLE_FILE
                    );
                }
                PolicyCmd::Show { json } => {
                    let v = fgw_gateway::policy_bundle::show(&cfg);
                    if json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else {
                        println!(
                            "policy {} version {} (profile {}, from {})",
                            v["id"].as_str().unwrap_or(""),
                            v["version"],
                            v["profile"].as_str().unwrap_or(""),
                            v["source"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Update { cmd: UpdateCmd::Check { json, source } } => {
            let cfg = load(&config_path(&cli.config))?;
            let rt = tokio::runtime::Runtime::new()?;
            let (report, _, _) = rt.block_on(update_check(&cfg, source))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("os {} · policy {}", report.os_version, report.policy_version);
                if let Some(e) = &report.error {
                    println!("error: {} ({})", e.message, e.class);
                }
                for d in &report.updates {
                    println!("{:<7} {:?}: {}", d.kind, d.verdict, d.reason);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Update { cmd: UpdateCmd::Health { json, mark, unit } } => {
            let cfg = load(&config_path(&cli.config))?;
            let rt = tokio::runtime::Runtime::new()?;
            let mut health = rt.block_on(async {
                let uplink = cli_uplink(&cfg).map_err(|e| format!("{e:#}"));
                fgw_gateway::health::run(&cfg, unit.as_deref(), uplink).await
            });
            if mark {
                fgw_gateway::health::mark(&mut health);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&health)?);
            } else {
                for c in &health.checks {
                    println!("{:<10} {} {}", c.name, if c.ok { "ok  " } else { "FAIL" }, c.detail);
                }
            }
            Ok(if health.healthy { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Cmd::Update { cmd: UpdateCmd::Apply { source } } => {
            let cfg = load(&config_path(&cli.config))?;
            let db = Db::open(&cfg.db_path())?;
            let rt = tokio::runtime::Runtime::new()?;
            let outcomes = rt.block_on(async {
                let (report, trusted, source) = update_check(&cfg, source).await?;
                let Some(trusted) = trusted else {
                    let e = report.error.map(|e| e.message).unwrap_or_default();
                    anyhow::bail!("the release repository did not verify: {e}");
                };
                Ok(fgw_gateway::updater::apply(&cfg, &report, &trusted, &source, Some(&db)).await)
            })?;
            println!("{}", serde_json::to_string_pretty(&outcomes)?);
            let failed = outcomes.iter().any(|o| o.outcome == "failed" || o.outcome == "refused");
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Cmd::Update { cmd: UpdateCmd::Verify { bundle, json } } => {
            let cfg = load(&config_path(&cli.config))?;
            let info = fgw_gateway::update_bundle::verify(&cfg.update, &bundle)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!(
                    "bundle {}: version {} for {}, signed by the update key; images: {}",
                    bundle.display(),
                    info.version,
                    info.compatible,
                    info.images.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Firewall { out } => {
            // The file as written, without the applied policy's overlay: the unit runs as a
            // user of its own that cannot read the daemon's state, and needs only addresses.
            let path = config_path(&cli.config);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let cfg = GatewayConfig::from_toml(&path, &text)?;
            let lists = fgw_gateway::firewall::AllowLists::from_config(
                &cfg,
                &fgw_gateway::firewall::SystemResolver,
            )?;
            match out {
                Some(path) => fgw_gateway::firewall::write_file(&path, &lists.to_nft())?,
                None => print!("{}", lists.to_nft()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { json } => {
            let cfg = load(&config_path(&cli.config))?;
            let db = Db::open(&cfg.db_path())?;
            let counts = db.counts(Origin::Daemon)?;
            // The bandwidth cap in force now, and the estimate through the schedule's windows.
            let schedule = cfg.uplink.rate_schedule()?;
            let now = fgw_outbound::throttle::TimeOfDay::now_local();
            let cap_now = schedule.cap_at(now).map(|c| c.get());
            let mut backlog = fgw_gateway::backlog::measure(&db, &cfg.spool_dir(), cap_now)?;
            if let Some(rate) = backlog.measured_bytes_per_sec {
                let bytes = backlog.total().bytes;
                backlog.eta_secs = schedule.time_to_send(bytes, now, rate).map(|d| d.as_secs());
            }
            let last_upload = db.meta(MetaKey::LastUploadAt)?;
            let last_error = db.meta(MetaKey::LastError)?;
            // Free space and store sizes measured now, and the daemon's record of a pause.
            let storage = fgw_gateway::storage::status(&cfg, &db)?;
            // "<since> <the hub's answer>" while the hub refuses this box.
            let paused = db.meta(MetaKey::UplinkPaused)?.map(|v| match v.split_once(' ') {
                Some((since, why)) => (since.to_string(), why.to_string()),
                None => (v, String::new()),
            });
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
                    "backlog": {
                        "items": backlog.total().items,
                        "bytes": backlog.total().bytes,
                        "lanes": backlog.lanes.iter().map(|(l, b)| (l.as_str(), *b)).collect::<std::collections::BTreeMap<_, _>>(),
                        "rate_bytes_per_sec": backlog.rate_bytes_per_sec,
                        "measured_bytes_per_sec": backlog.measured_bytes_per_sec,
                        "rate_cap_bytes_per_sec": cap_now,
                        "eta_secs": backlog.eta_secs,
                    },
                    "last_upload_at": last_upload,
                    "last_error": last_error,
                    "storage": storage.to_json(),
                    "uplink": match &paused {
                        Some((since, why)) => serde_json::json!({
                            "state": "paused", "since": since, "reason": why,
                        }),
                        None => serde_json::json!({ "state": "running" }),
                    },
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
                let total = backlog.total();
                let eta = match backlog.eta_secs {
                    Some(s) => fgw_gateway::backlog::human_duration(s),
                    None => "unknown (no upload measured yet)".into(),
                };
                println!(
                    "  backlog       {} items, {} MiB (today's {}, history {}); clears in {eta}",
                    total.items,
                    total.bytes.div_ceil(1 << 20),
                    backlog.lanes[&Lane::Current].items,
                    backlog.lanes[&Lane::Backlog].items,
                );
                for line in storage.text_lines() {
                    println!("{line}");
                }
                println!("  last upload   {}", last_upload.as_deref().unwrap_or("never"));
                println!("  last error    {}", last_error.as_deref().unwrap_or("none"));
                match &paused {
                    Some((since, why)) => println!(
                        "  uplink        PAUSED since {since}: the hub refuses this box ({why}); \
                         fix the registration or [uplink], uploads resume by themselves"
                    ),
                    None => println!("  uplink        running"),
                }
                if let Some((ae, m)) = pull {
                    let w = m.watermark.map_or("none".to_string(), |w| w.to_string());
                    println!("  dicom pull    {ae}: from {} complete up to {w}", m.start);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Deid { input, output, facility } => {
            let (cfg, key) = deid_config(cli.config.as_deref(), facility)?;
            fgw_deid::text::analyser_ready()?;
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
            let report = fgw_gateway::offline::run_with(&cfg, key, &input, &output, &progress)?;
            bar.finish_and_clear();
            if key == KeySource::Ephemeral {
                println!(
                    "key: ephemeral (no configuration at {DEFAULT_CONFIG_PATH}): pseudonyms and \
                     date shifts of this run match no other run and no upload of this box; \
                     pass --config FILE to use the box's key"
                );
            }
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
        Cmd::Secrets { cmd } => {
            use fgw_gateway::recovery::{self, KitParams};
            use fgw_gateway::secrets::RootInstall;
            let cfg = load(&config_path(&cli.config))?;
            match cmd {
                SecretsCmd::ExportRecovery { out, shares, threshold } => {
                    let params = KitParams::new(shares, threshold)?;
                    let report = recovery::export(&cfg, &out, params)?;
                    let (n, k) = (params.shares(), params.threshold());
                    println!(
                        "recovery kit {} of facility {}: {n} share sheets, any {k} rebuild the \
                         box's keys",
                        report.kit_id, report.facility
                    );
                    for f in &report.files {
                        println!("  {}", f.display());
                    }
                    println!(
                        "Give each sheet to a different keeper at the hospital (printed, or on its \
                         own medium), then delete the files here. The society and its hub must \
                         never receive {k} or more shares: with {k} anyone can compute this \
                         facility's pseudonyms."
                    );
                }
                SecretsCmd::ImportRecovery { files } => {
                    let report = recovery::import(&cfg, &files)?;
                    let (n, k) = (report.params.shares(), report.params.threshold());
                    match &report.outcome {
                        RootInstall::Written(at) => println!(
                            "recovery kit {}: {} of {n} shares combined (threshold {k}), check \
                             value matches; root secret written to {} for facility {}",
                            report.kit_id, report.shares_used, at, cfg.facility_id
                        ),
                        RootInstall::AlreadyPresent(at) => println!(
                            "recovery kit {}: {} of {n} shares combined, check value matches; \
                             this box already has this root secret ({}), nothing written",
                            report.kit_id, report.shares_used, at
                        ),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Quarantine { cmd } => {
            let cfg = load(&config_path(&cli.config))?;
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
                QuarantineCmd::Redrive { reason, ids } => {
                    let which = match reason {
                        Some(code) if !ItemReason::REDRIVABLE_CODES.contains(&code.as_str()) => {
                            anyhow::bail!(
                                "reason `{code}` is not re-drivable (re-drivable: {})",
                                ItemReason::REDRIVABLE_CODES.join(", ")
                            )
                        }
                        Some(code) => Redrive::Reason(code),
                        None => Redrive::Ids(
                            ids.into_iter().map(QueueId::new).collect::<Result<_, _>>()?,
                        ),
                    };
                    let report = fgw_gateway::maintenance::redrive(&cfg, &which)?;
                    for (id, to) in &report.redriven {
                        let to = match to {
                            RedriveTo::Upload => "upload again",
                            RedriveTo::Gate => "through the gate again",
                        };
                        println!("{id}  re-driven: {to}");
                    }
                    for (id, why) in &report.refused {
                        println!("{id}  left in quarantine: {why}");
                    }
                    println!(
                        "{} re-driven, {} left; the daemon takes them up at its next start",
                        report.redriven.len(),
                        report.refused.len()
                    );
                    if report.redriven.is_empty() && !report.refused.is_empty() {
                        return Ok(ExitCode::FAILURE);
                    }
                }
                QuarantineCmd::Purge { older_than } => {
                    let days = older_than.unwrap_or(cfg.quarantine.retention_days);
                    let report = fgw_gateway::maintenance::purge(&cfg, days)?;
                    for (code, n) in report.by_reason() {
                        println!("  {code:<26} {n}");
                    }
                    println!(
                        "raw data of {} item(s) kept longer than {days} day(s) deleted, {} failed; \
                         audit record written",
                        report.purged.len(),
                        report.failed.len()
                    );
                    if !report.failed.is_empty() {
                        return Ok(ExitCode::FAILURE);
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

/// `gateway deid`'s configuration and key: the file `--config` names (it must exist), else the
/// default file if there is one (the box), else built-in defaults with an ephemeral key.
fn deid_config(
    config: Option<&Path>,
    facility: Option<FacilityId>,
) -> anyhow::Result<(GatewayConfig, KeySource)> {
    let path = match config {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
    };
    match (path, facility) {
        (Some(p), Some(_)) => anyhow::bail!(
            "--facility is for runs without a configuration; {} sets facility_id",
            p.display()
        ),
        (Some(p), None) => Ok((load(&p)?, KeySource::BoxSecret)),
        (None, facility) => {
            let facility = facility.map_or_else(|| "local".to_string(), |f| f.to_string());
            let text = format!("facility_id = \"{facility}\"\n");
            let cfg = GatewayConfig::from_toml(Path::new("(built-in one-shot defaults)"), &text)?;
            Ok((cfg, KeySource::Ephemeral))
        }
    }
}
