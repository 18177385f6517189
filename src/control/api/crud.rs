//! Create, read, update, patch and delete: the verbs of every resource, over the store.
//!
//! Each object is stored without its resourceVersion; reading sets it from the store's
//! revision of the key. An update names the revision it read, and the store's compare-and-swap
//! refuses it (409 Conflict) if someone wrote in between: optimistic concurrency, no locks.
//! Deleting may take time: a pod on a node gets a deletionTimestamp and goes when its kubelet
//! has stopped it; an object with finalizers goes when the last finalizer is removed.

use std::sync::Arc;

use serde_json::{Value, json};

use super::objects;
use super::path::{Target, object_key};
use super::resources::{self, Resource};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use crate::control::store::{KeyValue, Revision, SharedStore, StoreError};

/// The API's state: the store, and a lock that serialises Service IP and port allocation.
pub struct Api {
    pub store: SharedStore,
    pub(super) alloc: tokio::sync::Mutex<()>,
    /// One store watch per resource, shared by the watches of all clients.
    pub(super) watches: super::watchcache::WatchCache,
}

/// Options of a list (and of the first part of a watch).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// At most this many items (0: all); a `continue` token then points at the rest.
    pub limit: usize,
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

/// Options of a delete (DeleteOptions and the query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// Namespaces that exist from the start and cannot be deleted.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// An object read from the store, with its resourceVersion set.
pub fn from_kv(kv: &KeyValue) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
    }
    Ok(v)
}

/// The bytes stored for an object: without resourceVersion (the store's revision is the truth).
fn to_stored(v: &Value) -> Vec<u8> {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

fn set_rv(v: &mut Value, rev: Revision) {
    v["metadata"]["resourceVersion"] = json!(rev.to_string());
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

/// A resourceVersion from a client: a number.
pub fn parse_rv(text: &str) -> ApiResult<Revision> {
    text.parse::<Revision>()
        .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}: expected a number")))
}

impl Api {
    pub fn new(store: SharedStore) -> Arc<Api> {
        let watches = super::watchcache::WatchCache::new(store.clone());
        Arc::new(Api { store, alloc: tokio::sync::Mutex::new(()), watches })
    }

    /// The object `name` of `resource` (in `namespace` when namespaced), with its revision.
    pub async fn read(&self, r: &Resource, namespace: Option<&str>, name: &str) -> ApiResult<(Value, Revision)> {
        let key = object_key(r, namespace, name);
        match self.store.get(&key).await.map_err(|e| ApiError::from_store(e, r.plural, name))? {
            Some(kv) => Ok((from_kv(&kv)?, kv.mod_revision)),
            None => Err(ApiError::not_found(r.plural, name)),
        }
    }

    pub async fn get(&self, t: &Target) -> ApiResult<Value> {
        Ok(self.read(t.resource, t.namespace.as_deref(), t.name()?).await?.0)
    }

    /// List the objects under `t` (one namespace, or all) that match the selectors.
    pub async fn list(&self, t: &Target, opts: &ListOptions) -> ApiResult<ListPage> {
        let r = t.resource;
        let prefix = t.key();
        let mut start = match &opts.continue_token {
            Some(tok) => Some(decode_continue(tok)?),
            None => None,
        };
        let (mut items, mut revision) = (Vec::new(), 0);
        loop {
            let batch = if opts.limit == 0 { 0 } else { (opts.limit - items.len()).max(100) };
            let page = self
                .store
                .list(&prefix, start.as_deref(), batch)
                .await
                .map_err(|e| ApiError::from_store(e, r.plural, ""))?;
            if revision == 0 {
                revision = page.revision;
            }
            for kv in &page.items {
                start = Some(kv.key.clone());
                let v = from_kv(kv)?;
                if matches(r, opts, &v) {
                    items.push(v);
                    if opts.limit > 0 && items.len() == opts.limit {
                        let more = page.more || kv.key != page.items.last().map(|l| l.key.clone()).unwrap_or_default();
                        let token = more.then(|| encode_continue(&kv.key));
                        return Ok(ListPage { items, revision, continue_token: token });
                    }
                }
            }
            if !page.more {
                return Ok(ListPage { items, revision, continue_token: None });
            }
        }
    }

    /// Create the object in `body` under `t`.
    pub async fn create(&self, t: &Target, body: &[u8], strict: bool, dry_run: bool) -> ApiResult<Value> {
        let r = t.resource;
        let obj = objects::decode(r, body, strict)?;
        self.create_value(t, obj, dry_run).await
    }

    /// Create an already decoded object (also used by the server's own bootstrapping).
    pub async fn create_value(&self, t: &Target, mut obj: Value, dry_run: bool) -> ApiResult<Value> {
        let r = t.resource;
        Self::place(t, &mut obj)?;
        self.admit_to_namespace(t, &obj).await?;
        let generate = obj["metadata"]["generateName"].as_str().unwrap_or_default().to_string();
        let fixed = !name_of(&obj).is_empty();
        let meta =
            obj["metadata"].as_object_mut().ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        for owned in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"]
        {
            meta.remove(owned);
        }
        meta.insert("uid".into(), json!(crate::node::agent::new_uid()));
        meta.insert("creationTimestamp".into(), json!(crate::pod::status::now()));
        if objects::has_generation(r) {
            meta.insert("generation".into(), json!(1));
        }
        if r.has_subresource("status") {
            // Status is written by controllers and kubelets, not by whoever creates the object.
            obj.as_object_mut().map(|m| m.remove("status"));
        }
        for attempt in 0..5 {
            if !fixed && !generate.is_empty() {
                obj["metadata"]["name"] = json!(format!("{generate}{}", random_suffix()));
            }
            let mut candidate = obj.clone();
            super::defaults::apply(r.kind, &mut candidate);
            initial_status(r, &mut candidate);
            let _guard = self.allocate(r, &mut candidate, None).await?;
            objects::validate(r, &candidate)?;
            if dry_run {
                return Ok(candidate);
            }
            let name = name_of(&candidate).to_string();
            let key = object_key(r, t.namespace.as_deref(), &name);
            match self.store.create(&key, to_stored(&candidate)).await {
                Ok(rev) => {
                    set_rv(&mut candidate, rev);
                    return Ok(candidate);
                }
                Err(StoreError::AlreadyExists(_)) if !fixed && attempt < 4 => continue,
                Err(e) => return Err(ApiError::from_store(e, r.plural, &name)),
            }
        }
        Err(ApiError::internal("could not find a free name for generateName"))
    }

    /// Namespace and name of an object against the request's: fill in, or refuse a mismatch.
    fn place(t: &Target, obj: &mut Value) -> ApiResult<()> {
        let r = t.resource;
        let meta = &mut obj["metadata"];
        if r.namespaced {
            let ns = t.namespace.clone().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{} are namespaced: POST to /namespaces/NAMESPACE/{}",
                    r.plural, r.plural
                ))
            })?;
            match meta["namespace"].as_str() {
                None | Some("") => meta["namespace"] = json!(ns),
                Some(given) if given != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                Some(_) => {}
            }
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        if let (Some(want), Some(got)) = (&t.name, obj["metadata"]["name"].as_str()) {
            if want != got {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({got}) does not match the name on the URL ({want})"
                )));
            }
        }
        Ok(())
    }

    /// A Service's ClusterIP and NodePorts (kept from `old` on an update), under the allocation
    /// lock, which the caller holds until the Service is stored. Other kinds: nothing.
    async fn allocate(
        &self,
        r: &Resource,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<Option<tokio::sync::MutexGuard<'_, ()>>> {
        if r.kind != "Service" {
            return Ok(None);
        }
        let guard = self.alloc.lock().await;
        super::alloc::assign(self, obj, old).await?;
        Ok(Some(guard))
    }

    /// Namespace lifecycle, as its admission plugin does it: new objects only in a namespace that
    /// exists and is not being deleted. (Updates are not checked: the namespace's own clean-up
    /// removes finalizers from the objects it is deleting.)
    async fn admit_to_namespace(&self, t: &Target, obj: &Value) -> ApiResult<()> {
        let Some(ns) = t.namespace.as_deref().filter(|_| t.resource.namespaced) else { return Ok(()) };
        let (nso, _) = self.read(namespaces(), None, ns).await?;
        if nso["status"]["phase"] == "Terminating" {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    t.resource.plural,
                    name_of(obj)
                ),
            ));
        }
        Ok(())
    }

    /// Replace the object (PUT), or its status (`sub` "status").
    pub async fn update(&self, t: &Target, body: &[u8], strict: bool, sub: Option<&str>) -> ApiResult<Value> {
        let new = objects::decode(t.resource, body, strict)?;
        let expected = match new["metadata"]["resourceVersion"].as_str() {
            Some(rv) if !rv.is_empty() => Some(parse_rv(rv)?),
            _ => None,
        };
        self.update_value(t, new, sub, expected).await
    }

    /// Replace with an already decoded object. `sub`: None (the object), "status" (its status
    /// only) or "binding" (a pod's node and conditions). `expected`: the revision the client read
    /// (a Conflict if the object has changed since); None retries on conflicts (an unconditional
    /// update, or a patch applied again to the newer object).
    pub async fn update_value(
        &self,
        t: &Target,
        new: Value,
        sub: Option<&str>,
        expected: Option<Revision>,
    ) -> ApiResult<Value> {
        let r = t.resource;
        let name = t.name()?.to_string();
        let mut new = new;
        Self::place(t, &mut new)?;
        for _ in 0..10 {
            let (old, rev) = match self.read(r, t.namespace.as_deref(), &name).await {
                Ok(found) => found,
                Err(e) if e.code == 404 && sub.is_none() && creates_on_update(r) => {
                    return self.create_value(t, new.clone(), false).await;
                }
                Err(e) => return Err(e),
            };
            if expected.is_some_and(|want| want != rev) {
                return Err(ApiError::conflict(r.plural, &name));
            }
            let mut merged = merge_update(r, sub, &old, &new)?;
            super::defaults::apply(r.kind, &mut merged);
            let _guard = self.allocate(r, &mut merged, Some(&old)).await?;
            objects::validate(r, &merged)?;
            let key = object_key(r, t.namespace.as_deref(), &name);
            // The last finalizer removed from an object being deleted: it goes now.
            let off_node = r.kind != "Pod" || merged["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
            if merged["metadata"]["deletionTimestamp"].is_string() && finalizers(&merged).is_empty() && off_node {
                return match self.store.delete(&key, Some(rev)).await {
                    Ok((drev, _)) => {
                        set_rv(&mut merged, drev);
                        Ok(merged)
                    }
                    Err(StoreError::Conflict { .. }) if expected.is_none() => continue,
                    Err(e) => Err(ApiError::from_store(e, r.plural, &name)),
                };
            }
            match self.store.update(&key, to_stored(&merged), rev).await {
                Ok(nrev) => {
                    set_rv(&mut merged, nrev);
                    return Ok(merged);
                }
                Err(StoreError::Conflict { .. }) if expected.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, r.plural, &name)),
            }
        }
        Err(ApiError::conflict(r.plural, &name))
    }

    /// PATCH: apply the patch to the current object and store it; retried on a conflict unless
    /// the patch itself names a resourceVersion.
    pub async fn patch(
        &self,
        t: &Target,
        body: &[u8],
        ty: super::patch::PatchType,
        strict: bool,
        sub: Option<&str>,
    ) -> ApiResult<Value> {
        let r = t.resource;
        let name = t.name()?.to_string();
        for _ in 0..10 {
            let (current, rev) = self.read(r, t.namespace.as_deref(), &name).await?;
            let patched = super::patch::apply(r, &current, body, ty)
                .map_err(|e| ApiError::from_patch(&e, &format!("{} {name:?}", r.plural)))?;
            let pinned = match patched["metadata"]["resourceVersion"].as_str() {
                Some(rv) if rv != rev.to_string() => return Err(ApiError::conflict(r.plural, &name)),
                _ => false,
            };
            let bytes = serde_json::to_vec(&patched).map_err(|e| ApiError::internal(e.to_string()))?;
            let decoded = objects::decode(r, &bytes, strict)?;
            match self.update_value(t, decoded, sub, Some(rev)).await {
                Err(e) if e.reason == "Conflict" && !pinned => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(r.plural, &name))
    }

    /// DELETE one object. Pods on a node and objects with finalizers are marked (a
    /// deletionTimestamp) and go later; the rest go now. Answers the object.
    pub async fn delete(self: &Arc<Self>, t: &Target, opts: &DeleteOptions) -> ApiResult<Value> {
        if t.resource.kind == "Namespace" {
            let (obj, rev) = self.read(t.resource, None, t.name()?).await?;
            check_preconditions(&obj, rev, opts)?;
            return self.delete_namespace(obj, rev).await;
        }
        self.delete_object(t, opts).await
    }

    /// DELETE of anything but a namespace.
    async fn delete_object(&self, t: &Target, opts: &DeleteOptions) -> ApiResult<Value> {
        let r = t.resource;
        let name = t.name()?.to_string();
        let key = object_key(r, t.namespace.as_deref(), &name);
        for _ in 0..10 {
            let (mut obj, rev) = self.read(r, t.namespace.as_deref(), &name).await?;
            check_preconditions(&obj, rev, opts)?;
            let on_node = r.kind == "Pod" && obj["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
            let grace = match opts.grace_period {
                Some(g) => g.max(0),
                None if on_node => obj["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30),
                None => 0,
            };
            let graceful = on_node && grace > 0;
            if graceful || !finalizers(&obj).is_empty() {
                let already = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
                if obj["metadata"]["deletionTimestamp"].is_string() && already.is_some_and(|a| a <= grace) {
                    return Ok(obj);
                }
                let when = crate::pod::status::timestamp_now()
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(grace))
                    .unwrap_or_else(|_| crate::pod::status::timestamp_now());
                obj["metadata"]["deletionTimestamp"] = json!(when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                if opts.dry_run {
                    return Ok(obj);
                }
                match self.store.update(&key, to_stored(&obj), rev).await {
                    Ok(nrev) => {
                        set_rv(&mut obj, nrev);
                        return Ok(obj);
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, r.plural, &name)),
                }
            }
            if opts.dry_run {
                return Ok(obj);
            }
            match self.store.delete(&key, Some(rev)).await {
                Ok((drev, _)) => {
                    set_rv(&mut obj, drev);
                    return Ok(obj);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, r.plural, &name)),
            }
        }
        Err(ApiError::conflict(r.plural, &name))
    }

    /// DELETE a collection: every object the selectors match. Answers the deleted objects.
    pub async fn delete_collection(
        self: &Arc<Self>,
        t: &Target,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Value>> {
        let page = self.list(t, &ListOptions { limit: 0, continue_token: None, ..list.clone() }).await?;
        let mut out = Vec::new();
        for item in page.items {
            let mut one = t.clone();
            one.namespace = item["metadata"]["namespace"].as_str().map(String::from).or(t.namespace.clone());
            one.name = Some(name_of(&item).to_string());
            match self.delete(&one, opts).await {
                Ok(v) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A namespace goes Terminating; its objects are deleted, then the namespace itself.
    async fn delete_namespace(self: &Arc<Self>, mut ns: Value, rev: Revision) -> ApiResult<Value> {
        let name = name_of(&ns).to_string();
        if SYSTEM_NAMESPACES.contains(&name.as_str()) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            ));
        }
        if ns["status"]["phase"] != "Terminating" {
            ns["metadata"]["deletionTimestamp"] = json!(crate::pod::status::now());
            ns["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            ns["status"]["phase"] = json!("Terminating");
            let key = object_key(namespaces(), None, &name);
            let nrev = self
                .store
                .update(&key, to_stored(&ns), rev)
                .await
                .map_err(|e| ApiError::from_store(e, "namespaces", &name))?;
            set_rv(&mut ns, nrev);
            let api = self.clone();
            tokio::spawn(async move { api.purge_namespace(&name).await });
        }
        Ok(ns)
    }

    /// The namespace controller's job, done by the server: delete everything in a terminating
    /// namespace, then the namespace.
    async fn purge_namespace(self: &Arc<Self>, ns: &str) {
        let force = DeleteOptions { grace_period: Some(0), ..Default::default() };
        for _ in 0..50 {
            let mut left = 0;
            for r in resources::RESOURCES.iter().filter(|r| r.namespaced) {
                let t = Target { resource: r, namespace: Some(ns.to_string()), name: None, subresource: None };
                if let Ok(page) = self.list(&t, &ListOptions::default()).await {
                    for item in page.items {
                        left += 1;
                        let one = Target { name: Some(name_of(&item).to_string()), ..t.clone() };
                        // Finalizers that nobody will remove here are dropped.
                        if !finalizers(&item).is_empty() {
                            let mut stripped = item.clone();
                            stripped["metadata"]["finalizers"] = json!([]);
                            let _ = self.update_value(&one, stripped, None, None).await;
                        }
                        let _ = self.delete_object(&one, &force).await;
                    }
                }
            }
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let key = object_key(namespaces(), None, ns);
        if let Err(e) = self.store.delete(&key, None).await {
            tracing::warn!("namespace {ns}: cannot remove it after its content: {e}");
        }
    }

    /// Create the namespaces every cluster has, if missing.
    pub async fn bootstrap(&self) -> ApiResult<()> {
        let nsr = namespaces();
        for ns in SYSTEM_NAMESPACES {
            let t = Target { resource: nsr, namespace: None, name: None, subresource: None };
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self.create_value(&t, obj, false).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The namespaces resource (in the table, always).
fn namespaces() -> &'static Resource {
    resources::find("", "namespaces").expect("namespaces are in the resources table")
}

/// Does `v` pass the list's selectors?
pub fn matches(r: &Resource, opts: &ListOptions, v: &Value) -> bool {
    opts.labels.matches(&v["metadata"]["labels"]) && opts.fields.matches(r.kind, v)
}

fn finalizers(v: &Value) -> Vec<Value> {
    v["metadata"]["finalizers"].as_array().cloned().unwrap_or_default()
}

/// Kinds a PUT may create (as upstream allows for them).
fn creates_on_update(r: &Resource) -> bool {
    matches!(r.kind, "Lease" | "Endpoints" | "EndpointSlice" | "Event")
}

fn check_preconditions(obj: &Value, rev: Revision, opts: &DeleteOptions) -> ApiResult<()> {
    if let Some(uid) = &opts.precondition_uid {
        let have = obj["metadata"]["uid"].as_str().unwrap_or_default();
        if uid != have {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
            ));
        }
    }
    if let Some(rv) = &opts.precondition_rv {
        if *rv != rev.to_string() {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {rev}"
                ),
            ));
        }
    }
    Ok(())
}

/// The object an update stores: the client's, with what the server owns kept from the old one.
fn merge_update(r: &Resource, sub: Option<&str>, old: &Value, new: &Value) -> ApiResult<Value> {
    if sub == Some("status") {
        let mut out = old.clone();
        out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        return Ok(out);
    }
    if sub == Some("binding") {
        // The scheduler's answer: the node, and the status conditions that say so.
        let mut out = old.clone();
        out["spec"]["nodeName"] = new["spec"]["nodeName"].clone();
        out["status"]["conditions"] = new["status"]["conditions"].clone();
        return Ok(out);
    }
    let mut out = new.clone();
    for owned in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        match old["metadata"].get(owned) {
            Some(v) => out["metadata"][owned] = v.clone(),
            None => {
                out["metadata"].as_object_mut().map(|m| m.remove(owned));
            }
        }
    }
    // Finalizers may only be removed while the object is being deleted, not added.
    if old["metadata"]["deletionTimestamp"].is_string() {
        let before = finalizers(old);
        if finalizers(&out).iter().any(|f| !before.contains(f)) {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "{} \"{}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                    r.kind,
                    name_of(old)
                ),
            ));
        }
    }
    if r.has_subresource("status") {
        out["status"] = old.get("status").cloned().unwrap_or(Value::Null);
        if out["status"].is_null() {
            out.as_object_mut().map(|m| m.remove("status"));
        }
    }
    if objects::has_generation(r) && old.get("spec") != out.get("spec") {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        out["metadata"]["generation"] = json!(g);
    }
    if r.kind == "Pod" {
        pod_update_allowed(old, &out)?;
    }
    Ok(out)
}

/// A pod's spec is fixed once created, but for container images and a few scheduling fields.
fn pod_update_allowed(old: &Value, new: &Value) -> ApiResult<()> {
    let strip = |v: &Value| {
        let mut s = v["spec"].clone();
        for list in ["containers", "initContainers"] {
            for c in s.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                c.as_object_mut().map(|m| m.remove("image"));
            }
        }
        if let Some(m) = s.as_object_mut() {
            for mutable in ["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"]
            {
                m.remove(mutable);
            }
            // The scheduler's binding sets nodeName once.
            if old["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
                m.remove("nodeName");
            }
        }
        s
    };
    let mut with_node = strip(new);
    if old["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        with_node.as_object_mut().map(|m| m.remove("nodeName"));
    }
    if strip(old) != with_node {
        return Err(ApiError::invalid(
            "Pod",
            name_of(old),
            &[(
                "spec".into(),
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, \
                 `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to \
                 existing tolerations) or `spec.terminationGracePeriodSeconds`"
                    .into(),
            )],
        ));
    }
    Ok(())
}

/// The status a new object starts with.
fn initial_status(r: &Resource, obj: &mut Value) {
    if r.kind == "Pod" {
        let qos = serde_json::from_value::<k8s_openapi::api::core::v1::PodSpec>(obj["spec"].clone())
            .map(|s| crate::pod::qos::class(&s).to_string())
            .unwrap_or_else(|_| "BestEffort".into());
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }
}

/// Five characters of generateName's alphabet (no vowels, no look-alikes).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut b = [0u8; 5];
    if !crate::primitives::random::fill(&mut b) {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        b = [(t >> 3) as u8, (t >> 11) as u8, (t >> 19) as u8, (t >> 27) as u8, (t >> 35) as u8];
    }
    b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect()
}

fn encode_continue(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"k": key}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<String> {
    use base64::Engine as _;
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    v["k"].as_str().map(String::from).ok_or_else(bad)
}
