//! Server-side printing: the columns of `kubectl get`.
//!
//! kubectl does not know how to print a Deployment. It asks the server for a *Table*
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): column definitions plus one row of
//! ready-made cells per object, which it prints as they come. Columns of priority 1 show only
//! with `-o wide`; the server always fills them. Each row also carries the object (by default only
//! its metadata, `includeObject=Metadata`), from which kubectl adds NAMESPACE or LABELS columns.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use k8s_openapi::Metadata;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobCondition};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Endpoints, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
    Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::discovery::prefers;
use super::resources::Resource;

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// The object's metadata, as a `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// From the `includeObject` query parameter (`None`, `Metadata`, `Object`).
    pub fn from_query(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Whether the client asked for a Table (meta.k8s.io/v1) before plain JSON.
pub fn wants_table(accept: &str) -> bool {
    prefers(accept, "meta.k8s.io", "v1", "Table")
}

/// One column: its header (kubectl upper-cases it), cell type, format and priority.
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const fn col(name: &'static str, ty: &'static str, priority: u8, description: &'static str) -> Column {
    Column { name, ty, format: "", priority, description }
}

const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    priority: 0,
    description: "The object's name, unique in its namespace.",
};
const AGE: Column = col("Age", "string", 0, "Time since the object was created.");
const CONTAINERS: Column = col("Containers", "string", 1, "The containers of the pod template.");
const IMAGES: Column = col("Images", "string", 1, "The images of the pod template's containers.");
const SELECTOR: Column = col("Selector", "string", 1, "The label selector of the pods.");

const POD: &[Column] = &[
    NAME,
    col("Ready", "string", 0, "Ready containers out of all."),
    col("Status", "string", 0, "What the pod is doing, from its containers' states."),
    col("Restarts", "string", 0, "Container restarts, and how long ago the last one was."),
    AGE,
    col("IP", "string", 1, "The pod's IP address."),
    col("Node", "string", 1, "The node the pod runs on."),
    col("Nominated Node", "string", 1, "The node the scheduler wants to preempt pods on for this one."),
    col("Readiness Gates", "string", 1, "Extra readiness conditions that are true, out of all."),
];
const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", 0, "How the service is exposed."),
    col("Cluster-IP", "string", 0, "The virtual IP inside the cluster."),
    col("External-IP", "string", 0, "Addresses reachable from outside the cluster."),
    col("Port(s)", "string", 0, "Port/protocol, with the node port after a colon."),
    AGE,
    col("Selector", "string", 1, "The labels of the pods behind the service."),
];
const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", 0, "Ready pods out of the desired number."),
    col("Up-to-date", "integer", 0, "Pods of the current template."),
    col("Available", "integer", 0, "Pods ready for at least minReadySeconds."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const REPLICASET: &[Column] = &[
    NAME,
    col("Desired", "integer", 0, "The number of pods wanted."),
    col("Current", "integer", 0, "The number of pods that exist."),
    col("Ready", "integer", 0, "The number of ready pods."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const DAEMONSET: &[Column] = &[
    NAME,
    col("Desired", "integer", 0, "Nodes that should run the pod."),
    col("Current", "integer", 0, "Nodes that run the pod."),
    col("Ready", "integer", 0, "Nodes whose pod is ready."),
    col("Up-to-date", "integer", 0, "Nodes that run the current template."),
    col("Available", "integer", 0, "Nodes whose pod is available."),
    col("Node Selector", "string", 0, "The labels a node needs to run the pod."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const JOB: &[Column] = &[
    NAME,
    col("Status", "string", 0, "Running, Complete, Failed, Suspended or Terminating."),
    col("Completions", "string", 0, "Pods that succeeded out of those wanted."),
    col("Duration", "string", 0, "How long the job ran."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const CRONJOB: &[Column] = &[
    NAME,
    col("Schedule", "string", 0, "When jobs start, in cron syntax."),
    col("Timezone", "string", 0, "The time zone of the schedule."),
    col("Suspend", "boolean", 0, "Whether new jobs are held back."),
    col("Active", "integer", 0, "Jobs running now."),
    col("Last Schedule", "string", 0, "Time since the last job started."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const NODE: &[Column] = &[
    NAME,
    col("Status", "string", 0, "Ready or NotReady, and whether scheduling is disabled."),
    col("Roles", "string", 0, "The node-role labels."),
    AGE,
    col("Version", "string", 0, "The kubelet's version."),
    col("Internal-IP", "string", 1, "The node's internal address."),
    col("External-IP", "string", 1, "The node's external address."),
    col("OS-Image", "string", 1, "The operating system."),
    col("Kernel-Version", "string", 1, "The kernel's version."),
    col("Container-Runtime", "string", 1, "The container runtime and its version."),
];
const NAMESPACE: &[Column] = &[NAME, col("Status", "string", 0, "Active or Terminating."), AGE];
const CONFIGMAP: &[Column] = &[NAME, col("Data", "string", 0, "The number of keys."), AGE];
const SECRET: &[Column] =
    &[NAME, col("Type", "string", 0, "What the secret holds."), col("Data", "string", 0, "The number of keys."), AGE];
const SERVICEACCOUNT: &[Column] = &[NAME, col("Secrets", "string", 0, "The number of secrets listed."), AGE];
const ENDPOINTS: &[Column] = &[NAME, col("Endpoints", "string", 0, "The first addresses and ports."), AGE];
const ENDPOINTSLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", 0, "IPv4, IPv6 or FQDN."),
    col("Ports", "string", 0, "The first ports."),
    col("Endpoints", "string", 0, "The first addresses."),
    AGE,
];
const EVENT: &[Column] = &[
    col("Last Seen", "string", 0, "Time since the event was last seen."),
    col("Type", "string", 0, "Normal or Warning."),
    col("Reason", "string", 0, "Why the event happened, in one word."),
    col("Object", "string", 0, "The object the event is about."),
    col("Subobject", "string", 1, "The part of the object (a container)."),
    col("Source", "string", 1, "The component that reported it."),
    col("Message", "string", 0, "What happened."),
    col("First Seen", "string", 1, "Time since the event was first seen."),
    col("Count", "string", 1, "How many times it happened."),
    Column { priority: 1, ..NAME },
];
const LEASE: &[Column] = &[NAME, col("Holder", "string", 0, "Who holds the lease."), AGE];
const PERSISTENTVOLUME: &[Column] = &[
    NAME,
    col("Capacity", "string", 0, "The size of the volume."),
    col("Access Modes", "string", 0, "RWO, ROX, RWX, RWOP."),
    col("Reclaim Policy", "string", 0, "What happens to the volume when its claim goes."),
    col("Status", "string", 0, "Available, Bound, Released or Failed."),
    col("Claim", "string", 0, "The claim bound to the volume."),
    col("StorageClass", "string", 0, "The storage class of the volume."),
    col("VolumeAttributesClass", "string", 0, "The volume attributes class."),
    col("Reason", "string", 0, "Why the volume is in its state."),
    AGE,
    col("VolumeMode", "string", 1, "Filesystem or Block."),
];
const PERSISTENTVOLUMECLAIM: &[Column] = &[
    NAME,
    col("Status", "string", 0, "Pending, Bound or Lost."),
    col("Volume", "string", 0, "The volume bound to the claim."),
    col("Capacity", "string", 0, "The size of the bound volume."),
    col("Access Modes", "string", 0, "RWO, ROX, RWX, RWOP."),
    col("StorageClass", "string", 0, "The storage class asked for."),
    col("VolumeAttributesClass", "string", 0, "The volume attributes class."),
    AGE,
    col("VolumeMode", "string", 1, "Filesystem or Block."),
];
const STORAGECLASS: &[Column] = &[
    NAME,
    col("Provisioner", "string", 0, "The driver that makes volumes."),
    col("ReclaimPolicy", "string", 0, "What happens to a volume when its claim goes."),
    col("VolumeBindingMode", "string", 0, "When a claim gets its volume."),
    col("AllowVolumeExpansion", "string", 0, "Whether claims may grow."),
    AGE,
];
const DEFAULT: &[Column] = &[NAME, Column { name: "Created At", ty: "date", ..AGE }];

fn columns(kind: &str) -> &'static [Column] {
    match kind {
        "Pod" => POD,
        "Service" => SERVICE,
        "Deployment" => DEPLOYMENT,
        "ReplicaSet" => REPLICASET,
        "DaemonSet" => DAEMONSET,
        "Job" => JOB,
        "CronJob" => CRONJOB,
        "Node" => NODE,
        "Namespace" => NAMESPACE,
        "ConfigMap" => CONFIGMAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICEACCOUNT,
        "Endpoints" => ENDPOINTS,
        "EndpointSlice" => ENDPOINTSLICE,
        "Event" => EVENT,
        "Lease" => LEASE,
        "PersistentVolume" => PERSISTENTVOLUME,
        "PersistentVolumeClaim" => PERSISTENTVOLUMECLAIM,
        "StorageClass" => STORAGECLASS,
        _ => DEFAULT,
    }
}

/// A meta.k8s.io/v1 Table of `objects` (all of `resource`'s kind): one row each. `list_meta` is
/// the list's metadata (`resourceVersion`, `continue`), copied as the table's; pass `Value::Null`
/// for a single object. `now` is the clock the AGE columns count from.
pub fn table(
    resource: &Resource,
    objects: &[Value],
    include: IncludeObject,
    list_meta: &Value,
    now: SystemTime,
) -> Value {
    let defs: Vec<Value> = columns(resource.kind)
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects.iter().map(|o| row(resource.kind, o, include, now)).collect();
    let metadata = if list_meta.is_object() { list_meta.clone() } else { json!({}) };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": defs, "rows": rows})
}

fn row(kind: &str, obj: &Value, include: IncludeObject, now: SystemTime) -> Value {
    let (cells, conditions) = cells(kind, obj, now);
    let mut row = json!({"cells": cells});
    if let Some(c) = conditions {
        row["conditions"] = c;
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            })
        }
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    row
}

/// The object as its Kubernetes type. The server only stores objects that parse; should one not,
/// its row shows the type's defaults under its own metadata.
fn typed<T: DeserializeOwned + Default + Metadata<Ty = ObjectMeta>>(v: &Value) -> T {
    T::deserialize(v).unwrap_or_else(|_| {
        let mut t = T::default();
        *t.metadata_mut() = v.get("metadata").and_then(|m| ObjectMeta::deserialize(m).ok()).unwrap_or_default();
        t
    })
}

fn cells(kind: &str, v: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let cells = match kind {
        "Pod" => return pod_cells(&typed(v), now),
        "Service" => service_cells(&typed(v), now),
        "Deployment" => deployment_cells(&typed(v), now),
        "ReplicaSet" => replica_set_cells(&typed(v), now),
        "DaemonSet" => daemon_set_cells(&typed(v), now),
        "Job" => job_cells(&typed(v), now),
        "CronJob" => cron_job_cells(&typed(v), now),
        "Node" => node_cells(&typed(v), now),
        "Namespace" => namespace_cells(&typed(v), now),
        "ConfigMap" => config_map_cells(&typed(v), now),
        "Secret" => secret_cells(&typed(v), now),
        "ServiceAccount" => service_account_cells(&typed(v), now),
        "Endpoints" => endpoints_cells(&typed(v), now),
        "EndpointSlice" => endpoint_slice_cells(&typed(v), now),
        "Event" => event_cells(&typed(v), now),
        "Lease" => lease_cells(&typed(v), now),
        "PersistentVolume" => pv_cells(&typed(v), now),
        "PersistentVolumeClaim" => pvc_cells(&typed(v), now),
        "StorageClass" => storage_class_cells(&typed(v), now),
        _ => {
            let meta = v.get("metadata").and_then(|m| ObjectMeta::deserialize(m).ok()).unwrap_or_default();
            let created = meta.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
            vec![json!(name(&meta)), json!(created)]
        }
    };
    (cells, None)
}

// ---- time --------------------------------------------------------------------------------

/// Whole seconds from `t` to `now` (negative if `t` is in the future).
fn seconds_between(t: &Timestamp, now: SystemTime) -> i64 {
    let now_ns = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let diff = now_ns - t.as_nanosecond();
    i64::try_from(diff / 1_000_000_000).unwrap_or(i64::MAX)
}

/// kubectl's rendering of a duration in seconds: `45s`, `3m2s`, `25m`, `5h10m`, `2d3h`, `400d`.
/// Two to three significant figures, as `kubectl get` prints AGE.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// The age of a timestamp as kubectl prints it; `<unknown>` without one.
fn since(t: Option<&Timestamp>, now: SystemTime) -> String {
    t.map(|t| human_duration(seconds_between(t, now))).unwrap_or_else(|| "<unknown>".into())
}

fn age(meta: &ObjectMeta, now: SystemTime) -> Value {
    json!(since(meta.creation_timestamp.as_ref().map(|t| &t.0), now))
}

// ---- helpers shared by several kinds -----------------------------------------------------

fn name(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn or_none(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("<none>").to_string()
}

/// `a=1,b=2` (sorted), or `<none>`.
fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    let s = labels.map(|l| l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")).unwrap_or_default();
    if s.is_empty() { "<none>".into() } else { s }
}

/// A label selector as text (`app=web,tier in (a,b),!old`), requirements sorted by key; empty if
/// it selects everything.
fn selector_string(sel: Option<&LabelSelector>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values: BTreeSet<&str> = e.values.iter().flatten().map(String::as_str).collect();
        let values = values.into_iter().collect::<Vec<_>>().join(",");
        let k = &e.key;
        let text = match e.operator.as_str() {
            "In" => format!("{k} in ({values})"),
            "NotIn" => format!("{k} notin ({values})"),
            "Exists" => k.clone(),
            "DoesNotExist" => format!("!{k}"),
            other => format!("{k} {other} ({values})"),
        };
        reqs.push((k.clone(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

/// A selector for the SELECTOR columns of workloads: `<none>` when it selects everything.
fn format_selector(sel: Option<&LabelSelector>) -> String {
    let s = selector_string(sel);
    if s.is_empty() { "<none>".into() } else { s }
}

/// The CONTAINERS and IMAGES cells: names and images joined by commas.
fn containers_and_images(containers: &[Container]) -> (String, String) {
    let names = containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",");
    let images = containers.iter().map(|c| c.image.as_deref().unwrap_or("")).collect::<Vec<_>>().join(",");
    (names, images)
}

/// Up to three items, then `+ N more...`; `<unset>` when there are none.
fn first_three(items: Vec<String>) -> String {
    let count = items.len();
    if count == 0 {
        return "<unset>".into();
    }
    let shown = items.into_iter().take(3).collect::<Vec<_>>().join(",");
    if count > 3 { format!("{shown} + {} more...", count - 3) } else { shown }
}

// ---- pods ----------------------------------------------------------------------------------

/// What `kubectl get pods` shows of a pod: the READY, STATUS and RESTARTS columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    pub ready: usize,
    pub total: usize,
    /// The STATUS column: `Running`, `ContainerCreating`, `CrashLoopBackOff`, `Init:0/1`,
    /// `Completed`, `Terminating`...
    pub status: String,
    pub restarts: i64,
    /// When a container last stopped before a restart.
    pub last_restart: Option<Timestamp>,
}

fn later(a: Option<Timestamp>, b: Option<&Time>) -> Option<Timestamp> {
    match (a, b.map(|t| t.0)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The READY, STATUS and RESTARTS of a pod object, by kubectl's (the API server's printer's)
/// rules: the phase, overridden by the first init container that is not done, else by the last
/// app container that waits or stopped; `Terminating` once deletion started.
pub fn pod_summary(pod: &Pod) -> PodSummary {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let condition_true = |kind: &str| conditions.iter().find(|c| c.type_ == kind).is_some_and(|c| c.status == "True");
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status.reason.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| phase.clone());
    if conditions.iter().any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated")) {
        reason = "SchedulingGated".into();
    }
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    // An init container with restartPolicy Always is a sidecar: it counts as a container.
    let sidecar =
        |name: &str| init_specs.iter().any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"));
    let total = spec.containers.len() + init_specs.iter().filter(|c| sidecar(&c.name)).count();
    let mut ready = 0;
    let (mut restarts, mut sidecar_restarts) = (0i64, 0i64);
    let (mut last_restart, mut last_sidecar_restart) = (None, None);
    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        let state = c.state.clone().unwrap_or_default();
        let finished = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.finished_at.as_ref());
        restarts += i64::from(c.restart_count);
        last_restart = later(last_restart, finished);
        let is_sidecar = sidecar(&c.name);
        if is_sidecar {
            sidecar_restarts += i64::from(c.restart_count);
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let waiting = state.waiting.as_ref().and_then(|w| w.reason.clone()).filter(|r| !r.is_empty());
        match &state.terminated {
            Some(t) if t.exit_code == 0 => continue,
            _ if is_sidecar && c.started == Some(true) => {
                if c.ready {
                    ready += 1;
                }
                continue;
            }
            Some(t) => {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => format!("Init:{r}"),
                    None if t.signal.unwrap_or(0) != 0 => format!("Init:Signal:{}", t.signal.unwrap_or(0)),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                };
            }
            None => match waiting {
                Some(w) if w != "PodInitializing" => reason = format!("Init:{w}"),
                _ => reason = format!("Init:{i}/{}", init_specs.len()),
            },
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true("Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            let state = c.state.clone().unwrap_or_default();
            restarts += i64::from(c.restart_count);
            let finished =
                c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.finished_at.as_ref());
            last_restart = later(last_restart, finished);
            if let Some(w) = state.waiting.as_ref().and_then(|w| w.reason.clone()).filter(|r| !r.is_empty()) {
                reason = w;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None if t.signal.unwrap_or(0) != 0 => format!("Signal:{}", t.signal.unwrap_or(0)),
                    None => format!("ExitCode:{}", t.exit_code),
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true("Ready") { "Running" } else { "NotReady" }.into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    PodSummary { ready, total, status: reason, restarts, last_restart }
}

fn pod_cells(pod: &Pod, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let s = pod_summary(pod);
    let restarts = match s.last_restart {
        Some(t) if s.restarts != 0 => format!("{} ({} ago)", s.restarts, since(Some(&t), now)),
        _ => s.restarts.to_string(),
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let ip = status.pod_ips.as_ref().and_then(|ips| ips.first()).map(|p| p.ip.clone()).or(status.pod_ip.clone());
    let gates = spec.readiness_gates.clone().unwrap_or_default();
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = status.conditions.clone().unwrap_or_default();
        let met = gates
            .iter()
            .filter(|g| conditions.iter().find(|c| c.type_ == g.condition_type).is_some_and(|c| c.status == "True"))
            .count();
        format!("{met}/{}", gates.len())
    };
    let cells = vec![
        json!(name(&pod.metadata)),
        json!(format!("{}/{}", s.ready, s.total)),
        json!(s.status),
        json!(restarts),
        age(&pod.metadata, now),
        json!(or_none(ip.as_deref())),
        json!(or_none(spec.node_name.as_deref())),
        json!(or_none(status.nominated_node_name.as_deref())),
        json!(gates),
    ];
    // kubectl marks finished pods as completed rows.
    let conditions = match status.phase.as_deref() {
        Some("Succeeded") => Some(completed("Succeeded", "The pod ran to completion.")),
        Some("Failed") => Some(completed("Failed", "The pod failed.")),
        _ => None,
    };
    (cells, conditions)
}

fn completed(reason: &str, message: &str) -> Value {
    json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}])
}

// ---- services and endpoints ----------------------------------------------------------------

/// `80/TCP`, `80:30080/TCP`, joined by commas; `<none>` without ports.
fn service_ports(svc: &Service) -> String {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let text = ports
        .iter()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(n) if n > 0 => format!("{}:{n}/{proto}", p.port),
                _ => format!("{}/{proto}", p.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    if text.is_empty() { "<none>".into() } else { text }
}

fn service_external_ip(svc: &Service) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    let external = spec.external_ips.clone().unwrap_or_default();
    match spec.type_.as_deref().unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.clone());
            let lb: BTreeSet<String> = ingress
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.ip.filter(|s| !s.is_empty()).or(i.hostname.filter(|s| !s.is_empty())))
                .collect();
            let mut lb = lb.into_iter().collect::<Vec<_>>().join(",");
            if lb.len() > 16 {
                lb = format!("{}...", lb.chars().take(13).collect::<String>());
            }
            let all: Vec<String> = lb.split(',').filter(|s| !s.is_empty()).map(String::from).chain(external).collect();
            if all.is_empty() { "<pending>".into() } else { all.join(",") }
        }
        "ExternalName" => spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".into(),
    }
}

fn service_cells(svc: &Service, now: SystemTime) -> Vec<Value> {
    let spec = svc.spec.clone().unwrap_or_default();
    let cluster_ip = spec.cluster_ips.as_ref().and_then(|ips| ips.first()).cloned().or(spec.cluster_ip.clone());
    vec![
        json!(name(&svc.metadata)),
        json!(spec.type_.clone().unwrap_or_else(|| "ClusterIP".into())),
        json!(or_none(cluster_ip.as_deref())),
        json!(service_external_ip(svc)),
        json!(service_ports(svc)),
        age(&svc.metadata, now),
        json!(format_labels(spec.selector.as_ref())),
    ]
}

/// The first three `address:port` pairs of an Endpoints, `+ N more...`; `<none>` if empty.
fn format_endpoints(ep: &Endpoints) -> String {
    let subsets = ep.subsets.clone().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut all = Vec::new();
    for ss in &subsets {
        let addresses = ss.addresses.clone().unwrap_or_default();
        let ports = ss.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            all.extend(addresses.iter().map(|a| a.ip.clone()));
            continue;
        }
        for p in &ports {
            for a in &addresses {
                let host = if a.ip.contains(':') { format!("[{}]", a.ip) } else { a.ip.clone() };
                all.push(format!("{host}:{}", p.port));
            }
        }
    }
    let count = all.len();
    let shown = all.into_iter().take(3).collect::<Vec<_>>().join(",");
    if count > 3 { format!("{shown} + {} more...", count - 3) } else { shown }
}

fn endpoints_cells(ep: &Endpoints, now: SystemTime) -> Vec<Value> {
    vec![json!(name(&ep.metadata)), json!(format_endpoints(ep)), age(&ep.metadata, now)]
}

fn endpoint_slice_cells(s: &EndpointSlice, now: SystemTime) -> Vec<Value> {
    let ports = s
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, &p.name) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "*".into(),
        })
        .collect();
    let addresses = s.endpoints.iter().flat_map(|e| e.addresses.iter().cloned()).collect();
    vec![
        json!(name(&s.metadata)),
        json!(s.address_type),
        json!(first_three(ports)),
        json!(first_three(addresses)),
        age(&s.metadata, now),
    ]
}

// ---- workloads -----------------------------------------------------------------------------

fn deployment_cells(d: &Deployment, now: SystemTime) -> Vec<Value> {
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let (containers, images) =
        containers_and_images(&spec.template.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default());
    vec![
        json!(name(&d.metadata)),
        json!(format!("{}/{}", status.ready_replicas.unwrap_or(0), spec.replicas.unwrap_or(1))),
        json!(status.updated_replicas.unwrap_or(0)),
        json!(status.available_replicas.unwrap_or(0)),
        age(&d.metadata, now),
        json!(containers),
        json!(images),
        json!(selector_string(Some(&spec.selector))),
    ]
}

fn replica_set_cells(rs: &ReplicaSet, now: SystemTime) -> Vec<Value> {
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    let template = spec.template.as_ref().and_then(|t| t.spec.as_ref()).map(|s| s.containers.clone());
    let (containers, images) = containers_and_images(&template.unwrap_or_default());
    vec![
        json!(name(&rs.metadata)),
        json!(spec.replicas.unwrap_or(1)),
        json!(status.replicas),
        json!(status.ready_replicas.unwrap_or(0)),
        age(&rs.metadata, now),
        json!(containers),
        json!(images),
        json!(format_selector(Some(&spec.selector))),
    ]
}

fn daemon_set_cells(ds: &DaemonSet, now: SystemTime) -> Vec<Value> {
    let spec = ds.spec.clone().unwrap_or_default();
    let status = ds.status.clone().unwrap_or_default();
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let (containers, images) = containers_and_images(&pod_spec.containers);
    vec![
        json!(name(&ds.metadata)),
        json!(status.desired_number_scheduled),
        json!(status.current_number_scheduled),
        json!(status.number_ready),
        json!(status.updated_number_scheduled.unwrap_or(0)),
        json!(status.number_available.unwrap_or(0)),
        json!(format_labels(pod_spec.node_selector.as_ref())),
        age(&ds.metadata, now),
        json!(containers),
        json!(images),
        json!(format_selector(Some(&spec.selector))),
    ]
}

/// Whether the job's first condition of this type is true.
fn job_condition(conditions: &[JobCondition], kind: &str) -> bool {
    conditions.iter().find(|c| c.type_ == kind).is_some_and(|c| c.status == "True")
}

fn job_cells(job: &Job, now: SystemTime) -> Vec<Value> {
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let succeeded = status.succeeded.unwrap_or(0);
    let completions = match (spec.completions, spec.parallelism.unwrap_or(0)) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let duration = match (&status.start_time, &status.completion_time) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(seconds_between(&start.0, now)),
        (Some(start), Some(end)) => human_duration(end.0.as_second() - start.0.as_second()),
    };
    let conditions = status.conditions.clone().unwrap_or_default();
    let state = if job_condition(&conditions, "Complete") {
        "Complete"
    } else if job_condition(&conditions, "Failed") {
        "Failed"
    } else if job.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if job_condition(&conditions, "Suspended") {
        "Suspended"
    } else if job_condition(&conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = containers_and_images(&spec.template.spec.map(|s| s.containers).unwrap_or_default());
    vec![
        json!(name(&job.metadata)),
        json!(state),
        json!(completions),
        json!(duration),
        age(&job.metadata, now),
        json!(containers),
        json!(images),
        json!(format_selector(spec.selector.as_ref())),
    ]
}

fn cron_job_cells(cj: &CronJob, now: SystemTime) -> Vec<Value> {
    let spec = cj.spec.clone().unwrap_or_default();
    let status = cj.status.clone().unwrap_or_default();
    let job = spec.job_template.spec.clone().unwrap_or_default();
    let (containers, images) = containers_and_images(&job.template.spec.map(|s| s.containers).unwrap_or_default());
    let suspend = match spec.suspend {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = status.last_schedule_time.as_ref().map(|t| since(Some(&t.0), now)).unwrap_or_else(|| "<none>".into());
    vec![
        json!(name(&cj.metadata)),
        json!(spec.schedule),
        json!(or_none(spec.time_zone.as_deref())),
        json!(suspend),
        json!(status.active.map(|a| a.len()).unwrap_or(0)),
        json!(last),
        age(&cj.metadata, now),
        json!(containers),
        json!(images),
        json!(format_selector(job.selector.as_ref())),
    ]
}

// ---- cluster objects -----------------------------------------------------------------------

fn node_cells(node: &Node, now: SystemTime) -> Vec<Value> {
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    let mut state: Vec<&str> = Vec::new();
    match status.conditions.iter().flatten().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "True" => state.push("Ready"),
        Some(_) => state.push("NotReady"),
        None => state.push("Unknown"),
    }
    if spec.unschedulable == Some(true) {
        state.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/").filter(|r| !r.is_empty()) {
            roles.insert(role.to_string());
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.insert(v.clone());
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");
    let address = |kind: &str| {
        status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == kind)
            .map(|a| a.address.clone())
            .unwrap_or("<none>".into())
    };
    let info = status.node_info.clone().unwrap_or_default();
    let known = |s: &str| if s.is_empty() { "<unknown>".to_string() } else { s.to_string() };
    vec![
        json!(name(&node.metadata)),
        json!(state.join(",")),
        json!(if roles.is_empty() { "<none>".into() } else { roles }),
        age(&node.metadata, now),
        json!(info.kubelet_version),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(known(&info.os_image)),
        json!(known(&info.kernel_version)),
        json!(known(&info.container_runtime_version)),
    ]
}

fn namespace_cells(ns: &Namespace, now: SystemTime) -> Vec<Value> {
    let phase = ns.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    vec![json!(name(&ns.metadata)), json!(phase), age(&ns.metadata, now)]
}

fn config_map_cells(cm: &ConfigMap, now: SystemTime) -> Vec<Value> {
    let n = cm.data.as_ref().map_or(0, |d| d.len()) + cm.binary_data.as_ref().map_or(0, |d| d.len());
    vec![json!(name(&cm.metadata)), json!(n), age(&cm.metadata, now)]
}

fn secret_cells(s: &Secret, now: SystemTime) -> Vec<Value> {
    vec![
        json!(name(&s.metadata)),
        json!(s.type_.clone().unwrap_or_default()),
        json!(s.data.as_ref().map_or(0, |d| d.len())),
        age(&s.metadata, now),
    ]
}

fn service_account_cells(sa: &ServiceAccount, now: SystemTime) -> Vec<Value> {
    vec![json!(name(&sa.metadata)), json!(sa.secrets.as_ref().map_or(0, |s| s.len())), age(&sa.metadata, now)]
}

fn lease_cells(l: &Lease, now: SystemTime) -> Vec<Value> {
    let holder = l.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
    vec![json!(name(&l.metadata)), json!(holder), age(&l.metadata, now)]
}

/// An event's cells; OBJECT is the object it is about as `kind/name` (kind in lower case).
fn event_cells(e: &Event, now: SystemTime) -> Vec<Value> {
    let first = match &e.first_timestamp {
        Some(t) => since(Some(&t.0), now),
        None => since(e.event_time.as_ref().map(|t| &t.0), now),
    };
    let mut last = match &e.last_timestamp {
        Some(t) => since(Some(&t.0), now),
        None => first.clone(),
    };
    let mut count = e.count.unwrap_or(0);
    if let Some(series) = &e.series {
        last = since(series.last_observed_time.as_ref().map(|t| &t.0), now);
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let obj = &e.involved_object;
    let kind = obj.kind.clone().unwrap_or_default().to_lowercase();
    let target = match obj.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let source = e.source.clone().unwrap_or_default();
    let component = source.component.filter(|s| !s.is_empty()).or(e.reporting_component.clone()).unwrap_or_default();
    let instance = source.host.filter(|s| !s.is_empty()).or(e.reporting_instance.clone()).unwrap_or_default();
    let source = if instance.is_empty() { component } else { format!("{component}, {instance}") };
    vec![
        json!(last),
        json!(e.type_.clone().unwrap_or_default()),
        json!(e.reason.clone().unwrap_or_default()),
        json!(target),
        json!(obj.field_path.clone().unwrap_or_default()),
        json!(source),
        json!(e.message.clone().unwrap_or_default().trim()),
        json!(first),
        json!(count),
        json!(name(&e.metadata)),
    ]
}

// ---- storage -------------------------------------------------------------------------------

/// `RWO,ROX,RWX,RWOP`: the access modes present, each once, in that order.
fn access_modes(modes: Option<&Vec<String>>) -> String {
    let modes = modes.cloned().unwrap_or_default();
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(m, _)| modes.iter().any(|x| x == m))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn pv_cells(pv: &PersistentVolume, now: SystemTime) -> Vec<Value> {
    let spec = pv.spec.clone().unwrap_or_default();
    let status = pv.status.clone().unwrap_or_default();
    let claim = spec
        .claim_ref
        .as_ref()
        .map(|c| format!("{}/{}", c.namespace.as_deref().unwrap_or(""), c.name.as_deref().unwrap_or("")))
        .unwrap_or_default();
    let capacity = spec.capacity.as_ref().and_then(|c| c.get("storage")).map(|q| q.0.clone()).unwrap_or_default();
    let phase = if pv.metadata.deletion_timestamp.is_some() { Some("Terminating".into()) } else { status.phase };
    let class = annotation(&pv.metadata, BETA_STORAGE_CLASS).map(String::from).or(spec.storage_class_name.clone());
    vec![
        json!(name(&pv.metadata)),
        json!(capacity),
        json!(access_modes(spec.access_modes.as_ref())),
        json!(spec.persistent_volume_reclaim_policy.clone().unwrap_or_default()),
        json!(phase.unwrap_or_default()),
        json!(claim),
        json!(class.unwrap_or_default()),
        json!(spec.volume_attributes_class_name.clone().unwrap_or_else(|| "<unset>".into())),
        json!(status.reason.unwrap_or_default()),
        age(&pv.metadata, now),
        json!(spec.volume_mode.clone().unwrap_or_else(|| "<unset>".into())),
    ]
}

fn pvc_cells(pvc: &PersistentVolumeClaim, now: SystemTime) -> Vec<Value> {
    let spec = pvc.spec.clone().unwrap_or_default();
    let status = pvc.status.clone().unwrap_or_default();
    let phase =
        if pvc.metadata.deletion_timestamp.is_some() { Some("Terminating".into()) } else { status.phase.clone() };
    let volume = spec.volume_name.clone().unwrap_or_default();
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        let cap = status.capacity.as_ref().and_then(|c| c.get("storage")).map(|q| q.0.clone()).unwrap_or_default();
        (cap, access_modes(status.access_modes.as_ref()))
    };
    let class = annotation(&pvc.metadata, BETA_STORAGE_CLASS).map(String::from).or(spec.storage_class_name.clone());
    vec![
        json!(name(&pvc.metadata)),
        json!(phase.unwrap_or_default()),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class.unwrap_or_default()),
        json!(spec.volume_attributes_class_name.clone().unwrap_or_else(|| "<unset>".into())),
        age(&pvc.metadata, now),
        json!(spec.volume_mode.clone().unwrap_or_else(|| "<unset>".into())),
    ]
}

fn storage_class_cells(sc: &StorageClass, now: SystemTime) -> Vec<Value> {
    let default = ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
        .iter()
        .any(|k| annotation(&sc.metadata, k) == Some("true"));
    let mut shown = name(&sc.metadata);
    if default {
        shown.push_str(" (default)");
    }
    vec![
        json!(shown),
        json!(sc.provisioner),
        json!(sc.reclaim_policy.clone().unwrap_or_else(|| "Delete".into())),
        json!(sc.volume_binding_mode.clone().unwrap_or_else(|| "Immediate".into())),
        json!(sc.allow_volume_expansion.unwrap_or(false)),
        age(&sc.metadata, now),
    ]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::control::api::resources::find;

    /// 2024-05-01T12:00:00Z, the tests' "now".
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800)
    }

    /// The timestamp `secs` seconds before the tests' now.
    fn ago(secs: u64) -> String {
        let t = Timestamp::from_second(1_714_564_800 - secs as i64).unwrap();
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn cells_of(plural: &str, group: &str, obj: Value) -> Vec<Value> {
        let r = find(group, plural).expect("resource");
        let t = table(r, &[obj], IncludeObject::Metadata, &Value::Null, now());
        t["rows"][0]["cells"].as_array().cloned().expect("cells")
    }

    #[test]
    fn ages_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (599, "9m59s"),
            (600, "10m"),
            (10_799, "179m"),
            (10_800, "3h"),
            (11_100, "3h5m"),
            (28_800, "8h"),
            (47 * 3600 + 59, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86_400, "8d"),
            (400 * 86_400, "400d"),
            (730 * 86_400, "2y"),
            (735 * 86_400, "2y5d"),
            (3000 * 86_400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    fn running(name: &str, ready: bool, restarts: i32, last_finished: Option<String>) -> Value {
        let last = match last_finished {
            Some(t) => json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": t}}),
            None => json!({}),
        };
        json!({"name": name, "image": "busybox", "imageID": "", "ready": ready, "restartCount": restarts,
               "state": {"running": {"startedAt": ago(30)}}, "lastState": last})
    }

    #[test]
    fn pod_row_counts_ready_containers_and_restarts() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(182)},
            "spec": {"nodeName": "vm1", "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": "10.88.0.5", "podIPs": [{"ip": "10.88.0.5"}],
                       "containerStatuses": [running("a", true, 0, None), running("b", false, 2, Some(ago(65)))]},
        });
        let cells = cells_of("pods", "", pod);
        assert_eq!(
            cells,
            vec![
                json!("web"),
                json!("1/2"),
                json!("Running"),
                json!("2 (65s ago)"),
                json!("3m2s"),
                json!("10.88.0.5"),
                json!("vm1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pod_status_words() {
        let pod = |status: Value, extra: Value| {
            let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}],
                "initContainers": [{"name": "i"}]}, "status": status});
            if let Some(m) = extra.as_object() {
                for (k, v) in m {
                    p["metadata"][k] = v.clone();
                }
            }
            pod_summary(&serde_json::from_value(p).unwrap()).status
        };
        let waiting = |r: &str| json!({"waiting": {"reason": r}});
        assert_eq!(pod(json!({"phase": "Pending"}), json!({})), "Pending");
        assert_eq!(
            pod(
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "image": "x", "imageID": "",
                "ready": false, "restartCount": 0, "state": waiting("PodInitializing")}]}),
                json!({})
            ),
            "Init:0/1"
        );
        assert_eq!(
            pod(
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "image": "x", "imageID": "",
                "ready": false, "restartCount": 3, "state": waiting("CrashLoopBackOff")}]}),
                json!({})
            ),
            "Init:CrashLoopBackOff"
        );
        let done_init = json!({"name": "i", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        assert_eq!(
            pod(
                json!({"phase": "Pending", "initContainerStatuses": [done_init],
                "containerStatuses": [{"name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": waiting("ContainerCreating")}]}),
                json!({})
            ),
            "ContainerCreating"
        );
        assert_eq!(
            pod(
                json!({"phase": "Succeeded", "initContainerStatuses": [done_init],
                "containerStatuses": [{"name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                json!({})
            ),
            "Completed"
        );
        assert_eq!(
            pod(
                json!({"phase": "Running", "initContainerStatuses": [done_init],
                "containerStatuses": [{"name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137}}}]}),
                json!({})
            ),
            "ExitCode:137"
        );
        assert_eq!(pod(json!({"phase": "Running"}), json!({"deletionTimestamp": ago(1)})), "Terminating");
    }

    #[test]
    fn service_ports_show_node_ports() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(3 * 86_400)},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"app": "web", "tier": "front"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
        });
        let cells = cells_of("services", "", svc);
        assert_eq!(
            cells,
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("3d"),
                json!("app=web,tier=front")
            ]
        );
    }

    #[test]
    fn deployment_and_job_rows() {
        let dep = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(60)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        let cells = cells_of("deployments", "apps", dep);
        assert_eq!(
            cells,
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("60s"),
                json!("nginx,side"),
                json!("nginx:1,busybox"),
                json!("app=web")
            ]
        );
        let job = json!({
            "metadata": {"name": "pi", "creationTimestamp": ago(300)},
            "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}},
                     "selector": {"matchExpressions": [{"key": "batch.kubernetes.io/job-name", "operator": "In", "values": ["pi"]}]}},
            "status": {"succeeded": 1, "startTime": ago(300), "completionTime": ago(250),
                       "conditions": [{"type": "Complete", "status": "True"}]},
        });
        let cells = cells_of("jobs", "batch", job);
        assert_eq!(cells[1..5], [json!("Complete"), json!("1/1"), json!("50s"), json!("5m")]);
        assert_eq!(cells[7], json!("batch.kubernetes.io/job-name in (pi)"));
    }

    #[test]
    fn node_and_endpoints_rows() {
        let node = json!({
            "metadata": {"name": "vm1", "creationTimestamp": ago(7200), "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0+podlab", "osImage": "Ubuntu", "kernelVersion": "6.8",
                                    "containerRuntimeVersion": "podlab://0.1", "architecture": "amd64", "bootID": "",
                                    "machineID": "", "operatingSystem": "linux", "kubeProxyVersion": "", "systemUUID": ""}},
        });
        let cells = cells_of("nodes", "", node);
        assert_eq!(
            cells[..5],
            [
                json!("vm1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane"),
                json!("120m"),
                json!("v1.33.0+podlab")
            ]
        );
        assert_eq!(cells[5..7], [json!("192.168.1.10"), json!("<none>")]);
        let ep = json!({
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}],
                         "ports": [{"port": 80}]}],
        });
        let cells = cells_of("endpoints", "", ep);
        assert_eq!(cells[1], json!("10.0.0.1:80,10.0.0.2:80,[fd00::3]:80 + 1 more..."));
        assert_eq!(cells[2], json!("<unknown>"));
    }

    #[test]
    fn rows_carry_metadata_objects_or_nothing() {
        let r = find("", "configmaps").unwrap();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"},
                        "data": {"a": "1", "b": "2"}});
        let meta = json!({"resourceVersion": "42", "continue": "abc"});
        let t = table(r, std::slice::from_ref(&cm), IncludeObject::Metadata, &meta, now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], meta);
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");
        assert_eq!(t["rows"][0]["cells"][1], json!(2));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
        let t = table(r, std::slice::from_ref(&cm), IncludeObject::Object, &Value::Null, now());
        assert_eq!(t["rows"][0]["object"], cm);
        assert_eq!(t["metadata"], json!({}));
        let t = table(r, &[cm], IncludeObject::None, &Value::Null, now());
        assert!(t["rows"][0].get("object").is_none());
        assert_eq!(IncludeObject::from_query(Some("Object")), IncludeObject::Object);
        assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
    }

    #[test]
    fn accept_headers() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert!(wants_table(kubectl));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"));
        assert!(!wants_table("*/*"));
    }

    #[test]
    fn every_served_kind_fills_its_columns() {
        for r in crate::control::api::resources::RESOURCES {
            let obj = json!({"metadata": {"name": "x", "creationTimestamp": ago(10)}});
            let t = table(r, &[obj], IncludeObject::None, &Value::Null, now());
            let defs = t["columnDefinitions"].as_array().unwrap().len();
            let cells = t["rows"][0]["cells"].as_array().unwrap();
            assert_eq!(cells.len(), defs, "{}: {} cells for {defs} columns", r.kind, cells.len());
            assert_ne!(defs, 2, "{} has no columns of its own", r.kind);
        }
    }
}
