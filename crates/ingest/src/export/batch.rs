//! Batch folders of the export root.

use super::beneath::open_anchor;
use super::ExportError;
use fgw_records::profile::Profile;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// One finished export run: `<root>/<name>/` with the profile's done marker (`DONE`).
///
/// The department system chooses the folder's name, and nothing stops it putting a
/// patient's name or id in it. So the name is used only to open the folder; every message
/// this module makes (errors, [`super::RowError`]s, [`fgw_records::SourceRef`]s, image paths,
/// log lines) names the batch by `label`, which the caller chose (the gateway: a keyed
/// label, `batch-` and 12 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDir {
    /// Folder name as the department system wrote it (usually a timestamp such as
    /// `20261125T2300`; later sorts newer). May carry personal data: never in a message.
    pub name: String,
    /// The folder itself.
    pub path: PathBuf,
    /// How messages name the batch, in place of `name`.
    pub label: String,
}

impl BatchDir {
    /// The folder its files are opened beneath (its parent, the export root: trusted, opened
    /// by path) and the batch's path relative to it. Opening `rel/...` beneath the anchor
    /// refuses a batch folder that is itself a symlink.
    pub(crate) fn anchor(&self) -> io::Result<(OwnedFd, PathBuf)> {
        match (self.path.parent(), self.path.file_name()) {
            (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
                Ok((open_anchor(parent)?, PathBuf::from(name)))
            }
            (Some(_), Some(name)) => Ok((open_anchor(Path::new("."))?, PathBuf::from(name))),
            _ => Ok((open_anchor(&self.path)?, PathBuf::new())),
        }
    }
}

/// Batch folders under `root` that contain the profile's done marker, sorted by name (oldest
/// first), each labelled by `label` (of the folder's name; see [`BatchDir`]). Folders
/// without the marker are still being written and are skipped, as are hidden folders and
/// names that are not UTF-8. A symlink is listed without looking through it: reading it
/// ([`super::read_batch`]) refuses it, so the caller reports it instead of skipping it.
pub fn find_ready_batches(
    root: &Path,
    profile: &Profile,
    label: impl Fn(&str) -> String,
) -> Result<Vec<BatchDir>, ExportError> {
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
        // file_type() does not follow links.
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_symlink() {
            // Listed at every scan: the caller reports it once, when it refuses it.
            let label = label(&name);
            log::debug!("export root: batch {label} is a symlink; it will be refused");
            out.push(BatchDir { name, path, label });
            continue;
        }
        if !ft.is_dir() {
            continue;
        }
        let done = fs::symlink_metadata(path.join(&profile.done_marker));
        let label = label(&name);
        if !done.is_ok_and(|m| m.is_file()) {
            log::debug!("batch {label}: no {} yet, skipped", profile.done_marker);
            continue;
        }
        out.push(BatchDir { name, path, label });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
