//! The listeners' sinks: where the HL7 listener and the DICOM SCP put what they receive.

use super::Gateway;
use crate::state::ItemKind;
use fgw_ingest::dicom_scp::{DicomSink, ReceivedObject, SinkError as DicomSinkError};
use fgw_ingest::hl7::{ReportSink, SinkError};
use fgw_records::RawReport;
use std::sync::Arc;
use tracing::debug;

/// Where the HL7 listener puts reports: the encrypted spool, then a `report` item. The
/// listener ACKs only after this returned Ok, so a crash before that makes the sender retry.
pub(super) struct SpoolSink {
    pub(super) gw: Arc<Gateway>,
    pub(super) notify: Arc<tokio::sync::Notify>,
}

impl ReportSink for SpoolSink {
    fn accept(&self, report: RawReport) -> Result<(), SinkError> {
        let source = report.source.clone();
        self.gw
            .accept_raw(ItemKind::Report, source, |spool, id| spool.put_report(id, &report))
            .map_err(SinkError::Unavailable)?;
        self.notify.notify_one();
        Ok(())
    }
}

/// Where the DICOM SCP puts objects: the encrypted spool, then a `dicom` item. The SCP sends
/// Success only after this returned Ok.
pub(super) struct SpoolDicomSink {
    pub(super) gw: Arc<Gateway>,
    pub(super) notify: Arc<tokio::sync::Notify>,
}

impl DicomSink for SpoolDicomSink {
    /// An instance already accepted (same SOP Instance UID, same data set) is answered
    /// Success and dropped: a pull window retried after a crash, or a modality re-sending,
    /// must not make a second item. The same UID with another data set is kept, quarantined
    /// as a conflict (docs/decisions.md): a forged object sent first cannot silence the real
    /// one.
    fn accept(&self, object: ReceivedObject) -> Result<(), DicomSinkError> {
        let key = self.gw.gate.instance_key(&object.sop_instance_uid);
        let digest = crate::state::dicom_content_digest(&object.bytes);
        let source = format!("dicom-scp from {} ae {}", object.peer, object.calling_ae.as_str());
        let accepted = self
            .gw
            .accept_raw_once(ItemKind::Dicom, source, Some((&key, &digest)), |spool, id| {
                spool.put_bytes(id, &object.bytes)
            })
            .map_err(DicomSinkError::Unavailable)?;
        match accepted {
            Some(_) => self.notify.notify_one(),
            None => debug!(calling_ae = %object.calling_ae, "dicom duplicate instance dropped"),
        }
        Ok(())
    }
}
