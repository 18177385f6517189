//! Pod volumes: directories the kubelet prepares on the node, bind-mounted into containers.
//!
//! Before any container starts, each volume is made under `POD_DIR/volumes/NAME`. An `emptyDir`
//! is a directory that lives as long as the pod (a tmpfs in RAM with `medium: Memory`); a
//! `hostPath` is a path of the node itself, checked against its `type`; `configMap`, `secret`,
//! `downwardAPI` and `projected` volumes are a tmpfs (so secrets never touch the disk) holding one
//! file per key. Each `volumeMount` of a container becomes a bind mount in its OCI spec. A
//! `subPath` mounts one entry of a volume: the kernel resolves it *beneath* the volume, so neither
//! `..` nor a symlink planted by a container can lead out, and a bind mount pins what was found.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource,
    HostPathVolumeSource, KeyToPath, ProjectedVolumeSource, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::MsFlags;
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use oci_spec::runtime::{Mount, MountBuilder};

use crate::error::{Error, IoContext, Result};
use crate::explain::{self, quote};
use crate::pod::env::{self, Objects, PodFacts};
use crate::pod::manifest::Pod;
use crate::pod::qos;
use crate::primitives::mount as pmount;
use crate::primitives::record::{Record, Resource};
use crate::quantity;

/// `POD_DIR/volumes/NAME`: one directory (or mount point) per volume.
pub const VOLUMES_DIR: &str = "volumes";
/// `POD_DIR/volume-subpaths/VOLUME/CONTAINER/INDEX`: the bind mounts that pin subPaths.
pub const SUBPATHS_DIR: &str = "volume-subpaths";
/// `POD_DIR/volume-mounts.jsonl`: every mount made here, written down before it is made.
const RECORD_OWNER: &str = "volume-mounts";
/// The default file mode of configMap, secret, downwardAPI and projected volumes (the API
/// server's default: secrets too are world-readable unless `defaultMode` says otherwise).
pub const DEFAULT_MODE: u32 = 0o644;
/// The mode of an emptyDir on disk: anyone in the pod may write there.
const EMPTY_DIR_MODE: u32 = 0o777;
/// The user-visible data directory link of the files volumes (`..data -> ..2025_01_31_...`).
const DATA_LINK: &str = "..data";

/// What a volume is.
enum Kind<'a> {
    /// `emptyDir`, or a volume with no source (the API server makes it an emptyDir).
    EmptyDir(Option<&'a EmptyDirVolumeSource>),
    HostPath(&'a HostPathVolumeSource),
    ConfigMap(&'a ConfigMapVolumeSource),
    Secret(&'a SecretVolumeSource),
    DownwardApi(&'a DownwardAPIVolumeSource),
    Projected(&'a ProjectedVolumeSource),
}

impl Kind<'_> {
    /// Volumes of files made from API objects: always mounted read-only, as the kubelet does.
    fn is_api_data(&self) -> bool {
        matches!(self, Kind::ConfigMap(_) | Kind::Secret(_) | Kind::DownwardApi(_) | Kind::Projected(_))
    }
}

fn kind(v: &Volume) -> Result<Kind<'_>> {
    if let Some(s) = &v.empty_dir {
        return Ok(Kind::EmptyDir(Some(s)));
    }
    if let Some(s) = &v.host_path {
        return Ok(Kind::HostPath(s));
    }
    if let Some(s) = &v.config_map {
        return Ok(Kind::ConfigMap(s));
    }
    if let Some(s) = &v.secret {
        return Ok(Kind::Secret(s));
    }
    if let Some(s) = &v.downward_api {
        return Ok(Kind::DownwardApi(s));
    }
    if let Some(s) = &v.projected {
        return Ok(Kind::Projected(s));
    }
    // Any other source: the fields set, as the manifest names them.
    let others: Vec<String> = serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_object().map(|m| m.keys().filter(|k| *k != "name").cloned().collect()))
        .unwrap_or_default();
    match others.first() {
        None => Ok(Kind::EmptyDir(None)),
        Some(other) => Err(Error::invalid(format!(
            "volume {:?}: {other} volumes are not supported by podlab's node (use emptyDir, hostPath, configMap, \
             secret, downwardAPI or projected)",
            v.name
        ))),
    }
}

/// One file of a files volume.
struct FileData {
    data: Vec<u8>,
    mode: u32,
    /// The shell command that prints the content, for `--explain` (never the secret itself).
    shown: String,
}

/// Relative path inside the volume → file.
type Payload = BTreeMap<String, FileData>;

/// Make every volume of `pod` under `pod_dir/volumes/<name>`, before any container starts.
///
/// - emptyDir: a directory, mode 0777; `medium: Memory` makes it a tmpfs whose size is the smallest
///   of `sizeLimit`, the pod's memory limit and the node's memory, as the kubelet sizes it.
/// - hostPath: nothing is made under `pod_dir`; the path is checked against `type`
///   (`DirectoryOrCreate` makes a directory, mode 0755; `FileOrCreate` an empty file, mode 0644,
///   in a directory that must exist; `Directory`, `File`, `Socket`, `CharDevice`, `BlockDevice`
///   must already be one). With no type a missing path becomes a directory, as containerd does.
/// - configMap, secret, downwardAPI, projected: a tmpfs holding the files, laid out as the kubelet
///   does: the data in a `..<timestamp>` directory, a `..data` link to it, and one link per
///   top-level name (`app.conf -> ..data/app.conf`). All keys, or `items` (key → path, per-item
///   `mode`); `defaultMode` 0644. A missing object or key is an error naming the volume, unless
///   `optional: true` (then the volume is empty or the item left out). serviceAccountToken and
///   clusterTrustBundle projections are skipped with a warning (podlab issues no tokens).
///
/// Everything is checked (objects, keys, hostPath types) before anything is mounted; each mount is
/// written in `pod_dir/volume-mounts.jsonl` before it is made, so [`teardown`] can undo it after a
/// crash. Calling `setup` again keeps what is there (an emptyDir's content, a mounted tmpfs). When
/// it fails on a pod that had no volumes yet, what it made is removed.
pub fn setup(pod: &Pod, pod_dir: &Path, facts: &PodFacts, objects: &Objects) -> Result<()> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    // First everything that can fail without touching anything.
    let mut plan = Vec::new();
    for v in volumes {
        component(&v.name, "volume name")?;
        let kind = kind(v)?;
        let payload = payload(pod, v, &kind, facts, objects)?;
        plan.push((v, kind, payload));
    }
    for (v, kind, _) in &plan {
        if let Kind::HostPath(h) = kind {
            check_host_path(&v.name, h)?;
        }
    }
    fs::create_dir_all(pod_dir).ctx("create the pod directory", pod_dir)?;
    let pod_dir = fs::canonicalize(pod_dir).ctx("find", pod_dir)?;
    let root = pod_dir.join(VOLUMES_DIR);
    let fresh = !root.exists();
    if fresh {
        explain::say(format!("mkdir -m 0750 {}", root.display()));
        fs::DirBuilder::new().mode(0o750).create(&root).ctx("create the volumes directory", &root)?;
    }
    let made = (|| {
        let record = Record::open(&pod_dir, RECORD_OWNER)?;
        let mounted: HashSet<PathBuf> = pmount::mountinfo(None)?.into_iter().map(|m| m.mount_point).collect();
        let memory = memory_volume_size(pod, facts);
        for (v, kind, payload) in &plan {
            let dir = root.join(&v.name);
            if !mounted.contains(&dir) {
                make_volume(&record, &dir, v, kind, payload.as_ref(), memory)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = made {
        if fresh {
            let _ = teardown(&pod_dir);
        }
        return Err(e);
    }
    Ok(())
}

/// Make one volume at `dir` (not mounted yet). `memory`: the size of a memory-backed volume.
fn make_volume(
    record: &Record,
    dir: &Path,
    v: &Volume,
    kind: &Kind<'_>,
    payload: Option<&Payload>,
    memory: u64,
) -> Result<()> {
    match kind {
        Kind::HostPath(_) => Ok(()),
        Kind::EmptyDir(source) if source.and_then(|s| s.medium.as_deref()) == Some("Memory") => {
            let size = match size_limit(&v.name, source.and_then(|s| s.size_limit.as_ref()))? {
                Some(limit) if memory > 0 => limit.min(memory),
                Some(limit) => limit,
                None => memory,
            };
            mount_tmpfs(record, dir, size)
        }
        Kind::EmptyDir(_) if dir.exists() => Ok(()), // kept across setups: the pod's scratch data
        Kind::EmptyDir(_) => make_dir(dir, EMPTY_DIR_MODE),
        _ => {
            mount_tmpfs(record, dir, memory)?;
            if let Err(e) = write_payload(dir, payload.unwrap_or(&Payload::new())) {
                // Never leave a half-written volume mounted: a later setup would keep it.
                let _ = unmount_stack(dir);
                return Err(in_volume(&v.name, e));
            }
            Ok(())
        }
    }
}

fn in_volume(name: &str, e: Error) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("volume {name:?}: {m}")),
        Error::Missing(m) => Error::Missing(format!("volume {name:?}: {m}")),
        other => other,
    }
}

/// `name` as one path component (volume and container names become directory names).
fn component<'a>(name: &'a str, what: &str) -> Result<&'a str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Error::invalid(format!("{what} {name:?} cannot be a directory name")));
    }
    Ok(name)
}

fn make_dir(dir: &Path, mode: u32) -> Result<()> {
    explain::say(format!("mkdir -m {mode:04o} {}", dir.display()));
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    // mkdir applies the umask: set the exact mode.
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).ctx("chmod", dir)
}

/// The size of a memory-backed volume without its own limit: the pod's memory limit when every
/// container has one, else the node's memory (the kubelet's SizeMemoryBackedVolumes rule).
fn memory_volume_size(pod: &Pod, facts: &PodFacts) -> u64 {
    let pod_limit = pod.spec.as_ref().and_then(|s| qos::pod_cgroup(s).ok()).and_then(|v| v.memory_limit);
    let node = facts.node_memory_bytes;
    match pod_limit {
        Some(limit) if limit > 0 && (node == 0 || limit <= node) => limit,
        _ => node,
    }
}

fn size_limit(volume: &str, limit: Option<&Quantity>) -> Result<Option<u64>> {
    let Some(Quantity(text)) = limit else { return Ok(None) };
    let bytes = quantity::parse_bytes(text)
        .map_err(|e| Error::invalid(format!("volume {volume:?}: emptyDir.sizeLimit: {e}")))?;
    Ok((bytes > 0).then_some(bytes))
}

/// Record, then mount a tmpfs of `size` bytes (0: the kernel's default, half the RAM) at `dir`.
fn mount_tmpfs(record: &Record, dir: &Path, size: u64) -> Result<()> {
    if !dir.exists() {
        make_dir(dir, 0o750)?;
    }
    record.note(Resource::Mount { path: dir.to_path_buf() })?;
    let options = if size > 0 { format!("size={size}") } else { String::new() };
    pmount::tmpfs(dir, (!options.is_empty()).then_some(options.as_str()))
}

// ---------------------------------------------------------------------------------------------
// hostPath types
// ---------------------------------------------------------------------------------------------

fn check_host_path(volume: &str, h: &HostPathVolumeSource) -> Result<()> {
    let path = Path::new(&h.path);
    let typ = h.type_.as_deref().unwrap_or("");
    let what =
        format!("volume {volume:?}: hostPath {} (type {})", path.display(), if typ.is_empty() { "\"\"" } else { typ });
    let failed = |why: String| Error::invalid(format!("{what}: hostPath type check failed: {why}"));
    if !path.is_absolute() {
        return Err(failed("the path must be absolute".into()));
    }
    let want = match typ {
        "" => {
            // No check; a missing path becomes a directory, as containerd (and Docker) do.
            if found(path).is_none() {
                explain::say(format!("mkdir -p -m 0755 {}", path.display()));
                fs::DirBuilder::new().recursive(true).mode(0o755).create(path).ctx("create directory", path)?;
            }
            return Ok(());
        }
        "DirectoryOrCreate" => {
            if found(path).is_none() {
                explain::say(format!("mkdir -p -m 0755 {}", path.display()));
                fs::DirBuilder::new().recursive(true).mode(0o755).create(path).ctx("create directory", path)?;
            }
            "directory"
        }
        "FileOrCreate" => {
            if found(path).is_none() {
                let parent = path.parent().unwrap_or(Path::new("/"));
                if !parent.is_dir() {
                    return Err(failed(format!(
                        "{} does not exist, and FileOrCreate does not create directories (use a DirectoryOrCreate \
                         volume for it, or create it)",
                        parent.display()
                    )));
                }
                explain::say(format!("touch {0} && chmod 0644 {0}", path.display()));
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .ctx("create file", path)?;
            }
            "file"
        }
        "Directory" => "directory",
        "File" => "file",
        "Socket" => "socket",
        "CharDevice" => "character device",
        "BlockDevice" => "block device",
        other => {
            return Err(failed(format!(
                "unknown type {other:?} (use DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice or \
                 BlockDevice)"
            )));
        }
    };
    match found(path) {
        None => Err(failed(format!("{} does not exist", path.display()))),
        Some(is) if is == want => Ok(()),
        Some(is) => Err(failed(format!("{} is not a {want} (it is a {is})", path.display()))),
    }
}

/// What is at `path` (following symlinks, as the kubelet's check does); None when nothing is.
fn found(path: &Path) -> Option<&'static str> {
    let t = fs::metadata(path).ok()?.file_type();
    Some(if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "file"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "fifo"
    })
}

// ---------------------------------------------------------------------------------------------
// Files volumes: what they hold, and how it is written.
// ---------------------------------------------------------------------------------------------

/// The files of a configMap/secret/downwardAPI/projected volume; None for other kinds.
fn payload(pod: &Pod, v: &Volume, kind: &Kind<'_>, facts: &PodFacts, objects: &Objects) -> Result<Option<Payload>> {
    let mut out = Payload::new();
    match kind {
        Kind::EmptyDir(source) => {
            let medium = source.and_then(|s| s.medium.as_deref()).unwrap_or("");
            if !["", "Memory"].contains(&medium) {
                return Err(Error::invalid(format!(
                    "volume {:?}: emptyDir medium {medium:?} is not supported by podlab (use \"\" or Memory)",
                    v.name
                )));
            }
            size_limit(&v.name, source.and_then(|s| s.size_limit.as_ref()))?;
            return Ok(None);
        }
        Kind::HostPath(_) => return Ok(None),
        Kind::ConfigMap(s) => {
            let mode = mode_of(s.default_mode, DEFAULT_MODE, &v.name)?;
            let keys = KeySource::ConfigMap { name: &s.name };
            keys.add(&v.name, s.items.as_deref(), s.optional == Some(true), mode, facts, objects, &mut out)?;
        }
        Kind::Secret(s) => {
            let mode = mode_of(s.default_mode, DEFAULT_MODE, &v.name)?;
            let keys = KeySource::Secret { name: s.secret_name.as_deref().unwrap_or("") };
            keys.add(&v.name, s.items.as_deref(), s.optional == Some(true), mode, facts, objects, &mut out)?;
        }
        Kind::DownwardApi(s) => {
            let mode = mode_of(s.default_mode, DEFAULT_MODE, &v.name)?;
            downward(pod, &v.name, s.items.as_deref().unwrap_or_default(), mode, facts, &mut out)?;
        }
        Kind::Projected(s) => {
            let mode = mode_of(s.default_mode, DEFAULT_MODE, &v.name)?;
            for (i, source) in s.sources.iter().flatten().enumerate() {
                if let Some(cm) = &source.config_map {
                    let keys = KeySource::ConfigMap { name: &cm.name };
                    keys.add(&v.name, cm.items.as_deref(), cm.optional == Some(true), mode, facts, objects, &mut out)?;
                }
                if let Some(secret) = &source.secret {
                    let keys = KeySource::Secret { name: &secret.name };
                    let optional = secret.optional == Some(true);
                    keys.add(&v.name, secret.items.as_deref(), optional, mode, facts, objects, &mut out)?;
                }
                if let Some(d) = &source.downward_api {
                    downward(pod, &v.name, d.items.as_deref().unwrap_or_default(), mode, facts, &mut out)?;
                }
                if source.service_account_token.is_some() || source.cluster_trust_bundle.is_some() {
                    tracing::warn!(
                        "volume {:?}: projected.sources[{i}]: serviceAccountToken and clusterTrustBundle \
                         projections are skipped (podlab issues no tokens and keeps no trust bundles)",
                        v.name
                    );
                }
            }
        }
    }
    Ok(Some(out))
}

fn mode_of(mode: Option<i32>, default: u32, volume: &str) -> Result<u32> {
    match mode {
        None => Ok(default),
        Some(m) if (0..=0o777).contains(&m) => Ok(m as u32),
        Some(m) => Err(Error::invalid(format!("volume {volume:?}: mode {m:o} is not between 0 and 0777"))),
    }
}

/// A ConfigMap or a Secret whose keys become files.
enum KeySource<'a> {
    ConfigMap { name: &'a str },
    Secret { name: &'a str },
}

impl KeySource<'_> {
    /// Add the object's keys (all, or `items`) to `out`.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        volume: &str,
        items: Option<&[KeyToPath]>,
        optional: bool,
        default_mode: u32,
        facts: &PodFacts,
        objects: &Objects,
        out: &mut Payload,
    ) -> Result<()> {
        let (kind, name, entries) = match self {
            KeySource::ConfigMap { name } => {
                let entries = objects.config_maps.get(*name).map(|cm| {
                    let mut e: BTreeMap<&str, (Vec<u8>, String)> = BTreeMap::new();
                    for (k, b) in cm.binary_data.iter().flatten() {
                        e.insert(
                            k,
                            (b.0.clone(), format!("{} | base64 -d", jsonpath("configmap", name, "binaryData", k))),
                        );
                    }
                    for (k, s) in cm.data.iter().flatten() {
                        e.insert(k, (s.clone().into_bytes(), jsonpath("configmap", name, "data", k)));
                    }
                    e
                });
                ("configmap", *name, entries)
            }
            KeySource::Secret { name } => {
                let entries = objects.secrets.get(*name).map(|secret| {
                    let mut e: BTreeMap<&str, (Vec<u8>, String)> = BTreeMap::new();
                    for (k, b) in secret.data.iter().flatten() {
                        e.insert(k, (b.0.clone(), format!("{} | base64 -d", jsonpath("secret", name, "data", k))));
                    }
                    e
                });
                ("secret", *name, entries)
            }
        };
        let ns = &facts.namespace;
        let Some(entries) = entries else {
            if optional {
                return Ok(());
            }
            return Err(Error::Missing(format!(
                "volume {volume:?}: {kind} {name:?} not found in namespace {ns:?} (create it, or set optional: true)"
            )));
        };
        match items.filter(|i| !i.is_empty()) {
            None => {
                for (key, (data, shown)) in entries {
                    out.insert(key.to_string(), FileData { data, mode: default_mode, shown });
                }
            }
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let Some((data, shown)) = entries.get(item.key.as_str()) else {
                        if optional {
                            continue;
                        }
                        return Err(Error::Missing(format!(
                            "volume {volume:?}: items[{i}]: {kind} {ns}/{name} has no key {:?}",
                            item.key
                        )));
                    };
                    let mode = mode_of(item.mode, default_mode, volume)?;
                    out.insert(item.path.clone(), FileData { data: data.clone(), mode, shown: shown.clone() });
                }
            }
        }
        Ok(())
    }
}

/// `kubectl get configmap app -o jsonpath='{.data.app\.conf}'`.
fn jsonpath(kind: &str, name: &str, field: &str, key: &str) -> String {
    let path = format!("{{.{field}.{}}}", key.replace('.', "\\."));
    format!("kubectl get {kind} {name} -o jsonpath={}", quote(&path))
}

fn downward(
    pod: &Pod,
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    facts: &PodFacts,
    out: &mut Payload,
) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        let value = match (&item.field_ref, &item.resource_field_ref) {
            (Some(field), _) => env::field_ref(facts, &field.field_path),
            (None, Some(sel)) => env::resource_field_ref(facts, pod, "", sel),
            (None, None) => Err(Error::invalid("needs a fieldRef or a resourceFieldRef")),
        }
        .map_err(|e| Error::invalid(format!("volume {volume:?}: downwardAPI items[{i}] ({}): {e}", item.path)))?;
        let mode = mode_of(item.mode, default_mode, volume)?;
        let shown = format!("printf %s {}", quote(&value));
        out.insert(item.path.clone(), FileData { data: value.into_bytes(), mode, shown });
    }
    Ok(())
}

/// The components of a file's path inside a volume, refusing what could leave it.
fn item_components(path: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if path.starts_with('/') {
        return Err(Error::invalid(format!("item path {path:?} must be relative")));
    }
    if parts.contains(&"..") {
        return Err(Error::invalid(format!("item path {path:?} must not contain '..'")));
    }
    if parts.first().is_some_and(|p| p.starts_with("..")) {
        return Err(Error::invalid(format!("item path {path:?} must not start with '..'")));
    }
    if parts.is_empty() {
        return Err(Error::invalid(format!("item path {path:?} names no file")));
    }
    Ok(parts)
}

/// Write the files the way the kubelet's atomic writer lays them out: the data in a fresh
/// `..<UTC time>` directory, `..data` a link to it, and a link per top-level name into `..data`.
/// (Updating a volume then means writing a new directory and swapping one link.)
fn write_payload(dir: &Path, payload: &Payload) -> Result<()> {
    // The files must land in RAM: refuse to write them anywhere else.
    let fs_type = nix::sys::statfs::statfs(dir).map_err(|e| Error::sys(format!("statfs {}", dir.display()), e))?;
    if fs_type.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return Err(Error::invalid(format!("{} is not a tmpfs: refusing to write the volume's files", dir.display())));
    }
    let mut checked = Vec::new();
    for (path, file) in payload {
        checked.push((item_components(path)?, file));
    }
    let stamp = timestamp_dir_name();
    let data_dir = dir.join(&stamp);
    make_dir(&data_dir, 0o755)?;
    let mut top = BTreeSet::new();
    for (parts, file) in checked {
        top.insert(parts[0]);
        let mut target = data_dir.clone();
        for (i, part) in parts.iter().enumerate() {
            target.push(part);
            if i + 1 < parts.len() && !target.is_dir() {
                make_dir(&target, 0o755)?;
            }
        }
        explain::say(format!("{} > {p}; chmod {:04o} {p}", file.shown, file.mode, p = target.display()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .ctx("create file", &target)?;
        std::io::Write::write_all(&mut f, &file.data).ctx("write", &target)?;
        f.set_permissions(fs::Permissions::from_mode(file.mode)).ctx("chmod", &target)?;
    }
    let tmp = dir.join("..data_tmp");
    explain::say(format!(
        "ln -s {stamp} {} && mv -T {} {}",
        tmp.display(),
        tmp.display(),
        dir.join(DATA_LINK).display()
    ));
    std::os::unix::fs::symlink(&stamp, &tmp).ctx("create symlink", &tmp)?;
    fs::rename(&tmp, dir.join(DATA_LINK)).ctx("rename", &tmp)?;
    for name in top {
        let link = dir.join(name);
        let to = format!("{DATA_LINK}/{name}");
        explain::say(format!("ln -s {to} {}", link.display()));
        std::os::unix::fs::symlink(&to, &link).ctx("create symlink", &link)?;
    }
    Ok(())
}

/// `..2025_01_31_12_00_00.123456789`: the kubelet names each version of the data by its UTC time.
fn timestamp_dir_name() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "..{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}.{:09}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        now.subsec_nanos()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the Gregorian calendar.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------------
// Mounts of a container
// ---------------------------------------------------------------------------------------------

/// The OCI mounts of container `c`'s `volumeMounts`, in order, for its config.json.
///
/// Each is a bind mount (`rbind`) of the volume's directory (a hostPath: the host path itself) at
/// `mountPath`, read-only with `readOnly: true` and always for configMap, secret, downwardAPI and
/// projected volumes; `mountPropagation` None, HostToContainer, Bidirectional becomes `rprivate`,
/// `rslave`, `rshared` (the last two need the source on a shared mount, which is checked).
///
/// `subPath` (or `subPathExpr`, expanded with `env`; a variable that is unset or empty is an
/// error, as in the kubelet) mounts one entry of the volume. It is opened with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from the volume's root, so `..`, an absolute
/// path or a symlink that leads out of the volume is refused with an error naming the container,
/// the mount and the subPath. RESOLVE_BENEATH rather than RESOLVE_IN_ROOT: IN_ROOT would quietly
/// reinterpret a symlink to `/etc` as `<volume>/etc`, which is not what the container sees through
/// that link either; refusing says clearly that something is wrong. (So an absolute symlink is
/// refused even when it points back into the volume, which the kubelet would allow.) Missing
/// directories on the way are created inside the volume with the volume's mode and owner, as the
/// kubelet does. The open file is then bind-mounted (through `/proc/self/fd/N`) on
/// `pod_dir/volume-subpaths/<volume>/<container>/<index>`, which becomes the mount's source: once
/// pinned there, swapping the entry for a symlink changes nothing.
///
/// A mount naming a volume the pod does not have is an error; so is a volume that [`setup`] did
/// not make.
pub fn mounts(pod: &Pod, pod_dir: &Path, c: &Container, env: &[(String, String)]) -> Result<Vec<Mount>> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    let mut out = Vec::new();
    if c.volume_mounts.as_ref().is_none_or(Vec::is_empty) {
        return Ok(out);
    }
    let pod_dir = fs::canonicalize(pod_dir).ctx("find the pod directory", pod_dir)?;
    for (index, m) in c.volume_mounts.iter().flatten().enumerate() {
        let what = format!("container {:?}: volumeMounts[{index}] ({:?} at {})", c.name, m.name, m.mount_path);
        let err = |e: Error| match e {
            Error::Invalid(msg) => Error::Invalid(format!("{what}: {msg}")),
            Error::Missing(msg) => Error::Missing(format!("{what}: {msg}")),
            other => other,
        };
        let volume = volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| Error::invalid(format!("{what}: the pod has no volume {:?} (see spec.volumes)", m.name)))?;
        let kind = kind(volume).map_err(err)?;
        let root = match &kind {
            Kind::HostPath(h) => PathBuf::from(&h.path),
            _ => pod_dir.join(VOLUMES_DIR).join(component(&volume.name, "volume name")?),
        };
        if !root.exists() {
            return Err(Error::Missing(format!(
                "{what}: {} does not exist (was the volume set up with volumes::setup?)",
                root.display()
            )));
        }
        let source = match sub_path(m, env).map_err(err)? {
            None => root,
            Some(sub) => pin_sub_path(&pod_dir, &root, &sub, &volume.name, &c.name, index).map_err(|e| match e {
                Error::Invalid(msg) => Error::Invalid(format!("{what}: subPath {sub:?}: {msg}")),
                Error::Missing(msg) => Error::Missing(format!("{what}: subPath {sub:?}: {msg}")),
                other => other,
            })?,
        };
        let propagation = propagation(m, &source).map_err(err)?;
        let readonly = m.read_only == Some(true) || kind.is_api_data();
        let options =
            vec!["rbind".to_string(), propagation.to_string(), if readonly { "ro" } else { "rw" }.to_string()];
        let mount = MountBuilder::default()
            .destination(PathBuf::from(&m.mount_path))
            .typ("bind")
            .source(source)
            .options(options)
            .build()
            .map_err(|e| Error::invalid(format!("{what}: {e}")))?;
        out.push(mount);
    }
    Ok(out)
}

/// The subPath to mount, if any: `subPath`, or `subPathExpr` expanded with the container's env.
fn sub_path(m: &VolumeMount, env: &[(String, String)]) -> Result<Option<String>> {
    let sub = match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
        (Some(s), _) if !s.is_empty() => s.to_string(),
        (_, Some(expr)) if !expr.is_empty() => {
            let missing = std::cell::RefCell::new(BTreeSet::new());
            let expanded = env::expand(expr, &|name| {
                let value = env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
                if value.is_empty() {
                    missing.borrow_mut().insert(name.to_string());
                }
                Some(value)
            });
            let missing = missing.into_inner();
            if !missing.is_empty() {
                let names: Vec<String> = missing.into_iter().collect();
                return Err(Error::invalid(format!(
                    "subPathExpr {expr:?}: missing value for {} (define it in env)",
                    names.join(", ")
                )));
            }
            expanded
        }
        _ => return Ok(None),
    };
    if sub.starts_with('/') {
        return Err(Error::invalid(format!("subPath {sub:?} must not be an absolute path")));
    }
    if sub.split('/').any(|p| p == "..") {
        return Err(Error::invalid(format!("subPath {sub:?} must not contain '..': it would lead out of the volume")));
    }
    Ok((!sub.is_empty()).then_some(sub))
}

/// `None`/unset → rprivate, `HostToContainer` → rslave, `Bidirectional` → rshared. The last two
/// only work when the source sits on a shared mount of the node; say so instead of failing quietly.
fn propagation(m: &VolumeMount, source: &Path) -> Result<&'static str> {
    let (option, need) = match m.mount_propagation.as_deref() {
        None | Some("") | Some("None") => return Ok("rprivate"),
        Some("HostToContainer") => ("rslave", &["shared:", "master:"][..]),
        Some("Bidirectional") => ("rshared", &["shared:"][..]),
        Some(other) => {
            return Err(Error::invalid(format!(
                "mountPropagation {other:?} is not one of None, HostToContainer, Bidirectional"
            )));
        }
    };
    let source = fs::canonicalize(source).ctx("find", source)?;
    let infos = pmount::mountinfo(None)?;
    let holder =
        infos.iter().filter(|i| source.starts_with(&i.mount_point)).max_by_key(|i| i.mount_point.as_os_str().len());
    match holder {
        Some(info) if need.iter().any(|tag| info.propagation.split(' ').any(|t| t.starts_with(tag))) => Ok(option),
        Some(info) => Err(Error::invalid(format!(
            "mountPropagation {} needs {} on a shared mount, but the mount at {} is private (run `mount \
             --make-rshared {}`)",
            m.mount_propagation.as_deref().unwrap_or(""),
            source.display(),
            info.mount_point.display(),
            info.mount_point.display()
        ))),
        None => Err(Error::Missing(format!("no mount holds {} (read /proc/self/mountinfo)", source.display()))),
    }
}

/// How subPaths are resolved: beneath the volume's root, no magic links (`/proc/self/...`).
fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Why an open beneath the volume failed, for a learner.
fn beneath_error(errno: Errno, at: &Path) -> Error {
    match errno {
        Errno::EXDEV => Error::invalid(format!(
            "{} leads out of the volume (through '..' or a symlink pointing outside): refusing to mount it",
            at.display()
        )),
        Errno::ELOOP => Error::invalid(format!(
            "{} goes through too many symlinks or a /proc magic link: refusing it",
            at.display()
        )),
        Errno::ENOTDIR => {
            Error::invalid(format!("{} is not a directory, but the subPath goes through it", at.display()))
        }
        e => Error::sys(format!("open {} inside the volume", at.display()), e),
    }
}

/// Open `sub` beneath `root`, creating missing directories like the kubelet's SafeMakeDir (with the
/// mode and owner of the volume's root). The result is an O_PATH descriptor of what was found.
fn open_beneath(root: &Path, sub: &str) -> Result<OwnedFd> {
    let root_fd = nix::fcntl::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open the volume", root, e.into()))?;
    let root_stat = fstat(&root_fd, root)?;
    let parts: Vec<&str> = sub.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() {
        return openat2(&root_fd, ".", beneath(OFlag::O_PATH)).map_err(|e| beneath_error(e, Path::new(sub)));
    }
    let mut prefix = PathBuf::new();
    for (i, name) in parts.iter().enumerate() {
        prefix.push(name);
        match openat2(&root_fd, prefix.as_path(), beneath(OFlag::O_PATH)) {
            Ok(fd) if i + 1 == parts.len() => return Ok(fd),
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(beneath_error(e, &prefix)),
        }
        let parent_path = prefix.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let parent = openat2(&root_fd, parent_path, beneath(OFlag::O_PATH | OFlag::O_DIRECTORY))
            .map_err(|e| beneath_error(e, parent_path))?;
        let mode = root_stat.st_mode & 0o7777;
        explain::say(format!("mkdir -m {mode:04o} {}", root.join(&prefix).display()));
        match nix::sys::stat::mkdirat(&parent, *name, Mode::from_bits_truncate(mode)) {
            Ok(()) => {
                // mkdir applies the umask: set the exact mode, and the volume's owner.
                let made = openat2(&parent, *name, beneath(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW))
                    .map_err(|e| beneath_error(e, &prefix))?;
                nix::unistd::fchown(
                    &made,
                    Some(nix::unistd::Uid::from_raw(root_stat.st_uid)),
                    Some(nix::unistd::Gid::from_raw(root_stat.st_gid)),
                )
                .map_err(|e| Error::sys(format!("chown {}", root.join(&prefix).display()), e))?;
                nix::sys::stat::fchmod(&made, Mode::from_bits_truncate(mode))
                    .map_err(|e| Error::sys(format!("chmod {}", root.join(&prefix).display()), e))?;
            }
            Err(Errno::EEXIST) => {} // made meanwhile, or a dangling symlink: the open below decides
            Err(e) => return Err(Error::sys(format!("create {} inside the volume", root.join(&prefix).display()), e)),
        }
        let fd = openat2(&root_fd, prefix.as_path(), beneath(OFlag::O_PATH)).map_err(|e| beneath_error(e, &prefix))?;
        if i + 1 == parts.len() {
            return Ok(fd);
        }
    }
    unreachable!("the loop returns at the last component")
}

fn fstat(fd: &impl AsFd, shown: &Path) -> Result<FileStat> {
    nix::sys::stat::fstat(fd).map_err(|e| Error::sys(format!("stat {}", shown.display()), e))
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

/// Resolve `sub` inside the volume at `root` and pin it with a bind mount on
/// `pod_dir/volume-subpaths/<volume>/<container>/<index>`; that path is returned.
fn pin_sub_path(
    pod_dir: &Path,
    root: &Path,
    sub: &str,
    volume: &str,
    container: &str,
    index: usize,
) -> Result<PathBuf> {
    let fd = open_beneath(root, sub)?;
    let shown = root.join(sub);
    let found = fstat(&fd, &shown)?;
    let parent = pod_dir
        .join(SUBPATHS_DIR)
        .join(component(volume, "volume name")?)
        .join(component(container, "container name")?);
    fs::DirBuilder::new().recursive(true).mode(0o750).create(&parent).ctx("create directory", &parent)?;
    let target = parent.join(index.to_string());
    // A bind made before for this mount (the container restarted): keep it if it holds the same file.
    if is_mount_point(&target)? {
        if let Ok(st) = nix::sys::stat::stat(&target) {
            if (st.st_dev, st.st_ino) == (found.st_dev, found.st_ino) {
                return Ok(target);
            }
        }
        unmount_stack(&target)?;
    }
    prepare_mount_point(&target, is_dir(&found))?;
    Record::open(pod_dir, RECORD_OWNER)?.note(Resource::Mount { path: target.clone() })?;
    explain::say(format!("mount --bind {} {}", shown.display(), target.display()));
    let fd_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::mount::mount(Some(fd_path.as_str()), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| Error::sys(format!("bind {} on {}", shown.display(), target.display()), e))?;
    // The kernel mounted what the descriptor holds; check it anyway.
    let now = nix::sys::stat::stat(&target).map_err(|e| Error::sys(format!("stat {}", target.display()), e))?;
    if (now.st_dev, now.st_ino) != (found.st_dev, found.st_ino) {
        unmount_stack(&target)?;
        return Err(Error::invalid(format!(
            "{} does not hold {} after mounting it",
            target.display(),
            shown.display()
        )));
    }
    Ok(target)
}

/// Make `target` an empty directory (for a directory) or an empty file (for anything else).
fn prepare_mount_point(target: &Path, dir: bool) -> Result<()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == dir && !m.file_type().is_symlink() => return Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir(target).ctx("remove", target)?,
        Ok(_) => fs::remove_file(target).ctx("remove", target)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("look at", target, e)),
    }
    if dir {
        fs::DirBuilder::new().mode(0o750).create(target).ctx("create directory", target)
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(target)
            .map(drop)
            .ctx("create file", target)
    }
}

fn is_mount_point(path: &Path) -> Result<bool> {
    Ok(pmount::mountinfo(None)?.iter().any(|m| m.mount_point == path))
}

// ---------------------------------------------------------------------------------------------
// Teardown
// ---------------------------------------------------------------------------------------------

/// Undo [`setup`] and [`mounts`]: unmount everything podlab mounted under `pod_dir/volumes` and
/// `pod_dir/volume-subpaths` (deepest first, as /proc/self/mountinfo and the record show them;
/// lazily only when a mount is busy), then remove both directories without ever entering a mount
/// point or following a symlink, so the content of a hostPath or of a bind-mounted directory is
/// never deleted. A hostPath itself is left alone. Calling it again, or on a pod without volumes,
/// is harmless.
pub fn teardown(pod_dir: &Path) -> Result<()> {
    let pod_dir = match fs::canonicalize(pod_dir) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("find the pod directory", pod_dir, e)),
    };
    let areas = [pod_dir.join(SUBPATHS_DIR), pod_dir.join(VOLUMES_DIR)];
    let record_file = pod_dir.join(format!("{RECORD_OWNER}.jsonl"));
    let recorded: Vec<PathBuf> = if record_file.exists() {
        Record::open(&pod_dir, RECORD_OWNER)?
            .entries()?
            .into_iter()
            .filter_map(|r| match r {
                Resource::Mount { path } => Some(path),
                _ => None,
            })
            .filter(|p| areas.iter().any(|a| p.starts_with(a)))
            .collect()
    } else {
        Vec::new()
    };
    unmount_areas(&areas, &recorded)?;
    for area in &areas {
        if let Some(name) = area.file_name() {
            remove_tree(&pod_dir, name)?;
        }
    }
    match fs::remove_file(&record_file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &record_file, e)),
    }
}

/// Unmount every mount at or below the areas, deepest first, until none is left.
fn unmount_areas(areas: &[PathBuf], recorded: &[PathBuf]) -> Result<()> {
    for round in 0..16 {
        let mut points: Vec<PathBuf> = pmount::mountinfo(None)?
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| areas.iter().any(|a| p.starts_with(a)))
            .collect();
        if round == 0 {
            // Recorded mounts the table may show under another name (a moved or deleted directory).
            points.extend(recorded.iter().filter(|p| p.exists()).cloned());
        }
        if points.is_empty() {
            return Ok(());
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        points.dedup();
        for p in points {
            unmount_one(&p)?;
        }
    }
    Err(Error::invalid(format!(
        "mounts under {} keep coming back: is something still mounting there?",
        areas.first().and_then(|a| a.parent()).unwrap_or(Path::new("")).display()
    )))
}

/// Every mount stacked on `target`.
fn unmount_stack(target: &Path) -> Result<()> {
    for _ in 0..16 {
        if !is_mount_point(target)? {
            return Ok(());
        }
        unmount_one(target)?;
    }
    Err(Error::invalid(format!("{} stays mounted", target.display())))
}

/// `umount PATH`, or `umount -l PATH` when it is busy.
fn unmount_one(path: &Path) -> Result<()> {
    match pmount::unmount(path, false) {
        Err(e) if e.errno() == Some(Errno::EBUSY as i32) => pmount::unmount(path, true),
        other => other,
    }
}

/// Remove `pod_dir/name` and all it holds, on this file system only.
fn remove_tree(pod_dir: &Path, name: &OsStr) -> Result<()> {
    let path = pod_dir.join(name);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(());
    }
    explain::say(format!("rm -rf --one-file-system {}", path.display()));
    let dir = nix::fcntl::open(pod_dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", pod_dir, e.into()))?;
    let dev = fstat(&dir, pod_dir)?.st_dev;
    remove_entry(&dir, pod_dir, name, dev)
}

fn still_mounted(path: &Path) -> Error {
    Error::invalid(format!(
        "{} is still a mount point: not removing it nor anything in it (unmount it first)",
        path.display()
    ))
}

/// Remove `name` in the directory `parent` (at `parent_path`, on device `dev`). Directories are
/// entered with RESOLVE_NO_XDEV and without following symlinks: a mount point (even a bind mount of
/// the same file system) is refused, and a symlink is removed, never followed.
fn remove_entry(parent: &OwnedFd, parent_path: &Path, name: &OsStr, dev: u64) -> Result<()> {
    let path = parent_path.join(name);
    let st = match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("stat {}", path.display()), e)),
    };
    if !is_dir(&st) {
        return match nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EBUSY) => Err(still_mounted(&path)),
            Err(e) => Err(Error::sys(format!("remove {}", path.display()), e)),
        };
    }
    let how =
        OpenHow::new().flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_XDEV
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let dir = match openat2(parent, name, how) {
        Ok(fd) => fd,
        Err(Errno::EXDEV) => return Err(still_mounted(&path)),
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("open {}", path.display()), e)),
    };
    if fstat(&dir, &path)?.st_dev != dev {
        return Err(still_mounted(&path));
    }
    let names: Vec<OsString> = {
        let dup = dir.try_clone().ctx("duplicate the descriptor of", &path)?;
        let mut listing = nix::dir::Dir::from_fd(dup).map_err(|e| Error::sys(format!("list {}", path.display()), e))?;
        let mut names = Vec::new();
        for entry in listing.iter() {
            let entry = entry.map_err(|e| Error::sys(format!("list {}", path.display()), e))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        names
    };
    for n in names {
        remove_entry(&dir, &path, &n, dev)?;
    }
    drop(dir);
    match nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => Err(still_mounted(&path)),
        Err(e) => Err(Error::sys(format!("remove {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_089), (2025, 1, 1));
        let name = timestamp_dir_name();
        assert!(name.starts_with("..20") && name.len() == "..2025_01_01_00_00_00.000000000".len(), "{name}");
    }

    #[test]
    fn item_paths() {
        assert_eq!(item_components("a/b.conf").unwrap(), ["a", "b.conf"]);
        assert_eq!(item_components("./a//b").unwrap(), ["a", "b"]);
        assert!(item_components("/etc/passwd").is_err());
        assert!(item_components("a/../../b").is_err());
        assert!(item_components("..data").is_err());
        assert!(item_components("").is_err());
        assert_eq!(
            jsonpath("configmap", "app", "data", "app.conf"),
            "kubectl get configmap app -o jsonpath='{.data.app\\.conf}'"
        );
    }

    /// remove_tree never enters a mount point, even a bind mount of the same file system, and
    /// removes a symlink without following it.
    #[test]
    fn removal_stops_at_mount_points() {
        struct Scratch(PathBuf);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = pmount::unmount_all_under(&self.0);
                let _ = fs::remove_dir_all(&self.0);
            }
        }
        let scratch = Scratch(PathBuf::from(format!("/tmp/podlab-unit-rmtree-{}", std::process::id())));
        let base = scratch.0.clone();
        let (area, host) = (base.join("area"), base.join("host"));
        fs::create_dir_all(area.join("sub/mnt")).unwrap();
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("keep"), "host data").unwrap();
        std::os::unix::fs::symlink(&host, area.join("link")).unwrap();
        pmount::bind(&host, &area.join("sub/mnt"), false).unwrap();
        let refused = remove_tree(&base, OsStr::new("area"));
        let left = fs::read_to_string(host.join("keep"));
        pmount::unmount(&area.join("sub/mnt"), true).unwrap();
        let err = refused.unwrap_err().to_string();
        assert!(err.contains("sub/mnt is still a mount point"), "{err}");
        assert_eq!(left.unwrap(), "host data");
        remove_tree(&base, OsStr::new("area")).unwrap();
        assert!(!area.exists());
        assert_eq!(fs::read_to_string(host.join("keep")).unwrap(), "host data");
    }

    #[test]
    fn sub_paths() {
        let m = |sub: Option<&str>, expr: Option<&str>| VolumeMount {
            name: "v".into(),
            mount_path: "/m".into(),
            sub_path: sub.map(String::from),
            sub_path_expr: expr.map(String::from),
            ..Default::default()
        };
        let env = vec![("POD".to_string(), "web-1".to_string()), ("EMPTY".to_string(), String::new())];
        assert_eq!(sub_path(&m(None, None), &env).unwrap(), None);
        assert_eq!(sub_path(&m(Some("logs/a"), None), &env).unwrap().as_deref(), Some("logs/a"));
        assert_eq!(sub_path(&m(None, Some("logs/$(POD)")), &env).unwrap().as_deref(), Some("logs/web-1"));
        let err = sub_path(&m(None, Some("$(EMPTY)/$(NOPE)")), &env).unwrap_err().to_string();
        assert!(err.contains("missing value for EMPTY, NOPE"), "{err}");
        assert!(sub_path(&m(Some("../etc"), None), &env).unwrap_err().to_string().contains("'..'"));
        assert!(sub_path(&m(Some("/etc"), None), &env).unwrap_err().to_string().contains("absolute"));
    }
}
