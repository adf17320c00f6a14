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
    /// An entry of the export share is a symlink, or a FIFO/device/socket where a file or
    /// folder is expected; never followed or read. Detail: root-relative path (templates for
    /// exam-named parts) and what is wrong.
    UnsafeEntry(String),
    /// Input over a configured cap (`[export] max_*`); detail: path and the key.
    OverLimit(String),
    /// The box failed on this item (a panic in a stage); detail: the stage. The panic's own
    /// message is never kept: it may quote the data.
    InternalError(String),
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
            QuarantineReason::UnsafeEntry(_) => "unsafe-entry",
            QuarantineReason::OverLimit(_) => "over-limit",
            QuarantineReason::InternalError(_) => "internal-error",
        }
    }
}

impl QuarantineReason {
    /// The reason whose display text is `s` (`code` or `code: detail`): the inverse of
    /// `Display`, for stores that keep the text (the gateway's state database).
    pub fn parse(s: &str) -> Option<QuarantineReason> {
        use QuarantineReason as Q;
        let (code, detail) = match s.split_once(": ") {
            Some((code, detail)) => (code, Some(detail.to_string())),
            None => (s, None),
        };
        let reason = match (code, detail) {
            ("pixels-not-cleaned", None) => Q::PixelsNotCleaned,
            ("fov-not-found", None) => Q::FieldNotFound,
            ("image-format-unsupported", None) => Q::ImageFormatUnsupported,
            ("dicom-in-export", None) => Q::DicomInExport,
            ("identifier-in-pixels", Some(d)) => Q::IdentifierInPixels(d),
            ("pixel-stage-failed", Some(d)) => Q::PixelStageFailed(d),
            ("image-unreadable", Some(d)) => Q::ImageUnreadable(d),
            ("identifier-found", Some(d)) => Q::IdentifierFound(d),
            ("required-field-invalid", Some(d)) => Q::RequiredFieldInvalid(d),
            ("input-invalid", Some(d)) => Q::InputInvalid(d),
            ("unsafe-entry", Some(d)) => Q::UnsafeEntry(d),
            ("over-limit", Some(d)) => Q::OverLimit(d),
            ("internal-error", Some(d)) => Q::InternalError(d),
            _ => return None,
        };
        // The table above must agree with `code()`.
        (reason.code() == code).then_some(reason)
    }
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuarantineReason::ImageUnreadable(d)
            | QuarantineReason::IdentifierFound(d)
            | QuarantineReason::RequiredFieldInvalid(d)
            | QuarantineReason::InputInvalid(d)
            | QuarantineReason::UnsafeEntry(d)
            | QuarantineReason::OverLimit(d)
            | QuarantineReason::InternalError(d)
            | QuarantineReason::IdentifierInPixels(d)
            | QuarantineReason::PixelStageFailed(d) => write!(f, "{}: {}", self.code(), d),
            _ => f.write_str(self.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::QuarantineReason as Q;

    /// One of each variant. The match makes a new variant a compile error here, so `parse`
    /// cannot silently fall behind `Display`.
    fn every_reason() -> Vec<Q> {
        let all = vec![
            Q::PixelsNotCleaned,
            Q::FieldNotFound,
            Q::IdentifierInPixels("patient_name".into()),
            Q::PixelStageFailed("ocr: engine".into()),
            Q::ImageUnreadable("jpeg: truncated".into()),
            Q::ImageFormatUnsupported,
            Q::IdentifierFound("findings: patient_id".into()),
            Q::RequiredFieldInvalid("exam_id".into()),
            Q::DicomInExport,
            Q::InputInvalid("b/exams.csv row 9: too many columns".into()),
            Q::UnsafeEntry("b/reports/{exam_id}.txt: symlink".into()),
            Q::OverLimit("b/exams.csv: over export.max_table_bytes (1024)".into()),
            Q::InternalError("panic in the deid stage".into()),
        ];
        for r in &all {
            match r {
                Q::PixelsNotCleaned
                | Q::FieldNotFound
                | Q::IdentifierInPixels(_)
                | Q::PixelStageFailed(_)
                | Q::ImageUnreadable(_)
                | Q::ImageFormatUnsupported
                | Q::IdentifierFound(_)
                | Q::RequiredFieldInvalid(_)
                | Q::DicomInExport
                | Q::InputInvalid(_)
                | Q::UnsafeEntry(_)
                | Q::OverLimit(_)
                | Q::InternalError(_) => {}
            }
        }
        all
    }

    #[test]
    fn display_text_parses_back() {
        for r in every_reason() {
            let text = r.to_string();
            assert_eq!(Q::parse(&text), Some(r));
        }
        // A detail may itself hold ": ".
        assert_eq!(Q::parse("input-invalid: a: b"), Some(Q::InputInvalid("a: b".into())));
        assert_eq!(Q::parse("input-invalid"), None, "detail missing");
        assert_eq!(Q::parse("fov-not-found: x"), None, "detail where there is none");
        assert_eq!(Q::parse("bogus"), None);
    }
}
