//! DCT-domain masking on JPEGs written by a reference encoder (libjpeg-turbo's `cjpeg`) in the
//! subsamplings processors use (4:2:0, 4:2:2, 4:4:4, grayscale), read back by its `djpeg`:
//! masked MCUs decode black, every other MCU keeps its quantized coefficients bit for bit,
//! and the output is a valid JPEG for the reference decoder.

use fgw_deid::pixels::jpeg_blocks::{geometry, mask_mcus, mcu_coefficients};
use std::process::Command;

/// A textured test picture as binary PPM (cjpeg's input), `w`x`h`.
fn ppm(w: u32, h: u32) -> Vec<u8> {
    let mut v = format!("P6\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            let t = ((x * 7 + y * 13) % 97) as u8;
            v.extend_from_slice(&[120 + t, 60 + t / 2, 50 + (x % 31) as u8]);
        }
    }
    v
}

fn cjpeg(args: &[&str], w: u32, h: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.ppm");
    std::fs::write(&src, ppm(w, h)).unwrap();
    let out = Command::new("cjpeg")
        .args(args)
        .arg(&src)
        .output()
        .expect("cjpeg (Debian libjpeg-turbo-progs) must be installed: scripts/ensure-deps.sh");
    assert!(out.status.success(), "cjpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Decodes with djpeg to PPM/PGM; returns (channels, pixels).
fn djpeg(jpeg: &[u8]) -> (usize, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.jpg");
    std::fs::write(&src, jpeg).unwrap();
    let out = Command::new("djpeg").arg(&src).output().expect("djpeg");
    assert!(
        out.status.success(),
        "djpeg refused the output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = out.stdout;
    let channels = if b.starts_with(b"P6") { 3 } else { 1 };
    // Header: magic, width, height, maxval, each followed by one whitespace byte.
    let mut fields = 0;
    let mut i = 0;
    while fields < 4 {
        while b[i].is_ascii_whitespace() {
            i += 1;
        }
        while !b[i].is_ascii_whitespace() {
            i += 1;
        }
        fields += 1;
    }
    (channels, b[i + 1..].to_vec())
}

fn check(args: &[&str], mcu: (u32, u32)) {
    let (w, h) = (203u32, 141u32); // not a multiple of any MCU size: partial edge MCUs
    let jpeg = cjpeg(args, w, h);
    let g = geometry(&jpeg).unwrap();
    assert_eq!((g.mcu_w, g.mcu_h), mcu, "{args:?}");
    // Mask a block of MCUs in the middle and the whole last column (partial MCUs).
    let touched = |c: u32, r: u32| ((c == 2 || c == 3) && r == 1) || c == g.mcu_cols - 1;
    let (out, n) = mask_mcus(&jpeg, &g, touched).unwrap();
    assert_eq!(n as u32, 2 + g.mcu_rows);
    let (a, b) = (mcu_coefficients(&jpeg, &g).unwrap(), mcu_coefficients(&out, &g).unwrap());
    let mut kept = 0;
    for (m, (x, y)) in a.iter().zip(&b).enumerate() {
        let (c, r) = (m as u32 % g.mcu_cols, m as u32 / g.mcu_cols);
        if touched(c, r) {
            assert!(y.iter().all(|blk| blk[1..].iter().all(|&v| v == 0)), "AC left in mcu {m}");
        } else {
            assert_eq!(x, y, "{args:?}: untouched mcu {m} changed");
            kept += 1;
        }
    }
    assert!(kept > 10);
    // The reference decoder reads the result, and the masked MCUs are black.
    let (ch, px) = djpeg(&out);
    let at = |x: u32, y: u32| &px[((y * w + x) as usize) * ch..((y * w + x) as usize + 1) * ch];
    let (cx, cy) = (2 * mcu.0 + mcu.0 / 2, mcu.1 + mcu.1 / 2);
    assert!(at(cx, cy).iter().all(|&v| v <= 6), "{args:?}: masked pixel {:?}", at(cx, cy));
    assert!(at(w - 1, h - 1).iter().all(|&v| v <= 6), "{args:?}: edge mcu not black");
    // Unmasked picture far from the masked MCUs decodes exactly as before.
    let (_, before) = djpeg(&jpeg);
    let far = ((h - 1) * w) as usize * ch; // bottom-left pixel, MCU column 0
    assert_eq!(&before[far..far + ch], &px[far..far + ch]);
}

#[test]
fn ycc_420_as_video_processors_write_it() {
    check(&["-quality", "90", "-sample", "2x2,1x1,1x1"], (16, 16));
}

#[test]
fn ycc_422() {
    check(&["-quality", "85", "-sample", "2x1,1x1,1x1"], (16, 8));
}

#[test]
fn ycc_444() {
    check(&["-quality", "95", "-sample", "1x1,1x1,1x1"], (8, 8));
}

#[test]
fn grayscale() {
    check(&["-quality", "90", "-grayscale"], (8, 8));
}

#[test]
fn restart_intervals_survive() {
    check(&["-quality", "90", "-sample", "2x2,1x1,1x1", "-restart", "3B"], (16, 16));
}

#[test]
fn optimized_huffman_tables_either_mask_or_refuse_cleanly() {
    // Optimized tables hold only the symbols the picture used; a black DC step may have no
    // code. Then masking must fail with an error (the stage takes the lossless pixel path),
    // never write a broken file.
    let jpeg = cjpeg(&["-quality", "90", "-optimize"], 203, 141);
    let g = geometry(&jpeg).unwrap();
    match mask_mcus(&jpeg, &g, |c, r| c == 1 && r == 1) {
        Ok((out, _)) => {
            djpeg(&out);
        }
        Err(e) => assert!(e.to_string().contains("coefficients"), "{e}"),
    }
}
