//! The runtime spec, `config.json`: everything a runtime needs to know to start a container.
//!
//! The OCI runtime spec is one JSON file in the bundle: the process (args, env, cwd, user,
//! capabilities, rlimits), the root filesystem, the mounts, and under `linux` the namespaces,
//! cgroup limits (`resources`) and the paths hidden from the container. `runc spec` writes a
//! starting point; [`default_spec`] is the same file, so `diff` shows every choice podlab makes.
//! [`from_image`] fills the process from an image's config the way Kubernetes does.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilities, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use crate::error::{Error, IoContext, Result};

/// The spec file's name inside a bundle.
pub const CONFIG_FILE: &str = "config.json";

/// The spec version `runc spec` (1.1) writes; runtimes accept any 1.x.
pub const OCI_VERSION: &str = "1.0.2-dev";

/// The hostname of [`default_spec`] (`runc spec` says "runc").
pub const DEFAULT_HOSTNAME: &str = "podlab";

/// `PATH` when the image sets none (the default of runc, containerd and Docker).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// CFS period for CPU limits, in microseconds (Kubernetes uses 100ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The smallest CFS quota the kernel accepts (1ms); Kubernetes rounds smaller limits up to it.
pub const MIN_CPU_QUOTA_US: i64 = 1_000;

/// Annotation holding an image `User` that names a user instead of a number: it is left for the
/// runtime to resolve against the container's `/etc/passwd` (the spec itself holds only ids).
pub const UNRESOLVED_USER_ANNOTATION: &str = "org.podlab.image.user";

/// The spec `runc spec` writes, so a learner can `diff` the two files.
///
/// Kept exactly as runc 1.1 writes it: an interactive shell (`terminal: true`, `args: ["sh"]`),
/// root (uid 0), three capabilities (AUDIT_WRITE, KILL, NET_BIND_SERVICE) in the bounding,
/// effective, permitted and ambient sets,
/// `RLIMIT_NOFILE` 1024, `noNewPrivileges`, a read-only `rootfs`, the seven standard mounts
/// (`/sys` and `/sys/fs/cgroup` read-only), a cgroup rule denying every device, and the
/// masked and read-only `/proc` and `/sys` paths.
///
/// Two differences from runc 1.1:
/// - `hostname` is "podlab" instead of "runc";
/// - `linux.namespaces` also has `cgroup`, so the container sees its own cgroup as `/` (as
///   containerd gives Kubernetes containers on cgroup v2; runc 1.1 here does not add it).
///
/// A container that runs a command rather than a shell sets `process.terminal` to false: with
/// `terminal: true` runc wants a terminal to attach to.
pub fn default_spec() -> Spec {
    let caps = caps(&[Capability::AuditWrite, Capability::Kill, Capability::NetBindService]);
    let capabilities = capability_sets(caps, true);
    let process = ProcessBuilder::default()
        .terminal(true)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build().expect("user"))
        .args(vec!["sh".to_string()])
        .env(vec![DEFAULT_PATH.to_string(), "TERM=xterm".to_string()])
        .cwd("/")
        .capabilities(capabilities)
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(1024u64)
                .soft(1024u64)
                .build()
                .expect("rlimit"),
        ])
        .no_new_privileges(true)
        .build()
        .expect("process");
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build().expect("namespace"))
    .collect::<Vec<LinuxNamespace>>();
    let deny_all_devices = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().expect("device rule");
    let linux = LinuxBuilder::default()
        .resources(LinuxResourcesBuilder::default().devices(vec![deny_all_devices]).build().expect("resources"))
        .namespaces(namespaces)
        .masked_paths(strings(&[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ]))
        .readonly_paths(strings(&["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]))
        .build()
        .expect("linux");
    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .process(process)
        .root(RootBuilder::default().path("rootfs").readonly(true).build().expect("root"))
        .hostname(DEFAULT_HOSTNAME)
        .mounts(default_mounts())
        .linux(linux)
        .build()
        .expect("spec");
    spec.set_annotations(None); // the builder's default is an empty map; runc writes none
    spec
}

/// The mounts of `runc spec`: the kernel's pseudo-filesystems a program expects to find.
fn default_mounts() -> Vec<Mount> {
    let m = |dest: &str, typ: &str, source: &str, options: &[&str]| {
        let b = MountBuilder::default().destination(dest).typ(typ).source(source);
        let b = if options.is_empty() { b } else { b.options(strings(options)) };
        b.build().expect("mount")
    };
    let hardened = ["nosuid", "noexec", "nodev"];
    vec![
        m("/proc", "proc", "proc", &[]),
        m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        m("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        m("/dev/shm", "tmpfs", "shm", &[&hardened[..], &["mode=1777", "size=65536k"]].concat()),
        m("/dev/mqueue", "mqueue", "mqueue", &hardened),
        m("/sys", "sysfs", "sysfs", &[&hardened[..], &["ro"]].concat()),
        m("/sys/fs/cgroup", "cgroup", "cgroup", &[&hardened[..], &["relatime", "ro"]].concat()),
    ]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn caps(list: &[Capability]) -> HashSet<Capability> {
    list.iter().copied().collect()
}

/// Read `BUNDLE/config.json`. A file that is not a valid spec is reported with its line,
/// column and the JSON path of the value at fault (`process.args[0]`).
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Missing(format!(
                "{}: no such file: a bundle needs a config.json (write one with `runc spec`)",
                path.display()
            )));
        }
        other => other.ctx("read", &path)?,
    };
    serde_json::from_str(&text).map_err(|e| {
        let message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&suffix).unwrap_or(&message);
        let at = json_path_at(&text, e.line(), e.column());
        let at = if at.is_empty() { String::new() } else { format!(" (at {at})") };
        Error::invalid(format!("{}:{}:{}{at}: {message}", path.display(), e.line(), e.column()))
    })
}

/// Write `BUNDLE/config.json` as pretty JSON, atomically: a temporary file in the bundle,
/// synced, then renamed over the old one, so a reader never sees half a spec.
pub fn save(spec: &Spec, bundle: &Path) -> Result<()> {
    std::fs::create_dir_all(bundle).ctx("create directory", bundle)?;
    let path = bundle.join(CONFIG_FILE);
    let tmp = bundle.join(format!(".{CONFIG_FILE}.tmp-{}", std::process::id()));
    let mut json = serde_json::to_vec_pretty(spec)
        .map_err(|e| Error::invalid(format!("cannot encode the spec for {}: {e}", path.display())))?;
    json.push(b'\n');
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()
    })()
    .ctx("write", &tmp);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path).ctx("rename into place", &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The JSON path (`process.args[1]`) of the value being read at `line`:`column` (1-based, as
/// serde_json reports them). Everything before that point parsed, so a small scanner that
/// tracks open objects and arrays is enough.
fn json_path_at(text: &str, line: usize, column: usize) -> String {
    enum Frame {
        Object { key: Option<String>, expecting_key: bool },
        Array { index: usize },
    }
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let mut end = (line_start + column).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut chars = text[..end].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut s = String::new();
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {
                            escaped = false;
                            s.push(c);
                        }
                    }
                }
                if let Some(Frame::Object { key, expecting_key: expecting @ true }) = stack.last_mut() {
                    *key = Some(s);
                    *expecting = false;
                }
            }
            '{' => stack.push(Frame::Object { key: None, expecting_key: true }),
            '[' => stack.push(Frame::Array { index: 0 }),
            '}' | ']' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Frame::Object { key, expecting_key }) => {
                    *key = None;
                    *expecting_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// Check what a runtime relies on before it creates anything. Every problem is reported, one
/// per line, each naming the field (`process.args: must not be empty`).
///
/// Namespace types need no check of their own: `load` already refuses a type the spec does
/// not define (`linux.namespaces[0].type`), since [`LinuxNamespaceType`] lists every known one.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    let problems = problems(spec, bundle);
    if problems.is_empty() {
        return Ok(());
    }
    let file = bundle.join(CONFIG_FILE);
    let lines: Vec<String> = problems.iter().map(|p| format!("{}: {p}", file.display())).collect();
    Err(Error::invalid(lines.join("\n")))
}

/// Every problem of `spec`, each as `field.path: what is wrong`.
fn problems(spec: &Spec, bundle: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let version = spec.version();
    if version.split('.').next() != Some("1") {
        out.push(format!("ociVersion: {version:?} is not supported: the major version must be 1 (e.g. \"1.0.2\")"));
    }

    match spec.root() {
        None => out.push("root: required (the root filesystem, e.g. {\"path\": \"rootfs\"})".into()),
        Some(root) if root.path().as_os_str().is_empty() => out.push("root.path: required".into()),
        Some(root) => {
            let dir = bundle.join(root.path());
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => out.push(format!("root.path: {} is not a directory", dir.display())),
                Err(_) => out.push(format!(
                    "root.path: {} does not exist (build a root filesystem there, e.g. `podlab rootfs busybox {}`)",
                    dir.display(),
                    dir.display()
                )),
            }
        }
    }

    match spec.process() {
        None => out.push("process: required (what to run: args, cwd, user)".into()),
        Some(process) => {
            if process.args().as_ref().is_none_or(|a| a.is_empty()) {
                out.push("process.args: must not be empty (the program to run and its arguments)".into());
            }
            check_container_path(&mut out, "process.cwd", process.cwd());
        }
    }

    for (i, mount) in spec.mounts().iter().flatten().enumerate() {
        check_container_path(&mut out, &format!("mounts[{i}].destination"), mount.destination());
    }

    let linux = spec.linux().as_ref();
    let namespaces = linux.and_then(|l| l.namespaces().as_ref()).map(Vec::as_slice).unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if let Some(first) = namespaces[..i].iter().position(|o| o.typ() == ns.typ()) {
            out.push(format!(
                "linux.namespaces[{i}].type: duplicate namespace {:?} (already at linux.namespaces[{first}])",
                type_name(ns.typ())
            ));
        }
        if let Some(p) = ns.path()
            && !p.is_absolute()
        {
            out.push(format!("linux.namespaces[{i}].path: must be an absolute path (got {p:?})"));
        }
    }
    if let Some(linux) = linux {
        for (field, paths) in
            [("linux.maskedPaths", linux.masked_paths()), ("linux.readonlyPaths", linux.readonly_paths())]
        {
            for (i, p) in paths.iter().flatten().enumerate() {
                check_container_path(&mut out, &format!("{field}[{i}]"), Path::new(p));
            }
        }
        for (i, d) in linux.devices().iter().flatten().enumerate() {
            check_container_path(&mut out, &format!("linux.devices[{i}].path"), d.path());
        }
    }

    let has_uts = namespaces.iter().any(|ns| ns.typ() == LinuxNamespaceType::Uts);
    for (field, value) in [("hostname", spec.hostname()), ("domainname", spec.domainname())] {
        if let Some(name) = value.as_deref().filter(|n| !n.is_empty())
            && !has_uts
        {
            out.push(format!(
                "{field}: {name:?} needs a uts namespace in linux.namespaces (else the host's own name would change)"
            ));
        }
    }
    out
}

/// The spec's name of a namespace type (`network`, `mount`), as written in config.json.
fn type_name(typ: LinuxNamespaceType) -> String {
    serde_json::to_value(typ).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| typ.to_string())
}

/// A path inside the container: absolute, and no `..` that climbs above its root.
fn check_container_path(out: &mut Vec<String>, field: &str, path: &Path) {
    if !path.is_absolute() {
        out.push(format!("{field}: must be an absolute path inside the container (got {path:?})"));
    } else if escapes_root(path) {
        out.push(format!("{field}: {path:?} climbs out of the container's root with \"..\""));
    }
}

/// Whether `..` components take the path above the directory it starts from.
fn escapes_root(path: &Path) -> bool {
    let mut depth = 0usize;
    for c in path.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir if depth == 0 => return true,
            Component::ParentDir => depth -= 1,
            _ => {}
        }
    }
    false
}

/// What a pod's container asks for on top of its image (the Kubernetes container fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOverrides {
    /// `command`: replaces the image's Entrypoint, and drops its Cmd.
    pub command: Option<Vec<String>>,
    /// `args`: replaces the image's Cmd.
    pub args: Option<Vec<String>>,
    /// `env`: added after the image's Env; a name the image sets is replaced in place.
    pub env: Vec<(String, String)>,
    /// `workingDir`: replaces the image's WorkingDir.
    pub working_dir: Option<String>,
    /// `securityContext.runAsUser`/`runAsGroup` as (uid, gid): replaces the image's User.
    pub user: Option<(u32, u32)>,
    /// `resources.limits.cpu` in millicores.
    pub cpu_millis: Option<u64>,
    /// `resources.limits.memory` in bytes.
    pub memory_bytes: Option<u64>,
    /// The most processes the container may have.
    pub pids: Option<i64>,
    /// The container's hostname (the pod's name, in Kubernetes); "podlab" when None.
    pub hostname: Option<String>,
}

/// The spec of a container of an image, as a kubelet asks a runtime for it.
///
/// `image_config` is the image's config blob ([`crate::image::config_of`]), or just its `config` object.
/// The rest starts from [`default_spec`] (mounts, namespaces, masked paths), changed the way
/// containerd's CRI plugin does for Kubernetes: no terminal, a writable root, Docker's 14
/// default capabilities (no ambient ones) and `noNewPrivileges` false
/// (`allowPrivilegeEscalation` defaults to true). Then:
/// - args: `command` replaces Entrypoint and drops Cmd; `args` replaces Cmd; an empty list
///   counts as not set, as in the Kubernetes API;
/// - env: `PATH` when the image has none, the image's Env, then `overrides.env`;
/// - cwd: `working_dir`, else the image's WorkingDir, else `/`;
/// - user: `overrides.user`, else the image's numeric `uid[:gid]` (gid 0 when missing). A user
///   *name* cannot be resolved without the root filesystem: the ids stay 0 and the name is
///   kept in the [`UNRESOLVED_USER_ANNOTATION`] annotation;
/// - resources: CPU quota `millis * 100` per 100000us period (at least 1000us, as Kubernetes
///   rounds), the memory limit, the pids limit.
///
/// The result is not checked: [`validate`] reports, for instance, an image with neither
/// Entrypoint nor Cmd and no `command` (`process.args: must not be empty`).
pub fn from_image(image_config: &serde_json::Value, overrides: &ContainerOverrides) -> Spec {
    let config = image_config.get("config").unwrap_or(image_config);
    let image_list = |key: &str| -> Vec<String> {
        config
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .map(String::from)
            .collect()
    };
    let set = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());

    let args = match (set(&overrides.command), set(&overrides.args)) {
        (Some(command), args) => [command, args.unwrap_or_default()].concat(),
        (None, Some(args)) => [image_list("Entrypoint"), args].concat(),
        (None, None) => [image_list("Entrypoint"), image_list("Cmd")].concat(),
    };

    let mut env = vec![DEFAULT_PATH.to_string()];
    let image_env = image_list("Env");
    let extra = overrides.env.iter().map(|(k, v)| format!("{k}={v}"));
    for entry in image_env.into_iter().chain(extra) {
        set_env(&mut env, entry);
    }

    let cwd = overrides
        .working_dir
        .clone()
        .or_else(|| config.get("WorkingDir").and_then(|v| v.as_str()).map(String::from))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".to_string());

    let image_user = config.get("User").and_then(|v| v.as_str()).unwrap_or_default();
    let (uid, gid, unresolved) = match overrides.user {
        Some((uid, gid)) => (uid, gid, None),
        None => parse_user(image_user),
    };

    let mut spec = default_spec();
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(false));
        process.set_args(Some(args));
        process.set_env(Some(env));
        process.set_cwd(PathBuf::from(cwd));
        process.set_user(UserBuilder::default().uid(uid).gid(gid).build().expect("user"));
        process.set_capabilities(Some(kubernetes_capabilities()));
        process.set_no_new_privileges(Some(false));
    }
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(false));
    }
    if let Some(name) = unresolved {
        spec.set_annotations(Some([(UNRESOLVED_USER_ANNOTATION.to_string(), name)].into_iter().collect()));
    }
    spec.set_hostname(Some(overrides.hostname.clone().unwrap_or_else(|| DEFAULT_HOSTNAME.to_string())));

    if let Some(resources) = spec.linux_mut().as_mut().and_then(|l| l.resources_mut().as_mut()) {
        if let Some(millis) = overrides.cpu_millis.filter(|m| *m > 0) {
            let quota = i64::try_from(millis.saturating_mul(100)).unwrap_or(i64::MAX).max(MIN_CPU_QUOTA_US);
            resources
                .set_cpu(Some(LinuxCpuBuilder::default().quota(quota).period(CPU_PERIOD_US).build().expect("cpu")));
        }
        if let Some(bytes) = overrides.memory_bytes {
            let limit = i64::try_from(bytes).unwrap_or(i64::MAX);
            resources.set_memory(Some(LinuxMemoryBuilder::default().limit(limit).build().expect("memory")));
        }
        if let Some(limit) = overrides.pids {
            resources.set_pids(Some(LinuxPidsBuilder::default().limit(limit).build().expect("pids")));
        }
    }
    spec
}

/// Set `NAME=value` in `env`: replace an entry of the same name in place, else append.
fn set_env(env: &mut Vec<String>, entry: String) {
    let name = entry.split('=').next().unwrap_or_default().to_string();
    match env.iter_mut().find(|e| e.split('=').next() == Some(name.as_str())) {
        Some(old) => *old = entry,
        None => env.push(entry),
    }
}

/// An image's `User`: "uid", "uid:gid" → the ids; a name anywhere → ids 0 (for what is
/// numeric) and the whole string, to resolve later against the container's /etc/passwd.
fn parse_user(user: &str) -> (u32, u32, Option<String>) {
    if user.is_empty() {
        return (0, 0, None);
    }
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = u.parse::<u32>().ok();
    let gid = if g.is_empty() { Some(0) } else { g.parse::<u32>().ok() };
    match (uid, gid) {
        (Some(uid), Some(gid)) => (uid, gid, None),
        (uid, gid) => (uid.unwrap_or(0), gid.unwrap_or(0), Some(user.to_string())),
    }
}

/// The capabilities containerd (and Docker) give a Kubernetes container by default.
fn kubernetes_capabilities() -> LinuxCapabilities {
    use Capability::*;
    let set = caps(&[
        Chown,
        DacOverride,
        Fsetid,
        Fowner,
        Mknod,
        NetRaw,
        Setgid,
        Setuid,
        Setfcap,
        Setpcap,
        NetBindService,
        SysChroot,
        Kill,
        AuditWrite,
    ]);
    capability_sets(set, false)
}

/// `caps` in the bounding, effective and permitted sets (and ambient when asked), none
/// inheritable. (oci-spec's builders start from its own defaults, so every set is named.)
fn capability_sets(caps: HashSet<Capability>, ambient: bool) -> LinuxCapabilities {
    let mut c = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .build()
        .expect("capabilities");
    c.set_inheritable(None);
    c.set_ambient(ambient.then_some(caps));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> serde_json::Value {
        json!({
            "architecture": "amd64",
            "config": {
                "Entrypoint": ["/docker-entrypoint.sh"],
                "Cmd": ["nginx", "-g", "daemon off;"],
                "Env": ["PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.25"],
                "WorkingDir": "/srv",
                "User": "101:102"
            }
        })
    }

    fn args(spec: &Spec) -> Vec<String> {
        spec.process().as_ref().unwrap().args().clone().unwrap()
    }

    fn process(spec: &Spec) -> &oci_spec::runtime::Process {
        spec.process().as_ref().unwrap()
    }

    fn v(items: &[&str]) -> Vec<String> {
        strings(items)
    }

    #[test]
    fn no_overrides_runs_entrypoint_then_cmd() {
        let spec = from_image(&image(), &ContainerOverrides::default());
        assert_eq!(args(&spec), v(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]));
    }

    #[test]
    fn command_replaces_entrypoint_and_drops_cmd() {
        let o = ContainerOverrides { command: Some(v(&["/bin/sh"])), ..Default::default() };
        assert_eq!(args(&from_image(&image(), &o)), v(&["/bin/sh"]));
    }

    #[test]
    fn command_and_args_replace_both() {
        let o =
            ContainerOverrides { command: Some(v(&["/bin/sh"])), args: Some(v(&["-c", "true"])), ..Default::default() };
        assert_eq!(args(&from_image(&image(), &o)), v(&["/bin/sh", "-c", "true"]));
    }

    #[test]
    fn args_replace_cmd_after_entrypoint() {
        let o = ContainerOverrides { args: Some(v(&["nginx-debug"])), ..Default::default() };
        assert_eq!(args(&from_image(&image(), &o)), v(&["/docker-entrypoint.sh", "nginx-debug"]));
    }

    #[test]
    fn empty_lists_count_as_unset() {
        let o = ContainerOverrides { command: Some(vec![]), args: Some(vec![]), ..Default::default() };
        assert_eq!(args(&from_image(&image(), &o)), v(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]));
    }

    #[test]
    fn image_without_entrypoint_or_cmd_fails_validation() {
        let spec = from_image(&json!({"config": {}}), &ContainerOverrides::default());
        assert!(args(&spec).is_empty());
        let msgs = problems(&spec, Path::new("/nonexistent-bundle"));
        assert!(msgs.iter().any(|m| m.starts_with("process.args: must not be empty")), "{msgs:?}");
    }

    #[test]
    fn env_image_first_then_overrides_replacing_same_name() {
        let o = ContainerOverrides {
            env: vec![("NGINX_VERSION".into(), "1.27".into()), ("MODE".into(), "a=b".into())],
            ..Default::default()
        };
        let spec = from_image(&image(), &o);
        assert_eq!(
            process(&spec).env().clone().unwrap(),
            v(&["PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.27", "MODE=a=b"])
        );
    }

    #[test]
    fn env_gets_default_path_when_image_has_none() {
        let spec = from_image(&json!({"config": {"Env": ["A=1"]}}), &ContainerOverrides::default());
        assert_eq!(process(&spec).env().clone().unwrap(), v(&[DEFAULT_PATH, "A=1"]));
    }

    #[test]
    fn working_dir_override_image_and_default() {
        let o = ContainerOverrides { working_dir: Some("/work".into()), ..Default::default() };
        assert_eq!(process(&from_image(&image(), &o)).cwd(), Path::new("/work"));
        assert_eq!(process(&from_image(&image(), &ContainerOverrides::default())).cwd(), Path::new("/srv"));
        assert_eq!(process(&from_image(&json!({}), &ContainerOverrides::default())).cwd(), Path::new("/"));
    }

    #[test]
    fn inner_config_object_is_accepted_too() {
        let inner = image()["config"].clone();
        assert_eq!(args(&from_image(&inner, &ContainerOverrides::default()))[0], "/docker-entrypoint.sh");
    }

    #[test]
    fn user_from_image_numeric_and_override() {
        let ids = |spec: &Spec| (process(spec).user().uid(), process(spec).user().gid());
        assert_eq!(ids(&from_image(&image(), &ContainerOverrides::default())), (101, 102));
        let o = ContainerOverrides { user: Some((1000, 1000)), ..Default::default() };
        assert_eq!(ids(&from_image(&image(), &o)), (1000, 1000));
        let only_uid = from_image(&json!({"config": {"User": "1000"}}), &ContainerOverrides::default());
        assert_eq!(ids(&only_uid), (1000, 0));
        assert!(only_uid.annotations().is_none());
    }

    #[test]
    fn user_name_stays_root_and_is_noted() {
        let spec = from_image(&json!({"config": {"User": "nginx"}}), &ContainerOverrides::default());
        assert_eq!((process(&spec).user().uid(), process(&spec).user().gid()), (0, 0));
        let notes = spec.annotations().clone().unwrap();
        assert_eq!(notes.get(UNRESOLVED_USER_ANNOTATION).map(String::as_str), Some("nginx"));
        assert_eq!(parse_user("1000:staff"), (1000, 0, Some("1000:staff".into())));
        assert_eq!(parse_user(""), (0, 0, None));
    }

    #[test]
    fn resources_become_cgroup_limits() {
        let o = ContainerOverrides {
            cpu_millis: Some(500),
            memory_bytes: Some(64 << 20),
            pids: Some(32),
            ..Default::default()
        };
        let spec = from_image(&image(), &o);
        let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        let cpu = r.cpu().clone().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(50_000), Some(100_000)));
        assert_eq!(r.memory().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.pids().unwrap().limit(), 32);
        assert_eq!(r.devices().as_ref().unwrap().len(), 1, "the deny-all device rule stays");
    }

    #[test]
    fn tiny_cpu_limit_rounds_up_and_none_means_unlimited() {
        let o = ContainerOverrides { cpu_millis: Some(1), ..Default::default() };
        let spec = from_image(&image(), &o);
        let cpu = spec.linux().as_ref().unwrap().resources().as_ref().unwrap().cpu().clone().unwrap();
        assert_eq!(cpu.quota(), Some(MIN_CPU_QUOTA_US));
        let spec = from_image(&image(), &ContainerOverrides::default());
        let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        assert!(r.cpu().is_none() && r.memory().is_none() && r.pids().is_none());
    }

    #[test]
    fn kubernetes_defaults_and_hostname() {
        let spec = from_image(&image(), &ContainerOverrides::default());
        assert_eq!(spec.hostname().as_deref(), Some(DEFAULT_HOSTNAME));
        assert_eq!(process(&spec).terminal(), Some(false));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));
        let caps = process(&spec).capabilities().clone().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.ambient().is_none());
        let o = ContainerOverrides { hostname: Some("web-0".into()), ..Default::default() };
        assert_eq!(from_image(&image(), &o).hostname().as_deref(), Some("web-0"));
    }

    #[test]
    fn escaping_paths() {
        assert!(escapes_root(Path::new("/../x")));
        assert!(escapes_root(Path::new("/a/../../x")));
        assert!(!escapes_root(Path::new("/a/../x")));
        assert!(!escapes_root(Path::new("/a/b")));
    }

    #[test]
    fn json_path_of_an_error_position() {
        let text = "{\n  \"process\": {\n    \"args\": [\"sh\", 1]\n  }\n}";
        // serde_json reports the column of the last character it read.
        assert_eq!(json_path_at(text, 3, 20), "process.args[1]");
        assert_eq!(json_path_at(text, 2, 14), "process");
        assert_eq!(json_path_at("{\"a\": {\"b,c\": [{}, {\"d\": 2", 1, 27), "a.b,c[1].d");
    }
}
