//! The content store: images kept on disk by the digest of their content.
//!
//! An OCI image is a graph of blobs named by their sha256 digest: a manifest lists a config
//! blob and layer blobs. Storing blobs by digest (`blobs/sha256/<hex>`) makes sharing free
//! (a layer used by ten images is stored once) and corruption visible (re-hash and compare).
//! Tags (`busybox:latest`) are just names pointing at a manifest digest in `refs.json`.
//! Every write goes to a temporary file first and is renamed into place when complete.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext, Result};

/// Manifests and configs are small; anything bigger read into memory is refused.
const MAX_SMALL_BLOB: u64 = 4 << 20;

/// A `sha256:<64 hex>` digest, checked for form so it can never name a path outside the store.
pub fn check_digest(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .ok_or_else(|| {
            Error::invalid(format!("invalid digest {digest:?}: expected sha256: and 64 lowercase hex digits"))
        })?;
    Ok(hex)
}

/// The sha256 digest of some bytes, as `sha256:<hex>`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One image as `podlab image ls` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageInfo {
    pub names: Vec<String>,
    pub manifest: String,
    /// Sum of the config and layer sizes (compressed, as stored).
    pub size: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Refs {
    /// name (`docker.io/library/busybox:latest`) → manifest digest.
    refs: BTreeMap<String, String>,
}

/// The store under `LIB/images`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// When set, the digests of blobs this handle added (see [`Store::journaled`]).
    added: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
}

/// A writer that hashes and counts what goes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

/// A reader that hashes and counts what is read through it, to verify a blob in the same
/// pass that uses it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), read: 0 }
    }

    /// Read what is left (a tar reader may stop before the end padding), then check the
    /// digest and size of everything read against `digest` and `size`.
    pub fn verify(mut self, digest: &str, size: Option<u64>) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| Error::io("read", digest, e))?;
        let got = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if got != digest || size.is_some_and(|s| s != self.read) {
            return Err(Error::invalid(format!(
                "blob {digest} in the store is corrupted (it hashes to {got}, {} bytes): not used; remove the image and pull it again",
                self.read
            )));
        }
        Ok(())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), written: 0 }
    }

    /// The digest of everything written so far.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }

    /// How many bytes went through.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Store {
    /// Open (creating the directories of) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for sub in ["blobs/sha256", "layers/sha256", "tmp"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).ctx("create directory", &d)?;
        }
        Ok(Store { root, added: None })
    }

    /// A handle on the same store that remembers the blobs it adds, so an operation that
    /// fails half-way (a bad archive) can take them back with [`Store::discard_added`].
    pub fn journaled(&self) -> Store {
        Store { root: self.root.clone(), added: Some(Default::default()) }
    }

    /// Remove the blobs this journaled handle added (none are named yet).
    pub fn discard_added(&self) {
        let Some(added) = &self.added else { return };
        let digests = added.lock().map(|mut a| std::mem::take(&mut *a)).unwrap_or_default();
        for digest in digests {
            if let Ok(path) = self.blob_path(&digest) {
                let _ = fs::remove_file(path);
            }
        }
    }

    fn note_added(&self, digest: &str) {
        if let Some(added) = &self.added {
            if let Ok(mut a) = added.lock() {
                a.push(digest.to_string());
            }
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(check_digest(digest)?))
    }

    /// Where the unpacked layer `digest` lives (see `unpacked_layer`).
    pub fn layer_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers/sha256").join(check_digest(digest)?))
    }

    /// A fresh path for a temporary file or directory inside the store (same file system,
    /// so renaming it into place is atomic).
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        let unique = format!("{}-{}-{}", std::process::id(), crate::boxrun::new_id(), hint.replace('/', "_"));
        self.root.join("tmp").join(unique)
    }

    /// Whether the blob is present (not verified).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Copy `reader` into the store as blob `digest` of `size` bytes, verifying both on the
    /// way; on a mismatch nothing is stored. Present blobs are not written again.
    pub fn put_blob(&self, digest: &str, size: Option<u64>, mut reader: impl Read) -> Result<PathBuf> {
        let dest = self.blob_path(digest)?;
        if dest.is_file() {
            return Ok(dest);
        }
        let tmp = self.temp_path("blob");
        let result = (|| {
            let file = File::create(&tmp).ctx("create", &tmp)?;
            let mut w = HashingWriter::new(file);
            io::copy(&mut reader, &mut w).ctx("write blob", &tmp)?;
            let got = w.digest();
            if got != digest || size.is_some_and(|s| s != w.written) {
                return Err(Error::invalid(format!(
                    "blob {digest} has digest {got} and {} bytes{}: corrupted or tampered, not stored",
                    w.written,
                    size.map(|s| format!(" (expected {s})")).unwrap_or_default()
                )));
            }
            w.inner.sync_all().ctx("sync", &tmp)?;
            fs::rename(&tmp, &dest).ctx("rename into place", &dest)?;
            self.note_added(digest);
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| dest)
    }

    /// Move a file we wrote ourselves (and hashed while writing) into place as blob `digest`.
    pub fn adopt(&self, tmp: &Path, digest: &str) -> Result<PathBuf> {
        let dest = self.blob_path(digest)?;
        if dest.is_file() {
            let _ = fs::remove_file(tmp);
            return Ok(dest);
        }
        fs::rename(tmp, &dest).ctx("rename into place", &dest)?;
        Ok(dest)
    }

    /// Store bytes (a manifest or config we made) and return their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<String> {
        let digest = digest_of(bytes);
        self.put_blob(&digest, Some(bytes.len() as u64), bytes)?;
        Ok(digest)
    }

    /// Read a small blob (manifest, config, index) and verify it before returning it.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                Error::Missing(format!("blob {digest} is not in the store (pull the image again)"))
            }
            _ => Error::io("open", &path, e),
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_SMALL_BLOB + 1).read_to_end(&mut bytes).ctx("read", &path)?;
        if bytes.len() as u64 > MAX_SMALL_BLOB {
            return Err(Error::invalid(format!("blob {digest} is over 4 MiB: not a manifest or config")));
        }
        if digest_of(&bytes) != digest {
            return Err(Error::invalid(format!(
                "blob {digest} in the store is corrupted (its content hashes differently)"
            )));
        }
        Ok(bytes)
    }

    /// Re-hash a (large) blob on disk and compare with its name and size.
    pub fn verify_blob(&self, digest: &str, size: Option<u64>) -> Result<()> {
        let path = self.blob_path(digest)?;
        let mut file = File::open(&path).ctx("open", &path)?;
        let mut w = HashingWriter::new(io::sink());
        io::copy(&mut file, &mut w).ctx("read", &path)?;
        let got = w.digest();
        if got != digest || size.is_some_and(|s| s != w.written) {
            return Err(Error::invalid(format!("blob {digest} in the store is corrupted (hashes to {got})")));
        }
        Ok(())
    }

    fn lock(&self) -> Result<File> {
        let path = self.root.join("refs.lock");
        let f = File::options().create(true).truncate(false).write(true).open(&path).ctx("open", &path)?;
        // SAFETY: flock on an fd we own; released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io("lock", &path, io::Error::last_os_error()));
        }
        Ok(f)
    }

    fn read_refs(&self) -> Result<Refs> {
        let path = self.root.join("refs.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid(format!(
                    "{} is damaged: {e} (podlab image prune cannot fix this; remove it)",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Refs::default()),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    fn write_refs(&self, refs: &Refs) -> Result<()> {
        let path = self.root.join("refs.json");
        let tmp = self.temp_path("refs.json");
        let bytes = serde_json::to_vec_pretty(refs).map_err(|e| Error::invalid(e.to_string()))?;
        fs::write(&tmp, bytes).ctx("write", &tmp)?;
        fs::rename(&tmp, &path).ctx("rename into place", &path)
    }

    /// Point `name` at manifest `digest` (the manifest blob must be present).
    pub fn tag(&self, name: &str, digest: &str) -> Result<()> {
        if !self.has_blob(digest) {
            return Err(Error::Missing(format!("cannot tag {name}: manifest {digest} is not in the store")));
        }
        let _lock = self.lock()?;
        let mut refs = self.read_refs()?;
        refs.refs.insert(name.to_string(), digest.to_string());
        self.write_refs(&refs)
    }

    /// The manifest digest a name points at.
    pub fn resolve(&self, name: &str) -> Result<Option<String>> {
        Ok(self.read_refs()?.refs.get(name).cloned())
    }

    /// All names and what they point at.
    pub fn refs(&self) -> Result<BTreeMap<String, String>> {
        Ok(self.read_refs()?.refs)
    }

    /// Remove a name (or every name of a manifest digest). Blobs stay until `prune`.
    /// Returns the names removed.
    pub fn untag(&self, name_or_digest: &str) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let mut refs = self.read_refs()?;
        let gone: Vec<String> = refs
            .refs
            .iter()
            .filter(|(n, d)| *n == name_or_digest || *d == name_or_digest)
            .map(|(n, _)| n.clone())
            .collect();
        if gone.is_empty() {
            return Err(Error::Missing(format!("no image {name_or_digest} in the store (podlab image ls)")));
        }
        for n in &gone {
            refs.refs.remove(n);
        }
        self.write_refs(&refs)?;
        Ok(gone)
    }

    /// Every blob digest reachable from a manifest (the manifest, its config, its layers).
    pub fn manifest_blobs(&self, manifest_digest: &str) -> Result<(Vec<String>, u64)> {
        let raw = self.read_blob(manifest_digest)?;
        let m: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| Error::invalid(format!("manifest {manifest_digest}: {e}")))?;
        let mut blobs = vec![manifest_digest.to_string()];
        let mut size = 0;
        let descriptors =
            m.get("config").into_iter().chain(m.get("layers").and_then(|l| l.as_array()).into_iter().flatten());
        for d in descriptors {
            if let Some(digest) = d.get("digest").and_then(|v| v.as_str()) {
                check_digest(digest)?;
                blobs.push(digest.to_string());
                size += d.get("size").and_then(|v| v.as_u64()).unwrap_or(0);
            }
        }
        Ok((blobs, size))
    }

    /// The images in the store, one entry per manifest with all its names.
    pub fn images(&self) -> Result<Vec<ImageInfo>> {
        let mut by_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, digest) in self.refs()? {
            by_digest.entry(digest).or_default().push(name);
        }
        let mut out = Vec::new();
        for (manifest, names) in by_digest {
            let size = self.manifest_blobs(&manifest).map(|(_, s)| s).unwrap_or(0);
            out.push(ImageInfo { names, manifest, size });
        }
        Ok(out)
    }

    /// Remove blobs and unpacked layers that no name reaches any more. Returns how many
    /// blobs and layer directories were removed and the bytes freed.
    pub fn prune(&self) -> Result<(usize, usize, u64)> {
        let _lock = self.lock()?;
        let mut keep = std::collections::HashSet::new();
        for digest in self.read_refs()?.refs.values() {
            keep.extend(self.manifest_blobs(digest)?.0);
        }
        let (mut blobs, mut layers, mut bytes) = (0, 0, 0);
        for (sub, count) in [("blobs/sha256", &mut blobs), ("layers/sha256", &mut layers)] {
            let dir = self.root.join(sub);
            for entry in fs::read_dir(&dir).ctx("list", &dir)?.flatten() {
                let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
                if keep.contains(&digest) {
                    continue;
                }
                let path = entry.path();
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
                removed.ctx("remove", &path)?;
                *count += 1;
            }
        }
        // Leftovers of interrupted pulls; recent ones may belong to a pull under way.
        let tmp = self.root.join("tmp");
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for entry in fs::read_dir(&tmp).ctx("list", &tmp)?.flatten() {
            if entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < hour_ago) {
                let p = entry.path();
                let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            }
        }
        Ok((blobs, layers, bytes))
    }
}
