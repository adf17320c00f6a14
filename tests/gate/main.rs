//! The gate's tests: free text, pixels, DICOM headers, profiles, terms, mutated inputs.
//! One test binary per group: linking each file as its own binary dominated the suite's time.

#[path = "../common/mod.rs"]
mod common;

mod burned_in_styles;
mod burned_in_text;
mod dark_frames;
mod deid_gate;
mod dicom_deid;
mod dicom_pixels;
mod freetext_ja;
mod freetext_ja_holdout;
mod freetext_ja_nocue;
mod jpeg_dct_mask;
mod mutated_inputs;
mod profiles;
mod terms;
