//! Why something stays on the box, as the gateway records it (code and detail, no values).

/// Why something stays on the box. The text never contains a data value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "code", content = "detail")]
pub enum QuarantineReason {
    /// Pixels not cleaned: the policy withholds images (`[deid.pixels] mode = "withhold"`),
    /// or a DICOM object's pixel data is in a form the stage does not take.
    PixelsNotCleaned,
    /// No field of view found in the frame and no device layout for its size.
    FieldNotFound,
    /// An identifier of this exam was still read (OCR) in the masked image; detail names
    /// the identifier kind, never the value.
    IdentifierInPixels(String),
    /// The pixel stage could not run on this image (OCR engine, encoder); detail says what.
    PixelStageFailed(String),
    /// Image bytes could not be decoded as the format their signature claims.
    ImageUnreadable(String),
    /// Image format not supported (by signature, not name).
    ImageFormatUnsupported,
    /// An identifier of this exam was still found after de-identification; detail names the
    /// field (e.g. `findings`) and identifier kind (e.g. `patient_name`), never the value.
    IdentifierFound(String),
    /// A required column is missing or unparseable (column key).
    RequiredFieldInvalid(String),
    /// A DICOM file attached to an export row as an exam image. DICOM objects go through the
    /// DICOM gate (SCP, pull, `gateway deid` on the file), not the export's image path.
    DicomInExport,
    /// Input file could not be read or parsed (what was wrong, no values).
    InputInvalid(String),
}

impl QuarantineReason {
    /// The stable code (kebab-case) the gateway stores and counts by.
    pub fn code(&self) -> &'static str {
        match self {
            QuarantineReason::PixelsNotCleaned => "pixels-not-cleaned",
            QuarantineReason::FieldNotFound => "fov-not-found",
            QuarantineReason::IdentifierInPixels(_) => "identifier-in-pixels",
            QuarantineReason::PixelStageFailed(_) => "pixel-stage-failed",
            QuarantineReason::ImageUnreadable(_) => "image-unreadable",
            QuarantineReason::ImageFormatUnsupported => "image-format-unsupported",
            QuarantineReason::IdentifierFound(_) => "identifier-found",
            QuarantineReason::RequiredFieldInvalid(_) => "required-field-invalid",
            QuarantineReason::DicomInExport => "dicom-in-export",
            QuarantineReason::InputInvalid(_) => "input-invalid",
        }
    }
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuarantineReason::ImageUnreadable(d)
            | QuarantineReason::IdentifierFound(d)
            | QuarantineReason::RequiredFieldInvalid(d)
            | QuarantineReason::InputInvalid(d)
            | QuarantineReason::IdentifierInPixels(d)
            | QuarantineReason::PixelStageFailed(d) => write!(f, "{}: {}", self.code(), d),
            _ => f.write_str(self.code()),
        }
    }
}
