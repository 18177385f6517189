//! kubectl's typed commands (`create configmap`, `create deployment`, ...) send their objects as
//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`). Each is run against a real
//! `podlab server` with the real kubectl (v1.32, and the one on PATH), checked to have sent
//! protobuf, and the object read back as JSON field by field.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::apiserver::Server;
use common::text;
use serde_json::{Value, json};

const KUBECTL_1_32: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";

/// kubectl `bin` against server `s`, with a HOME of its own (a fresh discovery cache).
fn kubectl(s: &Server, bin: &str, args: &[&str]) -> Output {
    let home = s.root.dir.join(format!("home-{}", bin.rsplit('/').next().unwrap_or(bin)));
    std::fs::create_dir_all(&home).unwrap();
    Command::new(bin)
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(args)
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"))
}

/// Run a kubectl command that must succeed and must have sent its body as protobuf.
fn sends_protobuf(s: &Server, bin: &str, args: &[&str]) {
    let mut all = vec!["-v=8"];
    all.extend_from_slice(args);
    let out = kubectl(s, bin, &all);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{bin} {args:?} failed:\n{}\nserver log:\n{}", tail(&err), s.log());
    assert!(
        err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{bin} {args:?} did not send protobuf:\n{}",
        tail(&err)
    );
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(4000)..]
}

fn get(s: &Server, bin: &str, args: &[&str]) -> Value {
    let mut all = vec!["get", "-o", "json"];
    all.extend_from_slice(args);
    let out = kubectl(s, bin, &all);
    assert!(out.status.success(), "{bin} get {args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// Every typed `kubectl create` of the issue, with kubectl `bin`, in namespace `ns`.
fn typed_creates(s: &Server, bin: &str, ns: &str) {
    sends_protobuf(s, bin, &["create", "namespace", ns]);
    let n = get(s, bin, &["namespace", ns]);
    assert_eq!((n["kind"].as_str(), n["metadata"]["name"].as_str()), (Some("Namespace"), Some(ns)), "{n}");
    assert!(n["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()), "{n}");

    sends_protobuf(s, bin, &["-n", ns, "create", "configmap", "c", "--from-literal=a=b"]);
    let cm = get(s, bin, &["-n", ns, "configmap", "c"]);
    assert_eq!(cm["data"], json!({"a": "b"}), "{cm}");
    assert_eq!(cm["metadata"]["namespace"], ns);
    assert!(cm.get("binaryData").is_none(), "{cm}");

    sends_protobuf(s, bin, &["-n", ns, "create", "secret", "generic", "s", "--from-literal=p=x"]);
    let sec = get(s, bin, &["-n", ns, "secret", "s"]);
    assert_eq!(sec["data"], json!({"p": "eA=="}), "{sec}");
    assert_eq!(sec["type"], "Opaque");

    sends_protobuf(s, bin, &["-n", ns, "create", "service", "nodeport", "api", "--tcp=443:8443"]);
    let svc = get(s, bin, &["-n", ns, "service", "api"]);
    assert_eq!(svc["spec"]["type"], "NodePort", "{svc}");
    assert_eq!(svc["spec"]["selector"], json!({"app": "api"}));
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], "443-8443", "{svc}");
    assert_eq!(port["protocol"], "TCP");
    assert_eq!(port["port"], 443);
    assert_eq!(port["targetPort"], 8443, "targetPort must stay a number: {svc}");
    assert!(port["nodePort"].as_u64().is_some_and(|p| (30000..=32767).contains(&p)), "{svc}");
    assert_eq!(svc["spec"]["ports"].as_array().map(Vec::len), Some(1));

    sends_protobuf(
        s,
        bin,
        &["-n", ns, "create", "deployment", "app", "--image=busybox:1.36", "--replicas=2", "--port=8080"],
    );
    let d = get(s, bin, &["-n", ns, "deployment", "app"]);
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["selector"], json!({"matchLabels": {"app": "app"}}));
    assert_eq!(d["metadata"]["labels"], json!({"app": "app"}));
    let tpl = &d["spec"]["template"];
    assert_eq!(tpl["metadata"]["labels"], json!({"app": "app"}), "{d}");
    let c = &tpl["spec"]["containers"][0];
    assert_eq!((c["name"].as_str(), c["image"].as_str()), (Some("busybox"), Some("busybox:1.36")), "{d}");
    assert_eq!(c["ports"], json!([{"containerPort": 8080, "protocol": "TCP"}]), "{d}");
    assert_eq!(tpl["spec"]["containers"].as_array().map(Vec::len), Some(1));

    sends_protobuf(s, bin, &["-n", ns, "create", "job", "j", "--image=busybox", "--", "echo", "hi"]);
    let job = get(s, bin, &["-n", ns, "job", "j"]);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["command"], json!(["echo", "hi"]), "{job}");
    assert_eq!(pod["containers"][0]["image"], "busybox");
    assert_eq!(pod["restartPolicy"], "Never");

    sends_protobuf(
        s,
        bin,
        &["-n", ns, "create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"],
    );
    let cj = get(s, bin, &["-n", ns, "cronjob", "cj"]);
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *", "{cj}");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["command"], json!(["date"]), "{cj}");
    assert_eq!(pod["restartPolicy"], "OnFailure");

    sends_protobuf(s, bin, &["-n", ns, "create", "serviceaccount", "robot"]);
    let sa = get(s, bin, &["-n", ns, "serviceaccount", "robot"]);
    assert_eq!((sa["kind"].as_str(), sa["metadata"]["name"].as_str()), (Some("ServiceAccount"), Some("robot")), "{sa}");
}

// ---- bodies as a client-go program sends them (a tiny protobuf encoder) ----

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field `n` as length-delimited bytes.
fn field(n: u64, b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(n << 3 | 2, &mut out);
    varint(b.len() as u64, &mut out);
    out.extend_from_slice(b);
    out
}

/// The envelope around an object's fields: `k8s\0`, runtime.Unknown {typeMeta, raw}.
fn enveloped(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
    [b"k8s\0".to_vec(), field(1, &type_meta), field(2, raw)].concat()
}

/// curl a protobuf body to `path` with `method`; the answer as JSON.
fn send(s: &Server, method: &str, path: &str, body: &[u8]) -> Value {
    let file = s.root.dir.join("body.pb");
    std::fs::write(&file, body).unwrap();
    let data = format!("@{}", file.display());
    let ct = "Content-Type: application/vnd.kubernetes.protobuf";
    let out = s.curl(&["-X", method, "-H", ct, "--data-binary", &data, path]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", text(&out.stdout)))
}

#[test]
fn protobuf_updates_and_deletes_as_client_go_sends_them() {
    let s = Server::start("proto-put");
    s.kubectl_ok(&["create", "configmap", "c", "--from-literal=a=b"]);
    let cm = s.get_json("/api/v1/namespaces/default/configmaps/c");
    let (uid, rv) = (cm["metadata"]["uid"].as_str().unwrap(), cm["metadata"]["resourceVersion"].as_str().unwrap());

    // PUT (a typed Update): ObjectMeta {name=1, resourceVersion=6}, data=2 {key=1, value=2}.
    let meta = [field(1, b"c"), field(6, rv.as_bytes())].concat();
    let data = [field(1, b"a"), field(2, b"changed")].concat();
    let put = enveloped("v1", "ConfigMap", &[field(1, &meta), field(2, &data)].concat());
    let v = send(&s, "PUT", "/api/v1/namespaces/default/configmaps/c", &put);
    assert_eq!(v["data"], json!({"a": "changed"}), "{v}");
    assert_eq!(s.get_json("/api/v1/namespaces/default/configmaps/c")["data"]["a"], "changed");
    // The same stale update again: 409, as for JSON.
    let v = send(&s, "PUT", "/api/v1/namespaces/default/configmaps/c", &put);
    assert_eq!(v["code"], 409, "{v}");

    // DELETE with DeleteOptions {preconditions=2 {uid=1}}: a wrong uid is refused...
    let wrong = enveloped("v1", "DeleteOptions", &field(2, &field(1, b"not-the-uid")));
    let v = send(&s, "DELETE", "/api/v1/namespaces/default/configmaps/c", &wrong);
    assert_eq!(v["code"], 409, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("Precondition failed")), "{v}");
    assert_eq!(s.get_json("/api/v1/namespaces/default/configmaps/c")["metadata"]["uid"], uid);
    // ... the right one deletes.
    let right = enveloped("v1", "DeleteOptions", &field(2, &field(1, uid.as_bytes())));
    let v = send(&s, "DELETE", "/api/v1/namespaces/default/configmaps/c", &right);
    assert_ne!(v["status"], "Failure", "{v}");
    assert_eq!(s.get_json("/api/v1/namespaces/default/configmaps/c")["code"], 404);
    stop_and_check_clean(s);
}

fn stop_and_check_clean(mut s: Server) {
    s.stop();
    let dir = s.root.dir.clone();
    drop(s);
    assert!(!Path::new(&dir).exists(), "{} left behind", dir.display());
}

#[test]
fn kubectl_1_32_typed_creates_send_protobuf() {
    assert!(Path::new(KUBECTL_1_32).exists(), "{KUBECTL_1_32} is missing (the Google Cloud SDK's kubectl 1.32)");
    let s = Server::start("proto-132");
    typed_creates(&s, KUBECTL_1_32, "pb-132");

    // A body that is not good protobuf: 400 naming what is wrong, nothing created.
    let cut = s.root.dir.join("cut.pb");
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(&[0x0a, 0x0f, 0x0a, 0x02, b'v', b'1', 0x12, 0x09]);
    body.extend_from_slice(b"ConfigMap");
    // raw: ConfigMap {metadata {name: 4 bytes promised, 3 given}}
    body.extend_from_slice(&[0x12, 0x07, 0x0a, 0x05, 0x0a, 0x04, b'b', b'a', b'd']);
    std::fs::write(&cut, &body).unwrap();
    let out = s.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/vnd.kubernetes.protobuf",
        "--data-binary",
        &format!("@{}", cut.display()),
        "/api/v1/namespaces/pb-132/configmaps",
    ]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(status["code"], 400, "{status}");
    let msg = status["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("protobuf")
            && msg.contains("ConfigMap metadata: ObjectMeta: field 1")
            && msg.contains("truncated"),
        "{msg}"
    );
    assert!(
        !text(&kubectl(&s, KUBECTL_1_32, &["-n", "pb-132", "get", "configmaps", "-o", "name"]).stdout).contains("bad")
    );

    // Other binary bodies are still refused with 415.
    let out = s.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/cbor",
        "--data-binary",
        "x",
        "/api/v1/namespaces/pb-132/configmaps",
    ]);
    assert!(text(&out.stdout).contains("\"code\":415"), "{}", text(&out.stdout));
    stop_and_check_clean(s);
}

#[test]
fn kubectl_on_path_typed_creates_send_protobuf() {
    let s = Server::start("proto-path");
    typed_creates(&s, "kubectl", "pb-path");
    stop_and_check_clean(s);
}
