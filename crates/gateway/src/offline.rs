//! `gateway deid INPUT_DIR OUTPUT_DIR`: the daemon's de-identification, once, over a folder.
//!
//! Input: any folder holding department export batches (a folder with `exams.csv`) and/or
//! DICOM files anywhere (recognized by content). Output: the outbox layout the uplink sends
//! (`packages/<id>.json`, `objects/<sha256>`) with exactly the bytes that would be uploaded,
//! and `report.json` (counts and quarantine ids with reasons; no personal data). Quarantine
//! ids resolve to their original location only locally: `gateway quarantine show ID`.

use crate::config::GatewayConfig;
use fgw_deid::{DeidContext, DeidOutcome, Pseudonymizer, QuarantineReason};
use fgw_format::ids::QueueId;
use fgw_ingest::export::{self, BatchDir};
use fgw_format::sniff::{self, FileKind};
use fgw_outbound::outbox::{self, Outbox, OutboxError};
use fgw_records::{Column, RawExam};
use crate::secrets::Secrets;
use crate::state::{Db, ItemKind, NewItem, Origin, StateError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("input folder {path}: {source}")]
    Input { path: PathBuf, source: std::io::Error },
    #[error("input folder {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("output folder {path}: {source}")]
    Output { path: PathBuf, source: std::io::Error },
    #[error("output folder {path} is inside the input folder; choose a folder outside it")]
    OutputInsideInput { path: PathBuf },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub exams_in: u64,
    pub exams_out: u64,
    pub images_in: u64,
    pub images_out: u64,
    pub dicom_in: u64,
    pub dicom_out: u64,
    pub quarantined: u64,
    /// Earlier exports of an exam replaced by a later batch (not quarantined, not output).
    pub superseded: u64,
    /// Files that are neither part of an export batch nor DICOM.
    pub files_ignored: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub id: QueueId,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool_version: &'static str,
    pub policy_id: String,
    pub policy_version: u32,
    pub counts: Counts,
    pub packages: Vec<String>,
    pub quarantine: Vec<QuarantineEntry>,
}

/// Progress callback: (done, total).
pub type Progress<'a> = &'a dyn Fn(u64, u64);

struct Run<'a> {
    cfg: &'a GatewayConfig,
    db: Db,
    outbox: Outbox,
    pseudonymizer: Pseudonymizer,
    pixels: fgw_deid::pixels::PixelStage,
    report: Report,
}

impl Run<'_> {
    fn quarantine(
        &mut self,
        kind: ItemKind,
        source: String,
        reason: &QuarantineReason,
    ) -> Result<(), OfflineError> {
        let item = NewItem::quarantined(kind, Origin::Offline, source, reason.to_string());
        self.db.insert(&item)?;
        self.report.counts.quarantined += 1;
        self.report.quarantine.push(QuarantineEntry { id: item.id, reason: reason.to_string() });
        Ok(())
    }
}

/// Walk the input: batch folders (holding the profile's table, `exams.csv`) and every other
/// regular file.
fn walk(
    dir: &Path,
    table: &str,
    batches: &mut Vec<PathBuf>,
    files: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    if dir.join(table).is_file() {
        batches.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&e.path(), table, batches, files)?;
        } else if ft.is_file() {
            files.push(e.path());
        }
    }
    Ok(())
}

pub fn run(
    cfg: &GatewayConfig,
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
    let secrets = Secrets::open_or_create(&cfg.secrets_dir())?;
    let mut run = Run {
        cfg,
        db: Db::open(&cfg.db_path())?,
        outbox: Outbox::open(output)?,
        pseudonymizer: Pseudonymizer::new(secrets.pseudonym_key()),
        pixels: fgw_deid::pixels::PixelStage::new(cfg.deid.pixels.clone()),
        report: Report {
            tool_version: fgw_deid::TOOL_VERSION,
            policy_id: cfg.deid.id.clone(),
            policy_version: cfg.deid.version,
            counts: Counts::default(),
            packages: vec![],
            quarantine: vec![],
        },
    };

    let (mut batch_dirs, mut files) = (vec![], vec![]);
    walk(&in_abs, &cfg.export.mapping.table, &mut batch_dirs, &mut files)
        .map_err(|source| OfflineError::Input { path: input.to_path_buf(), source })?;
    // Batch folder names are export timestamps: later sorts after earlier, later wins.
    batch_dirs.sort_by(|a, b| a.file_name().cmp(&b.file_name()).then(a.cmp(b)));

    // Pass 1: read every batch's rows; decide which export of each exam is the latest.
    let mut batches = Vec::new();
    for dir in batch_dirs {
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let b = BatchDir { name: name.clone(), path: dir.clone() };
        if !dir.join(&cfg.export.mapping.done_marker).is_file() {
            let reason = QuarantineReason::InputInvalid(
                "batch has no DONE marker (export incomplete)".into(),
            );
            run.quarantine(ItemKind::Row, dir.display().to_string(), &reason)?;
            continue;
        }
        match export::read_batch(&b, &cfg.export.mapping) {
            Ok(rows) => batches.push((b, rows)),
            Err(e) => {
                let reason = QuarantineReason::InputInvalid(e.to_string());
                run.quarantine(
                    ItemKind::Row,
                    dir.join(&cfg.export.mapping.table).display().to_string(),
                    &reason,
                )?;
            }
        }
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut latest: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (bi, (_, rows)) in batches.iter().enumerate() {
        for e in &rows.exams {
            if let Some(key) = exam_key(&run, e) {
                *seen.entry(key.clone()).or_default() += 1;
                latest.insert(key, (bi, e.source.row));
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
            run.quarantine(
                ItemKind::Row,
                batch.path.join(&cfg.export.mapping.table).display().to_string()
                    + &format!(" row {}", err.row),
                &reason,
            )?;
        }
        for mut exam in rows.exams {
            done += 1;
            progress(done, total);
            run.report.counts.exams_in += 1;
            let Some(key) = exam_key(&run, &exam) else {
                let r = QuarantineReason::RequiredFieldInvalid("exam_id".into());
                run.quarantine(ItemKind::Exam, local_source(&batch, &exam), &r)?;
                continue;
            };
            if latest.get(&key) != Some(&(bi, exam.source.row)) {
                run.report.counts.superseded += 1;
                continue;
            }
            let _ = export::load_attachments(&batch, &mut exam, rows.encoding, &cfg.export.mapping)
                .map_err(|e| tracing::warn!(error = %e, "attachments unreadable"));
            run.report.counts.images_in += exam.images.len() as u64;
            for (path, why) in exam.missing_images.clone() {
                let r = QuarantineReason::InputInvalid(format!("image unreadable: {why}"));
                run.quarantine(
                    ItemKind::Image,
                    batch.path.parent().unwrap_or(&batch.path).join(path).display().to_string(),
                    &r,
                )?;
            }
            let ctx = DeidContext {
                facility: &cfg.facility_id,
                pseudonymizer: &run.pseudonymizer,
                policy: &cfg.deid,
                profile: &cfg.export.mapping.id,
                revision: seen[&key],
                pixels: &run.pixels,
            };
            match fgw_deid::deidentify_exam(&exam, &ctx) {
                DeidOutcome::Quarantined { reason } => {
                    run.quarantine(ItemKind::Exam, local_source(&batch, &exam), &reason)?;
                }
                DeidOutcome::Package { package, withheld } => {
                    let id = run.outbox.put(&package)?;
                    run.report.counts.exams_out += 1;
                    run.report.counts.images_out += package.files().len() as u64;
                    run.report.packages.push(id.to_string());
                    for w in withheld {
                        let src = exam
                            .images
                            .iter()
                            .find(|i| i.index == w.image_index)
                            .map(|i| {
                                batch
                                    .path
                                    .parent()
                                    .unwrap_or(&batch.path)
                                    .join(&i.rel_path)
                                    .display()
                                    .to_string()
                            })
                            .unwrap_or_else(|| local_source(&batch, &exam));
                        run.quarantine(ItemKind::Image, src, &w.reason)?;
                    }
                }
            }
        }
    }
    for (n, f) in dicom.into_iter().enumerate() {
        done += 1;
        progress(done, total);
        run.report.counts.dicom_in += 1;
        // Errors name the file by its position, not its name: a DICOM file name may carry the
        // patient's name. `gateway quarantine show` gives the path, locally.
        let label = format!("dicom file {}", n + 1);
        let outcome = match std::fs::read(&f) {
            Err(e) => DeidOutcome::Quarantined {
                reason: QuarantineReason::InputInvalid(format!("{label}: cannot read: {e}")),
            },
            Ok(bytes) => {
                let ctx = DeidContext {
                    facility: &cfg.facility_id,
                    pseudonymizer: &run.pseudonymizer,
                    policy: &cfg.deid,
                    profile: "dicom",
                    revision: 1,
                    pixels: &run.pixels,
                };
                fgw_deid::deidentify_dicom_package(&label, &bytes, &ctx, &cfg.deid.dicom)
            }
        };
        match outcome {
            DeidOutcome::Package { package, .. } => {
                let id = run.outbox.put(&package)?;
                run.report.counts.dicom_out += 1;
                run.report.packages.push(id.to_string());
            }
            DeidOutcome::Quarantined { reason } => {
                run.quarantine(ItemKind::Dicom, f.display().to_string(), &reason)?;
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(&run.report).expect("report serializes");
    let rp = output.join("report.json");
    outbox::write_atomic(&rp, &bytes)
        .map_err(|source| OfflineError::Output { path: rp, source })?;
    Ok(run.report)
}

fn exam_key(run: &Run<'_>, exam: &RawExam) -> Option<String> {
    exam.get(Column::ExamId).map(|id| run.pseudonymizer.exam(&run.cfg.facility_id, id))
}

fn local_source(batch: &BatchDir, exam: &RawExam) -> String {
    format!(
        "{} row {} (line {})",
        batch.path.parent().unwrap_or(&batch.path).join(&exam.source.file).display(),
        exam.source.row,
        exam.source.line
    )
}
