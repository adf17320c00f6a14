//! The check after a run: every package uploaded is at the hub exactly once, read from the
//! operator listing `GET /v1/facilities/{facility}/exams` (one row per exam, its current
//! package) with the operator certificate.

use fgw_format::ids::PackageId;
use fgw_format::package::protocol::ExamListing;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Why the listing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The request failed.
    #[error("listing facility {facility}: {reason}")]
    Listing {
        /// The facility.
        facility: String,
        /// What went wrong (transport error or status).
        reason: String,
    },
}

/// A package the hub acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The facility it names.
    pub facility: String,
    /// Its exam pseudonym.
    pub exam_pid: String,
    /// Its package id.
    pub package_id: PackageId,
}

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Packages acknowledged during the run.
    pub acknowledged: u64,
    /// Of those, listed in exactly one row with the same package id.
    pub listed_once: u64,
    /// Not listed.
    pub missing: u64,
    /// Listed in more than one row.
    pub repeated: u64,
    /// Listed with another package id.
    pub other_package: u64,
    /// Rows of the facilities' listings from other runs.
    pub other_rows: u64,
    /// Every acknowledged package listed exactly once.
    pub ok: bool,
}

/// Lists every facility of `uploaded` at `hub_url` with `client` (the operator's) and checks.
pub async fn verify(
    client: &reqwest::Client,
    hub_url: &str,
    uploaded: &[Uploaded],
) -> Result<Verification, VerifyError> {
    let mut by_facility: BTreeMap<&str, Vec<&Uploaded>> = BTreeMap::new();
    for u in uploaded {
        by_facility.entry(&u.facility).or_default().push(u);
    }
    let mut v = Verification { acknowledged: uploaded.len() as u64, ..Verification::default() };
    for (facility, ours) in by_facility {
        let err = |reason: String| VerifyError::Listing { facility: facility.into(), reason };
        let resp = client
            .get(format!("{hub_url}/v1/facilities/{facility}/exams"))
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("status {}", resp.status())));
        }
        let rows: Vec<ExamListing> = resp.json().await.map_err(|e| err(e.to_string()))?;
        let mut listed: HashMap<&str, Vec<&ExamListing>> = HashMap::new();
        for r in &rows {
            listed.entry(&r.exam_pid).or_default().push(r);
        }
        let mut matched = 0u64;
        for u in ours {
            match listed.get(u.exam_pid.as_str()).map(Vec::as_slice) {
                None | Some([]) => v.missing += 1,
                Some([one]) if one.package_id == u.package_id => {
                    v.listed_once += 1;
                    matched += 1;
                }
                Some([_]) => {
                    v.other_package += 1;
                    matched += 1;
                }
                Some(many) => {
                    v.repeated += 1;
                    matched += many.len() as u64;
                }
            }
        }
        v.other_rows += (rows.len() as u64).saturating_sub(matched);
    }
    v.ok = v.missing == 0 && v.repeated == 0 && v.other_package == 0;
    Ok(v)
}
