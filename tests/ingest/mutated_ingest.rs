//! The ingest parsers of untrusted bytes on many deterministic mutations of valid inputs, as
//! tests/gate/mutated_inputs.rs does for the gate: the export table (encoding detection,
//! decoding, RFC 4180, both built-in profiles), HL7 messages (charset, segments, ORU mapping,
//! ACK) and MLLP deframing. The coverage-guided targets `export_csv`, `hl7_message` and
//! `mllp_frame` in fuzz/ take the same entry points on nightly; this runs on stable in every
//! test run. Each call must return: a panic fails the test.

use fgw_ingest::export::{parse_batch_bytes, Profile};
use fgw_ingest::hl7::{deframe, parse_message, Deframed, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use fgw_synth::{generate, SynthEncoding, SynthOptions};

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
    /// Bit flips, byte overwrites, truncations, deleted and inserted runs, and the bytes that
    /// matter to these formats (quotes, separators, line ends, MLLP blocks, CP932 lead bytes).
    fn mutate(&mut self, src: &[u8]) -> Vec<u8> {
        const SPECIAL: &[u8] = b"\",\r\n|^~\\&\x0b\x1c\x81\xef\xbb\xbf\xff";
        let mut v = src.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(v.len());
            match self.below(6) {
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
                _ => v[at] = SPECIAL[self.below(SPECIAL.len())],
            }
            if v.is_empty() {
                break;
            }
        }
        v
    }
}

fn synth_table(encoding: SynthEncoding) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions { exams: 6, images_per_exam: 0, encoding, ..Default::default() };
    let truth = generate(dir.path(), &opts).unwrap();
    std::fs::read(dir.path().join(&truth.batch).join("exams.csv")).unwrap()
}

#[test]
fn export_table_survives_mutations() {
    let profiles = [Profile::reference(), Profile::builtin("vendor-b").unwrap()];
    let mut m = Mut(0x9E3779B97F4A7C15);
    let (mut read, mut refused) = (0, 0);
    for enc in [SynthEncoding::Cp932, SynthEncoding::Utf8Bom] {
        let good = synth_table(enc);
        let rows = parse_batch_bytes("B", &good, &profiles[0]).unwrap();
        assert_eq!((rows.exams.len(), rows.errors.len()), (6, 0));
        for i in 0..2000 {
            let bad = m.mutate(&good);
            match parse_batch_bytes("B", &bad, &profiles[i % 2]) {
                Ok(rows) => {
                    read += 1;
                    for e in &rows.errors {
                        assert!(e.to_string().starts_with("B/"), "{e}");
                    }
                }
                Err(e) => {
                    refused += 1;
                    assert!(e.to_string().starts_with("B/"), "{e}");
                }
            }
        }
    }
    assert!(read > 100 && refused > 100, "mutations too gentle: {read} read, {refused} refused");
}

fn hl7_seeds() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hl7");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5);
    seeds
}

#[test]
fn hl7_messages_survive_mutations() {
    let mut m = Mut(0xD1B54A32D192ED03);
    let mut parsed = 0;
    for good in hl7_seeds() {
        let (ack, _) = parse_message(&good);
        assert!(!ack.is_empty());
        for _ in 0..1500 {
            let (ack, reports) = parse_message(&m.mutate(&good));
            assert!(!ack.is_empty(), "every message gets a reply");
            parsed += reports.is_ok() as usize;
        }
    }
    assert!(parsed > 0, "no mutant parsed at all");
}

#[test]
fn mllp_deframing_survives_mutations() {
    let mut m = Mut(0xA0761D6478BD642F);
    for good in hl7_seeds() {
        let mut framed = vec![0x0B];
        framed.extend_from_slice(&good);
        framed.extend_from_slice(&[0x1C, 0x0D]);
        let (frames, closed) = deframe([framed.as_slice()]);
        assert!(closed.is_none() && frames.len() == 1);
        for _ in 0..1500 {
            let bad = m.mutate(&framed);
            // Split into reads at random points: framing must not depend on them.
            let mut cuts: Vec<usize> = (0..m.below(4)).map(|_| m.below(bad.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = vec![];
            let mut from = 0;
            for c in cuts.into_iter().chain([bad.len()]) {
                chunks.push(&bad[from..c]);
                from = c;
            }
            let (frames, _) = deframe(chunks);
            let (whole, _) = deframe([bad.as_slice()]);
            assert_eq!(frames, whole, "framing depends on how the bytes were read");
            for f in frames {
                match f {
                    Deframed::Message(b) => {
                        assert!(b.len() <= MAX_MESSAGE_BYTES);
                        let _ = parse_message(&b);
                    }
                    Deframed::Oversize { len, .. } => assert!(len <= MAX_FRAME_BYTES),
                }
            }
        }
    }
}
