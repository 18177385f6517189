//! `podlab server`: the cluster's API server (the control plane grows here).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use podlab::control::server::{ServerConfig, run as serve};
use podlab::state::StateDirs;

#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Address to serve HTTPS on (0.0.0.0:6443 lets a classroom's nodes in; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// The store: sqlite (a file in the state directory), sqlite:///path/file.db, or etcd://host:2379[,host:2379].
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// Where to write the admin kubeconfig (default: <state>/server/admin.kubeconfig).
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// Another DNS name or IP address for the server's certificate (repeatable).
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// How often old history is compacted (watches from before it get 410 Gone): 5m, 30s, 1s.
    #[arg(long, default_value = "5m")]
    pub compaction_interval: String,
}

pub fn run(dirs: &StateDirs, args: ServerArgs) -> anyhow::Result<i32> {
    super::init_logging("info");
    let mut cfg = ServerConfig::new(dirs.lib.join("server"));
    cfg.listen = args.listen;
    cfg.store = args.store;
    cfg.sans = args.sans;
    let every = super::node::millis(&args.compaction_interval).context("--compaction-interval")?;
    anyhow::ensure!(every > 0, "--compaction-interval must be more than 0");
    cfg.compaction_interval = std::time::Duration::from_millis(every);
    if let Some(k) = args.kubeconfig_out {
        cfg.kubeconfig_out = std::path::absolute(&k).unwrap_or(k);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(serve(cfg)).context("podlab server")?;
    Ok(0)
}
