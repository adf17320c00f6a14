//! UID replacement. Table `U` attributes are remapped with [`Pseudonymizer::uid`]; so is any
//! other UI value outside the table, unless it is a DICOM-defined UID (`1.2.840.10008.` —
//! SOP classes, transfer syntaxes, coding schemes) or sits in an attribute that names a class,
//! not an instance: an unlisted instance UID (a vendor's own reference) could otherwise link
//! the output back to the hospital's archive.

use crate::Pseudonymizer;
use dicom_core::Tag;

/// Root of UIDs defined by the standard itself; they identify no one.
const DICOM_ROOT: &str = "1.2.840.10008.";

/// Attributes outside the table whose UI value names a class (kept even if vendor-defined).
const CLASS_UID_TAGS: [Tag; 5] = [
    Tag(0x0008, 0x0016), // SOP Class UID
    Tag(0x0008, 0x1150), // Referenced SOP Class UID
    Tag(0x0008, 0x001A), // Related General SOP Class UID
    Tag(0x0008, 0x001B), // Original Specialized SOP Class UID
    Tag(0x0004, 0x1510), // Referenced SOP Class UID in File
];

/// The replacement of one UID value; empty stays empty.
pub fn remap(p: &Pseudonymizer, value: &str) -> String {
    let v = value.trim_end_matches(['\0', ' ']).trim_start();
    if v.is_empty() {
        String::new()
    } else {
        p.uid(v)
    }
}

/// True if a UI value outside the table should be kept as it is.
pub fn keep_unlisted(tag: Tag, value: &str) -> bool {
    CLASS_UID_TAGS.contains(&tag) || value.trim_start().starts_with(DICOM_ROOT)
}
