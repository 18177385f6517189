//! The per-pod supervisor: the process that keeps one pod running (podlab's conmon/shim).
//!
//! `podlab __supervise POD_DIR` is started by the node agent in its own session, so pods live
//! on when the agent restarts. It makes the pod's parts (see [`super::setup`]), runs the init
//! containers one after the other, then the app containers, and from then on watches them: it
//! is their parent (a *child subreaper*), so it reaps their exits and learns exit codes and
//! OOM kills; it writes their output to log files, runs the probes, restarts containers as the
//! restartPolicy says with the CrashLoopBackOff delay, and writes the pod's status to
//! `status.json`. SIGTERM deletes the pod: preStop hooks, SIGTERM, the grace period, SIGKILL,
//! then the pod's parts are removed.
//!
//! Mounts (overlay roots, volumes) are made in the supervisor's own mount namespace under a
//! private bind of the pod directory: the host never sees them and a killed supervisor leaves none.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::container::{self as podcontainer, ImageParts, PodParts};
use super::env::{Objects, PodFacts};
use super::node_info::{self, NODE_FILE, NodeInfo, OBJECTS_FILE, POD_FILE, SUPERVISOR_PID};
use super::probe::{self, Kind, Outcome, Prober};
use super::qos::QosClass;
use super::restart::Backoff;
use super::sandbox::Sandbox;
use super::status::{ContainerRecord, PodRecord, State, now, record_event};
use crate::error::{Error, Result};
use crate::runtime::container::{CreateOptions, Runtime};

/// Entry point of `podlab __supervise POD_DIR`; never returns.
pub fn main() -> ! {
    let Some(dir) = std::env::args_os().nth(2).map(PathBuf::from) else {
        eprintln!("usage: podlab __supervise POD_DIR");
        std::process::exit(2)
    };
    let _ = nix::sys::prctl::set_name(c"podlab-sup");
    match run(&dir) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("podlab supervisor {}: {e}", dir.display());
            std::process::exit(1)
        }
    }
}

/// One container of the pod while the supervisor runs it.
struct Slot {
    spec: Container,
    init: bool,
    /// Where its record lives: index into init_containers or containers.
    index: usize,
    image: Option<ImageParts>,
    next_start: Option<Instant>,
    started_at: Option<Instant>,
    backoff: Backoff,
    probers: Vec<(Kind, Prober, bool)>,
    /// Set while it is being stopped: when SIGKILL is due, and why it was stopped.
    stopping: Option<(Instant, String)>,
    prestop_done: Option<Receiver<()>>,
    /// Killed by a failed liveness or startup probe: restarted whatever the restartPolicy.
    probe_kill: bool,
    log: Option<Arc<Mutex<File>>>,
}

struct ProbeResult {
    slot: usize,
    generation: Instant,
    kind: Kind,
    outcome: Outcome,
}

struct Supervisor {
    dir: PathBuf,
    pod: Pod,
    spec: PodSpec,
    uid: String,
    node: NodeInfo,
    objects: Objects,
    facts: PodFacts,
    rec: PodRecord,
    class: QosClass,
    rt: Runtime,
    pause: Option<Sandbox>,
    slots: Vec<Slot>,
    policy: String,
    probe_tx: Sender<ProbeResult>,
    probe_rx: Receiver<ProbeResult>,
    dirty: bool,
    /// What the node agent was last told about (readiness, IP, phase): see [`Supervisor::save`].
    told: String,
}

fn run(dir: &Path) -> Result<()> {
    let pod: Pod = node_info::read_json(&dir.join(POD_FILE))?;
    let node: NodeInfo = node_info::read_json(&dir.join(NODE_FILE))?;
    let objects: Objects = node_info::read_json(&dir.join(OBJECTS_FILE)).unwrap_or_default();
    crate::explain::set_enabled(node.explain);
    let explain_log = dir.join(node_info::EXPLAIN_LOG);
    match File::options().create(true).append(true).open(&explain_log) {
        Ok(f) => crate::explain::log_to(f),
        Err(e) => eprintln!("cannot keep {}: {e}", explain_log.display()),
    }
    let spec = pod.spec.clone().ok_or_else(|| Error::invalid("pod has no spec"))?;
    let uid = pod.metadata.uid.clone().ok_or_else(|| Error::invalid("pod has no uid"))?;
    // Signals are taken synchronously in the main loop; block them before any thread exists.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD, Signal::SIGHUP, Signal::SIGPIPE] {
        mask.add(s);
    }
    mask.thread_block().map_err(|e| Error::sys("block signals", e))?;
    let _ = nix::sys::prctl::set_child_subreaper(true);
    node_info::write_pid(&dir.join(SUPERVISOR_PID), std::process::id() as i32)?;

    // What an earlier supervisor of this pod left (it was killed): remove it first. A supervisor
    // saves status.json before it makes anything, so a pod without one has nothing to clean.
    if dir.join(super::status::STATUS_FILE).exists() {
        for e in super::setup::teardown(&node, &pod, dir, &uid) {
            eprintln!("cleaning up an earlier run: {e}");
        }
    }
    let mut rec = PodRecord::load(dir).unwrap_or_default();
    private_mounts(dir)?;

    let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
    let class = super::qos::class(&spec);
    rec.qos_class = class.to_string();
    rec.host_ip = node.host_ip.clone();
    rec.supervisor =
        (std::process::id() as i32, crate::primitives::proc::start_time(std::process::id() as i32).unwrap_or(0));
    rec.finished = false;
    rec.deleting = false;
    if rec.start_time.is_empty() {
        rec.start_time = now();
    }
    let keep = |old: &[ContainerRecord], c: &Container| {
        let mut r = old
            .iter()
            .find(|o| o.name == c.name)
            .cloned()
            .unwrap_or_else(|| ContainerRecord::new(&c.name, c.image.as_deref().unwrap_or_default()));
        r.state = State::waiting("ContainerCreating");
        r.ready = false;
        r.started = false;
        r
    };
    let inits: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
    rec.init_containers = inits.iter().map(|c| keep(&rec.init_containers, c)).collect();
    rec.containers = spec.containers.iter().map(|c| keep(&rec.containers, c)).collect();
    for r in rec.init_containers.iter_mut() {
        r.state = State::waiting("PodInitializing");
    }
    rec.initialized = inits.is_empty();
    let backoff = || {
        Backoff::with_limits(
            Duration::from_millis(node.backoff_initial_ms),
            Duration::from_millis(node.backoff_max_ms),
            Duration::from_secs(600),
        )
    };
    let slot = |c: &Container, init: bool, index: usize| Slot {
        spec: c.clone(),
        init,
        index,
        image: None,
        next_start: None,
        started_at: None,
        backoff: backoff(),
        probers: Vec::new(),
        stopping: None,
        prestop_done: None,
        probe_kill: false,
        log: None,
    };
    let mut slots: Vec<Slot> = inits.iter().enumerate().map(|(i, c)| slot(c, true, i)).collect();
    slots.extend(spec.containers.iter().enumerate().map(|(i, c)| slot(c, false, i)));
    let facts = PodFacts::of(&pod, &node.node_name, None, &node.host_ip);
    let (probe_tx, probe_rx) = channel();
    let rt = Runtime { root: node.runtime_root.clone(), systemd_cgroup: false, explain: node.explain };
    let mut sup = Supervisor {
        dir: dir.to_path_buf(),
        pod,
        spec,
        uid,
        node,
        objects,
        facts,
        rec,
        class,
        rt,
        pause: None,
        slots,
        policy,
        probe_tx,
        probe_rx,
        dirty: true,
        told: String::new(),
    };
    sup.save();
    if let Err(e) = sup.setup() {
        record_event(dir, "Warning", "FailedCreatePodSandBox", &e.to_string());
        sup.rec.message = format!("cannot set up the pod: {e}");
        for c in sup.rec.containers.iter_mut().chain(sup.rec.init_containers.iter_mut()) {
            if matches!(c.state, State::Waiting { .. }) {
                c.state = State::Waiting { reason: failure_reason(&e), message: e.to_string() };
            }
        }
        sup.dirty = true;
        sup.save();
        // Keep reporting until deleted: the node agent shows the error; SIGTERM cleans up.
        sup.wait_for_term(&mask);
        sup.shutdown();
        return Ok(());
    }
    sup.main_loop(&mask);
    Ok(())
}

/// `ErrImagePull` and friends for a setup error, else `CreateContainerError`.
fn failure_reason(e: &Error) -> String {
    let text = e.to_string();
    for reason in ["ErrImageNeverPull", "ErrImagePull", "CreateContainerConfigError"] {
        if text.contains(reason) {
            return reason.into();
        }
    }
    "CreateContainerError".into()
}

/// A private mount namespace where the pod's mounts live, under a private bind of its directory.
fn private_mounts(dir: &Path) -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| Error::sys("unshare(CLONE_NEWNS)", e))?;
    crate::primitives::mount::bind(dir, dir, false)?;
    crate::primitives::mount::make_private(dir, true)
}

impl Supervisor {
    fn save(&mut self) {
        if self.dirty {
            if let Err(e) = self.rec.save(&self.dir) {
                eprintln!("cannot save the pod status: {e}");
            }
            self.dirty = false;
            self.tell_agent();
        }
    }

    /// Poke the node agent when what Services depend on changed (a container turned ready or
    /// not, the pod got its IP, it ended): its next pass, at once rather than within half a
    /// second, updates the Service endpoints. A datagram on its poke socket; lost if no agent.
    fn tell_agent(&mut self) {
        let ready: Vec<bool> = self.rec.containers.iter().map(|c| c.ready).collect();
        let now = format!("{ready:?} {:?} {} {}", self.rec.pod_ip, self.rec.finished, self.rec.deleting);
        if now == self.told {
            return;
        }
        self.told = now;
        if let Some(path) = &self.node.poke {
            if let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() {
                let _ = socket.send_to(b"sync", path);
            }
        }
    }

    fn event(&self, kind: &str, reason: &str, message: &str) {
        record_event(&self.dir, kind, reason, message);
    }

    /// The pod's shared parts and the images (pulled before anything starts).
    fn setup(&mut self) -> Result<()> {
        let store = crate::image::store::Store::open(&self.node.images)?;
        for slot in self.slots.iter_mut() {
            let name = slot.spec.image.clone().unwrap_or_default();
            let (image, warning) = podcontainer::image(&store, &slot.spec)?;
            if let Some(w) = warning {
                record_event(&self.dir, "Warning", "Failed", &w);
            }
            record_event(
                &self.dir,
                "Normal",
                "Pulled",
                &format!("Container image {name:?} is present ({})", short(&image.manifest)),
            );
            let rec = if slot.init {
                &mut self.rec.init_containers[slot.index]
            } else {
                &mut self.rec.containers[slot.index]
            };
            rec.image_id = image.manifest.clone();
            slot.image = Some(image);
        }
        let (class, cgroup) = super::setup::make_cgroup(&self.pod, &self.uid)?;
        self.class = class;
        let ip = super::setup::make_network(&self.node, &self.pod, &self.uid)?;
        let ip = ip.or_else(|| Some(self.node.host_ip.clone()));
        self.rec.pod_ip = ip.clone();
        self.facts.pod_ip = ip.clone();
        super::setup::write_files(&self.node, &self.pod, &self.dir, ip.as_deref())?;
        super::volumes::setup(&self.pod, &self.dir, &self.facts, &self.objects)?;
        let sb = super::setup::start_pause(&self.pod, &self.dir, &self.uid, &cgroup)?;
        self.event("Normal", "SandboxReady", &format!("pause process {} holds the pod's namespaces", sb.pid));
        self.pause = Some(sb);
        self.dirty = true;
        self.save();
        Ok(())
    }

    fn record(&mut self, slot: usize) -> &mut ContainerRecord {
        let s = &self.slots[slot];
        if s.init { &mut self.rec.init_containers[s.index] } else { &mut self.rec.containers[s.index] }
    }

    fn record_ref(&self, slot: usize) -> &ContainerRecord {
        let s = &self.slots[slot];
        if s.init { &self.rec.init_containers[s.index] } else { &self.rec.containers[s.index] }
    }

    fn main_loop(&mut self, mask: &SigSet) {
        let mut term = false;
        loop {
            match wait_signal(mask, Duration::from_millis(50)) {
                Some(Signal::SIGTERM) | Some(Signal::SIGINT) => term = true,
                _ => {}
            }
            if term {
                self.shutdown();
                return;
            }
            self.reap();
            self.probe_results();
            self.stop_due();
            if !self.rec.finished {
                self.start_due();
                self.run_probes();
            }
            self.update_conditions();
            self.save();
            if self.rec.finished && self.slots.iter().all(|s| self.record_ref_by(s).pid().is_none()) {
                // Nothing will run again: release the pod's parts, keep its status and logs.
                self.release();
                self.save();
                self.wait_for_term(mask);
                self.shutdown();
                return;
            }
        }
    }

    fn record_ref_by(&self, s: &Slot) -> &ContainerRecord {
        if s.init { &self.rec.init_containers[s.index] } else { &self.rec.containers[s.index] }
    }

    /// Containers whose turn it is: the next init container, or every app container.
    fn start_due(&mut self) {
        let now_i = Instant::now();
        let inits = self.rec.init_containers.len();
        let candidates: Vec<usize> = if !self.rec.initialized {
            // The first init container that has not completed.
            (0..inits)
                .find(|&i| !matches!(self.rec.init_containers[i].state, State::Terminated { exit_code: 0, .. }))
                .into_iter()
                .collect()
        } else {
            (inits..self.slots.len()).collect()
        };
        if !self.rec.initialized && candidates.is_empty() {
            self.rec.initialized = true;
            self.rec.initialized_since = now();
            self.dirty = true;
            return self.start_due();
        }
        for i in candidates {
            let running = self.record_ref(i).pid().is_some();
            let never_started = self.slots[i].started_at.is_none() && self.slots[i].next_start.is_none();
            let due = self.slots[i].next_start.is_some_and(|t| t <= now_i);
            if running || self.slots[i].stopping.is_some() {
                continue;
            }
            if (never_started && !matches!(self.record_ref(i).state, State::Terminated { .. })) || due {
                self.slots[i].next_start = None;
                if let Err(e) = self.start(i) {
                    let name = self.slots[i].spec.name.clone();
                    self.event("Warning", "Failed", &format!("Error: {e}"));
                    let reason = failure_reason(&e);
                    let rec = self.record(i);
                    rec.state = State::Waiting { reason, message: e.to_string() };
                    eprintln!("container {name}: {e}");
                    // Try again after the back-off delay, as the kubelet does.
                    let delay = self.slots[i].backoff.next_delay(Duration::ZERO);
                    self.slots[i].next_start = Some(Instant::now() + delay);
                    self.dirty = true;
                }
            }
        }
    }

    /// Create and start container `i` with its output piped to its log file.
    fn start(&mut self, i: usize) -> Result<()> {
        let pause = self.pause.as_ref().map(|p| p.pid).unwrap_or(0);
        let c = self.slots[i].spec.clone();
        let meta = &self.pod.metadata;
        let id = node_info::container_id(
            &c.name,
            meta.name.as_deref().unwrap_or_default(),
            meta.namespace.as_deref().unwrap_or("default"),
            &self.uid,
        );
        let cdir = self.dir.join("containers").join(&c.name);
        let rootfs = self.fresh_rootfs(i, &cdir)?;
        let parts = PodParts {
            pod: &self.pod,
            pod_dir: &self.dir,
            facts: &self.facts,
            objects: &self.objects,
            class: self.class,
            pause_pid: pause,
            host_network: super::setup::host_network(&self.pod),
            node_memory: self.facts.node_memory_bytes,
        };
        let image = self.slots[i].image.as_ref().ok_or_else(|| Error::invalid("image not prepared"))?;
        let spec = podcontainer::spec(&parts, &c, image, &rootfs)
            .map_err(|e| Error::invalid(format!("CreateContainerConfigError: {e}")))?;
        let bundle = cdir.join("bundle");
        podcontainer::write_bundle(&spec, &bundle)?;
        let restart = self.record_ref(i).restart_count;
        let log_path = super::logs::log_path(&self.dir.join("logs"), &c.name, restart);
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let log =
            File::options().create(true).append(true).open(&log_path).map_err(|e| Error::io("open", &log_path, e))?;
        let log = Arc::new(Mutex::new(log));
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = File::open("/dev/null").map_err(|e| Error::io("open", "/dev/null", e))?;
        let _ = self.rt.delete(&id, true);
        let opts = CreateOptions {
            bundle,
            stdio: Some([null.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]),
            ..Default::default()
        };
        let created = self.rt.create(&id, &opts);
        drop(out_w);
        drop(err_w);
        let created = created?;
        super::logs::copy_stream(File::from(out_r), super::logs::Stream::Stdout, log.clone());
        super::logs::copy_stream(File::from(err_r), super::logs::Stream::Stderr, log.clone());
        self.event("Normal", "Created", &format!("Created container {}", c.name));
        if let Err(e) = self.rt.start(&id) {
            let _ = self.rt.delete(&id, true);
            return Err(e);
        }
        self.event("Normal", "Started", &format!("Started container {}", c.name));
        let started = Instant::now();
        let slot = &mut self.slots[i];
        slot.started_at = Some(started);
        slot.log = Some(log);
        slot.probers = Vec::new();
        let probes = [
            (Kind::Startup, &c.startup_probe),
            (Kind::Liveness, &c.liveness_probe),
            (Kind::Readiness, &c.readiness_probe),
        ];
        for (kind, p) in probes {
            if let Some(p) = p {
                slot.probers.push((kind, Prober::new(kind, p, started), false));
            }
        }
        let has_startup = c.startup_probe.is_some();
        let has_readiness = c.readiness_probe.is_some();
        let rec = self.record(i);
        rec.runtime_id = id;
        rec.state = State::Running { started_at: now(), pid: created.pid };
        rec.started = !has_startup;
        rec.ready = !has_readiness && !has_startup;
        self.dirty = true;
        Ok(())
    }

    /// A new writable layer over the image for each start (a restarted container starts clean).
    fn fresh_rootfs(&self, i: usize, cdir: &Path) -> Result<PathBuf> {
        let merged = cdir.join("merged");
        let _ = crate::primitives::mount::unmount(&merged, true);
        for d in ["upper", "work"] {
            let _ = std::fs::remove_dir_all(cdir.join(d));
        }
        let layers = self.slots[i].image.as_ref().map(|im| im.layers.clone()).unwrap_or_default();
        let overlay = crate::image::rootfs::prepare(layers, cdir)?;
        overlay.mount()?;
        Ok(merged)
    }

    /// Collect exited containers and decide what happens next.
    fn reap(&mut self) {
        if let Some(p) = &self.pause
            && let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
                waitpid(nix::unistd::Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG))
        {
            self.event("Warning", "SandboxChanged", "the pause process exited; the pod will be re-created");
        }
        for i in 0..self.slots.len() {
            let Some(pid) = self.record_ref(i).pid() else { continue };
            let code = match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => (code, 0),
                Ok(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, sig as i32),
                Ok(_) => continue,
                // Not our child (should not happen): fall back to "is it gone".
                Err(_) if !crate::primitives::proc::alive(pid) => (137, 9),
                Err(_) => continue,
            };
            self.exited(i, code.0, code.1);
        }
    }

    fn exited(&mut self, i: usize, exit_code: i32, signal: i32) {
        let id = self.record_ref(i).runtime_id.clone();
        let oom = crate::runtime::state::Container::load(&self.rt.root, &id)
            .ok()
            .and_then(|c| c.cgroup().ok())
            .is_some_and(|cg| cg.stats().oom_kills > 0);
        let _ = self.rt.delete(&id, true);
        let stopped_for = self.slots[i].stopping.take().map(|(_, why)| why);
        let reason = if oom && exit_code == 137 {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let ran = self.slots[i].started_at.map(|t| t.elapsed()).unwrap_or_default();
        let started_at = match &self.record_ref(i).state {
            State::Running { started_at, .. } => started_at.clone(),
            _ => now(),
        };
        let name = self.slots[i].spec.name.clone();
        if reason == "OOMKilled" {
            self.event(
                "Warning",
                "OOMKilled",
                &format!("Container {name} was killed by the OOM killer (memory limit)"),
            );
        }
        let state = State::Terminated {
            exit_code,
            signal,
            reason: reason.into(),
            message: stopped_for.clone().unwrap_or_default(),
            started_at,
            finished_at: now(),
        };
        self.slots[i].log = None;
        let init = self.slots[i].init;
        let policy = if init && self.policy == "Always" { "OnFailure".to_string() } else { self.policy.clone() };
        let restart = !self.rec.deleting
            && (super::restart::should_restart(&policy, exit_code)
                || std::mem::take(&mut self.slots[i].probe_kill) && policy != "Never");
        let rec = self.record(i);
        rec.ready = false;
        rec.started = false;
        if restart {
            rec.last_state = Some(state);
            rec.restart_count += 1;
            let delay = self.slots[i].backoff.next_delay(ran);
            self.slots[i].next_start = Some(Instant::now() + delay);
            let rec = self.record(i);
            if delay > Duration::ZERO {
                rec.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!("back-off {} restarting failed container={name}", human(delay)),
                };
                self.event("Warning", "BackOff", &format!("Back-off restarting failed container {name}"));
            } else {
                rec.state = State::waiting("ContainerCreating");
            }
        } else {
            rec.state = state;
            if init && exit_code != 0 {
                // An init container failed for good: the pod failed.
                self.rec.finished = true;
            }
        }
        if !init
            && !restart
            && self
                .slots
                .iter()
                .filter(|s| !s.init)
                .all(|s| matches!(self.record_ref_by(s).state, State::Terminated { .. }))
        {
            self.rec.finished = true;
        }
        if init && self.policy == "Never" && exit_code != 0 {
            self.rec.finished = true;
        }
        self.dirty = true;
    }

    /// Send SIGKILL to containers whose grace period is over; SIGTERM once preStop is done.
    fn stop_due(&mut self) {
        let now_i = Instant::now();
        for i in 0..self.slots.len() {
            let id = self.record_ref(i).runtime_id.clone();
            let Some((deadline, _)) = &self.slots[i].stopping else { continue };
            let deadline = *deadline;
            if let Some(rx) = &self.slots[i].prestop_done {
                if rx.try_recv().is_ok()
                    || matches!(rx.try_recv(), Err(std::sync::mpsc::TryRecvError::Disconnected))
                    || now_i >= deadline
                {
                    self.slots[i].prestop_done = None;
                    let _ = self.rt.kill(&id, Signal::SIGTERM, false);
                }
                continue;
            }
            if now_i >= deadline {
                let _ = self.rt.kill(&id, Signal::SIGKILL, true);
                self.slots[i].stopping = Some((
                    now_i + Duration::from_secs(3600),
                    self.slots[i].stopping.take().map(|s| s.1).unwrap_or_default(),
                ));
            }
        }
    }

    /// Begin stopping container `i`: preStop hook, then SIGTERM, SIGKILL after `grace`.
    fn begin_stop(&mut self, i: usize, grace: Duration, why: &str) {
        if self.slots[i].stopping.is_some() || self.record_ref(i).pid().is_none() {
            return;
        }
        let name = self.slots[i].spec.name.clone();
        self.event(
            "Normal",
            "Killing",
            &format!("Stopping container {name}{}", if why.is_empty() { String::new() } else { format!(": {why}") }),
        );
        self.slots[i].stopping = Some((Instant::now() + grace, why.to_string()));
        let id = self.record_ref(i).runtime_id.clone();
        if let Some(handler) = self.slots[i].spec.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) {
            let (tx, rx) = channel();
            let ip = self.rec.pod_ip.clone();
            let rt = self.rt.clone();
            let c = self.slots[i].spec.clone();
            let dir = self.dir.clone();
            std::thread::spawn(move || {
                let outcome = run_handler(&rt, &id, &c, ip.as_deref(), &handler, grace);
                if let Outcome::Failure(m) | Outcome::Unknown(m) = outcome {
                    record_event(&dir, "Warning", "FailedPreStopHook", &format!("PreStopHook failed: {m}"));
                }
                let _ = tx.send(());
            });
            self.slots[i].prestop_done = Some(rx);
        } else {
            let _ = self.rt.kill(&id, Signal::SIGTERM, false);
        }
    }

    /// Start the probes that are due, each on its own thread.
    fn run_probes(&mut self) {
        let now_i = Instant::now();
        for i in 0..self.slots.len() {
            let Some(_) = self.record_ref(i).pid() else { continue };
            if self.slots[i].stopping.is_some() {
                continue;
            }
            let started = self.record_ref(i).started;
            let generation = self.slots[i].started_at.unwrap_or(now_i);
            for p in 0..self.slots[i].probers.len() {
                let (kind, ref prober, in_flight) = self.slots[i].probers[p];
                // Liveness and readiness wait for the startup probe.
                if in_flight
                    || !prober.due(now_i)
                    || (kind != Kind::Startup && !started)
                    || (kind == Kind::Startup && started)
                {
                    continue;
                }
                let Some(probe) = probe_of(&self.slots[i].spec, kind) else { continue };
                self.slots[i].probers[p].2 = true;
                let timeout = self.slots[i].probers[p].1.timeout();
                let tx = self.probe_tx.clone();
                let rt = self.rt.clone();
                let id = self.record_ref(i).runtime_id.clone();
                let c = self.slots[i].spec.clone();
                let ip = self.rec.pod_ip.clone();
                std::thread::spawn(move || {
                    let outcome = match probe::action(&probe) {
                        Ok(action) => run_action(&rt, &id, &c, ip.as_deref(), &action, timeout),
                        Err(e) => Outcome::Unknown(e.to_string()),
                    };
                    let _ = tx.send(ProbeResult { slot: i, generation, kind, outcome });
                });
            }
        }
    }

    fn probe_results(&mut self) {
        while let Ok(r) = self.probe_rx.try_recv() {
            let i = r.slot;
            if self.slots[i].started_at != Some(r.generation) || self.record_ref(i).pid().is_none() {
                continue;
            }
            let Some(p) = self.slots[i].probers.iter().position(|(k, _, _)| *k == r.kind) else { continue };
            self.slots[i].probers[p].2 = false;
            let flipped = self.slots[i].probers[p].1.record(Instant::now(), &r.outcome);
            let name = self.slots[i].spec.name.clone();
            if let Some(m) = r.kind.event_message(&r.outcome) {
                self.event("Warning", "Unhealthy", &m);
            }
            match (r.kind, flipped) {
                (Kind::Startup, Some(true)) => {
                    let rec = self.record(i);
                    rec.started = true;
                    if self.slots[i].spec.readiness_probe.is_none() {
                        self.record(i).ready = true;
                    }
                }
                (Kind::Readiness, Some(ok)) => self.record(i).ready = ok,
                (Kind::Liveness, Some(false)) | (Kind::Startup, Some(false)) => {
                    let grace = self.grace();
                    let why = r.kind.kill_message(&name, true).unwrap_or_default();
                    self.slots[i].probe_kill = true;
                    self.begin_stop(i, grace, &why);
                }
                _ => {}
            }
            self.dirty = true;
        }
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64)
    }

    fn update_conditions(&mut self) {
        let ready = !self.rec.containers.is_empty() && self.rec.containers.iter().all(|c| c.ready);
        let was = !self.rec.ready_since.is_empty();
        if ready != was {
            self.rec.ready_since = if ready { now() } else { String::new() };
            self.dirty = true;
        }
    }

    /// Wait for SIGTERM (a finished pod keeps its status until it is deleted).
    fn wait_for_term(&mut self, mask: &SigSet) {
        loop {
            if let Some(Signal::SIGTERM | Signal::SIGINT) = wait_signal(mask, Duration::from_secs(1)) {
                return;
            }
            // Reap whatever is left (a pause that exits, say).
            while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) = waitpid(None, Some(WaitPidFlag::WNOHANG))
            {
            }
        }
    }

    /// Stop every container (preStop, SIGTERM, grace, SIGKILL) and remove the pod's parts.
    fn shutdown(&mut self) {
        self.rec.deleting = true;
        self.dirty = true;
        self.save();
        let grace = self.grace();
        for i in 0..self.slots.len() {
            self.begin_stop(i, grace, "");
        }
        let deadline = Instant::now() + grace + Duration::from_secs(10);
        while self.slots.iter().any(|s| self.record_ref_by(s).pid().is_some()) && Instant::now() < deadline {
            self.reap();
            self.stop_due();
            std::thread::sleep(Duration::from_millis(20));
        }
        self.release();
        self.rec.finished = true;
        self.dirty = true;
        self.save();
    }

    /// Remove containers, pause, network, volumes and cgroup; unmount the roots.
    fn release(&mut self) {
        for e in super::setup::teardown(&self.node, &self.pod, &self.dir, &self.uid) {
            eprintln!("teardown: {e}");
        }
        let _ = crate::primitives::mount::unmount_all_under(&self.dir.join("containers"));
        if let Some(p) = self.pause.take() {
            let _ = waitpid(nix::unistd::Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG));
        }
        if self.rec.pod_ip.is_some() && !super::setup::host_network(&self.pod) {
            // The IP went back to the pool.
            self.dirty = true;
        }
    }
}

fn probe_of(c: &Container, kind: Kind) -> Option<k8s_openapi::api::core::v1::Probe> {
    match kind {
        Kind::Liveness => c.liveness_probe.clone(),
        Kind::Readiness => c.readiness_probe.clone(),
        Kind::Startup => c.startup_probe.clone(),
    }
}

/// Run a probe action against container `id` (exec inside it, HTTP or TCP to the pod IP).
fn run_action(
    rt: &Runtime,
    id: &str,
    c: &Container,
    ip: Option<&str>,
    action: &probe::Action,
    timeout: Duration,
) -> Outcome {
    let host: std::net::IpAddr = ip.and_then(|i| i.parse().ok()).unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    match action {
        probe::Action::Exec(cmd) => exec_probe(rt, id, cmd, timeout),
        other => probe::run(other, host, c, timeout).unwrap_or_else(|| Outcome::Unknown("no handler".into())),
    }
}

/// A lifecycle handler (preStop): exec, httpGet or sleep.
fn run_handler(
    rt: &Runtime,
    id: &str,
    c: &Container,
    ip: Option<&str>,
    h: &k8s_openapi::api::core::v1::LifecycleHandler,
    grace: Duration,
) -> Outcome {
    if let Some(s) = &h.sleep {
        std::thread::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(grace));
        return Outcome::Success;
    }
    let probe = k8s_openapi::api::core::v1::Probe {
        exec: h.exec.clone(),
        http_get: h.http_get.clone(),
        tcp_socket: h.tcp_socket.clone(),
        ..Default::default()
    };
    match probe::action(&probe) {
        Ok(a) => run_action(rt, id, c, ip, &a, grace),
        Err(e) => Outcome::Unknown(e.to_string()),
    }
}

/// `exec` probe: run the command in the container; exit 0 is success.
fn exec_probe(rt: &Runtime, id: &str, cmd: &[String], timeout: Duration) -> Outcome {
    let (tx, rx) = channel();
    let rt = rt.clone();
    let id = id.to_string();
    let command = cmd.to_vec();
    std::thread::spawn(move || {
        let _ = tx.send(exec_capture(&rt, &id, &command, &BTreeMap::new()));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok((code, out))) => probe::exec_outcome(cmd, Some(code), out.as_bytes(), false),
        Ok(Err(e)) => Outcome::Unknown(e.to_string()),
        Err(_) => probe::exec_outcome(cmd, None, b"", true),
    }
}

/// Run `cmd` in container `id`, returning its exit code and output (stdout and stderr).
pub fn exec_capture(rt: &Runtime, id: &str, cmd: &[String], env: &BTreeMap<String, String>) -> Result<(i32, String)> {
    let c = crate::runtime::state::Container::load(&rt.root, id)?;
    let spec = crate::runtime::spec::load(&c.bundle)?;
    let mut process = spec.process().clone().ok_or_else(|| Error::invalid("container has no process"))?;
    process.set_args(Some(cmd.to_vec()));
    process.set_terminal(Some(false));
    if !env.is_empty() {
        let mut e = process.env().clone().unwrap_or_default();
        e.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        process.set_env(Some(e));
    }
    let (r, w) = pipe()?;
    let null = File::open("/dev/null").map_err(|e| Error::io("open", "/dev/null", e))?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut File::from(r), &mut out);
        out
    });
    let opts = crate::runtime::container::ExecOptions {
        stdio: Some([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]),
        keep_signals: true,
        ..Default::default()
    };
    let code = rt.exec(id, process, &opts);
    drop(w);
    let out = reader.join().unwrap_or_default();
    Ok((code?, out))
}

/// A pipe whose ends are close-on-exec (the runtime dups what the container needs).
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))
}

/// Wait up to `timeout` for one of the blocked signals.
fn wait_signal(mask: &SigSet, timeout: Duration) -> Option<Signal> {
    let ts =
        libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as libc::c_long };
    // SAFETY: the set and timespec are valid for the call; no siginfo is asked for.
    let n = unsafe { libc::sigtimedwait(mask.as_ref(), std::ptr::null_mut(), &ts) };
    if n > 0 { Signal::try_from(n).ok() } else { None }
}

fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}

/// `10s`, `1m20s`, as Kubernetes prints durations.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{}m{}s", s / 60, s % 60),
    }
}
