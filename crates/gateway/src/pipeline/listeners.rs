//! The listeners' sinks: where the HL7 listener and the DICOM SCP put what they receive.

use super::{lanes, Gateway};
use crate::state::{ItemKind, Lane};
use fgw_ingest::dicom_pull::PullMode;
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
    /// Without room (`storage`) the report is refused with AE: the sender keeps it and
    /// sends it again later.
    fn accept(&self, report: RawReport) -> Result<(), SinkError> {
        let size = serde_json::to_vec(&report).map_or(0, |v| v.len() as u64);
        self.gw.admit_input(size).map_err(|r| SinkError::Unavailable(r.refusal()))?;
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

impl SpoolDicomSink {
    /// Objects the pull's archive sends while the pull is catching up go to the backlog
    /// lane; pushes from modalities, and the pull once at today, are current.
    fn lane_of(&self, object: &ReceivedObject) -> Lane {
        let pull = &self.gw.cfg.dicom_pull;
        let from_archive = pull.mode == PullMode::Enabled
            && pull.archive_ae.as_ref().is_some_and(|ae| ae.as_str() == object.calling_ae.as_str());
        if !from_archive {
            return Lane::Current;
        }
        let watermark = pull
            .archive_ae
            .as_ref()
            .and_then(|ae| self.gw.db.pull_mark(ae.as_str()).ok().flatten())
            .and_then(|m| m.watermark);
        let today = chrono::Local::now().date_naive();
        lanes::pulled_lane(watermark, today, self.gw.cfg.pipeline.current_days)
    }
}

impl DicomSink for SpoolDicomSink {
    /// An instance already accepted (same SOP Instance UID, same data set) is answered
    /// Success and dropped: a pull window retried after a crash, or a modality re-sending,
    /// must not make a second item. The same UID with another data set is kept, quarantined
    /// as a conflict (docs/decisions.md): a forged object sent first cannot silence the real
    /// one.
    ///
    /// Without room (`storage`) the object is refused with 0xA700 (Refused: Out of
    /// Resources): the sender keeps it and sends it again later.
    fn accept(&self, object: ReceivedObject) -> Result<(), DicomSinkError> {
        let size = object.bytes.len() as u64;
        self.gw.admit_input(size).map_err(|r| DicomSinkError::Unavailable(r.refusal()))?;
        let key = self.gw.gate.instance_key(&object.sop_instance_uid);
        let digest = crate::state::dicom_content_digest(&object.bytes);
        let source = format!("dicom-scp from {} ae {}", object.peer, object.calling_ae.as_str());
        let lane = self.lane_of(&object);
        let accepted = self
            .gw
            .accept_raw_once(ItemKind::Dicom, source, lane, Some((&key, &digest)), |spool, id| {
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
