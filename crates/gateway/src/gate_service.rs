//! The gate as the box drives it, for the daemon and `gateway deid` alike: the one place that
//! builds the de-identification context (facility, pseudonymizer from the secret store,
//! policy, pixel stage), the exam key, the DICOM instance key and the supersede rule. Both
//! modes go through here, so `gateway deid` cannot drift from what the daemon uploads.

use crate::config::GatewayConfig;
use crate::secrets::Secrets;
use crate::state::ExamKey;
use fgw_deid::pixels::PixelStage;
use fgw_deid::{DeidContext, DeidOutcome, Policy, Pseudonymizer};
use fgw_format::ids::FacilityId;
use fgw_ingest::dicom_scp::Uid;
use fgw_records::{Column, RawExam, RawReport};
use std::collections::BTreeMap;

/// Profile recorded for HL7 reports.
const HL7_PROFILE: &str = "hl7";
/// Profile recorded for DICOM objects.
const DICOM_PROFILE: &str = "dicom";

/// Everything the gate needs, built once per process from the configuration and the box's
/// secret store.
pub(crate) struct GateService {
    facility: FacilityId,
    policy: Policy,
    /// Id of the export's vendor mapping profile (recorded in exam records).
    export_profile: String,
    pseudonymizer: Pseudonymizer,
    /// The burned-in text stage and its OCR engines (started lazily, bounded in number).
    pixels: PixelStage,
}

impl GateService {
    pub(crate) fn new(cfg: &GatewayConfig, secrets: &Secrets) -> GateService {
        GateService {
            facility: cfg.facility_id.clone(),
            policy: cfg.deid.clone(),
            export_profile: cfg.export.mapping.id.clone(),
            pseudonymizer: Pseudonymizer::new(secrets.pseudonym_key()),
            pixels: PixelStage::new(cfg.deid.pixels.clone()),
        }
    }

    fn ctx<'a>(&'a self, profile: &'a str, revision: u32) -> DeidContext<'a> {
        DeidContext {
            facility: &self.facility,
            pseudonymizer: &self.pseudonymizer,
            policy: &self.policy,
            profile,
            revision,
            pixels: &self.pixels,
        }
    }

    /// The exam's key (keyed pseudonym of its exam id); `None` without an exam id.
    pub(crate) fn exam_key(&self, exam: &RawExam) -> Option<ExamKey> {
        exam.get(Column::ExamId)
            .map(|id| ExamKey::from_pseudonym(self.pseudonymizer.exam(&self.facility, id)))
    }

    /// The key a DICOM object is deduplicated by: the keyed pseudonym of its SOP Instance
    /// UID, never the UID itself.
    pub(crate) fn instance_key(&self, sop_instance_uid: &Uid) -> String {
        self.pseudonymizer.uid(sop_instance_uid.as_str())
    }

    /// An exported exam, as the `revision`th export of that exam.
    pub(crate) fn exam(&self, exam: &RawExam, revision: u32) -> DeidOutcome {
        fgw_deid::deidentify_exam(exam, &self.ctx(&self.export_profile, revision))
    }

    /// A report received over HL7.
    pub(crate) fn report(&self, report: &RawReport) -> DeidOutcome {
        fgw_deid::deidentify_report(report, &self.ctx(HL7_PROFILE, 1))
    }

    /// One DICOM object; `label` names it in errors (never its file name, which may carry
    /// the patient's name).
    pub(crate) fn dicom(&self, label: &str, bytes: &[u8]) -> DeidOutcome {
        fgw_deid::deidentify_dicom_package(
            label,
            bytes,
            &self.ctx(DICOM_PROFILE, 1),
            &self.policy.dicom,
        )
    }

    /// How many items the pixel stage can work on at once (its OCR engines).
    pub(crate) fn parallelism(&self) -> usize {
        self.pixels.parallelism().max(1)
    }
}

/// The supersede rule: an exam's exports are numbered 1, 2, … in the order they arrive, and
/// only the latest is uploaded. The daemon applies it in the database
/// ([`crate::state::Db::normalize`]); `gateway deid` over its input with [`Exports`].
pub(crate) fn next_revision(previous: u32) -> u32 {
    previous + 1
}

/// Where an export sits in `gateway deid`'s input: (batch index, row).
pub(crate) type ExportAt = (usize, u64);

/// `gateway deid`'s view of the supersede rule: every export of each exam in the input,
/// recorded in arrival order (batches sorted by name), before any is de-identified.
#[derive(Default)]
pub(crate) struct Exports {
    revision: BTreeMap<ExamKey, u32>,
    latest: BTreeMap<ExamKey, ExportAt>,
}

impl Exports {
    /// Record the next export of the exam `key`.
    pub(crate) fn record(&mut self, key: ExamKey, at: ExportAt) {
        let revision = self.revision.entry(key.clone()).or_default();
        *revision = next_revision(*revision);
        self.latest.insert(key, at);
    }

    /// The revision to de-identify this export as, or `None` when a later export of the same
    /// exam supersedes it.
    pub(crate) fn revision_of(&self, key: &ExamKey, at: ExportAt) -> Option<u32> {
        (self.latest.get(key) == Some(&at)).then(|| self.revision[key])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_export_wins_with_the_count_as_revision() {
        let (a, b) = (ExamKey::from_pseudonym("e-a".into()), ExamKey::from_pseudonym("e-b".into()));
        let mut x = Exports::default();
        x.record(a.clone(), (0, 1));
        x.record(b.clone(), (0, 2));
        x.record(a.clone(), (1, 5));
        assert_eq!(x.revision_of(&a, (0, 1)), None);
        assert_eq!(x.revision_of(&a, (1, 5)), Some(2));
        assert_eq!(x.revision_of(&b, (0, 2)), Some(1));
    }
}
