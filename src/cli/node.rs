//! `podlab node`: run the node agent (podlab's kubelet), in the foreground or detached.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use podlab::node::{NodeConfig, NodePaths, agent, client::Client};
use podlab::state::StateDirs;

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: Option<NodeCommand>,
    /// Static pod manifests to run (default: ROOT/lib/manifests, where `podlab run -f` writes).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// The node's pod CIDR: pod IPs come from it, the bridge takes its first address.
    #[arg(long, value_name = "CIDR", default_value = podlab::pod::ipam::DEFAULT_CIDR)]
    pub pod_cidr: String,
    /// The node bridge's name.
    #[arg(long, default_value = podlab::node::DEFAULT_BRIDGE)]
    pub bridge: String,
    /// The node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Run the agent (and so its pods' networks) in this named network namespace.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// The first CrashLoopBackOff delay (Kubernetes: 10s); shorter values make labs quicker.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub backoff_initial: String,
    /// The longest CrashLoopBackOff delay (Kubernetes: 300s).
    #[arg(long, value_name = "DURATION", default_value = "300s")]
    pub backoff_max: String,
    /// Start the agent in the background and return once it answers.
    #[arg(long, short = 'd')]
    pub detach: bool,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Stop the node agent (its pods keep running, as with a kubelet restart).
    Stop,
    /// Whether the node agent runs, and its configuration.
    Status,
}

/// `10s`, `1m`, `500ms` → milliseconds.
pub fn millis(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().with_context(|| format!("bad duration {text:?} (examples: 500ms, 10s, 5m)"))?;
    Ok(match unit {
        "ms" => n,
        "" | "s" => n * 1000,
        "m" => n * 60_000,
        _ => bail!("bad duration {text:?} (examples: 500ms, 10s, 5m)"),
    })
}

pub fn run(dirs: &StateDirs, root: Option<&std::path::Path>, args: NodeArgs, explain: bool) -> anyhow::Result<i32> {
    let paths = NodePaths::new(dirs);
    match args.command {
        Some(NodeCommand::Stop) => return stop(&paths),
        Some(NodeCommand::Status) => match agent::running(&paths) {
            Some(pid) => {
                println!("node agent running (pid {pid}), socket {}", paths.socket().display());
                if let Ok(text) = std::fs::read_to_string(paths.config_file()) {
                    println!("{text}");
                }
                return Ok(0);
            }
            None => {
                println!("node agent not running");
                return Ok(3);
            }
        },
        None => {}
    }
    if args.detach {
        return detach(dirs, root, &args, explain);
    }
    if let Some(ns) = &args.netns {
        // Before any thread exists: the whole agent (and the supervisors it starts) lives there.
        podlab::primitives::namespace::enter_path(
            &podlab::primitives::netns::path(ns).display().to_string(),
            podlab::primitives::namespace::Namespace::Net,
            &podlab::primitives::netns::path(ns).display().to_string(),
        )
        .with_context(|| format!("enter network namespace {ns}"))?;
    }

    // The node's own loopback (a fresh namespace has it down): hostPorts answer on 127.0.0.1.
    let _ = podlab::primitives::link::set_up(None, "lo");
    super::init_logging("info,netlink_packet_route=error,netlink_packet_core=error");
    let mut config = NodeConfig {
        node_name: args.node_name.clone().unwrap_or_else(hostname),
        manifests: args.manifests.clone().unwrap_or_else(|| paths.manifests()),
        pod_cidr: args.pod_cidr.clone(),
        bridge: args.bridge.clone(),
        host_ip: agent::host_ip(),
        backoff_initial_ms: millis(&args.backoff_initial)?,
        backoff_max_ms: millis(&args.backoff_max)?,
        explain,
        netns: args.netns.clone(),
        cluster_dns: None,
    };
    podlab::pod::ipam::Ipam::open(&paths.ipam_dir(), &config.pod_cidr).context("--pod-cidr")?;
    agent::claim(&paths)?;
    std::fs::create_dir_all(&config.manifests).with_context(|| format!("create {}", config.manifests.display()))?;
    podlab::primitives::netns::prepare_dir()?;
    podlab::pod::node_info::write_json(&paths.config_file(), &config)?;
    // The node's bridge, forwarding and NAT rules, once (pods only check that the bridge is there).
    let net = podlab::pod::network::NodeNetConfig {
        bridge: config.bridge.clone(),
        cidr: config.pod_cidr.clone(),
        ipam_dir: paths.ipam_dir(),
    };
    podlab::pod::network::ensure_node(&net).context("set up the node network")?;
    tracing::info!(
        "node {} ({}): pods from {}, pod CIDR {}, API on {}",
        config.node_name,
        config.host_ip,
        config.manifests.display(),
        config.pod_cidr,
        paths.socket().display()
    );
    // SIGTERM and SIGINT are taken by one thread with sigwait: blocked here, before any other
    // thread exists, so that every thread inherits the mask.
    let mut mask = nix::sys::signal::SigSet::empty();
    mask.add(nix::sys::signal::Signal::SIGTERM);
    mask.add(nix::sys::signal::Signal::SIGINT);
    mask.thread_block()?;
    let (poke_tx, poke_rx) = std::sync::mpsc::sync_channel(1);
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // The service proxy: VIP rules, and the cluster DNS on the node's pod-network address.
    let view = podlab::node::services::SharedView::default();
    let gateway = podlab::pod::ipam::Ipam::open(&paths.ipam_dir(), &config.pod_cidr)?.gateway();
    let _dns = match start_dns(&rt, gateway) {
        Ok((server, records)) => {
            config.cluster_dns = Some(podlab::proxy::alloc::DNS_SERVICE_IP.to_string());
            Some((server, records))
        }
        Err(e) => {
            tracing::warn!("no cluster DNS on this node (pods get the node's resolv.conf): {e:#}");
            None
        }
    };
    service_route(&config.bridge);
    podlab::pod::node_info::write_json(&paths.config_file(), &config)?;
    let proxy = podlab::node::services::ServiceProxy::new(
        &paths.services_dir(),
        &config.pod_cidr,
        _dns.as_ref().map(|(_, records)| (records.clone(), gateway)),
        view.clone(),
    )
    .context("start the service proxy")?;
    {
        // Pokes from the supervisors (a pod's readiness changed).
        let socket = paths.poke_socket();
        let _ = std::fs::remove_file(&socket);
        let pokes = std::os::unix::net::UnixDatagram::bind(&socket)
            .with_context(|| format!("bind the poke socket {}", socket.display()))?;
        let poke = poke_tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            while pokes.recv(&mut buf).is_ok() {
                let _ = poke.try_send(());
            }
        });
    }
    {
        let a = agent::Agent::new(paths.clone(), config).with_proxy(proxy);
        let stop = stop_flag.clone();
        std::thread::spawn(move || agent::run_loop(a, poke_rx, stop));
    }
    {
        let paths = paths.clone();
        std::thread::spawn(move || {
            let _ = mask.wait();
            stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = std::fs::remove_file(paths.socket());
            let _ = std::fs::remove_file(paths.pid_file());
            tracing::info!("node agent stopped (pods keep running)");
            std::process::exit(0);
        });
    }
    rt.block_on(podlab::node::api::serve(paths.clone(), poke_tx, view)).context("serve the kubelet API")?;
    tracing::info!("node agent stopped (pods keep running)");
    Ok(0)
}

/// The cluster DNS server, on port 53 of the node's pod-network address (the bridge's).
fn start_dns(
    rt: &tokio::runtime::Runtime,
    ip: std::net::Ipv4Addr,
) -> anyhow::Result<(podlab::proxy::dns::DnsServer, podlab::proxy::dns::SharedRecords)> {
    use podlab::proxy::dns;
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let records = dns::SharedRecords::default();
    let addr = std::net::SocketAddr::from((ip, podlab::node::services::DNS_PORT));
    let server = rt.block_on(dns::serve(addr, records.clone(), dns::DnsConfig::from_resolv_conf(&resolv)))?;
    tracing::info!(
        "cluster DNS on {addr} (Service {}/{})",
        podlab::node::services::DNS_SERVICE.0,
        podlab::node::services::DNS_SERVICE.1
    );
    Ok((server, records))
}

/// A route for the Service CIDR onto the bridge, unless one is there: the node itself reaches
/// the VIPs even without a default route (a test's network namespace has none). Traffic to a
/// VIP never leaves on it: the nat rules rewrite it to a pod's address first.
fn service_route(bridge: &str) {
    let cidr = podlab::proxy::alloc::SERVICE_CIDR;
    let has = podlab::primitives::link::routes(None)
        .is_ok_and(|r| r.iter().any(|l| l.starts_with(cidr) || l.starts_with("default")));
    if !has && let Err(e) = podlab::primitives::link::add_route(None, Some(cidr), None, Some(bridge)) {
        tracing::warn!("the node cannot reach Service IPs itself: {e}");
    }
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "node".into())
}

/// Start `podlab node` in its own session, logging to run/node/agent.log; wait until it answers.
pub fn detach(dirs: &StateDirs, root: Option<&std::path::Path>, args: &NodeArgs, explain: bool) -> anyhow::Result<i32> {
    let paths = NodePaths::new(dirs);
    if let Some(pid) = agent::running(&paths) {
        println!("node agent already running (pid {pid})");
        return Ok(0);
    }
    std::fs::create_dir_all(paths.run_dir())?;
    let log = std::fs::File::options().create(true).append(true).open(paths.log_file())?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.env_remove("PODLAB_ROOT");
    if let Some(root) = root {
        cmd.arg("--root").arg(root);
    }
    if explain {
        cmd.arg("--explain");
    }
    cmd.arg("node").arg("--pod-cidr").arg(&args.pod_cidr).arg("--bridge").arg(&args.bridge);
    cmd.arg("--backoff-initial").arg(&args.backoff_initial).arg("--backoff-max").arg(&args.backoff_max);
    if let Some(m) = &args.manifests {
        cmd.arg("--manifests").arg(m);
    }
    if let Some(n) = &args.node_name {
        cmd.arg("--node-name").arg(n);
    }
    if let Some(n) = &args.netns {
        cmd.arg("--netns").arg(n);
    }
    cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("start the node agent")?;
    let client = Client::new(&paths.socket());
    for _ in 0..600 {
        if client.alive() {
            println!("node agent started (pid {}), log {}", child.id(), paths.log_file().display());
            return Ok(0);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(paths.log_file()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            bail!("the node agent exited ({status}): {}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the node agent did not answer within 30 s (see {})", paths.log_file().display())
}

fn stop(paths: &NodePaths) -> anyhow::Result<i32> {
    let Some(pid) = agent::running(paths) else {
        println!("node agent not running");
        return Ok(0);
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)?;
    for _ in 0..200 {
        if !podlab::primitives::proc::alive(pid) {
            println!("node agent stopped (its pods keep running)");
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("node agent (pid {pid}) did not stop within 5 s")
}
