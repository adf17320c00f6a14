//! (in progress)
/// fsync a directory so a rename inside it survives power loss.
pub fn fsync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
