//! Department-system exports: the reference layout (`docs/department-export.md`,
//! `<root>/<batch>/{exams.csv, images/<検査ID>/*, reports/<検査ID>.txt, DONE}`) or any vendor
//! layout described by a [`Profile`] (file names, headers, codes, encodings, date forms).
//!
//! Flow: [`find_ready_batches`] → [`read_batch`] (rows of the table, mapped to reference
//! form) → [`load_attachments`] per exam (images and report). All three take the profile;
//! the `_with` forms take the [`ExportLimits`] too. [`find_ready_batches`] takes the caller's
//! labelling of batch folders too ([`BatchDir::label`]).
//!
//! Nothing below the export root is opened through a symlink, and only regular files (and
//! folders where a folder is expected) are read: see `beneath`. What is refused, or over a
//! limit, is an error naming the path within the batch (templates for exam-named parts).
//!
//! Errors and [`RowError`]s carry the batch's label, file names within the batch, row/line
//! numbers, column keys and fixed descriptions only: never a cell value, the batch folder's
//! own name (the department system chooses it; it may hold a patient's name or id), a 検査ID
//! or an image folder name (the folder of an exam's images *is* its 検査ID).

mod attachments;
mod batch;
mod beneath;
mod encoding;
mod limits;
mod table;

pub use attachments::{load_attachments, load_attachments_with, natural_cmp};
pub use batch::{find_ready_batches, BatchDir};
pub use beneath::Refusal;
pub use encoding::{decode, detect, TextEncoding};
pub use limits::{
    ExportLimits, Limit, MAX_IMAGES_PER_EXAM, MAX_IMAGE_BYTES, MAX_REPORT_BYTES, MAX_TABLE_BYTES,
};
pub use table::{
    is_safe_exam_id, parse_batch_bytes, read_batch, read_batch_with, BatchRows, RowError,
};

pub use fgw_records::profile::Profile;
use std::io;

/// Name of the table inside a batch folder of the reference layout (other layouts:
/// [`Profile::table`]).
pub const EXAMS_CSV: &str = "exams.csv";
/// Marker written last by the reference exporter (other layouts: [`Profile::done_marker`]).
pub const DONE: &str = "DONE";

/// File-level failures. Row-level problems are [`RowError`]s instead.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variants and fields: the error message says what each is
pub enum ExportError {
    #[error("cannot list the export root: {source}")]
    Root {
        #[source]
        source: io::Error,
    },
    #[error("{file}: missing")]
    Missing { file: String },
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("{file}: not valid {encoding} text (first bad byte on line {line})")]
    Undecodable { file: String, encoding: TextEncoding, line: u64 },
    #[error("{file}: no header row")]
    NoHeader { file: String },
    #[error("{file}: header has no {column} column")]
    MissingColumn { file: String, column: &'static str },
    #[error("{file}: header column {position} duplicates an earlier column ({column})")]
    DuplicateColumn {
        file: String,
        /// 1-based position in the header.
        position: usize,
        /// Column key, or `extra` for a non-reference column (its name is not printed).
        column: &'static str,
    },
    #[error("{file}: CSV syntax error on line {line}")]
    Csv { file: String, line: u64 },
    /// `source` is the exam's row in `exams.csv`; the attachment's own path is not printed
    /// because it contains the 検査ID.
    #[error("{source_ref}: exam_id is not usable as a file name")]
    UnsafeExamId { source_ref: String },
    /// `dir` is the profile's template (`images/{exam_id}`), never the rendered folder.
    #[error("{batch}/{dir} of {source_ref}: cannot list: {source}")]
    ImageDir {
        batch: String,
        dir: String,
        source_ref: String,
        #[source]
        source: io::Error,
    },
    /// `file` is the profile's template (`reports/{exam_id}.txt`), never the rendered name.
    #[error("{batch}/{file} of {source_ref}: cannot read: {source}")]
    ReportIo {
        batch: String,
        file: String,
        source_ref: String,
        #[source]
        source: io::Error,
    },
    /// A symlink on the way, or the wrong kind of entry (FIFO, device, socket where a file or
    /// folder is expected). `path` is the batch's label and the path within the batch;
    /// exam-named parts are the profile's templates (`reports/{exam_id}.txt`), followed by
    /// `of <row>` for an exam.
    #[error("{path}: {what}")]
    Refused { path: String, what: Refusal },
    /// Over one of the [`ExportLimits`]; `path` as for `Refused`.
    #[error("{path}: over {limit} ({cap})")]
    OverLimit { path: String, limit: Limit, cap: u64 },
    #[error(
        "{batch}/{file} of {source_ref}: not valid {encoding} text (first bad byte on line {line})"
    )]
    ReportUndecodable {
        batch: String,
        file: String,
        source_ref: String,
        encoding: TextEncoding,
        line: u64,
    },
}
