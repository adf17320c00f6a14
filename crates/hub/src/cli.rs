//! The `hub` command line.
//!
//! Every command that touches the hub's state takes `--config FILE`. A missing config file is
//! an error, unless `--data-dir DIR` is also given: then the embedded defaults apply with that
//! data directory. `--data-dir` always overrides `data_dir` from the file.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

use clap::{Args, Parser, Subcommand};
use fgw_format::ids::{DeviceId, FacilityId};
use fgw_hub::ca;
use fgw_hub::dashboard::{auth, OperatorName};
use fgw_hub::enroll::{self, Serial};
use fgw_hub::gc;
use fgw_hub::store;
use fgw_hub::Role;
use fgw_hub::{ConfigError, HubConfig};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "hub",
    version,
    about = "Society hub: receives de-identified exam packages over mutual TLS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Hub config file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Data directory; overrides `data_dir`, and allows a missing config file (defaults).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the society CA and the hub's server certificate (refuses to overwrite), and the
    /// manufacturing CA unless it exists.
    Init(ConfigArgs),
    /// Create the manufacturing CA (signs IDevIDs) of a hub initialised without one.
    InitManufacturing(ConfigArgs),
    /// Boxes with a device identity (IDevID): add, revoke, show.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Accounts of the operators' dashboard (`/dashboard`): add, remove.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Issue a client certificate for a gateway (or operator) and register it.
    IssueDevice {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long)]
        device: DeviceId,
        #[arg(long)]
        facility: FacilityId,
        /// `device` (a facility gateway) or `operator` (society staff, read-only).
        #[arg(long, default_value = "device", value_parser = parse_role)]
        role: Role,
        /// Output directory for device.crt, device.key and ca.crt (must not contain them).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Serve the API until SIGINT / SIGTERM.
    Serve(ConfigArgs),
    /// The fleet: each device's newest heartbeat (versions, queue, states), from the metadata
    /// store.
    Fleet {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// One JSON array: per device `device`, `facility`, `last_heartbeat`, `os_version`,
        /// `policy_version`, `queue`, and the whole `heartbeat`.
        #[arg(long)]
        json: bool,
    },
    /// Releases in the TUF repository: publish, list, the root to bake into box images.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Rollouts of a release in waves: create, list, pause, resume, roll back.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Config file commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Delete objects no manifest references once `gc_grace_secs` has passed, and upload
    /// sessions untouched for `upload_session_ttl_secs` (what `hub serve` does every
    /// `gc_interval_secs`); prints the counts as JSON.
    Gc(ConfigArgs),
    /// Print the current exams (or DICOM objects) of a facility as JSON (reads the metadata
    /// store directly).
    List {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long)]
        facility: FacilityId,
        /// What to list.
        #[arg(long, value_enum, default_value_t = Listing::Exams)]
        kind: Listing,
    },
    /// Researchers' export of one facility's current exams in a date range: Parquet (one row
    /// per exam, with `data-dictionary.json`) or DICOM Part 10 files (optionally stored into
    /// Orthanc). Entered in the access log (`hub exports`). docs/export.md.
    Export(ExportArgs),
    /// The researchers' export access log, as JSON.
    Exports {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Only this researcher's exports.
        #[arg(long)]
        researcher: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    #[arg(long)]
    facility: FacilityId,
    /// First date, `YYYY-MM-DD`.
    #[arg(long)]
    from: chrono::NaiveDate,
    /// Last date, `YYYY-MM-DD` (included).
    #[arg(long)]
    to: chrono::NaiveDate,
    /// `parquet` (exam records) or `dicom` (the exams' DICOM objects).
    #[arg(long, value_enum, default_value_t = ExportFormat::Parquet)]
    format: ExportFormat,
    /// Which date the range applies to: the exam's (`exam`, as the box sent it) or the
    /// hub's reception of its current revision (`received`).
    #[arg(long, value_enum, default_value_t = ExportDateField::Exam)]
    date_field: ExportDateField,
    /// Who takes the data, for the access log. Default: the account running the command.
    #[arg(long)]
    researcher: Option<String>,
    /// With `--format dicom`: also store every object into this Orthanc (its REST address,
    /// e.g. `http://10.0.0.5:8042`).
    #[arg(long, value_name = "URL")]
    orthanc: Option<String>,
    /// The CA certificate (PEM) of an https Orthanc.
    #[arg(long, value_name = "FILE")]
    orthanc_ca: Option<PathBuf>,
    /// Orthanc user (HTTP basic), with `--orthanc-password-file`.
    #[arg(long)]
    orthanc_user: Option<String>,
    /// File holding that user's password (first line).
    #[arg(long, value_name = "FILE")]
    orthanc_password_file: Option<PathBuf>,
    /// Output folder.
    out_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Parquet,
    Dicom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportDateField {
    Exam,
    Received,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Listing {
    /// Current package of each exam, with its report and DICOM object counts.
    Exams,
    /// Every DICOM object, by study, series and instance.
    Dicom,
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Sign a box's IDevID from its CSR with the manufacturing CA, register the serial to the
    /// facility, and write DIR/idevid.crt and DIR/ca.crt (refuses to overwrite). The same
    /// serial, facility and key again writes the same IDevID.
    Add {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The box's serial (`gateway identity init` prints it).
        #[arg(long)]
        serial: Serial,
        #[arg(long)]
        facility: FacilityId,
        /// The PKCS#10 request of the box's identity key (PEM, or DER).
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// Output directory for idevid.crt and ca.crt (must not contain them).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Revoke a box: every certificate of the serial (IDevID, operational) gets 403 from its
    /// next request on, on open connections too. For good.
    Revoke {
        #[command(flatten)]
        cfg: ConfigArgs,
        serial: Serial,
    },
    /// Print a box's registration as JSON (status, facility, enrollment times).
    Show {
        #[command(flatten)]
        cfg: ConfigArgs,
        serial: Serial,
    },
}

#[derive(Debug, Subcommand)]
enum ReleaseCommand {
    /// Add a release to the TUF repository and sign it: a policy folder (`gateway policy
    /// export`; VERSION is N or <policy id>@N and becomes the policy version), or an OS
    /// update bundle file (RAUC). Prints the release as JSON.
    Publish {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long, value_parser = parse_kind)]
        kind: fgw_release::ReleaseKind,
        #[arg(long, value_parser = parse_version)]
        version: fgw_release::ReleaseVersion,
        /// The folder of the targets key (`targets.pk8`), when it is kept off the hub (the
        /// release machine's removable medium). Default `[releases] keys_dir`.
        #[arg(long, value_name = "DIR")]
        keys_dir: Option<PathBuf>,
        /// The policy folder or the bundle file.
        path: PathBuf,
    },
    /// The published releases as JSON.
    List(ConfigArgs),
    /// Copy the repository's current root.json to FILE: what a box image trusts
    /// (`[update] tuf_root`).
    Root {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Add an operator, or give an existing one a new password (which ends its sessions).
    /// The password is read from standard input, one line (12 characters at least); it is
    /// stored as an Argon2id hash only.
    Add {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The username (1-64 of A-Z a-z 0-9 . _ -).
        name: OperatorName,
    },
    /// Remove an operator and end its sessions.
    Remove {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The username.
        name: OperatorName,
    },
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Roll a published release out in waves (cumulative percentages of the fleet, by a
    /// stable per-device seed); the kind's earlier rollout is superseded.
    Create {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The release version.
        #[arg(long)]
        release: String,
        /// Its kind, when a policy and an OS release share the version.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<fgw_release::ReleaseKind>,
        /// Cumulative percentages, e.g. 10,50,100.
        #[arg(long, default_value = "100")]
        waves: String,
        /// When the first wave starts (RFC 3339). Default: now.
        #[arg(long)]
        start: Option<String>,
        /// Seconds between wave starts. Default 86400 (a day).
        #[arg(long, default_value_t = 86_400)]
        wave_interval_secs: u64,
        /// Halt when failed boxes reach this percentage of those that reported. Default 10.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=100))]
        halt_percent: u8,
        /// … and at least this many. Default 2.
        #[arg(long, default_value_t = 2)]
        halt_min: u32,
        /// Install outside the maintenance window and with today's exams waiting.
        #[arg(long)]
        force: bool,
    },
    /// Every rollout with its counts (installed, failed, boxes offered) as JSON.
    List(ConfigArgs),
    /// Stop offering the release to boxes that do not have it.
    Pause {
        #[command(flatten)]
        cfg: ConfigArgs,
        id: i64,
    },
    /// Offer it again (after a pause or a halt).
    Resume {
        #[command(flatten)]
        cfg: ConfigArgs,
        id: i64,
    },
    /// Offer every box the previous release of the kind.
    Rollback {
        #[command(flatten)]
        cfg: ConfigArgs,
        id: i64,
    },
}

fn parse_kind(s: &str) -> Result<fgw_release::ReleaseKind, fgw_release::VersionError> {
    s.parse()
}

fn parse_version(s: &str) -> Result<fgw_release::ReleaseVersion, fgw_release::VersionError> {
    fgw_release::ReleaseVersion::new(s)
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Parse and validate a config file; print the effective settings.
    Check { file: PathBuf },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{path} does not exist (pass --data-dir to run with defaults)")]
    NoConfig { path: PathBuf },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ca(#[from] ca::CaError),
    #[error(transparent)]
    Enroll(#[from] enroll::EnrollError),
    #[error("serial {0} is not registered")]
    UnknownSerial(Serial),
    #[error("operator {0} does not exist")]
    UnknownOperator(OperatorName),
    #[error("operator password: {0}")]
    Password(auth::AuthError),
    #[error("cannot read the password from standard input: {0}")]
    Stdin(std::io::Error),
    #[error(transparent)]
    Store(#[from] fgw_hub::store::StoreError),
    #[error(transparent)]
    Serve(#[from] fgw_hub::ServeError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Release(#[from] fgw_hub::releases::ReleaseError),
    #[error(transparent)]
    Rollout(#[from] fgw_hub::rollout::RolloutError),
    #[error("--start: not an RFC 3339 time")]
    BadStart,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Export(#[from] fgw_hub::export::ExportError),
    #[error("--orthanc-user and --orthanc-password-file go together, with --orthanc")]
    OrthancArgs,
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::NoConfig { .. }
            | CliError::Config(_)
            | CliError::BadStart
            | CliError::OrthancArgs => 2,
            CliError::Password(auth::AuthError::PasswordLength) => 2,
            _ => 1,
        }
    }
}

/// The registry's role names, via `Role`'s `FromStr` (the library knows nothing of clap).
fn parse_role(s: &str) -> Result<Role, fgw_hub::UnknownRole> {
    s.parse()
}

/// Store clients whose debug lines carry request paths (object hashes, upload ids) and SQL:
/// never below `info`, whatever `RUST_LOG` asks, so the hub's log names no object.
const QUIET_CLIENTS: &[&str] =
    &["object_store", "reqwest", "hyper", "hyper_util", "h2", "postgres", "tokio_postgres", "r2d2"];

fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for client in QUIET_CLIENTS {
        if let Ok(d) = format!("{client}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn load(args: &ConfigArgs) -> Result<HubConfig, CliError> {
    let mut cfg = if args.config.exists() {
        HubConfig::load(&args.config)?
    } else if let Some(dir) = &args.data_dir {
        HubConfig::with_data_dir(dir)
    } else {
        return Err(CliError::NoConfig { path: args.config.clone() });
    };
    if let Some(dir) = &args.data_dir {
        cfg.data_dir = dir.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json value serializes"));
}

fn effective(cfg: &HubConfig) -> serde_json::Value {
    json!({
        "listen": cfg.listen,
        "data_dir": cfg.data_dir,
        "server_names": cfg.server_names,
        "max_object_bytes": cfg.max_object_bytes,
        "max_manifest_bytes": cfg.max_manifest_bytes,
        "max_connections": cfg.max_connections,
        "max_uploads_per_device": cfg.max_uploads_per_device,
        "header_timeout_secs": cfg.header_timeout_secs,
        "body_timeout_secs": cfg.body_timeout_secs,
        "min_body_bytes_per_sec": cfg.min_body_bytes_per_sec,
        "facility_quota_bytes": cfg.facility_quota_bytes,
        "gc_grace_secs": cfg.gc_grace_secs,
        "gc_interval_secs": cfg.gc_interval_secs,
        "min_chunk_bytes": cfg.min_chunk_bytes,
        "max_chunk_bytes": cfg.max_chunk_bytes,
        "max_upload_bytes": cfg.max_upload_bytes,
        "max_open_uploads_per_facility": cfg.max_open_uploads_per_facility,
        "upload_session_ttl_secs": cfg.upload_session_ttl_secs,
        "operational_cert_days": cfg.operational_cert_days,
        "facility_config": cfg.facility_config,
        "vpn": cfg.vpn,
        "dashboard": cfg.dashboard,
        "tls": {
            "ca_cert": cfg.ca_cert(),
            "ca_key": cfg.ca_key(),
            "server_cert": cfg.server_cert(),
            "server_key": cfg.server_key(),
            "manufacturing_ca_cert": cfg.manufacturing_ca_cert(),
            "manufacturing_ca_key": cfg.manufacturing_ca_key(),
        },
        "db": cfg.db_path(),
        "objects": cfg.objects_dir(),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Init(args) => {
            let cfg = load(&args)?;
            let out = ca::init(&cfg)?;
            let paths = fgw_hub::releases::ReleasePaths::of(&cfg);
            let repo = runtime()?.block_on(fgw_hub::releases::ensure_repository(&paths))?;
            print_json(&json!({
                "ca_cert": out.ca_cert,
                "server_cert": out.server_cert,
                "ca_fingerprint": out.ca_fingerprint,
                "manufacturing_ca_cert": out.manufacturing.as_ref().map(|m| &m.cert),
                "manufacturing_ca_fingerprint": out.manufacturing.as_ref().map(|m| &m.fingerprint),
                "release_root": repo.root_path(),
            }));
        }
        Command::InitManufacturing(args) => {
            let cfg = load(&args)?;
            let out = ca::init_manufacturing(&cfg)?;
            print_json(&json!({
                "manufacturing_ca_cert": out.cert,
                "manufacturing_ca_fingerprint": out.fingerprint,
            }));
        }
        Command::Device(DeviceCommand::Add { cfg: args, serial, facility, csr, out }) => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let added = enroll::device_add(&cfg, &*meta, &serial, &facility, &csr, &out)?;
            let status = meta.serial(&serial)?.map(|r| r.status);
            print_json(&json!({
                "serial": added.serial,
                "facility": added.facility,
                "status": status,
                "idevid": added.idevid,
                "ca_cert": added.ca_cert,
                "fingerprint": added.fingerprint,
                "existing": added.existing,
            }));
        }
        Command::Device(DeviceCommand::Revoke { cfg: args, serial }) => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let r = enroll::device_revoke(&*meta, &serial)?;
            print_json(&json!({
                "serial": serial,
                "status": "revoked",
                "previous": r.previous,
                "device_certificates_removed": r.device_certificates_removed,
            }));
        }
        Command::Operator(OperatorCommand::Add { cfg: args, name }) => {
            let cfg = load(&args)?;
            let password = read_password_line(std::io::stdin().lock())?;
            auth::check_password(&password).map_err(CliError::Password)?;
            let phc = auth::hash_password(&name, &password).map_err(CliError::Password)?;
            let meta = store::open_meta(&cfg)?;
            let added = meta.set_operator(&name, &phc)?;
            print_json(&json!({ "operator": name.as_str(), "added": added }));
        }
        Command::Operator(OperatorCommand::Remove { cfg: args, name }) => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            if !meta.remove_operator(&name)? {
                return Err(CliError::UnknownOperator(name));
            }
            print_json(&json!({ "operator": name.as_str(), "removed": true }));
        }
        Command::Fleet { cfg: args, json } => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let rows = meta.fleet()?;
            if json {
                print_json(&serde_json::to_value(&rows).expect("rows serialize"));
            } else {
                println!(
                    "{:<24} {:<10} {:<21} {:<12} {:<16} queue",
                    "device", "facility", "last heartbeat", "os", "policy"
                );
                for r in &rows {
                    let queue: Vec<String> =
                        r.queue.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!(
                        "{:<24} {:<10} {:<21} {:<12} {:<16} {}",
                        r.device,
                        r.facility.as_str(),
                        r.last_heartbeat,
                        r.os_version,
                        r.policy_version,
                        queue.join(" ")
                    );
                }
            }
        }
        Command::Device(DeviceCommand::Show { cfg: args, serial }) => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let rec = meta.serial(&serial)?.ok_or(CliError::UnknownSerial(serial))?;
            print_json(&serde_json::to_value(rec).expect("record serializes"));
        }
        Command::IssueDevice { cfg: args, device, facility, role, out } => {
            let cfg = load(&args)?;
            let fingerprint = ca::issue_device(&cfg, &device, &facility, role, &out)?;
            print_json(&json!({
                "device": device,
                "facility": facility,
                "role": role,
                "fingerprint": fingerprint,
                "out": out,
            }));
        }
        Command::Serve(args) => {
            let cfg = load(&args)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(CliError::Runtime)?;
            rt.block_on(fgw_hub::serve(cfg, shutdown_signal()))?;
        }
        Command::Gc(args) => {
            let cfg = load(&args)?;
            let objects = store::open_objects(&cfg)?;
            let meta = store::open_meta(&cfg)?;
            let report =
                gc::collect(&*objects, &*meta, &cfg.gc_policy(), std::time::SystemTime::now())?;
            print_json(&serde_json::to_value(report).expect("report serializes"));
        }
        Command::Release(cmd) => release(cmd)?,
        Command::Rollout(cmd) => rollout(cmd)?,
        Command::Config(ConfigCommand::Check { file }) => {
            let cfg = HubConfig::load(&file)?;
            print_json(&effective(&cfg));
        }
        Command::List { cfg: args, facility, kind } => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let listing = match kind {
                Listing::Exams => serde_json::to_value(meta.list_exams(&facility)?),
                Listing::Dicom => serde_json::to_value(meta.list_dicom(&facility)?),
            };
            print_json(&listing.expect("listing serializes"));
        }
        Command::Export(args) => export(args)?,
        Command::Exports { cfg: args, researcher } => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let log = meta.exports(researcher.as_deref())?;
            print_json(&serde_json::to_value(log).expect("log serializes"));
        }
    }
    Ok(())
}

/// The account running the command: `SUDO_USER` when run through sudo, else the user name of
/// the real uid.
fn invoking_account() -> String {
    if let Some(u) = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()) {
        return u;
    }
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| format!("uid-{uid}"), |u| u.name)
}

fn export(args: ExportArgs) -> Result<(), CliError> {
    use fgw_hub::export::{self, DateField, DateRange, ExportRequest, OrthancTarget, Researcher};
    let cfg = load(&args.cfg)?;
    let researcher = Researcher::new(&args.researcher.unwrap_or_else(invoking_account))?;
    let req = ExportRequest {
        facility: args.facility,
        range: DateRange::new(args.from, args.to)?,
        date_field: match args.date_field {
            ExportDateField::Exam => DateField::Exam,
            ExportDateField::Received => DateField::Received,
        },
        researcher,
    };
    let meta = store::open_meta(&cfg)?;
    let report = match args.format {
        ExportFormat::Parquet => {
            if args.orthanc.is_some() {
                return Err(CliError::OrthancArgs);
            }
            export::parquet(&*meta, &req, &args.out_dir)?
        }
        ExportFormat::Dicom => {
            let objects = store::open_objects(&cfg)?;
            let user = match (args.orthanc_user, args.orthanc_password_file) {
                (Some(u), Some(f)) => {
                    let text = std::fs::read_to_string(&f)
                        .map_err(|source| CliError::Io { path: f.clone(), source })?;
                    Some((u, text.lines().next().unwrap_or_default().to_string()))
                }
                (None, None) => None,
                _ => return Err(CliError::OrthancArgs),
            };
            let archive = match &args.orthanc {
                Some(url) => {
                    let ca = match &args.orthanc_ca {
                        Some(f) => Some(
                            std::fs::read(f)
                                .map_err(|source| CliError::Io { path: f.clone(), source })?,
                        ),
                        None => None,
                    };
                    Some(OrthancTarget::new(url, ca.as_deref(), user)?)
                }
                None if user.is_some() => return Err(CliError::OrthancArgs),
                None => None,
            };
            export::dicom(&*meta, &*objects, &req, &args.out_dir, archive.as_ref())?
        }
    };
    print_json(&serde_json::to_value(report).expect("report serializes"));
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(CliError::Runtime)
}

fn release(cmd: ReleaseCommand) -> Result<(), CliError> {
    use fgw_hub::releases::{self, ReleasePaths};
    match cmd {
        ReleaseCommand::Publish { cfg: args, kind, version, keys_dir, path } => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let mut paths = ReleasePaths::of(&cfg);
            paths.targets_keys = keys_dir;
            let rec = runtime()?.block_on(releases::publish(&paths, kind, &version, &path))?;
            meta.record_release(&rec)?;
            print_json(&serde_json::to_value(rec).expect("record serializes"));
        }
        ReleaseCommand::List(args) => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            print_json(&serde_json::to_value(meta.releases()?).expect("records serialize"));
        }
        ReleaseCommand::Root { cfg: args, out } => {
            let cfg = load(&args)?;
            let paths = ReleasePaths::of(&cfg);
            let repo = runtime()?.block_on(releases::ensure_repository(&paths))?;
            let root = repo.root_path();
            std::fs::copy(&root, &out)
                .map_err(|source| CliError::Io { path: out.clone(), source })?;
            print_json(&json!({ "root": out, "repository": paths.repo }));
        }
    }
    Ok(())
}

fn rollout(cmd: RolloutCommand) -> Result<(), CliError> {
    use fgw_hub::rollout::{self, Action, RolloutPlan};
    let (args, action, id) = match cmd {
        RolloutCommand::Create {
            cfg: args,
            release,
            kind,
            waves,
            start,
            wave_interval_secs,
            halt_percent,
            halt_min,
            force,
        } => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let start = match start {
                None => chrono::Utc::now(),
                Some(s) => chrono::DateTime::parse_from_rfc3339(&s)
                    .map_err(|_| CliError::BadStart)?
                    .with_timezone(&chrono::Utc),
            };
            let waves = rollout::parse_waves(
                &waves,
                start,
                std::time::Duration::from_secs(wave_interval_secs),
            )?;
            let plan = RolloutPlan { version: release, kind, waves, halt_percent, halt_min, force };
            let r = rollout::create(&*meta, &plan)?;
            print_json(&serde_json::to_value(r).expect("record serializes"));
            return Ok(());
        }
        RolloutCommand::List(args) => {
            let cfg = load(&args)?;
            let meta = store::open_meta(&cfg)?;
            let s = rollout::status(&*meta, chrono::Utc::now())?;
            print_json(&serde_json::to_value(s).expect("status serializes"));
            return Ok(());
        }
        RolloutCommand::Pause { cfg, id } => (cfg, Action::Pause, id),
        RolloutCommand::Resume { cfg, id } => (cfg, Action::Resume, id),
        RolloutCommand::Rollback { cfg, id } => (cfg, Action::Rollback, id),
    };
    let cfg = load(&args)?;
    let meta = store::open_meta(&cfg)?;
    let r = rollout::act(&*meta, id, action)?;
    print_json(&serde_json::to_value(r).expect("record serializes"));
    Ok(())
}

/// The first line of `input`, without its line end.
fn read_password_line(mut input: impl std::io::BufRead) -> Result<String, CliError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(CliError::Stdin)?;
    let end = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(end);
    Ok(line)
}

/// Entry point of the `hub` binary.
pub(crate) fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hub: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "hub",
            "issue-device",
            "--config",
            "h.toml",
            "--device",
            "gw-1",
            "--facility",
            "F1",
            "--role",
            "operator",
            "--out",
            "o",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::IssueDevice { role: Role::Operator, .. }));
        let cli = Cli::try_parse_from(["hub", "device", "revoke", "--config", "h", "fgw-01"]);
        assert!(matches!(cli.unwrap().command, Command::Device(DeviceCommand::Revoke { .. })));
        let bad_serial = ["hub", "device", "revoke", "--config", "h", "a_b"];
        assert!(Cli::try_parse_from(bad_serial).is_err());
        assert!(
            Cli::try_parse_from(["hub", "list", "--config", "h", "--facility", "../x"]).is_err()
        );
        let cli = Cli::try_parse_from(["hub", "operator", "add", "--config", "h", "alice"]);
        assert!(matches!(cli.unwrap().command, Command::Operator(OperatorCommand::Add { .. })));
        assert!(Cli::try_parse_from(["hub", "operator", "remove", "--config", "h", "a/b"]).is_err());
    }

    #[test]
    fn the_password_is_one_line() {
        let pw = read_password_line(&b"correct horse battery\r\nnext line\n"[..]).unwrap();
        assert_eq!(pw, "correct horse battery");
        assert_eq!(read_password_line(&b""[..]).unwrap(), "");
    }

    #[test]
    fn missing_config_needs_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.toml");
        let args = |data_dir: Option<&Path>| ConfigArgs {
            config: absent.clone(),
            data_dir: data_dir.map(Path::to_path_buf),
        };
        assert!(load(&args(None)).unwrap_err().to_string().contains("absent.toml"));
        let cfg = load(&args(Some(dir.path()))).unwrap();
        assert_eq!(cfg.data_dir, dir.path());
    }
}
