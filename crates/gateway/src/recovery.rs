//! The recovery kit (issue 12): the facility's keys outlive the box.
//!
//! Every key of the box (pseudonyms, date shifts, UIDs, spool, batch labels) derives from one
//! 32-byte root secret ([`crate::secrets`]). A replacement box that has the same root makes
//! the same pseudonyms, so the hub goes on linking the facility's exams; the society, which
//! receives those pseudonyms, must never be able to compute them. So the root is split with
//! Shamir's scheme over GF(256) (`shamir`, this module's own) into N share sheets, any K of
//! which rebuild it (default 2 of 3): fewer than K shares say nothing about it. The hospital keeps the sheets, each in its
//! own place; they never go to the society.
//!
//! A sheet is text, to print or store on its own medium (`recovery-share-<i>-of-<n>.txt`):
//!
//! ```text
//! facility-gateway recovery share v1
//! # (comment lines: what the sheet is and how to keep it)
//! facility: F0001
//! kit: 5c1e0a9d7b3f2e61                      random id of this export: kits are never mixed
//! share: 2 of 3                              this sheet's index (the Shamir x), of N
//! threshold: 2                               K
//! check: 8f3a21c0d94b7e15                    key check value (below)
//! data: 1a2b 3c4d ...                        the 32 share bytes, 4 hex digits a group
//! checksum: 9c0ffee1                         first 4 bytes of SHA-256 of the fields above
//! ```
//!
//! The checksum catches a mistyped sheet on its own; the check value (8 bytes of
//! HMAC-SHA-256 under a key of its own HKDF purpose, [`Secrets::recovery_check`]) tells
//! whether the combined shares are the box's root, and reveals nothing about the other keys.
//! Errors name the file, the line and the field, never share bytes.

use crate::config::GatewayConfig;
use crate::secrets::{RootInstall, Secrets, SecretsError};
use fgw_format::ids::FacilityId;
use ring::rand::SecureRandom;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

mod shamir;

/// The first line of every share sheet: names the format and its version.
pub const FORMAT_LINE: &str = "facility-gateway recovery share v1";

/// A sheet is a few hundred bytes; anything much larger is not one, and is not read whole.
const MAX_SHEET_BYTES: u64 = 16 * 1024;

/// Why a recovery kit could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// Shares or threshold out of range.
    #[error(
        "recovery kit: {shares} share(s) with threshold {threshold} is not a kit: need \
         2 <= threshold <= shares <= {max}",
        max = KitParams::MAX_SHARES
    )]
    Params {
        /// The number of shares asked for.
        shares: u8,
        /// The threshold asked for.
        threshold: u8,
    },
    /// Reading or writing a share sheet or the kit folder failed.
    #[error("recovery share {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is far larger than a share sheet.
    #[error("recovery share {path}: larger than {MAX_SHEET_BYTES} bytes, not a share sheet")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line of the sheet is not what the format says (what is wrong, never the value).
    #[error("recovery share {path} line {line}: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A field the format needs is missing.
    #[error("recovery share {path}: no `{field}:` line")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
    },
    /// The sheet's checksum does not match its fields: a mistyped digit or a damaged sheet.
    #[error(
        "recovery share {path}: the checksum does not match the sheet's fields: a digit was \
         mistyped or the sheet is damaged; compare every line with the printed sheet"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
    },
    /// A sheet belongs to another kit than the first one given.
    #[error(
        "recovery share {path}: not of the same kit as {first} (its `{field}` differs); give \
         shares of one export only"
    )]
    OtherKit {
        /// The sheet that differs.
        path: PathBuf,
        /// The first sheet given.
        first: PathBuf,
        /// The field that differs.
        field: &'static str,
    },
    /// The kit was made for another facility than the box's configuration names.
    #[error(
        "recovery share {path}: made for facility {share}, but this box is configured for \
         facility {configured} (facility_id)"
    )]
    WrongFacility {
        /// The sheet.
        path: PathBuf,
        /// The facility on the sheet.
        share: FacilityId,
        /// The box's configured facility.
        configured: FacilityId,
    },
    /// Two sheets claim the same index with different share bytes.
    #[error(
        "recovery share {path}: it is share {index}, like {first}, but holds other share \
         bytes; one of the two is altered"
    )]
    Conflicting {
        /// The second sheet.
        path: PathBuf,
        /// The first sheet with that index.
        first: PathBuf,
        /// The share index.
        index: u8,
    },
    /// No share sheet was given.
    #[error("recovery kit: no share given")]
    NoShares,
    /// Fewer distinct shares than the threshold.
    #[error(
        "recovery kit: {have} distinct share(s) given, but {need} of the kit's {count} are \
         needed; nothing was written"
    )]
    TooFew {
        /// Distinct shares given.
        have: usize,
        /// The threshold.
        need: u8,
        /// Shares in the kit.
        count: u8,
    },
    /// The combined shares are not the key the check value was made from.
    #[error(
        "recovery kit: the shares combine to a key that does not match the kit's check value \
         (one of {files} was altered); nothing was written"
    )]
    CheckValue {
        /// The sheets used, comma-separated.
        files: String,
    },
    /// The output folder already holds share sheets.
    #[error(
        "recovery kit: {path} already exists; a kit is never written over share sheets \
         (move them away, or choose another --out)"
    )]
    OutExists {
        /// The existing sheet.
        path: PathBuf,
    },
    /// The root secret could not be opened or written.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// How many shares a kit has, and how many of them rebuild the root (validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KitParams {
    shares: u8,
    threshold: u8,
}

impl KitParams {
    /// At most this many shares: one digit on the sheet and in its file name, and more
    /// keepers than a department has.
    pub const MAX_SHARES: u8 = 9;
    /// The default: 3 shares, any 2 rebuild the key (one sheet may be lost, one alone is
    /// useless).
    pub const DEFAULT: KitParams = KitParams { shares: 3, threshold: 2 };

    /// `threshold` of `shares`, with 2 <= threshold <= shares <= [`KitParams::MAX_SHARES`]
    /// (a threshold of 1 would make every sheet the key itself).
    pub fn new(shares: u8, threshold: u8) -> Result<KitParams, RecoveryError> {
        if 2 <= threshold && threshold <= shares && shares <= Self::MAX_SHARES {
            Ok(KitParams { shares, threshold })
        } else {
            Err(RecoveryError::Params { shares, threshold })
        }
    }
    /// N, the number of shares.
    pub fn shares(self) -> u8 {
        self.shares
    }
    /// K, how many shares rebuild the root.
    pub fn threshold(self) -> u8 {
        self.threshold
    }
}

impl Default for KitParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One share of a kit, as on its sheet. Its `Debug` never shows the share bytes.
#[derive(Clone)]
pub struct ShareSheet {
    facility: FacilityId,
    kit: [u8; 8],
    index: u8,
    params: KitParams,
    check: [u8; 8],
    data: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ShareSheet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ShareSheet(facility {}, kit {}, share {} of {}, threshold {}, ..)",
            self.facility,
            hex(&self.kit),
            self.index,
            self.params.shares,
            self.params.threshold
        )
    }
}

impl ShareSheet {
    /// The sheet's index, 1..=N (the Shamir x coordinate).
    pub fn index(&self) -> u8 {
        self.index
    }
    /// The kit's shares and threshold.
    pub fn params(&self) -> KitParams {
        self.params
    }
    /// The facility the kit was made for.
    pub fn facility(&self) -> &FacilityId {
        &self.facility
    }
    /// The kit's id (random per export), in hex.
    pub fn kit_id(&self) -> String {
        hex(&self.kit)
    }

    /// The file name of this sheet: `recovery-share-<i>-of-<n>.txt`.
    pub fn file_name(&self) -> String {
        format!("recovery-share-{}-of-{}.txt", self.index, self.params.shares)
    }

    /// First 4 bytes of SHA-256 over the canonical fields (format line, facility, kit,
    /// index, threshold, count, check value, share bytes), one a line.
    fn checksum(&self) -> [u8; 4] {
        let canonical = Zeroizing::new(format!(
            "{FORMAT_LINE}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.facility,
            hex(&self.kit),
            self.index,
            self.params.threshold,
            self.params.shares,
            hex(&self.check),
            hex(&self.data[..]),
        ));
        let d = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        let mut out = [0u8; 4];
        out.copy_from_slice(&d.as_ref()[..4]);
        out
    }

    /// The sheet's text.
    pub fn render(&self) -> Zeroizing<String> {
        let (i, n, k) = (self.index, self.params.shares, self.params.threshold);
        let data = Zeroizing::new(hex(&self.data[..]));
        let groups: Vec<&str> = (0..data.len()).step_by(4).map(|s| &data[s..s + 4]).collect();
        let groups = Zeroizing::new(groups.join(" "));
        Zeroizing::new(format!(
            "{FORMAT_LINE}\n\
             # Share {i} of {n} of the recovery kit of facility {facility}'s gateway keys.\n\
             # Any {k} shares of this kit rebuild the keys on a replacement box:\n\
             #   gateway secrets import-recovery SHARE_FILE...\n\
             # Keep this sheet on its own, in the hospital's custody, apart from the other\n\
             # shares. Never give shares to the society or its hub: with {k} of them anyone\n\
             # can compute this facility's pseudonyms.\n\
             facility: {facility}\n\
             kit: {kit}\n\
             share: {i} of {n}\n\
             threshold: {k}\n\
             check: {check}\n\
             data: {groups}\n\
             checksum: {sum}\n",
            facility = self.facility,
            kit = hex(&self.kit),
            check = hex(&self.check),
            groups = groups.as_str(),
            sum = hex(&self.checksum()),
        ))
    }

    /// Reads a sheet's text (`path` names it in errors). Blank lines and `#` comments are
    /// skipped; hex may be in either case, with spaces anywhere (a retyped sheet).
    pub fn parse(path: &Path, text: &str) -> Result<ShareSheet, RecoveryError> {
        let bad = |line: usize, what: String| RecoveryError::Malformed {
            path: path.to_path_buf(),
            line,
            what,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, l)) if l == FORMAT_LINE => {}
            Some((n, l)) if l.starts_with("facility-gateway recovery share") => {
                return Err(bad(
                    n,
                    format!("a format this gateway does not read (it reads `{FORMAT_LINE}`)"),
                ))
            }
            Some((n, _)) => {
                return Err(bad(n, format!("expected `{FORMAT_LINE}`: not a share sheet")))
            }
            None => return Err(bad(1, format!("empty: expected `{FORMAT_LINE}`"))),
        }
        const FIELDS: [&str; 7] =
            ["facility", "kit", "share", "threshold", "check", "data", "checksum"];
        let mut values: BTreeMap<&'static str, (usize, Zeroizing<String>)> = BTreeMap::new();
        for (n, l) in lines {
            let Some((key, value)) = l.split_once(':') else {
                return Err(bad(n, "expected `field: value`".into()));
            };
            let key = key.trim().to_ascii_lowercase();
            // The known name, not the line's text (a misplaced line may hold share digits).
            let Some(field) = FIELDS.iter().copied().find(|f| *f == key) else {
                return Err(bad(n, format!("unknown field (a sheet has {})", FIELDS.join(", "))));
            };
            if values.insert(field, (n, Zeroizing::new(value.trim().to_string()))).is_some() {
                return Err(bad(n, format!("`{field}` appears twice")));
            }
        }
        let get = |field: &'static str| {
            values
                .get(field)
                .map(|(n, v)| (*n, v.as_str()))
                .ok_or(RecoveryError::Missing { path: path.to_path_buf(), field })
        };
        let (n, v) = get("facility")?;
        let facility =
            FacilityId::new(v).map_err(|_| bad(n, "`facility` is not a facility id".into()))?;
        let (n, v) = get("kit")?;
        let kit: [u8; 8] = unhex(v).map_err(|found| bad(n, digits("kit", 16, found)))?;
        let (n, v) = get("share")?;
        let (index, count) = v
            .split_once("of")
            .and_then(|(i, c)| Some((i.trim().parse::<u8>().ok()?, c.trim().parse::<u8>().ok()?)))
            .ok_or_else(|| bad(n, "`share` must read `<i> of <n>`".into()))?;
        let (n_k, v) = get("threshold")?;
        let threshold: u8 =
            v.parse().map_err(|_| bad(n_k, "`threshold` must be a number".into()))?;
        let params = KitParams::new(count, threshold).map_err(|e| bad(n_k, e.to_string()))?;
        if index == 0 || index > count {
            return Err(bad(n, format!("share index {index} is not within 1 to {count}")));
        }
        let (n, v) = get("check")?;
        let check: [u8; 8] = unhex(v).map_err(|found| bad(n, digits("check", 16, found)))?;
        let (n, v) = get("data")?;
        let data: Zeroizing<[u8; 32]> =
            Zeroizing::new(unhex(v).map_err(|found| bad(n, digits("data", 64, found)))?);
        let (n, v) = get("checksum")?;
        let sum: [u8; 4] = unhex(v).map_err(|found| bad(n, digits("checksum", 8, found)))?;
        let sheet = ShareSheet { facility, kit, index, params, check, data };
        if sheet.checksum() != sum {
            return Err(RecoveryError::Checksum { path: path.to_path_buf() });
        }
        Ok(sheet)
    }

    /// Reads and parses the sheet at `path` (at most a few KiB are read).
    pub fn read(path: &Path) -> Result<ShareSheet, RecoveryError> {
        let io = |source| RecoveryError::Io { path: path.to_path_buf(), source };
        let mut bytes = Zeroizing::new(Vec::new());
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_SHEET_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_SHEET_BYTES {
            return Err(RecoveryError::TooLarge { path: path.to_path_buf() });
        }
        let text = std::str::from_utf8(&bytes).map_err(|e| RecoveryError::Malformed {
            path: path.to_path_buf(),
            line: 1 + bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count(),
            what: "not UTF-8 text".into(),
        })?;
        ShareSheet::parse(path, text)
    }
}

/// What a `field` of `want` hex digits held instead (a count, never the digits).
fn digits(field: &str, want: usize, found: Option<usize>) -> String {
    match found {
        Some(n) => format!("`{field}` must be {want} hex digits, found {n}"),
        None => format!("`{field}` must be {want} hex digits, found other characters"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex (either case, spaces ignored) into exactly `N` bytes; `Err(Some(count))` for a wrong
/// number of digits, `Err(None)` for a character that is not one.
fn unhex<const N: usize>(text: &str) -> Result<[u8; N], Option<usize>> {
    let mut nibbles = Zeroizing::new(Vec::with_capacity(2 * N));
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        nibbles.push(c.to_digit(16).ok_or(None)? as u8);
    }
    if nibbles.len() != 2 * N {
        return Err(Some(nibbles.len()));
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(nibbles.chunks(2)) {
        *o = (pair[0] << 4) | pair[1];
    }
    Ok(out)
}

/// Splits the box's root into the sheets of a new kit (a fresh kit id and fresh random
/// polynomials each time).
pub fn split(secrets: &Secrets, facility: &FacilityId, params: KitParams) -> Vec<ShareSheet> {
    let mut kit = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut kit).expect("system RNG");
    let check = secrets.recovery_check();
    let random = |buf: &mut [u8]| ring::rand::SystemRandom::new().fill(buf).expect("system RNG");
    // The sheet's index is the share's x (1..=N).
    shamir::split(secrets.root_bytes(), params.threshold, params.shares, random)
        .into_iter()
        .map(|share| ShareSheet {
            facility: facility.clone(),
            kit,
            index: share.x,
            params,
            check,
            data: share.y,
        })
        .collect()
}

/// Combines sheets (each with the file it came from) into the root they were split from.
/// Every sheet must be of one kit (facility, kit id, threshold, count, check value) and of
/// `facility`; at least K distinct shares; and the result must match the check value.
pub fn combine(
    sheets: &[(PathBuf, ShareSheet)],
    facility: &FacilityId,
) -> Result<Zeroizing<[u8; 32]>, RecoveryError> {
    let Some((first_path, first)) = sheets.first() else {
        return Err(RecoveryError::NoShares);
    };
    let mut distinct: BTreeMap<u8, (&PathBuf, &ShareSheet)> = BTreeMap::new();
    for (path, s) in sheets {
        let differs = if s.facility != first.facility {
            Some("facility")
        } else if s.kit != first.kit {
            Some("kit")
        } else if s.params != first.params {
            Some("threshold")
        } else if s.check != first.check {
            Some("check")
        } else {
            None
        };
        if let Some(field) = differs {
            return Err(RecoveryError::OtherKit {
                path: path.clone(),
                first: first_path.clone(),
                field,
            });
        }
        if &s.facility != facility {
            return Err(RecoveryError::WrongFacility {
                path: path.clone(),
                share: s.facility.clone(),
                configured: facility.clone(),
            });
        }
        match distinct.get(&s.index) {
            Some((p, other)) if other.data[..] != s.data[..] => {
                return Err(RecoveryError::Conflicting {
                    path: path.clone(),
                    first: (*p).clone(),
                    index: s.index,
                })
            }
            Some(_) => {}
            None => {
                distinct.insert(s.index, (path, s));
            }
        }
    }
    let params = first.params;
    if distinct.len() < params.threshold as usize {
        return Err(RecoveryError::TooFew {
            have: distinct.len(),
            need: params.threshold,
            count: params.shares,
        });
    }
    let shares: Vec<shamir::Share> =
        distinct.values().map(|(_, s)| shamir::Share { x: s.index, y: s.data.clone() }).collect();
    // Every share given takes part: one altered share changes the result, and the check
    // value below refuses it, rather than a subset quietly leaving it out.
    let root = shamir::combine(&shares.iter().collect::<Vec<_>>())
        .expect("distinct indexes 1..=N, at least the threshold");
    if Secrets::from_bytes(*root).recovery_check() != first.check {
        let files: Vec<String> = distinct.values().map(|(p, _)| p.display().to_string()).collect();
        return Err(RecoveryError::CheckValue { files: files.join(", ") });
    }
    Ok(root)
}

/// What `gateway secrets export-recovery` wrote.
#[derive(Debug)]
pub struct ExportReport {
    /// The kit's shares and threshold.
    pub params: KitParams,
    /// The facility.
    pub facility: FacilityId,
    /// The kit's id (hex).
    pub kit_id: String,
    /// The sheets, in index order.
    pub files: Vec<PathBuf>,
}

/// Writes a new kit of the box's root (`cfg`'s secret store, opened as the daemon does) into
/// `out`: the folder is made 0700 if missing, each sheet 0600 and fsynced. Refused if `out`
/// already holds a share sheet; nothing is left half-written.
pub fn export(
    cfg: &GatewayConfig,
    out: &Path,
    params: KitParams,
) -> Result<ExportReport, RecoveryError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecoveryError::Io { path, source }
    };
    // Before the secret is opened: a refused export touches nothing.
    if !out.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(out).map_err(io(out))?;
    }
    for entry in std::fs::read_dir(out).map_err(io(out))? {
        let name = entry.map_err(io(out))?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("recovery-share-") && name.ends_with(".txt") {
            return Err(RecoveryError::OutExists { path: out.join(&*name) });
        }
    }
    let secrets = Secrets::open_for(cfg)?;
    let sheets = split(&secrets, &cfg.facility_id, params);
    let mut files = Vec::with_capacity(sheets.len());
    for sheet in &sheets {
        let path = out.join(sheet.file_name());
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(sheet.render().as_bytes())?;
                f.sync_all()
            });
        if let Err(source) = written {
            // No half kit: the sheets of this run go, the folder stays as it was.
            if source.kind() != std::io::ErrorKind::AlreadyExists {
                let _ = std::fs::remove_file(&path);
            }
            for p in &files {
                let _ = std::fs::remove_file(p);
            }
            return Err(if source.kind() == std::io::ErrorKind::AlreadyExists {
                RecoveryError::OutExists { path }
            } else {
                RecoveryError::Io { path, source }
            });
        }
        files.push(path);
    }
    fgw_format::durable::fsync_dir(out).map_err(io(out))?;
    Ok(ExportReport {
        params,
        facility: cfg.facility_id.clone(),
        kit_id: sheets[0].kit_id(),
        files,
    })
}

/// What `gateway secrets import-recovery` did.
#[derive(Debug)]
pub struct ImportReport {
    /// Distinct shares combined.
    pub shares_used: usize,
    /// The kit's shares and threshold.
    pub params: KitParams,
    /// The kit's id (hex).
    pub kit_id: String,
    /// Written, or already there.
    pub outcome: RootInstall,
}

/// Reads the sheets at `files`, combines them for `cfg`'s facility, and installs the root in
/// `cfg`'s secret store (see [`combine`] and `Secrets::install_root`): written if the box has
/// none, nothing done if it has this one, refused if it has another.
pub fn import(cfg: &GatewayConfig, files: &[PathBuf]) -> Result<ImportReport, RecoveryError> {
    let sheets = files
        .iter()
        .map(|p| Ok((p.clone(), ShareSheet::read(p)?)))
        .collect::<Result<Vec<_>, RecoveryError>>()?;
    let root = combine(&sheets, &cfg.facility_id)?;
    let first = &sheets[0].1;
    let shares_used = {
        let mut idx: Vec<u8> = sheets.iter().map(|(_, s)| s.index).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.len()
    };
    let outcome = Secrets::install_root_for(cfg, &root)?;
    Ok(ImportReport { shares_used, params: first.params, kit_id: first.kit_id(), outcome })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::RootLocation;

    fn facility(s: &str) -> FacilityId {
        FacilityId::new(s).unwrap()
    }

    fn root() -> [u8; 32] {
        let mut r = [0u8; 32];
        for (i, b) in r.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        r
    }

    fn kit(params: KitParams) -> Vec<ShareSheet> {
        split(&Secrets::from_bytes(root()), &facility("F0001"), params)
    }

    fn named(sheets: &[&ShareSheet]) -> Vec<(PathBuf, ShareSheet)> {
        sheets.iter().map(|s| (PathBuf::from(s.file_name()), (*s).clone())).collect()
    }

    /// Every sheet as a file and back: what the hospital's printout carries.
    fn through_text(s: &ShareSheet) -> ShareSheet {
        ShareSheet::parse(Path::new("s.txt"), &s.render()).unwrap()
    }

    fn config(state: &Path, facility: &str) -> GatewayConfig {
        let text = format!("facility_id = \"{facility}\"\nstate_dir = \"{}\"\n", state.display());
        GatewayConfig::from_toml(Path::new("/etc/g.toml"), &text).unwrap()
    }

    #[test]
    fn every_two_of_three_rebuild_the_root_and_one_does_not() {
        let sheets: Vec<ShareSheet> = kit(KitParams::DEFAULT).iter().map(through_text).collect();
        assert_eq!(sheets.iter().map(|s| s.index).collect::<Vec<_>>(), [1, 2, 3]);
        for (a, b) in [(0, 1), (0, 2), (1, 2), (1, 0), (2, 0), (2, 1)] {
            let got = combine(&named(&[&sheets[a], &sheets[b]]), &facility("F0001")).unwrap();
            assert_eq!(*got, root(), "shares {a} and {b}");
        }
        let all = combine(&named(&[&sheets[0], &sheets[1], &sheets[2]]), &facility("F0001"));
        assert_eq!(*all.unwrap(), root());
        for one in &sheets {
            match combine(&named(&[one]), &facility("F0001")) {
                Err(RecoveryError::TooFew { have: 1, need: 2, count: 3 }) => {}
                other => panic!("one share: {other:?}"),
            }
        }
        // The same sheet twice is still one share.
        let twice = combine(&named(&[&sheets[1], &sheets[1]]), &facility("F0001"));
        assert!(matches!(twice, Err(RecoveryError::TooFew { have: 1, .. })), "{twice:?}");
        assert!(matches!(combine(&[], &facility("F0001")), Err(RecoveryError::NoShares)));
    }

    #[test]
    fn larger_kits_need_their_threshold() {
        let params = KitParams::new(5, 3).unwrap();
        let sheets = kit(params);
        let two = combine(&named(&[&sheets[4], &sheets[0]]), &facility("F0001"));
        assert!(matches!(two, Err(RecoveryError::TooFew { have: 2, need: 3, count: 5 })));
        let three = combine(&named(&[&sheets[4], &sheets[0], &sheets[2]]), &facility("F0001"));
        assert_eq!(*three.unwrap(), root());
        for (n, k) in [(3, 1), (2, 3), (10, 2), (0, 0), (1, 1)] {
            assert!(KitParams::new(n, k).is_err(), "{k} of {n}");
        }
        assert!(KitParams::new(9, 9).is_ok() && KitParams::new(2, 2).is_ok());
    }

    #[test]
    fn a_sheet_holds_the_share_not_the_root_and_the_check_reveals_no_key() {
        let secrets = Secrets::from_bytes(root());
        let sheets = kit(KitParams::DEFAULT);
        let root_hex = hex(&root());
        for s in &sheets {
            let text = s.render();
            assert!(text.starts_with(FORMAT_LINE), "{}", text.as_str());
            assert!(!text.contains(&root_hex[..16]), "the root on a sheet");
            assert!(!format!("{s:?}").contains(&hex(&s.data[..])[..8]), "share bytes in Debug");
        }
        // The check value is of its own key: not a prefix of any other purpose's output.
        let check = hex(&secrets.recovery_check());
        let probe = |k: &ring::hmac::Key| hex(ring::hmac::sign(k, b"fgw recovery check").as_ref());
        for k in [secrets.pseudonym_key(), secrets.outbox_key(), secrets.batch_label_key()] {
            assert!(!probe(&k).starts_with(&check));
        }
        // Two exports of the same root: other kit ids, other share bytes, same check value.
        let again = kit(KitParams::DEFAULT);
        assert_ne!(again[0].kit, sheets[0].kit);
        assert_ne!(again[0].data[..], sheets[0].data[..]);
        assert_eq!(again[0].check, sheets[0].check);
    }

    #[test]
    fn a_mistyped_digit_is_caught_by_the_sheet_checksum() {
        let sheet = &kit(KitParams::DEFAULT)[1];
        let text = sheet.render();
        let data_line = text.lines().find(|l| l.starts_with("data:")).unwrap();
        // Flip one hex digit of the share bytes, then one of the check value.
        for line in [data_line, text.lines().find(|l| l.starts_with("check:")).unwrap()] {
            let pos = line.len() - 3;
            let c = line.as_bytes()[pos] as char;
            let flipped = if c == '0' { '1' } else { '0' };
            let bad_line = format!("{}{flipped}{}", &line[..pos], &line[pos + 1..]);
            let bad = text.replace(line, &bad_line);
            match ShareSheet::parse(Path::new("/media/usb/share-2.txt"), &bad) {
                Err(e @ RecoveryError::Checksum { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains("/media/usb/share-2.txt"), "{msg}");
                    assert!(!msg.contains(&hex(&sheet.data[..])[..8]), "share bytes: {msg}");
                }
                other => panic!("flipped digit: {other:?}"),
            }
        }
        // A retyped sheet: upper case, other spacing, no comments, still reads.
        let retyped: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.split_once(": ") {
                Some(("data", v)) => {
                    format!("data:{}\n", v.replace(' ', "").to_uppercase())
                }
                _ => format!("  {l}  \n"),
            })
            .collect();
        assert_eq!(
            through_text(sheet).data[..],
            ShareSheet::parse(Path::new("r"), &retyped).unwrap().data[..]
        );
        // A digit missing: counted, never echoed.
        let short = text.replace(data_line, &data_line[..data_line.len() - 1]);
        let e = ShareSheet::parse(Path::new("s"), &short).unwrap_err().to_string();
        assert!(e.contains("line") && e.contains("64 hex digits, found 63"), "{e}");
        let e = ShareSheet::parse(Path::new("s"), "hello\n").unwrap_err().to_string();
        assert!(e.contains("not a share sheet"), "{e}");
        let e = ShareSheet::parse(Path::new("s"), &text.replace("threshold:", "# t")).unwrap_err();
        assert!(matches!(e, RecoveryError::Missing { field: "threshold", .. }), "{e}");
    }

    #[test]
    fn shares_of_two_kits_are_not_mixed() {
        let a = kit(KitParams::DEFAULT);
        let b = kit(KitParams::DEFAULT);
        match combine(&named(&[&a[0], &b[1]]), &facility("F0001")) {
            Err(RecoveryError::OtherKit { field: "kit", path, first }) => {
                assert_eq!((first, path), (a[0].file_name().into(), b[1].file_name().into()));
            }
            other => panic!("mixed kits: {other:?}"),
        }
        // Another box's kit (another root), even with the kit id forged to match: the check
        // value differs.
        let other = split(&Secrets::from_bytes([7u8; 32]), &facility("F0001"), KitParams::DEFAULT);
        let mut forged = other[1].clone();
        forged.kit = a[0].kit;
        let e = combine(&named(&[&a[0], &forged]), &facility("F0001")).unwrap_err();
        assert!(matches!(e, RecoveryError::OtherKit { field: "check", .. }), "{e}");
        // An altered share (the checksum recomputed, check value kept): the combined key
        // does not match the check value.
        let mut altered = a[1].clone();
        altered.data[0] ^= 1;
        let altered = through_text(&altered);
        let e = combine(&named(&[&a[0], &altered]), &facility("F0001")).unwrap_err();
        assert!(matches!(e, RecoveryError::CheckValue { .. }), "{e}");
        // The same index with other bytes.
        let e = combine(&named(&[&a[1], &altered, &a[0]]), &facility("F0001")).unwrap_err();
        assert!(matches!(e, RecoveryError::Conflicting { index: 2, .. }), "{e}");
    }

    #[test]
    fn a_kit_of_another_facility_is_refused() {
        let sheets = kit(KitParams::DEFAULT);
        let e = combine(&named(&[&sheets[0], &sheets[2]]), &facility("F0002")).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, RecoveryError::WrongFacility { .. }), "{msg}");
        assert!(msg.contains("F0001") && msg.contains("F0002"), "{msg}");
        let other = split(&Secrets::from_bytes(root()), &facility("F0002"), KitParams::DEFAULT);
        let e = combine(&named(&[&sheets[0], &other[1]]), &facility("F0001")).unwrap_err();
        assert!(matches!(e, RecoveryError::OtherKit { field: "facility", .. }), "{e}");
    }

    #[test]
    fn export_then_import_on_a_fresh_box_writes_the_same_root_file() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let d = tempfile::tempdir().unwrap();
        let box_a = config(&d.path().join("a"), "F0001");
        let original = Secrets::open_for(&box_a).unwrap();
        let out = d.path().join("kit");
        let report = export(&box_a, &out, KitParams::DEFAULT).unwrap();
        assert_eq!(mode(&out), 0o700);
        assert_eq!(report.files.len(), 3);
        for f in &report.files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        // Never over an existing kit; the refused export leaves the sheets as they were.
        let before = std::fs::read(&report.files[0]).unwrap();
        let e = export(&box_a, &out, KitParams::new(5, 3).unwrap()).unwrap_err();
        assert!(matches!(e, RecoveryError::OutExists { .. }), "{e}");
        assert_eq!(std::fs::read(&report.files[0]).unwrap(), before);

        let box_b = config(&d.path().join("b"), "F0001");
        let r = import(&box_b, &[report.files[2].clone(), report.files[0].clone()]).unwrap();
        assert_eq!(r.shares_used, 2);
        let root_file = box_b.secrets_dir().join("root.key");
        assert_eq!(r.outcome, RootInstall::Written(RootLocation::File(root_file.clone())));
        assert_eq!(mode(&root_file), 0o600);
        assert_eq!(std::fs::read(&root_file).unwrap(), original.root_bytes());
        assert!(!box_b.secrets_dir().join("root.key.recovered.tmp").exists());
        // Box B now opens the same keys.
        let b = Secrets::open_for(&box_b).unwrap();
        assert_eq!(b.recovery_check(), original.recovery_check());
        // Again: the same root is already there; nothing changes.
        let again = import(&box_b, &report.files[1..]).unwrap();
        assert_eq!(again.outcome, RootInstall::AlreadyPresent(RootLocation::File(root_file)));

        // A box with another root keeps it.
        let box_c = config(&d.path().join("c"), "F0001");
        let own = *Secrets::open_for(&box_c).unwrap().root_bytes();
        let e = import(&box_c, &report.files[..2]).unwrap_err();
        assert!(matches!(e, RecoveryError::Secrets(SecretsError::RootDiffers { .. })), "{e}");
        assert_eq!(*Secrets::open_for(&box_c).unwrap().root_bytes(), own);

        // One share: refused, no root written.
        let box_d = config(&d.path().join("d"), "F0001");
        let e = import(&box_d, &report.files[..1]).unwrap_err();
        assert!(e.to_string().contains("1 distinct share(s) given, but 2"), "{e}");
        assert!(!box_d.secrets_dir().join("root.key").exists());
        // Another facility's box: refused.
        let box_e = config(&d.path().join("e"), "F0009");
        let e = import(&box_e, &report.files[..2]).unwrap_err();
        assert!(matches!(e, RecoveryError::WrongFacility { .. }), "{e}");
        assert!(!box_e.secrets_dir().join("root.key").exists());
        // A file that is not there: named.
        let missing = d.path().join("nope.txt");
        let e = import(&box_e, &[missing]).unwrap_err().to_string();
        assert!(e.contains("nope.txt"), "{e}");
    }
}
