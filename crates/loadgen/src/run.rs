//! The run: `devices` simulated devices in one tokio process, spread round-robin over the
//! hub nodes, each uploading its packages one at a time as a box's uplink does (`HEAD` each
//! object, `PUT` the missing ones, `PUT` the manifest; on a 409 the objects it lists, then
//! the manifest again). At most `concurrency` devices upload at once. Each package goes over
//! a fresh connection: a real box uploads an exam every few minutes, and the hub closes idle
//! keep-alive connections long before that. Transport errors, 408, 429 and 5xx are retried
//! (the package from the start, objects already at the hub are skipped); other refusals fail
//! the package.

use crate::certs::{self, DeviceEntry};
use crate::corpus::Corpus;
use crate::cpu;
use crate::rewrite::{self, Generated, Variant};
use crate::stats::{Counts, Samples};
use crate::summary::Summary;
use crate::verify::{self, Uploaded};
use fgw_format::ids::{FacilityId, Sha256Hex};
use fgw_format::package::protocol::{Ack, MissingObjects, Stored, OBJECTS, PACKAGES};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Why a run could not be made (failed uploads are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Certificates could not be loaded.
    #[error(transparent)]
    Certs(#[from] certs::CertsError),
    /// A device's TLS configuration could not be built.
    #[error("TLS configuration of {device} from {dir}: {source}")]
    Tls {
        /// The device.
        device: String,
        /// Its certificate directory.
        dir: PathBuf,
        /// The cause.
        source: Box<fgw_tls::TlsError>,
    },
    /// A facility id in devices.json that is not one.
    #[error("facility id of device {device} is not valid")]
    Facility {
        /// The device.
        device: String,
    },
    /// A package could not be rewritten.
    #[error(transparent)]
    Rewrite(#[from] rewrite::RewriteError),
    /// An HTTP client could not be built.
    #[error("building the HTTP client of {device}: {reason}")]
    Client {
        /// The device.
        device: String,
        /// The cause.
        reason: String,
    },
    /// A hub process's CPU time could not be read.
    #[error(transparent)]
    Cpu(#[from] cpu::CpuError),
    /// The exactly-once check could not list.
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    /// No hub URL given.
    #[error("no hub URL given")]
    NoHub,
    /// A device task panicked or was cancelled.
    #[error("device task {device} ended abnormally")]
    Task {
        /// The device.
        device: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Hub node base URLs (`https://host:port`); device `i` uses `hub_urls[i % len]`.
    pub hub_urls: Vec<String>,
    /// The certificate directory of `loadgen issue`.
    pub certs: PathBuf,
    /// Simulated devices (the first of devices.json).
    pub devices: usize,
    /// Packages each device uploads.
    pub packages_per_device: u32,
    /// Devices uploading at once, at most.
    pub concurrency: usize,
    /// Hub processes whose CPU time is measured.
    pub hub_pids: Vec<u32>,
    /// Store processes (PostgreSQL, Garage) whose CPU time is measured.
    pub store_pids: Vec<u32>,
    /// Pad objects to at least this many bytes (0: as in the corpus).
    pub pad_to: usize,
    /// Files per package, at most (0: all of the corpus package's).
    pub max_files: usize,
    /// Distinguishes this run's packages from earlier runs' on the same hub.
    pub run_id: String,
    /// Attempts per package beyond the first.
    pub retries: u32,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Check afterwards that every package is listed exactly once.
    pub verify: bool,
}

/// One device's measurements.
#[derive(Debug, Default)]
struct Tally {
    package: Samples,
    head: Samples,
    put_object: Samples,
    put_manifest: Samples,
    errors: Counts,
    uploaded: Vec<Uploaded>,
    failed: u64,
    duplicates: u64,
    images: u64,
    bytes_sent: u64,
    object_bytes: u64,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.package.merge(o.package);
        self.head.merge(o.head);
        self.put_object.merge(o.put_object);
        self.put_manifest.merge(o.put_manifest);
        self.errors.merge(o.errors);
        self.uploaded.extend(o.uploaded);
        self.failed += o.failed;
        self.duplicates += o.duplicates;
        self.images += o.images;
        self.bytes_sent += o.bytes_sent;
        self.object_bytes += o.object_bytes;
    }
}

/// Why one attempt at a package stopped.
enum Attempt {
    /// Worth trying again (transport, 408, 429, 5xx).
    Retry,
    /// Refused for good.
    Fail,
}

fn tls_of(certs: &Path, device: &str) -> Result<Arc<rustls::ClientConfig>, RunError> {
    let dir = certs::device_dir(certs, device);
    fgw_tls::client_config(&dir.join("ca.crt"), &dir.join("device.crt"), &dir.join("device.key"))
        .map(Arc::new)
        .map_err(|source| RunError::Tls { device: device.into(), dir, source: Box::new(source) })
}

fn client(
    tls: &rustls::ClientConfig,
    device: &str,
    timeout: Duration,
) -> Result<reqwest::Client, RunError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .http1_only()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| RunError::Client { device: device.into(), reason: e.to_string() })
}

/// Runs the load and returns its summary.
pub async fn run(corpus: Arc<Corpus>, opts: &RunOptions) -> Result<Summary, RunError> {
    fgw_tls::install_ring_provider();
    if opts.hub_urls.is_empty() {
        return Err(RunError::NoHub);
    }
    let devices = certs::load(&opts.certs, opts.devices)?;
    let mut configs = Vec::with_capacity(devices.len());
    for d in &devices {
        let facility = FacilityId::new(&d.facility)
            .map_err(|_| RunError::Facility { device: d.device.clone() })?;
        configs.push((d.clone(), facility, tls_of(&opts.certs, &d.device)?));
    }
    let facilities = devices
        .iter()
        .map(|d| d.facility.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let hub_cpu0 = cpu::total_cpu_secs(&opts.hub_pids)?;
    let store_cpu0 = cpu::running_cpu_secs(&opts.store_pids);
    let own_cpu0 = cpu::cpu_secs("self")?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(configs.len());
    for (i, (entry, facility, tls)) in configs.into_iter().enumerate() {
        let url = opts.hub_urls[i % opts.hub_urls.len()].clone();
        let (corpus, sem, opts) = (corpus.clone(), sem.clone(), opts.clone());
        let name = entry.device.clone();
        let handle =
            tokio::spawn(
                async move { device(i, entry, facility, tls, url, corpus, sem, &opts).await },
            );
        tasks.push((name, handle));
    }
    let mut total = Tally::default();
    for (name, handle) in tasks {
        let tally = handle.await.map_err(|_| RunError::Task { device: name })??;
        total.merge(tally);
    }
    let wall = start.elapsed().as_secs_f64();
    let hub_cpu = cpu::total_cpu_secs(&opts.hub_pids)? - hub_cpu0;
    let store_cpu = cpu::running_cpu_secs(&opts.store_pids) - store_cpu0;
    let own_cpu = cpu::cpu_secs("self")? - own_cpu0;
    let hub_peak_rss_kib =
        opts.hub_pids.iter().map(|p| cpu::peak_rss_kib(*p)).collect::<Result<Vec<_>, _>>()?;
    let verification = if opts.verify {
        let tls = tls_of(&opts.certs, certs::OPERATOR)?;
        let op = client(&tls, certs::OPERATOR, Duration::from_secs(300))?;
        Some(verify::verify(&op, &opts.hub_urls[0], &total.uploaded).await?)
    } else {
        None
    };
    let ok = total.uploaded.len() as u64;
    let gb = total.bytes_sent as f64 / 1e9;
    let per_sec = |n: f64| if wall > 0.0 { n / wall } else { 0.0 };
    Ok(Summary {
        run_id: opts.run_id.clone(),
        hub_urls: opts.hub_urls.clone(),
        devices: devices.len(),
        facilities,
        packages_per_device: opts.packages_per_device,
        concurrency: opts.concurrency,
        pad_to: opts.pad_to,
        max_files: opts.max_files,
        corpus_packages: corpus.packages.len(),
        corpus_mean_images: corpus.mean_files(),
        mean_object_bytes: if total.images == 0 {
            0.0
        } else {
            total.object_bytes as f64 / total.images as f64
        },
        packages_ok: ok,
        packages_failed: total.failed,
        packages_duplicate: total.duplicates,
        images: total.images,
        bytes_sent: total.bytes_sent,
        wall_secs: wall,
        packages_per_sec: per_sec(ok as f64),
        images_per_sec: per_sec(total.images as f64),
        mb_per_sec: per_sec(total.bytes_sent as f64 / 1e6),
        package_latency: total.package.percentiles(),
        head_latency: total.head.percentiles(),
        put_object_latency: total.put_object.percentiles(),
        put_manifest_latency: total.put_manifest.percentiles(),
        error_count: total.errors.total(),
        errors: total.errors,
        hub_cpu_secs: (!opts.hub_pids.is_empty()).then_some(hub_cpu),
        hub_cpu_secs_per_gb: (!opts.hub_pids.is_empty() && gb > 0.0).then(|| hub_cpu / gb),
        store_cpu_secs: (!opts.store_pids.is_empty()).then_some(store_cpu),
        loadgen_cpu_secs: own_cpu,
        hub_peak_rss_kib,
        verification,
    })
}

/// One simulated device: its packages, one after the other.
#[allow(clippy::too_many_arguments)]
async fn device(
    index: usize,
    entry: DeviceEntry,
    facility: FacilityId,
    tls: Arc<rustls::ClientConfig>,
    url: String,
    corpus: Arc<Corpus>,
    sem: Arc<Semaphore>,
    opts: &RunOptions,
) -> Result<Tally, RunError> {
    let mut t = Tally::default();
    let k = opts.packages_per_device as usize;
    for seq in 0..opts.packages_per_device {
        let pkg = corpus.packages[(index * k + seq as usize) % corpus.packages.len()].clone();
        let (run_id, dev, fac) = (opts.run_id.clone(), entry.device.clone(), facility.clone());
        let (pad_to, max_files) = (opts.pad_to, opts.max_files);
        let generated = tokio::task::spawn_blocking(move || {
            rewrite::distinct(
                &pkg,
                &Variant { run_id: &run_id, device: &dev, facility: &fac, seq, pad_to, max_files },
            )
        })
        .await
        .map_err(|_| RunError::Task { device: entry.device.clone() })??;
        let _permit =
            sem.acquire().await.map_err(|_| RunError::Task { device: entry.device.clone() })?;
        let started = Instant::now();
        let mut done = false;
        for attempt in 0..=opts.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            let c = client(&tls, &entry.device, opts.request_timeout)?;
            match upload(&c, &url, &generated, &mut t).await {
                Ok(ack) => {
                    if ack.stored == Stored::Duplicate {
                        t.duplicates += 1;
                    }
                    t.package.add(started.elapsed());
                    t.images += generated.objects.len() as u64;
                    t.object_bytes += generated.object_bytes();
                    t.uploaded.push(Uploaded {
                        facility: generated.facility.to_string(),
                        exam_pid: generated.exam_pid.clone(),
                        package_id: generated.id.clone(),
                    });
                    done = true;
                    break;
                }
                Err(Attempt::Retry) => continue,
                Err(Attempt::Fail) => break,
            }
        }
        if !done {
            t.failed += 1;
        }
    }
    Ok(t)
}

fn retryable(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// Counts a failed request and says whether to retry.
fn failed(t: &mut Tally, route: &str, status: Option<StatusCode>) -> Attempt {
    match status {
        None => {
            t.errors.add(format!("{route} transport"));
            Attempt::Retry
        }
        Some(s) => {
            t.errors.add(format!("{route} {}", s.as_u16()));
            if retryable(s) {
                Attempt::Retry
            } else {
                Attempt::Fail
            }
        }
    }
}

/// One attempt at a package.
async fn upload(
    c: &reqwest::Client,
    url: &str,
    g: &Generated,
    t: &mut Tally,
) -> Result<Ack, Attempt> {
    let mut seen = std::collections::BTreeSet::new();
    for (sha, bytes) in &g.objects {
        if !seen.insert(sha) {
            continue;
        }
        let at = Instant::now();
        let head = c.head(format!("{url}{OBJECTS}/{sha}")).send().await;
        match head {
            Ok(r) if r.status() == StatusCode::OK => {
                t.head.add(at.elapsed());
                continue;
            }
            Ok(r) if r.status() == StatusCode::NOT_FOUND => t.head.add(at.elapsed()),
            Ok(r) => return Err(failed(t, "HEAD /v1/objects", Some(r.status()))),
            Err(_) => return Err(failed(t, "HEAD /v1/objects", None)),
        }
        put_object(c, url, sha, bytes, t).await?;
    }
    for _ in 0..2 {
        let at = Instant::now();
        let resp = c
            .put(format!("{url}{PACKAGES}/{}", g.id))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(g.manifest.clone())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(_) => return Err(failed(t, "PUT /v1/packages", None)),
        };
        let status = resp.status();
        if status.is_success() {
            let ack = resp.json::<Ack>().await.map_err(|_| failed(t, "PUT /v1/packages", None))?;
            t.put_manifest.add(at.elapsed());
            return Ok(ack);
        }
        if status != StatusCode::CONFLICT {
            return Err(failed(t, "PUT /v1/packages", Some(status)));
        }
        // Objects the hub lacks after all: send them, then the manifest once more.
        t.errors.add("PUT /v1/packages 409");
        let missing = resp.json::<MissingObjects>().await.map_err(|_| Attempt::Retry)?;
        for sha in &missing.missing {
            let Some((_, bytes)) = g.objects.iter().find(|(s, _)| s == sha) else {
                return Err(Attempt::Fail);
            };
            put_object(c, url, sha, bytes, t).await?;
        }
    }
    Err(Attempt::Retry)
}

async fn put_object(
    c: &reqwest::Client,
    url: &str,
    sha: &Sha256Hex,
    bytes: &Arc<Vec<u8>>,
    t: &mut Tally,
) -> Result<(), Attempt> {
    let at = Instant::now();
    let resp = c
        .put(format!("{url}{OBJECTS}/{sha}"))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(bytes.as_ref().clone())
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => {
            // Read the small JSON answer so the connection is reusable.
            let _ = r.bytes().await;
            t.put_object.add(at.elapsed());
            t.bytes_sent += bytes.len() as u64;
            Ok(())
        }
        Ok(r) => Err(failed(t, "PUT /v1/objects", Some(r.status()))),
        Err(_) => Err(failed(t, "PUT /v1/objects", None)),
    }
}
