//! `podlab image`: pull, load, build, list, inspect, remove and prune images.

use std::path::PathBuf;

use clap::Subcommand;

use podlab::image::{self, store::Store};
use podlab::state::StateDirs;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry (docker.io, ghcr.io, quay.io, localhost:5000...).
    Pull(PullArgs),
    /// Import an OCI layout directory, an OCI archive or a docker archive (docker save).
    Load {
        path: PathBuf,
        /// Name for the image (when the layout or archive holds one image).
        #[arg(long)]
        tag: Option<String>,
    },
    /// Write an image as an OCI layout directory (readable by skopeo, umoci, podman).
    Save { image: String, dir: PathBuf },
    /// Build an image from a recipe shipped with podlab (busybox) and name it NAME:latest.
    Build { recipe: String },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Show an image's manifest and config.
    Inspect { image: String },
    /// Remove an image's name (its blobs go with `prune`).
    Rm { image: String },
    /// Remove blobs and unpacked layers that no image uses.
    Prune,
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Image reference: busybox, docker.io/library/alpine:3.20, localhost:5000/app@sha256:...
    pub image: String,
    /// Platform to pick from a multi-platform image: linux/amd64, linux/arm64/v8.
    #[arg(long)]
    pub platform: Option<String>,
    /// Allow plain HTTP (always allowed for localhost and 127.0.0.1).
    #[arg(long)]
    pub insecure: bool,
    /// Registry user name (else ~/.docker/config.json).
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    /// Registry password.
    #[arg(long, requires = "username")]
    pub password: Option<String>,
}

pub fn store(dirs: &StateDirs) -> anyhow::Result<Store> {
    Ok(Store::open(dirs.images())?)
}

pub fn run(dirs: &StateDirs, cmd: ImageCommand) -> anyhow::Result<i32> {
    let store = store(dirs)?;
    match cmd {
        ImageCommand::Pull(args) => {
            let digest = image::pull::pull_blocking(&store, &args.image, &pull_options(&args))?;
            println!("{digest}");
        }
        ImageCommand::Load { path, tag } => {
            for l in image::load::load(&store, &path, tag.as_deref())? {
                let names =
                    if l.names.is_empty() { "(no name: give one with --tag)".into() } else { l.names.join(", ") };
                println!("loaded {} {names}", l.manifest);
            }
        }
        ImageCommand::Save { image: name, dir } => {
            let digest = image::find(&store, &name)?;
            let tag = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map(|(_, t)| t).unwrap_or("latest");
            image::save::save(&store, &digest, tag, &dir)?;
            println!("saved {name} ({digest}) to {} as tag {tag}", dir.display());
        }
        ImageCommand::Build { recipe } => {
            let digest = image::recipe::build_image(&store, &recipe)?;
            println!("built {recipe}:latest {digest}");
        }
        ImageCommand::Ls => {
            println!("{:<50} {:<20} {:>10}", "NAME", "MANIFEST", "SIZE");
            for i in store.images()? {
                for name in &i.names {
                    let short = &i.manifest[..i.manifest.len().min(19)];
                    println!("{name:<50} {short:<20} {:>10}", human(i.size));
                }
            }
        }
        ImageCommand::Inspect { image: name } => {
            let digest = image::find(&store, &name)?;
            let manifest: serde_json::Value = serde_json::from_slice(&store.read_blob(&digest)?)?;
            let config_digest = manifest["config"]["digest"].as_str().unwrap_or_default().to_string();
            let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&config_digest)?)?;
            let out = serde_json::json!({ "name": name, "digest": digest, "manifest": manifest, "config": config });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ImageCommand::Rm { image: name } => {
            let full = image::normalize_name(&name).unwrap_or(name.clone());
            let target = if name.starts_with("sha256:") { name.clone() } else { full };
            for n in store.untag(&target)? {
                println!("untagged {n}");
            }
        }
        ImageCommand::Prune => {
            let (blobs, layers, bytes) = store.prune()?;
            println!("removed {blobs} blob(s) and {layers} unpacked layer(s), {} freed", human(bytes));
        }
    }
    Ok(0)
}

pub fn pull_options(args: &PullArgs) -> image::pull::PullOptions {
    image::pull::PullOptions {
        platform: args.platform.clone(),
        insecure: args.insecure,
        credentials: args.username.clone().zip(args.password.clone()),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}KiB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}
