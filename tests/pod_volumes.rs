//! Pod volumes on the real kernel: files volumes on tmpfs, emptyDir sizes, hostPath types,
//! subPaths that cannot escape, and a teardown that leaves nothing and deletes no host data.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::TestRoot;
use common::child::{check, in_child, ok};
use k8s_openapi::api::core::v1::Container;
use podlab::pod::env::{self, Objects, PodFacts};
use podlab::pod::manifest::{self, Object, Pod};
use podlab::pod::volumes;
use podlab::primitives::mount as pmount;

/// A test's scratch pod directory; its volumes are torn down even when the test fails, before
/// the TestRoot (which holds any hostPath of the test) is removed.
struct Scratch {
    root: TestRoot,
    pod_dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let root = TestRoot::new(&format!("vol-{name}"));
        let pod_dir = root.dir.join("pods/web");
        Scratch { root, pod_dir }
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.root.dir.join("host").join(rel)
    }

    fn vol(&self, name: &str) -> PathBuf {
        self.pod_dir.join("volumes").join(name)
    }

    /// Tear down, then check that nothing is left: no mount below the root, no volume directories.
    fn finish(&self) {
        volumes::teardown(&self.pod_dir).expect("teardown");
        volumes::teardown(&self.pod_dir).expect("teardown is idempotent");
        let left = mounts_under(&self.root.dir);
        assert!(left.is_empty(), "mounts left behind: {left:#?}");
        for name in ["volumes", "volume-subpaths", "volume-mounts.jsonl"] {
            assert!(!self.pod_dir.join(name).exists(), "{name} left behind");
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = volumes::teardown(&self.pod_dir);
        let _ = pmount::unmount_all_under(&self.root.dir);
    }
}

/// Mount points at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    pmount::mountinfo(None).unwrap().into_iter().map(|m| m.mount_point).filter(|p| p.starts_with(dir)).collect()
}

fn fs_type(path: &Path) -> String {
    pmount::mountinfo(None).unwrap().into_iter().find(|m| m.mount_point == path).map(|m| m.fstype).unwrap_or_default()
}

/// Pod, its namespace's objects and its facts from a manifest.
fn load(yaml: &str) -> (Pod, Objects, PodFacts) {
    let objects = manifest::parse(yaml, "test.yaml").expect("valid manifest");
    let pod = objects
        .iter()
        .find_map(|o| match o {
            Object::Pod(p) => Some((**p).clone()),
            _ => None,
        })
        .expect("a pod");
    let facts = PodFacts::of(&pod, "node-1", Some("10.88.0.7".into()), "192.168.0.2");
    let objs = Objects::of(&objects, &facts.namespace);
    (pod, objs, facts)
}

fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
    pod.spec.as_ref().unwrap().containers.iter().find(|c| c.name == name).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Size of the file system at `path` in bytes.
fn fs_size(path: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    st.blocks() * st.fragment_size()
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data:
  app.conf: "port=8080\n"
  mode: fast
binaryData:
  logo.bin: AAEC/w==
---
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData:
  password: s3cret
  user: admin
---
"#;

#[test]
fn files_volumes_hold_keys_with_modes_on_tmpfs() {
    let s = Scratch::new("files");
    let yaml = format!(
        "{OBJECTS}{}",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  uid: 1111-2222
  labels: {app: web, tier: front}
spec:
  containers:
  - name: app
    image: busybox
    resources:
      limits: {memory: 64Mi, cpu: 500m}
  volumes:
  - name: config
    configMap: {name: app-config}
  - name: picked
    configMap:
      name: app-config
      defaultMode: 0600
      items:
      - {key: app.conf, path: conf/app.conf, mode: 0440}
      - {key: mode, path: mode.txt}
  - name: creds
    secret: {secretName: db, defaultMode: 0400}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
  - name: all
    projected:
      sources:
      - configMap: {name: app-config, items: [{key: mode, path: cm/mode}]}
      - secret: {name: db, items: [{key: user, path: secret/user}]}
      - downwardAPI: {items: [{path: pod/uid, fieldRef: {fieldPath: metadata.uid}}]}
      - serviceAccountToken: {path: token}
  - name: maybe
    configMap: {name: not-there, optional: true}
"#
    );
    let (pod, objects, facts) = load(&yaml);
    volumes::setup(&pod, &s.pod_dir, &facts, &objects).expect("setup");
    let pod_dir = fs::canonicalize(&s.pod_dir).unwrap();

    // Every files volume is a tmpfs of its own.
    for name in ["config", "picked", "creds", "info", "all", "maybe"] {
        assert_eq!(fs_type(&pod_dir.join("volumes").join(name)), "tmpfs", "volume {name}");
    }
    let statfs = nix::sys::statfs::statfs(&s.vol("creds")).unwrap();
    assert_eq!(statfs.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC, "the secret is in RAM");

    // All keys, with the kubelet's layout: key -> ..data/key, ..data -> ..<timestamp>.
    let config = s.vol("config");
    assert_eq!(read(&config.join("app.conf")), "port=8080\n");
    assert_eq!(read(&config.join("mode")), "fast");
    assert_eq!(fs::read(config.join("logo.bin")).unwrap(), [0, 1, 2, 255]);
    assert_eq!(mode(&config.join("app.conf")), 0o644);
    assert_eq!(fs::read_link(config.join("app.conf")).unwrap(), Path::new("..data/app.conf"));
    assert!(fs::read_link(config.join("..data")).unwrap().to_string_lossy().starts_with("..20"));

    // items: only those keys, at their paths, with their modes.
    let picked = s.vol("picked");
    assert_eq!(read(&picked.join("conf/app.conf")), "port=8080\n");
    assert_eq!(mode(&picked.join("conf/app.conf")), 0o440);
    assert_eq!(mode(&picked.join("mode.txt")), 0o600);
    assert!(!picked.join("app.conf").exists() && !picked.join("mode").exists());

    let creds = s.vol("creds");
    assert_eq!(read(&creds.join("password")), "s3cret");
    assert_eq!(read(&creds.join("user")), "admin");
    assert_eq!(mode(&creds.join("password")), 0o400);

    let info = s.vol("info");
    assert_eq!(read(&info.join("labels")), "app=\"web\"\ntier=\"front\"");
    assert_eq!(read(&info.join("name")), "web");
    assert_eq!(read(&info.join("mem")), "64");

    let all = s.vol("all");
    assert_eq!(read(&all.join("cm/mode")), "fast");
    assert_eq!(read(&all.join("secret/user")), "admin");
    assert_eq!(read(&all.join("pod/uid")), "1111-2222");
    assert_eq!(mode(&all.join("secret/user")), 0o644);
    assert!(!all.join("token").exists(), "serviceAccountToken is skipped");

    // optional and missing: an empty volume.
    let user_files: Vec<_> = fs::read_dir(s.vol("maybe"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
        .collect();
    assert!(user_files.is_empty(), "{user_files:?}");

    // Every mount was written down before it was made.
    let record = read(&s.pod_dir.join("volume-mounts.jsonl"));
    assert_eq!(record.lines().count(), 6, "{record}");

    // Files volumes are mounted read-only even without readOnly.
    let mut c = container(&pod, "app").clone();
    c.volume_mounts =
        Some(vec![serde_json::from_value(serde_json::json!({"name": "creds", "mountPath": "/creds"})).unwrap()]);
    let m = volumes::mounts(&pod, &s.pod_dir, &c, &[]).unwrap();
    assert_eq!(m[0].source().as_deref(), Some(pod_dir.join("volumes/creds").as_path()));
    assert_eq!(m[0].options().as_deref().unwrap(), ["rbind", "rprivate", "ro"]);

    s.finish();
}

#[test]
fn missing_objects_and_keys_fail_before_anything_is_made() {
    let s = Scratch::new("missing");
    let pod_yaml = |volume: &str| {
        format!(
            "{OBJECTS}apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  containers: [{{name: app, image: busybox}}]\n  \
             volumes:\n  - {{name: ok, emptyDir: {{medium: Memory}}}}\n  - {volume}\n"
        )
    };
    let cases = [
        (
            "{name: cfg, configMap: {name: nope}}",
            "volume \"cfg\": configmap \"nope\" not found in namespace \"default\"",
        ),
        ("{name: sec, secret: {secretName: nope}}", "volume \"sec\": secret \"nope\" not found"),
        (
            "{name: cfg, configMap: {name: app-config, items: [{key: nokey, path: x}]}}",
            "volume \"cfg\": items[0]: configmap default/app-config has no key \"nokey\"",
        ),
        ("{name: host, hostPath: {path: /nonexistent-podlab-test, type: Directory}}", "does not exist"),
    ];
    for (volume, want) in cases {
        let (pod, objects, facts) = load(&pod_yaml(volume));
        let err = volumes::setup(&pod, &s.pod_dir, &facts, &objects).unwrap_err().to_string();
        assert!(err.contains(want), "{volume}: {err}");
        assert!(mounts_under(&s.root.dir).is_empty(), "{volume}: a mount was left");
        assert!(!s.pod_dir.join("volumes").exists(), "{volume}: the volumes directory was made");
    }
    // An optional key that is missing is just left out.
    let (pod, objects, facts) = load(&pod_yaml(
        "{name: cfg, configMap: {name: app-config, optional: true, items: [{key: nokey, path: x}, {key: mode, path: m}]}}",
    ));
    volumes::setup(&pod, &s.pod_dir, &facts, &objects).unwrap();
    assert!(!s.vol("cfg").join("x").exists());
    assert_eq!(read(&s.vol("cfg").join("m")), "fast");
    s.finish();
}

#[test]
fn empty_dirs_on_disk_and_in_memory() {
    let s = Scratch::new("emptydir");
    let (pod, objects, facts) = load(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: app, image: busybox, resources: {limits: {memory: 32Mi}}}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: ram, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - {name: ram-big, emptyDir: {medium: Memory, sizeLimit: 1Gi}}
  - {name: ram-default, emptyDir: {medium: Memory}}
  - {name: nosource}
"#,
    );
    volumes::setup(&pod, &s.pod_dir, &facts, &objects).expect("setup");
    let pod_dir = fs::canonicalize(&s.pod_dir).unwrap();
    for name in ["scratch", "nosource"] {
        assert!(s.vol(name).is_dir());
        assert_eq!(mode(&s.vol(name)), 0o777, "{name}: anyone in the pod may write");
        assert_eq!(fs_type(&pod_dir.join("volumes").join(name)), "", "{name} is not a mount");
    }
    assert_eq!(fs_type(&pod_dir.join("volumes/ram")), "tmpfs");
    assert_eq!(fs_size(&s.vol("ram")), 16 << 20, "sizeLimit");
    // Never more than the pod's memory limit.
    assert_eq!(fs_size(&s.vol("ram-big")), 32 << 20);
    assert_eq!(fs_size(&s.vol("ram-default")), 32 << 20);

    // setup again (a restarted supervisor) keeps the data and mounts nothing twice.
    fs::write(s.vol("scratch/kept"), "disk").unwrap();
    fs::write(s.vol("ram/kept"), "ram").unwrap();
    let before = mounts_under(&s.root.dir).len();
    volumes::setup(&pod, &s.pod_dir, &facts, &objects).expect("setup again");
    assert_eq!(mounts_under(&s.root.dir).len(), before);
    assert_eq!(read(&s.vol("scratch/kept")), "disk");
    assert_eq!(read(&s.vol("ram/kept")), "ram");
    s.finish();
}

fn host_pod(path: &Path, typ: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "containers": [{"name": "app", "image": "busybox", "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
            "volumes": [{"name": "h", "hostPath": {"path": path, "type": typ}}]
        }
    }))
    .unwrap()
}

#[test]
fn host_path_types_are_checked() {
    let s = Scratch::new("hostpath");
    fs::create_dir_all(s.host("")).unwrap();
    let setup = |path: &Path, typ: &str| {
        let pod = host_pod(path, typ);
        let facts = PodFacts::of(&pod, "node-1", None, "192.168.0.2");
        volumes::setup(&pod, &s.pod_dir, &facts, &Objects::default()).map_err(|e| e.to_string())
    };

    // DirectoryOrCreate makes the directory (and its parents), mode 0755.
    let made = s.host("a/b");
    setup(&made, "DirectoryOrCreate").unwrap();
    assert!(made.is_dir());
    assert_eq!(mode(&made), 0o755);
    setup(&made, "Directory").unwrap();
    // FileOrCreate makes an empty file, mode 0644, in a directory that must exist.
    let file = s.host("f.txt");
    setup(&file, "FileOrCreate").unwrap();
    assert!(file.is_file());
    assert_eq!(mode(&file), 0o644);
    fs::write(&file, "keep").unwrap();
    setup(&file, "FileOrCreate").unwrap();
    assert_eq!(read(&file), "keep", "FileOrCreate does not truncate");
    setup(&file, "File").unwrap();
    let err = setup(&s.host("nodir/f.txt"), "FileOrCreate").unwrap_err();
    assert!(err.contains("does not exist, and FileOrCreate does not create directories"), "{err}");
    // No type: anything goes; a missing path becomes a directory (as containerd does).
    setup(&file, "").unwrap();
    setup(&s.host("auto"), "").unwrap();
    assert!(s.host("auto").is_dir());
    // Special files.
    let sock = s.host("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    setup(&sock, "Socket").unwrap();
    setup(Path::new("/dev/null"), "CharDevice").unwrap();

    // Wrong types, each naming the volume and the path.
    let wrong = [
        (file.clone(), "Directory", "is not a directory (it is a file)"),
        (made.clone(), "File", "is not a file (it is a directory)"),
        (made.clone(), "Socket", "is not a socket (it is a directory)"),
        (PathBuf::from("/dev/null"), "BlockDevice", "is not a block device (it is a character device)"),
        (sock.clone(), "CharDevice", "is not a character device (it is a socket)"),
        (s.host("missing"), "Directory", "does not exist"),
        (s.host("missing"), "File", "does not exist"),
    ];
    for (path, typ, want) in wrong {
        let err = setup(&path, typ).unwrap_err();
        assert!(err.contains("volume \"h\"") && err.contains("hostPath type check failed"), "{typ}: {err}");
        assert!(err.contains(&format!("{} {want}", path.display())), "{typ}: {err}");
    }

    // A hostPath is bound as itself: nothing of it under the pod directory.
    let pod = host_pod(&made, "Directory");
    let m = volumes::mounts(&pod, &s.pod_dir, container(&pod, "app"), &[]).unwrap();
    assert_eq!(m[0].source().as_deref(), Some(made.as_path()));
    assert_eq!(m[0].typ().as_deref(), Some("bind"));
    assert_eq!(m[0].options().as_deref().unwrap(), ["rbind", "rprivate", "rw"]);
    assert!(fs::read_dir(s.pod_dir.join("volumes")).unwrap().next().is_none());
    fs::write(made.join("keep"), "host data").unwrap();
    s.finish();
    assert_eq!(read(&made.join("keep")), "host data", "teardown touched the hostPath");
}

const SUBPATH_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: busybox
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    volumeMounts:
    - {name: data, mountPath: /srv, subPath: app}
    - {name: data, mountPath: /index.html, subPath: app/index.html}
    - {name: config, mountPath: /etc/app.conf, subPath: app.conf}
    - {name: data, mountPath: /logs, subPathExpr: "logs/$(POD_NAME)"}
    - {name: host, mountPath: /inside, subPath: inside}
    - {name: data, mountPath: /data, readOnly: true}
    - {name: data, mountPath: /inner, subPath: inner}
  volumes:
  - {name: data, emptyDir: {}}
  - {name: config, configMap: {name: app-config}}
  - {name: host, hostPath: {path: HOST, type: Directory}}
"#;

#[test]
fn sub_paths_are_pinned_inside_their_volume() {
    let s = Scratch::new("subpath");
    let host = s.host("shared");
    fs::create_dir_all(host.join("inside")).unwrap();
    fs::write(host.join("inside/keep.txt"), "host data").unwrap();
    let (pod, objects, facts) = load(&format!("{OBJECTS}{}", SUBPATH_POD.replace("HOST", host.to_str().unwrap())));
    volumes::setup(&pod, &s.pod_dir, &facts, &objects).expect("setup");
    let pod_dir = fs::canonicalize(&s.pod_dir).unwrap();
    // What a container may have left in its emptyDir: content, and symlinks.
    let data = s.vol("data");
    fs::create_dir_all(data.join("app")).unwrap();
    fs::write(data.join("app/index.html"), "hello").unwrap();
    std::os::unix::fs::symlink("app", data.join("inner")).unwrap();

    let c = container(&pod, "app");
    let env = env::container_env(&pod, c, &facts, &objects).unwrap();
    podlab::explain::start_recording();
    let m = volumes::mounts(&pod, &s.pod_dir, c, &env).expect("mounts");
    let said = podlab::explain::take_recorded();
    let pinned =
        |name: &str, index: usize| pod_dir.join("volume-subpaths").join(name).join("app").join(index.to_string());
    let sources: Vec<PathBuf> = m.iter().map(|m| m.source().clone().unwrap()).collect();
    assert_eq!(
        sources,
        [
            pinned("data", 0),
            pinned("data", 1),
            pinned("config", 2),
            pinned("data", 3),
            pinned("host", 4),
            pod_dir.join("volumes/data"),
            pinned("data", 6)
        ]
    );
    let destinations: Vec<&Path> = m.iter().map(|m| m.destination().as_path()).collect();
    assert_eq!(
        destinations,
        ["/srv", "/index.html", "/etc/app.conf", "/logs", "/inside", "/data", "/inner"].map(Path::new)
    );
    let options: Vec<&[String]> = m.iter().map(|m| m.options().as_deref().unwrap()).collect();
    assert_eq!(options[0], ["rbind", "rprivate", "rw"]);
    assert_eq!(options[2], ["rbind", "rprivate", "ro"], "configMap volumes are read-only");
    assert_eq!(options[5], ["rbind", "rprivate", "ro"], "readOnly: true");

    // Each pin is a bind mount showing the right entry.
    for i in [0, 1, 2, 3, 6] {
        let volume = if i == 2 { "config" } else { "data" };
        assert!(mounts_under(&pinned(volume, i)).contains(&pinned(volume, i)), "mount {i} is not pinned");
    }
    assert_eq!(read(&pinned("data", 0).join("index.html")), "hello");
    assert_eq!(read(&pinned("data", 1)), "hello");
    assert!(pinned("data", 1).is_file());
    assert_eq!(read(&pinned("config", 2)), "port=8080\n");
    assert_eq!(read(&pinned("host", 4).join("keep.txt")), "host data");
    assert_eq!(read(&pinned("data", 6).join("index.html")), "hello", "a symlink inside the volume is fine");
    // subPathExpr: created inside the volume, with the volume's mode.
    assert!(data.join("logs/web").is_dir());
    assert_eq!(mode(&data.join("logs/web")), 0o777);
    let shown = format!("mount --bind {} {}", pod_dir.join("volumes/data/app").display(), pinned("data", 0).display());
    assert!(said.contains(&shown), "{said:#?}");

    // Swapping the entry for a symlink to / afterwards changes nothing: the pin holds the directory.
    fs::rename(data.join("app"), data.join("app-old")).unwrap();
    std::os::unix::fs::symlink("/", data.join("app")).unwrap();
    assert_eq!(read(&pinned("data", 0).join("index.html")), "hello");
    assert!(!pinned("data", 0).join("etc").exists());
    fs::remove_file(data.join("app")).unwrap();
    fs::rename(data.join("app-old"), data.join("app")).unwrap();

    // Asked again (a restarted container): the same pins, nothing stacked.
    let again = volumes::mounts(&pod, &s.pod_dir, c, &env).expect("mounts again");
    assert_eq!(again, m);
    let stacked = pmount::mountinfo(None).unwrap().into_iter().filter(|i| i.mount_point == pinned("data", 0)).count();
    assert_eq!(stacked, 1);

    s.finish();
    assert_eq!(read(&host.join("inside/keep.txt")), "host data", "teardown touched the hostPath");
}

#[test]
fn sub_paths_cannot_escape() {
    let s = Scratch::new("escape");
    let (pod, objects, facts) = load(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: app, image: busybox}]
  volumes: [{name: data, emptyDir: {}}]
"#,
    );
    volumes::setup(&pod, &s.pod_dir, &facts, &objects).unwrap();
    let data = s.vol("data");
    fs::create_dir_all(data.join("ok")).unwrap();
    std::os::unix::fs::symlink("/", data.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", data.join("up")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", data.join("passwd")).unwrap();
    let env = vec![("ABS".to_string(), "/etc".to_string()), ("UP".to_string(), "..".to_string())];
    let cases = [
        (serde_json::json!({"name": "data", "mountPath": "/m", "subPath": "escape"}), "leads out of the volume"),
        (serde_json::json!({"name": "data", "mountPath": "/m", "subPath": "escape/etc"}), "leads out of the volume"),
        (serde_json::json!({"name": "data", "mountPath": "/m", "subPath": "up"}), "leads out of the volume"),
        (serde_json::json!({"name": "data", "mountPath": "/m", "subPath": "ok/../../x"}), "must not contain '..'"),
        (serde_json::json!({"name": "data", "mountPath": "/m", "subPath": "passwd"}), "leads out of the volume"),
        (
            serde_json::json!({"name": "data", "mountPath": "/m", "subPathExpr": "$(ABS)"}),
            "must not be an absolute path",
        ),
        (serde_json::json!({"name": "data", "mountPath": "/m", "subPathExpr": "$(UP)/x"}), "must not contain '..'"),
        (serde_json::json!({"name": "nope", "mountPath": "/m"}), "the pod has no volume \"nope\""),
    ];
    for (i, (mount, want)) in cases.into_iter().enumerate() {
        let c = Container {
            name: format!("c{i}"),
            volume_mounts: Some(vec![serde_json::from_value(mount.clone()).unwrap()]),
            ..Default::default()
        };
        let err = volumes::mounts(&pod, &s.pod_dir, &c, &env).unwrap_err().to_string();
        assert!(err.contains(&format!("container \"c{i}\": volumeMounts[0]")), "{mount}: {err}");
        assert!(err.contains(want), "{mount}: {err}");
        if let Some(sub) = mount.get("subPath").and_then(|v| v.as_str()) {
            assert!(err.contains(&format!("{sub:?}")), "the error names the subPath: {err}");
        }
    }
    assert!(mounts_under(&s.pod_dir.join("volume-subpaths")).is_empty());
    assert!(!data.join("x").exists());
    s.finish();
}

#[test]
fn mount_propagation_needs_a_shared_source() {
    let s = Scratch::new("propagation");
    let mount = |propagation: &str| -> serde_json::Value {
        serde_json::json!({"name": "data", "mountPath": "/m", "mountPropagation": propagation})
    };
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "busybox", "volumeMounts": [mount("HostToContainer")]}],
                 "volumes": [{"name": "data", "emptyDir": {}}]}
    }))
    .unwrap();
    let facts = PodFacts::of(&pod, "node-1", None, "192.168.0.2");
    let shared_root = s.root.dir.join("shared");
    fs::create_dir_all(&shared_root).unwrap();
    let private_source = pmount::mountinfo(None)
        .unwrap()
        .into_iter()
        .filter(|m| s.root.dir.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .is_some_and(|m| m.propagation.is_empty());
    if private_source {
        volumes::setup(&pod, &s.pod_dir, &facts, &Objects::default()).unwrap();
        let err = volumes::mounts(&pod, &s.pod_dir, container(&pod, "app"), &[]).unwrap_err().to_string();
        assert!(err.contains("on a shared mount") && err.contains("--make-rshared"), "{err}");
        s.finish();
    }
    // In a mount namespace of its own, on a shared tmpfs: rslave and rshared.
    let pod_dir = shared_root.join("pod");
    in_child(move || {
        ok(nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS), "unshare")?;
        ok(pmount::make_private(Path::new("/"), true), "make / private")?;
        ok(pmount::tmpfs(&shared_root, None), "tmpfs")?;
        ok(
            nix::mount::mount(None::<&str>, &shared_root, None::<&str>, nix::mount::MsFlags::MS_SHARED, None::<&str>),
            "make shared",
        )?;
        ok(volumes::setup(&pod, &pod_dir, &facts, &Objects::default()), "setup")?;
        for (propagation, want) in [("HostToContainer", "rslave"), ("Bidirectional", "rshared"), ("None", "rprivate")] {
            let c = Container {
                name: "app".into(),
                volume_mounts: Some(vec![serde_json::from_value(mount(propagation)).unwrap()]),
                ..Default::default()
            };
            let m = ok(volumes::mounts(&pod, &pod_dir, &c, &[]), "mounts")?;
            let options = m[0].options().clone().unwrap_or_default();
            check(options.contains(&want.to_string()), &format!("{propagation}: {options:?}"))?;
        }
        ok(volumes::teardown(&pod_dir), "teardown")
    });
}

#[test]
fn teardown_unmounts_leftovers_and_never_deletes_host_data() {
    let s = Scratch::new("teardown");
    let host = s.host("precious");
    fs::create_dir_all(host.join("dir")).unwrap();
    fs::write(host.join("keep.txt"), "host data").unwrap();
    fs::write(host.join("dir/deep.txt"), "deep").unwrap();
    let (pod, objects, facts) = load(&format!(
        "{OBJECTS}{}",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: app, image: busybox}]
  volumes:
  - {name: data, emptyDir: {}}
  - {name: ram, emptyDir: {medium: Memory}}
  - {name: creds, secret: {secretName: db}}
"#
    ));
    volumes::setup(&pod, &s.pod_dir, &facts, &objects).unwrap();
    let data = s.vol("data");
    // A symlink to the host's data, and binds nobody recorded (as after a crash half-way).
    std::os::unix::fs::symlink(&host, data.join("link")).unwrap();
    fs::create_dir_all(data.join("bound")).unwrap();
    pmount::bind(&host, &data.join("bound"), false).unwrap();
    fs::write(data.join("file"), "").unwrap();
    pmount::bind(&host.join("keep.txt"), &data.join("file"), false).unwrap();
    pmount::bind(&host, &data.join("bound/dir"), false).unwrap(); // a mount on a mount
    // A busy tmpfs: a file open in it. Teardown detaches it lazily; the open file stays readable.
    fs::write(s.vol("ram/busy"), "still here").unwrap();
    let busy = fs::File::open(s.vol("ram/busy")).unwrap();
    let ram_dev = busy.metadata().unwrap().dev();

    s.finish();
    assert_eq!(read(&host.join("keep.txt")), "host data");
    assert_eq!(read(&host.join("dir/deep.txt")), "deep");
    assert!(host.join("dir").is_dir());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &busy, &mut text).unwrap();
    assert_eq!((text.as_str(), busy.metadata().unwrap().dev()), ("still here", ram_dev));

    // Teardown of a pod that never had volumes, or no directory at all, is fine.
    volumes::teardown(&s.root.dir.join("pods/none")).unwrap();
}

#[test]
fn a_container_sees_its_volumes() {
    let s = Scratch::new("container");
    let (pod, objects, facts) = load(&format!(
        "{OBJECTS}{}",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: busybox
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    volumeMounts:
    - {name: config, mountPath: /etc/app.conf, subPath: app.conf}
    - {name: creds, mountPath: /creds}
    - {name: info, mountPath: /info}
    - {name: data, mountPath: /logs, subPathExpr: "logs/$(POD_NAME)"}
  volumes:
  - {name: config, configMap: {name: app-config}}
  - {name: creds, secret: {secretName: db, defaultMode: 0400}}
  - {name: info, downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}
  - {name: data, emptyDir: {}}
"#
    ));
    volumes::setup(&pod, &s.pod_dir, &facts, &objects).expect("setup");
    let c = container(&pod, "app");
    let env = env::container_env(&pod, c, &facts, &objects).unwrap();
    let mounts = volumes::mounts(&pod, &s.pod_dir, c, &env).expect("mounts");

    let runtime = env!("CARGO_BIN_EXE_podlab-runtime");
    let bundle = s.root.dir.join("bundle");
    fs::create_dir_all(&bundle).unwrap();
    let out =
        std::process::Command::new(runtime).args(["spec", "--bundle", bundle.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "spec: {}", common::text(&out.stderr));
    let file = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    spec["root"]["path"] = serde_json::json!(s.root.rootfs());
    spec["process"]["terminal"] = serde_json::json!(false);
    let script = "cat /etc/app.conf; cat /creds/password; echo; cat /info/name; echo; \
                  (echo x > /etc/app.conf) 2>/dev/null && echo config-rw || echo config-ro; \
                  (echo x > /creds/new) 2>/dev/null && echo creds-rw || echo creds-ro; \
                  echo log > /logs/out && echo logs-rw";
    spec["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    for m in &mounts {
        spec["mounts"].as_array_mut().unwrap().push(serde_json::to_value(m).unwrap());
    }
    fs::write(&file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let state = s.root.dir.join("state");
    let id = format!("t{}-volumes", std::process::id());
    let out = std::process::Command::new(runtime)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle", bundle.to_str().unwrap(), &id])
        .output()
        .unwrap();
    assert_eq!(
        common::text(&out.stdout),
        "port=8080\ns3cret\nweb\nconfig-ro\ncreds-ro\nlogs-rw\n",
        "{}",
        common::text(&out.stderr)
    );
    assert_eq!(read(&s.vol("data/logs/web/out")), "log\n", "the container wrote into its subPath");
    let left: Vec<_> = fs::read_dir(&state).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "containers left: {left:?}");
    s.finish();
}
