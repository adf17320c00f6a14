//! (in progress: DICOM PS3.15 de-identification)
