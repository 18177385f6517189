//! Root filesystems built by recipes shipped with podlab (no download at run time).
//!
//! A recipe is a shell script kept in `images/NAME/build.sh` and compiled into the binary,
//! so an installed podlab can build `busybox` without the source tree. It copies the static
//! BusyBox binary into a directory, adds a link per applet and the few files in /etc that
//! programs expect (passwd, group, hosts).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::explain;
use crate::state::StateDirs;

/// The BusyBox recipe (images/busybox/build.sh).
pub const BUSYBOX: &str = include_str!("../../images/busybox/build.sh");

/// Names of the recipes podlab ships.
pub const NAMES: [&str; 1] = ["busybox"];

/// Run the recipe `name` to build a root filesystem in `dest`.
pub fn build(name: &str, dest: &Path) -> Result<()> {
    let script = match name {
        "busybox" => BUSYBOX,
        other => {
            return Err(Error::invalid(format!("no recipe named {other:?} (known: {})", NAMES.join(", "))));
        }
    };
    explain::say(format!("sh images/{name}/build.sh {}", dest.display()));
    let mut child = Command::new("sh")
        .arg("-s")
        .arg("--")
        .arg(dest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("run", "sh (for the image recipe)", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| Error::io("write recipe to", "sh", e))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::io("wait for", "sh (image recipe)", e))?;
    if !out.status.success() {
        return Err(Error::Child {
            step: format!("recipe {name} into {}", dest.display()),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Resolve `--rootfs`: a directory path as is; a bare recipe name (`busybox`) becomes
/// `LIB/rootfs/NAME`, built on first use.
pub fn resolve(dirs: &StateDirs, rootfs: &str) -> Result<PathBuf> {
    let path = Path::new(rootfs);
    if rootfs.contains('/') || path.is_dir() || !NAMES.contains(&rootfs) {
        return Ok(path.to_path_buf());
    }
    let dest = dirs.lib.join("rootfs").join(rootfs);
    if !dest.join("bin/sh").exists() {
        build(rootfs, &dest)?;
    }
    Ok(dest)
}

/// Build recipe `name` and store it as an OCI image named `docker.io/library/NAME:latest`
/// (one gzip layer, a config with `Cmd ["sh"]`). Returns the manifest digest.
pub fn build_image(store: &super::store::Store, name: &str) -> Result<String> {
    let tmp = store.temp_path("recipe");
    let result = (|| {
        build(name, &tmp)?;
        super::layer::clamp_mtimes(&tmp)?;
        let (layer, layer_size, diff_id) = super::layer::pack_dir(store, &tmp)?;
        let config = serde_json::json!({
            "architecture": super::host_arch(),
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"],
                "WorkingDir": "/",
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created_by": format!("podlab image build {name} (images/{name}/build.sh)") }],
        });
        let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::invalid(e.to_string()))?;
        let config_digest = store.put_bytes(&config_bytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest, "size": config_bytes.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                         "digest": layer, "size": layer_size }],
        });
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| Error::invalid(e.to_string()))?;
        let digest = store.put_bytes(&manifest_bytes)?;
        store.tag(&format!("docker.io/library/{name}:latest"), &digest)?;
        Ok(digest)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
