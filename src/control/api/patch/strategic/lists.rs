//! Lists in a strategic merge patch: merged item by item, then put in order.
//!
//! A list tagged "merge" takes the patch's items into the object's: items of objects are matched
//! by their merge key (`name` for containers) and merged, new ones added, `$patch: delete` ones
//! removed; lists of strings are merged as sets. The order is then rebuilt from the patch's order
//! (or `$setElementOrder`) and the server's order, as the API server does.

use serde_json::Value;

use super::{
    DIRECTIVE, JsonType, Object, SET_ELEMENT_ORDER, child, directive_field, item_path, json_type, merge_object,
    type_name, without_directives,
};
use crate::control::api::patch::PatchError;
use crate::control::api::patch::schema::{self, Field, Strategy, Type};

/// `$setElementOrder/<list>: [...]`: merge the patch's `<list>` (if any) into the original's, then
/// order the result: the listed items in the listed order, the server's other items kept where
/// they were relative to them.
pub(super) fn set_element_order(
    original: &mut Object,
    patch: &mut Object,
    ty: Option<&'static Type>,
    path: &str,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else { continue };
        let Value::Array(order) = order else {
            return Err(PatchError::format(path, format!("{key} must be a list")));
        };
        let name = directive_field(&key, SET_ELEMENT_ORDER, path)?;
        let at = child(path, &name);
        let current = list_at(original, &name, &at)?;
        let patch_list = list_at(patch, &name, &at)?;
        let field = schema::field(ty, &name);
        validate_order(patch_list.as_deref().unwrap_or_default(), &order, field.merge_key, &at)?;

        let mut server_order = current.clone().unwrap_or_default();
        let Some(kind) = element_kind(&server_order, patch_list.as_deref().unwrap_or_default(), &at)? else {
            // Both lists empty or absent: nothing to order.
            if let Some(list) = patch_list.or(current) {
                original.insert(name.clone(), Value::Array(list));
            }
            patch.remove(&name);
            continue;
        };
        let merged = match (current, patch_list) {
            (Some(current), None) => current,
            (None, Some(added)) => added.into_iter().filter_map(without_directives).collect(),
            (Some(current), Some(changes)) => {
                if field.strategy == Strategy::Merge && kind == JsonType::Object {
                    server_order = order_after_edits(&current, &changes, field.merge_key);
                }
                merge_list_field(current, changes, field, false, &at)?
            }
            (None, None) => continue,
        };
        let (listed, server_only) = partition(merged, &order, field.merge_key, &at)?;
        let ordered = normalize_order(listed, server_only, &order, &server_order, field.merge_key, kind, &at)?;
        original.insert(name.clone(), Value::Array(ordered));
        patch.remove(&name);
    }
    Ok(())
}

/// The API server orders a `$setElementOrder` list against the storage of the original list
/// *after* the merge edited it in place: a deletion shifts the items after it left, and an appended
/// item fills a slot freed so (until the storage is full). This replays those edits, so that the
/// server's own items (not in the patch) land where the real server puts them.
fn order_after_edits(current: &[Value], patch: &[Value], merge_key: &str) -> Vec<Value> {
    let mut storage = current.to_vec();
    let mut len = storage.len();
    let mut appended = Vec::new();
    let mut replace = false;
    for item in patch {
        match item.get(DIRECTIVE).and_then(Value::as_str) {
            Some("delete") => {
                let key = item.get(merge_key);
                while let Some(i) = storage[..len].iter().position(|c| c.get(merge_key) == key) {
                    for j in i..len - 1 {
                        storage[j] = storage[j + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some("replace") => replace = true,
            _ => {}
        }
    }
    if replace {
        // The list is then made of the patch's items, elsewhere: the storage keeps what it has.
        return storage;
    }
    for item in patch.iter().filter(|i| i.get(DIRECTIVE).is_none()) {
        let key = item.get(merge_key);
        if storage[..len].iter().chain(&appended).any(|c| c.get(merge_key) == key) {
            continue;
        }
        if len < storage.len() {
            storage[len] = item.clone();
            len += 1;
        } else {
            appended.push(item.clone());
        }
    }
    storage
}

/// The list at `key` of `object`, if there is one.
fn list_at(object: &Object, key: &str, path: &str) -> Result<Option<Vec<Value>>, PatchError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list.clone())),
        Some(other) => Err(PatchError::shape(path, format!("expected a list, found {}", type_name(other)))),
    }
}

/// The items of the patch's list (deletions aside) must come in the `$setElementOrder` order.
fn validate_order(patch_list: &[Value], order: &[Value], merge_key: &str, path: &str) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut kept = Vec::new();
    for item in patch_list {
        if merge_key.is_empty() {
            kept.push(item);
            continue;
        }
        let Value::Object(map) = item else {
            return Err(PatchError::shape(path, format!("expected an object item, found {}", type_name(item))));
        };
        if map.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
            kept.push(item);
        }
    }
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if matches!(kept[p], Value::Object(m) if m.contains_key(DIRECTIVE)) {
            p += 1;
            continue;
        }
        if same_merge_key(kept[p], &order[o], merge_key, path)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() {
        return Err(PatchError::OrderMismatch { path: path.to_string() });
    }
    Ok(())
}

fn same_merge_key(a: &Value, b: &Value, merge_key: &str, path: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(a == b);
    }
    Ok(merge_key_of(a, merge_key, path)? == merge_key_of(b, merge_key, path)?)
}

/// The merge key's value of a list item (which must be an object that has it).
fn merge_key_of<'a>(item: &'a Value, merge_key: &str, path: &str) -> Result<&'a Value, PatchError> {
    let Value::Object(map) = item else {
        return Err(PatchError::shape(path, format!("expected an object item, found {}", type_name(item))));
    };
    map.get(merge_key).ok_or_else(|| PatchError::MissingMergeKey { path: path.to_string(), key: merge_key.to_string() })
}

/// A list field present in both: merged when tagged "merge" (or for a deletion list), else
/// replaced by the patch's list.
pub(super) fn merge_list_field(
    current: Vec<Value>,
    patch: Vec<Value>,
    field: &Field,
    deletion_list: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if field.strategy == Strategy::Merge || deletion_list {
        merge_list(current, patch, field.ty, field.merge_key, deletion_list, path)
    } else {
        Ok(patch)
    }
}

fn merge_list(
    current: Vec<Value>,
    patch: Vec<Value>,
    ty: Option<&'static Type>,
    merge_key: &str,
    deletion_list: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let Some(kind) = element_kind(&current, &patch, path)? else { return Ok(current) };
    let (current, patch, merged) = if kind != JsonType::Object {
        if deletion_list {
            return Ok(current.into_iter().filter(|v| !patch.contains(v)).collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(current.len() + patch.len());
        for value in current.iter().chain(&patch) {
            if !merged.contains(value) {
                merged.push(value.clone());
            }
        }
        (current, patch, merged)
    } else {
        if merge_key.is_empty() {
            return Err(PatchError::shape(path, "cannot merge a list of objects that has no merge key"));
        }
        let (current, patch) = apply_item_directives(current, patch, merge_key, path)?;
        let merged = merge_items(current.clone(), &patch, ty, merge_key, path)?;
        (current, patch, merged)
    };
    let (in_patch, server_only) = partition(merged, &patch, merge_key, path)?;
    normalize_order(in_patch, server_only, &patch, &current, merge_key, kind, path)
}

/// Items with `$patch`: `delete` removes the item with that merge key; `replace` makes the
/// patch's other items the whole list. Returns the list to merge into and the plain items.
fn apply_item_directives(
    mut current: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let key = merge_key_of(&item, merge_key, path)?;
                current.retain(|c| c.get(merge_key) != Some(key));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::bad_directive(
                    path,
                    directive,
                    "merging lists cannot yet be specified in a patch",
                ));
            }
            _ => {
                return Err(PatchError::bad_directive(
                    path,
                    directive,
                    "a list item takes `$patch: delete` or `replace`",
                ));
            }
        }
    }
    Ok(if replace { (plain, Vec::new()) } else { (current, plain) })
}

/// Merge each patch item into the item of `current` with the same merge key, or append it.
fn merge_items(
    mut current: Vec<Value>,
    patch: &[Value],
    ty: Option<&'static Type>,
    merge_key: &str,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    for item in patch {
        let key = merge_key_of(item, merge_key, path)?;
        let at = item_path(path, merge_key, key);
        let found = current.iter().position(|c| c.get(merge_key) == Some(key));
        match (found, item) {
            (Some(i), Value::Object(changes)) => {
                let existing = match current[i].take() {
                    Value::Object(map) => map,
                    _ => Object::new(),
                };
                current[i] = Value::Object(merge_object(existing, changes.clone(), ty, &at)?);
            }
            _ => current.push(item.clone()),
        }
    }
    Ok(current)
}

/// Split `merged` into the items named in `by` (by merge key, or by value) and the others.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut named = Vec::with_capacity(merged.len());
    let mut others = Vec::new();
    for item in merged {
        let found = if merge_key.is_empty() {
            by.contains(&item)
        } else {
            let key = merge_key_of(&item, merge_key, path)?;
            by.iter().any(|b| b.get(merge_key) == Some(key))
        };
        if found { named.push(item) } else { others.push(item) }
    }
    Ok((named, others))
}

/// The order of a merged list: the patch's items in `patch_order`, the server-only items in
/// `server_order`, then the two interleaved so that each keeps its place relative to the other.
fn normalize_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: JsonType,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, kind, path)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind, path)?;
    Ok(interleave(server_only, patch_items, server_order, merge_key, kind))
}

/// Sort `items` by their position in `order` (stable; items not in `order` move forward, as in the
/// API server's insertion sort). Items still carrying `$patch: delete` go last.
fn sort_by_order(
    mut items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: JsonType,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let mut deleted = Vec::new();
    if kind == JsonType::Object {
        for item in items.iter().chain(order) {
            merge_key_of(item, merge_key, path)?;
        }
        let (kept, gone): (Vec<_>, Vec<_>) =
            items.into_iter().partition(|i| i.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"));
        items = kept;
        deleted = gone;
    }
    let less = |a: &Value, b: &Value| match (position(order, a, merge_key, kind), position(order, b, merge_key, kind)) {
        (Some(i), Some(j)) => i < j,
        _ => true,
    };
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(&items[j], &items[j - 1]) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
    items.extend(deleted);
    Ok(items)
}

/// Where `item` is in `list`: by merge key for objects, by value otherwise.
fn position(list: &[Value], item: &Value, merge_key: &str, kind: JsonType) -> Option<usize> {
    if kind == JsonType::Object {
        let key = item.get(merge_key);
        list.iter().position(|v| v.get(merge_key) == key)
    } else {
        list.iter().position(|v| v == item)
    }
}

/// Merge two sorted lists: a server-only item goes before a patch item only when both are in
/// `server_order` and it came first there.
fn interleave(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: JsonType,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, merge_key, kind), position(server_order, r, merge_key, kind)),
                (Some(i), Some(j)) if i < j
            ),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

/// The one type of the items of both lists (None when both are empty).
fn element_kind(a: &[Value], b: &[Value], path: &str) -> Result<Option<JsonType>, PatchError> {
    let mut kind = None;
    for item in a.iter().chain(b) {
        let t = json_type(item);
        if t == JsonType::List {
            return Err(PatchError::shape(path, "lists of lists are not supported"));
        }
        match kind {
            None => kind = Some(t),
            Some(k) if k != t => return Err(PatchError::shape(path, "the list's items are not all of one type")),
            Some(_) => {}
        }
    }
    Ok(kind)
}
