//! `gateway deid INPUT_DIR OUTPUT_DIR`: the daemon's de-identification, once, over a folder.
//!
//! Input: any folder holding department export batches (a folder with `exams.csv`) and/or
//! DICOM files anywhere (recognized by content). Output: the outbox layout the uplink sends
//! (`packages/<id>.json`, `objects/<sha256>`, `seals/<id>.mac`) with exactly the bytes that
//! would be uploaded, and `report.json` (counts, the key used, and quarantine ids with
//! reasons; no personal data). Quarantine ids resolve locally (`gateway quarantine show ID`)
//! to the locators the daemon keeps too: batch label, table, row, image index, or a DICOM
//! file's position in the walk; never the input's path, a batch folder's name or a file name
//! (those can hold a 検査ID or a patient's name). A batch is labelled as the daemon labels
//! it (`BatchLabel`, under the run's key: the box's, or the run's own).

use crate::config::GatewayConfig;
use crate::gate_service::{Exports, GateService};
use crate::pipeline::contain::{attachment_reason, batch_reason, catch_item};
use crate::secrets::Secrets;
use crate::state::{BatchLabel, Db, ItemKind, NewItem, Origin, StateError};
use fgw_deid::{DeidOutcome, QuarantineReason};
use fgw_format::ids::{PackageId, QueueId};
use fgw_format::sniff::{self, FileKind};
use fgw_ingest::export::{self, BatchDir};
use fgw_outbound::outbox::{Outbox, OutboxError};
use fgw_records::RawExam;
use serde::{Serialize, Serializer};
use std::path::{Path, PathBuf};

/// Why `gateway deid` stopped. Items it could not de-identify are not errors: they are
/// quarantined and listed in the report.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The input folder could not be read.
    #[error("input folder {path}: {source}")]
    Input {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input is not a folder.
    #[error("input folder {path} is not a directory")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The output folder could not be made or written.
    #[error("output folder {path}: {source}")]
    Output {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output would be read back as input.
    #[error("output folder {path} is inside the input folder; choose a folder outside it")]
    OutputInsideInput {
        /// The output folder given.
        path: PathBuf,
    },
    /// Writing a package failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Recording a quarantined item failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The box's secret store (pseudonym key) could not be opened.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// What a run read and wrote.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Export rows read as exams.
    pub exams_in: u64,
    /// Exam packages written.
    pub exams_out: u64,
    /// Images attached to the exams de-identified.
    pub images_in: u64,
    /// Images in the packages written.
    pub images_out: u64,
    /// DICOM files found.
    pub dicom_in: u64,
    /// DICOM packages written.
    pub dicom_out: u64,
    /// Items kept on the box (listed in `quarantine`).
    pub quarantined: u64,
    /// Earlier exports of an exam replaced by a later batch (not quarantined, not output).
    pub superseded: u64,
    /// Files that are neither part of an export batch nor DICOM.
    pub files_ignored: u64,
}

/// One item kept on the box: its id (resolved locally by `gateway quarantine show`) and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// The item's id in the state database.
    pub id: QueueId,
    /// Why, as the reason's text (`code` or `code: detail`).
    #[serde(serialize_with = "display")]
    pub reason: QuarantineReason,
}

fn display<S: Serializer>(reason: &QuarantineReason, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(reason)
}

/// Whose key a run pseudonymizes with (`report.json`'s `key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySource {
    /// The box's secret store (the configuration's state directory): pseudonyms and date
    /// shifts match what the daemon uploads; quarantined items are recorded in its state
    /// database (`gateway quarantine show ID`).
    BoxSecret,
    /// A key made for this run and forgotten after it (no configuration): pseudonyms and date
    /// shifts match no other run, nothing is recorded on disk but the output folder.
    Ephemeral,
}

/// `report.json`: counts, package ids and quarantine entries; no personal data.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The gate's version.
    pub tool_version: &'static str,
    /// Whose key pseudonymized this run.
    pub key: KeySource,
    /// The de-identification policy's id.
    pub policy_id: String,
    /// The policy's version.
    pub policy_version: u32,
    /// What was read and written.
    pub counts: Counts,
    /// The packages written, in order.
    pub packages: Vec<PackageId>,
    /// The items kept on the box, in order.
    pub quarantine: Vec<QuarantineEntry>,
}

/// Progress callback: (done, total).
pub type Progress<'a> = &'a dyn Fn(u64, u64);

struct Run {
    db: Db,
    outbox: Outbox,
    gate: GateService,
    report: Report,
}

impl Run {
    fn quarantine(
        &mut self,
        kind: ItemKind,
        source: String,
        reason: QuarantineReason,
    ) -> Result<(), OfflineError> {
        let item = NewItem::quarantined(kind, Origin::Offline, source, reason.clone());
        self.db.insert(&item)?;
        self.report.counts.quarantined += 1;
        self.report.quarantine.push(QuarantineEntry { id: item.id, reason });
        Ok(())
    }
}

/// What the walk of the input found.
#[derive(Default)]
struct Found {
    /// Batch folders (holding the profile's table).
    batches: Vec<PathBuf>,
    /// Every other regular file.
    files: Vec<PathBuf>,
    /// Symlinks: never followed, each quarantined (`unsafe-entry`).
    links: Vec<PathBuf>,
}

/// Walk the input: batch folders (holding the profile's table, `exams.csv`), every other
/// regular file, and the symlinks met (not followed). FIFOs, devices and sockets are skipped.
fn walk(dir: &Path, table: &str, found: &mut Found) -> std::io::Result<()> {
    if dir.join(table).is_file() {
        found.batches.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        // file_type() does not follow links.
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&e.path(), table, found)?;
        } else if ft.is_file() {
            found.files.push(e.path());
        } else if ft.is_symlink() {
            found.links.push(e.path());
        }
    }
    Ok(())
}

/// De-identify everything under `input` into `output` (see the module docs) with the box's
/// key; `progress` is called after each exam or DICOM file.
pub fn run(
    cfg: &GatewayConfig,
    input: &Path,
    output: &Path,
    progress: Progress<'_>,
) -> Result<Report, OfflineError> {
    run_with(cfg, KeySource::BoxSecret, input, output, progress)
}

/// [`run`] with the key of `key`. With [`KeySource::Ephemeral`] the state directory of `cfg`
/// is not touched: the secret is made in memory, and quarantined items are recorded in a
/// database in memory (their ids and reasons are in the report).
pub fn run_with(
    cfg: &GatewayConfig,
    key: KeySource,
    input: &Path,
    output: &Path,
    progress: Progress<'_>,
) -> Result<Report, OfflineError> {
    if !input.is_dir() {
        return Err(OfflineError::NotADirectory { path: input.to_path_buf() });
    }
    std::fs::create_dir_all(output)
        .map_err(|source| OfflineError::Output { path: output.to_path_buf(), source })?;
    let (in_abs, out_abs) = (
        input
            .canonicalize()
            .map_err(|source| OfflineError::Input { path: input.to_path_buf(), source })?,
        output
            .canonicalize()
            .map_err(|source| OfflineError::Output { path: output.to_path_buf(), source })?,
    );
    if out_abs.starts_with(&in_abs) {
        return Err(OfflineError::OutputInsideInput { path: output.to_path_buf() });
    }
    let (secrets, db) = match key {
        KeySource::BoxSecret => (Secrets::open_for(cfg)?, Db::open(&cfg.db_path())?),
        KeySource::Ephemeral => (Secrets::ephemeral(), Db::in_memory()?),
    };
    let batch_key = secrets.batch_label_key();
    // As the daemon does at start: a database from before the labels holds folder names.
    db.relabel_batches(|name| BatchLabel::of(&batch_key, name))?;
    let mut run = Run {
        db,
        outbox: Outbox::open(output, secrets.outbox_key())?,
        gate: GateService::new(cfg, &secrets),
        report: Report {
            tool_version: fgw_deid::TOOL_VERSION,
            key,
            policy_id: cfg.deid.id.clone(),
            policy_version: cfg.deid.version,
            counts: Counts::default(),
            packages: vec![],
            quarantine: vec![],
        },
    };

    let mut found = Found::default();
    walk(&in_abs, &cfg.export.mapping.table, &mut found)
        .map_err(|source| OfflineError::Input { path: input.to_path_buf(), source })?;
    let Found { batches: mut batch_dirs, files, links } = found;
    for (n, _link) in links.iter().enumerate() {
        // The link's own name may be anything (a DICOM file's name can carry the patient's
        // name): neither the reason nor the state names it; it is counted in walk order.
        let reason = QuarantineReason::UnsafeEntry(format!(
            "an entry of the input folder: {}",
            export::Refusal::Symlink
        ));
        run.quarantine(ItemKind::Row, format!("input symlink {}", n + 1), reason)?;
    }
    let limits = cfg.export.limits();
    // Batch folder names are export timestamps: later sorts after earlier, later wins.
    batch_dirs.sort_by(|a, b| a.file_name().cmp(&b.file_name()).then(a.cmp(b)));

    // Pass 1: read every batch's rows; decide which export of each exam is the latest.
    let mut batches = Vec::new();
    for dir in batch_dirs {
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        // The folder's name opens it; everything recorded or reported names the label.
        let label = BatchLabel::of(&batch_key, &name).to_string();
        let b = BatchDir { name, path: dir.clone(), label: label.clone() };
        if !dir.join(&cfg.export.mapping.done_marker).is_file() {
            let reason = QuarantineReason::InputInvalid(
                "batch has no DONE marker (export incomplete)".into(),
            );
            run.quarantine(ItemKind::Row, label, reason)?;
            continue;
        }
        let read =
            catch_item("ingest", || export::read_batch_with(&b, &cfg.export.mapping, &limits))
                .and_then(|r| r.map_err(|e| batch_reason(&e)));
        match read {
            Ok(rows) => batches.push((b, rows)),
            Err(reason) => {
                // As the daemon records it: batch label and table, never the input's path.
                let source = format!("{label}/{}", cfg.export.mapping.table);
                run.quarantine(ItemKind::Row, source, reason)?;
            }
        }
    }
    let mut exports = Exports::default();
    for (bi, (_, rows)) in batches.iter().enumerate() {
        for e in &rows.exams {
            if let Some(key) = run.gate.exam_key(e) {
                exports.record(key, (bi, e.source.row));
            }
        }
    }

    let dicom: Vec<PathBuf> = files
        .iter()
        .filter(|f| matches!(sniff::sniff_file(f), Ok(FileKind::Dicom)))
        .cloned()
        .collect();
    run.report.counts.files_ignored = (files.len() - dicom.len()) as u64;
    let total = batches.iter().map(|(_, r)| r.exams.len() as u64).sum::<u64>() + dicom.len() as u64;
    let mut done = 0u64;

    // Pass 2: de-identify.
    for (bi, (batch, rows)) in batches.into_iter().enumerate() {
        for err in &rows.errors {
            let reason = QuarantineReason::InputInvalid(err.to_string());
            run.quarantine(ItemKind::Row, err.to_string(), reason)?;
        }
        for mut exam in rows.exams {
            done += 1;
            progress(done, total);
            run.report.counts.exams_in += 1;
            let Some(key) = run.gate.exam_key(&exam) else {
                let r = QuarantineReason::RequiredFieldInvalid("exam_id".into());
                run.quarantine(ItemKind::Exam, local_source(&exam), r)?;
                continue;
            };
            let Some(revision) = exports.revision_of(&key, (bi, exam.source.row)) else {
                run.report.counts.superseded += 1;
                continue;
            };
            let loaded = catch_item("ingest", || {
                let profile = &cfg.export.mapping;
                export::load_attachments_with(&batch, &mut exam, rows.encoding, profile, &limits)
            });
            let refused = match loaded {
                Ok(Ok(())) => None,
                Ok(Err(e)) => attachment_reason(&e).or_else(|| {
                    tracing::warn!(error = %e, "attachments unreadable");
                    None
                }),
                Err(panicked) => Some(panicked),
            };
            if let Some(reason) = refused {
                // A link or special file on the way, or over a cap: nothing read for this
                // exam goes on; the rest of the batch does.
                run.quarantine(ItemKind::Exam, local_source(&exam), reason)?;
                continue;
            }
            run.report.counts.images_in += exam.images.len() as u64;
            for (n, (_path, why)) in exam.missing_images.clone().into_iter().enumerate() {
                // By position, as the daemon: the image path holds the 検査ID.
                let r = QuarantineReason::InputInvalid(format!("image unreadable: {why}"));
                let source = format!("{}: missing image {n}", exam.source);
                run.quarantine(ItemKind::Image, source, r)?;
            }
            let outcome = catch_item("deid", || run.gate.exam(&exam, revision))
                .unwrap_or_else(|reason| DeidOutcome::Quarantined { reason });
            match outcome {
                DeidOutcome::Quarantined { reason } => {
                    run.quarantine(ItemKind::Exam, local_source(&exam), reason)?;
                }
                DeidOutcome::Package { package, withheld } => {
                    let id = run.outbox.put(&package)?;
                    run.report.counts.exams_out += 1;
                    run.report.counts.images_out += package.files().len() as u64;
                    run.report.packages.push(id);
                    for w in withheld {
                        // By index, as the daemon: the image path holds the 検査ID.
                        let src = format!("{}: image {}", exam.source, w.image_index);
                        run.quarantine(ItemKind::Image, src, w.reason)?;
                    }
                }
            }
        }
    }
    for (n, f) in dicom.into_iter().enumerate() {
        done += 1;
        progress(done, total);
        run.report.counts.dicom_in += 1;
        // Errors and the state name the file by its position in the walk, not its name: a
        // DICOM file name may carry the patient's name.
        let label = format!("dicom file {}", n + 1);
        let outcome = match std::fs::read(&f) {
            Err(e) => DeidOutcome::Quarantined {
                reason: QuarantineReason::InputInvalid(format!("{label}: cannot read: {e}")),
            },
            Ok(bytes) => catch_item("dicom", || run.gate.dicom(&label, &bytes))
                .unwrap_or_else(|reason| DeidOutcome::Quarantined { reason }),
        };
        match outcome {
            DeidOutcome::Package { package, .. } => {
                let id = run.outbox.put(&package)?;
                run.report.counts.dicom_out += 1;
                run.report.packages.push(id);
            }
            DeidOutcome::Quarantined { reason } => {
                run.quarantine(ItemKind::Dicom, label, reason)?;
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(&run.report).expect("report serializes");
    let rp = output.join("report.json");
    fgw_format::durable::write_atomic(&rp, &bytes)
        .map_err(|source| OfflineError::Output { path: rp, source })?;
    Ok(run.report)
}

/// Where an exam came from, as the daemon records it: the table under the batch's label, row
/// and line; never the input's path or the batch folder's name.
fn local_source(exam: &RawExam) -> String {
    exam.source.to_string()
}
