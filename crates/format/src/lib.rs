//! The format the box and the hub share: identifiers, the package manifest, the upload
//! protocol, content sniffing and durable file writes. Nothing here holds personal data.

pub mod dicom_structure;
pub mod durable;
pub mod ids;
pub mod package;
pub mod sniff;
pub mod units;
