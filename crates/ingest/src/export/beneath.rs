//! Opening entries of the export share without following links, and reading them within a
//! limit.
//!
//! The share belongs to the department system, so anything in it may be a symlink (to the
//! box's TLS key, to another exam's folder) or a FIFO/device named like a report. Every open
//! below the export root therefore goes through [`open_entry`]: `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (no component may be a link, and nothing may
//! resolve outside the folder it starts from), or, where the kernel lacks `openat2`, one
//! `openat(O_NOFOLLOW)` per component. Files are opened `O_NONBLOCK` and checked with `fstat`
//! on the open descriptor, so a FIFO never blocks and a swap after the check cannot matter.

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why an entry of the export share is not used. Fixed words only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The entry, or a folder on the way to it, is a symbolic link (never followed).
    Symlink,
    /// A FIFO, device, socket or folder where a regular file is expected.
    NotRegularFile,
    /// Something other than a folder where a folder is expected.
    NotADirectory,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Symlink => "symlink on the path (links are not followed)",
            Refusal::NotRegularFile => "not a regular file (FIFO, device, socket or folder)",
            Refusal::NotADirectory => "not a folder",
        })
    }
}

/// Why an open failed: refused by type, or an I/O error (`NotFound` included).
#[derive(Debug)]
pub(crate) enum OpenError {
    Refused(Refusal),
    Io(io::Error),
}

impl From<Errno> for OpenError {
    fn from(e: Errno) -> Self {
        match e {
            // RESOLVE_NO_SYMLINKS and O_NOFOLLOW both answer a link with ELOOP.
            Errno::ELOOP => OpenError::Refused(Refusal::Symlink),
            // A component on the way is a file (or FIFO, …), not a folder.
            Errno::ENOTDIR => OpenError::Refused(Refusal::NotADirectory),
            e => OpenError::Io(io::Error::from(e)),
        }
    }
}

/// An opened entry, by what `fstat` says it is.
#[derive(Debug)]
pub(crate) enum Entry {
    File(File),
    Dir(OwnedFd),
    /// FIFO, device or socket: opened without blocking, never read.
    Special,
}

/// How entries are opened: read-only, never as a controlling terminal, never blocking on a
/// FIFO, never through a link in the last component.
fn flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW
}

/// Set once `openat2` answered ENOSYS (kernel before 5.6): use the per-component walk.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Which way [`open_entry`] resolves paths (tests run both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolver {
    /// `openat2`, falling back to [`Resolver::PerComponent`] on ENOSYS.
    Openat2,
    /// `openat(O_NOFOLLOW)` on each component, checking each folder with `fstat`. Chosen
    /// directly only by tests; otherwise reached through [`Resolver::Openat2`]'s fallback.
    #[cfg_attr(not(test), allow(dead_code))]
    PerComponent,
}

/// A trusted folder (the export root, a batch's parent) opened by path. Links in *its* path
/// are the operator's choice and are followed; nothing below it is.
pub(crate) fn open_anchor(path: &Path) -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    Ok(f.into())
}

/// Open `rel` (relative, plain components only) beneath `base` without following any link.
pub(crate) fn open_entry(base: BorrowedFd<'_>, rel: &Path) -> Result<Entry, OpenError> {
    open_entry_with(base, rel, Resolver::Openat2)
}

pub(crate) fn open_entry_with(
    base: BorrowedFd<'_>,
    rel: &Path,
    resolver: Resolver,
) -> Result<Entry, OpenError> {
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(OpenError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain relative path",
        )));
    }
    let fd = match resolver {
        Resolver::Openat2 if !NO_OPENAT2.load(Ordering::Relaxed) => {
            let how = OpenHow::new()
                .flags(flags())
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            match openat2(base, rel, how) {
                Ok(fd) => fd,
                Err(Errno::ENOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    per_component(base, rel)?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Resolver::Openat2 | Resolver::PerComponent => per_component(base, rel)?,
    };
    classify(fd)
}

/// The fallback: each component opened with `O_NOFOLLOW` relative to the one before, and
/// checked to be a folder on its descriptor. `O_DIRECTORY` is not used on the way because
/// with it Linux answers a link with ENOTDIR, not ELOOP.
fn per_component(base: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, OpenError> {
    let mut cur: Option<OwnedFd> = None;
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        let at = cur.as_ref().map_or(base, |fd| fd.as_fd());
        let fd = openat(at, part.as_os_str(), flags(), Mode::empty())?;
        if parts.peek().is_none() {
            return Ok(fd);
        }
        match classify(fd)? {
            Entry::Dir(fd) => cur = Some(fd),
            Entry::File(_) | Entry::Special => {
                return Err(OpenError::Refused(Refusal::NotADirectory))
            }
        }
    }
    unreachable!("a non-empty path has a last component")
}

fn classify(fd: OwnedFd) -> Result<Entry, OpenError> {
    let f = File::from(fd);
    let ft = f.metadata().map_err(OpenError::Io)?.file_type();
    Ok(if ft.is_file() {
        Entry::File(f)
    } else if ft.is_dir() {
        Entry::Dir(f.into())
    } else {
        Entry::Special
    })
}

/// A regular file beneath `base`.
pub(crate) fn open_file(base: BorrowedFd<'_>, rel: &Path) -> Result<File, OpenError> {
    match open_entry(base, rel)? {
        Entry::File(f) => Ok(f),
        Entry::Dir(_) | Entry::Special => Err(OpenError::Refused(Refusal::NotRegularFile)),
    }
}

/// A folder beneath `base`.
pub(crate) fn open_dir(base: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, OpenError> {
    match open_entry(base, rel)? {
        Entry::Dir(fd) => Ok(fd),
        Entry::File(_) | Entry::Special => Err(OpenError::Refused(Refusal::NotADirectory)),
    }
}

/// What [`list_dir`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Listing {
    /// The names kept, as raw bytes.
    Names(Vec<Vec<u8>>),
    /// More than the limit: listing stopped there.
    OverLimit,
}

/// Names in the folder `dir` (without `.` and `..`), at most `limit` of them that
/// `keep(name, known_to_be_a_folder)` accepts, else [`Listing::OverLimit`]. The listing itself is bounded, so a folder of millions of entries is not read into
/// memory. (The entry type comes from `readdir` and may be unknown on network shares: callers
/// still check what they open.)
pub(crate) fn list_dir(
    dir: OwnedFd,
    limit: usize,
    mut keep: impl FnMut(&[u8], bool) -> bool,
) -> io::Result<(OwnedFd, Listing)> {
    // nix's Dir owns the descriptor it lists; a duplicate stays for opening the entries.
    let listed = dir.try_clone()?;
    let mut d = nix::dir::Dir::from_fd(listed).map_err(io::Error::from)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(io::Error::from)?;
        let name = entry.file_name().to_bytes();
        let is_dir = entry.file_type() == Some(nix::dir::Type::Directory);
        if name == b"." || name == b".." || !keep(name, is_dir) {
            continue;
        }
        if names.len() == limit {
            return Ok((dir, Listing::OverLimit));
        }
        names.push(name.to_vec());
    }
    Ok((dir, Listing::Names(names)))
}

/// Read an opened regular file of at most `limit` bytes; `Ok(None)` if larger. At most
/// `limit + 1` bytes are ever read, whatever the size said (the file may grow meanwhile).
pub(crate) fn read_bounded(f: File, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let len = f.metadata()?.len();
    if len > limit {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Ok(None);
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn refused(r: Result<Entry, OpenError>) -> Option<Refusal> {
        match r {
            Err(OpenError::Refused(x)) => Some(x),
            _ => None,
        }
    }

    /// Both resolvers refuse links anywhere on the path and open FIFOs without blocking.
    #[test]
    fn links_and_fifos_refused_by_both_resolvers() {
        let t = tempfile::tempdir().unwrap();
        let (root, outside) = (t.path().join("root"), t.path().join("outside"));
        fs::create_dir_all(root.join("b/reports")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("key.pem"), b"secret").unwrap();
        fs::write(root.join("b/reports/ok.txt"), b"ok").unwrap();
        symlink(outside.join("key.pem"), root.join("b/reports/link.txt")).unwrap();
        symlink(&outside, root.join("b/images")).unwrap();
        symlink(&outside, root.join("linked")).unwrap();
        nix::unistd::mkfifo(&root.join("b/reports/fifo.txt"), Mode::S_IRUSR | Mode::S_IWUSR)
            .unwrap();
        let anchor = open_anchor(&root).unwrap();
        for r in [Resolver::Openat2, Resolver::PerComponent] {
            let open = |p: &str| open_entry_with(anchor.as_fd(), Path::new(p), r);
            assert!(matches!(open("b/reports/ok.txt"), Ok(Entry::File(_))), "{r:?}");
            assert!(matches!(open("b/reports"), Ok(Entry::Dir(_))), "{r:?}");
            assert_eq!(refused(open("b/reports/link.txt")), Some(Refusal::Symlink), "{r:?}");
            assert_eq!(refused(open("b/images/key.pem")), Some(Refusal::Symlink), "{r:?}");
            assert_eq!(refused(open("b/images")), Some(Refusal::Symlink), "{r:?}");
            assert_eq!(refused(open("linked/key.pem")), Some(Refusal::Symlink), "{r:?}");
            assert_eq!(refused(open("b/reports/ok.txt/x")), Some(Refusal::NotADirectory));
            assert!(matches!(open("b/reports/fifo.txt"), Ok(Entry::Special)), "{r:?}");
            assert!(
                matches!(open("b/none"), Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound)
            );
            assert!(matches!(open("b/../b"), Err(OpenError::Io(_))), "{r:?}");
        }
    }

    #[test]
    fn bounded_read_and_listing() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), [0u8; 10]).unwrap();
        let anchor = open_anchor(t.path()).unwrap();
        let f = || open_file(anchor.as_fd(), Path::new("f")).unwrap();
        assert_eq!(read_bounded(f(), 10).unwrap().unwrap().len(), 10);
        assert!(read_bounded(f(), 9).unwrap().is_none());
        for n in ["a", "b", ".c"] {
            fs::write(t.path().join(n), b"").unwrap();
        }
        let dir = || open_dir(anchor.as_fd(), Path::new(".")).err();
        assert!(dir().is_some(), "`.` is not a plain component");
        let d = open_anchor(t.path()).unwrap();
        let (_, names) = list_dir(d, 3, |n, _| !n.starts_with(b".")).unwrap();
        let Listing::Names(mut names) = names else { panic!("over the limit") };
        names.sort();
        assert_eq!(names, [b"a".to_vec(), b"b".to_vec(), b"f".to_vec()]);
        let d = open_anchor(t.path()).unwrap();
        assert_eq!(list_dir(d, 2, |_, _| true).unwrap().1, Listing::OverLimit);
    }
}
