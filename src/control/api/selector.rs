//! Label and field selectors: which objects a list or a watch returns.
//!
//! Labels are the glue of Kubernetes: a Service or a ReplicaSet finds its pods by a label
//! selector (`app=web,tier in (front,edge),!canary`). Field selectors filter on a few fields the
//! server knows (`spec.nodeName=vm1`: how a kubelet watches only its own pods).

use serde_json::Value;

use super::status::{ApiError, ApiResult};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<(String, Op)>);

impl LabelSelector {
    pub fn parse(text: &str) -> ApiResult<LabelSelector> {
        let mut reqs = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(requirement(part).ok_or_else(|| {
                ApiError::bad_request(format!("unable to parse requirement {part:?} of label selector {text:?}"))
            })?);
        }
        Ok(LabelSelector(reqs))
    }

    /// From a metav1.LabelSelector (matchLabels, matchExpressions), as controllers hold them.
    pub fn from_object(sel: &Value) -> ApiResult<LabelSelector> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push((k.clone(), Op::Eq(v.as_str().unwrap_or_default().to_string())));
            }
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> =
                e["values"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
            let op = match e["operator"].as_str().unwrap_or_default() {
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::NotExists,
                other => {
                    return Err(ApiError::bad_request(format!("{other:?} is not a valid label selector operator")));
                }
            };
            reqs.push((key, op));
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Does an object with these labels (`metadata.labels`, may be null) match?
    pub fn matches(&self, labels: &Value) -> bool {
        self.0.iter().all(|(key, op)| {
            let v = labels.get(key).and_then(Value::as_str);
            match op {
                Op::Eq(want) => v == Some(want.as_str()),
                Op::NotEq(want) => v != Some(want.as_str()),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Gt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|x| x > *n),
                Op::Lt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|x| x < *n),
            }
        })
    }
}

/// Split at commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

fn requirement(part: &str) -> Option<(String, Op)> {
    if let Some(key) = part.strip_prefix('!') {
        return valid_key(key.trim()).then(|| (key.trim().to_string(), Op::NotExists));
    }
    for (sym, make) in [("!=", 0), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
        if let Some((k, v)) = part.split_once(sym) {
            let (k, v) = (k.trim(), v.trim());
            if !valid_key(k) || v.contains(['(', ')', ' ', '!', '=']) {
                return None;
            }
            let op = match make {
                0 => Op::NotEq(v.to_string()),
                1 => Op::Eq(v.to_string()),
                2 => Op::Gt(v.parse().ok()?),
                _ => Op::Lt(v.parse().ok()?),
            };
            return Some((k.to_string(), op));
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim();
        let (negate, list) = if let Some(l) = rest.strip_prefix("notin") {
            (true, l)
        } else if let Some(l) = rest.strip_prefix("in") {
            (false, l)
        } else {
            return None;
        };
        let inner = list.trim().strip_prefix('(')?.strip_suffix(')')?;
        let values: Vec<String> = inner.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if !valid_key(key) || values.is_empty() {
            return None;
        }
        return Some((key.to_string(), if negate { Op::NotIn(values) } else { Op::In(values) }));
    }
    valid_key(part).then(|| (part.to_string(), Op::Exists))
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

/// A parsed field selector: `field=value` and `field!=value`, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parse, accepting only the fields `kind` supports (as the real server does).
    pub fn parse(text: &str, kind: &str) -> ApiResult<FieldSelector> {
        let mut reqs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid field selector {part:?}: expected field=value")));
            };
            let field = field.trim();
            if json_path(kind, field).is_none() {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field} (for {kind}: {})",
                    supported(kind).join(", ")
                )));
            }
            reqs.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, kind: &str, obj: &Value) -> bool {
        self.0.iter().all(|(field, equal, want)| {
            let got = json_path(kind, field).and_then(|p| obj.pointer(&p)).map(value_text).unwrap_or_default();
            (got == *want) == *equal
        })
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The fields each kind can be selected by (besides metadata.name and metadata.namespace).
fn supported(kind: &str) -> Vec<&'static str> {
    let mut s = vec!["metadata.name", "metadata.namespace"];
    s.extend_from_slice(match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" | "Job" => &["status.replicas", "status.successful"],
        _ => &[],
    });
    s
}

/// The JSON pointer of a supported field.
fn json_path(kind: &str, field: &str) -> Option<String> {
    if !supported(kind).contains(&field) {
        return None;
    }
    let field = if field == "source" { "source.component" } else { field };
    Some(format!("/{}", field.replace('.', "/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let l = json!({"app": "web", "tier": "front", "n": "7"});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("tier in (front, edge)"));
        assert!(!m("tier notin (front,edge)"));
        assert!(m("canary notin (yes)"));
        assert!(m("!canary"));
        assert!(!m("!app"));
        assert!(m("n>5,n<8"));
        assert!(!m("missing in (x)"));
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
        let from = LabelSelector::from_object(
            &json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
        )
        .unwrap();
        assert!(from.matches(&l));
        assert!(!from.matches(&json!({"app": "web"})));
        assert!(!LabelSelector::parse("app=web").unwrap().matches(&Value::Null));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {"nodeName": "vm1"}, "status": {"phase": "Running"}});
        let m = |s: &str| FieldSelector::parse(s, "Pod").unwrap().matches("Pod", &pod);
        assert!(m("spec.nodeName=vm1"));
        assert!(m("metadata.name=a,status.phase!=Pending"));
        assert!(!m("spec.nodeName="));
        assert!(FieldSelector::parse("spec.nodeName=", "Pod").unwrap().matches("Pod", &json!({"spec": {}})));
        let e = FieldSelector::parse("spec.bogus=1", "Pod").unwrap_err();
        assert!(e.message.contains("field label not supported: spec.bogus"), "{}", e.message);
        assert!(FieldSelector::parse("spec.nodeName=x", "Service").is_err());
    }
}
