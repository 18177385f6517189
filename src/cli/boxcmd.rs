//! `podlab box`: flags, and what the user sees when the box ends.

use anyhow::Context;
use clap::Args;

use podlab::boxrun::{self, BoxRequest, BoxSpec};
use podlab::primitives::namespace::Namespace;
use podlab::state::StateDirs;

#[derive(Debug, Args)]
pub struct BoxArgs {
    /// Root filesystem: a directory, or a recipe name (`busybox`) built on first use.
    #[arg(long, value_name = "DIR|NAME")]
    rootfs: Option<String>,
    /// Namespaces to create, comma-separated: pid,mnt,uts,ipc,net,cgroup,user.
    #[arg(long, value_name = "LIST", conflicts_with = "all_ns")]
    ns: Option<String>,
    /// All namespaces but user: pid,mnt,uts,ipc,net,cgroup.
    #[arg(long)]
    all_ns: bool,
    /// Hostname inside the box (needs the uts namespace).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// CPU limit as a Kubernetes quantity: 0.5, 500m, 2.
    #[arg(long, value_name = "QUANTITY", allow_hyphen_values = true)]
    cpus: Option<String>,
    /// Memory limit as a Kubernetes quantity: 64Mi, 1Gi (swap is off).
    #[arg(long, value_name = "QUANTITY", allow_hyphen_values = true)]
    memory: Option<String>,
    /// Name of the box (default: random); its cgroup is podlab/box-ID.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Most processes at once.
    #[arg(long, value_name = "N")]
    pids: Option<u64>,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(dirs: &StateDirs, args: BoxArgs) -> anyhow::Result<i32> {
    let namespaces = if args.all_ns {
        vec![Namespace::Pid, Namespace::Mount, Namespace::Uts, Namespace::Ipc, Namespace::Net, Namespace::Cgroup]
    } else {
        args.ns.as_deref().map(Namespace::parse_list).transpose()?.unwrap_or_default()
    };
    let rootfs = args
        .rootfs
        .as_deref()
        .map(|r| podlab::image::recipe::resolve(dirs, r))
        .transpose()
        .context("preparing --rootfs")?;
    let memory = args.memory.clone();
    let req = BoxRequest {
        spec: BoxSpec {
            rootfs,
            namespaces,
            hostname: args.hostname,
            command: args.command,
            explain: podlab::explain::enabled(),
            detach: false,
        },
        id: args.id,
        cpus: args.cpus,
        memory: args.memory,
        pids: args.pids,
    };
    let exit = boxrun::run(dirs, &req)?;
    if let Some(failure) = &exit.failed {
        eprintln!("podlab: the box could not start: {failure}");
        return Ok(exit.code);
    }
    if exit.oom_kills > 0 {
        eprintln!(
            "podlab: the box was killed by the OOM killer: it needed more than its memory limit of {} \
             ({} process(es) killed; exit code {}). Raise --memory or use less memory.",
            memory.as_deref().unwrap_or("(none)"),
            exit.oom_kills,
            exit.code
        );
    }
    if let Some(sig) = exit.interrupted_by {
        eprintln!("podlab: stopped the box on signal {sig}; everything it made is removed");
    }
    Ok(exit.code)
}
