//! The JSON summary of a run (what `loadgen run --json` writes and prints).

use crate::stats::{Counts, Percentiles};
use crate::verify::Verification;
use serde::Serialize;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The run's id (part of every exam pseudonym).
    pub run_id: String,
    /// Hub nodes the devices were spread over.
    pub hub_urls: Vec<String>,
    /// Simulated devices.
    pub devices: usize,
    /// Facilities they belong to.
    pub facilities: usize,
    /// Packages each device uploaded, one at a time.
    pub packages_per_device: u32,
    /// Devices uploading at the same time, at most.
    pub concurrency: usize,
    /// Objects padded to at least this many bytes (0: as in the corpus).
    pub pad_to: usize,
    /// Files per package, at most (0: all).
    pub max_files: usize,
    /// Exam packages in the corpus.
    pub corpus_packages: usize,
    /// Mean files per corpus package.
    pub corpus_mean_images: f64,
    /// Mean bytes per object as uploaded (after rewriting and padding).
    pub mean_object_bytes: f64,
    /// Packages acknowledged by the hub.
    pub packages_ok: u64,
    /// Packages that failed after all retries.
    pub packages_failed: u64,
    /// Acknowledgements that said "duplicate" (none expected).
    pub packages_duplicate: u64,
    /// Objects in acknowledged packages.
    pub images: u64,
    /// Bytes of objects sent (PUT bodies).
    pub bytes_sent: u64,
    /// From the start of the first upload to the end of the last, seconds.
    pub wall_secs: f64,
    /// Acknowledged packages per second.
    pub packages_per_sec: f64,
    /// Images (objects) per second.
    pub images_per_sec: f64,
    /// Object bytes sent per second, in MB (10^6).
    pub mb_per_sec: f64,
    /// A whole package: every HEAD and object PUT, then the manifest; retries included.
    pub package_latency: Percentiles,
    /// `HEAD /v1/objects/{sha256}`.
    pub head_latency: Percentiles,
    /// `PUT /v1/objects/{sha256}`.
    pub put_object_latency: Percentiles,
    /// `PUT /v1/packages/{id}`.
    pub put_manifest_latency: Percentiles,
    /// Failed requests by route and status (`transport` for connection errors).
    pub errors: Counts,
    /// Total of `errors`.
    pub error_count: u64,
    /// CPU seconds (user + system) of the hub processes during the run.
    pub hub_cpu_secs: Option<f64>,
    /// Hub CPU seconds per GB (10^9 bytes) of objects sent.
    pub hub_cpu_secs_per_gb: Option<f64>,
    /// CPU seconds of the store processes (`--store-pid`) during the run.
    pub store_cpu_secs: Option<f64>,
    /// CPU seconds of the load generator itself.
    pub loadgen_cpu_secs: f64,
    /// Peak resident set of each hub process, KiB.
    pub hub_peak_rss_kib: Vec<u64>,
    /// The exactly-once check, when run.
    pub verification: Option<Verification>,
}
