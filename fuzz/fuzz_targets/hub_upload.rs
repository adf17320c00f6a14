//! The hub's object PUT without a network (`fgw_hub::intake`): request path and
//! Content-Length checks, then the streaming body (chunked, size limit, hash) into the real
//! filesystem object store. Whatever is stored is exactly the body; a refused body leaves no
//! object and no temporary file.
#![no_main]

use fgw_hub::store::FsObjectStore;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

static ROOT: std::sync::LazyLock<PathBuf> = std::sync::LazyLock::new(|| {
    // tmpfs when there is one: the store fsyncs every object, which dominates on a disk.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let root = base.join(format!("fgw-fuzz-hub-upload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    root
});
static STORE: std::sync::LazyLock<FsObjectStore> =
    std::sync::LazyLock::new(|| FsObjectStore::open(&ROOT).expect("object store in temp dir"));

fuzz_target!(|data: &[u8]| {
    fgw_hub::intake::exercise::upload(data, &*STORE);
    let tmp = std::fs::read_dir(ROOT.join("tmp")).expect("tmp dir").count();
    assert_eq!(tmp, 0, "a temporary file was left behind");
});
