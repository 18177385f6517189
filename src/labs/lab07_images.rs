//! Lab 7, images and layers: what `docker pull` puts on disk, and how it becomes a root.
//!
//! An OCI image is a handful of files named by the sha256 of their content: a manifest that
//! lists a config (command, environment, the layers' diff_ids) and layers (tar archives of
//! file changes). Deletions travel as whiteouts. The learner saves an image as an OCI layout,
//! unpacks its layer, makes a second layer with a whiteout by hand, and stacks both with
//! overlayfs, the way a container runtime builds a container's root filesystem.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use super::{Ctx, Point, remove_workspace};
use crate::error::{Error, IoContext, Result, SysContext};
use crate::image::store::{self, HashingWriter, Store};
use crate::image::unpack::{self, Compression, Whiteouts};
use crate::primitives::mount;

/// The image the lab takes apart (built from podlab's BusyBox recipe).
const IMAGE: &str = "busybox";

/// Small JSON documents (index, manifest, config) bigger than this are not read.
const MAX_JSON: u64 = 4 << 20;

fn blob(layout: &Path, digest: &str) -> Result<PathBuf> {
    Ok(layout.join("blobs/sha256").join(store::check_digest(digest)?))
}

fn read_json(path: &Path) -> std::result::Result<serde_json::Value, String> {
    let size = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    if size > MAX_JSON {
        return Err(format!("{} is {size} bytes: too big for a JSON document", path.display()));
    }
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// `sha256sum FILE`, as `sha256:<hex>`.
fn sha256_file(path: &Path) -> io::Result<String> {
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut File::open(path)?, &mut w)?;
    Ok(w.digest())
}

/// The digest and the parsed manifest of the layout's first image (`index.json`'s first entry).
fn layout_manifest(layout: &Path) -> std::result::Result<(String, serde_json::Value), String> {
    let marker = read_json(&layout.join("oci-layout"))?;
    if marker["imageLayoutVersion"].as_str().is_none() {
        return Err(format!("{}/oci-layout has no imageLayoutVersion", layout.display()));
    }
    let index = read_json(&layout.join("index.json"))?;
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or_else(|| format!("{}/index.json lists no manifest", layout.display()))?
        .to_string();
    let path = blob(layout, &digest).map_err(|e| e.to_string())?;
    let manifest = read_json(&path)?;
    Ok((digest, manifest))
}

/// Every blob the layout's first manifest names is there and hashes to its name.
fn verify_layout(layout: &Path) -> std::result::Result<String, String> {
    let (digest, manifest) = layout_manifest(layout)?;
    let config = manifest["config"]["digest"].as_str().ok_or("the manifest names no config")?;
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["digest"].as_str()).collect())
        .unwrap_or_default();
    if layers.is_empty() {
        return Err(format!("manifest {digest} lists no layers"));
    }
    for d in [digest.as_str(), config].into_iter().chain(layers.iter().copied()) {
        let path = blob(layout, d).map_err(|e| e.to_string())?;
        let actual = sha256_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if actual != d {
            return Err(format!("{} hashes to {actual}, not to its name", path.display()));
        }
    }
    Ok(format!("manifest {digest}, config and {} layer(s), all matching their sha256", layers.len()))
}

fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

fn absent(path: &Path) -> bool {
    fs::symlink_metadata(path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
}

pub fn check(ctx: &Ctx) -> Result<Vec<Point>> {
    let ws = &ctx.ws;
    let lab = ws.display();
    let layout = ws.join("layout");
    let (lower1, lower2, merged) = (ws.join("lower1"), ws.join("lower2"), ws.join("merged"));

    let layout_ok = verify_layout(&layout);
    let lower_opt = format!("lowerdir={}:{}", lower2.display(), lower1.display());
    let table = mount::mountinfo(None)?;
    // The last mount on a path is the one that is visible.
    let overlay = table.iter().rev().find(|m| m.mount_point == merged);
    let overlay_ok =
        overlay.is_some_and(|m| m.fstype == "overlay" && m.super_options.split(',').any(|o| o == lower_opt));
    let hello = fs::read_to_string(merged.join("hello.txt")).is_ok();

    Ok(vec![
        Point::new(
            format!("{} is an OCI image layout whose blobs match their digests", layout.display()),
            layout_ok.is_ok(),
            match &layout_ok {
                Ok(seen) => seen.clone(),
                Err(why) => format!("{why}; podlab image build {IMAGE} && podlab image save {IMAGE} {lab}/layout"),
            },
        ),
        Point::new(
            format!("{} holds the unpacked busybox layer (bin/busybox, etc/hostname)", lower1.display()),
            lower1.join("bin/busybox").is_file() && lower1.join("etc/hostname").is_file(),
            format!(
                "mkdir {lab}/lower1 && tar -xzf {lab}/layout/blobs/sha256/<layer hex> -C {lab}/lower1 \
                 (the layer digest is in the manifest: jq -r '.layers[0].digest')"
            ),
        ),
        Point::new(
            format!("{} has hello.txt and a whiteout (character device 0/0) at etc/hostname", lower2.display()),
            lower2.join("hello.txt").is_file() && is_whiteout(&lower2.join("etc/hostname")),
            format!(
                "mkdir -p {lab}/lower2/etc && echo hello from layer 2 > {lab}/lower2/hello.txt && \
                 mknod {lab}/lower2/etc/hostname c 0 0"
            ),
        ),
        Point::new(
            format!("overlay mounted at {} with {lower_opt}", merged.display()),
            overlay_ok,
            format!(
                "mkdir -p {lab}/upper {lab}/work {lab}/merged && mount -t overlay overlay \
                 -o {lower_opt},upperdir={lab}/upper,workdir={lab}/work {lab}/merged (leftmost lowerdir is the top)"
            ),
        ),
        Point::new(
            "the layers merge: merged/hello.txt is there, merged/etc/hostname is hidden by the whiteout",
            overlay_ok && hello && absent(&merged.join("etc/hostname")) && lower1.join("etc/hostname").is_file(),
            format!(
                "cat {lab}/merged/hello.txt must work and ls {lab}/merged/etc/hostname must fail while \
                 {lab}/lower1/etc/hostname exists (is the whiteout in lower2, and lower2 listed first?)"
            ),
        ),
    ])
}

/// The busybox image in the store, built from the recipe when it is not there yet.
fn ensure_image(store: &Store) -> Result<String> {
    match crate::image::find(store, IMAGE) {
        Ok(digest) => Ok(digest),
        Err(Error::Missing(_)) => {
            crate::explain::say(format!("podlab image build {IMAGE}"));
            crate::image::recipe::build_image(store, IMAGE)
        }
        Err(e) => Err(e),
    }
}

fn mkdir(path: &Path) -> Result<()> {
    crate::explain::say(format!("mkdir -p {}", path.display()));
    fs::create_dir_all(path).ctx("create directory", path)
}

pub fn solve(ctx: &Ctx) -> Result<()> {
    let ws = &ctx.ws;
    // Start over: a half-done workspace (a layout already saved, a mount) would get in the way.
    remove_workspace(ws)?;
    mkdir(ws)?;

    // 1. The image as an OCI layout.
    let store = Store::open(ctx.dirs.images())?;
    let manifest = ensure_image(&store)?;
    let layout = ws.join("layout");
    crate::explain::say(format!("podlab image save {IMAGE} {}", layout.display()));
    crate::image::save::save(&store, &manifest, "latest", &layout)?;

    // 2. Its (only) layer, unpacked from the layout's blob.
    let (_, m) = layout_manifest(&layout).map_err(Error::invalid)?;
    let layer = &m["layers"][0];
    let digest = layer["digest"].as_str().ok_or_else(|| Error::invalid("the saved manifest lists no layer"))?;
    let compression = match Compression::from_media_type(layer["mediaType"].as_str().unwrap_or("")) {
        Compression::None => Compression::Gzip,
        c => c,
    };
    let lower1 = ws.join("lower1");
    mkdir(&lower1)?;
    let blob_path = blob(&layout, digest)?;
    crate::explain::say(format!("tar -xzf {} -C {}", blob_path.display(), lower1.display()));
    let file = File::open(&blob_path).ctx("open", &blob_path)?;
    unpack::unpack(file, compression, &lower1, Whiteouts::Apply, &unpack::Limits::default())?;

    // 3. A second layer by hand: one new file, one whiteout.
    let lower2 = ws.join("lower2");
    mkdir(&lower2.join("etc"))?;
    crate::explain::say(format!("echo hello from layer 2 > {}/hello.txt", lower2.display()));
    fs::write(lower2.join("hello.txt"), "hello from layer 2\n").ctx("write", lower2.join("hello.txt"))?;
    let whiteout = lower2.join("etc/hostname");
    crate::explain::say(format!("mknod {} c 0 0", whiteout.display()));
    mknod(&whiteout, SFlag::S_IFCHR, Mode::from_bits_truncate(0o644), makedev(0, 0))
        .sys(|| format!("mknod {} c 0 0", whiteout.display()))?;

    // 4. Stack them: lower2 on top of lower1, and a writable upper.
    for d in ["upper", "work", "merged"] {
        mkdir(&ws.join(d))?;
    }
    mount::overlay(&[lower2, lower1], Some((&ws.join("upper"), &ws.join("work"))), &ws.join("merged"))
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    remove_workspace(&ctx.ws)
}
