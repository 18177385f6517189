//! Offline images: `podlab image load` for OCI layouts and image archives.
//!
//! An OCI image layout is a directory with `oci-layout`, `index.json` (the entry points,
//! named by the `org.opencontainers.image.ref.name` annotation) and `blobs/sha256/<hex>`.
//! `skopeo copy ... oci-archive:` and `podman save --format oci-archive` write the same
//! directory as a tar file; `docker save` writes an older layout with a `manifest.json`
//! listing each image's config file, tags and layer tars. Everything is verified by digest
//! as it is copied into the store.

use std::fs::{self, File};
use std::path::Path;

use serde::Deserialize;

use super::store::{Store, check_digest};
use crate::error::{Error, IoContext, Result};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One image loaded: its manifest digest and the names given to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub manifest: String,
    pub names: Vec<String>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

/// Load an OCI layout directory, an OCI archive or a docker archive. `tag` names the
/// (single) image; without it the names in the layout or archive are used.
pub fn load(store: &Store, path: &Path, tag: Option<&str>) -> Result<Vec<Loaded>> {
    // A bad layout or archive leaves nothing behind: blobs it added are taken back.
    let tx = store.journaled();
    let result = load_any(&tx, path, tag);
    if result.is_err() {
        tx.discard_added();
    }
    result
}

fn load_any(store: &Store, path: &Path, tag: Option<&str>) -> Result<Vec<Loaded>> {
    if path.is_dir() {
        return load_layout(store, path, tag);
    }
    // An archive: unpack it safely into a temporary directory of the store, then load that.
    let tmp = store.temp_path("archive");
    fs::create_dir_all(&tmp).ctx("create directory", &tmp)?;
    let result = (|| {
        let file = File::open(path).ctx("open", path)?;
        super::unpack::unpack(
            file,
            super::unpack::Compression::None,
            &tmp,
            super::unpack::Whiteouts::Apply,
            &Default::default(),
        )
        .map_err(|e| Error::invalid(format!("{} is not a readable image archive: {e}", path.display())))?;
        if tmp.join("oci-layout").is_file() {
            load_layout(store, &tmp, tag)
        } else if tmp.join("manifest.json").is_file() {
            load_docker_archive(store, &tmp, tag)
        } else {
            Err(Error::invalid(format!(
                "{}: neither an OCI archive (no oci-layout) nor a docker archive (no manifest.json)",
                path.display()
            )))
        }
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn copy_blob(store: &Store, layout: &Path, digest: &str, size: Option<u64>) -> Result<()> {
    let hex = check_digest(digest)?;
    let src = layout.join("blobs/sha256").join(hex);
    let file = File::open(&src).map_err(|e| Error::io("open blob (the layout is incomplete)", &src, e))?;
    store.put_blob(digest, size, file)?;
    Ok(())
}

fn load_layout(store: &Store, layout: &Path, tag: Option<&str>) -> Result<Vec<Loaded>> {
    let index_path = layout.join("index.json");
    let index: Index = serde_json::from_slice(&fs::read(&index_path).ctx("read", &index_path)?)
        .map_err(|e| Error::invalid(format!("{}: {e}", index_path.display())))?;
    let mut loaded = Vec::new();
    for d in &index.manifests {
        let mut manifest = d.digest.clone();
        copy_blob(store, layout, &d.digest, Some(d.size))?;
        if d.media_type == OCI_INDEX || d.media_type == DOCKER_LIST {
            manifest = pick_from_index(store, layout, &d.digest)?;
        }
        copy_image(store, layout, &manifest)?;
        let name = tag.map(str::to_string).or_else(|| d.annotations.get(REF_NAME).cloned());
        loaded.push(Loaded { manifest, names: name.into_iter().collect() });
    }
    if tag.is_some() && loaded.len() != 1 {
        return Err(Error::invalid(format!("--tag names one image, but the layout holds {}", loaded.len())));
    }
    name_all(store, &loaded)?;
    Ok(loaded)
}

/// Choose this machine's manifest in a nested index (the layout of `skopeo copy --all`).
fn pick_from_index(store: &Store, layout: &Path, index_digest: &str) -> Result<String> {
    let index: Index = serde_json::from_slice(&store.read_blob(index_digest)?)
        .map_err(|e| Error::invalid(format!("index {index_digest}: {e}")))?;
    let arch = super::host_arch();
    let chosen = index
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p["os"] == "linux" && p["architecture"] == arch))
        .or_else(|| index.manifests.first())
        .ok_or_else(|| Error::invalid(format!("index {index_digest} lists no manifests")))?;
    copy_blob(store, layout, &chosen.digest, Some(chosen.size))?;
    Ok(chosen.digest.clone())
}

fn copy_image(store: &Store, layout: &Path, manifest: &str) -> Result<()> {
    let raw = store.read_blob(manifest)?;
    let m: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| Error::invalid(format!("manifest {manifest}: {e}")))?;
    let descriptors =
        m.get("config").into_iter().chain(m.get("layers").and_then(|l| l.as_array()).into_iter().flatten());
    for d in descriptors {
        let digest = d["digest"]
            .as_str()
            .ok_or_else(|| Error::invalid(format!("manifest {manifest}: descriptor without digest")))?;
        copy_blob(store, layout, digest, d["size"].as_u64())?;
    }
    Ok(())
}

fn name_all(store: &Store, loaded: &[Loaded]) -> Result<()> {
    for l in loaded {
        for name in &l.names {
            let full = super::normalize_name(name)?;
            store.tag(&full, &l.manifest)?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A `docker save` archive: make an OCI manifest for each image from its config and layers.
fn load_docker_archive(store: &Store, dir: &Path, tag: Option<&str>) -> Result<Vec<Loaded>> {
    let mpath = dir.join("manifest.json");
    let entries: Vec<DockerEntry> = serde_json::from_slice(&fs::read(&mpath).ctx("read", &mpath)?)
        .map_err(|e| Error::invalid(format!("{}: {e}", mpath.display())))?;
    if tag.is_some() && entries.len() != 1 {
        return Err(Error::invalid(format!("--tag names one image, but the archive holds {}", entries.len())));
    }
    let mut loaded = Vec::new();
    for e in entries {
        let config = put_file(store, dir, &e.config)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let (digest, size) = put_file(store, dir, l)?;
            // docker save writes uncompressed layer tars (newer versions sniff as OCI blobs).
            layers.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1 },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::invalid(e.to_string()))?;
        let digest = store.put_bytes(&bytes)?;
        let names = match tag {
            Some(t) => vec![t.to_string()],
            None => e.repo_tags.unwrap_or_default(),
        };
        loaded.push(Loaded { manifest: digest, names });
    }
    name_all(store, &loaded)?;
    Ok(loaded)
}

/// Put a file of an unpacked archive into the store; the path must stay inside `dir`.
fn put_file(store: &Store, dir: &Path, rel: &str) -> Result<(String, u64)> {
    if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
        return Err(Error::invalid(format!("archive names a file outside itself: {rel:?}")));
    }
    let path = dir.join(rel);
    let meta = fs::symlink_metadata(&path).ctx("stat", &path)?;
    if !meta.is_file() {
        return Err(Error::invalid(format!("archive entry {rel:?} is not a regular file")));
    }
    let mut bytes_hasher = super::store::HashingWriter::new(std::io::sink());
    std::io::copy(&mut File::open(&path).ctx("open", &path)?, &mut bytes_hasher).ctx("read", &path)?;
    let digest = bytes_hasher.digest();
    store.put_blob(&digest, Some(meta.len()), File::open(&path).ctx("open", &path)?)?;
    Ok((digest, meta.len()))
}
