//! How objects and lists go out: as they are, or as a Table when kubectl asks for one.
//!
//! `kubectl get` sends `Accept: application/json;as=Table;g=meta.k8s.io;v=v1, application/json`:
//! the server prints (columns and cells) and kubectl only lays the table out. A watch for a
//! table sends one-row tables; only the first carries the column definitions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::resources::Resource;
use super::table::{IncludeObject, table, wants_table};
use super::watch::Render;

fn include(q: &HashMap<String, String>) -> IncludeObject {
    IncludeObject::from_query(q.get("includeObject").map(String::as_str))
}

/// A list response: the list, or its Table.
pub fn list(r: &Resource, list: Value, accept: &str, q: &HashMap<String, String>) -> Value {
    if !wants_table(accept) {
        return list;
    }
    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    table(r, items, include(q), &list["metadata"], SystemTime::now())
}

/// A single object, or its one-row Table.
pub fn one(r: &Resource, v: Value, accept: &str, q: &HashMap<String, String>) -> Value {
    if !wants_table(accept) {
        return v;
    }
    let meta = serde_json::json!({"resourceVersion": v["metadata"]["resourceVersion"]});
    table(r, std::slice::from_ref(&v), include(q), &meta, SystemTime::now())
}

/// For a watch that asks for tables: each event's object as a one-row Table.
pub fn watch_renderer(r: &'static Resource, accept: &str, q: &HashMap<String, String>) -> Option<Render> {
    if !wants_table(accept) {
        return None;
    }
    let inc = include(q);
    Some(Arc::new(move |v: &Value, first: bool| {
        let meta = serde_json::json!({"resourceVersion": v["metadata"]["resourceVersion"]});
        let mut t = table(r, std::slice::from_ref(v), inc, &meta, SystemTime::now());
        if !first {
            t.as_object_mut().map(|m| m.remove("columnDefinitions"));
        }
        t
    }))
}
