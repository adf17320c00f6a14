//! Ingest against real peers: department exports, DCMTK's storescu, MLLP senders.
//! One test binary per group: linking each file as its own binary dominated the suite's time.

#[path = "../common/mod.rs"]
mod common;

mod dicom_scp;
mod export_ingest;
mod hl7_mllp;
mod mutated_dicom;
mod mutated_ingest;
