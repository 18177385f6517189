//! Defaults: the fields the API server fills in when a client leaves them out.
//!
//! `kubectl get pod web -o yaml` shows much more than was written: `restartPolicy: Always`,
//! `dnsPolicy: ClusterFirst`, `imagePullPolicy`, the termination message path, the tolerations
//! for unreachable nodes... The server writes them once, at create (and update), so every
//! component afterwards reads the same complete object.

use serde_json::{Map, Value, json};

use crate::pod::container::default_pull_policy;

/// Fill in the defaults of an object of `kind` (already decoded into its type and back).
pub fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
                tolerations(spec);
            }
        }
        "Deployment" => {
            let spec = field(obj, "spec");
            set(spec, "replicas", json!(1));
            set(spec, "revisionHistoryLimit", json!(10));
            set(spec, "progressDeadlineSeconds", json!(600));
            let strategy = field(spec, "strategy");
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = field(strategy, "rollingUpdate");
                set(ru, "maxSurge", json!("25%"));
                set(ru, "maxUnavailable", json!("25%"));
            }
            template(spec);
        }
        "ReplicaSet" => {
            let spec = field(obj, "spec");
            set(spec, "replicas", json!(1));
            template(spec);
        }
        "DaemonSet" => {
            let spec = field(obj, "spec");
            set(spec, "revisionHistoryLimit", json!(10));
            let strategy = field(spec, "updateStrategy");
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = field(strategy, "rollingUpdate");
                set(ru, "maxUnavailable", json!(1));
                set(ru, "maxSurge", json!(0));
            }
            template(spec);
        }
        "Job" => job(obj),
        "CronJob" => {
            let spec = field(obj, "spec");
            set(spec, "concurrencyPolicy", json!("Allow"));
            set(spec, "suspend", json!(false));
            set(spec, "successfulJobsHistoryLimit", json!(3));
            set(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(jt) = spec.get_mut("jobTemplate").and_then(|t| t.get_mut("spec")) {
                template(jt);
            }
        }
        "Service" => service(obj),
        "Namespace" => {
            let name = obj["metadata"]["name"].clone();
            let labels = field(field(obj, "metadata"), "labels");
            set(labels, "kubernetes.io/metadata.name", name);
            set(field(obj, "spec"), "finalizers", json!(["kubernetes"]));
            set(field(obj, "status"), "phase", json!("Active"));
        }
        "Secret" => {
            set(obj, "type", json!("Opaque"));
            secret_string_data(obj);
        }
        "PersistentVolumeClaim" => {
            set(field(obj, "spec"), "volumeMode", json!("Filesystem"));
            set(field(obj, "status"), "phase", json!("Pending"));
        }
        "PersistentVolume" => {
            let spec = field(obj, "spec");
            set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            set(spec, "volumeMode", json!("Filesystem"));
            set(field(obj, "status"), "phase", json!("Pending"));
        }
        "StorageClass" => {
            set(obj, "reclaimPolicy", json!("Delete"));
            set(obj, "volumeBindingMode", json!("Immediate"));
        }
        _ => {}
    }
}

/// `obj[key]` as an object, created when missing or null.
fn field<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("made an object above");
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot
}

/// Set `obj[key]` unless it has a value.
fn set(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let slot = map.entry(key.to_string()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

fn template(spec: &mut Value) {
    if let Some(pod_spec_value) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(pod_spec_value);
    }
}

/// The pod spec defaults (pods and every pod template).
pub fn pod_spec(spec: &mut Value) {
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "schedulerName", json!("default-scheduler"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "securityContext", json!({}));
    set(spec, "enableServiceLinks", json!(true));
    set(spec, "serviceAccountName", json!("default"));
    set(spec, "priority", json!(0));
    set(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            container(c);
        }
    }
}

fn container(c: &mut Value) {
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    set(c, "resources", json!({}));
    let image = c["image"].as_str().unwrap_or_default().to_string();
    set(c, "imagePullPolicy", json!(default_pull_policy(&image)));
    for p in c.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        set(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                set(h, "scheme", json!("HTTP"));
                set(h, "path", json!("/"));
            }
        }
    }
}

/// What the DefaultTolerationSeconds admission plugin adds: stay 300 s on a node that stops
/// answering before being evicted.
fn tolerations(spec: &mut Value) {
    let list = spec.as_object_mut().map(|m| m.entry("tolerations").or_insert(json!([])));
    let Some(list) = list else { return };
    if !list.is_array() {
        *list = json!([]);
    }
    let items = list.as_array_mut().expect("made an array above");
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        if !items.iter().any(|t| t["key"] == key) {
            items.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

fn job(obj: &mut Value) {
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let spec = field(obj, "spec");
    set(spec, "parallelism", json!(1));
    set(spec, "backoffLimit", json!(6));
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    set(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if spec.get("completions").is_none_or(Value::is_null) && spec["parallelism"] == 1 {
        spec["completions"] = json!(1);
    }
    // The selector the job controller owns: the job's uid, on the pods through the template.
    if spec["manualSelector"] != true && !uid.is_empty() {
        let labels = json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name, "controller-uid": uid, "job-name": name});
        set(spec, "selector", json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
        let tl = field(field(field(spec, "template"), "metadata"), "labels");
        for (k, v) in labels.as_object().into_iter().flatten() {
            set(tl, k, v.clone());
        }
    }
    template(spec);
}

fn service(obj: &mut Value) {
    let spec = field(obj, "spec");
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    if spec["type"] != "ExternalName" {
        set(spec, "ipFamilies", json!(["IPv4"]));
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
        set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if spec["type"] == "NodePort" || spec["type"] == "LoadBalancer" {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        set(p, "protocol", json!("TCP"));
        let port = p["port"].clone();
        set(p, "targetPort", port);
    }
}

fn secret_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(strings) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else { return };
    let data = field(obj, "data");
    for (k, v) in strings.as_object().into_iter().flatten() {
        let text = v.as_str().unwrap_or_default();
        data[k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_defaults() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]}});
        apply("Pod", &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["spec"]["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
        let mut again = pod.clone();
        apply("Pod", &mut again);
        assert_eq!(again, pod, "defaults apply once");
    }

    #[test]
    fn other_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        apply("Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply("Service", &mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        let mut sec = json!({"stringData": {"a": "hi"}});
        apply("Secret", &mut sec);
        assert_eq!(sec, json!({"type": "Opaque", "data": {"a": "aGk="}}));
        let mut j =
            json!({"metadata": {"name": "pi", "uid": "u1"}, "spec": {"template": {"spec": {"containers": []}}}});
        apply("Job", &mut j);
        assert_eq!(j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], "u1");
        assert_eq!(j["spec"]["template"]["metadata"]["labels"]["job-name"], "pi");
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(default_pull_policy("registry:5000/x"), "Always");
        assert_eq!(default_pull_policy("x@sha256:ab"), "IfNotPresent");
    }
}
