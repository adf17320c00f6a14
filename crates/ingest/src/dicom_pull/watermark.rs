//! Where the pull of each archive stands, behind a trait: the pull loop does not know the
//! gateway's state database, only these four questions. The gateway's `Db` answers them.

use chrono::NaiveDate;

/// Where the DICOM pull of one archive stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullMark {
    /// The first date this history reaches back to.
    pub start: NaiveDate,
    /// Every study dated up to and including this date has been retrieved.
    pub watermark: Option<NaiveDate>,
}

/// A failure of the store behind [`PullStore`]. Its text comes from the store, whose errors
/// name tables and operations, never values.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub Box<dyn std::error::Error + Send + Sync>);

/// The persisted watermark and the studies already moved, per archive (keyed by its AE
/// title). Study keys are keyed pseudonyms, never UIDs.
pub trait PullStore: Send + Sync {
    /// The mark of `archive`, if one was stored.
    fn pull_mark(&self, archive: &str) -> Result<Option<PullMark>, StoreError>;
    /// Store the mark of `archive` (durably, before the call returns).
    fn set_pull_mark(&self, archive: &str, mark: PullMark) -> Result<(), StoreError>;
    /// `None` if the study was never moved, else the instance count recorded when it was.
    fn pulled_study(
        &self,
        archive: &str,
        study_key: &str,
    ) -> Result<Option<Option<u32>>, StoreError>;
    /// Record that a study was moved with `instances` objects.
    fn record_pulled_study(
        &self,
        archive: &str,
        study_key: &str,
        study_date: NaiveDate,
        instances: Option<u32>,
    ) -> Result<(), StoreError>;
}
