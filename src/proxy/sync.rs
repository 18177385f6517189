//! The proxier: keeps the kernel's rules equal to the Services it is given.
//!
//! The first sync (and any after a failure) is full: it reads what the tables hold
//! (`iptables-save`), and writes every chain that differs, deletes podlab's stale chains and
//! adds the jumps from PREROUTING, OUTPUT, POSTROUTING, INPUT and FORWARD. Later syncs are
//! partial: only service ports that changed since the last sync are looked at, and only their
//! chains and their rules in the shared chains are written, in one `iptables-restore
//! --noflush` (several when a change is very large, with the nft backend). Rules belong to the
//! network namespace of the calling thread.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::model::{ProxyConfig, ServicePort, ServicePortName};
use super::plan::{self, Change, Plan, Saved};
use super::rules::{self, BaseChain, Jump, Options, ServiceRules};
use crate::error::{Error, IoContext, Result};
use crate::explain;

/// With the nft backend, one restore input names at most about this many chains: iptables-nft
/// 1.8 looks each command's chains up in a sorted list, so an input of m lines naming n chains
/// costs m x n (10,000 services in one input take many minutes; in inputs of this size,
/// seconds). Measured here at 2,000 services: 400 to 1000 are about as fast, 150 and 2500 slower.
pub const NFT_BATCH_CHAINS: usize = 400;

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// A full sync (the tables were read and compared), or a partial one.
    pub full: bool,
    /// Chains written whole (`:CHAIN` and its rules).
    pub chains_written: usize,
    /// Rule lines sent: the rules of written chains, and single rules added or removed.
    pub rules_written: usize,
    /// Stale chains deleted.
    pub chains_deleted: usize,
    /// iptables-restore runs (0 when nothing changed).
    pub restores: usize,
    pub elapsed: Duration,
}

/// A service port as last written, with its rules.
#[derive(Debug, Clone)]
struct Written {
    port: ServicePort,
    rules: ServiceRules,
}

/// Programs Services into iptables, kube-proxy's "iptables" mode.
#[derive(Debug)]
pub struct Proxier {
    backend: Backend,
    opts: Options,
    base: Vec<BaseChain>,
    jumps: Vec<Jump>,
    /// The rules of each service port as of the last sync (kept while the port does not change).
    written: HashMap<ServicePortName, Written>,
    /// False until a full sync succeeds, and again after a failure: the kernel must be read.
    in_sync: bool,
}

impl Proxier {
    /// A proxier for this thread's network namespace, with the backend the node uses
    /// ([`Backend::detect`]). Sets the sysctls kube-proxy needs (see [`Proxier::with_backend`]).
    pub fn new(config: ProxyConfig) -> Result<Proxier> {
        Proxier::with_backend(config, Backend::detect()?)
    }

    /// A proxier that writes with `backend`. Like kube-proxy, it lets node ports answer on
    /// 127.0.0.1 (`net.ipv4.conf.all.route_localnet=1`, with KUBE-FIREWALL dropping such packets
    /// from outside), and turns on `net.bridge.bridge-nf-call-iptables` so that a pod reaching a
    /// Service whose endpoint is on the same bridge is seen by iptables both ways.
    pub fn with_backend(config: ProxyConfig, backend: Backend) -> Result<Proxier> {
        let mut opts = Options::new(&config)?;
        sysctl("net.ipv4.conf.all.route_localnet", "1")?;
        bridge_netfilter()?;
        opts.conntrack_liberal = read_sysctl("net.netfilter.nf_conntrack_tcp_be_liberal").is_some_and(|v| v != "0");
        let base = rules::base_chains(&opts);
        Ok(Proxier { backend, opts, base, jumps: rules::jumps(), written: HashMap::new(), in_sync: false })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Make the next sync a full one (read the tables again), as kube-proxy does now and then
    /// in case someone else changed its chains.
    pub fn force_full_sync(&mut self) {
        self.in_sync = false;
    }

    /// Make the rules match `services` (every service port of the node's view, ready endpoints
    /// only). Bad input is refused before anything is written. After a failed restore the next
    /// sync is a full one.
    pub fn sync(&mut self, services: &[ServicePort]) -> Result<SyncStats> {
        let start = Instant::now();
        let mut seen: HashSet<&ServicePortName> = HashSet::with_capacity(services.len());
        for svc in services {
            rules::validate(svc)?;
            if !seen.insert(&svc.name) {
                return Err(Error::invalid(format!(
                    "service port {} ({}) is listed twice",
                    svc.name, svc.name.protocol
                )));
            }
        }
        let large = rules::large_cluster(services);
        let mode_changed = large != self.opts.large;
        self.opts.large = large;

        // The ports that changed since the last sync, with their new rules; the others keep
        // the rules they have. (With 10,000 services this loop is most of the time spent here.)
        let mut changed: Vec<(&ServicePort, ServiceRules)> = Vec::new();
        for svc in services {
            match self.written.get(&svc.name) {
                Some(w) if w.port == *svc && !mode_changed => {}
                _ => changed.push((svc, rules::service_rules(svc, &self.opts))),
            }
        }
        let removed: Vec<ServicePortName> = self.written.keys().filter(|k| !seen.contains(k)).cloned().collect();

        let full = !self.in_sync;
        // A full sync compares with what the tables hold; if they cannot be read, nothing changes.
        let saved = if full { Some(self.saved()?) } else { None };
        let plan = match &saved {
            Some(saved) => {
                let index: HashMap<&ServicePortName, usize> =
                    changed.iter().enumerate().map(|(i, (svc, _))| (&svc.name, i)).collect();
                let all: Vec<&ServiceRules> = services
                    .iter()
                    .map(|s| match index.get(&s.name) {
                        Some(i) => &changed[*i].1,
                        None => &self.written[&s.name].rules,
                    })
                    .collect();
                plan::plan_full(saved, &self.base, &all, &self.jumps, &rules::owned_chains())
            }
            None => {
                let mut changes: Vec<Change> = changed
                    .iter()
                    .map(|(svc, rules)| Change { old: self.written.get(&svc.name).map(|w| &w.rules), new: Some(rules) })
                    .collect();
                changes.extend(removed.iter().map(|name| Change { old: Some(&self.written[name].rules), new: None }));
                plan::plan_partial(&changes)
            }
        };
        let result = self.apply(&plan).map(|restores| (plan.counts(), restores));
        drop(plan);

        // Keep the new rules even when the restore failed: they follow from the ports alone, and
        // the next sync, a full one, compares them with what the tables really hold.
        for (svc, rules) in changed {
            self.written.insert(svc.name.clone(), Written { port: svc.clone(), rules });
        }
        for name in &removed {
            self.written.remove(name);
        }
        self.in_sync = result.is_ok();
        let (counts, restores) = result?;
        Ok(SyncStats {
            full,
            chains_written: counts.chains_written,
            rules_written: counts.rules_written,
            chains_deleted: counts.chains_deleted,
            restores,
            elapsed: start.elapsed(),
        })
    }

    /// Remove every chain of the proxy and every jump to them (what the tables hold is read
    /// first, so leftovers of an earlier run go too). After it, `iptables-save` shows no chain
    /// of podlab's proxy. The sysctls stay as they are.
    pub fn cleanup(&mut self) -> Result<()> {
        let saved = self.saved()?;
        let plan = plan::plan_full(&saved, &[], &[], &[], &rules::owned_chains());
        self.written.clear();
        self.in_sync = false;
        self.apply(&plan).map(drop)
    }

    /// The nat and filter tables as they are (one `iptables-save`: with nft, each run reads
    /// every table's chains whatever `-t` says).
    fn saved(&self) -> Result<Saved> {
        Ok(Saved::parse(&self.backend.save_all()?))
    }

    /// Run the plan's restores in order; returns how many ran.
    fn apply(&self, plan: &Plan) -> Result<usize> {
        if plan.is_empty() {
            return Ok(0);
        }
        // Legacy replaces a whole table per restore: one input is always best there.
        let budget = match self.backend {
            Backend::Nft => Some(NFT_BATCH_CHAINS),
            Backend::Legacy => None,
        };
        let batches = plan.batches(budget);
        for input in &batches {
            self.backend.restore(input, false)?;
        }
        Ok(batches.len())
    }
}

/// `sysctl -w NAME=VALUE` of this thread's network namespace (skipped when already so).
fn sysctl(name: &str, value: &str) -> Result<()> {
    if read_sysctl(name).as_deref() == Some(value) {
        return Ok(());
    }
    let path = sysctl_path(name);
    explain::say(format!("sysctl -w {name}={value}"));
    std::fs::write(&path, value).ctx("write", &path)
}

fn read_sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(sysctl_path(name)).ok().map(|v| v.trim().to_string())
}

fn sysctl_path(name: &str) -> std::path::PathBuf {
    Path::new("/proc/sys").join(name.replace('.', "/"))
}

/// `net.bridge.bridge-nf-call-iptables=1`: frames bridged between two pods go through
/// iptables. Without it, the answer of a pod to another pod of the same bridge that reached it
/// through a Service skips conntrack, keeps the pod's address instead of the Service's, and
/// the client drops it. The sysctl exists once br_netfilter is loaded (per network namespace).
fn bridge_netfilter() -> Result<()> {
    const NAME: &str = "net.bridge.bridge-nf-call-iptables";
    if read_sysctl(NAME).is_none() {
        explain::say("modprobe br_netfilter");
        let _ = std::process::Command::new("modprobe").arg("br_netfilter").output();
    }
    if read_sysctl(NAME).is_none() {
        tracing::warn!(
            "{NAME} is missing (no br_netfilter): pods will not reach Services whose endpoints share their bridge"
        );
        return Ok(());
    }
    sysctl(NAME, "1")
}
