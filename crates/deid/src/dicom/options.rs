//! Which PS3.15 Annex E options the box applies on top of the Basic Application Level
//! Confidentiality Profile, and which private attributes count as safe. Part of the gateway
//! configuration (`[deid.dicom]`).

use serde::{Deserialize, Serialize};

/// A profile option of PS3.15 Table E.1-1 (each a column of the table) with its CID 7050 code.
///
/// Not offered, on purpose: Retain UIDs (the issue requires remapping), Clean Graphics and
/// Clean Structured Content (not implemented: without them those attributes are removed,
/// which is the conservative outcome), Clean Pixel Data (the pixel stage's own issue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DicomOption {
    /// Keep dates and times as they are (column `rtnLongFullDatesOpt`).
    RetainLongitudinalFullDates,
    /// Shift dates by the patient's keyed offset (`Pseudonymizer::date_shift_days`); times of
    /// day are kept, since a whole-day shift does not change them (`rtnLongModifDatesOpt`).
    RetainLongitudinalModifiedDates,
    /// Keep age, sex, size, weight and the like; clean allergies and patient state
    /// (`rtnPatCharsOpt`).
    RetainPatientCharacteristics,
    /// Keep device serial numbers, station names, calibration dates (`rtnDevIdOpt`).
    RetainDeviceIdentity,
    /// Keep institution name, address and department (`rtnInstIdOpt`).
    RetainInstitutionIdentity,
    /// Keep descriptions and comments after scrubbing them with the object's own identifiers
    /// and the generic patterns of `deid::text` (`cleanDescOpt`).
    CleanDescriptors,
    /// Keep the private attributes listed in [`DicomPolicy::safe_private`] (`rtnSafePrivOpt`).
    RetainSafePrivate,
}

impl DicomOption {
    /// Every option, in the order the code sequence lists them.
    pub const ALL: [DicomOption; 7] = [
        DicomOption::RetainLongitudinalFullDates,
        DicomOption::RetainLongitudinalModifiedDates,
        DicomOption::RetainPatientCharacteristics,
        DicomOption::RetainDeviceIdentity,
        DicomOption::RetainInstitutionIdentity,
        DicomOption::CleanDescriptors,
        DicomOption::RetainSafePrivate,
    ];

    /// The Table E.1-1 column (JSON key) this option reads.
    pub fn column(self) -> &'static str {
        match self {
            DicomOption::RetainLongitudinalFullDates => "rtnLongFullDatesOpt",
            DicomOption::RetainLongitudinalModifiedDates => "rtnLongModifDatesOpt",
            DicomOption::RetainPatientCharacteristics => "rtnPatCharsOpt",
            DicomOption::RetainDeviceIdentity => "rtnDevIdOpt",
            DicomOption::RetainInstitutionIdentity => "rtnInstIdOpt",
            DicomOption::CleanDescriptors => "cleanDescOpt",
            DicomOption::RetainSafePrivate => "rtnSafePrivOpt",
        }
    }

    /// The configuration name (`retain-longitudinal-modified-dates`, …).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// DCM code (CID 7050) for De-identification Method Code Sequence.
    pub fn code(self) -> &'static str {
        match self {
            DicomOption::RetainLongitudinalFullDates => "113106",
            DicomOption::RetainLongitudinalModifiedDates => "113107",
            DicomOption::RetainPatientCharacteristics => "113108",
            DicomOption::RetainDeviceIdentity => "113109",
            DicomOption::RetainInstitutionIdentity => "113112",
            DicomOption::CleanDescriptors => "113105",
            DicomOption::RetainSafePrivate => "113111",
        }
    }

    /// Code meaning, as in CID 7050.
    pub fn meaning(self) -> &'static str {
        match self {
            DicomOption::RetainLongitudinalFullDates => {
                "Retain Longitudinal With Full Dates Option"
            }
            DicomOption::RetainLongitudinalModifiedDates => {
                "Retain Longitudinal With Modified Dates Option"
            }
            DicomOption::RetainPatientCharacteristics => "Retain Patient Characteristics Option",
            DicomOption::RetainDeviceIdentity => "Retain Device Identity Option",
            DicomOption::RetainInstitutionIdentity => "Retain Institution Identity Option",
            DicomOption::CleanDescriptors => "Clean Descriptors Option",
            DicomOption::RetainSafePrivate => "Retain Safe Private Option",
        }
    }
}

/// The Basic profile itself (always applied).
pub const BASIC_PROFILE_CODE: &str = "113100";
/// Code meaning of [`BASIC_PROFILE_CODE`].
pub const BASIC_PROFILE_MEANING: &str = "Basic Application Confidentiality Profile";

/// One private attribute known to carry no identifying data: creator string, odd group and
/// the element's low byte within its block (blocks move between files, the creator does not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SafePrivate {
    /// Private Creator value of the block.
    pub creator: String,
    /// Odd group number.
    pub group: u16,
    /// Element number within the block (low byte).
    pub element: u8,
}

/// `[deid.dicom]`: the PS3.15 options and the safe private attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct DicomPolicy {
    /// Options applied on top of the Basic profile. Default: `clean-descriptors` only —
    /// study/series descriptions help the registry and are scrubbed and verified; dates,
    /// patient characteristics, device and institution identity go (the exam record carries
    /// what the registry needs from them).
    pub options: Vec<DicomOption>,
    /// Private attributes kept under `retain-safe-private`. Default: empty — no vendor block
    /// has been reviewed yet, so every private attribute goes even with the option on.
    pub safe_private: Vec<SafePrivate>,
}

impl Default for DicomPolicy {
    fn default() -> Self {
        DicomPolicy { options: vec![DicomOption::CleanDescriptors], safe_private: Vec::new() }
    }
}

impl DicomPolicy {
    /// Whether option `o` is selected.
    pub fn has(&self, o: DicomOption) -> bool {
        self.options.contains(&o)
    }

    /// Options in a fixed order without duplicates (what the code sequence lists).
    pub fn selected(&self) -> Vec<DicomOption> {
        DicomOption::ALL.into_iter().filter(|o| self.has(*o)).collect()
    }

    /// Full and modified dates contradict each other; private entries must name odd groups
    /// and block elements.
    pub fn validate(&self) -> Result<(), String> {
        if self.has(DicomOption::RetainLongitudinalFullDates)
            && self.has(DicomOption::RetainLongitudinalModifiedDates)
        {
            return Err("retain-longitudinal-full-dates and retain-longitudinal-modified-dates \
                        are mutually exclusive"
                .into());
        }
        for s in &self.safe_private {
            if s.group % 2 == 0 || s.group < 0x0009 || s.creator.trim().is_empty() {
                return Err(format!(
                    "safe-private entry for group {:04X} needs an odd group above 0008 and a \
                     creator",
                    s.group
                ));
            }
        }
        Ok(())
    }
}
