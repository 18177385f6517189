//! Container root filesystems from image layers, stacked with overlayfs.
//!
//! Each layer is unpacked once into its own directory (cached by digest, shared by every
//! container of every image that uses it). A container's root is an overlay mount: the
//! layer directories as read-only `lowerdir`s (topmost first) and a private `upperdir`
//! that takes the container's writes, so the image itself is never changed.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{HashingReader, Store};
use super::unpack::{self, Compression, Whiteouts};
use crate::error::{Error, IoContext, Result};

/// The directories of one container's root filesystem; the overlay is mounted by the
/// container's init, inside its private mount namespace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Overlay {
    /// Unpacked layers, bottom first.
    pub layers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the merged root appears.
    pub merged: PathBuf,
}

impl Overlay {
    /// `mount -t overlay ...` the root at `merged`.
    pub fn mount(&self) -> Result<()> {
        let lower: Vec<PathBuf> = self.layers.iter().rev().cloned().collect();
        crate::primitives::mount::overlay(&lower, Some((&self.upper, &self.work)), &self.merged)
    }
}

/// The unpacked directory of layer `digest` (media type `media_type`), unpacking the blob
/// on first use into a temporary directory that is renamed into place when complete.
pub fn unpacked_layer(store: &Store, digest: &str, media_type: &str) -> Result<PathBuf> {
    let dest = store.layer_path(digest)?;
    if dest.is_dir() {
        return Ok(dest);
    }
    let blob = store.blob_path(digest)?;
    let tmp = store.temp_path("layer");
    fs::create_dir_all(&tmp).ctx("create directory", &tmp)?;
    let result = (|| {
        let file = fs::File::open(&blob).map_err(|e| Error::io("open layer blob (pull the image again)", &blob, e))?;
        let mut compression = Compression::from_media_type(media_type);
        if matches!(compression, Compression::None) {
            let mut head = [0u8; 4];
            let n =
                std::io::Read::read(&mut fs::File::open(&blob).ctx("open", &blob)?, &mut head).ctx("read", &blob)?;
            compression = Compression::sniff(&head[..n]);
        }
        // The blob is hashed as it is unpacked; a mismatch throws the unpacked result away.
        let mut reader = HashingReader::new(file);
        unpack::unpack(&mut reader, compression, &tmp, Whiteouts::Overlay, &unpack::Limits::default())
            .map_err(|e| Error::invalid(format!("layer {digest}: {e}")))?;
        reader.verify(digest, None)?;
        match fs::rename(&tmp, &dest) {
            Ok(()) => Ok(()),
            // Another process unpacked it at the same time: theirs is as good as ours.
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(Error::io("move unpacked layer into place", &dest, e)),
        }
    })();
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| dest)
}

/// The layers of image `manifest` unpacked (bottom first), ready to stack. Layers not yet
/// unpacked are unpacked in parallel, a few at a time.
pub fn image_layers(store: &Store, manifest: &str) -> Result<Vec<PathBuf>> {
    let raw = store.read_blob(manifest)?;
    let m: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| Error::invalid(format!("manifest {manifest}: {e}")))?;
    let layers = m["layers"].as_array().ok_or_else(|| Error::invalid(format!("manifest {manifest} has no layers")))?;
    let wanted: Vec<(String, String)> = layers
        .iter()
        .map(|l| {
            let digest = l["digest"].as_str().ok_or_else(|| Error::invalid("layer without digest"))?;
            Ok((digest.to_string(), l["mediaType"].as_str().unwrap_or("").to_string()))
        })
        .collect::<Result<_>>()?;
    let mut dirs = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(4) {
        let done: Vec<Result<PathBuf>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|(d, mt)| s.spawn(move || unpacked_layer(store, d, mt))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::invalid("a layer unpacking thread panicked"))))
                .collect()
        });
        for d in done {
            dirs.push(d?);
        }
    }
    Ok(dirs)
}

/// Make the upper, work and merged directories for a container under `dir`.
pub fn prepare(layers: Vec<PathBuf>, dir: &Path) -> Result<Overlay> {
    let o = Overlay { layers, upper: dir.join("upper"), work: dir.join("work"), merged: dir.join("merged") };
    for d in [&o.upper, &o.work, &o.merged] {
        fs::create_dir_all(d).ctx("create directory", d)?;
    }
    Ok(o)
}
