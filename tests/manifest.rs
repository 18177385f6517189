//! Manifests through the public API: parsing, strict fields, and the API server's rules.

mod common;

use podlab::pod::manifest::{self, ConfigMap, FieldError, Object, Pod, Secret, Service};

const VALID: &str = r#"
# A small application: a pod, its service, its configuration and its password.
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
    app.kubernetes.io/part-of: shop
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 5
  initContainers:
    - name: setup
      image: busybox:1.36
      command: ["sh", "-c", "echo ready > /work/ready"]
      volumeMounts:
        - name: work
          mountPath: /work
  containers:
    - name: web
      image: nginx:1.27
      imagePullPolicy: IfNotPresent
      ports:
        - name: http
          containerPort: 80
          protocol: TCP
      env:
        - name: GREETING
          value: "hello"
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: PASSWORD
          valueFrom:
            secretKeyRef:
              name: web-secret
              key: password
      resources:
        requests:
          cpu: 100m
          memory: 64Mi
        limits:
          cpu: 0.5
          memory: 128Mi
      volumeMounts:
        - name: work
          mountPath: /usr/share/nginx/html
          readOnly: true
        - name: config
          mountPath: /etc/nginx/conf.d
        - name: secret
          mountPath: /etc/secret
          subPath: keys
      livenessProbe:
        httpGet:
          path: /
          port: http
        initialDelaySeconds: 2
        periodSeconds: 5
      readinessProbe:
        tcpSocket:
          port: 80
        successThreshold: 2
    - name: sidecar
      image: busybox:1.36
      command: ["sleep", "infinity"]
      startupProbe:
        exec:
          command: ["true"]
        failureThreshold: 30
  volumes:
    - name: work
      emptyDir:
        medium: Memory
        sizeLimit: 16Mi
    - name: config
      configMap:
        name: web-config
        items:
          - key: default.conf
            path: default.conf
    - name: secret
      secret:
        secretName: web-secret
        defaultMode: 0400
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 80
      targetPort: http
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  default.conf: |
    server { listen 80; }
binaryData:
  logo.png: iVBORw0KGgo=
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
data:
  password: c2VjcmV0
stringData:
  token: plain-text
"#;

/// The full error text of a manifest that must fail.
fn errors(yaml: &str) -> String {
    match manifest::parse(yaml, "test.yaml") {
        Ok(objects) => panic!("expected errors, got {} objects", objects.len()),
        Err(e) => e.to_string(),
    }
}

/// Assert that some error line has `path` and contains every part of `rule`.
#[track_caller]
fn assert_error(yaml: &str, path: &str, rule: &[&str]) {
    let text = errors(yaml);
    let found =
        text.lines().any(|line| line.contains(&format!(": {path}: ")) && rule.iter().all(|part| line.contains(part)));
    assert!(found, "no error at {path:?} containing {rule:?} in:\n{text}");
}

/// A pod named web with the given `spec` (indented by two spaces).
fn pod(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n{spec}")
}

/// A pod with one container `web`: `extra` lines are added to the container (indented by six spaces).
fn container(extra: &str) -> String {
    pod(&format!("  containers:\n    - name: web\n      image: nginx\n{extra}"))
}

fn service(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n{spec}")
}

#[test]
fn valid_file_parses_into_typed_objects() {
    let objects = manifest::parse(VALID, "app.yaml").unwrap();
    let summary: Vec<(&str, &str, &str)> = objects.iter().map(|o| (o.kind(), o.name(), o.namespace())).collect();
    assert_eq!(
        summary,
        [
            ("Pod", "web", "default"),
            ("Service", "web", "shop"),
            ("ConfigMap", "web-config", "default"),
            ("Secret", "web-secret", "default")
        ]
    );
    let Object::Pod(pod) = &objects[0] else { panic!("not a pod") };
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.containers.len(), 2);
    assert_eq!(spec.init_containers.as_ref().unwrap()[0].name, "setup");
    let volumes = spec.volumes.as_ref().unwrap();
    assert_eq!(volumes.len(), 3);
    // `defaultMode: 0400` is octal, as kubectl (YAML 1.1) reads it.
    assert_eq!(volumes[2].secret.as_ref().unwrap().default_mode, Some(0o400));
    let limits = spec.containers[0].resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "0.5");
    // Nothing is defaulted here: no imagePullPolicy on the sidecar, no protocol added.
    assert_eq!(spec.containers[1].image_pull_policy, None);
    let Object::Secret(secret) = &objects[3] else { panic!("not a secret") };
    let data = secret.data.as_ref().unwrap();
    assert_eq!(data["password"].0, b"secret");
    assert_eq!(data["token"].0, b"plain-text", "stringData is merged into data");
    assert_eq!(secret.string_data, None);
    assert_eq!(secret.type_, None);
    let Object::ConfigMap(cm) = &objects[2] else { panic!("not a config map") };
    assert!(cm.binary_data.as_ref().unwrap()["logo.png"].0.starts_with(b"\x89PNG"));
}

#[test]
fn load_reads_a_file_and_names_it() {
    // TestRoot removes the directory even when an assertion fails.
    let t = common::TestRoot::new("manifest");
    let dir = t.dir.clone();
    let good = dir.join("app.yaml");
    std::fs::write(&good, VALID).unwrap();
    assert_eq!(manifest::load(&good).unwrap().len(), 4);

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, container("      imagePullPolicy: always\n")).unwrap();
    let err = manifest::load(&bad).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: document 1 (Pod web): ", bad.display())), "{err}");

    let missing = dir.join("missing.yaml");
    let err = manifest::load(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn empty_documents_are_skipped() {
    let text = format!("# comments only\n---\n---\n# nothing here\n---\n{}\n---\n...\n", container(""));
    let objects = manifest::parse(&text, "t.yaml").unwrap();
    assert_eq!(objects.len(), 1);
    assert!(manifest::parse("", "t.yaml").unwrap().is_empty());
    assert!(manifest::parse("# just a comment\n", "t.yaml").unwrap().is_empty());
    // Documents are still counted: the bad pod is document 3.
    let text = format!("---\n# empty\n---\n{}\n---\n{}", container(""), container("      imagePullPolicy: x\n"));
    assert!(errors(&text).contains("document 3 (Pod web): spec.containers[0].imagePullPolicy"));
}

#[test]
fn yaml_syntax_errors_name_document_and_line() {
    let text = format!("{}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: [web\n", container(""));
    let err = errors(&text);
    assert!(err.starts_with("test.yaml: document 2: invalid YAML: "), "{err}");
    // The pod (8 lines), a blank line, the separator and 3 lines come first: the list opens on line 14.
    assert!(err.contains("line 14"), "{err}");
    // A document after a broken one is still read.
    let text = format!("a: [1\n---\n{}", container("      imagePullPolicy: x\n"));
    let err = errors(&text);
    assert!(err.contains("document 1: invalid YAML"), "{err}");
    assert!(err.contains("document 2 (Pod web): spec.containers[0].imagePullPolicy"), "{err}");
    // Duplicate keys are errors too, as in kubectl.
    assert!(errors(&container("      image: busybox\n")).contains("duplicate entry with key \"image\""));
}

#[test]
fn documents_must_be_supported_objects() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";
    assert_error(
        deployment,
        "kind",
        &["kind \"Deployment\" (apps/v1) is not supported here: use Pod, Service, ConfigMap, Secret or Endpoints"],
    );
    assert!(errors(deployment).contains("document 1 (Deployment web): kind:"));
    assert_error(
        "apiVersion: apps/v1\nkind: Pod\nmetadata:\n  name: web\n",
        "apiVersion",
        &["\"apps/v1\"", "expected \"v1\""],
    );
    assert_error("apiVersion: v1\nkind: pod\n", "kind", &["did you mean \"Pod\""]);
    assert_error("apiVersion: v1\nmetadata:\n  name: x\n", "kind", &["required"]);
    assert_error("kind: Service\n", "apiVersion", &["required"]);
    assert!(errors("- just\n- a list\n").contains("document 1: expected a mapping with apiVersion, kind and metadata"));
}

#[test]
fn unknown_fields_are_errors_with_the_valid_ones() {
    let top = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspce:\n  containers: []\n";
    assert_error(
        top,
        "spce",
        &["unknown field; valid fields: apiVersion, kind, metadata, spec, status", "did you mean \"spec\""],
    );

    let spec = pod("  contianers:\n    - name: web\n      image: nginx\n");
    assert_error(
        &spec,
        "spec.contianers",
        &["unknown field; valid fields: activeDeadlineSeconds, affinity, ", ", containers, ", "volumes"],
    );
    assert_error(&spec, "spec.containers", &["required"]);

    let field = container("      imagePullPolcy: Always\n");
    assert_error(
        &field,
        "spec.containers[0].imagePullPolcy",
        &["unknown field", "imagePullPolicy", "did you mean \"imagePullPolicy\""],
    );

    let deep = pod(
        "  containers:\n    - name: web\n      image: nginx\n  volumes:\n    - name: tmp\n      emptyDir:\n        medum: Memory\n",
    );
    // (Newer Kubernetes versions add fields to emptyDir: only the neighbours matter here.)
    assert_error(
        &deep,
        "spec.volumes[0].emptyDir.medum",
        &["unknown field; valid fields: medium", "sizeLimit", "did you mean \"medium\""],
    );

    let meta = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  label:\n    a: b\n";
    assert_error(meta, "metadata.label", &["did you mean \"labels\""]);
}

#[test]
fn wrong_types_name_the_path() {
    assert_error(
        &container("      ports:\n        - containerPort: \"80\"\n"),
        "spec.containers[0].ports[0].containerPort",
        &["expected an integer, found a string (\"80\")", "remove the quotes"],
    );
    assert_error(
        &container("      env:\n        - name: PORT\n          value: 8080\n"),
        "spec.containers[0].env[0].value",
        &["expected a string, found a number (8080)", "quote it"],
    );
    let labels =
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    version: 1\nspec:\n  containers: []\n";
    assert_error(labels, "metadata.labels[version]", &["expected a string"]);
    assert_error(
        &container("      tty: \"True\"\n"),
        "spec.containers[0].tty",
        &["expected a boolean", "remove the quotes"],
    );
    // YAML 1.1 forms that kubectl accepts: octal modes and yes/no booleans.
    let objects = manifest::parse(&container("      tty: yes\n      stdin: off\n"), "t").unwrap();
    let Object::Pod(typed) = &objects[0] else { panic!("not a pod") };
    let c = &typed.spec.as_ref().unwrap().containers[0];
    assert_eq!((c.tty, c.stdin), (Some(true), Some(false)));
    assert_error(
        &container("      ports:\n        - containerPort: 5000000000\n"),
        "spec.containers[0].ports[0].containerPort",
        &["32-bit"],
    );
    assert_error(&pod("  containers:\n    web: nginx\n"), "spec.containers", &["expected a list, found a mapping"]);
    assert_error(
        &container("      ports:\n        - protocol: TCP\n"),
        "spec.containers[0].ports[0].containerPort",
        &["required"],
    );
    // A quantity may be a number.
    manifest::parse(&container("      resources:\n        limits:\n          cpu: 1\n"), "t").unwrap();
}

#[test]
fn several_errors_are_all_reported() {
    let text = format!(
        "{}\n---\n{}\n---\n{}",
        container("      imagePullPolicy: always\n      ports:\n        - containerPort: 0\n"),
        service("  type: LoadBalancer\n  ports:\n    - port: 80\n"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"
    );
    let err = errors(&text);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(lines.iter().all(|l| l.starts_with("test.yaml: document ")), "{err}");
    assert!(
        lines[0].contains("document 1 (Pod web): spec.containers[0].imagePullPolicy: unsupported value \"always\"")
    );
    assert!(lines[0].contains("did you mean \"Always\""));
    assert!(lines[1].contains("document 1 (Pod web): spec.containers[0].ports[0].containerPort: required"));
    assert!(lines[2].contains("document 2 (Service web): spec.type: type \"LoadBalancer\" is not supported by podlab"));
    assert!(lines[3].contains("document 3 (ConfigMap Bad_Name): metadata.name: invalid value \"Bad_Name\""));
}

#[test]
fn metadata_rules() {
    let no_name = "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    a: b\nspec:\n  containers:\n    - name: a\n      image: b\n";
    assert_error(no_name, "metadata.name", &["required"]);
    let no_meta = "apiVersion: v1\nkind: Secret\n";
    assert!(errors(no_meta).contains("document 1 (Secret): metadata.name: required"));
    let meta = |m: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n{m}spec:\n  containers:\n    - name: a\n      image: b\n")
    };
    assert_error(&meta("  name: Web\n"), "metadata.name", &["RFC 1123 subdomain"]);
    assert_error(&meta("  name: web-\n"), "metadata.name", &["RFC 1123 subdomain"]);
    assert_error(&meta(&format!("  name: {}\n", "a".repeat(254))), "metadata.name", &["no more than 253 characters"]);
    manifest::parse(&meta("  name: web.v1\n"), "t").unwrap();
    assert_error(&meta("  name: web\n  namespace: my.ns\n"), "metadata.namespace", &["RFC 1123 label"]);
    assert_error(
        &meta("  name: web\n  labels:\n    -app: web\n"),
        "metadata.labels[-app]",
        &["invalid key", "name part must consist"],
    );
    assert_error(
        &meta("  name: web\n  labels:\n    Example.com/app: web\n"),
        "metadata.labels[Example.com/app]",
        &["prefix part"],
    );
    assert_error(
        &meta("  name: web\n  labels:\n    app: web server\n"),
        "metadata.labels[app]",
        &["invalid value \"web server\"", "valid label"],
    );
    let long = format!("  name: web\n  labels:\n    app: {}\n", "a".repeat(64));
    assert_error(&meta(&long), "metadata.labels[app]", &["no more than 63 characters"]);
    manifest::parse(&meta("  name: web\n  labels:\n    empty: \"\"\n    app.kubernetes.io/name: W_1.x\n"), "t")
        .unwrap();
    assert_error(&meta("  generateName: web-\n"), "metadata.name", &["generateName"]);
}

#[test]
fn container_rules() {
    assert_error(&pod("  containers: []\n"), "spec.containers", &["required"]);
    assert_error(&pod("  restartPolicy: Always\n"), "spec.containers", &["required"]);
    assert_error(
        &pod("  containers:\n    - name: Web_1\n      image: nginx\n"),
        "spec.containers[0].name",
        &["RFC 1123 label"],
    );
    assert_error(&pod("  containers:\n    - name: web\n"), "spec.containers[0].image", &["required"]);
    assert_error(
        &pod("  containers:\n    - name: web\n      image: \"\"\n"),
        "spec.containers[0].image",
        &["required"],
    );
    let dup = pod("  containers:\n    - name: web\n      image: a\n    - name: web\n      image: b\n");
    assert_error(&dup, "spec.containers[1].name", &["duplicate \"web\""]);
    let dup_init =
        pod("  initContainers:\n    - name: web\n      image: a\n  containers:\n    - name: web\n      image: b\n");
    assert_error(&dup_init, "spec.containers[0].name", &["duplicate \"web\""]);
    assert_error(
        &container("      imagePullPolicy: always\n"),
        "spec.containers[0].imagePullPolicy",
        &["unsupported value \"always\": supported values: \"Always\", \"IfNotPresent\", \"Never\""],
    );
    assert_error(
        &pod("  restartPolicy: Sometimes\n  containers:\n    - name: a\n      image: b\n"),
        "spec.restartPolicy",
        &["unsupported value \"Sometimes\"", "\"OnFailure\""],
    );
    assert_error(
        &pod("  terminationGracePeriodSeconds: -1\n  containers:\n    - name: a\n      image: b\n"),
        "spec.terminationGracePeriodSeconds",
        &["must be greater than or equal to 0"],
    );
    assert_error(
        &container("      restartPolicy: Always\n"),
        "spec.containers[0].restartPolicy",
        &["non-init containers"],
    );
    let init_probe = pod(
        "  initContainers:\n    - name: init\n      image: a\n      readinessProbe:\n        exec:\n          command: [x]\n  containers:\n    - name: web\n      image: b\n",
    );
    assert_error(&init_probe, "spec.initContainers[0].readinessProbe", &["init containers"]);
    let sidecar = pod(
        "  initContainers:\n    - name: log\n      image: a\n      restartPolicy: Always\n      readinessProbe:\n        exec:\n          command: [x]\n  containers:\n    - name: web\n      image: b\n",
    );
    manifest::parse(&sidecar, "t").unwrap();
}

#[test]
fn port_rules() {
    let port = |lines: &str| container(&format!("      ports:\n        - {lines}"));
    assert_error(&port("containerPort: 0\n"), "spec.containers[0].ports[0].containerPort", &["required"]);
    assert_error(
        &port("containerPort: 70000\n"),
        "spec.containers[0].ports[0].containerPort",
        &["must be between 1 and 65535, inclusive"],
    );
    assert_error(
        &port("containerPort: 80\n          hostPort: 70000\n"),
        "spec.containers[0].ports[0].hostPort",
        &["between 1 and 65535"],
    );
    assert_error(
        &port("containerPort: 80\n          protocol: tcp\n"),
        "spec.containers[0].ports[0].protocol",
        &["unsupported value \"tcp\": supported values: \"TCP\", \"UDP\", \"SCTP\"", "did you mean \"TCP\""],
    );
    assert_error(
        &port("containerPort: 80\n          name: HTTP\n"),
        "spec.containers[0].ports[0].name",
        &["alpha-numeric characters (a-z, 0-9)"],
    );
    assert_error(
        &port("containerPort: 80\n          name: web-server-http-port\n"),
        "spec.containers[0].ports[0].name",
        &["no more than 15 characters"],
    );
    assert_error(
        &port("containerPort: 80\n          name: \"8080\"\n"),
        "spec.containers[0].ports[0].name",
        &["at least one letter"],
    );
    assert_error(
        &port("containerPort: 80\n          name: web--x\n"),
        "spec.containers[0].ports[0].name",
        &["consecutive hyphens"],
    );
    assert_error(
        &port("containerPort: 80\n          name: http\n        - containerPort: 81\n          name: http\n"),
        "spec.containers[0].ports[1].name",
        &["duplicate \"http\""],
    );
    let host_network = pod(
        "  hostNetwork: true\n  containers:\n    - name: web\n      image: nginx\n      ports:\n        - containerPort: 80\n          hostPort: 8080\n",
    );
    assert_error(
        &host_network,
        "spec.containers[0].ports[0].containerPort",
        &["must match hostPort when hostNetwork is true"],
    );
    let same = pod(
        "  hostNetwork: true\n  containers:\n    - name: web\n      image: nginx\n      ports:\n        - containerPort: 80\n",
    );
    manifest::parse(&same, "t").unwrap();
}

#[test]
fn env_rules() {
    let env = |lines: &str| container(&format!("      env:\n        - {lines}"));
    assert_error(
        &env("name: 1ST\n          value: x\n"),
        "spec.containers[0].env[0].name",
        &["valid environment variable name"],
    );
    assert_error(&env("name: \"\"\n"), "spec.containers[0].env[0].name", &["required"]);
    let two = "name: X\n          valueFrom:\n            fieldRef:\n              fieldPath: metadata.name\n            secretKeyRef:\n              name: s\n              key: k\n";
    assert_error(
        &env(two),
        "spec.containers[0].env[0].valueFrom",
        &["may not have more than one field specified at a time"],
    );
    assert_error(
        &env("name: X\n          valueFrom: {}\n"),
        "spec.containers[0].env[0].valueFrom",
        &["must specify one of"],
    );
    let both = "name: X\n          value: y\n          valueFrom:\n            fieldRef:\n              fieldPath: metadata.name\n";
    assert_error(
        &env(both),
        "spec.containers[0].env[0].valueFrom",
        &["may not be specified when `value` is not empty"],
    );
    let bad_path = "name: X\n          valueFrom:\n            fieldRef:\n              fieldPath: metadata.nmae\n";
    assert_error(
        &env(bad_path),
        "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
        &["unsupported value", "metadata.name"],
    );
    let label =
        "name: X\n          valueFrom:\n            fieldRef:\n              fieldPath: metadata.labels['app']\n";
    manifest::parse(&env(label), "t").unwrap();
}

#[test]
fn resource_rules() {
    let res = |lines: &str| container(&format!("      resources:\n{lines}"));
    assert_error(
        &res("        limits:\n          cpu: fast\n"),
        "spec.containers[0].resources.limits[cpu]",
        &["invalid cpu quantity \"fast\""],
    );
    assert_error(
        &res("        requests:\n          memory: 64MB\n"),
        "spec.containers[0].resources.requests[memory]",
        &["invalid memory quantity"],
    );
    let over = "        requests:\n          cpu: \"1\"\n          memory: 1Gi\n        limits:\n          cpu: 500m\n          memory: 512Mi\n";
    assert_error(
        &res(over),
        "spec.containers[0].resources.requests[cpu]",
        &["must be less than or equal to cpu limit of 500m"],
    );
    assert_error(
        &res(over),
        "spec.containers[0].resources.requests[memory]",
        &["must be less than or equal to memory limit of 512Mi"],
    );
    manifest::parse(&res("        requests:\n          cpu: 0\n          nvidia.com/gpu: 1\n"), "t").unwrap();
}

#[test]
fn volume_rules() {
    let vols =
        |volumes: &str| pod(&format!("  containers:\n    - name: web\n      image: nginx\n  volumes:\n{volumes}"));
    assert_error(&vols("    - name: Data\n      emptyDir: {}\n"), "spec.volumes[0].name", &["RFC 1123 label"]);
    assert_error(
        &vols("    - name: data\n      emptyDir: {}\n    - name: data\n      emptyDir: {}\n"),
        "spec.volumes[1].name",
        &["duplicate \"data\""],
    );
    assert_error(
        &vols("    - name: data\n      emptyDir: {}\n      hostPath:\n        path: /tmp\n"),
        "spec.volumes[0]",
        &["may not specify more than 1 volume type"],
    );
    assert_error(
        &vols("    - name: data\n      nfs:\n        server: nas\n        path: /x\n"),
        "spec.volumes[0].nfs",
        &["not supported by podlab"],
    );
    assert_error(
        &vols("    - name: data\n      emptyDir:\n        medium: memory\n"),
        "spec.volumes[0].emptyDir.medium",
        &["did you mean \"Memory\""],
    );
    assert_error(
        &vols("    - name: data\n      hostPath:\n        path: /a/../etc\n"),
        "spec.volumes[0].hostPath.path",
        &["must not contain '..'"],
    );
    assert_error(
        &vols("    - name: data\n      hostPath:\n        path: /x\n        type: Dir\n"),
        "spec.volumes[0].hostPath.type",
        &["unsupported value"],
    );
    assert_error(
        &vols(
            "    - name: c\n      configMap:\n        name: c\n        items:\n          - key: a\n            path: ../a\n",
        ),
        "spec.volumes[0].configMap.items[0].path",
        &["must not contain '..'"],
    );
    assert_error(
        &vols("    - name: s\n      secret:\n        defaultMode: 1000\n"),
        "spec.volumes[0].secret.secretName",
        &["required"],
    );
    assert_error(
        &vols("    - name: s\n      secret:\n        secretName: s\n        defaultMode: 1000\n"),
        "spec.volumes[0].secret.defaultMode",
        &["0777"],
    );
    assert_error(
        &vols("    - name: c\n      persistentVolumeClaim:\n        claimName: \"\"\n"),
        "spec.volumes[0].persistentVolumeClaim.claimName",
        &["required"],
    );
    // No type at all becomes an emptyDir in the API server: accepted.
    manifest::parse(&vols("    - name: scratch\n"), "t").unwrap();
    manifest::parse(&vols("    - name: info\n      downwardAPI:\n        items:\n          - path: labels\n            fieldRef:\n              fieldPath: metadata.labels\n"), "t").unwrap();
}

#[test]
fn volume_mount_rules() {
    let mounts = |lines: &str| {
        pod(&format!(
            "  containers:\n    - name: web\n      image: nginx\n      volumeMounts:\n{lines}  volumes:\n    - name: data\n      emptyDir: {{}}\n"
        ))
    };
    assert_error(
        &mounts("        - name: date\n          mountPath: /data\n"),
        "spec.containers[0].volumeMounts[0].name",
        &["not found \"date\""],
    );
    assert_error(
        &mounts("        - name: data\n          mountPath: \"\"\n"),
        "spec.containers[0].volumeMounts[0].mountPath",
        &["required"],
    );
    assert_error(&mounts("        - name: data\n"), "spec.containers[0].volumeMounts[0].mountPath", &["required"]);
    let twice = "        - name: data\n          mountPath: /data\n        - name: data\n          mountPath: /data\n";
    assert_error(&mounts(twice), "spec.containers[0].volumeMounts[1].mountPath", &["must be unique"]);
    assert_error(
        &mounts("        - name: data\n          mountPath: /data\n          subPath: ../etc\n"),
        "spec.containers[0].volumeMounts[0].subPath",
        &["must not contain '..'"],
    );
    assert_error(
        &mounts("        - name: data\n          mountPath: /data\n          subPath: /etc\n"),
        "spec.containers[0].volumeMounts[0].subPath",
        &["must be a relative path"],
    );
    assert_error(
        &mounts("        - name: data\n          mountPath: /data\n          readOnly: \"true\"\n"),
        "spec.containers[0].volumeMounts[0].readOnly",
        &["expected a boolean"],
    );
    assert_error(
        &mounts("        - name: data\n          mountPath: /data\n          mountPropagation: Shared\n"),
        "spec.containers[0].volumeMounts[0].mountPropagation",
        &["unsupported value"],
    );
    manifest::parse(&mounts("        - name: data\n          mountPath: /data\n          subPath: a/b..c\n"), "t")
        .unwrap();
}

#[test]
fn probe_rules() {
    let probe = |kind: &str, body: &str| container(&format!("      {kind}:\n{body}"));
    assert_error(
        &probe("livenessProbe", "        periodSeconds: 5\n"),
        "spec.containers[0].livenessProbe",
        &["must specify a handler type"],
    );
    let two = "        exec:\n          command: [\"true\"]\n        tcpSocket:\n          port: 80\n";
    assert_error(
        &probe("livenessProbe", two),
        "spec.containers[0].livenessProbe",
        &["may not specify more than 1 handler type"],
    );
    let exec = "        exec:\n          command: [\"true\"]\n";
    assert_error(
        &probe("livenessProbe", &format!("{exec}        periodSeconds: 0\n")),
        "spec.containers[0].livenessProbe.periodSeconds",
        &["must be greater than or equal to 1"],
    );
    assert_error(
        &probe("readinessProbe", &format!("{exec}        initialDelaySeconds: -1\n")),
        "spec.containers[0].readinessProbe.initialDelaySeconds",
        &["must be greater than or equal to 0"],
    );
    assert_error(
        &probe("livenessProbe", &format!("{exec}        successThreshold: 2\n")),
        "spec.containers[0].livenessProbe.successThreshold",
        &["must be 1"],
    );
    assert_error(
        &probe("startupProbe", &format!("{exec}        successThreshold: 3\n")),
        "spec.containers[0].startupProbe.successThreshold",
        &["must be 1"],
    );
    manifest::parse(&probe("readinessProbe", &format!("{exec}        successThreshold: 3\n")), "t").unwrap();
    assert_error(
        &probe("livenessProbe", "        httpGet:\n          port: 0\n"),
        "spec.containers[0].livenessProbe.httpGet.port",
        &["between 1 and 65535"],
    );
    assert_error(
        &probe("livenessProbe", "        httpGet:\n          path: /\n"),
        "spec.containers[0].livenessProbe.httpGet.port",
        &["required"],
    );
    assert_error(
        &probe("livenessProbe", "        exec: {}\n"),
        "spec.containers[0].livenessProbe.exec.command",
        &["required"],
    );
    assert_error(
        &probe("livenessProbe", "        grpc:\n          port: 70000\n"),
        "spec.containers[0].livenessProbe.grpc.port",
        &["between 1 and 65535"],
    );
}

#[test]
fn process_namespace_rules() {
    let text = pod("  hostPID: true\n  shareProcessNamespace: true\n  containers:\n    - name: a\n      image: b\n");
    assert_error(&text, "spec.shareProcessNamespace", &["shareProcessNamespace and hostPID cannot both be enabled"]);
}

#[test]
fn service_rules() {
    let named = "apiVersion: v1\nkind: Service\nmetadata:\n  name: 1web\nspec:\n  ports:\n    - port: 80\n";
    assert_error(named, "metadata.name", &["DNS-1035 label"]);
    assert_error(&service("  selector:\n    app: web\n"), "spec.ports", &["required"]);
    manifest::parse(&service("  clusterIP: None\n  selector:\n    app: web\n"), "t").unwrap();
    assert_error(&service("  ports:\n    - port: 0\n"), "spec.ports[0].port", &["between 1 and 65535"]);
    assert_error(
        &service("  ports:\n    - port: 80\n      targetPort: 70000\n"),
        "spec.ports[0].targetPort",
        &["between 1 and 65535"],
    );
    assert_error(
        &service("  ports:\n    - port: 80\n      targetPort: \"8080\"\n"),
        "spec.ports[0].targetPort",
        &["at least one letter"],
    );
    assert_error(
        &service("  ports:\n    - port: 80\n      nodePort: 30080\n"),
        "spec.ports[0].nodePort",
        &["may not be used when `type` is 'ClusterIP'"],
    );
    assert_error(
        &service("  type: NodePort\n  ports:\n    - port: 80\n      nodePort: 8080\n"),
        "spec.ports[0].nodePort",
        &["30000-32767"],
    );
    manifest::parse(&service("  type: NodePort\n  ports:\n    - port: 80\n      nodePort: 30080\n"), "t").unwrap();
    assert_error(
        &service("  ports:\n    - port: 80\n    - port: 443\n      name: https\n"),
        "spec.ports[0].name",
        &["required"],
    );
    assert_error(
        &service("  ports:\n    - port: 80\n      name: web\n    - port: 443\n      name: web\n"),
        "spec.ports[1].name",
        &["duplicate \"web\""],
    );
    assert_error(
        &service("  ports:\n    - port: 80\n      protocol: HTTP\n"),
        "spec.ports[0].protocol",
        &["unsupported value \"HTTP\""],
    );
    assert_error(
        &service("  type: ExternalName\n  externalName: example.com\n"),
        "spec.type",
        &["\"ExternalName\" is not supported by podlab"],
    );
    assert_error(
        &service("  type: Headless\n  ports:\n    - port: 80\n"),
        "spec.type",
        &["unsupported value \"Headless\""],
    );
    assert_error(
        &service("  selector:\n    app: -web\n  ports:\n    - port: 80\n"),
        "spec.selector[app]",
        &["valid label"],
    );
    assert_error(
        &service("  clusterIP: 10.0.0.300\n  ports:\n    - port: 80\n"),
        "spec.clusterIP",
        &["valid IP address"],
    );
}

#[test]
fn config_map_rules() {
    let cm = |name: &str, body: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{body}");
    assert_error(&cm("Config", ""), "metadata.name", &["RFC 1123 subdomain"]);
    assert_error(&cm("c", "data:\n  a/b: x\n"), "data[a/b]", &["valid config key"]);
    assert_error(&cm("c", "data:\n  ..: x\n"), "data[..]", &["must not be '..'"]);
    assert_error(
        &cm("c", "data:\n  a: x\nbinaryData:\n  a: eA==\n"),
        "binaryData[a]",
        &["duplicate of key present in data"],
    );
    assert_error(&cm("c", "binaryData:\n  a: not base64!\n"), "binaryData[a]", &["invalid base64"]);
    assert_error(&cm("c", "data:\n  port: 80\n"), "data[port]", &["expected a string", "quote it"]);
}

#[test]
fn secret_rules() {
    let secret = |body: &str| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{body}");
    assert_error(&secret("data:\n  password: hunter2\n"), "data[password]", &["invalid base64", "stringData"]);
    assert_error(&secret("stringData:\n  a b: x\n"), "stringData[a b]", &["valid config key"]);
    assert_error(
        &secret("type: kubernetes.io/tls\nstringData:\n  tls.crt: x\n"),
        "data[tls.key]",
        &["required for type kubernetes.io/tls"],
    );
    let objects =
        manifest::parse(&secret("type: kubernetes.io/tls\nstringData:\n  tls.crt: x\n  tls.key: y\n"), "t").unwrap();
    let Object::Secret(s) = &objects[0] else { panic!("not a secret") };
    assert_eq!(s.data.as_ref().unwrap().len(), 2);
    // Base64 split over lines (a folded block) decodes as in Go.
    let objects = manifest::parse(&secret("data:\n  key: |\n    c2Vj\n    cmV0\n"), "t").unwrap();
    let Object::Secret(s) = &objects[0] else { panic!("not a secret") };
    assert_eq!(s.data.as_ref().unwrap()["key"].0, b"secret");
}

#[test]
fn field_error_display() {
    let e = FieldError {
        document: 2,
        object: "Pod web".into(),
        path: "spec.containers[1].name".into(),
        message: "duplicate \"web\"".into(),
    };
    assert_eq!(e.to_string(), "document 2 (Pod web): spec.containers[1].name: duplicate \"web\"");
    let e = FieldError { document: 1, object: String::new(), path: String::new(), message: "invalid YAML".into() };
    assert_eq!(e.to_string(), "document 1: invalid YAML");
}

#[test]
fn validate_functions_work_on_objects_built_in_code() {
    let mut pod = Pod::default();
    pod.metadata.name = Some("web".into());
    let problems = manifest::validate_pod(&pod);
    assert_eq!(problems, [("spec.containers".to_string(), "required".to_string())]);

    let mut svc = Service::default();
    svc.metadata.name = Some("web".into());
    assert_eq!(manifest::validate_service(&svc), [("spec.ports".to_string(), "required".to_string())]);

    let cm = ConfigMap::default();
    assert_eq!(manifest::validate_config_map(&cm), [("metadata.name".to_string(), "required".to_string())]);

    let mut secret = Secret::default();
    secret.metadata.name = Some("s".into());
    secret.string_data = Some([("bad key".to_string(), "x".to_string())].into());
    let problems = manifest::validate_secret(&secret);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, "stringData[bad key]");
}

/// What `kubectl get pod -o yaml` prints: server-set metadata, defaults and status are all known fields.
const KUBECTL_GET: &str = r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","kind":"Pod"}
  creationTimestamp: "2025-03-01T10:00:00Z"
  deletionTimestamp: null
  labels:
    run: web
  managedFields:
  - apiVersion: v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels:
          .: {}
          f:run: {}
    manager: kubectl-run
    operation: Update
    time: "2025-03-01T10:00:00Z"
  name: web
  namespace: default
  resourceVersion: "1234"
  uid: 0f0e6a56-7a0c-4b8f-9b59-1d1f7c2a5b11
spec:
  containers:
  - image: nginx
    imagePullPolicy: Always
    name: web
    resources: {}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    volumeMounts:
    - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      name: kube-api-access-abcde
      readOnly: true
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  nodeName: node1
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  serviceAccount: default
  serviceAccountName: default
  terminationGracePeriodSeconds: 30
  tolerations:
  - effect: NoExecute
    key: node.kubernetes.io/not-ready
    operator: Exists
    tolerationSeconds: 300
  volumes:
  - name: kube-api-access-abcde
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken:
          expirationSeconds: 3607
          path: token
      - configMap:
          items:
          - key: ca.crt
            path: ca.crt
          name: kube-root-ca.crt
      - downwardAPI:
          items:
          - fieldRef:
              apiVersion: v1
              fieldPath: metadata.namespace
            path: namespace
status:
  conditions:
  - lastProbeTime: null
    lastTransitionTime: "2025-03-01T10:00:05Z"
    status: "True"
    type: Ready
  phase: Running
  podIP: 10.244.0.5
  startTime: "2025-03-01T10:00:00Z"
"#;

#[test]
fn kubectl_get_output_is_accepted() {
    let objects = manifest::parse(KUBECTL_GET, "get.yaml").unwrap();
    assert_eq!(objects[0].name(), "web");
    let broken = KUBECTL_GET.replace("creationTimestamp: \"2025-03-01T10:00:00Z\"", "creationTimestamp: yesterday");
    assert_error(&broken, "metadata.creationTimestamp", &["invalid value \"yesterday\"", "RFC 3339"]);
}

#[test]
fn odd_yaml_is_reported_not_panicked_on() {
    let cases = [
        ("a: *nope\nb: 1\n", "unknown anchor"),
        ("a: &a\n  b: *a\n", "recursion limit"),
        ("\tkind: Pod\n", "invalid YAML"),
        ("? [a, b]\n: c\n", "mapping keys must be plain strings"),
        ("a: !custom 3\n", "YAML tag !custom is not supported"),
        ("--- 3\n", "expected a mapping with apiVersion, kind and metadata, found a number (3)"),
        ("a: .nan\n", "not a number JSON can hold"),
        ("apiVersion: v1\nkind: Pod\nmetadata: []\n", "metadata: expected a mapping, found a list"),
    ];
    for (text, expected) in cases {
        let err = errors(text);
        assert!(err.contains(expected), "{text:?}: {err}");
    }
    // A UTF-8 byte order mark and a %YAML directive are fine.
    manifest::parse(&format!("\u{feff}{}", container("")), "t").unwrap();
    manifest::parse(&format!("%YAML 1.2\n---\n{}", container("")), "t").unwrap();
    // Null list items and map values become zero values, as Go decodes them; the rules then speak.
    assert_error(&pod("  containers:\n    - null\n"), "spec.containers[0].name", &["required"]);
    let nulls = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {a: null}\ndata:\n  k: null\n";
    manifest::parse(nulls, "t").unwrap();
}
