//! Batch folders of the export root.

use super::ExportError;
use fgw_records::profile::Profile;
use std::fs;
use std::path::{Path, PathBuf};

/// One finished export run: `<root>/<name>/` with the profile's done marker (`DONE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDir {
    /// Folder name (a timestamp such as `20261125T2300`; later sorts newer).
    pub name: String,
    /// The folder itself.
    pub path: PathBuf,
}

/// Batch folders under `root` that contain the profile's done marker, sorted by name (oldest
/// first). Folders without it are still being written and are skipped, as are hidden folders
/// and names that are not UTF-8.
pub fn find_ready_batches(root: &Path, profile: &Profile) -> Result<Vec<BatchDir>, ExportError> {
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
        if !path.join(&profile.done_marker).is_file() {
            log::debug!("batch {name}: no {} yet, skipped", profile.done_marker);
            continue;
        }
        out.push(BatchDir { name, path });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
