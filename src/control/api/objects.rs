//! Admission of an object: decode it into its Kubernetes type, check it, fill in defaults.
//!
//! The API server never stores a body as sent. It decodes it into the kind's type (an unknown
//! field is an error when the client asks for strict validation, as kubectl does, and dropped
//! otherwise), sets what the server owns (uid, creationTimestamp, generation), applies the
//! defaults and validates the result: 422 Invalid names every bad field at once.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, PodSpec, Secret,
    Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::resources::Resource;
use super::status::{ApiError, ApiResult};
use crate::pod::manifest;

type Problems = Vec<(String, String)>;

/// The decode and validation functions of one kind's type.
struct Typed {
    check: fn(&mut Value) -> Problems,
    roundtrip: fn(Value) -> Result<Value, String>,
    validate: fn(&Value) -> Problems,
}

fn typed<T: JsonSchema + DeserializeOwned + Serialize + 'static>(validate: fn(&Value) -> Problems) -> Typed {
    Typed { check: manifest::check_fields::<T>, roundtrip: roundtrip::<T>, validate }
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, String> {
    let t: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// Build the type and run one of manifest.rs's rule sets on it.
fn rules<T: DeserializeOwned>(v: &Value, check: fn(&T) -> Problems) -> Problems {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => check(&t),
        Err(e) => vec![(String::new(), e.to_string())],
    }
}

fn kind_table(kind: &str) -> Option<Typed> {
    Some(match kind {
        "Pod" => typed::<Pod>(|v| rules(v, manifest::validate_pod)),
        "Service" => typed::<Service>(|v| rules(v, manifest::validate_service)),
        "ConfigMap" => typed::<ConfigMap>(|v| rules(v, manifest::validate_config_map)),
        "Secret" => typed::<Secret>(|v| rules(v, manifest::validate_secret)),
        "Endpoints" => typed::<Endpoints>(|v| rules(v, manifest::validate_endpoints)),
        "Namespace" => typed::<Namespace>(|v| meta(v, true)),
        "Node" => typed::<Node>(|v| meta(v, false)),
        "Event" => typed::<Event>(|v| meta(v, false)),
        "PersistentVolume" => typed::<PersistentVolume>(|v| meta(v, false)),
        "PersistentVolumeClaim" => typed::<PersistentVolumeClaim>(|v| meta(v, false)),
        "ServiceAccount" => typed::<ServiceAccount>(|v| meta(v, false)),
        "Lease" => typed::<Lease>(|v| meta(v, false)),
        "EndpointSlice" => typed::<EndpointSlice>(|v| meta(v, false)),
        "Deployment" => typed::<Deployment>(|v| workload(v, "spec.template", false)),
        "ReplicaSet" => typed::<ReplicaSet>(|v| workload(v, "spec.template", false)),
        "DaemonSet" => typed::<DaemonSet>(|v| workload(v, "spec.template", false)),
        "Job" => typed::<Job>(|v| workload(v, "spec.template", true)),
        "CronJob" => typed::<CronJob>(|v| {
            let mut p = meta(v, false);
            if v.pointer("/spec/schedule").and_then(Value::as_str).is_none_or(str::is_empty) {
                p.push(("spec.schedule".into(), "Required value".into()));
            }
            p.extend(pod_template(
                v.pointer("/spec/jobTemplate/spec/template"),
                "spec.jobTemplate.spec.template",
                true,
            ));
            p
        }),
        "StorageClass" => typed::<StorageClass>(|v| meta(v, false)),
        _ => return None,
    })
}

fn meta(v: &Value, dns_label: bool) -> Problems {
    let m = serde_json::from_value(v["metadata"].clone()).unwrap_or_default();
    let mut p = manifest::validate_object_meta(&m, false);
    if dns_label {
        // Namespaces: a DNS label (no dots).
        if let Some(name) = v["metadata"]["name"].as_str().filter(|n| n.contains('.')) {
            p.push((
                "metadata.name".into(),
                format!("Invalid value: {name:?}: a namespace name must be a DNS label (no dots)"),
            ));
        }
    }
    p
}

/// Deployments, ReplicaSets, DaemonSets, Jobs: the selector must match the template's labels.
fn workload(v: &Value, at: &str, job: bool) -> Problems {
    let mut p = meta(v, false);
    let tmpl = v.pointer("/spec/template");
    if !job {
        match v.pointer("/spec/selector") {
            Some(sel) if sel.is_object() && sel.as_object().is_some_and(|m| !m.is_empty()) => {
                let labels = tmpl.and_then(|t| t.pointer("/metadata/labels")).cloned().unwrap_or(Value::Null);
                match super::selector::LabelSelector::from_object(sel) {
                    Ok(s) if s.matches(&labels) => {}
                    Ok(_) => p.push((
                        "spec.template.metadata.labels".into(),
                        format!("Invalid value: {labels}: `selector` does not match template `labels`"),
                    )),
                    Err(e) => p.push(("spec.selector".into(), e.message)),
                }
            }
            _ => p.push(("spec.selector".into(), "Required value".into())),
        }
    }
    p.extend(pod_template(tmpl, at, job));
    p
}

fn pod_template(tmpl: Option<&Value>, at: &str, job: bool) -> Problems {
    let Some(spec) = tmpl.and_then(|t| t.get("spec")) else {
        return vec![(format!("{at}.spec.containers"), "Required value".into())];
    };
    let mut p = match serde_json::from_value::<PodSpec>(spec.clone()) {
        Ok(s) => manifest::validate_pod_spec_at(&s, &format!("{at}.spec")),
        Err(e) => vec![(format!("{at}.spec"), e.to_string())],
    };
    let policy = spec["restartPolicy"].as_str().unwrap_or("Always");
    if job && !["Never", "OnFailure"].contains(&policy) {
        p.push((
            format!("{at}.spec.restartPolicy"),
            format!("Unsupported value: {policy:?}: supported values: \"OnFailure\", \"Never\""),
        ));
    } else if !job && policy != "Always" {
        p.push((
            format!("{at}.spec.restartPolicy"),
            format!("Unsupported value: {policy:?}: supported values: \"Always\""),
        ));
    }
    p
}

/// Decode a request body into an object of `resource`: JSON, the right apiVersion and kind
/// (filled in when missing), fields checked against the type. With `strict`, unknown fields are
/// a 400 error (kubectl's `fieldValidation=Strict`); otherwise they are dropped.
pub fn decode(resource: &Resource, body: &[u8], strict: bool) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body of the request is not valid JSON: {e}")))?;
    let Some(map) = v.as_object_mut() else {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    };
    let want = resource.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(want));
        }
        Some(got) if got != want => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({got}) does not match the expected API version ({want})"
            )));
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(resource.kind));
        }
        Some(got) if got != resource.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({got}) does not match the expected kind ({})",
                resource.kind
            )));
        }
        Some(_) => {}
    }
    if !map.get("metadata").is_some_and(Value::is_object) {
        map.insert("metadata".into(), json!({}));
    }
    let Some(t) = kind_table(resource.kind) else { return Ok(v) };
    let problems = (t.check)(&mut v);
    let (unknown, bad): (Problems, Problems) = problems.into_iter().partition(|(_, m)| m.starts_with("unknown field"));
    if strict && !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|(f, _)| format!("unknown field \"{f}\"")).collect();
        return Err(ApiError::bad_request(format!("strict decoding error: {}", list.join(", "))));
    }
    // Missing required fields are validation's business (422); wrong types cannot be decoded.
    let bad: Problems = bad.into_iter().filter(|(_, m)| m != "required").collect();
    if !bad.is_empty() {
        let name = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
        return Err(ApiError::invalid(resource.kind, &name, &bad));
    }
    (t.roundtrip)(v).map_err(|e| ApiError::bad_request(format!("cannot decode the {}: {e}", resource.kind)))
}

/// Validate an admitted object (defaults applied): 422 with every problem.
pub fn validate(resource: &Resource, v: &Value) -> ApiResult<()> {
    let Some(t) = kind_table(resource.kind) else { return Ok(()) };
    let problems = (t.validate)(v);
    if problems.is_empty() {
        return Ok(());
    }
    let name = v["metadata"]["name"].as_str().unwrap_or_default();
    Err(ApiError::invalid(resource.kind, name, &problems))
}

/// Kinds whose `metadata.generation` counts changes of the spec (what controllers observe).
pub fn has_generation(resource: &Resource) -> bool {
    matches!(resource.group, "apps" | "batch") || matches!(resource.kind, "PersistentVolumeClaim" | "PersistentVolume")
}

#[cfg(test)]
mod tests {
    use super::super::resources::find;
    use super::*;

    #[test]
    fn decode_checks_kind_and_fields() {
        let pods = find("", "pods").unwrap();
        let ok = decode(pods, br#"{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#, true)
            .unwrap();
        assert_eq!((ok["apiVersion"].as_str(), ok["kind"].as_str()), (Some("v1"), Some("Pod")));
        let e = decode(pods, br#"{"metadata":{"name":"a"},"spec":{"containerz":[]}}"#, true).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("unknown field \"spec.containerz\""), "{}", e.message);
        let lenient =
            decode(pods, br#"{"metadata":{"name":"a"},"spec":{"containerz":[],"containers":[]}}"#, false).unwrap();
        assert!(lenient["spec"].get("containerz").is_none());
        let e = decode(pods, br#"{"apiVersion":"apps/v1","kind":"Pod"}"#, true).unwrap_err();
        assert!(e.message.contains("does not match"), "{}", e.message);
        let e = decode(pods, br#"{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":5}]}}"#, true)
            .unwrap_err();
        assert_eq!(e.code, 422, "{}", e.message);
    }

    #[test]
    fn validate_names_fields() {
        let deploy = find("apps", "deployments").unwrap();
        let mut d = decode(
            deploy,
            br#"{"metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"y"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}"#,
            true,
        )
        .unwrap();
        super::super::defaults::apply("Deployment", &mut d);
        let e = validate(deploy, &d).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("spec.template.metadata.labels"), "{}", e.message);
        let pods = find("", "pods").unwrap();
        let p =
            decode(pods, br#"{"metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c"}]}}"#, true).unwrap();
        let e = validate(pods, &p).unwrap_err();
        assert!(e.message.contains("metadata.name") && e.message.contains("image"), "{}", e.message);
    }
}
