//! The REST routes: URL and HTTP verb to the store operation, JSON in and out.
//!
//! GET on a collection lists (or watches, with `?watch=1`), GET on a name reads, POST creates,
//! PUT replaces, PATCH patches, DELETE deletes (a collection: every object the selectors match).
//! Subresources: `status` (what controllers and kubelets write), `scale`, a pod's `binding`
//! (the scheduler's answer) and `eviction`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

use super::crud::{Api, DeleteOptions, ListOptions, ListPage, parse_rv};
use super::patch::PatchType;
use super::path::Target;
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use super::watch::{WatchRequest, watch};

/// The largest request body taken (the real API server's limit is 3 MiB too).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The object routes, on `api`.
pub fn routes(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/{*rest}", any(core))
        .route("/apis/{group}/{version}/{*rest}", any(grouped))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

type Q = Query<HashMap<String, String>>;

async fn core(
    State(api): State<Arc<Api>>,
    method: Method,
    Path(rest): Path<String>,
    q: Q,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    serve(api, method, "", "v1", &rest, q.0, h, body).await
}

async fn grouped(
    State(api): State<Arc<Api>>,
    method: Method,
    Path((group, version, rest)): Path<(String, String, String)>,
    q: Q,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    serve(api, method, &group, &version, &rest, q.0, h, body).await
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    api: Arc<Api>,
    method: Method,
    group: &str,
    version: &str,
    rest: &str,
    q: HashMap<String, String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let t = match Target::parse(group, version, rest) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match dispatch(api, method, t, q, h, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn truthy(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "1" || v == "true")
}

fn list_options(t: &Target, q: &HashMap<String, String>) -> ApiResult<ListOptions> {
    Ok(ListOptions {
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""), t.resource.kind)?,
        limit: match q.get("limit").filter(|l| !l.is_empty()) {
            Some(l) => l.parse().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        },
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

fn strict(q: &HashMap<String, String>) -> bool {
    q.get("fieldValidation").is_some_and(|v| v == "Strict")
}

fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

fn json_response(code: StatusCode, v: Value) -> Response {
    (code, axum::Json(v)).into_response()
}

async fn dispatch(
    api: Arc<Api>,
    method: Method,
    t: Target,
    q: HashMap<String, String>,
    h: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let sub = t.subresource.clone();
    let (body, h) = protobuf_as_json(&method, body, h)?;
    let ct = header(&h, "content-type");
    if !body.is_empty()
        && matches!(method.as_str(), "POST" | "PUT")
        && !ct.is_empty()
        && !ct.starts_with("application/json")
        && !ct.starts_with("*/*")
    {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({ct}): accepted media types are application/json"
            ),
        ));
    }
    let accept = header(&h, "accept").to_string();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, v));
    match (method.as_str(), t.name.is_some(), sub.as_deref()) {
        ("GET", false, None) => {
            let list = list_options(&t, &q)?;
            if truthy(&q, "watch") {
                let rv = match q.get("resourceVersion").filter(|v| !v.is_empty()) {
                    Some(v) => Some(parse_rv(v)?),
                    None => None,
                };
                let timeout = q.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs);
                let req = WatchRequest {
                    list,
                    resource_version: rv,
                    timeout,
                    bookmarks: truthy(&q, "allowWatchBookmarks"),
                    send_initial: truthy(&q, "sendInitialEvents"),
                };
                let render = super::render::watch_renderer(t.resource, &accept, &q);
                return Ok(watch(api, t, req, render).await);
            }
            let page = api.list(&t, &list).await?;
            ok(super::render::list(t.resource, page_json(&t, page), &accept, &q))
        }
        ("GET", true, None | Some("status")) => {
            let v = api.get(&t).await?;
            ok(super::render::one(t.resource, v, &accept, &q))
        }
        ("GET", true, Some("scale")) => ok(scale_of(&api.get(&t).await?)),
        ("GET" | "POST", true, Some("log" | "exec")) => {
            let main = Target { subresource: None, ..t.clone() };
            let pod = api.get(&main).await?;
            let name = main.name()?;
            match pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                None => Err(ApiError::bad_request(format!(
                    "pod {name} is not scheduled to a node yet: it has no logs and runs nothing"
                ))),
                Some(node) => Err(ApiError::new(
                    503,
                    "ServiceUnavailable",
                    format!("pod {name} runs on node {node}, and this server cannot reach node kubelets yet"),
                )),
            }
        }
        ("POST", false, None) => {
            let v = api.create(&t, &body, strict(&q), dry_run(&q)).await?;
            Ok(json_response(StatusCode::CREATED, v))
        }
        ("POST", true, Some("binding")) => bind(&api, &t, &body).await.map(|v| json_response(StatusCode::CREATED, v)),
        ("POST", true, Some("eviction")) => {
            let main = Target { subresource: None, ..t.clone() };
            api.delete(&main, &DeleteOptions::default()).await?;
            Ok(json_response(
                StatusCode::CREATED,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        ("PUT", true, None | Some("status")) => ok(api.update(&t, &body, strict(&q), sub.as_deref()).await?),
        ("PUT", true, Some("scale")) => {
            let s: Value =
                serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid Scale: {e}")))?;
            ok(set_scale(&api, &t, &s).await?)
        }
        ("PATCH", true, None | Some("status") | Some("scale")) => {
            let ct = header(&h, "content-type");
            let ty = PatchType::from_content_type(ct).ok_or_else(|| {
                ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format ({ct:?}): accepted media types are application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"))
            })?;
            if sub.as_deref() == Some("scale") {
                let main = Target { subresource: None, ..t.clone() };
                let current = scale_of(&api.get(&main).await?);
                // A Scale has no lists to merge: a strategic patch of it is a merge patch.
                let scale_resource = t.resource;
                let scale_ty = if ty == PatchType::Strategic { PatchType::Merge } else { ty };
                let patched = super::patch::apply(scale_resource, &current, &body, scale_ty)
                    .map_err(|e| ApiError::from_patch(&e, "the scale"))?;
                return ok(set_scale(&api, &t, &patched).await?);
            }
            ok(api.patch(&t, &body, ty, strict(&q), sub.as_deref()).await?)
        }
        ("DELETE", true, None) => {
            let opts = delete_options(&q, &body)?;
            ok(api.delete(&t, &opts).await?)
        }
        ("DELETE", false, None) => {
            let opts = delete_options(&q, &body)?;
            let items = api.delete_collection(&t, &list_options(&t, &q)?, &opts).await?;
            ok(
                json!({"kind": format!("{}List", t.resource.kind), "apiVersion": t.resource.api_version(), "metadata": {}, "items": items}),
            )
        }
        (m, _, s) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m} {}{})",
            t.resource.plural,
            s.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

/// kubectl's typed commands send protobuf (`application/vnd.kubernetes.protobuf`): a POST, PUT
/// or DELETE body in it is read into the JSON it stands for (400 when it cannot be read), and the
/// request goes on as if the client had sent that JSON.
fn protobuf_as_json(method: &Method, body: Bytes, mut h: HeaderMap) -> ApiResult<(Bytes, HeaderMap)> {
    let writes = matches!(method.as_str(), "POST" | "PUT" | "DELETE");
    if !writes || body.is_empty() || !super::protobuf::is_protobuf(header(&h, "content-type")) {
        return Ok((body, h));
    }
    let v = super::protobuf::decode(&body)
        .map_err(|e| ApiError::bad_request(format!("the protobuf body cannot be read: {e}")))?;
    let json = serde_json::to_vec(&v)
        .map_err(|e| ApiError::internal(format!("the decoded protobuf body cannot be written as JSON: {e}")))?;
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok((Bytes::from(json), h))
}

fn page_json(t: &Target, page: ListPage) -> Value {
    let mut meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = page.continue_token {
        meta["continue"] = json!(c);
    }
    // The items move into the list (no copy of a thousand objects).
    let mut list =
        json!({"kind": format!("{}List", t.resource.kind), "apiVersion": t.resource.api_version(), "metadata": meta});
    list["items"] = Value::Array(page.items);
    list
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> ApiResult<DeleteOptions> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let grace = b["gracePeriodSeconds"].as_i64().or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    let dry = dry_run(q) || b["dryRun"].as_array().is_some_and(|d| d.iter().any(|x| x == "All"));
    Ok(DeleteOptions {
        grace_period: grace,
        precondition_uid: b["preconditions"]["uid"].as_str().map(String::from),
        precondition_rv: b["preconditions"]["resourceVersion"].as_str().map(String::from),
        dry_run: dry,
    })
}

/// The scheduler's answer: POST pods/NAME/binding sets the pod's node, once.
async fn bind(api: &Arc<Api>, t: &Target, body: &[u8]) -> ApiResult<Value> {
    let b: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid Binding: {e}")))?;
    let node = b["target"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("Binding: target.name is required"))?;
    let main = Target { subresource: None, ..t.clone() };
    let name = main.name()?.to_string();
    let (mut pod, rev) = api.read(t.resource, t.namespace.as_deref(), &name).await?;
    if let Some(on) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{on}\""
            ),
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    let cond = json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": crate::pod::status::now()});
    let conds = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
    conds.push(cond);
    pod["status"]["conditions"] = json!(conds);
    // The node and the PodScheduled condition in one write, if the pod is still as read.
    api.update_value(&main, pod, Some("binding"), Some(rev)).await?;
    Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
}

/// The autoscaling/v1 Scale of a Deployment or ReplicaSet.
fn scale_of(v: &Value) -> Value {
    let selector = v["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": v["metadata"]["name"], "namespace": v["metadata"]["namespace"], "uid": v["metadata"]["uid"],
            "resourceVersion": v["metadata"]["resourceVersion"], "creationTimestamp": v["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": v["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": v["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

async fn set_scale(api: &Arc<Api>, t: &Target, scale: &Value) -> ApiResult<Value> {
    let replicas =
        scale["spec"]["replicas"].as_i64().ok_or_else(|| ApiError::bad_request("Scale: spec.replicas is required"))?;
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            t.name()?,
            &[("spec.replicas".into(), format!("Invalid value: {replicas}: must be greater than or equal to 0"))],
        ));
    }
    let main = Target { subresource: None, ..t.clone() };
    let expected = match scale["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty()) {
        Some(rv) => Some(parse_rv(rv)?),
        None => None,
    };
    let (mut obj, rev) = api.read(t.resource, t.namespace.as_deref(), main.name()?).await?;
    if expected.is_some_and(|e| e != rev) {
        return Err(ApiError::conflict(t.resource.plural, main.name()?));
    }
    obj["spec"]["replicas"] = json!(replicas);
    let updated = api.update_value(&main, obj, None, expected).await?;
    Ok(scale_of(&updated))
}
