//! `linux.resources` and `linux.cgroupsPath`: the container's cgroup.
//!
//! The spec names the cgroup (`cgroupsPath`) and its limits (`resources`: cpu shares, quota and
//! period; memory limit and memory+swap; the pids limit; which device nodes may be used). The
//! runtime creates the cgroup before the init starts, writes the limits, and puts the init in
//! it before it creates a cgroup namespace, so the container sees its own cgroup as `/`. The
//! values are the same cgroup files the lab 5 and 6 exercises write by hand.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};

use crate::error::{Error, Result};
use crate::primitives::cgroup::{self, Cgroup};

/// Where containers without a `cgroupsPath` go: `podlab/runtime/ID`.
pub const DEFAULT_PARENT: &str = "podlab/runtime";

/// The cgroup (relative to the cgroup root) for container `id`.
///
/// An absolute `cgroupsPath` (`/libpod_parent/libpod-ID`) and a relative one are both taken
/// from the cgroup root. With `--systemd-cgroup` the form is `slice:prefix:name`, which
/// systemd turns into `slice/prefix-name.scope`; podlab creates that path itself (it does not
/// talk to systemd), expanding a nested slice `a-b.slice` to `a.slice/a-b.slice`.
pub fn path_for(spec: &Spec, id: &str, systemd: bool) -> Result<PathBuf> {
    let raw = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let Some(raw) = raw.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(Path::new(DEFAULT_PARENT).join(id));
    };
    let text = raw.to_string_lossy().to_string();
    let rel = if systemd && !text.starts_with('/') && text.matches(':').count() == 2 {
        let mut parts = text.splitn(3, ':');
        let (slice, prefix, name) =
            (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut path = expand_slice(if slice.is_empty() { "system.slice" } else { slice });
        path.push(if prefix.is_empty() { format!("{name}.scope") } else { format!("{prefix}-{name}.scope") });
        path
    } else {
        PathBuf::from(text.trim_start_matches('/'))
    };
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Error::invalid(format!("linux.cgroupsPath {text:?} is not a plain cgroup path")));
    }
    Ok(rel)
}

/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice` (systemd's nesting of slice names).
fn expand_slice(slice: &str) -> PathBuf {
    let mut path = PathBuf::new();
    let stem = slice.strip_suffix(".slice").unwrap_or(slice);
    if stem == "-" || stem.is_empty() {
        return path;
    }
    let parts: Vec<&str> = stem.split('-').collect();
    for i in 1..=parts.len() {
        path.push(format!("{}.slice", parts[..i].join("-")));
    }
    path
}

/// Create the cgroup and write the spec's limits.
pub fn setup(spec: &Spec, rel: &Path) -> Result<Cgroup> {
    let cg = Cgroup::new(rel)?;
    cg.create()?;
    if let Err(e) = apply(spec, &cg) {
        let _ = cg.remove();
        return Err(e);
    }
    Ok(cg)
}

fn apply(spec: &Spec, cg: &Cgroup) -> Result<()> {
    let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().clone()) else {
        return Ok(());
    };
    let backend = cg.backend();
    let rel = cg.rel();
    if let Some(cpu) = res.cpu() {
        if let Some(shares) = cpu.shares() {
            backend.set_cpu_shares(rel, shares)?;
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            let period = cpu.period().unwrap_or(cgroup::DEFAULT_PERIOD_US);
            let quota = cpu.quota().and_then(|q| u64::try_from(q).ok()).filter(|q| *q > 0);
            crate::explain::say(format!(
                "echo {} {period} > cpu quota/period of {}",
                quota.map(|q| q.to_string()).unwrap_or_else(|| "max".into()),
                rel.display()
            ));
            backend.set_cpu_quota(rel, quota, period)?;
        }
    }
    if let Some(mem) = res.memory() {
        if let Some(limit) = mem.limit() {
            let bytes = u64::try_from(limit).ok().filter(|b| *b > 0);
            // memory.swap in the spec is memory + swap (v1's memsw): equal to the limit means no swap.
            let swap_off = bytes.is_some() && mem.swap() == Some(limit);
            crate::explain::say(format!(
                "echo {} > memory limit of {}{}",
                bytes.map(|b| b.to_string()).unwrap_or_else(|| "max".into()),
                rel.display(),
                if swap_off { " (and no swap)" } else { "" }
            ));
            backend.set_memory_limit(rel, bytes, swap_off)?;
        }
    }
    if let Some(pids) = res.pids() {
        let max = u64::try_from(pids.limit()).ok().filter(|m| *m > 0);
        crate::explain::say(format!(
            "echo {} > pids.max of {}",
            max.map(|m| m.to_string()).unwrap_or_else(|| "max".into()),
            rel.display()
        ));
        backend.set_pids_limit(rel, max)?;
    }
    if let Some(devices) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        let mut rules: Vec<(bool, String)> = devices.iter().map(device_rule).collect();
        // What every container may use whatever the spec says (runc adds the same): the
        // standard nodes, terminals, and mknod (not open) of any device.
        rules.extend(ALWAYS_ALLOWED.iter().map(|r| (true, r.to_string())));
        for d in spec.linux().as_ref().and_then(|l| l.devices().clone()).unwrap_or_default() {
            let kind = match d.typ() {
                LinuxDeviceType::B => "b",
                LinuxDeviceType::P => "p",
                _ => "c",
            };
            rules.push((true, format!("{kind} {}:{} rwm", d.major(), d.minor())));
        }
        match cg.set_device_rules(&rules) {
            Ok(()) => {}
            // cgroup v2 needs an eBPF program for this; the rest of the container still works.
            Err(Error::Missing(why)) => tracing::warn!("device rules not enforced: {why}"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Device rules added after the spec's own.
const ALWAYS_ALLOWED: [&str; 11] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// One device rule as the v1 devices controller writes it: `c 1:3 rwm`, `a` for all.
pub fn device_rule(d: &LinuxDeviceCgroup) -> (bool, String) {
    let kind = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "p",
        Some(LinuxDeviceType::A) | None => "a",
    };
    let num = |n: Option<i64>| n.filter(|n| *n >= 0).map(|n| n.to_string()).unwrap_or_else(|| "*".into());
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    let rule = if kind == "a" && d.major().is_none() && d.minor().is_none() && access == "rwm" {
        "a".to_string()
    } else {
        format!("{kind} {}:{} {access}", num(d.major()), num(d.minor()))
    };
    (d.allow(), rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(path: &str) -> Spec {
        let mut spec = crate::runtime::spec::default_spec();
        if let Some(l) = spec.linux_mut() {
            l.set_cgroups_path(Some(PathBuf::from(path)));
        }
        spec
    }

    #[test]
    fn cgroup_paths() {
        let spec = crate::runtime::spec::default_spec();
        assert_eq!(path_for(&spec, "c1", false).unwrap(), Path::new("podlab/runtime/c1"));
        assert_eq!(
            path_for(&spec_with("/libpod_parent/libpod-x"), "c", false).unwrap(),
            Path::new("libpod_parent/libpod-x")
        );
        assert_eq!(
            path_for(&spec_with("machine-podlab.slice:libpod:abc"), "c", true).unwrap(),
            Path::new("machine.slice/machine-podlab.slice/libpod-abc.scope")
        );
        assert!(path_for(&spec_with("/a/../../etc"), "c", false).is_err());
    }

    #[test]
    fn device_rules() {
        let d: LinuxDeviceCgroup = serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        assert_eq!(device_rule(&d), (false, "a".to_string()));
        let d: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#).unwrap();
        assert_eq!(device_rule(&d), (true, "c 1:3 rwm".to_string()));
        let d: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":136,"access":"rw"}"#).unwrap();
        assert_eq!(device_rule(&d), (true, "c 136:* rw".to_string()));
    }
}
