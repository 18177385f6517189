//! `podlab box`: flags, and what the user sees when the box ends.

use anyhow::Context;
use clap::Args;

use podlab::boxrun::{self, BoxRequest, BoxSpec};
use podlab::primitives::namespace::Namespace;
use podlab::state::StateDirs;

#[derive(Debug, Args)]
pub struct BoxArgs {
    /// Root filesystem: a directory, or a recipe name (`busybox`) built on first use.
    #[arg(long, value_name = "DIR|NAME", conflicts_with = "image")]
    rootfs: Option<String>,
    /// Run in an image's root filesystem (pulled when missing): busybox, localhost:5000/app:1.
    #[arg(long, value_name = "REF")]
    image: Option<String>,
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
    /// The command to run, after `--` (with --image: default the image's entrypoint and cmd).
    #[arg(last = true, required_unless_present = "image", value_name = "COMMAND")]
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
    let mut spec = BoxSpec {
        rootfs,
        namespaces,
        hostname: args.hostname,
        command: args.command,
        explain: podlab::explain::enabled(),
        ..Default::default()
    };
    let image_layers = match &args.image {
        Some(reference) => Some(image_root(dirs, reference, &mut spec)?),
        None => None,
    };
    let req = BoxRequest { spec, image_layers, id: args.id, cpus: args.cpus, memory: args.memory, pids: args.pids };
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

/// Find (or pull) the image, unpack its layers and take its entrypoint, command, environment
/// and working directory.
fn image_root(dirs: &StateDirs, reference: &str, spec: &mut BoxSpec) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let store = super::image::store(dirs)?;
    let manifest = match podlab::image::find(&store, reference) {
        Ok(m) => m,
        Err(podlab::Error::Missing(_)) => {
            eprintln!("podlab: pulling {reference}");
            podlab::image::pull::pull_blocking(&store, reference, &Default::default())?
        }
        Err(e) => return Err(e.into()),
    };
    let layers = podlab::image::rootfs::image_layers(&store, &manifest)?;
    let config = podlab::image::config_of(&store, &manifest)?;
    let c = &config["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let mut argv = strings(&c["Entrypoint"]);
    argv.extend(if spec.command.is_empty() { strings(&c["Cmd"]) } else { std::mem::take(&mut spec.command) });
    anyhow::ensure!(!argv.is_empty(), "image {reference} has no entrypoint or cmd: give a command after --");
    spec.command = argv;
    let env = strings(&c["Env"]);
    if !env.is_empty() {
        spec.env = Some(env);
    }
    spec.cwd = c["WorkingDir"].as_str().filter(|w| !w.is_empty()).map(String::from);
    Ok(layers)
}
