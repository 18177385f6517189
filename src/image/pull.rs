//! `podlab image pull`: registry → content store → unpacked layers.
//!
//! Pulling resolves the reference to one manifest (choosing this machine's platform from an
//! index), downloads the config and the layers it does not have yet (in parallel, each
//! verified by digest before it is kept), names the image, and unpacks every layer once so
//! containers can start from it at once.

use super::reference::Reference;
use super::registry::{Client, ClientOptions, TargetPlatform};
use super::store::Store;
use crate::error::{Error, Result};

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `linux/arm64/v8`; default: this machine.
    pub platform: Option<String>,
    /// Plain HTTP allowed for any registry.
    pub insecure: bool,
    /// Username and password (else ~/.docker/config.json).
    pub credentials: Option<(String, String)>,
    /// Progress bars on a terminal.
    pub progress: bool,
}

/// Parse `os/arch[/variant]`.
pub fn parse_platform(text: &str) -> Result<TargetPlatform> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(TargetPlatform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        }),
        _ => Err(Error::invalid(format!("invalid platform {text:?}: write OS/ARCH[/VARIANT], like linux/arm64/v8"))),
    }
}

/// Pull from a synchronous caller (the CLI): runs its own tokio runtime.
pub fn pull_blocking(store: &Store, image: &str, opts: &PullOptions) -> Result<String> {
    let reference: Reference = image.parse()?;
    let client = Client::new(ClientOptions {
        insecure: opts.insecure,
        platform: opts.platform.as_deref().map(parse_platform).transpose()?,
        credentials: opts.credentials.clone(),
        progress: opts.progress,
        ..ClientOptions::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start", "the pull runtime", e))?;
    let digest = runtime.block_on(pull(store, &reference, &client))?;
    // Unpack every layer now (each once, cached by digest), a few in parallel.
    super::rootfs::image_layers(store, &digest)?;
    Ok(digest)
}

/// Fetch what is missing of `reference` into the store and name it. Returns the manifest digest.
pub async fn pull(store: &Store, reference: &Reference, client: &Client) -> Result<String> {
    let resolved = client.resolve(reference).await?;
    if let Some((digest, raw)) = &resolved.index {
        store.put_blob(digest, Some(raw.len() as u64), raw.as_slice())?;
    }
    let manifest = resolved.manifest_digest.clone();
    let mut wanted = Vec::new();
    for d in std::iter::once(&resolved.config).chain(resolved.layers.iter()) {
        let digest = d.digest().to_string();
        if !store.has_blob(&digest)
            && !wanted.iter().any(|(w, _): &(oci_spec::image::Descriptor, _)| w.digest() == d.digest())
        {
            wanted.push((d.clone(), store.blob_path(&digest)?));
        }
    }
    client.fetch_blobs(reference, &wanted).await?;
    // The manifest goes in last: an image is only named once all its blobs are there.
    store.put_blob(&manifest, Some(resolved.raw_manifest.len() as u64), resolved.raw_manifest.as_slice())?;
    // Named as asked: by digest (name@sha256:...) or by tag (name:tag).
    match (&reference.digest, &reference.tag) {
        (Some(_), _) => store.tag(&format!("{}@{manifest}", reference.name()), &manifest)?,
        (None, tag) => store.tag(&format!("{}:{}", reference.name(), tag.as_deref().unwrap_or("latest")), &manifest)?,
    }
    Ok(manifest)
}
