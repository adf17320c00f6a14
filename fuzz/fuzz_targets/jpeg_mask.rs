//! The image paths that parse untrusted bytes before any OCR: metadata stripping, JPEG frame
//! geometry, coefficient masking and decoding. Each must return `Ok` or `Err`, never panic.
#![no_main]

use fgw_deid::image_meta;
use fgw_deid::pixels::{jpeg_blocks, PixelStage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = jpeg_blocks::geometry(data) {
        let _ = jpeg_blocks::mask_mcus(data, &g, |c, r| (c + r) % 3 == 0);
    }
    if let Ok(img) = image_meta::strip(data) {
        let _ = PixelStage::decode(&img);
    }
});
