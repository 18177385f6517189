//! `podlab __proxy-bench` (hidden): how long the service proxy takes to sync many Services.
//!
//! In the calling network namespace (bench/proxy.sh makes one), after a warm-up: a full sync of
//! N services x E endpoints (synthetic addresses), partial syncs after one service's endpoints
//! change, after a service is added and after one is deleted, a full re-sync over unchanged
//! rules, a kube-proxy-shaped partial sync (every shared chain rewritten), a cleanup, and the
//! whole rule text through a plain `iptables-restore --noflush` (not podlab's code). Prints one
//! JSON line.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use podlab::proxy::rules::{self, Options};
use podlab::proxy::{Backend, Endpoint, Protocol, Proxier, ProxyConfig, ServicePort, ServicePortName};

#[derive(Debug, Args)]
pub struct ProxyBenchArgs {
    /// Number of services (one TCP port each).
    #[arg(long, default_value_t = 1000)]
    services: u32,
    /// Endpoints per service.
    #[arg(long, default_value_t = 5)]
    endpoints: u32,
    /// iptables backend: nft or legacy (default: what the node uses).
    #[arg(long)]
    backend: Option<Backend>,
    /// Give up on the plain iptables-restore of the full text after this many seconds.
    #[arg(long, default_value_t = 120)]
    plain_timeout: u64,
    /// Partial syncs to time (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Run even in the host's network namespace (it fills and then empties its tables).
    #[arg(long)]
    allow_host_netns: bool,
}

const CLUSTER_CIDR: &str = "10.128.0.0/9";

/// Service i: bench/svc-i:http at 10.96.0.0/12 + i + 1, endpoints at 10.128.0.0/9 + i * E + e.
fn synthetic(services: u32, endpoints: u32) -> Vec<ServicePort> {
    (0..services)
        .map(|i| ServicePort {
            name: ServicePortName {
                namespace: "bench".into(),
                name: format!("svc-{i}"),
                port: "http".into(),
                protocol: Protocol::Tcp,
            },
            cluster_ip: Some(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i + 1)),
            port: 80,
            node_port: None,
            affinity_timeout: None,
            endpoints: (0..endpoints).map(|e| endpoint(i * endpoints + e + 1)).collect(),
        })
        .collect()
}

fn endpoint(n: u32) -> Endpoint {
    Endpoint { ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + n), port: 8080 }
}

/// Whether this process runs in a namespace named under /run/netns (`ip netns exec`), not the
/// host's: the bench fills the tables with thousands of rules.
fn in_named_netns() -> anyhow::Result<bool> {
    let own = std::fs::metadata("/proc/self/ns/net").context("stat /proc/self/ns/net")?.ino();
    let names = podlab::primitives::netns::list()?;
    Ok(names.iter().any(|n| std::fs::metadata(podlab::primitives::netns::path(n)).is_ok_and(|m| m.ino() == own)))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

pub fn run(args: ProxyBenchArgs) -> anyhow::Result<i32> {
    if !args.allow_host_netns && !in_named_netns()? {
        bail!(
            "not in a network namespace of /run/netns: run the bench in one of its own (`ip netns exec NAME podlab \
             __proxy-bench ...`, as bench/proxy.sh does), or pass --allow-host-netns"
        );
    }
    if args.services == 0 || args.endpoints == 0 || args.services > 1_000_000 {
        bail!("--services 1 to 1000000 and --endpoints of at least 1, please");
    }
    let config = ProxyConfig { cluster_cidr: CLUSTER_CIDR.into(), masquerade_bit: 14 };
    let mut proxier = match args.backend {
        Some(b) => Proxier::with_backend(config.clone(), b)?,
        None => Proxier::new(config.clone())?,
    };
    let backend = proxier.backend();
    let mut services = synthetic(args.services, args.endpoints);
    let n = services.len();

    // Warm up: the first restore in a namespace makes its tables (and loads modules); the plain
    // restore at the end finds them made, so the full sync should too.
    proxier.sync(&[])?;
    proxier.cleanup()?;

    let full = proxier.sync(&services)?;

    // One service's endpoints change (one pod replaced), several times, each a different service.
    let mut partial = Vec::new();
    let mut last = full;
    for r in 0..args.repeat.max(1) {
        let k = (n / 2 + r as usize * 7919) % n;
        let fresh = endpoint(args.services * args.endpoints + 10 + r);
        if let Some(e) = services[k].endpoints.last_mut() {
            *e = fresh;
        }
        last = proxier.sync(&services)?;
        partial.push(ms(last.elapsed));
    }
    let mut added = services[0].clone();
    added.name.name = "added".into();
    added.cluster_ip = Some(Ipv4Addr::new(10, 111, 255, 254));
    services.push(added);
    let add = proxier.sync(&services)?;
    services.pop();
    let delete = proxier.sync(&services)?;
    proxier.force_full_sync();
    let resync = proxier.sync(&services)?;

    // kube-proxy's partial sync of one service: every node-wide chain rewritten (KUBE-SERVICES
    // with one rule per service), plus the service's own chains.
    let mut opts = Options::new(&config)?;
    opts.large = rules::large_cluster(&services);
    let kube_proxy_partial = kube_proxy_partial_text(&services[n / 2], &services, &opts);
    let started = Instant::now();
    let outcome = plain_restore(backend, &kube_proxy_partial, Duration::from_secs(args.plain_timeout))?;
    let kube_proxy_partial_ms = outcome.map(|()| ms(started.elapsed()));

    let started = Instant::now();
    proxier.cleanup()?;
    let cleanup_ms = ms(started.elapsed());

    // The same full rule set as one plain iptables-restore, in the emptied tables.
    let text = rules::full_restore_text(&services, &opts);
    let rule_lines = text.lines().filter(|l| l.starts_with("-A ")).count();
    let started = Instant::now();
    let outcome = plain_restore(backend, &text, Duration::from_secs(args.plain_timeout))?;
    let plain_ms = outcome.map(|()| ms(started.elapsed()));
    proxier.cleanup()?;

    let report = serde_json::json!({
        "backend": backend.name(),
        "services": args.services,
        "endpoints": args.endpoints,
        "rules": rule_lines,
        "full_ms": ms(full.elapsed),
        "full_restores": full.restores,
        "partial_ms": median(partial.clone()),
        "partial_max_ms": partial.iter().copied().fold(0.0, f64::max),
        "partial_chains": last.chains_written + last.chains_deleted,
        "partial_rules": last.rules_written,
        "add_ms": ms(add.elapsed),
        "delete_ms": ms(delete.elapsed),
        "resync_ms": ms(resync.elapsed),
        "resync_chains": resync.chains_written,
        "cleanup_ms": cleanup_ms,
        "kube_proxy_partial_ms": kube_proxy_partial_ms,
        "plain_full_ms": plain_ms,
        "plain_timeout_s": args.plain_timeout,
    });
    println!("{report}");
    Ok(0)
}

/// What kube-proxy sends for a change of `changed`: the filter table's chains and the nat
/// table's node-wide chains whole, and the changed service's chains.
fn kube_proxy_partial_text(changed: &ServicePort, all: &[ServicePort], opts: &Options) -> String {
    let base = rules::base_chains(opts);
    let every: Vec<rules::ServiceRules> = all.iter().map(|s| rules::service_rules(s, opts)).collect();
    let own = rules::service_rules(changed, opts);
    let mut out = String::new();
    for table in rules::Table::ALL {
        out.push_str(&format!("*{}\n", table.as_str()));
        let base_here: Vec<&rules::BaseChain> = base.iter().filter(|b| b.chain.table == table).collect();
        let own_here: Vec<&rules::Chain> = own.chains.iter().filter(|c| c.table == table).collect();
        for name in base_here.iter().map(|b| &b.chain.name).chain(own_here.iter().map(|c| &c.name)) {
            out.push_str(&format!(":{name} - [0:0]\n"));
        }
        for b in base_here {
            if b.dispatch {
                for d in every.iter().flat_map(|r| &r.dispatch).filter(|d| d.table == table && d.chain == b.chain.name)
                {
                    out.push_str(&format!("-A {} {}\n", d.chain, d.rule));
                }
            }
            for rule in &b.chain.rules {
                out.push_str(&format!("-A {} {rule}\n", b.chain.name));
            }
        }
        for c in own_here {
            for rule in &c.rules {
                out.push_str(&format!("-A {} {rule}\n", c.name));
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// `iptables-restore -w --noflush` of `text`; None when it ran out of time (then killed: a
/// restore commits at its end, so nothing of it is applied).
fn plain_restore(backend: Backend, text: &str, limit: Duration) -> anyhow::Result<Option<()>> {
    let program = backend.restore_command();
    podlab::explain::say(format!("{program} -w --noflush < rules.txt   # {} lines", text.lines().count()));
    let mut child = Command::new(&program)
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {program}"))?;
    let mut stdin = child.stdin.take().context("stdin of iptables-restore")?;
    let input = text.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            let _ = writer.join();
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                bail!("{program} failed ({status}): {}", err.trim());
            }
            return Ok(Some(()));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
