//! Researchers' export (issue 15): the current exams of one facility in a date range, as
//! Parquet (`exams_<facility>_<from>_<to>.parquet` plus `data-dictionary.json`), and the
//! facility's DICOM objects of those exams as Part 10 files, optionally stored into a DICOM
//! archive through Orthanc's REST API. Every export, complete or failed, is entered in the
//! access log with the researcher who ran it (`hub exports`). docs/export.md.

mod columns;
mod dicom_files;
mod parquet_file;

pub use dicom_files::OrthancTarget;

use crate::store::{ExportRecord, MetaStore, ObjectStore, StoreError};
use chrono::{Months, NaiveDate};
use columns::{ExamRow, COLUMNS};
use fgw_format::ids::FacilityId;
use fgw_format::package::Manifest;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// An export that could not be made. Names files, facilities and packages, never values.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("export {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("export {path}: parquet: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The error.
        source: parquet::errors::ParquetError,
    },
    /// A stored manifest the hub accepted no longer parses (a store fault).
    #[error("package {package}: stored manifest does not parse")]
    BadManifest {
        /// The package.
        package: String,
    },
    /// The range's first date is after its last.
    #[error("date range: --from {from} is after --to {to}")]
    EmptyRange {
        /// `--from`.
        from: NaiveDate,
        /// `--to`.
        to: NaiveDate,
    },
    /// The researcher name is not a plain account name.
    #[error("researcher name: expected 1 ..= 64 of A-Z a-z 0-9 . _ @ -")]
    BadResearcher,
    /// Storing into the DICOM archive failed.
    #[error("DICOM archive {url}: {reason}")]
    Archive {
        /// The archive's REST address (without credentials).
        url: String,
        /// What went wrong (status or transport error).
        reason: String,
    },
    /// The output folder already holds an export of the same facility and range.
    #[error("export {path}: already exists (choose another folder)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

/// Who runs an export: an account name, as the access log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Researcher(String);

impl Researcher {
    /// Checks the name: 1 ..= 64 of `A-Z a-z 0-9 . _ @ -`.
    pub fn new(name: &str) -> Result<Researcher, ExportError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        ok.then(|| Researcher(name.to_string())).ok_or(ExportError::BadResearcher)
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A closed range of dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl DateRange {
    /// `from ..= to`; [`ExportError::EmptyRange`] if `from` is after `to`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<DateRange, ExportError> {
        if from > to {
            return Err(ExportError::EmptyRange { from, to });
        }
        Ok(DateRange { from, to })
    }

    /// Whether an exam date falls in the range: `YYYY-MM-DD`, or `YYYY-MM` (year-month
    /// policy) when any day of that month does. Anything else does not.
    pub fn holds_exam_date(&self, date: &str) -> bool {
        if let Ok(d) = NaiveDate::parse_from_str(date, "%Y-%m-%d") {
            return self.from <= d && d <= self.to;
        }
        let Ok(first) = NaiveDate::parse_from_str(&format!("{date}-01"), "%Y-%m-%d") else {
            return false;
        };
        let last = first + Months::new(1) - chrono::Days::new(1);
        first <= self.to && last >= self.from
    }

    /// Whether an RFC 3339 time falls on a day of the range (UTC).
    pub fn holds_time(&self, rfc3339: &str) -> bool {
        chrono::DateTime::parse_from_rfc3339(rfc3339).is_ok_and(|t| {
            let d = t.with_timezone(&chrono::Utc).date_naive();
            self.from <= d && d <= self.to
        })
    }
}

/// Which date of an exam the range selects on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateField {
    /// The exam's date as the box sent it (kept, shifted or year-month). Default: what a
    /// study's inclusion period means.
    #[default]
    Exam,
    /// When the hub received the exam's current revision.
    Received,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The facility.
    pub facility: FacilityId,
    /// The dates.
    pub range: DateRange,
    /// Which date the range applies to.
    pub date_field: DateField,
    /// Who runs it.
    pub researcher: Researcher,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The access-log entry.
    pub log_id: i64,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Rows (exams) or DICOM objects exported.
    pub rows: u64,
    /// Current exams of the facility outside the range.
    pub outside_range: u64,
    /// Current exams without a date (not in any exam-date range).
    pub undated: u64,
}

/// The current exams of the request, each with its parsed manifest, in exam order.
fn selected_exams(
    meta: &dyn MetaStore,
    req: &ExportRequest,
    mut each: impl FnMut(ExamRow<'_>) -> Result<(), ExportError>,
) -> Result<(u64, u64), ExportError> {
    let (mut outside, mut undated) = (0, 0);
    for listing in meta.list_exams(&req.facility)? {
        let raw = meta
            .package_manifest(&req.facility, &listing.package_id)?
            .ok_or_else(|| ExportError::BadManifest { package: listing.package_id.to_string() })?;
        let manifest = Manifest::parse(raw.as_bytes())
            .map_err(|_| ExportError::BadManifest { package: listing.package_id.to_string() })?;
        let Some(exam) = manifest.exam() else {
            return Err(ExportError::BadManifest { package: listing.package_id.to_string() });
        };
        let inside = match req.date_field {
            DateField::Exam => match &exam.exam_date {
                Some(d) => req.range.holds_exam_date(d),
                None => {
                    undated += 1;
                    continue;
                }
            },
            DateField::Received => req.range.holds_time(&listing.received_at),
        };
        if !inside {
            outside += 1;
            continue;
        }
        each(ExamRow {
            facility: req.facility.as_str(),
            listing: &listing,
            manifest: &manifest,
            exam,
        })?;
    }
    Ok((outside, undated))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_path_buf(), source }
}

/// Write the exams of `req` to `<out_dir>/exams_<facility>_<from>_<to>.parquet` and the
/// data dictionary beside it; logged in the access log whatever the outcome.
pub fn parquet(
    meta: &dyn MetaStore,
    req: &ExportRequest,
    out_dir: &Path,
) -> Result<ExportReport, ExportError> {
    let started_at = now();
    let result = write_parquet(meta, req, out_dir);
    let rows = result.as_ref().map_or(0, |r| r.rows);
    let log_id =
        log(meta, req, "parquet", &out_dir.display().to_string(), rows, &result, started_at)?;
    result.map(|r| ExportReport { log_id, ..r })
}

fn write_parquet(
    meta: &dyn MetaStore,
    req: &ExportRequest,
    out_dir: &Path,
) -> Result<ExportReport, ExportError> {
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let name = format!("exams_{}_{}_{}.parquet", req.facility, req.range.from, req.range.to);
    let path = out_dir.join(&name);
    if path.exists() {
        return Err(ExportError::Exists { path });
    }
    // Written under a temporary name and renamed when whole: a reader never sees half a file.
    let partial = out_dir.join(format!(".{name}.partial"));
    let file = std::fs::File::create(&partial).map_err(io(&partial))?;
    let pq = |source| ExportError::Parquet { path: path.clone(), source };
    let mut writer = parquet_file::ParquetWriter::new(file).map_err(pq)?;
    let (outside_range, undated) = selected_exams(meta, req, |row| {
        let values = COLUMNS.iter().map(|c| (c.get)(&row)).collect();
        writer.push(values).map_err(pq)
    })?;
    let rows = writer.finish().map_err(pq)?;
    std::fs::rename(&partial, &path).map_err(io(&path))?;
    let dict_path = out_dir.join("data-dictionary.json");
    let dict = serde_json::to_vec_pretty(&serde_json::json!({
        "table": "exams",
        "one_row_per": "current exam (highest revision) of the facility in the date range",
        "columns": columns::dictionary(),
    }))
    .expect("dictionary serializes");
    fgw_format::durable::write_atomic(&dict_path, &dict).map_err(io(&dict_path))?;
    Ok(ExportReport { log_id: 0, files: vec![path, dict_path], rows, outside_range, undated })
}

/// Write the DICOM objects of the request's exams (and, by reception date, those of no exam
/// the hub has) as Part 10 files under
/// `<out_dir>/<study>/<sop-instance>.dcm`, and store each into `archive` when given.
pub fn dicom(
    meta: &dyn MetaStore,
    objects: &dyn ObjectStore,
    req: &ExportRequest,
    out_dir: &Path,
    archive: Option<&OrthancTarget>,
) -> Result<ExportReport, ExportError> {
    let started_at = now();
    let result = write_dicom(meta, objects, req, out_dir, archive);
    let rows = result.as_ref().map_or(0, |r| r.rows);
    let destination = match archive {
        Some(a) => format!("{} and {}", out_dir.display(), a.url()),
        None => out_dir.display().to_string(),
    };
    let log_id = log(meta, req, "dicom", &destination, rows, &result, started_at)?;
    result.map(|r| ExportReport { log_id, ..r })
}

fn write_dicom(
    meta: &dyn MetaStore,
    objects: &dyn ObjectStore,
    req: &ExportRequest,
    out_dir: &Path,
    archive: Option<&OrthancTarget>,
) -> Result<ExportReport, ExportError> {
    let mut exams = BTreeSet::new();
    let (outside_range, undated) = selected_exams(meta, req, |row| {
        exams.insert(row.exam.exam_pid.clone());
        Ok(())
    })?;
    let known: BTreeSet<String> =
        meta.list_exams(&req.facility)?.into_iter().map(|e| e.exam_pid).collect();
    let mut files = Vec::new();
    for d in meta.list_dicom(&req.facility)? {
        // Objects joined to an exam the hub has follow the exam's selection; the others (no
        // accession, or an exam whose record has not arrived), by when they were received.
        let wanted = match &d.exam_pid {
            Some(e) if known.contains(e) => exams.contains(e),
            _ => req.range.holds_time(&d.received_at),
        };
        if !wanted {
            continue;
        }
        let raw = meta
            .package_manifest(&req.facility, &d.package_id)?
            .ok_or_else(|| ExportError::BadManifest { package: d.package_id.to_string() })?;
        let manifest = Manifest::parse(raw.as_bytes())
            .map_err(|_| ExportError::BadManifest { package: d.package_id.to_string() })?;
        for f in &manifest.files {
            let bytes = objects
                .get(&f.sha256)?
                .ok_or_else(|| ExportError::BadManifest { package: d.package_id.to_string() })?;
            let path = dicom_files::write_part10(out_dir, &d, &bytes)?;
            if let Some(a) = archive {
                a.store(&bytes)?;
            }
            files.push(path);
        }
    }
    let rows = files.len() as u64;
    Ok(ExportReport { log_id: 0, files, rows, outside_range, undated })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn log(
    meta: &dyn MetaStore,
    req: &ExportRequest,
    format: &str,
    destination: &str,
    rows: u64,
    result: &Result<ExportReport, ExportError>,
    started_at: String,
) -> Result<i64, StoreError> {
    let outcome = if result.is_ok() { "complete" } else { "failed" };
    let id = meta.record_export(&ExportRecord {
        id: 0,
        researcher: req.researcher.as_str().to_string(),
        facility: req.facility.clone(),
        date_from: req.range.from.to_string(),
        date_to: req.range.to.to_string(),
        format: format.into(),
        destination: destination.into(),
        rows,
        outcome: outcome.into(),
        started_at,
        finished_at: now(),
    })?;
    tracing::info!(
        log_id = id,
        researcher = req.researcher.as_str(),
        facility = %req.facility,
        format,
        rows,
        outcome,
        "researchers' export"
    );
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: &str, b: &str) -> DateRange {
        DateRange::new(a.parse().unwrap(), b.parse().unwrap()).unwrap()
    }

    #[test]
    fn exam_dates_select_by_day_or_overlapping_month() {
        let r = range("2026-11-20", "2026-12-10");
        assert!(r.holds_exam_date("2026-11-20"));
        assert!(r.holds_exam_date("2026-12-10"));
        assert!(!r.holds_exam_date("2026-11-19"));
        assert!(!r.holds_exam_date("2026-12-11"));
        assert!(r.holds_exam_date("2026-11"), "a year-month overlapping the range");
        assert!(r.holds_exam_date("2026-12"));
        assert!(!r.holds_exam_date("2026-10"));
        assert!(!r.holds_exam_date("2027-01"));
        assert!(!r.holds_exam_date("garbage"));
    }

    #[test]
    fn reversed_range_is_refused() {
        assert!(matches!(
            DateRange::new("2026-02-01".parse().unwrap(), "2026-01-01".parse().unwrap()),
            Err(ExportError::EmptyRange { .. })
        ));
    }

    #[test]
    fn researcher_names_are_plain() {
        assert!(Researcher::new("tanaka.k@u-tokyo").is_ok());
        assert!(Researcher::new("").is_err());
        assert!(Researcher::new("a b").is_err());
        assert!(Researcher::new("../x").is_err());
        assert!(Researcher::new(&"x".repeat(65)).is_err());
    }

    #[test]
    fn schema_parses_and_names_every_column() {
        let text = parquet_file::schema_text();
        let schema = parquet::schema::parser::parse_message_type(&text).unwrap();
        assert_eq!(schema.get_fields().len(), COLUMNS.len());
        let names: BTreeSet<_> = COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), COLUMNS.len(), "column names are unique");
    }
}
