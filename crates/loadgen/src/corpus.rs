//! A corpus of de-identified packages, as `gateway deid` writes them: `packages/<id>.json`
//! (the manifest bytes) and `objects/<sha256>` (the files). Only exam packages are replayed;
//! report and DICOM packages are skipped. Everything is held in memory (a corpus is tens of
//! packages), so a run reads no disk.

use fgw_format::ids::Sha256Hex;
use fgw_format::package::{Kind, Manifest};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a corpus could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file or directory of the corpus could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest that does not parse.
    #[error("manifest {path} does not parse: {source}")]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// The cause.
        source: fgw_format::package::PackageError,
    },
    /// An object whose bytes do not hash to the name the manifest gives it.
    #[error("object {sha256} of {path} does not match its digest")]
    Digest {
        /// The manifest naming it.
        path: PathBuf,
        /// The digest named.
        sha256: Sha256Hex,
    },
    /// No exam package in the directory.
    #[error("no exam package under {dir}/packages")]
    Empty {
        /// The corpus directory.
        dir: PathBuf,
    },
}

/// One exam package of the corpus.
#[derive(Debug, Clone)]
pub struct CorpusPackage {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its files' bytes, in manifest order.
    pub files: Vec<Arc<Vec<u8>>>,
}

impl CorpusPackage {
    /// Bytes of all its files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len() as u64).sum()
    }
}

/// The exam packages of a corpus directory.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Sorted by package id, so every run replays them in the same order.
    pub packages: Vec<CorpusPackage>,
}

impl Corpus {
    /// Loads `dir/packages/*.json` and their objects from `dir/objects/`.
    pub fn load(dir: &Path) -> Result<Corpus, CorpusError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CorpusError::Read { path, source }
        };
        let pkg_dir = dir.join("packages");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&pkg_dir)
            .map_err(read_err(&pkg_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut packages = Vec::new();
        for path in paths {
            let bytes = std::fs::read(&path).map_err(read_err(&path))?;
            let manifest = Manifest::parse(&bytes)
                .map_err(|source| CorpusError::Manifest { path: path.clone(), source })?;
            if manifest.kind() != Kind::Exam {
                continue;
            }
            let mut files = Vec::with_capacity(manifest.files.len());
            for f in &manifest.files {
                let obj = dir.join("objects").join(f.sha256.as_str());
                let data = std::fs::read(&obj).map_err(read_err(&obj))?;
                if Sha256Hex::of(&data) != f.sha256 {
                    return Err(CorpusError::Digest { path, sha256: f.sha256.clone() });
                }
                files.push(Arc::new(data));
            }
            packages.push(CorpusPackage { manifest, files });
        }
        if packages.is_empty() {
            return Err(CorpusError::Empty { dir: dir.to_path_buf() });
        }
        Ok(Corpus { packages })
    }

    /// Images (files) per package, on average.
    pub fn mean_files(&self) -> f64 {
        let n: usize = self.packages.iter().map(|p| p.files.len()).sum();
        n as f64 / self.packages.len() as f64
    }

    /// Bytes per file, on average.
    pub fn mean_file_bytes(&self) -> f64 {
        let files: usize = self.packages.iter().map(|p| p.files.len()).sum();
        let bytes: u64 = self.packages.iter().map(CorpusPackage::bytes).sum();
        if files == 0 {
            0.0
        } else {
            bytes as f64 / files as f64
        }
    }
}
