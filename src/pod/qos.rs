//! QoS classes: how the kubelet turns a pod's requests and limits into cgroups.
//!
//! Only cpu and memory count, in every container including init containers. A pod is
//! **Guaranteed** when each container sets cpu and memory limits and its requests equal
//! them, **BestEffort** when no container sets any, and **Burstable** otherwise.
//!
//! A cpu request becomes a relative weight, `cpu.shares` = millicores × 1024 / 1000 (2 at
//! least; cgroup v2 rescales shares into `cpu.weight`): it only matters when the CPUs are busy.
//! A cpu limit becomes a hard CFS quota, millicores × 100 ms / 1000 of CPU time in every 100 ms
//! period (1 ms at least). A memory limit becomes `memory.max`; a memory request sets no file.
//! The kubelet's tree: `kubepods/pod<uid>/<container>` for Guaranteed pods, and
//! `kubepods/burstable/pod<uid>/...` or `kubepods/besteffort/pod<uid>/...` for the others
//! (podlab roots it at `podlab/`). When memory runs out, the kernel kills the process with the
//! highest OOM score, shifted by `oom_score_adj`: +1000 makes BestEffort go first, -997 keeps
//! Guaranteed for last, and Burstable sits between, safer the more memory it requested.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::error::{Error, Result};
use crate::primitives::cgroup::{DEFAULT_PERIOD_US, Limits, PARENT};
use crate::quantity;

/// The fewest cpu shares a cgroup can have (the kernel's minimum), given to no request.
pub const MIN_SHARES: u64 = 2;
/// The most cpu shares a cgroup can have (the kernel's maximum).
pub const MAX_SHARES: u64 = 262_144;
/// Shares for a request of one whole CPU.
pub const SHARES_PER_CPU: u64 = 1024;
/// The smallest CFS quota the kernel accepts, in µs (1 ms).
pub const MIN_QUOTA_US: u64 = 1000;
/// `oom_score_adj` of Guaranteed containers (the kubelet and kube-proxy get -999).
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// `oom_score_adj` of BestEffort containers: the first ones the OOM killer picks.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;
/// `oom_score_adj` of the pod's pause (sandbox) process: below every container.
pub const PAUSE_OOM_SCORE_ADJ: i32 = -998;

/// A pod's Quality-of-Service class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum QosClass {
    /// Every container has cpu and memory limits equal to its requests.
    Guaranteed,
    /// Some requests or limits, but not Guaranteed.
    Burstable,
    /// No cpu or memory request or limit anywhere.
    BestEffort,
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        })
    }
}

/// The pod's QoS class, by the kubelet's rules (init containers count; only cpu and memory matter;
/// a limit without a request means request = limit, as the API server defaults it).
///
/// A quantity of zero (`"0"`, `"0m"`) counts as not set, as in the kubelet. A quantity that does not
/// parse makes its container Burstable ([`container_resources`] and [`pod_cgroup`] report it).
/// Ephemeral containers do not count. Pod-level `spec.resources` are not considered (see
/// [`pod_cgroup`]).
pub fn class(spec: &PodSpec) -> QosClass {
    let mut pod: Option<QosClass> = None;
    for c in all_containers(spec) {
        let one = container_resources(c).map(|r| r.class()).unwrap_or(QosClass::Burstable);
        pod = match pod {
            _ if one == QosClass::Burstable => return QosClass::Burstable,
            None => Some(one),
            // One Guaranteed and one BestEffort container make a Burstable pod.
            Some(p) if p != one => return QosClass::Burstable,
            same => same,
        };
    }
    pod.unwrap_or(QosClass::BestEffort)
}

/// Resources of one container in kubelet units, after defaulting requests from limits.
/// `None` is "not set"; a zero quantity is also `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerResources {
    /// cpu request in millicores.
    pub cpu_request_milli: Option<u64>,
    /// cpu limit in millicores.
    pub cpu_limit_milli: Option<u64>,
    /// memory request in bytes.
    pub memory_request: Option<u64>,
    /// memory limit in bytes.
    pub memory_limit: Option<u64>,
}

impl ContainerResources {
    /// The class this container alone would give a pod.
    pub fn class(&self) -> QosClass {
        if *self == ContainerResources::default() {
            QosClass::BestEffort
        } else if self.cpu_request_milli == self.cpu_limit_milli
            && self.memory_request == self.memory_limit
            && self.cpu_limit_milli.is_some()
            && self.memory_limit.is_some()
        {
            QosClass::Guaranteed
        } else {
            QosClass::Burstable
        }
    }
}

/// The cpu and memory of a container, in millicores and bytes. A request that is absent takes the
/// limit's value (the API server's defaulting); a request written as `"0"` stays zero.
/// A quantity that does not parse gives [`Error::Invalid`] naming the container and the field.
pub fn container_resources(c: &Container) -> Result<ContainerResources> {
    let what = format!("container {:?}", c.name);
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let cpu_limit = read(limits, "limits", Resource::Cpu, &what)?;
    let memory_limit = read(limits, "limits", Resource::Memory, &what)?;
    let cpu_request = read(requests, "requests", Resource::Cpu, &what)?.or(cpu_limit);
    let memory_request = read(requests, "requests", Resource::Memory, &what)?.or(memory_limit);
    Ok(ContainerResources {
        cpu_request_milli: cpu_request.flatten(),
        cpu_limit_milli: cpu_limit.flatten(),
        memory_request: memory_request.flatten(),
        memory_limit: memory_limit.flatten(),
    })
}

/// cgroup values for a container or a pod, as the kubelet computes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupValues {
    /// cgroup v1 `cpu.shares`; on v2 `cpu.weight` is derived from it.
    pub cpu_shares: u64,
    /// CFS quota in µs per period (`None`: no cpu limit, `max`).
    pub cpu_quota_us: Option<u64>,
    /// CFS period in µs (always the kubelet's default, 100 ms).
    pub cpu_period_us: u64,
    /// Memory limit in bytes (`None`: unlimited).
    pub memory_limit: Option<u64>,
    /// Most tasks at once (`None`: unlimited; the kubelet's `--pod-max-pids` is off by default).
    pub pids_limit: Option<u64>,
}

impl CgroupValues {
    /// The same values as limits for `primitives::cgroup::Cgroup::apply`. Swap is forbidden where
    /// memory is limited, as the kubelet does by default.
    pub fn limits(&self) -> Limits {
        let period = self.cpu_period_us.max(1);
        Limits {
            cpu_millis: self.cpu_quota_us.map(|q| mul_div(q, 1000, period)),
            cpu_shares: Some(self.cpu_shares),
            memory_bytes: self.memory_limit,
            swap_off: self.memory_limit.is_some(),
            pids: self.pids_limit,
        }
    }
}

/// cgroup values for one container: shares from the cpu request, a CFS quota from the cpu limit,
/// the memory limit as is.
pub fn container_cgroup(r: &ContainerResources) -> CgroupValues {
    CgroupValues {
        cpu_shares: milli_cpu_to_shares(r.cpu_request_milli.unwrap_or(0)),
        cpu_quota_us: milli_cpu_to_quota(r.cpu_limit_milli.unwrap_or(0), DEFAULT_PERIOD_US),
        cpu_period_us: DEFAULT_PERIOD_US,
        memory_limit: r.memory_limit,
        pids_limit: None,
    }
}

/// cpu shares for a request in millicores: `milli × 1024 / 1000`, kept within
/// [`MIN_SHARES`]..=[`MAX_SHARES`] (no request gets the minimum, 2).
pub fn milli_cpu_to_shares(milli: u64) -> u64 {
    mul_div(milli, SHARES_PER_CPU, 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota in µs for a limit in millicores: `milli × period / 1000`, at least [`MIN_QUOTA_US`];
/// `None` (no quota) for no limit.
pub fn milli_cpu_to_quota(milli: u64, period_us: u64) -> Option<u64> {
    (milli > 0).then(|| mul_div(milli, period_us, 1000).max(MIN_QUOTA_US))
}

/// The pod-level cgroup values, as the kubelet sets them on `pod<uid>`.
///
/// Requests and limits add up over the app containers; an init container runs before them, so the
/// pod needs the larger of that sum and each init container (a sidecar, an init container with
/// `restartPolicy: Always`, keeps running: it adds to the sum and to every init container after it).
/// `spec.overhead` adds to the requests and to the limits that are set. BestEffort pods get shares 2
/// and nothing else. For Burstable pods the cpu quota is set only if every container has a cpu limit,
/// and the memory limit only if every container has a memory limit.
///
/// Pod-level `spec.resources` (the PodLevelResources feature) are refused with [`Error::Invalid`]:
/// podlab computes only from the containers. A quantity that does not parse is an error too.
pub fn pod_cgroup(spec: &PodSpec) -> Result<CgroupValues> {
    if let Some(r) = &spec.resources {
        let names = r.requests.iter().chain(r.limits.iter()).flat_map(|m| m.keys());
        if names.into_iter().any(|n| n == "cpu" || n == "memory") {
            return Err(Error::invalid(
                "pod-level resources (spec.resources) are not supported: set requests and limits on each container",
            ));
        }
    }
    let apps = spec.containers.iter().map(container_resources).collect::<Result<Vec<_>>>()?;
    let inits = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| Ok((c.restart_policy.as_deref() == Some("Always"), container_resources(c)?)))
        .collect::<Result<Vec<_>>>()?;
    let overhead = spec.overhead.as_ref();
    let overhead_cpu = read(overhead, "overhead", Resource::Cpu, "pod")?.flatten().unwrap_or(0);
    let overhead_memory = read(overhead, "overhead", Resource::Memory, "pod")?.flatten().unwrap_or(0);

    let class = class(spec);
    if class == QosClass::BestEffort {
        return Ok(CgroupValues {
            cpu_shares: MIN_SHARES,
            cpu_quota_us: None,
            cpu_period_us: DEFAULT_PERIOD_US,
            memory_limit: None,
            pids_limit: None,
        });
    }
    let (cpu_request, _) = aggregate(&apps, &inits, |r| r.cpu_request_milli);
    let (cpu_limit, cpu_declared) = aggregate(&apps, &inits, |r| r.cpu_limit_milli);
    let (memory_limit, memory_declared) = aggregate(&apps, &inits, |r| r.memory_limit);
    let cpu_request = cpu_request.saturating_add(overhead_cpu);
    // Overhead is added only to limits that are set: an unlimited pod stays unlimited.
    let cpu_limit = if cpu_limit > 0 { cpu_limit.saturating_add(overhead_cpu) } else { 0 };
    let memory_limit = if memory_limit > 0 { memory_limit.saturating_add(overhead_memory) } else { 0 };

    let guaranteed = class == QosClass::Guaranteed;
    Ok(CgroupValues {
        cpu_shares: milli_cpu_to_shares(cpu_request),
        cpu_quota_us: if guaranteed || cpu_declared { milli_cpu_to_quota(cpu_limit, DEFAULT_PERIOD_US) } else { None },
        cpu_period_us: DEFAULT_PERIOD_US,
        memory_limit: if (guaranteed || memory_declared) && memory_limit > 0 { Some(memory_limit) } else { None },
        pids_limit: None,
    })
}

/// The parent cgroup of a class's pods (relative to the cgroup root): `podlab/kubepods` for
/// Guaranteed pods, `podlab/kubepods/burstable`, `podlab/kubepods/besteffort`.
pub fn class_cgroup(class: QosClass) -> PathBuf {
    let kubepods = PathBuf::from(PARENT).join("kubepods");
    match class {
        QosClass::Guaranteed => kubepods,
        QosClass::Burstable => kubepods.join("burstable"),
        QosClass::BestEffort => kubepods.join("besteffort"),
    }
}

/// The pod's cgroup: `<class cgroup>/pod<uid>`, the uid kept as it is (dashes included), as the
/// kubelet's cgroupfs driver names it. A '/' or NUL in the uid becomes '_', so the path always has
/// exactly one component more than the class cgroup.
pub fn pod_cgroup_path(class: QosClass, pod_uid: &str) -> PathBuf {
    class_cgroup(class).join(format!("pod{}", component(pod_uid)))
}

/// A container's cgroup below its pod's: `<pod cgroup>/<container>` (the real kubelet's runtime
/// uses the container id; podlab uses the name it is given, made a single path component).
pub fn container_cgroup_path(class: QosClass, pod_uid: &str, container: &str) -> PathBuf {
    let name = match container {
        "" | "." | ".." => "_".to_string(),
        name => component(name),
    };
    pod_cgroup_path(class, pod_uid).join(name)
}

/// `oom_score_adj` for a container: Guaranteed -997, BestEffort 1000, Burstable
/// `1000 - 1000 × memory_request / node_memory`, raised to at least 3 (above any Guaranteed
/// container: 1000 - 997) and lowered to 999 when it would equal BestEffort's 1000.
/// `node_memory` is the node's memory in bytes; 0 (unknown) gives 999.
///
/// The kubelet also lowers a sidecar's score to that of the pod's smallest app container; callers
/// pass that container's request for sidecars. The pause process gets [`PAUSE_OOM_SCORE_ADJ`].
pub fn oom_score_adj(class: QosClass, memory_request: Option<u64>, node_memory: u64) -> i32 {
    match class {
        QosClass::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {
            let floor = 1000 + GUARANTEED_OOM_SCORE_ADJ;
            if node_memory == 0 {
                return BEST_EFFORT_OOM_SCORE_ADJ - 1;
            }
            let share = u128::from(memory_request.unwrap_or(0)) * 1000 / u128::from(node_memory);
            let adj = 1000 - i32::try_from(share).unwrap_or(i32::MAX).min(1000);
            adj.clamp(floor, BEST_EFFORT_OOM_SCORE_ADJ - 1)
        }
    }
}

/// A `kubectl describe`-style line for learners, e.g.
/// `Burstable: cpu.shares=512 (requests 500m), cfs_quota=100000/100000 (limits 1), memory=128Mi`.
pub fn explain(class: QosClass, v: &CgroupValues) -> String {
    let shares = if v.cpu_shares <= MIN_SHARES {
        format!("cpu.shares={} (the minimum: requests 2m or less)", v.cpu_shares)
    } else {
        // The kubelet's inverse: millicores = ceil(shares × 1000 / 1024).
        let milli = (u128::from(v.cpu_shares) * 1000).div_ceil(u128::from(SHARES_PER_CPU));
        format!("cpu.shares={} (requests {})", v.cpu_shares, format_cpu(u64::try_from(milli).unwrap_or(u64::MAX)))
    };
    let quota = match v.cpu_quota_us {
        None => "cfs_quota=max (no cpu limit)".to_string(),
        Some(q) if q <= MIN_QUOTA_US => format!("cfs_quota={q}/{} (the 1ms minimum)", v.cpu_period_us),
        Some(q) => {
            let milli = mul_div(q, 1000, v.cpu_period_us.max(1));
            format!("cfs_quota={q}/{} (limits {})", v.cpu_period_us, format_cpu(milli))
        }
    };
    let memory = match v.memory_limit {
        None => "memory=max (no memory limit)".to_string(),
        Some(bytes) => format!("memory={}", quantity::format_bytes(bytes)),
    };
    let pids = v.pids_limit.map(|p| format!(", pids.max={p}")).unwrap_or_default();
    format!("{class}: {shares}, {quota}, {memory}{pids}")
}

/// Millicores as Kubernetes writes them: `1`, `2`, `250m`, `1500m`.
fn format_cpu(milli: u64) -> String {
    if milli % 1000 == 0 { (milli / 1000).to_string() } else { format!("{milli}m") }
}

/// `a × b / c` without overflow (saturating at `u64::MAX`); `c` must not be 0.
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    u64::try_from(u128::from(a) * u128::from(b) / u128::from(c.max(1))).unwrap_or(u64::MAX)
}

/// App containers then init containers (ephemeral containers never count).
fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers.iter().chain(spec.init_containers.iter().flatten())
}

/// One resource value summed over a pod's containers, the kubelet's way:
/// `max(sum(app containers) + sum(sidecars), max over init containers of (its own + the sidecars
/// started before it))`. Also says whether every container (and every init step) has the value set.
fn aggregate(
    apps: &[ContainerResources],
    inits: &[(bool, ContainerResources)],
    pick: impl Fn(&ContainerResources) -> Option<u64>,
) -> (u64, bool) {
    let mut declared = true;
    let mut total = 0u64;
    for r in apps {
        let value = pick(r).unwrap_or(0);
        declared &= value > 0;
        total = total.saturating_add(value);
    }
    let mut sidecars = 0u64;
    let mut init_peak = 0u64;
    for (sidecar, r) in inits {
        let own = pick(r).unwrap_or(0);
        let in_use = if *sidecar {
            total = total.saturating_add(own);
            sidecars = sidecars.saturating_add(own);
            sidecars
        } else {
            own.saturating_add(sidecars)
        };
        declared &= in_use > 0;
        init_peak = init_peak.max(in_use);
    }
    (total.max(init_peak), declared)
}

#[derive(Clone, Copy)]
enum Resource {
    Cpu,
    Memory,
}

/// Look up cpu or memory in a resource list: `None` when absent, `Some(None)` when zero,
/// `Some(Some(value))` in millicores (cpu) or bytes (memory).
fn read(
    list: Option<&BTreeMap<String, Quantity>>,
    section: &str,
    resource: Resource,
    what: &str,
) -> Result<Option<Option<u64>>> {
    let name = match resource {
        Resource::Cpu => "cpu",
        Resource::Memory => "memory",
    };
    let Some(Quantity(text)) = list.and_then(|l| l.get(name)) else {
        return Ok(None);
    };
    // Zero in any spelling ("0", "0m", "0Mi") means "not set", as the kubelet's IsZero.
    if quantity::parse_bytes(text).ok() == Some(0) {
        return Ok(Some(None));
    }
    let value = match resource {
        Resource::Cpu => quantity::parse_cpu(text),
        Resource::Memory => quantity::parse_bytes(text),
    };
    value.map(|v| Some(Some(v))).map_err(|e| Error::invalid(format!("{what}: resources.{section}.{name}: {e}")))
}

/// `text` as one path component: '/' and NUL become '_'.
fn component(text: &str) -> String {
    text.replace(['/', '\0'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn list(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        if pairs.is_empty() {
            return None;
        }
        Some(pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect())
    }

    fn ctr(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let resources = ResourceRequirements { requests: list(requests), limits: list(limits), ..Default::default() };
        Container { name: name.into(), resources: Some(resources), ..Default::default() }
    }

    fn sidecar(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container { restart_policy: Some("Always".into()), ..ctr(name, requests, limits) }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> PodSpec {
        PodSpec { containers, init_containers: (!init.is_empty()).then_some(init), ..Default::default() }
    }

    const FULL: &[(&str, &str)] = &[("cpu", "500m"), ("memory", "128Mi")];

    #[test]
    fn classes() {
        use QosClass::*;
        let none: &[(&str, &str)] = &[];
        let cases: Vec<(&str, PodSpec, QosClass)> = vec![
            ("no containers", pod(vec![], vec![]), BestEffort),
            ("nothing set", pod(vec![ctr("a", none, none)], vec![]), BestEffort),
            ("no resources field", pod(vec![Container { name: "a".into(), ..Default::default() }], vec![]), BestEffort),
            ("limits only: requests default to them", pod(vec![ctr("a", none, FULL)], vec![]), Guaranteed),
            ("requests equal limits", pod(vec![ctr("a", FULL, FULL)], vec![]), Guaranteed),
            (
                "equal in other spellings",
                pod(vec![ctr("a", &[("cpu", "0.5"), ("memory", "134217728")], FULL)], vec![]),
                Guaranteed,
            ),
            ("requests only", pod(vec![ctr("a", FULL, none)], vec![]), Burstable),
            (
                "requests below limits",
                pod(vec![ctr("a", &[("cpu", "100m"), ("memory", "64Mi")], FULL)], vec![]),
                Burstable,
            ),
            ("cpu limit only", pod(vec![ctr("a", none, &[("cpu", "1")])], vec![]), Burstable),
            ("memory request only", pod(vec![ctr("a", &[("memory", "1Gi")], none)], vec![]), Burstable),
            (
                "one container missing its memory limit",
                pod(vec![ctr("a", none, FULL), ctr("b", none, &[("cpu", "1")])], vec![]),
                Burstable,
            ),
            (
                "one Guaranteed, one BestEffort",
                pod(vec![ctr("a", none, FULL), ctr("b", none, none)], vec![]),
                Burstable,
            ),
            (
                "only an init container has resources",
                pod(vec![ctr("a", none, none)], vec![ctr("i", none, FULL)]),
                Burstable,
            ),
            ("init and app both Guaranteed", pod(vec![ctr("a", none, FULL)], vec![ctr("i", FULL, FULL)]), Guaranteed),
            (
                "init container BestEffort, app Guaranteed",
                pod(vec![ctr("a", none, FULL)], vec![ctr("i", none, none)]),
                Burstable,
            ),
            ("init container Burstable", pod(vec![ctr("a", none, FULL)], vec![ctr("i", FULL, none)]), Burstable),
            (
                "zero requests are unset",
                pod(vec![ctr("a", &[("cpu", "0"), ("memory", "0")], none)], vec![]),
                BestEffort,
            ),
            (
                "zero limits are unset",
                pod(vec![ctr("a", none, &[("cpu", "0m"), ("memory", "0Mi")])], vec![]),
                BestEffort,
            ),
            (
                "explicit zero request is not defaulted from the limit",
                pod(vec![ctr("a", &[("cpu", "0")], FULL)], vec![]),
                Burstable,
            ),
            (
                "other resources do not count",
                pod(vec![ctr("a", none, &[("ephemeral-storage", "1Gi")])], vec![]),
                BestEffort,
            ),
            (
                "extended resources do not count",
                pod(vec![ctr("a", none, &[("nvidia.com/gpu", "1")]), ctr("b", none, none)], vec![]),
                BestEffort,
            ),
            (
                "extended resources do not spoil Guaranteed",
                pod(vec![ctr("a", none, &[("cpu", "1"), ("memory", "1Gi"), ("nvidia.com/gpu", "1")])], vec![]),
                Guaranteed,
            ),
            ("a bad quantity", pod(vec![ctr("a", none, &[("cpu", "lots"), ("memory", "1Gi")])], vec![]), Burstable),
        ];
        for (name, spec, want) in cases {
            assert_eq!(class(&spec), want, "{name}");
        }
        let ephemeral =
            PodSpec { ephemeral_containers: Some(vec![Default::default()]), ..pod(vec![ctr("a", none, FULL)], vec![]) };
        assert_eq!(class(&ephemeral), Guaranteed, "ephemeral containers do not count");
    }

    #[test]
    fn display() {
        assert_eq!(QosClass::Guaranteed.to_string(), "Guaranteed");
        assert_eq!(QosClass::Burstable.to_string(), "Burstable");
        assert_eq!(QosClass::BestEffort.to_string(), "BestEffort");
        assert_eq!(serde_json::to_string(&QosClass::BestEffort).unwrap(), "\"BestEffort\"");
    }

    #[test]
    fn container_resources_default_requests_from_limits() {
        let r = container_resources(&ctr("a", &[("memory", "64Mi")], &[("cpu", "1.5"), ("memory", "128Mi")])).unwrap();
        assert_eq!(
            r,
            ContainerResources {
                cpu_request_milli: Some(1500),
                cpu_limit_milli: Some(1500),
                memory_request: Some(64 << 20),
                memory_limit: Some(128 << 20),
            }
        );
        let zero = container_resources(&ctr("a", &[("cpu", "0")], &[("cpu", "2")])).unwrap();
        assert_eq!(zero.cpu_request_milli, None);
        assert_eq!(zero.cpu_limit_milli, Some(2000));
    }

    #[test]
    fn bad_quantities_name_container_and_field() {
        let err = container_resources(&ctr("web", &[], &[("memory", "64MB")])).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert!(msg.contains("\"web\"") && msg.contains("resources.limits.memory") && msg.contains("64MB"), "{msg}");
        let msg = container_resources(&ctr("db", &[("cpu", "-1")], &[])).unwrap_err().to_string();
        assert!(msg.contains("\"db\"") && msg.contains("resources.requests.cpu"), "{msg}");
        let msg = pod_cgroup(&pod(vec![ctr("ok", FULL, FULL)], vec![ctr("setup", &[("cpu", "x")], &[])]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"setup\"") && msg.contains("resources.requests.cpu"), "{msg}");
    }

    #[test]
    fn shares_and_quota() {
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(500), 512);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_shares(u64::MAX), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(250, 100_000), Some(25_000));
        assert_eq!(milli_cpu_to_quota(1000, 100_000), Some(100_000));
        assert_eq!(milli_cpu_to_quota(1, 100_000), Some(1000));
        assert_eq!(milli_cpu_to_quota(10, 100_000), Some(1000));
        assert_eq!(milli_cpu_to_quota(0, 100_000), None);
    }

    #[test]
    fn container_values() {
        let v = |req: &[(&str, &str)], lim: &[(&str, &str)]| {
            container_cgroup(&container_resources(&ctr("a", req, lim)).unwrap())
        };
        assert_eq!(
            v(&[("cpu", "100m")], &[("cpu", "250m"), ("memory", "128Mi")]),
            CgroupValues {
                cpu_shares: 102,
                cpu_quota_us: Some(25_000),
                cpu_period_us: 100_000,
                memory_limit: Some(128 << 20),
                pids_limit: None
            }
        );
        let one = v(&[], &[("cpu", "1")]);
        assert_eq!((one.cpu_shares, one.cpu_quota_us), (1024, Some(100_000)));
        let tiny = v(&[], &[("cpu", "1m")]);
        assert_eq!((tiny.cpu_shares, tiny.cpu_quota_us), (2, Some(1000)));
        let nothing = v(&[], &[]);
        assert_eq!((nothing.cpu_shares, nothing.cpu_quota_us, nothing.memory_limit), (2, None, None));
    }

    #[test]
    fn pod_values_sum_app_containers() {
        let spec = pod(vec![ctr("a", &[], FULL), ctr("b", &[], &[("cpu", "250m"), ("memory", "64Mi")])], vec![]);
        assert_eq!(class(&spec), QosClass::Guaranteed);
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!(v.cpu_shares, milli_cpu_to_shares(750));
        assert_eq!(v.cpu_quota_us, Some(75_000));
        assert_eq!(v.memory_limit, Some(192 << 20));

        // Burstable: one container without a cpu limit means no pod quota; memory limits are all there.
        let spec = pod(vec![ctr("a", &[("cpu", "100m")], &[("memory", "64Mi")]), ctr("b", &[], FULL)], vec![]);
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!(v.cpu_shares, milli_cpu_to_shares(600));
        assert_eq!(v.cpu_quota_us, None);
        assert_eq!(v.memory_limit, Some(192 << 20));

        // Burstable with a container that has no memory limit: no pod memory limit.
        let spec = pod(vec![ctr("a", &[("memory", "64Mi")], &[("cpu", "1")]), ctr("b", &[], &[("cpu", "1")])], vec![]);
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!((v.cpu_quota_us, v.memory_limit), (Some(200_000), None));
    }

    #[test]
    fn pod_values_with_init_containers() {
        // An init container bigger than the app containers together sets the pod's size.
        let apps = vec![ctr("a", &[], &[("cpu", "200m"), ("memory", "64Mi")]), ctr("b", &[], FULL)];
        let spec = pod(apps.clone(), vec![ctr("init", &[], &[("cpu", "2"), ("memory", "100Mi")])]);
        assert_eq!(class(&spec), QosClass::Guaranteed);
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!(v.cpu_shares, 2048, "max(700m, 2) = 2 cpus");
        assert_eq!(v.cpu_quota_us, Some(200_000));
        assert_eq!(v.memory_limit, Some(192 << 20), "max(192Mi, 100Mi)");

        // A smaller init container changes nothing.
        let spec = pod(apps.clone(), vec![ctr("init", &[], &[("cpu", "100m"), ("memory", "1Mi")])]);
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!(
            (v.cpu_shares, v.cpu_quota_us, v.memory_limit),
            (milli_cpu_to_shares(700), Some(70_000), Some(192 << 20))
        );

        // An init container without limits leaves the Burstable pod without a quota or a memory limit.
        let spec = pod(apps.clone(), vec![ctr("init", &[("cpu", "1")], &[])]);
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!((v.cpu_shares, v.cpu_quota_us, v.memory_limit), (1024, None, None));

        // A sidecar adds to the app containers and to the init containers after it.
        let spec = pod(
            apps,
            vec![
                sidecar("proxy", &[], &[("cpu", "300m"), ("memory", "32Mi")]),
                ctr("migrate", &[], &[("cpu", "900m"), ("memory", "200Mi")]),
            ],
        );
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!(v.cpu_quota_us, Some(120_000), "max(700m + 300m, 900m + 300m)");
        assert_eq!(v.memory_limit, Some(232 << 20), "max(192Mi + 32Mi, 200Mi + 32Mi)");
    }

    #[test]
    fn pod_values_best_effort_overhead_and_pod_level() {
        let v = pod_cgroup(&pod(vec![ctr("a", &[], &[]), ctr("b", &[], &[])], vec![])).unwrap();
        assert_eq!(
            v,
            CgroupValues {
                cpu_shares: 2,
                cpu_quota_us: None,
                cpu_period_us: 100_000,
                memory_limit: None,
                pids_limit: None
            }
        );

        let spec = PodSpec {
            overhead: list(&[("cpu", "100m"), ("memory", "16Mi")]),
            ..pod(vec![ctr("a", &[("cpu", "400m")], &[("memory", "64Mi")])], vec![])
        };
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!((v.cpu_shares, v.cpu_quota_us, v.memory_limit), (512, None, Some(80 << 20)));

        let spec = PodSpec {
            resources: Some(ResourceRequirements { limits: list(&[("memory", "1Gi")]), ..Default::default() }),
            ..pod(vec![ctr("a", &[], &[])], vec![])
        };
        let msg = pod_cgroup(&spec).unwrap_err().to_string();
        assert!(msg.contains("spec.resources"), "{msg}");
    }

    #[test]
    fn paths() {
        let uid = "5f0c6a8e-1b2d-4c3e-9f00-123456789abc";
        assert_eq!(class_cgroup(QosClass::Guaranteed), PathBuf::from("podlab/kubepods"));
        assert_eq!(class_cgroup(QosClass::Burstable), PathBuf::from("podlab/kubepods/burstable"));
        assert_eq!(class_cgroup(QosClass::BestEffort), PathBuf::from("podlab/kubepods/besteffort"));
        assert_eq!(pod_cgroup_path(QosClass::Guaranteed, uid), PathBuf::from(format!("podlab/kubepods/pod{uid}")));
        assert_eq!(
            container_cgroup_path(QosClass::Burstable, uid, "web"),
            PathBuf::from(format!("podlab/kubepods/burstable/pod{uid}/web"))
        );
        assert_eq!(
            container_cgroup_path(QosClass::BestEffort, "../x", ".."),
            PathBuf::from("podlab/kubepods/besteffort/pod.._x/_")
        );
        assert_eq!(container_cgroup_path(QosClass::BestEffort, "u", "a/b").components().count(), 5);
    }

    #[test]
    fn oom_scores() {
        let gi = 1u64 << 30;
        assert_eq!(oom_score_adj(QosClass::Guaranteed, Some(gi), 8 * gi), -997);
        assert_eq!(oom_score_adj(QosClass::BestEffort, None, 8 * gi), 1000);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(4 * gi), 8 * gi), 500);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(gi), 10 * gi), 900);
        assert_eq!(
            oom_score_adj(QosClass::Burstable, Some(8 * gi / 10), 8 * gi),
            901,
            "integer division, as the kubelet"
        );
        assert_eq!(oom_score_adj(QosClass::Burstable, None, 8 * gi), 999, "never equal to BestEffort");
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(1 << 20), 8 * gi), 999);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(8 * gi), 8 * gi), 3, "stays above Guaranteed");
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(u64::MAX), 8 * gi), 3);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(gi), 0), 999);
        assert_eq!(PAUSE_OOM_SCORE_ADJ, -998);
    }

    #[test]
    fn explanations() {
        let spec =
            pod(vec![ctr("a", &[("cpu", "500m"), ("memory", "64Mi")], &[("cpu", "1"), ("memory", "128Mi")])], vec![]);
        let v = pod_cgroup(&spec).unwrap();
        assert_eq!(
            explain(class(&spec), &v),
            "Burstable: cpu.shares=512 (requests 500m), cfs_quota=100000/100000 (limits 1), memory=128Mi"
        );
        let v = container_cgroup(&ContainerResources { cpu_request_milli: Some(100), ..Default::default() });
        assert_eq!(
            explain(QosClass::Burstable, &v),
            "Burstable: cpu.shares=102 (requests 100m), cfs_quota=max (no cpu limit), memory=max (no memory limit)"
        );
        let v = container_cgroup(&ContainerResources { cpu_limit_milli: Some(1), ..Default::default() });
        assert!(explain(QosClass::Burstable, &v).contains("cfs_quota=1000/100000 (the 1ms minimum)"));
        let v = CgroupValues { pids_limit: Some(64), ..container_cgroup(&ContainerResources::default()) };
        assert_eq!(
            explain(QosClass::BestEffort, &v),
            "BestEffort: cpu.shares=2 (the minimum: requests 2m or less), cfs_quota=max (no cpu limit), \
             memory=max (no memory limit), pids.max=64"
        );
    }

    #[test]
    fn values_become_cgroup_limits() {
        let r = ContainerResources {
            cpu_request_milli: Some(250),
            cpu_limit_milli: Some(250),
            memory_request: None,
            memory_limit: Some(64 << 20),
        };
        let limits = container_cgroup(&r).limits();
        assert_eq!(
            limits,
            Limits {
                cpu_millis: Some(250),
                cpu_shares: Some(256),
                memory_bytes: Some(64 << 20),
                swap_off: true,
                pids: None
            }
        );
        // The cgroup module turns cpu_millis back into the same quota (with the same 1 ms minimum).
        let tiny = container_cgroup(&ContainerResources { cpu_limit_milli: Some(1), ..Default::default() });
        let millis = tiny.limits().cpu_millis.unwrap();
        assert_eq!((millis * DEFAULT_PERIOD_US / 1000).max(1000), tiny.cpu_quota_us.unwrap());
        assert!(!container_cgroup(&ContainerResources::default()).limits().swap_off);
    }
}
