//! PATCH: change part of an object by sending only the change.
//!
//! The request's Content-Type names the patch language. A JSON patch (RFC 6902) is a list of
//! operations (`add`, `remove`, `replace`, `test`, ...) at JSON-pointer paths. A JSON merge patch
//! (RFC 7386) is a partial object: its keys replace the object's, `null` deletes. A *strategic*
//! merge patch (kubectl's default) is a merge patch that merges lists such as `containers` item
//! by item. Server-side apply (`apply-patch+yaml`) needs field ownership, which we do not keep.

mod schema;
mod strategic;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::control::api::resources::Resource;

/// The patch languages, by their Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902): `kubectl patch --type json`.
    Json,
    /// `application/merge-patch+json` (RFC 7386): `kubectl label`, `annotate`, `scale`,
    /// `patch --type merge`.
    Merge,
    /// `application/strategic-merge-patch+json`: `kubectl apply`, `edit`, `set image`, `patch`.
    Strategic,
    /// `application/apply-patch+yaml`: `kubectl apply --server-side` (not supported).
    Apply,
}

impl PatchType {
    /// The patch type of a request's Content-Type (parameters such as `charset` are ignored).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The Content-Type of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// The API server refuses JSON patches with more operations than this (413).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// What is wrong with a patch. [`PatchError::status`] is the HTTP status to answer with.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not JSON.
    #[error("the patch is not valid JSON: {0}")]
    BadJson(#[source] serde_json::Error),
    /// A merge patch must be a JSON object.
    #[error("a {language} must be a JSON object, not {found}")]
    NotAnObject { language: &'static str, found: &'static str },
    /// A JSON patch must be a list of operations.
    #[error("the JSON patch is not a list of operations ({{\"op\": ..., \"path\": ..., ...}}): {0}")]
    NotOperations(#[source] serde_json::Error),
    #[error("the JSON patch has {0} operations; at most {MAX_JSON_PATCH_OPERATIONS} are allowed")]
    TooManyOperations(usize),
    /// One operation of a JSON patch failed (a `test` that did not match, a missing path, ...);
    /// no operation is applied.
    #[error("JSON patch operation {index} ({op} {path}) failed: {reason}")]
    OperationFailed { index: usize, op: &'static str, path: String, reason: String },
    /// A directive of a strategic merge patch is malformed (`$retainKeys`, `$setElementOrder/..`,
    /// `$deleteFromPrimitiveList/..`).
    #[error("strategic merge patch at {}: {message}", at(path))]
    BadFormat { path: String, message: String },
    /// `$patch` has a value that cannot be used there.
    #[error("strategic merge patch at {}: unknown $patch directive {value}: {hint}", at(path))]
    BadDirective { path: String, value: String, hint: &'static str },
    /// An item of a list merged by key lacks the key (`containers` items need `name`).
    #[error("strategic merge patch at {}: an item does not have the merge key {key:?}", at(path))]
    MissingMergeKey { path: String, key: String },
    /// The patch's list and its `$setElementOrder` list disagree about the order.
    #[error(
        "strategic merge patch at {}: the order of the patch's list does not match its $setElementOrder list",
        at(path)
    )]
    OrderMismatch { path: String },
    /// The patch's value has a shape the object cannot take there (a list of lists, mixed items).
    #[error("strategic merge patch at {}: {message}", at(path))]
    Shape { path: String, message: String },
    /// The kind has no strategic merge patch (the real server says the same of custom resources).
    #[error("strategic merge patch is not supported for {0}; use `kubectl patch --type merge` or `--type json`")]
    StrategicUnsupported(String),
    /// Server-side apply needs field ownership (managedFields), which podlab does not keep.
    #[error(
        "server-side apply (application/apply-patch+yaml) is not supported by podlab's API server; \
         use client-side `kubectl apply` (without --server-side)"
    )]
    ApplyUnsupported,
}

/// "the object" for the root path, else the path.
fn at(path: &str) -> &str {
    if path.is_empty() { "the object" } else { path }
}

impl PatchError {
    /// The HTTP status the API server answers with: 400 for a patch it cannot read, 422 for one
    /// that cannot be applied to this object, 413 for too many operations, 415 for a patch type
    /// it does not serve. (Where the real server answers 500 for a strategic patch it cannot
    /// apply, we answer 422.)
    pub fn status(&self) -> u16 {
        match self {
            PatchError::BadJson(_)
            | PatchError::NotAnObject { .. }
            | PatchError::NotOperations(_)
            | PatchError::BadFormat { .. } => 400,
            PatchError::TooManyOperations(_) => 413,
            PatchError::StrategicUnsupported(_) | PatchError::ApplyUnsupported => 415,
            PatchError::OperationFailed { .. }
            | PatchError::BadDirective { .. }
            | PatchError::MissingMergeKey { .. }
            | PatchError::OrderMismatch { .. }
            | PatchError::Shape { .. } => 422,
        }
    }

    fn format(path: &str, message: impl Into<String>) -> Self {
        PatchError::BadFormat { path: path.to_string(), message: message.into() }
    }

    fn shape(path: &str, message: impl Into<String>) -> Self {
        PatchError::Shape { path: path.to_string(), message: message.into() }
    }

    fn bad_directive(path: &str, value: &Value, hint: &'static str) -> Self {
        PatchError::BadDirective { path: path.to_string(), value: value.to_string(), hint }
    }
}

/// Apply `patch` (a request body of type `ty`) to `current`, an object of `kind_resource`, and
/// return the new object. `current` is left as it was; on error nothing is applied.
pub fn apply(kind_resource: &Resource, current: &Value, patch: &[u8], ty: PatchType) -> Result<Value, PatchError> {
    match ty {
        PatchType::Json => json_patch(current, patch),
        PatchType::Merge => merge_patch(current, patch),
        PatchType::Strategic => strategic_merge_patch(kind_resource, current, patch),
        PatchType::Apply => Err(PatchError::ApplyUnsupported),
    }
}

/// RFC 6902: the operations in order, all or nothing.
fn json_patch(current: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let operations: json_patch::Patch = serde_json::from_slice(patch).map_err(PatchError::NotOperations)?;
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(operations.len()));
    }
    let mut doc = current.clone();
    json_patch::patch(&mut doc, &operations).map_err(|e| {
        let op = match operations.get(e.operation) {
            Some(json_patch::PatchOperation::Add(_)) => "add",
            Some(json_patch::PatchOperation::Remove(_)) => "remove",
            Some(json_patch::PatchOperation::Replace(_)) => "replace",
            Some(json_patch::PatchOperation::Move(_)) => "move",
            Some(json_patch::PatchOperation::Copy(_)) => "copy",
            Some(json_patch::PatchOperation::Test(_)) => "test",
            None => "operation",
        };
        let reason = match e.kind {
            json_patch::PatchErrorKind::TestFailed => "the value there is not the one tested for".to_string(),
            json_patch::PatchErrorKind::InvalidPointer => "the path does not exist in the object".to_string(),
            json_patch::PatchErrorKind::InvalidFromPointer => {
                "the \"from\" path does not exist in the object".to_string()
            }
            other => other.to_string(),
        };
        PatchError::OperationFailed { index: e.operation, op, path: e.path.to_string(), reason }
    })?;
    Ok(doc)
}

/// Parse a patch body that must be a JSON object (`null` counts as an empty one).
fn patch_object(patch: &[u8], language: &'static str) -> Result<Map<String, Value>, PatchError> {
    match serde_json::from_slice(patch).map_err(PatchError::BadJson)? {
        Value::Object(map) => Ok(map),
        Value::Null if language == STRATEGIC => Ok(Map::new()),
        other => Err(PatchError::NotAnObject { language, found: json_kind(&other) }),
    }
}

const MERGE: &str = "JSON merge patch";
const STRATEGIC: &str = "strategic merge patch";

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// RFC 7386, as the API server does it: a key set to null is deleted; an object merges into an
/// object; any other value (lists included) replaces, without the nulls inside it.
fn merge_patch(current: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let patch = patch_object(patch, MERGE)?;
    let mut doc = current.clone();
    let Value::Object(target) = &mut doc else {
        return Ok(pruned(Value::Object(patch)));
    };
    merge_into(target, patch);
    Ok(doc)
}

fn merge_into(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(&key);
            continue;
        }
        match (target.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(changes)) => merge_into(existing, changes),
            // An object over an object that is not one, or a list over an object: as is.
            (Some(existing), value) if existing.is_object() => *existing = value,
            (_, value) => {
                target.insert(key, pruned(value));
            }
        }
    }
}

/// A value from a merge patch without its null members (list items stay, even null ones).
fn pruned(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, pruned(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(pruned).collect()),
        other => other,
    }
}

fn strategic_merge_patch(resource: &Resource, current: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ty = schema::of(resource)
        .ok_or_else(|| PatchError::StrategicUnsupported(format!("{} ({})", resource.plural, resource.api_version())))?;
    let patch = patch_object(patch, STRATEGIC)?;
    let Value::Object(original) = current.clone() else {
        return Err(PatchError::shape("", "the object to patch is not a JSON object"));
    };
    Ok(Value::Object(strategic::merge(original, patch, ty)?))
}
