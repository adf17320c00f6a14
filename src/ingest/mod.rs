//! Reading the department-system export (identifiable side).
//!
//! - [`export`]: batches, `exams.csv`, images and reports of the reference layout;
//! - [`sniff`]: what kind of file a blob is, by content rather than by extension.

pub mod dicom_pull;
pub mod dicom_scp;
pub mod export;
pub mod hl7;
pub mod sniff;
