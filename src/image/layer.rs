//! Making a layer: a directory packed as a gzip-compressed tar archive.
//!
//! An image layer's blob is named by the digest of its compressed bytes, while the image
//! config lists each layer's `diff_id`: the digest of the uncompressed tar. Packing a
//! directory computes both in one pass (tar → hash → gzip → hash → file).

use std::fs::File;
use std::path::Path;

use flate2::Compression as Level;
use flate2::write::GzEncoder;

use super::store::{HashingWriter, Store};
use crate::error::{Error, IoContext, Result};

/// Set every mtime under `dir` to the epoch (without following symlinks), so packing the
/// same files twice gives the same layer digest (what SOURCE_DATE_EPOCH does for builds).
pub fn clamp_mtimes(dir: &Path) -> Result<()> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let zero = TimeSpec::new(0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ctx("list", &d)?.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            utimensat(nix::fcntl::AT_FDCWD, &path, &zero, &zero, UtimensatFlags::NoFollowSymlink)
                .map_err(|e| Error::sys(format!("set the time of {}", path.display()), e))?;
        }
    }
    utimensat(nix::fcntl::AT_FDCWD, dir, &zero, &zero, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| Error::sys(format!("set the time of {}", dir.display()), e))
}

/// Pack `dir` into a gzip layer in the store. Returns (blob digest, blob size, diff_id).
pub fn pack_dir(store: &Store, dir: &Path) -> Result<(String, u64, String)> {
    let tmp = store.temp_path("layer.tar.gz");
    let result = (|| {
        let file = File::create(&tmp).ctx("create", &tmp)?;
        let compressed = HashingWriter::new(file);
        let gz = GzEncoder::new(compressed, Level::default());
        let uncompressed = HashingWriter::new(gz);
        let mut tar = tar::Builder::new(uncompressed);
        tar.follow_symlinks(false);
        tar.mode(tar::HeaderMode::Complete);
        tar.append_dir_all(".", dir).ctx("pack", dir)?;
        let uncompressed = tar.into_inner().ctx("finish tar", &tmp)?;
        let diff_id = uncompressed.digest();
        let compressed = uncompressed.into_inner().finish().ctx("finish gzip", &tmp)?;
        let (digest, size) = (compressed.digest(), compressed.written());
        compressed.into_inner().sync_all().ctx("sync", &tmp)?;
        store.adopt(&tmp, &digest)?;
        Ok((digest, size, diff_id))
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e: Error| e)
}
