//! Reading the department-system export (identifiable side).
//!
//! - [`export`]: batches, `exams.csv`, images and reports of the reference layout;
//! - [`hl7`]: reports over MLLP;
//! - [`dicom_scp`]: objects pushed by C-STORE;
//! - [`dicom_pull`]: studies fetched from the archive (C-FIND, then C-MOVE to our SCP).

pub mod dicom_pull;
pub mod dicom_scp;
pub mod export;
pub mod hl7;
mod listener;

pub use listener::{PeerNet, PeerNetError};
