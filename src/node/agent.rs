//! The node agent's loop: make the pods on this host match the manifests.
//!
//! Every second (and whenever asked) the agent reads its static manifest directory, compares
//! the pods there with the pod directories it has, and acts like the kubelet's pod workers:
//! a new pod gets a uid, a directory and a supervisor; a changed manifest replaces the pod;
//! a removed one is stopped (SIGTERM to its supervisor, which honours the grace period) and
//! its directory removed; a supervisor that died is started again and repairs the pod.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use sha2::Digest;

use super::{NodeConfig, NodePaths};
use crate::error::{Error, IoContext, Result};
use crate::pod::env::Objects;
use crate::pod::manifest::{self, Object};
use crate::pod::node_info::{self, NodeInfo, SUPERVISOR_PID};
use crate::pod::status::PodRecord;

/// File in a pod directory holding the hash of the manifest it was made from.
const SOURCE_HASH: &str = "source.hash";
/// File in a pod directory that marks it for deletion.
const DELETING: &str = "deleting";

/// What the manifest directory asks for.
#[derive(Debug, Default)]
pub struct Desired {
    /// Pods by `namespace/name`.
    pub pods: BTreeMap<String, Pod>,
    pub objects: BTreeMap<String, Objects>,
    /// Services and Endpoints objects, in file order.
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
    /// Files that could not be read, with the error (reported once per change).
    pub errors: Vec<String>,
}

/// Read every manifest (`*.yaml`, `*.yml`, `*.json`) of `dir`.
pub fn read_manifests(dir: &Path) -> Desired {
    let mut d = Desired::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return d };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let hidden = f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden || !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        match manifest::load(&f) {
            Ok(objects) => {
                for o in objects {
                    let key = format!("{}/{}", o.namespace(), o.name());
                    let ns = o.namespace().to_string();
                    match o {
                        Object::Pod(p) => {
                            d.pods.insert(key, *p);
                        }
                        Object::ConfigMap(c) => {
                            let name = c.metadata.name.clone().unwrap_or_default();
                            d.objects.entry(ns).or_default().config_maps.insert(name, *c);
                        }
                        Object::Secret(s) => {
                            let name = s.metadata.name.clone().unwrap_or_default();
                            d.objects.entry(ns).or_default().secrets.insert(name, *s);
                        }
                        Object::Service(svc) => d.services.push(*svc),
                        Object::Endpoints(e) => d.endpoints.push(*e),
                    }
                }
            }
            Err(e) => d.errors.push(e.to_string()),
        }
    }
    d
}

/// A pod the agent has a directory for.
#[derive(Debug, Clone)]
pub struct Existing {
    pub dir: PathBuf,
    pub pod: Pod,
    pub hash: String,
}

/// Key (`namespace/name`) of a pod.
pub fn key_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The pod directories under `pods_dir`.
pub fn existing(pods_dir: &Path) -> Vec<Existing> {
    let Ok(entries) = std::fs::read_dir(pods_dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        let Ok(pod) = node_info::read_json::<Pod>(&dir.join(node_info::POD_FILE)) else { continue };
        let hash = std::fs::read_to_string(dir.join(SOURCE_HASH)).unwrap_or_default();
        out.push(Existing { dir, pod, hash });
    }
    out
}

/// A stable hash of what a pod's manifest asks for (metadata and spec), with its ConfigMaps and
/// Secrets. Not its namespace's Services: as with the kubelet, a pod keeps the service
/// variables it started with, and a new Service does not restart it.
fn hash_of(pod: &Pod, objects: Option<&Objects>) -> String {
    let mut h = sha2::Sha256::new();
    h.update(serde_json::to_vec(&pod.metadata).unwrap_or_default());
    h.update(serde_json::to_vec(&pod.spec).unwrap_or_default());
    if let Some(o) = objects.filter(|o| !o.config_maps.is_empty() || !o.secrets.is_empty()) {
        let o = Objects { services: Default::default(), ..o.clone() };
        h.update(serde_json::to_vec(&o).unwrap_or_default());
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// A random (version 4) uid, as the API server gives every object.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    if !crate::primitives::random::fill(&mut b) {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        b = (t ^ u128::from(std::process::id())).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The agent's state between passes.
pub struct Agent {
    pub paths: NodePaths,
    pub config: NodeConfig,
    /// Supervisors this agent started (reaped here; others were adopted after a restart).
    children: Vec<std::process::Child>,
    reported: Vec<String>,
    /// Services: VIP rules and cluster DNS (None: this node does not proxy).
    proxy: Option<super::services::ServiceProxy>,
    /// Pods being deleted at the end of the last pass: the loop then looks again soon, so a
    /// pod's directory goes (and `podlab delete` returns) right after its supervisor is done.
    deleting: usize,
}

impl Agent {
    pub fn new(paths: NodePaths, config: NodeConfig) -> Self {
        Agent { paths, config, children: Vec::new(), reported: Vec::new(), proxy: None, deleting: 0 }
    }

    /// Proxy this node's Services with `proxy`.
    pub fn with_proxy(mut self, proxy: super::services::ServiceProxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    fn node_info(&self) -> NodeInfo {
        NodeInfo {
            node_name: self.config.node_name.clone(),
            host_ip: self.config.host_ip.clone(),
            cidr: self.config.pod_cidr.clone(),
            bridge: self.config.bridge.clone(),
            ipam_dir: self.paths.ipam_dir(),
            runtime_root: self.paths.runtime_root(),
            images: self.paths.dirs.images(),
            backoff_initial_ms: self.config.backoff_initial_ms,
            backoff_max_ms: self.config.backoff_max_ms,
            explain: self.config.explain,
            cluster_dns: self.config.cluster_dns.clone(),
            poke: Some(self.paths.poke_socket()),
        }
    }

    /// One pass of the loop.
    pub fn sync(&mut self) {
        self.children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        let mut desired = read_manifests(&self.config.manifests);
        if let Some(proxy) = self.proxy.as_mut() {
            let pods: Vec<Pod> = super::pods::list(&self.paths).into_iter().map(|p| p.pod).collect();
            let served = proxy.sync(&desired.services, &desired.endpoints, &pods);
            // New pods see the Services of their namespace (with their allocated IPs) as
            // environment variables.
            for svc in served {
                let ns = svc.metadata.namespace.clone().unwrap_or_else(|| "default".into());
                let name = svc.metadata.name.clone().unwrap_or_default();
                desired.objects.entry(ns).or_default().services.insert(name, svc);
            }
        }
        for e in &desired.errors {
            if !self.reported.contains(e) {
                tracing::warn!("manifest not used: {e}");
                self.reported.push(e.clone());
            }
        }
        self.reported.retain(|e| desired.errors.contains(e));
        let mut have: BTreeMap<String, Existing> = BTreeMap::new();
        self.deleting = 0;
        for e in existing(&self.paths.pods_dir()) {
            let key = key_of(&e.pod);
            // Two directories for one pod (an update in progress): the one being deleted goes.
            if e.dir.join(DELETING).exists() {
                self.finish_delete(&e);
                continue;
            }
            have.insert(key, e);
        }
        for (key, e) in &have {
            let want = desired.pods.get(key);
            let ns = e.pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let wanted_hash = want.map(|p| hash_of(p, desired.objects.get(&ns)));
            if wanted_hash.as_deref() != Some(e.hash.as_str()) {
                self.delete(e);
            } else {
                self.keep_alive(e);
            }
        }
        for (key, pod) in &desired.pods {
            let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let hash = hash_of(pod, desired.objects.get(&ns));
            if have.get(key).is_some_and(|e| e.hash == hash) {
                continue;
            }
            if have.contains_key(key) {
                // The old pod is stopping; the new one starts once it is gone.
                continue;
            }
            if let Err(e) = self.admit(pod, desired.objects.get(&ns).cloned().unwrap_or_default(), &hash) {
                tracing::warn!("cannot start pod {key}: {e}");
            }
        }
    }

    /// Make a pod directory and start its supervisor.
    fn admit(&mut self, pod: &Pod, objects: Objects, hash: &str) -> Result<()> {
        let uid = new_uid();
        let dir = self.paths.pods_dir().join(&uid);
        std::fs::create_dir_all(&dir).ctx("create the pod directory", &dir)?;
        let mut pod = pod.clone();
        pod.metadata.uid = Some(uid.clone());
        if pod.metadata.namespace.is_none() {
            pod.metadata.namespace = Some("default".into());
        }
        pod.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(crate::pod::status::timestamp_now()));
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some(self.config.node_name.clone());
        }
        node_info::write_json(&dir.join(node_info::POD_FILE), &pod)?;
        node_info::write_json(&dir.join(node_info::OBJECTS_FILE), &objects)?;
        node_info::write_json(&dir.join(node_info::NODE_FILE), &self.node_info())?;
        std::fs::write(dir.join(SOURCE_HASH), hash).ctx("write", dir.join(SOURCE_HASH))?;
        tracing::info!("pod {} admitted (uid {uid})", key_of(&pod));
        self.spawn_supervisor(&dir)
    }

    fn spawn_supervisor(&mut self, dir: &Path) -> Result<()> {
        let log = dir.join(node_info::SUPERVISOR_LOG);
        let out = std::fs::File::options().create(true).append(true).open(&log).ctx("open", &log)?;
        let err = out.try_clone().ctx("open", &log)?;
        // The running binary itself (even if the file was replaced since it started).
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.arg0("podlab").arg("__supervise").arg(dir);
        cmd.stdin(std::process::Stdio::null()).stdout(out).stderr(err);
        // SAFETY: setsid is async-signal-safe; the supervisor outlives the agent in its own session.
        unsafe {
            cmd.pre_exec(|| {
                crate::primitives::process::unblock_all_signals();
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().ctx("start the supervisor of", dir)?;
        node_info::write_pid(&dir.join(SUPERVISOR_PID), child.id() as i32)?;
        self.children.push(child);
        Ok(())
    }

    /// Restart a supervisor that died while its pod should run.
    fn keep_alive(&mut self, e: &Existing) {
        if node_info::live_pid(&e.dir.join(SUPERVISOR_PID)).is_some() {
            return;
        }
        let finished = PodRecord::load(&e.dir).map(|r| r.finished && !r.deleting).unwrap_or(false);
        if finished {
            return;
        }
        tracing::warn!("supervisor of pod {} is gone: starting a new one to repair it", key_of(&e.pod));
        if let Err(err) = self.spawn_supervisor(&e.dir) {
            tracing::warn!("{err}");
        }
    }

    /// Ask the pod's supervisor to stop it; the directory goes once it has.
    fn delete(&mut self, e: &Existing) {
        let _ = std::fs::write(e.dir.join(DELETING), "");
        self.finish_delete(e);
    }

    fn finish_delete(&mut self, e: &Existing) {
        match node_info::live_pid(&e.dir.join(SUPERVISOR_PID)) {
            Some(pid) => {
                self.deleting += 1;
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            }
            None => {
                // No supervisor: clean what may be left, then drop the directory.
                let uid = e.pod.metadata.uid.clone().unwrap_or_default();
                let node: NodeInfo =
                    node_info::read_json(&e.dir.join(node_info::NODE_FILE)).unwrap_or_else(|_| self.node_info());
                let errors = crate::pod::setup::teardown(&node, &e.pod, &e.dir, &uid);
                if errors.is_empty() {
                    if let Err(err) = std::fs::remove_dir_all(&e.dir) {
                        tracing::warn!("cannot remove {}: {err}", e.dir.display());
                    } else {
                        tracing::info!("pod {} deleted", key_of(&e.pod));
                    }
                } else {
                    tracing::warn!("pod {}: {}", key_of(&e.pod), errors.join("; "));
                }
            }
        }
    }
}

/// The node's address: the first global IPv4 address of this network namespace, else loopback.
pub fn host_ip() -> String {
    crate::primitives::link::list(None)
        .ok()
        .into_iter()
        .flatten()
        .filter(|l| l.name != "lo" && !l.name.starts_with("pl") && l.name != super::DEFAULT_BRIDGE)
        .flat_map(|l| l.addrs.clone())
        .find_map(|a| a.split('/').next().and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok()))
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// The agent's main loop (on its own thread): sync every half second (every 10 ms while a pod
/// is being deleted), or at once when poked.
pub fn run_loop(
    mut agent: Agent,
    poke: std::sync::mpsc::Receiver<()>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        agent.sync();
        let wait = if agent.deleting > 0 { Duration::from_millis(10) } else { Duration::from_millis(500) };
        let _ = poke.recv_timeout(wait);
        while poke.try_recv().is_ok() {}
    }
}

/// Whether the agent of `paths` is running (its pid file names a live process).
pub fn running(paths: &NodePaths) -> Option<i32> {
    node_info::live_pid(&paths.pid_file())
}

/// Refuse a second agent on the same root.
pub fn claim(paths: &NodePaths) -> Result<()> {
    std::fs::create_dir_all(paths.run_dir()).ctx("create", paths.run_dir())?;
    if let Some(pid) = running(paths) {
        if pid != std::process::id() as i32 {
            return Err(Error::invalid(format!("a node agent is already running for this root (pid {pid})")));
        }
    }
    node_info::write_pid(&paths.pid_file(), std::process::id() as i32)
}
