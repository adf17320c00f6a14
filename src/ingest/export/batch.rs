//! Batch folders of the export root.

use super::{ExportError, DONE};
use std::fs;
use std::path::{Path, PathBuf};

/// One finished export run: `<root>/<name>/` with a `DONE` marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDir {
    /// Folder name (a timestamp such as `20261125T2300`; later sorts newer).
    pub name: String,
    pub path: PathBuf,
}

/// Batch folders under `root` that contain `DONE`, sorted by name (oldest first). Folders
/// without `DONE` are still being written and are skipped, as are hidden folders and names
/// that are not UTF-8.
pub fn find_ready_batches(root: &Path) -> Result<Vec<BatchDir>, ExportError> {
    let entries = fs::read_dir(root).map_err(|source| ExportError::Root { source })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ExportError::Root { source })?;
        let Ok(name) = entry.file_name().into_string() else {
            log::warn!("export root: skipping a folder whose name is not UTF-8");
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if !path.join(DONE).is_file() {
            log::debug!("batch {name}: no {DONE} yet, skipped");
            continue;
        }
        out.push(BatchDir { name, path });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
