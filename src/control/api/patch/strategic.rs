//! Strategic merge patch: a JSON merge patch that knows which lists to merge item by item.
//!
//! kubectl sends it for `apply`, `edit`, `set image` and `patch`. Objects merge key by key and
//! `null` deletes a key, as in a JSON merge patch; but a list tagged "merge" (containers, env,
//! ports, ...) merges its items by their merge key instead of being replaced. Directives steer it:
//! `$patch: replace|delete` (on an object or a list item), `$retainKeys` (drop the keys not listed),
//! `$deleteFromPrimitiveList/<list>` (remove values) and `$setElementOrder/<list>` (the order).
//! This follows the API server's algorithm (apimachinery strategicpatch, MergeParallelList on).

use serde_json::{Map, Value};

mod lists;

use super::PatchError;
use super::schema::{self, Type};
use lists::{merge_list_field, set_element_order};

type Object = Map<String, Value>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Apply `patch` to `original` (objects of type `ty`) and return the new object.
pub(super) fn merge(original: Object, patch: Object, ty: &'static Type) -> Result<Object, PatchError> {
    let mut merged = merge_object(original, patch, Some(ty), "")?;
    strip_directives(&mut merged);
    Ok(merged)
}

/// `a.b` for a key under `path` (the root's path is "").
fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// The path of the item of a merged list: `spec.containers[name=web]`.
fn item_path(path: &str, merge_key: &str, value: &Value) -> String {
    match value {
        Value::String(s) => format!("{path}[{merge_key}={s}]"),
        other => format!("{path}[{merge_key}={other}]"),
    }
}

fn merge_object(
    mut original: Object,
    mut patch: Object,
    ty: Option<&'static Type>,
    path: &str,
) -> Result<Object, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            // Use the patch as the whole new object.
            Some("replace") => Ok(patch),
            // The object becomes empty.
            Some("delete") => Ok(Object::new()),
            _ => Err(PatchError::bad_directive(path, &directive, "an object takes `$patch: replace` or `delete`")),
        };
    }
    retain_keys(&mut original, &mut patch, path)?;
    set_element_order(&mut original, &mut patch, ty, path)?;

    // Deletions from primitive lists go last: after the list's own additions.
    let (deletions, changes): (Vec<_>, Vec<_>) =
        patch.into_iter().partition(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for (key, value) in changes.into_iter().chain(deletions) {
        let (key, deletion_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (directive_field(&key, DELETE_FROM_PRIMITIVE_LIST, path)?, true)
        } else {
            (key, false)
        };
        let at = child(path, &key);
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.remove(&key) else {
            // A new key takes the patch's value (without the directives and nulls in it);
            // a deletion from a list that is not there does nothing.
            if !deletion_list && let Some(value) = without_directives(without_nulls(value)) {
                original.insert(key, value);
            }
            continue;
        };
        let field = schema::field(ty, &key);
        let merged = match (current, value) {
            (Value::Object(current), Value::Object(value)) => {
                Some(Value::Object(merge_object(current, value, field.ty, &at)?))
            }
            (Value::Array(current), Value::Array(value)) => {
                Some(Value::Array(merge_list_field(current, value, field, deletion_list, &at)?))
            }
            (current, value) if deletion_list && json_type(&current) != json_type(&value) => Some(current),
            (current, value) if json_type(&current) != json_type(&value) => without_directives(without_nulls(value)),
            (_, value) => Some(value),
        };
        if let Some(merged) = merged {
            original.insert(key, merged);
        }
    }
    Ok(original)
}

/// `$retainKeys: [a, b]`: every key of the original not listed is dropped; the patch may only set
/// listed keys.
fn retain_keys(original: &mut Object, patch: &mut Object, path: &str) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(retain) = retain else {
        return Err(PatchError::format(path, "$retainKeys must be a list of field names"));
    };
    let listed = |key: &str| retain.iter().any(|r| r.as_str() == Some(key));
    for (key, value) in patch.iter() {
        let directive = key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !value.is_null() && !directive && !listed(key) {
            return Err(PatchError::format(
                path,
                format!("the patch sets {key:?}, which its $retainKeys list does not name"),
            ));
        }
    }
    original.retain(|key, _| listed(key));
    Ok(())
}

/// The field a `$directive/field` key is about.
fn directive_field(key: &str, prefix: &str, path: &str) -> Result<String, PatchError> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_string()),
        _ => Err(PatchError::format(path, format!("{key:?} is not of the form {prefix}/<field>"))),
    }
}

/// The JSON types the algorithm tells apart (integers and floats differ, as in Go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Null,
    Bool,
    Int,
    Float,
    String,
    List,
    Object,
}

fn json_type(v: &Value) -> JsonType {
    match v {
        Value::Null => JsonType::Null,
        Value::Bool(_) => JsonType::Bool,
        Value::Number(n) if n.is_f64() => JsonType::Float,
        Value::Number(_) => JsonType::Int,
        Value::String(_) => JsonType::String,
        Value::Array(_) => JsonType::List,
        Value::Object(_) => JsonType::Object,
    }
}

fn type_name(v: &Value) -> &'static str {
    match json_type(v) {
        JsonType::Null => "null",
        JsonType::Bool => "a boolean",
        JsonType::Int | JsonType::Float => "a number",
        JsonType::String => "a string",
        JsonType::List => "a list",
        JsonType::Object => "an object",
    }
}

/// A value taken from the patch as it is: objects carrying `$patch` are dropped (None for the
/// value itself), recursively.
fn without_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) if map.contains_key(DIRECTIVE) => None,
        Value::Object(map) => {
            Some(Value::Object(map.into_iter().filter_map(|(k, v)| without_directives(v).map(|v| (k, v))).collect()))
        }
        Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(without_directives).collect())),
        other => Some(other),
    }
}

/// A value taken from the patch as it is has no keys set to null (they would delete nothing).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Directive keys left in values copied whole from the patch (a list that is replaced, an item
/// appended): the API server's typed decoding drops such unknown fields; so do we.
fn strip_directives(object: &mut Object) {
    object.retain(|k, _| {
        !(k == DIRECTIVE
            || k == RETAIN_KEYS
            || k.starts_with(&format!("{SET_ELEMENT_ORDER}/"))
            || k.starts_with(&format!("{DELETE_FROM_PRIMITIVE_LIST}/")))
    });
    for value in object.values_mut() {
        strip_in(value);
    }
}

fn strip_in(value: &mut Value) {
    match value {
        Value::Object(map) => strip_directives(map),
        Value::Array(items) => items.iter_mut().for_each(strip_in),
        _ => {}
    }
}
