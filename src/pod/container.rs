//! A pod's container as an OCI bundle: what the kubelet asks the runtime for.
//!
//! The kubelet turns each container of the pod spec into a runtime request: the image's root
//! filesystem (an overlay of its layers plus a private writable layer), the command with
//! `$(VAR)` expanded, the environment, the volumes, the security context, the cgroup below the
//! pod's, and the pod's namespaces: the container *joins* the pause process's network, IPC and
//! UTS namespaces (`/proc/PAUSE/ns/net` in config.json) but gets its own mount namespace.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceType, Mount, MountBuilder, Spec,
};

use super::env::{self, Objects, PodFacts};
use super::qos::{self, QosClass};
use crate::error::{Error, IoContext, Result};
use crate::image::store::Store;
use crate::runtime::spec as ocispec;

/// What a container is built from besides its own spec.
pub struct PodParts<'a> {
    pub pod: &'a Pod,
    pub pod_dir: &'a Path,
    pub facts: &'a PodFacts,
    pub objects: &'a Objects,
    pub class: QosClass,
    /// The pause process (its namespaces are joined); None when the pod has none yet.
    pub pause_pid: i32,
    pub host_network: bool,
    pub node_memory: u64,
}

/// The image a container runs, found in the store.
pub struct ImageParts {
    pub manifest: String,
    pub config: serde_json::Value,
    pub layers: Vec<PathBuf>,
}

/// Find the image of `c` in the store, pulling it as `imagePullPolicy` says. Returns the image
/// and whether it was pulled. A failed pull of an image that is present locally (policy
/// `Always`, no registry reachable) falls back to the local copy with a warning.
pub fn image(store: &Store, c: &Container) -> Result<(ImageParts, Option<String>)> {
    let name = c.image.as_deref().unwrap_or_default();
    let policy = pull_policy(c);
    let local = crate::image::find(store, name);
    let mut warning = None;
    let manifest = match (policy.as_str(), local) {
        ("Never", Ok(m)) => m,
        ("Never", Err(_)) => {
            return Err(Error::Missing(format!(
                "ErrImageNeverPull: image {name:?} is not present and imagePullPolicy is Never"
            )));
        }
        ("IfNotPresent", Ok(m)) => m,
        (_, local) => match crate::image::pull::pull_blocking(store, name, &Default::default()) {
            Ok(m) => m,
            Err(e) => match local {
                Ok(m) => {
                    warning = Some(format!("pull of {name} failed ({e}); using the image already present"));
                    m
                }
                Err(_) => return Err(Error::Missing(format!("ErrImagePull: {e}"))),
            },
        },
    };
    let config = crate::image::config_of(store, &manifest)?;
    let layers = crate::image::rootfs::image_layers(store, &manifest)?;
    Ok((ImageParts { manifest, config, layers }, warning))
}

/// `imagePullPolicy`, defaulted as the API server does (Always for `:latest` or no tag).
pub fn pull_policy(c: &Container) -> String {
    match &c.image_pull_policy {
        Some(p) => p.clone(),
        None => default_pull_policy(c.image.as_deref().unwrap_or_default()).into(),
    }
}

/// The API server's default `imagePullPolicy` for `image`: `Always` for `:latest` or no tag,
/// else `IfNotPresent` (an image by digest never changes).
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The OCI spec for container `c` of the pod, with `rootfs` as its root.
pub fn spec(parts: &PodParts, c: &Container, image: &ImageParts, rootfs: &Path) -> Result<Spec> {
    let pod_spec = parts.pod.spec.as_ref().ok_or_else(|| Error::invalid("pod has no spec"))?;
    let environment = env::container_env(parts.pod, c, parts.facts, parts.objects)?;
    let resources = qos::container_resources(c)?;
    let values = qos::container_cgroup(&resources);
    let sc = c.security_context.as_ref();
    let psc = pod_spec.security_context.as_ref();
    let uid = sc.and_then(|s| s.run_as_user).or_else(|| psc.and_then(|s| s.run_as_user));
    let gid = sc.and_then(|s| s.run_as_group).or_else(|| psc.and_then(|s| s.run_as_group));
    let user = uid.map(|u| (to_id(u), gid.map(to_id).unwrap_or(0)));
    let overrides = ocispec::ContainerOverrides {
        command: c.command.as_ref().map(|v| env::expand_all(v, &environment)),
        args: c.args.as_ref().map(|v| env::expand_all(v, &environment)),
        env: environment.clone(),
        working_dir: c.working_dir.clone(),
        user,
        cpu_millis: resources.cpu_limit_milli,
        memory_bytes: resources.memory_limit,
        pids: None,
        hostname: Some(hostname(parts.pod)),
    };
    let mut spec = ocispec::from_image(&image.config, &overrides);
    // The hostname belongs to the pod's UTS namespace, which the pause set up and we join.
    spec.set_hostname(None);
    spec.set_root(Some(oci_spec::runtime::RootBuilder::default().path(rootfs).readonly(false).build().map_err(oci)?));

    // Supplemental groups and fsGroup of the pod.
    if let Some(process) = spec.process_mut() {
        let mut groups: Vec<u32> =
            psc.and_then(|s| s.supplemental_groups.clone()).unwrap_or_default().into_iter().map(to_id).collect();
        if let Some(fs_group) = psc.and_then(|s| s.fs_group) {
            groups.push(to_id(fs_group));
        }
        if !groups.is_empty() {
            let mut u = process.user().clone();
            u.set_additional_gids(Some(groups));
            process.set_user(u);
        }
        let adj = qos::oom_score_adj(parts.class, resources.memory_request, parts.node_memory);
        process.set_oom_score_adj(Some(reachable_oom_score_adj(adj)));
    }

    // Mounts: the image spec's defaults, then /etc/hosts, hostname and resolv.conf, then volumes.
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (file, dest) in [("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"), ("resolv.conf", "/etc/resolv.conf")] {
        let src = parts.pod_dir.join(file);
        if src.exists() {
            mounts.push(bind(&src, dest, false)?);
        }
    }
    mounts.extend(super::volumes::mounts(parts.pod, parts.pod_dir, c, &environment)?);
    spec.set_mounts(Some(mounts));

    // Namespaces: join the pause's, keep a private mount (and pid) namespace.
    if let Some(linux) = spec.linux_mut() {
        let join = |typ: LinuxNamespaceType, name: &str| -> LinuxNamespace {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            ns.set_path(Some(PathBuf::from(format!("/proc/{}/ns/{name}", parts.pause_pid))));
            ns
        };
        let own = |typ: LinuxNamespaceType| -> LinuxNamespace {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            ns
        };
        let mut list = vec![
            own(LinuxNamespaceType::Mount),
            join(LinuxNamespaceType::Ipc, "ipc"),
            join(LinuxNamespaceType::Uts, "uts"),
        ];
        if !parts.host_network {
            list.push(join(LinuxNamespaceType::Network, "net"));
        }
        if pod_spec.share_process_namespace == Some(true) {
            list.push(join(LinuxNamespaceType::Pid, "pid"));
        } else {
            list.push(own(LinuxNamespaceType::Pid));
        }
        list.push(own(LinuxNamespaceType::Cgroup));
        linux.set_namespaces(Some(list));
        let name = &c.name;
        linux.set_cgroups_path(Some(qos::container_cgroup_path(parts.class, &facts_uid(parts), name)));
        if let Some(r) = linux.resources_mut() {
            let mut cpu = LinuxCpuBuilder::default().shares(values.cpu_shares).period(values.cpu_period_us);
            if let Some(q) = values.cpu_quota_us {
                cpu = cpu.quota(i64::try_from(q).unwrap_or(i64::MAX));
            }
            r.set_cpu(Some(cpu.build().map_err(oci)?));
            if let Some(limit) = values.memory_limit {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                // Swap is off where memory is limited, as the kubelet does.
                r.set_memory(Some(LinuxMemoryBuilder::default().limit(limit).swap(limit).build().map_err(oci)?));
            }
        }
    }
    security(&mut spec, c)?;
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    let meta = &parts.pod.metadata;
    annotations.insert("io.kubernetes.pod.name".into(), meta.name.clone().unwrap_or_default());
    annotations
        .insert("io.kubernetes.pod.namespace".into(), meta.namespace.clone().unwrap_or_else(|| "default".into()));
    annotations.insert("io.kubernetes.pod.uid".into(), facts_uid(parts));
    annotations.insert("io.kubernetes.container.name".into(), c.name.clone());
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

fn facts_uid(parts: &PodParts) -> String {
    parts.facts.uid.clone()
}

/// `adj`, or our own score when `adj` is lower and we may not lower it: that takes
/// CAP_SYS_RESOURCE, which root lacks in some sandboxes (Guaranteed pods ask for -997).
fn reachable_oom_score_adj(adj: i32) -> i32 {
    let can_lower = caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_RESOURCE).unwrap_or(false);
    let own = std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|s| s.trim().parse::<i32>().ok());
    match own {
        Some(own) if !can_lower && adj < own => own,
        _ => adj,
    }
}

/// The pod's hostname: `spec.hostname`, else its name (cut to 63 characters, as Kubernetes does).
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

/// securityContext: privileged, capabilities, readOnlyRootFilesystem, allowPrivilegeEscalation,
/// seccompProfile.
fn security(spec: &mut Spec, c: &Container) -> Result<()> {
    let Some(sc) = &c.security_context else { return Ok(()) };
    if sc.read_only_root_filesystem == Some(true)
        && let Some(root) = spec.root_mut()
    {
        root.set_readonly(Some(true));
    }
    if sc.privileged == Some(true) {
        if let Some(p) = spec.process_mut() {
            let all: std::collections::HashSet<oci_spec::runtime::Capability> = all_capabilities();
            let mut caps = p.capabilities().clone().unwrap_or_default();
            caps.set_bounding(Some(all.clone()));
            caps.set_effective(Some(all.clone()));
            caps.set_permitted(Some(all));
            p.set_capabilities(Some(caps));
        }
        if let Some(linux) = spec.linux_mut() {
            linux.set_masked_paths(Some(vec![]));
            linux.set_readonly_paths(Some(vec![]));
        }
        // /sys writable, as for a privileged container.
        if let Some(mounts) = spec.mounts_mut() {
            for m in mounts.iter_mut().filter(|m| m.destination() == Path::new("/sys")) {
                let opts: Vec<String> =
                    m.options().clone().unwrap_or_default().into_iter().filter(|o| o != "ro").collect();
                m.set_options(Some(opts));
            }
        }
    }
    if let Some(caps) = &sc.capabilities
        && let Some(p) = spec.process_mut()
    {
        let mut sets = p.capabilities().clone().unwrap_or_default();
        let mut current: std::collections::HashSet<_> = sets.bounding().clone().unwrap_or_default();
        let parse = |name: &String| -> Result<Option<oci_spec::runtime::Capability>> {
            let upper = name.to_uppercase();
            if upper == "ALL" {
                return Ok(None);
            }
            let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
            oci_capability(&full)
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("container {}: unknown capability {name:?}", c.name)))
        };
        for name in caps.drop.iter().flatten() {
            match parse(name)? {
                None => current.clear(),
                Some(cap) => {
                    current.remove(&cap);
                }
            }
        }
        for name in caps.add.iter().flatten() {
            match parse(name)? {
                None => current = all_capabilities(),
                Some(cap) => {
                    current.insert(cap);
                }
            }
        }
        sets.set_bounding(Some(current.clone()));
        sets.set_effective(Some(current.clone()));
        sets.set_permitted(Some(current));
        p.set_capabilities(Some(sets));
    }
    if sc.allow_privilege_escalation == Some(false)
        && let Some(p) = spec.process_mut()
    {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &sc.seccomp_profile {
        match profile.type_.as_str() {
            "RuntimeDefault" => {
                if let Some(linux) = spec.linux_mut() {
                    linux.set_seccomp(Some(crate::primitives::seccomp::default_profile()));
                }
            }
            "Unconfined" => {}
            other => {
                return Err(Error::invalid(format!(
                    "container {}: seccompProfile type {other:?} is not supported (RuntimeDefault or Unconfined)",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

/// `CAP_NET_ADMIN` → the OCI capability.
fn oci_capability(name: &str) -> Option<oci_spec::runtime::Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// Every capability we hold ourselves (what `privileged` and `add: [ALL]` can give: a
/// capability this process lacks, such as CAP_SYS_RESOURCE in some sandboxes, cannot be passed on).
fn all_capabilities() -> std::collections::HashSet<oci_spec::runtime::Capability> {
    let held = caps::read(None, caps::CapSet::Permitted).unwrap_or_else(|_| caps::all());
    held.into_iter().filter_map(|c| oci_capability(&c.to_string())).collect()
}

fn to_id(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn oci(e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("build the container spec: {e}"))
}

/// A read-write (or read-only) bind mount of `src` at `dest`.
pub fn bind(src: &Path, dest: &str, readonly: bool) -> Result<Mount> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if readonly {
        options.push("ro".into());
    }
    MountBuilder::default().destination(dest).typ("bind").source(src).options(options).build().map_err(oci)
}

/// Write the bundle (config.json) of a container into `dir`.
pub fn write_bundle(spec: &Spec, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).ctx("create the bundle", dir)?;
    ocispec::save(spec, dir)
}
