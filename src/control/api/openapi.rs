//! OpenAPI: the schema of every kind served, for `kubectl explain`, validation and `apply`.
//!
//! An API server publishes the shape of its objects as OpenAPI documents: v2 (one big document,
//! `/openapi/v2`) and v3 (an index at `/openapi/v3` pointing to one document per group version,
//! `/openapi/v3/apis/apps/v1?hash=...`). Schemas are named as upstream (`io.k8s.api.core.v1.Pod`)
//! and the top-level kinds carry `x-kubernetes-group-version-kind`: that is how `kubectl explain
//! pod.spec` finds the Pod schema, and how kubectl checks that the server validates fields itself
//! (the PATCH operation lists the `fieldValidation` parameter). The schemas come from k8s-openapi.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Endpoints, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
    Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ListMeta, Patch, Status};
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::discovery::{Doc, KUBE_MINOR, hash, media_ranges, subresource};
use super::resources::{RESOURCES, Resource};

/// The two OpenAPI versions differ in where schemas live and how operations are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    V2,
    V3,
}

impl Dialect {
    fn definitions_path(self) -> &'static str {
        match self {
            Dialect::V2 => "/definitions",
            Dialect::V3 => "/components/schemas",
        }
    }

    fn reference(self, name: &str) -> Value {
        json!({"$ref": format!("#{}/{name}", self.definitions_path())})
    }
}

fn generator(d: Dialect) -> SchemaGenerator {
    SchemaSettings::default()
        .with(|s| {
            s.definitions_path = d.definitions_path().into();
            s.meta_schema = None;
            s.transforms = Vec::new();
        })
        .into_generator()
}

/// Put `T`'s schema (and all it refers to) among the generator's definitions; its name.
fn add<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The schema of a kind served here (or returned by a subresource).
fn add_kind(g: &mut SchemaGenerator, group: &str, kind: &str) -> Option<String> {
    Some(match (group, kind) {
        ("", "Namespace") => add::<Namespace>(g),
        ("", "Pod") => add::<Pod>(g),
        ("", "Service") => add::<Service>(g),
        ("", "Endpoints") => add::<Endpoints>(g),
        ("", "Node") => add::<Node>(g),
        ("", "ConfigMap") => add::<ConfigMap>(g),
        ("", "Secret") => add::<Secret>(g),
        ("", "Event") => add::<Event>(g),
        ("", "PersistentVolume") => add::<PersistentVolume>(g),
        ("", "PersistentVolumeClaim") => add::<PersistentVolumeClaim>(g),
        ("", "ServiceAccount") => add::<ServiceAccount>(g),
        ("", "Binding") => add::<Binding>(g),
        ("coordination.k8s.io", "Lease") => add::<Lease>(g),
        ("discovery.k8s.io", "EndpointSlice") => add::<EndpointSlice>(g),
        ("apps", "Deployment") => add::<Deployment>(g),
        ("apps", "ReplicaSet") => add::<ReplicaSet>(g),
        ("apps", "DaemonSet") => add::<DaemonSet>(g),
        ("batch", "Job") => add::<Job>(g),
        ("batch", "CronJob") => add::<CronJob>(g),
        ("storage.k8s.io", "StorageClass") => add::<StorageClass>(g),
        ("autoscaling", "Scale") => add::<Scale>(g),
        ("policy", "Eviction") => add::<Eviction>(g),
        _ => return None,
    })
}

/// `{"group": "apps", "version": "v1", "kind": "Deployment"}`
fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// The schema of `<Kind>List` (k8s-openapi has no schema for its generic list type).
fn list_schema(d: Dialect, item: &str, kind: &str, list_meta: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": "The versioned schema of this representation of an object.", "type": "string"},
            "kind": {"description": "The REST resource this object represents.", "type": "string"},
            "metadata": d.reference(list_meta),
            "items": {"description": format!("The {kind} objects."), "type": "array", "items": d.reference(item)},
        },
        "required": ["items"],
    })
}

/// A parameter of an operation (`in`: path or query).
fn param(d: Dialect, name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({"name": name, "in": location, "description": description});
    match d {
        Dialect::V2 => p["type"] = json!(ty),
        Dialect::V3 => p["schema"] = json!({"type": ty}),
    }
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn query_params(d: Dialect, names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| {
            let (ty, doc) = match *n {
                "allowWatchBookmarks" => ("boolean", "Ask for BOOKMARK events in a watch."),
                "continue" => ("string", "The token of the next page of a paged list."),
                "fieldSelector" => ("string", "Restrict the list to objects whose fields match."),
                "labelSelector" => ("string", "Restrict the list to objects whose labels match."),
                "limit" => ("integer", "The most objects to return; the rest come with `continue`."),
                "resourceVersion" => ("string", "Which version of the collection to read or watch from."),
                "resourceVersionMatch" => ("string", "How resourceVersion applies to a list."),
                "sendInitialEvents" => ("boolean", "Start a watch with the current objects as ADDED events."),
                "timeoutSeconds" => ("integer", "End the list or watch after this many seconds."),
                "watch" => ("boolean", "Stream the changes instead of returning a list."),
                "dryRun" => ("string", "All: check and answer, but store nothing."),
                "fieldManager" => ("string", "The name of the actor making the change."),
                "fieldValidation" => ("string", "Ignore, Warn or Strict: what to do with unknown or duplicate fields."),
                "force" => ("boolean", "Server-side apply: take over conflicting fields."),
                "gracePeriodSeconds" => ("integer", "Seconds before the object is deleted for good."),
                "propagationPolicy" => ("string", "Orphan, Background or Foreground: what happens to dependents."),
                _ => ("string", ""),
            };
            param(d, n, "query", ty, doc)
        })
        .collect()
}

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &["dryRun", "gracePeriodSeconds", "propagationPolicy"];

/// The PATCH body types offered. Strategic merge patch is accepted by the server but not
/// advertised here: k8s-openapi's schemas carry no `x-kubernetes-patch-merge-key`, and kubectl
/// computes `apply`'s patch from the OpenAPI schema only when the PATCH operation lists it; without
/// it kubectl uses its own compiled-in Kubernetes types, which know every merge key.
const PATCH_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];

/// One operation of a path.
struct Op<'a> {
    verb: &'a str,
    action: &'a str,
    id: String,
    gvk: Value,
    body: Option<&'a str>,
    response: &'a str,
    query: &'a [&'a str],
}

fn operation(d: Dialect, op: &Op) -> Value {
    let mut o = json!({
        "description": format!("{} ({})", op.id, op.action),
        "operationId": op.id,
        "parameters": query_params(d, op.query),
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk,
    });
    let body_types: &[&str] = if op.verb == "patch" { PATCH_TYPES } else { &["application/json"] };
    match d {
        Dialect::V3 => {
            o["responses"] = json!({
                "200": {"description": "OK", "content": {"application/json": {"schema": d.reference(op.response)}}},
                "401": {"description": "Unauthorized"},
            });
            if let Some(body) = op.body {
                let content: Map<String, Value> =
                    body_types.iter().map(|t| (t.to_string(), json!({"schema": d.reference(body)}))).collect();
                o["requestBody"] = json!({"required": true, "content": content});
            }
        }
        Dialect::V2 => {
            o["responses"] = json!({
                "200": {"description": "OK", "schema": d.reference(op.response)},
                "401": {"description": "Unauthorized"},
            });
            o["produces"] = json!(["application/json"]);
            o["consumes"] = json!(body_types);
            if let Some(body) = op.body
                && let Some(params) = o["parameters"].as_array_mut()
            {
                params.push(json!({"name": "body", "in": "body", "required": true, "schema": d.reference(body)}));
            }
        }
    }
    o
}

/// `Core`, `Apps`, `Coordination`: the group as upstream writes it in operation ids.
fn camel(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// The schema names a group version's operations refer to.
struct Names {
    status: String,
    delete: String,
    patch: String,
}

/// The paths of one resource: the collection, the objects, their subresources (and, for a
/// namespaced resource, the list across namespaces).
fn resource_paths(
    d: Dialect,
    g: &mut SchemaGenerator,
    r: &Resource,
    kind: &str,
    names: &Names,
) -> Vec<(String, Value)> {
    let prefix = if r.group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{}/{}", r.group, r.version) };
    let group = if r.group.is_empty() { "Core".to_string() } else { camel(r.group.split('.').next().unwrap_or("")) };
    let gv = format!("{group}{}", camel(r.version));
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let me = gvk(r.group, r.version, r.kind);
    let list = format!("{kind}List");
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let op = |verb, action, id: String, body, response, query| Op {
        verb,
        action,
        id,
        gvk: me.clone(),
        body,
        response,
        query,
    };
    let path_params = |with_name: bool| {
        let mut ps = Vec::new();
        if with_name {
            ps.push(param(d, "name", "path", "string", &format!("The name of the {}.", r.singular)));
        }
        if r.namespaced {
            ps.push(param(d, "namespace", "path", "string", "The namespace of the objects."));
        }
        ps.push(param(d, "pretty", "query", "string", "Indent the answer."));
        ps
    };
    let item_path = |ops: Vec<Op>, with_name: bool| {
        let mut p = Map::new();
        for o in &ops {
            p.insert(o.verb.to_string(), operation(d, o));
        }
        p.insert("parameters".into(), json!(path_params(with_name)));
        Value::Object(p)
    };
    let k = r.kind;
    let mut out = vec![
        (
            collection.clone(),
            item_path(
                vec![
                    op("get", "list", format!("list{gv}{scope}{k}"), None, &list, LIST_PARAMS),
                    op("post", "post", format!("create{gv}{scope}{k}"), Some(kind), kind, WRITE_PARAMS),
                    op(
                        "delete",
                        "deletecollection",
                        format!("deleteCollection{gv}{scope}{k}"),
                        Some(&names.delete),
                        &names.status,
                        DELETE_PARAMS,
                    ),
                ],
                false,
            ),
        ),
        (
            item.clone(),
            item_path(
                vec![
                    op("get", "get", format!("read{gv}{scope}{k}"), None, kind, &[]),
                    op("put", "put", format!("replace{gv}{scope}{k}"), Some(kind), kind, WRITE_PARAMS),
                    op("patch", "patch", format!("patch{gv}{scope}{k}"), Some(&names.patch), kind, PATCH_PARAMS),
                    op("delete", "delete", format!("delete{gv}{scope}{k}"), Some(&names.delete), kind, DELETE_PARAMS),
                ],
                true,
            ),
        ),
    ];
    if r.namespaced {
        let all = format!("{prefix}/{}", r.plural);
        let mut p = Map::new();
        let o = op("get", "list", format!("list{gv}{k}ForAllNamespaces"), None, &list, LIST_PARAMS);
        p.insert("get".into(), operation(d, &o));
        p.insert("parameters".into(), json!([param(d, "pretty", "query", "string", "Indent the answer.")]));
        out.push((all, Value::Object(p)));
    }
    for sub in r.subresources.iter().map(|s| subresource(r, s)) {
        let Some(sub_kind) = add_kind(g, sub.group, sub.kind) else { continue };
        let sub_gvk = gvk(sub.group, sub.version, sub.kind);
        let id = |verb: &str| format!("{verb}{gv}{scope}{k}{}", camel(sub.name));
        let sop = |verb, action, id: String, body| Op {
            verb,
            action,
            id,
            gvk: sub_gvk.clone(),
            body,
            response: sub_kind.as_str(),
            query: if verb == "patch" { PATCH_PARAMS } else { WRITE_PARAMS },
        };
        let ops = match sub.name {
            "status" | "scale" => vec![
                Op { query: &[], ..sop("get", "get", id("read"), None) },
                sop("put", "put", id("replace"), Some(sub_kind.as_str())),
                sop("patch", "patch", id("patch"), Some(names.patch.as_str())),
            ],
            "binding" | "eviction" => vec![sop("post", "post", id("create"), Some(sub_kind.as_str()))],
            _ => continue,
        };
        out.push((format!("{item}/{}", sub.name), item_path(ops, true)));
    }
    out
}

/// The paths and schemas of the resources `wanted` picks.
fn build(d: Dialect, wanted: impl Fn(&Resource) -> bool) -> (Map<String, Value>, Map<String, Value>) {
    let mut g = generator(d);
    let names =
        Names { status: add::<Status>(&mut g), delete: add::<DeleteOptions>(&mut g), patch: add::<Patch>(&mut g) };
    let list_meta = add::<ListMeta>(&mut g);
    let mut paths = Map::new();
    let mut lists = Vec::new();
    let mut kinds: Vec<(String, Value)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| wanted(r)) {
        let Some(kind) = add_kind(&mut g, r.group, r.kind) else { continue };
        for (path, item) in resource_paths(d, &mut g, r, &kind, &names) {
            paths.insert(path, item);
        }
        let list = format!("{kind}List");
        lists.push((list.clone(), list_schema(d, &kind, r.kind, &list_meta)));
        kinds.push((list, gvk(r.group, r.version, &format!("{}List", r.kind))));
        kinds.push((kind, gvk(r.group, r.version, r.kind)));
        for sub in r.subresources.iter().map(|s| subresource(r, s)) {
            if let Some(name) = add_kind(&mut g, sub.group, sub.kind).filter(|n| !kinds.iter().any(|(k, _)| k == n)) {
                kinds.push((name, gvk(sub.group, sub.version, sub.kind)));
            }
        }
    }
    let mut defs = g.take_definitions(false);
    defs.extend(lists);
    for (name, gvk) in kinds {
        if let Some(Value::Object(schema)) = defs.get_mut(&name) {
            schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
    }
    if d == Dialect::V3 {
        for schema in defs.values_mut() {
            refs_to_all_of(schema);
        }
    }
    (paths, defs)
}

/// OpenAPI 3 ignores a `$ref`'s siblings, so a field's own description next to the type's
/// reference would be lost: write `{"allOf": [{"$ref": ...}], "description": ...}` as upstream does.
fn refs_to_all_of(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for child in m.values_mut() {
                refs_to_all_of(child);
            }
            if m.len() > 1
                && let Some(r) = m.remove("$ref")
            {
                m.insert("allOf".into(), json!([{"$ref": r}]));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(refs_to_all_of),
        _ => {}
    }
}

fn info() -> Value {
    json!({"title": "Kubernetes (podlab)", "version": format!("v1.{KUBE_MINOR}.0")})
}

/// The OpenAPI v2 document of everything served.
pub fn v2_document() -> Value {
    let (paths, definitions) = build(Dialect::V2, |_| true);
    json!({"swagger": "2.0", "info": info(), "paths": paths, "definitions": definitions})
}

/// The OpenAPI v3 document of one group version (`""` is the core group), if served.
pub fn v3_document(group: &str, version: &str) -> Option<Value> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version)?;
    let (paths, schemas) = build(Dialect::V3, |r| r.group == group && r.version == version);
    Some(json!({"openapi": "3.0.0", "info": info(), "paths": paths, "components": {"schemas": schemas}}))
}

/// `api/v1`, `apis/apps/v1`: the key of a group version in the v3 index.
fn v3_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

struct V3 {
    index: Doc,
    /// By key (`apis/apps/v1`): the document and its hash.
    docs: HashMap<String, (Doc, String)>,
}

const JSON: &str = "application/json";

fn v3() -> &'static V3 {
    static V3_DOCS: OnceLock<V3> = OnceLock::new();
    V3_DOCS.get_or_init(|| {
        let mut docs = HashMap::new();
        let mut index = Map::new();
        for r in RESOURCES {
            let key = v3_key(r.group, r.version);
            if docs.contains_key(&key) {
                continue;
            }
            let Some(doc) = v3_document(r.group, r.version) else { continue };
            let doc = Doc::new(&doc, JSON);
            let h = hash(&doc.body);
            index.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={h}")}));
            docs.insert(key, (doc, h));
        }
        V3 { index: Doc::new(&json!({"paths": index}), JSON), docs }
    })
}

fn v2() -> &'static Doc {
    static V2_DOC: OnceLock<Doc> = OnceLock::new();
    V2_DOC.get_or_init(|| Doc::new(&v2_document(), JSON))
}

/// Whether the client takes JSON (kubectl asks for v2 in protobuf only, which is not served).
fn takes_json(h: &HeaderMap) -> bool {
    let accept = h.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.trim().is_empty()
        || media_ranges(accept)
            .iter()
            .any(|m| matches!(m.essence.as_str(), "application/json" | "application/*" | "*/*"))
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": {}, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn not_acceptable(what: &str) -> Response {
    status(
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        format!("{what} is served as application/json only (podlab does not encode the protobuf form)"),
    )
}

async fn get_v2(h: HeaderMap) -> Response {
    if !takes_json(&h) {
        return not_acceptable("/openapi/v2");
    }
    v2().respond(&h, "no-cache, private")
}

async fn get_v3_index(h: HeaderMap) -> Response {
    v3().index.respond(&h, "no-cache, private")
}

fn v3_answer(key: &str, q: &HashMap<String, String>, h: &HeaderMap) -> Response {
    if !takes_json(h) {
        return not_acceptable(&format!("/openapi/v3/{key}"));
    }
    match v3().docs.get(key) {
        // The URL with the current hash never changes: clients may keep it for good.
        Some((doc, hash)) if q.get("hash") == Some(hash) => doc.respond(h, "public, immutable, max-age=31536000"),
        Some((doc, _)) => doc.respond(h, "no-cache, private"),
        None => status(StatusCode::NOT_FOUND, "NotFound", format!("no OpenAPI document for {key}")),
    }
}

async fn get_v3_core(Path(version): Path<String>, Query(q): Query<HashMap<String, String>>, h: HeaderMap) -> Response {
    v3_answer(&v3_key("", &version), &q, &h)
}

async fn get_v3_group(
    Path((group, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    v3_answer(&v3_key(&group, &version), &q, &h)
}

/// Build and cache every OpenAPI document now (about 0.3 s of CPU in a debug build) rather than
/// on kubectl's first `explain` or `apply`; call it from a blocking task at start-up.
pub fn prepare() {
    v3();
    v2();
}

/// The OpenAPI endpoints (merged into [`super::discovery::routes`]).
pub fn routes() -> Router {
    Router::new()
        .route("/openapi/v2", get(get_v2))
        .route("/openapi/v3", get(get_v3_index))
        .route("/openapi/v3/api/{version}", get(get_v3_core))
        .route("/openapi/v3/apis/{group}/{version}", get(get_v3_group))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
        let path = reference.trim_start_matches('#');
        doc.pointer(path).unwrap_or_else(|| panic!("{reference} does not resolve"))
    }

    #[test]
    fn v3_core_document_names_kinds_like_upstream() {
        let doc = v3_document("", "v1").expect("core");
        let schemas = &doc["components"]["schemas"];
        let pod = &schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{"group": "", "version": "v1", "kind": "Pod"}]));
        assert_eq!(schemas["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"][0]["kind"], "PodList");
        // pod.spec: a reference wrapped in allOf, with the field's own description beside it.
        let spec = &pod["properties"]["spec"];
        assert!(spec["description"].is_string());
        let spec_type = resolve(&doc, spec["allOf"][0]["$ref"].as_str().expect("allOf ref"));
        let containers = &spec_type["properties"]["containers"];
        assert_eq!(containers["type"], "array");
        resolve(&doc, containers["items"]["$ref"].as_str().expect("items ref"));
        // Every reference resolves inside the document.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"").skip(1) {
            let reference = &part[..part.find('"').unwrap()];
            resolve(&doc, reference);
        }
    }

    #[test]
    fn patch_operations_carry_gvk_and_field_validation() {
        let doc = v3_document("apps", "v1").expect("apps");
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(patch["requestBody"]["content"]["application/merge-patch+json"].is_object());
        let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        assert!(doc["paths"]["/apis/apps/v1/deployments"]["get"].is_object());
        assert!(v3_document("apps", "v9").is_none());
    }

    #[test]
    fn v2_document_uses_definitions() {
        let doc = v2_document();
        let dep = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(dep["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
        assert!(dep["properties"]["spec"]["$ref"].as_str().is_some_and(|r| r.starts_with("#/definitions/")));
        let nodes = &doc["paths"]["/api/v1/nodes/{name}"]["patch"];
        assert!(nodes["parameters"].as_array().unwrap().iter().any(|p| p["in"] == "body"));
    }

    #[test]
    fn index_points_at_hashed_documents() {
        let index: Value = serde_json::from_slice(&v3().index.body).unwrap();
        let url = index["paths"]["apis/batch/v1"]["serverRelativeURL"].as_str().expect("batch");
        let (_, h) = &v3().docs["apis/batch/v1"];
        assert_eq!(url, format!("/openapi/v3/apis/batch/v1?hash={h}"));
        assert!(index["paths"]["api/v1"].is_object());
    }
}
