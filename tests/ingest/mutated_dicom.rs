//! The DICOM receiver's parsers of untrusted bytes on many deterministic mutations of valid
//! inputs, as tests/gate/mutated_inputs.rs does for the gate: the structure check
//! (`fgw_format::dicom_structure`), the received data set checks
//! (`fgw_ingest::dicom_scp::check_received`), the C-FIND identifier read
//! (`fgw_ingest::dicom_pull::read_find_match`), and the running SCP fed mutated byte streams
//! (association, C-STORE command, data set, release) over loopback. The coverage-guided
//! targets `dicom_structure` and `dicom_pdu` in fuzz/ take the same entry points on nightly;
//! this runs on stable in every test run. Each call must return, each connection must end,
//! and a panic fails the test (in the SCP's threads too).

use fgw_format::dicom_structure::{self, Encoding, Limits};
use fgw_ingest::dicom_scp::{
    check_received, DicomScp, DicomScpConfig, DicomSink, ReceivedObject, ScpMode, SinkError, Uid,
};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

const IMPLICIT: &str = "1.2.840.10008.1.2";
const EXPLICIT: &str = "1.2.840.10008.1.2.1";
const BIG: &str = "1.2.840.10008.1.2.2";
const JPEG: &str = "1.2.840.10008.1.2.4.50";
const SC: &str = "1.2.840.10008.5.1.4.1.1.7";
const INSTANCE: &str = "1.2.392.999.4242";

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Mut(u64);
impl Mut {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Bit flips, byte overwrites, truncations, deleted and inserted runs, lengths set to
    /// extremes, and the bytes that matter to DICOM (item and delimiter tags, SQ, undefined
    /// length).
    fn mutate(&mut self, src: &[u8]) -> Vec<u8> {
        const SPECIAL: [&[u8]; 5] = [
            b"\xFE\xFF\x00\xE0\xFF\xFF\xFF\xFF",
            b"\xFE\xFF\x0D\xE0\x00\x00\x00\x00",
            b"\xFE\xFF\xDD\xE0\x00\x00\x00\x00",
            b"\x40\x00\x30\xA7SQ\x00\x00\xFF\xFF\xFF\xFF",
            b"\xE0\x7F\x10\x00OB\x00\x00\xFF\xFF\xFF\xFF",
        ];
        let mut v = src.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(v.len());
            match self.below(7) {
                0 => v[at] ^= 1 << self.below(8),
                1 => v[at] = self.next() as u8,
                2 => v.truncate(at),
                3 => {
                    let n = self.below(64);
                    let end = (at + n).min(v.len());
                    v.drain(at..end);
                }
                4 => {
                    let b: Vec<u8> = (0..self.below(32)).map(|_| self.next() as u8).collect();
                    v.splice(at..at, b);
                }
                5 => {
                    let s = SPECIAL[self.below(SPECIAL.len())];
                    v.splice(at..at, s.iter().copied());
                }
                _ => {
                    if at + 4 <= v.len() {
                        v[at..at + 4].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
                    }
                }
            }
            if v.is_empty() {
                break;
            }
        }
        v
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (dcmtk) must be installed: {e}"));
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The data set of a Part-10 file (what arrives in P-DATA): after the file meta group.
fn data_set_of(file: &[u8]) -> Vec<u8> {
    let meta = dicom_structure::file_meta(file).unwrap();
    file[meta.data_start..].to_vec()
}

/// Data sets as DCMTK writes them (a JPEG frame wrapped, then decompressed, then implicit
/// VR), each with the instance UID the canned command announces; with their transfer syntax.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    image::RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8 * 7, y as u8 * 9, 90]))
        .save(p("f.jpg"))
        .unwrap();
    let keys = ["-k", "PatientName=MUTANT^MARKER", "-k", "PatientID=99887766"];
    let mut args = vec!["-i", "JPEG"];
    args.extend_from_slice(&keys);
    let (jpg, jpeg, native, implicit) = (p("f.jpg"), p("jpeg.dcm"), p("native.dcm"), p("imp.dcm"));
    args.extend_from_slice(&[&jpg, &jpeg]);
    run("img2dcm", &args);
    run("dcmodify", &["-nb", "-m", &format!("(0008,0018)={INSTANCE}"), &jpeg]);
    run("dcmdjpeg", &[&jpeg, &native]);
    run("dcmconv", &["+ti", &native, &implicit]);
    let read = |f: &str| data_set_of(&std::fs::read(f).unwrap());
    vec![(JPEG, read(&jpeg)), (EXPLICIT, read(&native)), (IMPLICIT, read(&implicit))]
}

fn uid(s: &str) -> Uid {
    Uid::new(s).unwrap()
}

/// Found by the `dicom_structure` fuzz target (2026-12-05): an implicit-VR data set with a
/// (0000,0000) UL of 25 bytes. dicom-rs read six values, went on one byte out of step, and a
/// later "length" asked for 2.2 GB (libFuzzer out-of-memory). The structure check now
/// refuses a binary value that is not a whole number of values, before the parse.
#[test]
fn a_partial_binary_value_is_refused_before_the_parser_reads_out_of_step() {
    let input = include_bytes!("../data/fuzz-regressions/dicom_structure-oom-partial-ul.bin");
    let (sel, body) = input.split_first().unwrap();
    assert_eq!(*sel % 4, 0, "implicit VR little endian");
    let implicit = "1.2.840.10008.1.2";
    assert_eq!(
        check_received(&uid(implicit), body, &uid(SC), &uid(INSTANCE)),
        Err("partial-value")
    );
    assert!(fgw_ingest::dicom_pull::read_find_match(body, implicit).is_err());
    // The second one: implicit-VR Pixel Data of odd length (read as OW, one byte left over).
    let input = include_bytes!("../data/fuzz-regressions/dicom_structure-oom-odd-pixel-data.bin");
    let (_, body) = input.split_first().unwrap();
    assert_eq!(
        check_received(&uid(implicit), body, &uid(SC), &uid(INSTANCE)),
        Err("partial-value")
    );
    // The same defect in explicit VR: a UL of 6 bytes.
    let mut explicit = Vec::new();
    explicit.extend_from_slice(&[0x08, 0x00, 0x16, 0x00, b'U', b'I', 0, 0]);
    explicit.extend_from_slice(&[0x28, 0x00, 0x10, 0x00, b'U', b'L', 6, 0, 1, 2, 3, 4, 5, 6]);
    let scanned = dicom_structure::scan_data_set(
        &explicit,
        0,
        Encoding::ExplicitVrLittleEndian,
        Limits::OBJECT,
        &|_| false,
    );
    assert_eq!(scanned.unwrap_err().defect.code(), "partial-value");
}

#[test]
fn received_data_sets_and_find_identifiers_survive_mutations() {
    let seeds = seeds();
    for (ts, good) in &seeds {
        check_received(&uid(ts), good, &uid(SC), &uid(INSTANCE)).unwrap();
    }
    assert_eq!(fgw_ingest::dicom_pull::read_find_match(&seeds[1].1, EXPLICIT), Ok(()));
    let mut m = Mut(0x5DEE_CE66_2545_F491);
    let (mut refused, mut structure) = (0, 0);
    for i in 0..4000 {
        let (ts, good) = &seeds[i % seeds.len()];
        let bad = m.mutate(good);
        for enc in [
            Encoding::ImplicitVrLittleEndian,
            Encoding::ExplicitVrLittleEndian,
            Encoding::ExplicitVrBigEndian,
        ] {
            let _ = dicom_structure::scan_data_set(&bad, 0, enc, Limits::OBJECT, &|_| false);
        }
        let scanned = dicom_structure::scan_data_set(
            &bad,
            0,
            Encoding::of_transfer_syntax(ts).unwrap(),
            Limits::OBJECT,
            &|_| false,
        );
        match check_received(&uid(ts), &bad, &uid(SC), &uid(INSTANCE)) {
            Ok(()) => {}
            Err(reason) => {
                refused += 1;
                structure += usize::from(scanned.is_err());
                assert!(!reason.contains("MUTANT") && !reason.contains("99887766"), "{reason}");
            }
        }
        let _ = check_received(&uid(BIG), &bad, &uid(SC), &uid(INSTANCE));
        if *ts != JPEG {
            let _ = fgw_ingest::dicom_pull::read_find_match(&bad, ts);
        }
    }
    assert!(refused > 1000, "mutations too gentle: only {refused} refused");
    assert!(structure > 500, "the structure check refused only {structure}");
}

// ---- the running SCP ---------------------------------------------------------------------

/// Name of the SCP runtime's threads: a panic on one of them is counted.
const SCP_THREADS: &str = "fgw-mutated-dicom-scp";
static SCP_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_scp_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(SCP_THREADS) {
                SCP_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl DicomSink for Counting {
    fn accept(&self, _object: ReceivedObject) -> Result<(), SinkError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn item(out: &mut Vec<u8>, ty: u8, body: &[u8]) {
    out.extend_from_slice(&[ty, 0]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

fn pdu(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![ty, 0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn ae(s: &str) -> [u8; 16] {
    let mut a = [b' '; 16];
    a[..s.len()].copy_from_slice(s.as_bytes());
    a
}

/// The bytes a sender writes for one C-STORE of `data` (explicit VR LE) on a fresh
/// association: A-ASSOCIATE-RQ, the command, the data set in P-DATA, A-RELEASE-RQ.
fn store_stream(data: &[u8]) -> Vec<u8> {
    let mut rq = vec![0, 1, 0, 0];
    rq.extend_from_slice(&ae("FGW"));
    rq.extend_from_slice(&ae("ENDO1"));
    rq.extend_from_slice(&[0; 32]);
    item(&mut rq, 0x10, b"1.2.840.10008.3.1.1.1");
    let mut pc = vec![1, 0, 0, 0];
    item(&mut pc, 0x30, SC.as_bytes());
    item(&mut pc, 0x40, EXPLICIT.as_bytes());
    item(&mut rq, 0x20, &pc);
    let mut user = Vec::new();
    item(&mut user, 0x51, &65_536u32.to_be_bytes());
    item(&mut user, 0x52, b"1.2.3.4");
    item(&mut rq, 0x50, &user);
    let mut s = pdu(0x01, &rq);

    let el = |out: &mut Vec<u8>, e: u16, v: &[u8]| {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    };
    let even = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(0);
        }
        v
    };
    let mut body = Vec::new();
    el(&mut body, 0x0002, &even(SC));
    el(&mut body, 0x0100, &1u16.to_le_bytes());
    el(&mut body, 0x0110, &1u16.to_le_bytes());
    el(&mut body, 0x0700, &0u16.to_le_bytes());
    el(&mut body, 0x0800, &0u16.to_le_bytes());
    el(&mut body, 0x1000, &even(INSTANCE));
    let mut cmd = Vec::new();
    el(&mut cmd, 0x0000, &(body.len() as u32).to_le_bytes());
    cmd.extend_from_slice(&body);
    let p_data = |command: bool, last: bool, d: &[u8]| {
        let mut pdv = ((d.len() + 2) as u32).to_be_bytes().to_vec();
        pdv.push(1);
        pdv.push(u8::from(command) | (u8::from(last) << 1));
        pdv.extend_from_slice(d);
        pdu(0x04, &pdv)
    };
    s.extend(p_data(true, true, &cmd));
    let chunks: Vec<&[u8]> = data.chunks(16 * 1024).collect();
    for (i, c) in chunks.iter().enumerate() {
        s.extend(p_data(false, i + 1 == chunks.len(), c));
    }
    s.extend(pdu(0x05, &[0, 0, 0, 0]));
    s
}

/// Writes `stream` on a new connection and reads until the SCP closes it; returns what the
/// SCP sent. Panics if the SCP does not end the connection.
fn exchange(port: u16, stream: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The SCP may close early (a refused association, a malformed PDU).
    let _ = conn.write_all(stream);
    let _ = conn.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    match conn.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the scp did not end the connection: {e}"),
    }
    got
}

#[test]
fn the_scp_survives_mutated_byte_streams() {
    count_scp_panics();
    let seeds = seeds();
    let good = store_stream(&seeds[1].1);
    let nested = {
        let mut d = seeds[1].1.clone();
        for _ in 0..2_000 {
            d.extend_from_slice(b"\x40\x00\x30\xA7SQ\x00\x00\xFF\xFF\xFF\xFF");
            d.extend_from_slice(b"\xFE\xFF\x00\xE0\xFF\xFF\xFF\xFF");
        }
        for _ in 0..2_000 {
            d.extend_from_slice(b"\xFE\xFF\x0D\xE0\x00\x00\x00\x00");
            d.extend_from_slice(b"\xFE\xFF\xDD\xE0\x00\x00\x00\x00");
        }
        store_stream(&d)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SCP_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let sink = Counting::default();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let cfg = DicomScpConfig {
        mode: ScpMode::Enabled,
        allowed_peers: vec!["127.0.0.1".parse().unwrap()],
        ..DicomScpConfig::default()
    };
    let (port, server) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scp = DicomScp::new(listener, cfg);
        let port = scp.local_addr().unwrap().port();
        (port, tokio::spawn(scp.serve(sink.clone(), shutdown)))
    });

    // The canned stream is what a sender writes: the object is stored.
    exchange(port, &good);
    assert_eq!(sink.0.load(Ordering::SeqCst), 1, "the unmutated stream is stored");
    let mut m = Mut(0xA076_1D64_78BD_642F);
    for i in 0..400 {
        let bad = if i % 4 == 0 { m.mutate(&nested) } else { m.mutate(&good) };
        exchange(port, &bad);
    }
    exchange(port, &nested);
    // Still serving, and nothing panicked on its threads.
    let before = sink.0.load(Ordering::SeqCst);
    exchange(port, &good);
    assert_eq!(sink.0.load(Ordering::SeqCst), before + 1, "served after the mutants");
    assert_eq!(SCP_PANICS.load(Ordering::SeqCst), 0, "the scp panicked");
    stop.send(true).unwrap();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await })
        .expect("scp stops")
        .unwrap();
}
