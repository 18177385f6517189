//! `podlab image save`: write an image as an OCI image layout directory.
//!
//! The layout is the image at rest, readable with `ls`, `jq` and `tar`: an `oci-layout`
//! marker, an `index.json` pointing at the manifest (named by the
//! `org.opencontainers.image.ref.name` annotation), and every blob under
//! `blobs/sha256/<hex>`. skopeo, umoci and podman read it (`oci:DIR:TAG`).

use std::fs;
use std::path::Path;

use super::store::Store;
use crate::error::{Error, IoContext, Result};

/// Save image `manifest` into `dir` (created; must be empty or absent) under `tag`.
pub fn save(store: &Store, manifest: &str, tag: &str, dir: &Path) -> Result<()> {
    if dir.exists() && fs::read_dir(dir).ctx("list", dir)?.next().is_some() {
        return Err(Error::invalid(format!("{} is not empty: save into a new directory", dir.display())));
    }
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).ctx("create directory", &blobs)?;
    let (digests, _) = store.manifest_blobs(manifest)?;
    for digest in &digests {
        let src = store.blob_path(digest)?;
        let dst = blobs.join(super::store::check_digest(digest)?);
        fs::copy(&src, &dst).map_err(|e| Error::io("copy blob", &src, e))?;
    }
    let size = fs::metadata(store.blob_path(manifest)?).ctx("stat", store.blob_path(manifest)?)?.len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest,
            "size": size,
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    let text = serde_json::to_string_pretty(&index).map_err(|e| Error::invalid(e.to_string()))?;
    fs::write(dir.join("index.json"), text).ctx("write", dir.join("index.json"))?;
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).ctx("write", dir.join("oci-layout"))
}
