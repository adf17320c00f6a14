//! The hub's upload checks (`fgw_hub::intake::exercise`, the entry points of the fuzz targets
//! `hub_manifest` and `hub_upload`) on many deterministic mutations of valid inputs: bit
//! flips, byte overwrites, truncations, inserted and deleted runs. Runs on stable in every
//! test run; the coverage-guided targets need nightly (`bash scripts/fuzz.sh`). A panic,
//! including a broken invariant of the entry points, fails the test.

use super::hub_support::{manifest, noise, F1};
use fgw_format::ids::Sha256Hex;
use fgw_hub::intake::exercise;
use fgw_hub::store::FsObjectStore;

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
    fn mutate(&mut self, src: &[u8]) -> Vec<u8> {
        let mut v = src.to_vec();
        for _ in 0..1 + self.below(4) {
            if v.is_empty() {
                break;
            }
            let at = self.below(v.len());
            match self.below(6) {
                0 => v[at] ^= 1 << self.below(8),
                1 => v[at] = self.next() as u8,
                2 => v.truncate(at),
                3 => {
                    let end = (at + self.below(64)).min(v.len());
                    v.drain(at..end);
                }
                4 => {
                    let b: Vec<u8> = (0..self.below(32)).map(|_| self.next() as u8).collect();
                    v.splice(at..at, b);
                }
                _ => {
                    // A number-like run set to an extreme value.
                    let end = (at + 10).min(v.len());
                    v.splice(at..end, b"4294967296".iter().copied());
                }
            }
        }
        v
    }
}

#[test]
fn hub_manifest_checks_survive_mutations() {
    let img = noise(100, 1);
    let mut m = manifest(F1, "e-000000000000000000000001", 7, &[("images/001.jpg", &img)]);
    let seeds = [m.to_bytes(), serde_json::to_vec_pretty(&m).unwrap(), {
        m.files.clear();
        m.to_bytes()
    }];
    for seed in &seeds {
        exercise::manifest(seed);
    }
    let mut r = Mut(0x5eed_0001);
    for i in 0..6000 {
        exercise::manifest(&r.mutate(&seeds[i % seeds.len()]));
    }
}

#[test]
fn hub_upload_path_survives_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsObjectStore::open(dir.path()).unwrap();
    let body = noise(3000, 2);
    let request = |control: u8, body: &[u8]| {
        let mut v = format!("/v1/objects/{}\n{}\n", Sha256Hex::of(body), body.len()).into_bytes();
        v.push(control);
        v.extend_from_slice(body);
        v
    };
    let seeds = [request(0, &body), request(2, &body), request(4 << 2, &noise(5000, 3))];
    for seed in &seeds {
        exercise::upload(seed, &store);
    }
    let mut r = Mut(0x5eed_0002);
    for i in 0..3000 {
        exercise::upload(&r.mutate(&seeds[i % seeds.len()]), &store);
    }
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}
