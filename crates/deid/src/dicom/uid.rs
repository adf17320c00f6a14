//! UID replacement. Table `U` attributes are remapped with [`Pseudonymizer::uid`]; so is any
//! other UI value outside the table, unless it is a DICOM-defined UID (`1.2.840.10008.` —
//! SOP classes, transfer syntaxes, coding schemes) or sits in an attribute that names a class,
//! not an instance: an unlisted instance UID (a vendor's own reference) could otherwise link
//! the output back to the hospital's archive.

use crate::Pseudonymizer;
use dicom_core::Tag;
use dicom_dictionary_std::tags;

/// Root of UIDs defined by the standard itself; they identify no one. (A prefix, not a UID:
/// the dictionary has no constant for it.)
const DICOM_ROOT: &str = "1.2.840.10008.";

/// Attributes outside the table whose UI value names a class (kept even if vendor-defined).
const CLASS_UID_TAGS: [Tag; 5] = [
    tags::SOP_CLASS_UID,
    tags::REFERENCED_SOP_CLASS_UID,
    tags::RELATED_GENERAL_SOP_CLASS_UID,
    tags::ORIGINAL_SPECIALIZED_SOP_CLASS_UID,
    tags::REFERENCED_SOP_CLASS_UID_IN_FILE,
];

/// The replacement of one UID value; empty stays empty.
pub(crate) fn remap(p: &Pseudonymizer, value: &str) -> String {
    let v = value.trim_end_matches(['\0', ' ']).trim_start();
    if v.is_empty() {
        String::new()
    } else {
        p.uid(v)
    }
}

/// True if a UI value outside the table should be kept as it is.
pub(crate) fn keep_unlisted(tag: Tag, value: &str) -> bool {
    CLASS_UID_TAGS.contains(&tag) || value.trim_start().starts_with(DICOM_ROOT)
}
