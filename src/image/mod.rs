//! Images: the root filesystems containers start from.
//!
//! An OCI image is a manifest naming a config and a stack of layers (tar archives of file
//! changes), all stored by digest. podlab keeps them in a content store, unpacks each layer
//! once, and stacks layers with overlayfs for each container. A local recipe also builds a
//! BusyBox root filesystem from the host's `busybox-static` (`images/busybox/build.sh`).

pub mod layer;
pub mod load;
pub mod pull;
pub mod recipe;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod save;
pub mod store;
pub mod unpack;

use crate::error::{Error, Result};

/// The host's architecture in OCI terms (`amd64`, `arm64`...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The full name an image is stored under: `busybox` → `docker.io/library/busybox:latest`,
/// `app@sha256:…` → `docker.io/library/app@sha256:…`.
pub fn normalize_name(name: &str) -> Result<String> {
    let r: reference::Reference = name.parse()?;
    Ok(match (&r.digest, &r.tag) {
        (Some(d), _) => format!("{}@{d}", r.name()),
        (None, Some(t)) => format!("{}:{t}", r.name()),
        (None, None) => format!("{}:latest", r.name()),
    })
}

/// The manifest digest of an image in the store, by name or by digest.
pub fn find(store: &store::Store, image: &str) -> Result<String> {
    if image.starts_with("sha256:") {
        store::check_digest(image)?;
        if store.has_blob(image) {
            return Ok(image.to_string());
        }
        return Err(Error::Missing(format!("no image with manifest {image} in the store")));
    }
    let name = normalize_name(image)?;
    store
        .resolve(&name)?
        .ok_or_else(|| Error::Missing(format!("image {name} is not in the store (podlab image pull {image})")))
}

/// The image config (JSON) of manifest `manifest`.
pub fn config_of(store: &store::Store, manifest: &str) -> Result<serde_json::Value> {
    let m: serde_json::Value = serde_json::from_slice(&store.read_blob(manifest)?)
        .map_err(|e| Error::invalid(format!("manifest {manifest}: {e}")))?;
    let digest =
        m["config"]["digest"].as_str().ok_or_else(|| Error::invalid(format!("manifest {manifest} has no config")))?;
    serde_json::from_slice(&store.read_blob(digest)?).map_err(|e| Error::invalid(format!("config {digest}: {e}")))
}
