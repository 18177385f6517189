//! Images through the command line, as a user meets them: build, save, load (OCI layout,
//! OCI archive, docker archive), pull from a real local registry (by tag and digest, re-pull
//! is a no-op), run with `box --image`, corruption caught, hostile layers refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{Registry, skopeo_copy};
use common::*;

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Build the busybox image and save it as an OCI layout under the test root.
fn busybox_layout(t: &TestRoot) -> PathBuf {
    ok(t.run(&["image", "build", "busybox"]), "image build");
    let layout = t.dir.join("layout");
    ok(t.run(&["image", "save", "busybox", layout.to_str().unwrap()]), "image save");
    layout
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo").arg("--insecure-policy").args(args).output().expect("skopeo");
    assert!(out.status.success(), "skopeo {args:?}: {}", text(&out.stderr));
}

fn store_files(t: &TestRoot) -> Vec<(PathBuf, std::time::SystemTime)> {
    let dir = t.dir.join("lib/images/blobs/sha256");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn build_run_save_remove_load_and_prune() {
    let t = TestRoot::new("img-cycle");
    let layout = busybox_layout(&t);
    let ls = ok(t.run(&["image", "ls"]), "ls");
    assert!(ls.contains("docker.io/library/busybox:latest"), "{ls}");

    // The image runs; writes land in the box's own upper layer and vanish with it.
    let out = ok(
        t.run(&["box", "--image", "busybox", "--", "sh", "-c", "echo hi > /x; cat /x; cat /etc/passwd | head -1"]),
        "box",
    );
    assert_eq!(out, "hi\nroot:x:0:0:root:/root:/bin/sh\n");
    let out = t.run(&["box", "--image", "busybox", "--", "ls", "/x"]);
    assert_eq!(out.status.code(), Some(1), "a file written by an earlier box must not be there");
    // Without a command the image's Cmd (sh) runs.
    let out = t.cmd(&["box", "--image", "busybox"]).stdin(std::process::Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let inspect = ok(t.run(&["image", "inspect", "busybox"]), "inspect");
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["config"]["config"]["Cmd"][0], "sh");
    assert_eq!(v["manifest"]["layers"].as_array().unwrap().len(), 1);

    // The saved layout is a real OCI layout: skopeo reads it.
    skopeo(&["inspect", &format!("oci:{}:latest", layout.display())]);

    ok(t.run(&["image", "rm", "busybox"]), "rm");
    let prune = ok(t.run(&["image", "prune"]), "prune");
    assert!(prune.contains("removed 3 blob(s) and 1 unpacked layer(s)"), "{prune}");
    assert!(store_files(&t).is_empty());

    let loaded = ok(t.run(&["image", "load", layout.to_str().unwrap(), "--tag", "mine/bb:1"]), "load");
    assert!(loaded.contains("mine/bb:1"), "{loaded}");
    let out = ok(t.run(&["box", "--image", "mine/bb:1", "--", "echo", "loaded"]), "box loaded");
    assert_eq!(out, "loaded\n");
    t.assert_clean();
}

#[test]
fn load_oci_and_docker_archives() {
    let t = TestRoot::new("img-archives");
    let layout = busybox_layout(&t);
    let oci_archive = t.dir.join("bb-oci.tar");
    let docker_archive = t.dir.join("bb-docker.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("oci-archive:{}:latest", oci_archive.display()),
    ]);
    skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker-archive:{}:example.com/bb:docker", docker_archive.display()),
    ]);
    let out = ok(t.run(&["image", "load", oci_archive.to_str().unwrap(), "--tag", "from/oci:1"]), "load oci-archive");
    assert!(out.contains("from/oci:1"), "{out}");
    let out = ok(t.run(&["image", "load", docker_archive.to_str().unwrap()]), "load docker-archive");
    assert!(out.contains("example.com/bb:docker"), "{out}");
    for image in ["from/oci:1", "example.com/bb:docker"] {
        let out = ok(t.run(&["box", "--image", image, "--", "busybox", "true"]), image);
        assert_eq!(out, "");
    }
    // Not an image at all: a clear error, nothing stored.
    let junk = t.dir.join("junk.tar");
    std::fs::write(&junk, b"not a tar file at all").unwrap();
    let out = t.run(&["image", "load", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("junk.tar"), "{}", text(&out.stderr));
    t.assert_clean();
}

#[test]
fn pull_from_a_local_registry_by_tag_and_digest() {
    let t = TestRoot::new("img-pull");
    let layout = busybox_layout(&t);
    let registry = Registry::start("img-pull", None);
    let reference = format!("{}/lab/busybox:1.0", registry.host());
    skopeo_copy(&layout, "latest", &reference, false, None);

    // A second, empty root pulls it.
    let t2 = TestRoot::new("img-pull2");
    let digest = ok(t2.run(&["image", "pull", &reference]), "pull").trim().to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    let ls = ok(t2.run(&["image", "ls"]), "ls");
    assert!(ls.contains(&reference), "{ls}");
    // Every layer is unpacked once, right away.
    assert_eq!(std::fs::read_dir(t2.dir.join("lib/images/layers/sha256")).unwrap().count(), 1);

    // Pulling again downloads nothing: the blobs are untouched.
    let before = store_files(&t2);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(ok(t2.run(&["image", "pull", &reference]), "re-pull").trim(), digest);
    assert_eq!(store_files(&t2), before);

    // By digest, and it runs.
    let by_digest = format!("{}/lab/busybox@{digest}", registry.host());
    assert_eq!(ok(t2.run(&["image", "pull", &by_digest]), "pull by digest").trim(), digest);
    let out = ok(t2.run(&["box", "--image", &by_digest, "--", "echo", "pulled"]), "box");
    assert_eq!(out, "pulled\n");

    // Unknown tag: a clear error naming it.
    let out = t2.run(&["image", "pull", &format!("{}/lab/busybox:nope", registry.host())]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
    // A malformed reference is refused before any request.
    let out = t2.run(&["image", "pull", "Bad/Name"]);
    assert!(text(&out.stderr).contains("invalid image reference"), "{}", text(&out.stderr));
    t.assert_clean();
    t2.assert_clean();
}

#[test]
fn a_corrupted_layer_in_the_store_is_not_used() {
    let t = TestRoot::new("img-corrupt");
    ok(t.run(&["image", "build", "busybox"]), "build");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(t.run(&["image", "inspect", "busybox"]), "inspect")).unwrap();
    let layer = inspect["manifest"]["layers"][0]["digest"].as_str().unwrap().to_string();
    let hex = &layer["sha256:".len()..];
    let blob = t.dir.join("lib/images/blobs/sha256").join(hex);
    // Flip one byte near the end of the gzip stream and drop the unpacked copy.
    let mut bytes = std::fs::read(&blob).unwrap();
    let i = bytes.len() - 20;
    bytes[i] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let _ = std::fs::remove_dir_all(t.dir.join("lib/images/layers/sha256").join(hex));
    let out = t.run(&["box", "--image", "busybox", "--", "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains(hex) || err.contains("corrupt"), "{err}");
    assert!(!t.dir.join("lib/images/layers/sha256").join(hex).exists(), "a corrupted layer was kept unpacked");
    t.assert_clean();
}

/// An OCI layout whose single layer holds the given raw tar bytes.
fn layout_with_layer(dir: &Path, layer: &[u8]) {
    use sha2::{Digest, Sha256};
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let (ld, ls) = put(layer);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [ld]}});
    let (cd, cs) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]});
    let (md, ms) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "evil"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn raw_tar_entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn hostile_layers_are_refused_and_nothing_escapes() {
    let t = TestRoot::new("img-hostile");
    let canary = t.dir.join("canary");
    std::fs::create_dir_all(&canary).unwrap();
    let outside = canary.to_str().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("traversal", raw_tar_entry("../../../../../../tmp/podlab-escape", b'0', "", b"x"), "leaves the layer"),
        ("hardlink-out", raw_tar_entry("pw", b'1', "../../../../etc/passwd", b""), "pw"),
        (
            "symlink-then-write",
            [raw_tar_entry("evil", b'2', outside, b""), raw_tar_entry("evil/pwned", b'0', "", b"x")].concat(),
            "evil",
        ),
        ("whiteout-dotdot", raw_tar_entry(".wh...", b'0', "", b""), "leaves the layer"),
    ];
    for (name, mut layer, expect) in cases {
        layer.extend_from_slice(&[0u8; 1024]);
        let dir = t.dir.join(format!("layout-{name}"));
        layout_with_layer(&dir, &layer);
        ok(t.run(&["image", "load", dir.to_str().unwrap(), "--tag", &format!("evil/{name}")]), "load");
        let out = t.run(&["box", "--image", &format!("evil/{name}"), "--", "true"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{name}: {err}");
        assert!(err.contains(expect), "{name}: expected {expect:?} in {err}");
    }
    assert!(!Path::new("/tmp/podlab-escape").exists(), "a layer wrote outside the store");
    assert_eq!(std::fs::read_dir(&canary).unwrap().count(), 0, "a layer wrote through a symlink");
    // Nothing half-unpacked was kept.
    assert_eq!(std::fs::read_dir(t.dir.join("lib/images/layers/sha256")).unwrap().count(), 0);
    t.assert_clean();
}

#[test]
fn the_recipe_image_is_reproducible() {
    let (a, b) = (TestRoot::new("img-repro-a"), TestRoot::new("img-repro-b"));
    let da = ok(a.run(&["image", "build", "busybox"]), "build a");
    let db = ok(b.run(&["image", "build", "busybox"]), "build b");
    assert_eq!(da, db, "two builds of the same recipe give different digests");
}

#[test]
fn a_broken_layout_leaves_nothing_in_the_store() {
    let t = TestRoot::new("img-broken");
    let dir = t.dir.join("layout");
    let layer = [raw_tar_entry("hello", b'0', "", b"hi"), vec![0u8; 1024]].concat();
    layout_with_layer(&dir, &layer);
    // Remove the layer blob: the manifest and config are fine, the image is incomplete.
    use sha2::{Digest, Sha256};
    std::fs::remove_file(dir.join("blobs/sha256").join(hex::encode(Sha256::digest(&layer)))).unwrap();
    let out = t.run(&["image", "load", dir.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("layout is incomplete"), "{err}");
    assert!(store_files(&t).is_empty(), "a failed load left blobs: {:?}", store_files(&t));
    assert!(!ok(t.run(&["image", "ls"]), "ls").contains("evil"));
}
