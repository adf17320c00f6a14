//! Caps on what one batch or exam of the export may hold. Everything is read into memory and
//! spooled whole, so without them one huge table, image folder or report (or a crafted one)
//! exhausts the box's memory, and the re-queued input does it again after the restart.

use std::fmt;

/// Largest `exams.csv` read (default 64 MiB: a night's table is a few MiB).
pub const MAX_TABLE_BYTES: u64 = 64 * 1024 * 1024;
/// Most images read for one exam (default 500; an endoscopy exam has tens).
pub const MAX_IMAGES_PER_EXAM: u32 = 500;
/// Largest image read (default 64 MiB).
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest report read (default 16 MiB: a text report is a few KiB).
pub const MAX_REPORT_BYTES: u64 = 16 * 1024 * 1024;

/// The caps (the gateway's `[export]` keys of the same names). Input above one is refused
/// with [`super::ExportError::OverLimit`]; reading stops at the cap plus one byte or entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// Largest table file, bytes.
    pub max_table_bytes: u64,
    /// Most image files in one exam's folder.
    pub max_images_per_exam: u32,
    /// Largest image file, bytes.
    pub max_image_bytes: u64,
    /// Largest report file, bytes.
    pub max_report_bytes: u64,
}

impl Default for ExportLimits {
    fn default() -> Self {
        ExportLimits {
            max_table_bytes: MAX_TABLE_BYTES,
            max_images_per_exam: MAX_IMAGES_PER_EXAM,
            max_image_bytes: MAX_IMAGE_BYTES,
            max_report_bytes: MAX_REPORT_BYTES,
        }
    }
}

/// Which cap was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`ExportLimits::max_table_bytes`].
    TableBytes,
    /// [`ExportLimits::max_images_per_exam`].
    ImagesPerExam,
    /// [`ExportLimits::max_image_bytes`].
    ImageBytes,
    /// [`ExportLimits::max_report_bytes`].
    ReportBytes,
}

impl Limit {
    /// The configuration key (`[export]` section).
    pub fn key(self) -> &'static str {
        match self {
            Limit::TableBytes => "max_table_bytes",
            Limit::ImagesPerExam => "max_images_per_exam",
            Limit::ImageBytes => "max_image_bytes",
            Limit::ReportBytes => "max_report_bytes",
        }
    }

    /// The cap's value in `limits`.
    pub fn of(self, limits: &ExportLimits) -> u64 {
        match self {
            Limit::TableBytes => limits.max_table_bytes,
            Limit::ImagesPerExam => u64::from(limits.max_images_per_exam),
            Limit::ImageBytes => limits.max_image_bytes,
            Limit::ReportBytes => limits.max_report_bytes,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "export.{}", self.key())
    }
}
