//! What a pod is doing, as Kubernetes reports it.
//!
//! A pod's `status` is computed from its containers: each one is `waiting` (with a reason
//! such as `ContainerCreating` or `CrashLoopBackOff`), `running` or `terminated` (exit code,
//! reason `Completed`, `Error` or `OOMKilled`), with a restart count and the state before the
//! last restart. The pod's `phase` (Pending, Running, Succeeded, Failed) and its conditions
//! (Initialized, ContainersReady, Ready) follow from them by the kubelet's rules. The supervisor
//! keeps a [`PodRecord`] on disk; [`PodRecord::to_status`] turns it into the Kubernetes object.

use std::io::Write;
use std::path::Path;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

/// One container's state, as the supervisor saw it last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum State {
    Waiting {
        reason: String,
        #[serde(default)]
        message: String,
    },
    Running {
        started_at: String,
        pid: i32,
    },
    Terminated {
        exit_code: i32,
        #[serde(default)]
        signal: i32,
        reason: String,
        #[serde(default)]
        message: String,
        started_at: String,
        finished_at: String,
    },
}

impl State {
    /// `waiting` with a reason (and no message).
    pub fn waiting(reason: &str) -> State {
        State::Waiting { reason: reason.into(), message: String::new() }
    }

    /// The status word `kubectl get pods` would print for this container state.
    pub fn reason(&self) -> &str {
        match self {
            State::Waiting { reason, .. } | State::Terminated { reason, .. } => reason,
            State::Running { .. } => "Running",
        }
    }
}

/// A container of the pod (init or app) with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub image_id: String,
    /// The OCI runtime's id of the current instance.
    #[serde(default)]
    pub runtime_id: String,
    pub restart_count: u32,
    pub state: State,
    #[serde(default)]
    pub last_state: Option<State>,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub started: bool,
}

impl ContainerRecord {
    pub fn new(name: &str, image: &str) -> Self {
        ContainerRecord {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            runtime_id: String::new(),
            restart_count: 0,
            state: State::waiting("ContainerCreating"),
            last_state: None,
            ready: false,
            started: false,
        }
    }

    /// The pid of the running instance.
    pub fn pid(&self) -> Option<i32> {
        match self.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    fn terminated_ok(&self) -> Option<bool> {
        match &self.state {
            State::Terminated { exit_code, .. } => Some(*exit_code == 0),
            _ => None,
        }
    }
}

/// Everything the supervisor knows about its pod, saved as `status.json` in the pod directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: String,
    pub qos_class: String,
    pub init_containers: Vec<ContainerRecord>,
    pub containers: Vec<ContainerRecord>,
    /// Every init container has completed (or there are none).
    pub initialized: bool,
    /// The pod will not run anything again (Succeeded or Failed), or is being deleted and stopped.
    pub finished: bool,
    /// Set while the pod is being deleted (kubectl shows `Terminating`).
    #[serde(default)]
    pub deleting: bool,
    /// The pod could not be set up (its reason, e.g. `ErrImagePull`, stays in a container).
    #[serde(default)]
    pub message: String,
    /// The supervisor's pid and its start time (to tell a live one from a recycled pid).
    #[serde(default)]
    pub supervisor: (i32, u64),
    #[serde(default)]
    pub ready_since: String,
    #[serde(default)]
    pub initialized_since: String,
}

impl PodRecord {
    /// The pod's phase by the kubelet's rules.
    pub fn phase(&self, restart_policy: &str) -> &'static str {
        if !self.initialized {
            let failed_init = self.init_containers.iter().any(|c| c.terminated_ok() == Some(false));
            return if failed_init && restart_policy == "Never" { "Failed" } else { "Pending" };
        }
        let running = self.containers.iter().filter(|c| matches!(c.state, State::Running { .. })).count();
        let done: Vec<Option<bool>> = self.containers.iter().map(|c| c.terminated_ok()).collect();
        let waiting_first = self
            .containers
            .iter()
            .any(|c| matches!(&c.state, State::Waiting { .. }) && c.restart_count == 0 && c.last_state.is_none());
        if waiting_first {
            return "Pending";
        }
        if running > 0 {
            return "Running";
        }
        if done.iter().all(|d| d.is_some()) && !done.is_empty() {
            let all_ok = done.iter().all(|d| *d == Some(true));
            return match (restart_policy, all_ok) {
                ("Always", _) => "Running",
                (_, true) => "Succeeded",
                ("OnFailure", false) => "Running",
                _ => "Failed",
            };
        }
        // Waiting to restart (CrashLoopBackOff) counts as running.
        "Running"
    }

    /// The `STATUS` column of `kubectl get pods`.
    pub fn display_status(&self, restart_policy: &str) -> String {
        if self.deleting {
            return "Terminating".into();
        }
        if !self.initialized {
            let n = self.init_containers.len();
            let done = self.init_containers.iter().filter(|c| c.terminated_ok() == Some(true)).count();
            if let Some(c) = self.init_containers.iter().find(|c| c.terminated_ok() != Some(true)) {
                match &c.state {
                    State::Waiting { reason, .. } if reason != "PodInitializing" && reason != "ContainerCreating" => {
                        return format!("Init:{reason}");
                    }
                    State::Terminated { exit_code, .. } if *exit_code != 0 => {
                        return format!("Init:{}", c.state.reason());
                    }
                    _ => {}
                }
            }
            return format!("Init:{done}/{n}");
        }
        let phase = self.phase(restart_policy);
        let mut reason = phase.to_string();
        for c in self.containers.iter().rev() {
            match &c.state {
                State::Waiting { reason: r, .. } if !r.is_empty() => reason = r.clone(),
                State::Terminated { reason: r, .. } if !r.is_empty() => reason = r.clone(),
                _ => {}
            }
        }
        if reason == "Completed" && phase == "Running" {
            reason = "Running".into();
        }
        if self.containers.iter().all(|c| c.pid().is_some()) && phase == "Running" {
            reason = "Running".into();
        }
        reason
    }

    /// Ready containers and total, as `kubectl get pods` prints `READY` (`1/2`).
    pub fn ready_count(&self) -> (usize, usize) {
        (self.containers.iter().filter(|c| c.ready).count(), self.containers.len())
    }

    /// Restarts of all app containers.
    pub fn restarts(&self) -> u32 {
        self.containers.iter().map(|c| c.restart_count).sum()
    }

    /// The Kubernetes `PodStatus`.
    pub fn to_status(&self, restart_policy: &str) -> PodStatus {
        let phase = self.phase(restart_policy);
        let containers_ready = !self.containers.is_empty() && self.containers.iter().all(|c| c.ready);
        let cond = |kind: &str, ok: bool, since: &str, reason: Option<&str>| PodCondition {
            type_: kind.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: time(since).or_else(|| time(&self.start_time)),
            reason: if ok { None } else { reason.map(String::from) },
            ..Default::default()
        };
        let sandbox_ok = self.pod_ip.is_some() || !self.start_time.is_empty();
        let conditions = vec![
            cond("PodReadyToStartContainers", sandbox_ok && !self.finished, &self.start_time, None),
            cond("Initialized", self.initialized, &self.initialized_since, Some("ContainersNotInitialized")),
            cond("Ready", containers_ready, &self.ready_since, Some("ContainersNotReady")),
            cond("ContainersReady", containers_ready, &self.ready_since, Some("ContainersNotReady")),
            cond("PodScheduled", true, &self.start_time, None),
        ];
        PodStatus {
            phase: Some(phase.into()),
            conditions: Some(conditions),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP { ip: self.host_ip.clone() }]),
            pod_ip: self.pod_ip.clone(),
            pod_ips: self.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
            start_time: time(&self.start_time),
            qos_class: Some(self.qos_class.clone()),
            init_container_statuses: (!self.init_containers.is_empty())
                .then(|| self.init_containers.iter().map(container_status).collect()),
            container_statuses: Some(self.containers.iter().map(container_status).collect()),
            message: (!self.message.is_empty()).then(|| self.message.clone()),
            ..Default::default()
        }
    }

    /// Read `status.json` from a pod directory.
    pub fn load(pod_dir: &Path) -> Result<PodRecord> {
        let path = pod_dir.join(STATUS_FILE);
        let text = std::fs::read(&path).ctx("read", &path)?;
        serde_json::from_slice(&text).map_err(|e| crate::Error::invalid(format!("{}: {e}", path.display())))
    }

    /// Write `status.json` atomically (readers never see half a file).
    pub fn save(&self, pod_dir: &Path) -> Result<()> {
        write_atomic(&pod_dir.join(STATUS_FILE), &serde_json::to_vec_pretty(self).unwrap_or_default())
    }
}

/// The status file of a pod directory.
pub const STATUS_FILE: &str = "status.json";
/// The events file of a pod directory (one JSON object per line).
pub const EVENTS_FILE: &str = "events.jsonl";

fn time(s: &str) -> Option<Time> {
    s.parse::<k8s_openapi::jiff::Timestamp>().ok().map(Time)
}

fn state_of(s: &State) -> ContainerState {
    match s {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..Default::default()
        },
        State::Running { started_at, .. } => ContainerState {
            running: Some(ContainerStateRunning { started_at: time(started_at) }),
            ..Default::default()
        },
        State::Terminated { exit_code, signal, reason, message, started_at, finished_at } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: (*signal != 0).then_some(*signal),
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
                started_at: time(started_at),
                finished_at: time(finished_at),
                container_id: None,
            }),
            ..Default::default()
        },
    }
}

fn container_status(c: &ContainerRecord) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: (!c.runtime_id.is_empty()).then(|| format!("podlab://{}", c.runtime_id)),
        ready: c.ready,
        started: Some(c.started),
        restart_count: i32::try_from(c.restart_count).unwrap_or(i32::MAX),
        state: Some(state_of(&c.state)),
        last_state: Some(c.last_state.as_ref().map(state_of).unwrap_or_default()),
        ..Default::default()
    }
}

/// An event about the pod, as `kubectl describe` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
}

/// Append an event to the pod's events file.
pub fn record_event(pod_dir: &Path, kind: &str, reason: &str, message: &str) {
    let e = Event { time: now(), kind: kind.into(), reason: reason.into(), message: message.into() };
    let path = pod_dir.join(EVENTS_FILE);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path)
        && let Ok(line) = serde_json::to_string(&e)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// The pod's events, oldest first.
pub fn events(pod_dir: &Path) -> Vec<Event> {
    std::fs::read_to_string(pod_dir.join(EVENTS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The current time as a Kubernetes timestamp.
pub fn timestamp_now() -> k8s_openapi::jiff::Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(0);
    k8s_openapi::jiff::Timestamp::new(secs, d.subsec_nanos() as i32).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// Now, as RFC 3339 UTC with seconds (what Kubernetes' timestamps look like).
pub fn now() -> String {
    let t = timestamp_now();
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Write `bytes` to `path` through a temporary file and a rename.
/// The temporary name is unique per process and call: the agent and a supervisor may write
/// the same file (supervisor.pid) at the same moment.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).ctx("write", &tmp)?;
    std::fs::rename(&tmp, path).ctx("rename into place", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(name: &str) -> ContainerRecord {
        let mut c = ContainerRecord::new(name, "busybox");
        c.state = State::Running { started_at: now(), pid: 1 };
        c
    }

    fn exited(name: &str, code: i32) -> ContainerRecord {
        let mut c = ContainerRecord::new(name, "busybox");
        let reason = if code == 0 { "Completed" } else { "Error" };
        c.state = State::Terminated {
            exit_code: code,
            signal: 0,
            reason: reason.into(),
            message: String::new(),
            started_at: now(),
            finished_at: now(),
        };
        c
    }

    fn pod(containers: Vec<ContainerRecord>) -> PodRecord {
        PodRecord { initialized: true, containers, start_time: now(), ..Default::default() }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        assert_eq!(pod(vec![ContainerRecord::new("a", "x")]).phase("Always"), "Pending");
        assert_eq!(pod(vec![running("a"), exited("b", 0)]).phase("Never"), "Running");
        assert_eq!(pod(vec![exited("a", 0), exited("b", 0)]).phase("Never"), "Succeeded");
        assert_eq!(pod(vec![exited("a", 0), exited("b", 1)]).phase("Never"), "Failed");
        assert_eq!(pod(vec![exited("a", 0), exited("b", 1)]).phase("OnFailure"), "Running");
        assert_eq!(pod(vec![exited("a", 0)]).phase("OnFailure"), "Succeeded");
        let mut p = pod(vec![]);
        p.initialized = false;
        p.init_containers = vec![exited("i", 1)];
        assert_eq!(p.phase("Never"), "Failed");
        assert_eq!(p.phase("Always"), "Pending");
    }

    #[test]
    fn status_column_is_what_kubectl_prints() {
        let mut p = pod(vec![running("a")]);
        assert_eq!(p.display_status("Always"), "Running");
        p.containers[0].state = State::waiting("CrashLoopBackOff");
        p.containers[0].restart_count = 2;
        assert_eq!(p.display_status("Always"), "CrashLoopBackOff");
        let mut q = pod(vec![ContainerRecord::new("a", "x")]);
        q.initialized = false;
        q.init_containers = vec![exited("i1", 0), ContainerRecord::new("i2", "x")];
        assert_eq!(q.display_status("Always"), "Init:1/2");
        q.deleting = true;
        assert_eq!(q.display_status("Always"), "Terminating");
        assert_eq!(pod(vec![exited("a", 0)]).display_status("Never"), "Completed");
    }

    #[test]
    fn status_object_has_conditions_and_states() {
        let mut p = pod(vec![running("a")]);
        p.containers[0].ready = true;
        p.pod_ip = Some("10.244.0.2".into());
        let s = p.to_status("Always");
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let ready = s.conditions.iter().flatten().find(|c| c.type_ == "Ready").map(|c| c.status.clone());
        assert_eq!(ready.as_deref(), Some("True"));
        assert!(s.container_statuses.unwrap()[0].state.as_ref().unwrap().running.is_some());
        assert!(s.start_time.is_some(), "start time parses");
    }
}
