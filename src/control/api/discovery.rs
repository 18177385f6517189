//! Discovery: how kubectl learns what this API server serves.
//!
//! Before it sends a single object, kubectl asks the server which version it is (`/version`)
//! and which groups, versions and resources exist (`/api`, `/apis`): that is how `po` becomes
//! `/api/v1/namespaces/default/pods` and `deploy` becomes `/apis/apps/v1/...`. Since 1.26 one
//! request to each of `/api` and `/apis` returns everything at once (the *aggregated* form,
//! `apidiscovery.k8s.io/v2`); older clients ask group by group (`/api/v1`, `/apis/apps/v1`).
//! kubectl keeps the answers under `~/.kube/cache/discovery` for hours.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest;

use super::resources::{RESOURCES, Resource, groups};

/// The Kubernetes minor version whose API (and k8s-openapi types) this server speaks.
pub const KUBE_MINOR: &str = "33";

/// The media type of the aggregated discovery document, as client-go asks for it and
/// recognises it in the answer's Content-Type.
pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// What `kubectl version` shows as the server: Kubernetes 1.33's API, built by podlab.
pub fn version_info() -> Info {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Info {
        major: "1".into(),
        minor: KUBE_MINOR.into(),
        git_version: format!("v1.{KUBE_MINOR}.0+podlab.{}", env!("CARGO_PKG_VERSION")),
        git_commit: String::new(),
        git_tree_state: "clean".into(),
        build_date: String::new(),
        go_version: "none (podlab is written in Rust)".into(),
        compiler: "rustc".into(),
        platform: format!("linux/{arch}"),
        ..Default::default()
    }
}

/// A subresource as discovery describes it: what it returns and which verbs it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// The subresource `name` of `r` (its response kind and verbs, as upstream serves them).
pub fn subresource(r: &Resource, name: &'static str) -> Subresource {
    let (group, version, kind, verbs): (&str, &str, &str, &[&str]) = match name {
        "status" => (r.group, r.version, r.kind, &["get", "patch", "update"]),
        "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        "binding" => ("", "v1", "Binding", &["create"]),
        "eviction" => ("policy", "v1", "Eviction", &["create"]),
        "log" => ("", "v1", "Pod", &["get"]),
        "exec" => ("", "v1", "PodExecOptions", &["create", "get"]),
        _ => (r.group, r.version, r.kind, &["get"]),
    };
    Subresource { name, group, version, kind, verbs }
}

/// The versions of the core group: `GET /api` (legacy form).
pub fn api_versions() -> APIVersions {
    APIVersions { versions: vec!["v1".into()], server_address_by_client_cidrs: Vec::new() }
}

/// One group with its versions (each group here serves one version).
pub fn api_group(group: &str) -> Option<APIGroup> {
    let r = RESOURCES.iter().find(|r| r.group == group && !group.is_empty())?;
    let gv = GroupVersionForDiscovery { group_version: r.api_version(), version: r.version.into() };
    Some(APIGroup {
        name: group.into(),
        preferred_version: Some(gv.clone()),
        server_address_by_client_cidrs: None,
        versions: vec![gv],
    })
}

/// The named groups: `GET /apis` (legacy form).
pub fn api_group_list() -> APIGroupList {
    APIGroupList { groups: groups().into_iter().filter_map(api_group).collect() }
}

/// The resources of one group version: `GET /api/v1`, `GET /apis/apps/v1`. Subresources are
/// listed as `pods/status` entries.
pub fn resource_list(group: &str, version: &str) -> Option<APIResourceList> {
    let members: Vec<&Resource> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    let first = members.first()?;
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let some = |v: &[&str]| (!v.is_empty()).then(|| strings(v));
    let mut resources = Vec::new();
    for r in &members {
        resources.push(APIResource {
            name: r.plural.into(),
            singular_name: r.singular.into(),
            namespaced: r.namespaced,
            kind: r.kind.into(),
            verbs: strings(r.verbs()),
            short_names: some(r.short_names),
            categories: some(r.categories),
            ..Default::default()
        });
        for sub in r.subresources.iter().map(|s| subresource(r, s)) {
            resources.push(APIResource {
                name: format!("{}/{}", r.plural, sub.name),
                singular_name: String::new(),
                namespaced: r.namespaced,
                group: (sub.group != r.group).then(|| sub.group.into()),
                version: (sub.version != r.version || sub.group != r.group).then(|| sub.version.into()),
                kind: sub.kind.into(),
                verbs: strings(sub.verbs),
                ..Default::default()
            });
        }
    }
    Some(APIResourceList { group_version: first.api_version(), resources })
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// One resource in the aggregated form (`APIResourceDiscovery`).
fn resource_discovery(r: &Resource) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| subresource(r, s))
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": gvk(s.group, s.version, s.kind),
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut v = json!({
        "resource": r.plural,
        "responseKind": gvk(r.group, r.version, r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        v["subresources"] = json!(subresources);
    }
    v
}

/// One group in the aggregated form (`APIGroupDiscovery`); "" is the core group.
fn group_discovery(group: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|v| {
            let resources: Vec<Value> =
                RESOURCES.iter().filter(|r| r.group == group && r.version == v).map(resource_discovery).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

/// The aggregated discovery document of `/api` (`core`: the core group) or `/apis` (the others).
pub fn aggregated(core: bool) -> Value {
    let names: Vec<&str> = if core { vec![""] } else { groups() };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": names.into_iter().map(group_discovery).collect::<Vec<_>>(),
    })
}

/// One entry of an Accept header, e.g. `application/json;as=Table;v=v1;g=meta.k8s.io`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    /// `type/subtype`, lower case.
    pub essence: String,
    /// The parameters (`as`, `g`, `v`, `q`, ...), names in lower case.
    pub params: Vec<(String, String)>,
}

impl MediaRange {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// JSON of the kind `kind` in group `g`, version `v` (`as=Table;g=meta.k8s.io;v=v1`).
    pub fn is(&self, g: &str, v: &str, kind: &str) -> bool {
        self.essence == "application/json"
            && self.param("g") == Some(g)
            && self.param("v") == Some(v)
            && self.param("as") == Some(kind)
    }

    /// Plain JSON (or anything): the ordinary form of the resource answers it.
    pub fn is_plain_json(&self) -> bool {
        matches!(self.essence.as_str(), "application/json" | "application/*" | "*/*") && self.param("as").is_none()
    }
}

/// The entries of an Accept header, in the client's order of preference.
pub fn media_ranges(accept: &str) -> Vec<MediaRange> {
    accept
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let essence = parts.next().filter(|e| !e.is_empty())?.to_ascii_lowercase();
            let params = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
                .collect();
            Some(MediaRange { essence, params })
        })
        .collect()
}

/// Whether the client prefers the special form `g/v kind` over plain JSON: the first entry that
/// is either decides (clients list the special form first and plain JSON as the fallback).
pub fn prefers(accept: &str, g: &str, v: &str, kind: &str) -> bool {
    media_ranges(accept).iter().find(|m| m.is(g, v, kind) || m.is_plain_json()).is_some_and(|m| m.is(g, v, kind))
}

/// Whether an Accept header asks for aggregated discovery (`apidiscovery.k8s.io/v2`).
pub fn wants_aggregated(accept: &str) -> bool {
    prefers(accept, "apidiscovery.k8s.io", "v2", "APIGroupDiscoveryList")
}

/// A JSON document ready to send: its bytes, its media type and its ETag.
#[derive(Debug, Clone)]
pub struct Doc {
    pub body: Bytes,
    pub content_type: &'static str,
    pub etag: String,
}

impl Doc {
    pub fn new(value: &impl Serialize, content_type: &'static str) -> Doc {
        let body = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        let etag = format!("\"{}\"", hash(&body));
        Doc { body, content_type, etag }
    }

    /// The answer to a GET: 304 when the client already holds this version (If-None-Match),
    /// else the document. `Vary: Accept` keeps HTTP caches from mixing the forms of one URL.
    pub fn respond(&self, req: &HeaderMap, cache_control: &'static str) -> Response {
        let fresh = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == self.etag);
        let status = if fresh { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
        let mut resp = if fresh { status.into_response() } else { (status, self.body.clone()).into_response() };
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, v);
        }
        resp
    }
}

/// The upper-case hex SHA-256 of some bytes (ETags, the OpenAPI `?hash=`).
pub fn hash(bytes: &[u8]) -> String {
    hex::encode_upper(sha2::Sha256::digest(bytes))
}

/// Every discovery document, serialized once.
struct Docs {
    version: Doc,
    api: Doc,
    api_aggregated: Doc,
    apis: Doc,
    apis_aggregated: Doc,
    groups: HashMap<String, Doc>,
    resource_lists: HashMap<String, Doc>,
}

const JSON: &str = "application/json";

fn docs() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut resource_lists = HashMap::new();
        let mut group_docs = HashMap::new();
        for r in RESOURCES {
            if let Some(list) = resource_list(r.group, r.version) {
                resource_lists.insert(r.api_version(), Doc::new(&list, JSON));
            }
            if let Some(g) = api_group(r.group) {
                group_docs.insert(r.group.to_string(), Doc::new(&g, JSON));
            }
        }
        Docs {
            version: Doc::new(&version_info(), JSON),
            api: Doc::new(&api_versions(), JSON),
            api_aggregated: Doc::new(&aggregated(true), AGGREGATED_V2),
            apis: Doc::new(&api_group_list(), JSON),
            apis_aggregated: Doc::new(&aggregated(false), AGGREGATED_V2),
            groups: group_docs,
            resource_lists,
        }
    })
}

fn accept(h: &HeaderMap) -> &str {
    h.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")
}

const NO_CACHE: &str = "no-cache, private";

fn not_found(what: &str) -> Response {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("the server could not find the requested resource ({what})"),
        "reason": "NotFound", "details": {}, "code": 404,
    });
    (StatusCode::NOT_FOUND, axum::Json(status)).into_response()
}

async fn get_version(h: HeaderMap) -> Response {
    docs().version.respond(&h, NO_CACHE)
}

async fn get_api(h: HeaderMap) -> Response {
    let d = docs();
    if wants_aggregated(accept(&h)) { &d.api_aggregated } else { &d.api }.respond(&h, NO_CACHE)
}

async fn get_apis(h: HeaderMap) -> Response {
    let d = docs();
    if wants_aggregated(accept(&h)) { &d.apis_aggregated } else { &d.apis }.respond(&h, NO_CACHE)
}

async fn get_core_v1(h: HeaderMap) -> Response {
    match docs().resource_lists.get("v1") {
        Some(doc) => doc.respond(&h, NO_CACHE),
        None => not_found("/api/v1"),
    }
}

async fn get_group(Path(group): Path<String>, h: HeaderMap) -> Response {
    match docs().groups.get(&group) {
        Some(doc) => doc.respond(&h, NO_CACHE),
        None => not_found(&format!("/apis/{group}")),
    }
}

async fn get_group_version(Path((group, version)): Path<(String, String)>, h: HeaderMap) -> Response {
    match docs().resource_lists.get(&format!("{group}/{version}")) {
        Some(doc) => doc.respond(&h, NO_CACHE),
        None => not_found(&format!("/apis/{group}/{version}")),
    }
}

/// The discovery and OpenAPI endpoints: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/G`,
/// `/apis/G/V`, `/openapi/v2`, `/openapi/v3...`. They need no state: the served resources are
/// fixed at build time (resources.rs).
pub fn routes() -> Router {
    Router::new()
        .route("/version", get(get_version))
        .route("/api", get(get_api))
        .route("/apis", get(get_apis))
        .route("/api/v1", get(get_core_v1))
        .route("/apis/{group}", get(get_group))
        .route("/apis/{group}/{version}", get(get_group_version))
        .merge(super::openapi::routes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn negotiation_follows_the_clients_order() {
        assert!(wants_aggregated(KUBECTL_ACCEPT));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(""));
        assert!(!wants_aggregated(
            "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(!wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"));
        assert!(wants_aggregated("application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io"));
    }

    #[test]
    fn core_resources_with_subresources() {
        let list = resource_list("", "v1").expect("core v1");
        assert_eq!(list.group_version, "v1");
        let pods = list.resources.iter().find(|r| r.name == "pods").expect("pods");
        assert_eq!(pods.short_names.as_deref(), Some(&["po".to_string()][..]));
        assert!(pods.namespaced);
        let status = list.resources.iter().find(|r| r.name == "pods/status").expect("pods/status");
        assert_eq!((status.kind.as_str(), status.verbs.len()), ("Pod", 3));
        let eviction = list.resources.iter().find(|r| r.name == "pods/eviction").expect("pods/eviction");
        assert_eq!((eviction.group.as_deref(), eviction.kind.as_str()), (Some("policy"), "Eviction"));
        let scale = resource_list("apps", "v1").unwrap().resources.into_iter().find(|r| r.name == "deployments/scale");
        assert_eq!(scale.map(|s| s.kind), Some("Scale".to_string()));
        assert!(resource_list("apps", "v2").is_none());
    }

    #[test]
    fn aggregated_documents_split_core_from_groups() {
        let api = aggregated(true);
        assert_eq!(api["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(api["items"][0]["metadata"]["name"], "");
        let pods = api["items"][0]["versions"][0]["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "pods").cloned())
            .expect("pods");
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["responseKind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
        assert!(pods["subresources"].as_array().is_some_and(|s| s.iter().any(|s| s["subresource"] == "status")));
        let apis = aggregated(false);
        let names: Vec<&str> =
            apis["items"].as_array().unwrap().iter().filter_map(|g| g["metadata"]["name"].as_str()).collect();
        assert_eq!(names, groups());
    }

    #[test]
    fn version_is_semver_with_build_metadata() {
        let v = version_info();
        assert_eq!(v.minor, KUBE_MINOR);
        assert!(v.git_version.starts_with("v1.33.0+podlab."), "{}", v.git_version);
    }
}
