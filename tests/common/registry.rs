//! A real OCI registry for tests: the Debian `docker-registry` on 127.0.0.1 with a config
//! of ours (optionally htpasswd basic auth, or extra sections such as token auth), plus skopeo
//! to push OCI layouts into it, and a tiny OCI layout writer.
#![allow(dead_code)]

use std::net::{TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podlab-regtest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn skopeo_copy(layout: &Path, tag: &str, dest: &str, all: bool, creds: Option<&str>) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "--dest-tls-verify=false"]);
    if all {
        cmd.arg("--all");
    }
    if let Some(creds) = creds {
        cmd.arg(format!("--dest-creds={creds}"));
    }
    cmd.arg(format!("oci:{}:{tag}", layout.display())).arg(format!("docker://{dest}"));
    let out = cmd.output().expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Registry {
    /// Starts `docker-registry serve` on a free port; with `htpasswd`, Basic auth for that user.
    pub fn start(name: &str, htpasswd: Option<(&str, &str)>) -> Registry {
        Registry::launch(name, htpasswd, "", "warn")
    }

    /// Starts `docker-registry serve` with `extra_config` (top-level YAML sections, e.g. an
    /// `auth:` block) appended to our config. Logs at info level, so that auth decisions (why
    /// a token was refused) are in [`Registry::log`].
    pub fn start_with(name: &str, extra_config: &str) -> Registry {
        Registry::launch(name, None, extra_config, "info")
    }

    fn launch(name: &str, htpasswd: Option<(&str, &str)>, extra_config: &str, log_level: &str) -> Registry {
        let dir = scratch_dir(name);
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: {log_level}\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.display()
        );
        if let Some((user, pass)) = htpasswd {
            let hash = bcrypt::hash(pass, 4).unwrap();
            std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            config += &format!("auth:\n  htpasswd:\n    realm: podlab-test\n    path: {}/htpasswd\n", dir.display());
        }
        config += extra_config;
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start /usr/bin/docker-registry");
        let registry = Registry { child, port, dir };
        registry.wait_ready();
        registry
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = &digest["sha256:".len()..];
        self.dir.join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------- a tiny OCI layout ----------

/// A one-layer image written by [`tiny_layout`]: the digests as pushed.
pub struct TinyImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: String,
    pub layer: String,
}

/// Writes an OCI layout at `dir` holding one small linux image (config + one gzip'd layer with
/// `hello.txt`, whose content names `tag`), tagged `tag`, ready for [`skopeo_copy`].
pub fn tiny_layout(dir: &Path, tag: &str) -> TinyImage {
    use podlab::image::registry::sha256_digest;
    use std::io::Write as _;

    let blob = |bytes: &[u8]| -> (String, usize) {
        let digest = sha256_digest(bytes);
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(&digest["sha256:".len()..]), bytes).unwrap();
        (digest, bytes.len())
    };
    let content = format!("hello from {tag}\n");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", content.as_bytes()).unwrap();
    let plain = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let (layer, layer_size) = blob(&gz.finish().unwrap());
    let config = serde_json::json!({
        "architecture": podlab::image::registry::TargetPlatform::host().arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&plain)]}
    });
    let (config, config_size) = blob(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}]
    }))
    .unwrap();
    let (manifest_digest, manifest_size) = blob(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    TinyImage { manifest, manifest_digest, config, layer }
}
