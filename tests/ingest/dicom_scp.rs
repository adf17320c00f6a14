//! The C-STORE SCP against real senders: DCMTK's `echoscu`/`storescu` (the `dcmtk` Debian
//! package, installed by scripts/ensure-deps.sh), and dicom-ul's own client for data sets
//! that DCMTK would refuse to send (truncated, bad lengths, wrong VR).
//!
//! The test images are made here: pixels from the `image` crate, wrapped by `img2dcm`
//! (a JPEG is wrapped as JPEG Baseline without re-encoding), with fictitious identifiers.

use dicom_object::OpenFileOptions;
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{AssociationRJResult, PDataValue, PDataValueType};
use dicom_ul::Pdu;
use fgw_ingest::dicom_scp::{
    AeTitle, AllowRule, DicomScp, DicomScpConfig, DicomSink, ReceivedObject, Refusal, ScpMode,
    SinkError, Status, EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_BASELINE, SECONDARY_CAPTURE_IMAGE,
    VL_ENDOSCOPIC_IMAGE,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Planted in every test object; must never reach a log line.
const PATIENT_NAME: &str = "Kaburagi^Ruriko";
const PATIENT_ID: &str = "QX77123";

// ---- log capture -------------------------------------------------------------------------

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_log() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .init();
    });
}

fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

fn assert_no_personal_data(log: &str) {
    for marker in [PATIENT_NAME, "Kaburagi", "Ruriko", PATIENT_ID] {
        assert!(!log.contains(marker), "log carries {marker}:\n{log}");
    }
}

// ---- sink --------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Sink {
    objects: Arc<Mutex<Vec<ReceivedObject>>>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    down: Arc<AtomicBool>,
}

impl DicomSink for Sink {
    fn accept(&self, object: ReceivedObject) -> Result<(), SinkError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError::Unavailable("test sink is down"));
        }
        self.objects.lock().unwrap().push(object);
        Ok(())
    }
    fn refused(&self, refusal: &Refusal) {
        self.refusals.lock().unwrap().push(refusal.clone());
    }
}

impl Sink {
    fn take(&self) -> Vec<ReceivedObject> {
        std::mem::take(&mut *self.objects.lock().unwrap())
    }
    fn take_refusals(&self) -> Vec<Refusal> {
        std::mem::take(&mut *self.refusals.lock().unwrap())
    }
}

// ---- server ------------------------------------------------------------------------------

struct Server {
    port: u16,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(cfg: DicomScpConfig, sink: Sink) -> Server {
    init_log();
    cfg.validate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scp = DicomScp::new(listener, cfg);
    let port = scp.local_addr().unwrap().port();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(scp.serve(sink, rx));
    Server { port, stop, task }
}

impl Server {
    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("scp stops on shutdown")
            .unwrap();
    }
}

fn config() -> DicomScpConfig {
    DicomScpConfig {
        mode: ScpMode::Enabled,
        allowed_peers: vec!["127.0.0.1".parse().unwrap()],
        ..DicomScpConfig::default()
    }
}

// ---- dcmtk -------------------------------------------------------------------------------

async fn dcmtk(program: &str, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(program).args(args).kill_on_drop(true).output();
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Err(_) => panic!("{program} did not finish within 60 s"),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not on PATH. It comes with DCMTK: apt-get install -y dcmtk \
             (scripts/ensure-deps.sh installs it)"
        ),
        Ok(Err(e)) => panic!("{program}: {e}"),
        Ok(Ok(out)) => out,
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn must(program: &str, args: &[&str]) -> Output {
    let out = dcmtk(program, args).await;
    assert!(out.status.success(), "{program} {args:?} failed:\n{}", text(&out));
    out
}

/// `storescu` from `calling` to our AE `FGW`; extra options first.
async fn storescu(port: u16, calling: &str, extra: &[&str], file: &Path) -> Output {
    let port = port.to_string();
    let mut args = vec!["-v", "-aet", calling, "-aec", "FGW"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["127.0.0.1", &port, file.to_str().unwrap()]);
    dcmtk("storescu", &args).await
}

struct Files {
    _dir: tempfile::TempDir,
    /// Secondary Capture, uncompressed (from a BMP).
    sc: PathBuf,
    /// VL Endoscopic Image, JPEG Baseline (a JPEG wrapped as is).
    endo_jpeg: PathBuf,
}

async fn make_files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let img =
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
    let bmp = dir.path().join("frame.bmp");
    let jpg = dir.path().join("frame.jpg");
    img.save(&bmp).unwrap();
    img.save(&jpg).unwrap();
    let sc = dir.path().join("sc.dcm");
    let endo_jpeg = dir.path().join("endo.dcm");
    let name = format!("PatientName={PATIENT_NAME}");
    let id = format!("PatientID={PATIENT_ID}");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    must("img2dcm", &["-i", "BMP", "-k", &name, "-k", &id, &p(&bmp), &p(&sc)]).await;
    must("img2dcm", &["-i", "JPEG", "-k", &name, "-k", &id, &p(&jpg), &p(&endo_jpeg)]).await;
    let class = format!("(0008,0016)={VL_ENDOSCOPIC_IMAGE}");
    must("dcmodify", &["-nb", "-m", &class, &p(&endo_jpeg)]).await;
    Files { _dir: dir, sc, endo_jpeg }
}

/// The sink's bytes are a Part-10 file that both dicom-object and `dcmdump` read.
async fn assert_readable(obj: &ReceivedObject) {
    let file =
        OpenFileOptions::new().from_reader(&obj.bytes[128..]).expect("dicom-object reads it");
    assert_eq!(file.meta().transfer_syntax(), obj.transfer_syntax.as_str());
    assert_eq!(file.meta().media_storage_sop_class_uid(), obj.sop_class_uid.as_str());
    let name = file.element(dicom_dictionary_std::tags::PATIENT_NAME).unwrap().to_str().unwrap();
    assert_eq!(name.trim_end(), PATIENT_NAME, "the data set arrives unchanged");
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &obj.bytes).unwrap();
    must("dcmdump", &["-q", tmp.path().to_str().unwrap()]).await;
}

// ---- tests -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn echo_and_store_from_dcmtk() {
    let files = make_files().await;
    let sink = Sink::default();
    let server = start(config(), sink.clone()).await;
    let port = server.port.to_string();

    must("echoscu", &["-aet", "ENDO1", "-aec", "FGW", "127.0.0.1", &port]).await;

    let out = storescu(server.port, "ENDO1", &[], &files.sc).await;
    assert!(out.status.success(), "{}", text(&out));
    let got = sink.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sop_class_uid.as_str(), SECONDARY_CAPTURE_IMAGE);
    assert!([EXPLICIT_VR_LE, IMPLICIT_VR_LE].contains(&got[0].transfer_syntax.as_str()));
    assert_eq!(got[0].calling_ae.as_str(), "ENDO1");
    assert_eq!(got[0].peer.to_string(), "127.0.0.1");
    assert_readable(&got[0]).await;

    let out = storescu(server.port, "ENDO1", &["-xy"], &files.endo_jpeg).await;
    assert!(out.status.success(), "{}", text(&out));
    let got = sink.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sop_class_uid.as_str(), VL_ENDOSCOPIC_IMAGE);
    assert_eq!(got[0].transfer_syntax.as_str(), JPEG_BASELINE);
    assert_readable(&got[0]).await;

    assert!(sink.take_refusals().is_empty());
    server.shutdown().await;
    assert_no_personal_data(&log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_associations_are_logged_without_personal_data() {
    let files = make_files().await;
    let sink = Sink::default();
    let cfg = DicomScpConfig {
        allow: vec![AllowRule { ae: Some(AeTitle::new("ENDO1").unwrap()), ip: None }],
        ..config()
    };
    let server = start(cfg, sink.clone()).await;

    let out = storescu(server.port, "INTRUDER7", &[], &files.sc).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Calling AE Title Not Recognized"), "{}", text(&out));

    // Right caller, wrong called AE title.
    let port = server.port.to_string();
    let args = ["-aet", "ENDO1", "-aec", "NOTUS", "127.0.0.1", &port];
    let out = dcmtk("echoscu", &args).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Called AE Title Not Recognized"), "{}", text(&out));
    assert!(sink.take().is_empty());

    // The allowed caller still gets through.
    let out = storescu(server.port, "ENDO1", &[], &files.sc).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sink.take().len(), 1);

    server.shutdown().await;
    let log = log_text();
    let refused: Vec<&str> =
        log.lines().filter(|l| l.contains("dicom association refused")).collect();
    let intruder = refused.iter().find(|l| l.contains("INTRUDER7")).expect("refusal logged");
    assert!(intruder.contains("127.0.0.1") && intruder.contains("called_ae=FGW"), "{intruder}");
    assert!(refused.iter().any(|l| l.contains("NOTUS")), "{log}");
    assert_no_personal_data(&log);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_sink_gets_out_of_resources_then_recovers() {
    let files = make_files().await;
    let sink = Sink::default();
    let server = start(config(), sink.clone()).await;

    sink.down.store(true, Ordering::SeqCst);
    let out = storescu(server.port, "ENDO1", &[], &files.sc).await;
    let t = text(&out);
    // storescu -v names the status 0xA700 "Refused: OutOfResources" (and exits 0: the
    // association itself went fine).
    assert!(t.contains("Refused: OutOfResources"), "storescu reports the status:\n{t}");
    assert!(sink.take().is_empty());

    sink.down.store(false, Ordering::SeqCst);
    let out = storescu(server.port, "ENDO1", &[], &files.sc).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sink.take().len(), 1);
    server.shutdown().await;
    let log = log_text();
    assert!(log.lines().any(|l| l.contains("dicom C-STORE not stored") && l.contains("0xA700")));
    assert_no_personal_data(&log);
}

// ---- malformed data sets, sent with dicom-ul's client ------------------------------------

fn element(out: &mut Vec<u8>, group: u16, elem: u16, value: &[u8]) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn even(s: &str, pad: u8) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

fn store_rq(message_id: u16, instance: &str) -> Vec<u8> {
    let mut body = Vec::new();
    element(&mut body, 0, 0x0002, &even(SECONDARY_CAPTURE_IMAGE, 0));
    element(&mut body, 0, 0x0100, &1u16.to_le_bytes());
    element(&mut body, 0, 0x0110, &message_id.to_le_bytes());
    element(&mut body, 0, 0x0700, &0u16.to_le_bytes());
    element(&mut body, 0, 0x0800, &0u16.to_le_bytes());
    element(&mut body, 0, 0x1000, &even(instance, 0));
    let mut out = Vec::new();
    element(&mut out, 0, 0, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// An Explicit VR Little Endian element.
fn explicit(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

fn data_set(instance: &str) -> Vec<u8> {
    let mut d = Vec::new();
    explicit(&mut d, 0x0008, 0x0016, b"UI", &even(SECONDARY_CAPTURE_IMAGE, 0));
    explicit(&mut d, 0x0008, 0x0018, b"UI", &even(instance, 0));
    explicit(&mut d, 0x0010, 0x0010, b"PN", &even(PATIENT_NAME, b' '));
    explicit(&mut d, 0x0010, 0x0020, b"LO", &even(PATIENT_ID, b' '));
    d
}

type Client = dicom_ul::ClientAssociation<std::net::TcpStream>;

fn client(addr: &str) -> Result<Client, dicom_ul::association::Error> {
    ClientAssociationOptions::new()
        .calling_ae_title("ENDO1")
        .called_ae_title("FGW")
        .with_presentation_context(SECONDARY_CAPTURE_IMAGE, vec![EXPLICIT_VR_LE])
        .establish(addr)
}

/// Sends one C-STORE (command, then the data set in fragments of at most 32 KiB, at least
/// two) and returns the response status.
fn send_store(assoc: &mut Client, message_id: u16, instance: &str, data: &[u8]) -> u16 {
    let pc = assoc.presentation_contexts()[0].id;
    let pdv = |value_type, is_last, data: Vec<u8>| PDataValue {
        presentation_context_id: pc,
        value_type,
        is_last,
        data,
    };
    let command = store_rq(message_id, instance);
    assoc.send(&Pdu::PData { data: vec![pdv(PDataValueType::Command, true, command)] }).unwrap();
    let chunk = (data.len() / 2).clamp(1, 32 * 1024);
    let parts: Vec<&[u8]> = data.chunks(chunk).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let value = pdv(PDataValueType::Data, last, part.to_vec());
        assoc.send(&Pdu::PData { data: vec![value] }).unwrap();
    }
    let Pdu::PData { data } = assoc.receive().unwrap() else { panic!("expected a response") };
    let rsp = &data[0].data;
    // Find (0000,0900) Status in the Implicit VR LE response.
    let mut rest = rsp.as_slice();
    while rest.len() >= 8 {
        let elem = u16::from_le_bytes([rest[2], rest[3]]);
        let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        if elem == 0x0900 {
            return u16::from_le_bytes([rest[8], rest[9]]);
        }
        rest = &rest[8 + len..];
    }
    panic!("no status in response");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_data_sets_are_refused_per_object_and_the_scp_keeps_serving() {
    let files = make_files().await;
    let sink = Sink::default();
    let server = start(config(), sink.clone()).await;
    let addr = format!("127.0.0.1:{}", server.port);

    let statuses = tokio::task::spawn_blocking(move || {
        let mut assoc = client(&addr).unwrap();
        let good = data_set("1.2.392.999.1");
        let mut statuses = Vec::new();
        // Truncated in the middle of the last element.
        statuses.push(send_store(&mut assoc, 1, "1.2.392.999.1", &good[..good.len() - 3]));
        // A length running past the end of the data set.
        let mut bad_len = good.clone();
        let pn = bad_len.windows(2).position(|w| w == b"PN").unwrap();
        bad_len[pn + 2..pn + 4].copy_from_slice(&0x7000u16.to_le_bytes());
        statuses.push(send_store(&mut assoc, 2, "1.2.392.999.1", &bad_len));
        // A VR that does not exist, followed by a short element.
        let mut bad_vr = good.clone();
        explicit(&mut bad_vr, 0x0010, 0x0030, b"\x01\x02", b"\xff\xff");
        statuses.push(send_store(&mut assoc, 3, "1.2.392.999.1", &bad_vr));
        // Not the object the command announced.
        statuses.push(send_store(&mut assoc, 4, "1.2.392.999.2", &good));
        // And a good one on the same association.
        statuses.push(send_store(&mut assoc, 5, "1.2.392.999.1", &good));
        assoc.release().unwrap();
        statuses
    })
    .await
    .unwrap();

    assert_eq!(statuses[0], Status::CannotUnderstand.code(), "truncated");
    assert_eq!(statuses[1], Status::CannotUnderstand.code(), "bad length");
    assert_eq!(statuses[2], Status::CannotUnderstand.code(), "wrong VR");
    assert_eq!(statuses[3], Status::DatasetMismatch.code(), "other instance");
    assert_eq!(statuses[4], Status::Success.code(), "good one after the bad ones");
    let got = sink.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sop_instance_uid.as_str(), "1.2.392.999.1");
    assert_readable(&got[0]).await;
    let refusals = sink.take_refusals();
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    assert!(refusals.iter().all(|r| r.calling_ae.as_str() == "ENDO1"));

    // A new association is served as before.
    let out = storescu(server.port, "ENDO1", &[], &files.sc).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sink.take().len(), 1);
    server.shutdown().await;

    let log = log_text();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("dicom C-STORE refused")).collect();
    assert!(refused.len() >= 4, "{log}");
    assert!(refused.iter().all(|l| l.contains("127.0.0.1") && l.contains("reason=")), "{log}");
    assert_no_personal_data(&log);
    assert!(!log.contains("1.2.392.999"), "instance UIDs stay out of logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_over_the_size_limit_gets_out_of_resources() {
    let sink = Sink::default();
    let cfg = DicomScpConfig { max_object_bytes: 1024 * 1024, ..config() };
    let server = start(cfg, sink.clone()).await;
    let addr = format!("127.0.0.1:{}", server.port);
    let statuses = tokio::task::spawn_blocking(move || {
        let mut assoc = client(&addr).unwrap();
        let mut big = data_set("1.2.392.999.3");
        // (7FE0,0010) OB with a 4-byte length: 1.1 MB of pixels.
        big.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0]);
        big.extend_from_slice(&1_100_000u32.to_le_bytes());
        big.resize(big.len() + 1_100_000, 0x55);
        let over = send_store(&mut assoc, 1, "1.2.392.999.3", &big);
        let small = send_store(&mut assoc, 2, "1.2.392.999.3", &data_set("1.2.392.999.3"));
        assoc.release().unwrap();
        (over, small)
    })
    .await
    .unwrap();
    assert_eq!(statuses, (Status::OutOfResources.code(), Status::Success.code()));
    assert_eq!(sink.take().len(), 1);
    let refusals = sink.take_refusals();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].status, Status::OutOfResources);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn associations_beyond_the_limit_are_refused_for_now() {
    let server = start(config(), Sink::default()).await;
    let addr = format!("127.0.0.1:{}", server.port);
    tokio::task::spawn_blocking(move || {
        let held: Vec<Client> =
            (0..fgw_ingest::dicom_scp::MAX_ASSOCIATIONS).map(|_| client(&addr).unwrap()).collect();
        match client(&addr) {
            Err(dicom_ul::association::Error::Rejected { association_rj, .. }) => {
                assert_eq!(association_rj.result, AssociationRJResult::Transient);
            }
            other => panic!("expected a transient rejection, got {:?}", other.map(|_| ())),
        }
        // A slot frees when an association ends.
        for a in held {
            a.release().unwrap();
        }
        let mut again = None;
        for _ in 0..50 {
            if let Ok(a) = client(&addr) {
                again = Some(a);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        again.expect("served again after the others released").release().unwrap();
    })
    .await
    .unwrap();
    server.shutdown().await;
}

// ---- structure check before the parse (issue 10, finding 1) ------------------------------

/// An Explicit VR Little Endian header with a 32-bit length (SQ, OB, ...).
fn explicit_long(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], len: u32) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len.to_le_bytes());
}

/// An item or delimiter header.
fn item_header(out: &mut Vec<u8>, elem: u16, len: u32) {
    out.extend_from_slice(&0xFFFEu16.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
}

/// A Secondary Capture data set (Explicit VR LE) with `levels` nested sequences of undefined
/// length (Content Sequence in Content Sequence ...): 2,000 levels are about 72 KB.
fn deeply_nested_data_set(instance: &str, levels: usize) -> Vec<u8> {
    let mut d = data_set(instance);
    for _ in 0..levels {
        explicit_long(&mut d, 0x0040, 0xA730, b"SQ", u32::MAX);
        item_header(&mut d, 0xE000, u32::MAX);
    }
    explicit(&mut d, 0x0040, 0xA160, b"LO", b"DEEPEST ");
    for _ in 0..levels {
        item_header(&mut d, 0xE00D, 0);
        item_header(&mut d, 0xE0DD, 0);
    }
    d
}

/// The data set as a Part-10 file, for `storescu`.
fn part10_file(dir: &Path, name: &str, instance: &str, data: &[u8]) -> PathBuf {
    let mut meta = Vec::new();
    explicit_long(&mut meta, 0x0002, 0x0001, b"OB", 2);
    meta.extend_from_slice(&[0, 1]);
    explicit(&mut meta, 0x0002, 0x0002, b"UI", &even(SECONDARY_CAPTURE_IMAGE, 0));
    explicit(&mut meta, 0x0002, 0x0003, b"UI", &even(instance, 0));
    explicit(&mut meta, 0x0002, 0x0010, b"UI", &even(EXPLICIT_VR_LE, 0));
    explicit(&mut meta, 0x0002, 0x0012, b"UI", &even("1.2.392.999.9", 0));
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    explicit(&mut file, 0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes());
    file.extend_from_slice(&meta);
    file.extend_from_slice(data);
    let path = dir.join(name);
    std::fs::write(&path, file).unwrap();
    path
}

/// 2,000 nested sequences in one C-STORE, sent by DCMTK's `storescu`: before the structure
/// check, dicom-object's recursive read overflowed the stack and aborted the process (this
/// test binary, or the gateway daemon). Now the object is refused with 0xC000 and a log line
/// naming the reason code, the next object on the same association is stored, and a new
/// association is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_deeply_nested_object_is_refused_and_the_scp_keeps_serving() {
    let files = make_files().await;
    let dir = tempfile::tempdir().unwrap();
    let deep_data = deeply_nested_data_set("1.2.392.999.20", 2_000);
    assert!((70_000..80_000).contains(&deep_data.len()), "{}", deep_data.len());
    let deep = part10_file(dir.path(), "deep.dcm", "1.2.392.999.20", &deep_data);
    // DCMTK itself reads it (so the sender really sends it).
    must("dcmdump", &["-q", deep.to_str().unwrap()]).await;

    let sink = Sink::default();
    let server = start(config(), sink.clone()).await;
    // One association each: the nested object, then a normal one; as DCMTK proposes by
    // default (explicit VR), and converted to Implicit VR Little Endian (`-xi`).
    for extra in [&[][..], &["-xi"][..]] {
        let port = server.port.to_string();
        // `--no-halt`: storescu stops at the first failure status otherwise.
        let mut args = vec!["-v", "--no-halt", "-aet", "ENDO1", "-aec", "FGW"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["127.0.0.1", &port]);
        args.extend_from_slice(&[deep.to_str().unwrap(), files.sc.to_str().unwrap()]);
        let out = dcmtk("storescu", &args).await;
        let t = text(&out);
        assert!(t.contains("Error: CannotUnderstand") || t.contains("0xc000"), "{t}");
        let got = sink.take();
        assert_eq!(got.len(), 1, "the normal object is stored ({extra:?}):\n{t}");
        assert_eq!(got[0].sop_class_uid.as_str(), SECONDARY_CAPTURE_IMAGE);
        assert_readable(&got[0]).await;
        let refusals = sink.take_refusals();
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert_eq!(refusals[0].status, Status::CannotUnderstand);
        assert_eq!(refusals[0].reason, "nesting-too-deep");
    }

    // A new association is served as before.
    let out = storescu(server.port, "ENDO1", &[], &files.sc).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sink.take().len(), 1);
    server.shutdown().await;

    let log = log_text();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("dicom C-STORE refused") && l.contains("nesting-too-deep"))
        .collect();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(refused.iter().all(|l| l.contains("status=0xC000")), "{log}");
    assert_no_personal_data(&log);
    assert!(!log.contains("DEEPEST") && !log.contains("1.2.392.999.20"), "{log}");
}
