//! Makes a corpus once: the synthetic department system writes a vendor export with JPEG
//! images (`synth_department`, the example of fgw-synth), and `gateway deid` de-identifies it
//! offline into `packages/` and `objects/`. Both run as separate processes (this crate
//! links neither the identifiable side nor the synthetic data); the export is deleted after.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a corpus could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A tool could not be started.
    #[error("starting {bin}: {source}")]
    Spawn {
        /// The tool.
        bin: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A tool failed.
    #[error("{bin} exited with {status}")]
    Failed {
        /// The tool.
        bin: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The corpus directory exists already.
    #[error("{dir} exists; remove it or choose another")]
    Exists {
        /// The directory.
        dir: PathBuf,
    },
    /// The export could not be removed afterwards.
    #[error("removing {dir}: {source}")]
    Cleanup {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What to make.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The `synth_department` example binary.
    pub synth_bin: PathBuf,
    /// The `gateway` binary.
    pub gateway_bin: PathBuf,
    /// Where the corpus goes (must not exist).
    pub corpus: PathBuf,
    /// Exams.
    pub exams: u32,
    /// Images per exam.
    pub images_per_exam: u32,
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Seed of the synthetic department.
    pub seed: u64,
}

fn run(cmd: &mut Command, bin: &Path) -> Result<(), PrepareError> {
    let status =
        cmd.status().map_err(|source| PrepareError::Spawn { bin: bin.to_path_buf(), source })?;
    if status.success() {
        Ok(())
    } else {
        Err(PrepareError::Failed { bin: bin.to_path_buf(), status })
    }
}

/// Runs the synthetic department and `gateway deid` into `opts.corpus`.
pub fn prepare(opts: &PrepareOptions) -> Result<(), PrepareError> {
    if opts.corpus.exists() {
        return Err(PrepareError::Exists { dir: opts.corpus.clone() });
    }
    let export = opts.corpus.with_extension("export");
    run(
        Command::new(&opts.synth_bin)
            .arg(&export)
            .args(["--exams", &opts.exams.to_string()])
            .args(["--images-per-exam", &opts.images_per_exam.to_string()])
            .args(["--width", &opts.width.to_string(), "--height", &opts.height.to_string()])
            .args(["--seed", &opts.seed.to_string()]),
        &opts.synth_bin,
    )?;
    // Without a box configuration: an ephemeral key, which is all a corpus needs.
    run(
        Command::new(&opts.gateway_bin)
            .args(["deid", "--facility", "LGCORPUS"])
            .arg(&export)
            .arg(&opts.corpus),
        &opts.gateway_bin,
    )?;
    std::fs::remove_dir_all(&export).map_err(|source| PrepareError::Cleanup { dir: export, source })
}
