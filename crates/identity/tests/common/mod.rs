//! Shared by the swtpm tests: a software TPM with its own state directory, and a store on it.

#![allow(dead_code, unreachable_pub)]

use fgw_identity::swtpm::Swtpm;
use fgw_identity::TpmKeyStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fresh swtpm whose state lives in `dir/name`, and a store connected to it.
pub fn tpm(dir: &Path, name: &str) -> (Swtpm, Arc<TpmKeyStore>) {
    let swtpm = Swtpm::start(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
    let store = TpmKeyStore::connect(&swtpm.tcti()).unwrap_or_else(|e| panic!("{e}"));
    (swtpm, Arc::new(store))
}

/// Every file under `root`, recursively.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Files under `root` holding a PEM private key of any kind ("PRIVATE KEY" is in the PKCS#8,
/// SEC1 "EC PRIVATE KEY", PKCS#1 and encrypted PKCS#8 labels alike).
pub fn files_with_private_keys(root: &Path) -> Vec<PathBuf> {
    files_under(root)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(b"PRIVATE KEY".len()).any(|w| w == b"PRIVATE KEY")
        })
        .collect()
}
