//! Kubernetes manifests: YAML files read into typed objects and checked like the API server does.
//!
//! A manifest describes objects you want to exist. Each object says which API it belongs to
//! (`apiVersion: v1`), what it is (`kind: Pod`), what it is called (`metadata`: name,
//! namespace, labels) and what it should look like (`spec`, `data` for a ConfigMap or a
//! Secret, `subsets` for the Endpoints of a Service without a selector). One file may hold several objects: YAML documents separated by `---` lines.
//!
//! The checks are strict, like `kubectl apply --validate=strict`. A lenient reader drops what
//! it does not know: `contianers:` or `imagePullPolcy:` vanish without a word, and the pod
//! runs, just not as written. That is the classic Kubernetes trap. Here every unknown field
//! (with the list of valid ones), wrong type and broken rule is reported, all at once, each
//! naming the file, the document, the object, the field path and the rule.
//! Defaults the API server would fill in are not applied here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::OnceLock;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EndpointAddress, EndpointPort, EnvVar, KeyToPath, LifecycleHandler, ObjectFieldSelector,
    PodSpec, Probe, ResourceFieldSelector, ResourceRequirements, ServicePort, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::quantity;

pub use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Secret, Service};

/// One object from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A pod: containers sharing namespaces, volumes and a lifecycle.
    Pod(Box<Pod>),
    /// A stable name and virtual IP in front of the pods its selector matches.
    Service(Box<Service>),
    /// Plain-text configuration mounted as files or passed as environment variables.
    ConfigMap(Box<ConfigMap>),
    /// Like a ConfigMap, for passwords and keys (`stringData` already merged into `data`).
    Secret(Box<Secret>),
    /// The addresses behind a Service without a selector (same name as the Service): written
    /// by hand for backends outside the cluster, where no controller can find them.
    Endpoints(Box<Endpoints>),
}

impl Object {
    /// The kind as written in manifests: `"Pod"`, `"Service"`, `"ConfigMap"`, `"Secret"` or
    /// `"Endpoints"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::Service(_) => "Service",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Endpoints(_) => "Endpoints",
        }
    }

    /// `metadata.name` (empty only for objects that failed validation).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, or `"default"` when unset.
    pub fn namespace(&self) -> &str {
        match self.metadata().namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => "default",
        }
    }

    fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Pod(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Endpoints(o) => &o.metadata,
        }
    }
}

/// One problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The YAML document, counting from 1 (`---` starts the next one).
    pub document: usize,
    /// `"Pod web"`, or `""` when the document does not say what it is.
    pub object: String,
    /// The field path inside the object, such as `spec.containers[1].name` (empty for the whole document).
    pub path: String,
    /// What is wrong, such as `duplicate "web"`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if !self.object.is_empty() {
            write!(f, " ({})", self.object)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Parse and validate every document of `text` (`source` names the file in errors).
///
/// Empty documents (only comments or `---`) are skipped. All problems are collected, not just
/// the first, and returned as one [`Error::Invalid`] with one line per problem, each
/// `SOURCE: document N (Kind name): path: message`.
pub fn parse(text: &str, source: &str) -> Result<Vec<Object>, Error> {
    let (objects, errors) = parse_documents(text);
    if errors.is_empty() {
        return Ok(objects);
    }
    let lines: Vec<String> = errors.iter().map(|e| format!("{source}: {e}")).collect();
    Err(Error::invalid(lines.join("\n")))
}

/// Read a manifest file and [`parse`] it; errors name the path.
pub fn load(path: &Path) -> Result<Vec<Object>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read manifest", path, e))?;
    parse(&text, &path.display().to_string())
}

// ---------------------------------------------------------------------------------------------
// Documents: split, YAML → JSON, kind, schema walk, typed object, rules.
// ---------------------------------------------------------------------------------------------

/// The supported kinds, all in the core group (`apiVersion: v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pod,
    Service,
    ConfigMap,
    Secret,
    Endpoints,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Pod, Kind::Service, Kind::ConfigMap, Kind::Secret, Kind::Endpoints];

    fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::Endpoints => "Endpoints",
        }
    }

    /// The JSON schema of the k8s-openapi type (with every referenced definition under `$defs`),
    /// generated once.
    fn schema(self) -> &'static Value {
        static SCHEMAS: [OnceLock<Value>; 5] = [const { OnceLock::new() }; 5];
        let generate: fn() -> Value = match self {
            Kind::Pod => schema_of::<Pod>,
            Kind::Service => schema_of::<Service>,
            Kind::ConfigMap => schema_of::<ConfigMap>,
            Kind::Secret => schema_of::<Secret>,
            Kind::Endpoints => schema_of::<Endpoints>,
        };
        SCHEMAS[self as usize].get_or_init(generate)
    }
}

fn schema_of<T: JsonSchema>() -> Value {
    SchemaGenerator::default().into_root_schema_for::<T>().to_value()
}

/// The supported kinds, as error messages list them.
const KINDS_TEXT: &str = "Pod, Service, ConfigMap, Secret or Endpoints";

/// Well-known kinds podlab does not run, with their API versions, for a helpful error.
const OTHER_KINDS: &[(&str, &str)] = &[
    ("Deployment", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"),
    ("Job", "batch/v1"),
    ("CronJob", "batch/v1"),
    ("Ingress", "networking.k8s.io/v1"),
    ("NetworkPolicy", "networking.k8s.io/v1"),
    ("Namespace", "v1"),
    ("ServiceAccount", "v1"),
    ("PersistentVolume", "v1"),
    ("PersistentVolumeClaim", "v1"),
    ("EndpointSlice", "discovery.k8s.io/v1"),
    ("LimitRange", "v1"),
    ("ResourceQuota", "v1"),
    ("ReplicationController", "v1"),
    ("List", "v1"),
    ("Role", "rbac.authorization.k8s.io/v1"),
    ("RoleBinding", "rbac.authorization.k8s.io/v1"),
    ("ClusterRole", "rbac.authorization.k8s.io/v1"),
    ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
];

/// One YAML document of the file, with the line it starts on.
struct Chunk<'a> {
    number: usize,
    first_line: usize,
    text: &'a str,
}

/// Split the file into documents at `---` lines, as kubectl does. (Handing the whole stream to
/// the YAML parser is not safe: after a syntax error it cannot find the next document.)
/// Comments and directives before the first `---` belong to the document that follows.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut pieces = Vec::new();
    let (mut start, mut start_line, mut offset, mut started) = (0, 1, 0, false);
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if is_separator(line) {
            if started {
                pieces.push((start_line, &text[start..offset]));
                (start, start_line) = (offset, index + 1);
            }
            started = true;
        } else if !is_blank(line) {
            started = true;
        }
        offset += line.len();
    }
    pieces.push((start_line, &text[start..]));
    pieces.into_iter().enumerate().map(|(i, (first_line, text))| Chunk { number: i + 1, first_line, text }).collect()
}

fn is_separator(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// A line without content: blank, a comment or a directive (`%YAML 1.2`).
fn is_blank(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#') || line.starts_with('%')
}

/// Collects the problems of one document, labelled with the document number and object.
struct Report<'a> {
    document: usize,
    object: String,
    errors: &'a mut Vec<FieldError>,
}

impl Report<'_> {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            document: self.document,
            object: self.object.clone(),
            path: path.into(),
            message: message.into(),
        });
    }
}

fn parse_documents(text: &str) -> (Vec<Object>, Vec<FieldError>) {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for chunk in split_documents(text) {
        let mut report = Report { document: chunk.number, object: String::new(), errors: &mut errors };
        let value = match read_yaml(&chunk) {
            Ok(Value::Null) => continue,
            Ok(value) => value,
            Err((path, message)) => {
                report.add(path, message);
                continue;
            }
        };
        if let Some(object) = read_object(value, &mut report) {
            objects.push(object);
        }
    }
    (objects, errors)
}

/// Parse one document into JSON data (what the API server sees), with YAML merge keys applied.
fn read_yaml(chunk: &Chunk<'_>) -> Result<Value, (String, String)> {
    let mut yaml = match serde_norway::from_str::<serde_norway::Value>(chunk.text) {
        Ok(yaml) => yaml,
        Err(_) => {
            // Parse again behind blank lines so that the positions in the message are file lines.
            let padded = format!("{}{}", "\n".repeat(chunk.first_line - 1), chunk.text);
            let err = match serde_norway::from_str::<serde_norway::Value>(&padded) {
                Err(err) => err,
                Ok(_) => return Err((String::new(), "invalid YAML".to_string())),
            };
            let mut message = format!("invalid YAML: {err}");
            if let Some(at) = err.location() {
                if !message.contains(" line ") {
                    message.push_str(&format!(" at line {} column {}", at.line(), at.column()));
                }
            }
            return Err((String::new(), message));
        }
    };
    yaml.apply_merge().map_err(|e| (String::new(), format!("invalid YAML merge key (<<): {e}")))?;
    yaml_to_json(yaml, "")
}

fn yaml_to_json(yaml: serde_norway::Value, path: &str) -> Result<Value, (String, String)> {
    use serde_norway::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                match n.as_f64().and_then(serde_json::Number::from_f64) {
                    Some(x) => Value::Number(x),
                    None => return Err((path.to_string(), format!("{n} is not a number JSON can hold"))),
                }
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, item) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err((path.to_string(), "mapping keys must be plain strings".to_string())),
                };
                let item = yaml_to_json(item, &child(path, &key))?;
                map.insert(key, item);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => {
            return Err((
                path.to_string(),
                format!("YAML tag {} is not supported: Kubernetes objects are plain JSON data", tagged.tag),
            ));
        }
    })
}

/// Check one document's kind, fields and rules; the typed object when it could be built.
fn read_object(mut value: Value, report: &mut Report<'_>) -> Option<Object> {
    let Value::Object(map) = &mut value else {
        report.add("", format!("expected a mapping with apiVersion, kind and metadata, found {}", describe(&value)));
        return None;
    };
    let kind_text = map.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = map.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
    report.object = match (kind_text, name) {
        ("", _) => String::new(),
        (kind, "") => kind.to_string(),
        (kind, name) => format!("{kind} {name}"),
    };
    let kind = identify(map, report)?;
    if map.get("metadata").is_none_or(Value::is_null) {
        map.insert("metadata".to_string(), Value::Object(Map::new()));
    }

    let root = kind.schema();
    let mut walker = Walker { root, problems: Vec::new() };
    walker.walk(root, &mut value, "");
    let structural = walker.problems;
    for (path, message) in &structural {
        report.add(path.clone(), message.clone());
    }

    let built = match kind {
        Kind::Pod => typed(value).map(|o| Object::Pod(Box::new(o))),
        Kind::Service => typed(value).map(|o| Object::Service(Box::new(o))),
        Kind::ConfigMap => typed(value).map(|o| Object::ConfigMap(Box::new(o))),
        Kind::Secret => typed(value).map(|o| Object::Secret(Box::new(o))),
        Kind::Endpoints => typed(value).map(|o| Object::Endpoints(Box::new(o))),
    };
    let mut object = match built {
        Ok(object) => object,
        Err((path, message)) => {
            report.add(path, message);
            return None;
        }
    };
    let problems = match &object {
        Object::Pod(pod) => validate_pod(pod),
        Object::Service(svc) => validate_service(svc),
        Object::ConfigMap(cm) => validate_config_map(cm),
        Object::Secret(secret) => validate_secret(secret),
        Object::Endpoints(endpoints) => validate_endpoints(endpoints),
    };
    // A field already reported as malformed was dropped or zeroed for the typed object:
    // the rules would only repeat the complaint.
    for (path, message) in problems {
        if !structural.iter().any(|(bad, _)| is_under(&path, bad)) {
            report.add(path, message);
        }
    }
    if let Object::Secret(secret) = &mut object {
        merge_string_data(secret);
    }
    Some(object)
}

/// Check a JSON object against the schema of `T` as the API server decodes it: unknown fields
/// (with the valid ones), wrong types, missing required fields. Each problem is a field path and
/// a message; `value` is patched so that `T` can still be built from it. The schema of each type
/// is generated once.
pub fn check_fields<T: JsonSchema + 'static>(value: &mut Value) -> Vec<(String, String)> {
    use std::any::TypeId;
    use std::sync::Mutex;
    static SCHEMAS: Mutex<Vec<(TypeId, &'static Value)>> = Mutex::new(Vec::new());
    let root: &'static Value = {
        let mut cache = SCHEMAS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match cache.iter().find(|(id, _)| *id == TypeId::of::<T>()) {
            Some((_, schema)) => schema,
            None => {
                let schema: &'static Value = Box::leak(Box::new(schema_of::<T>()));
                cache.push((TypeId::of::<T>(), schema));
                schema
            }
        }
    };
    let mut walker = Walker { root, problems: Vec::new() };
    walker.walk(root, value, "");
    walker.problems
}

/// Find the kind from `apiVersion` and `kind`, reporting why it is not usable.
fn identify(map: &Map<String, Value>, report: &mut Report<'_>) -> Option<Kind> {
    let api_version = string_field(map, "apiVersion", report);
    let kind = string_field(map, "kind", report)?;
    let Some(found) = Kind::ALL.iter().copied().find(|k| k.name() == kind) else {
        let known = OTHER_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, group)| group.to_string());
        let group = api_version.or(known).map(|g| format!(" ({g})")).unwrap_or_default();
        let mut message = format!("kind {kind:?}{group} is not supported here: use {KINDS_TEXT}");
        if let Some(k) = Kind::ALL.iter().find(|k| k.name().eq_ignore_ascii_case(&kind)) {
            message.push_str(&format!(" (kinds are case-sensitive: did you mean {:?}?)", k.name()));
        } else if ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"].contains(&kind.as_str()) {
            message.push_str(" (the pod it would create is described under spec.template)");
        }
        report.add("kind", message);
        return None;
    };
    let api_version = api_version?;
    if api_version != "v1" {
        report.add("apiVersion", format!("unsupported value {api_version:?} for kind {kind}: expected \"v1\""));
        return None;
    }
    Some(found)
}

/// A top-level string such as `kind`; reports it when missing or not a string.
fn string_field(map: &Map<String, Value>, field: &str, report: &mut Report<'_>) -> Option<String> {
    match map.get(field) {
        None | Some(Value::Null) => {
            let hint =
                if field == "kind" { KINDS_TEXT } else { "v1 for Pod, Service, ConfigMap, Secret and Endpoints" };
            report.add(field, format!("required ({hint})"));
            None
        }
        Some(Value::String(s)) if s.is_empty() => {
            report.add(field, "required");
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            report.add(field, format!("expected a string, found {}", describe(other)));
            None
        }
    }
}

/// Build the k8s-openapi type; the error names the path (rare after the schema walk).
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })
}

/// The API server keeps `stringData` nowhere: it is written into `data` (winning over it).
fn merge_string_data(secret: &mut Secret) {
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (key, text) in strings {
            data.insert(key, ByteString(text.into_bytes()));
        }
    }
}

/// `path` is `prefix` or lies inside it.
fn is_under(path: &str, prefix: &str) -> bool {
    !prefix.is_empty() && path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}

// ---------------------------------------------------------------------------------------------
// The schema walk: unknown fields, types and required fields, from the k8s-openapi JSON schema.
// ---------------------------------------------------------------------------------------------

/// Walks a document against the JSON schema of its type. Problems are recorded; the document is
/// patched so the typed object can still be built (bad values removed, missing required values
/// zeroed) and the remaining rules still checked.
struct Walker {
    root: &'static Value,
    problems: Vec<(String, String)>,
}

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

impl Walker {
    /// Follow `$ref`s into the definitions; the last definition name comes along.
    fn resolve(&self, mut schema: &'static Value) -> (&'static Value, &'static str) {
        static ANYTHING: Value = Value::Bool(true);
        let mut name = "";
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else { break };
            name = reference.rsplit('/').next().unwrap_or("");
            match reference.strip_prefix('#').and_then(|pointer| self.root.pointer(pointer)) {
                Some(target) => schema = target,
                None => return (&ANYTHING, name),
            }
        }
        (schema, name)
    }

    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push((path.to_string(), message.into()));
    }

    /// Check `value`; false when it has the wrong type and must be dropped.
    fn walk(&mut self, schema: &'static Value, value: &mut Value, path: &str) -> bool {
        let (schema, name) = self.resolve(schema);
        if value.is_null() {
            return true; // null means "not set", as in the API server
        }
        if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            let ok = match value {
                Value::String(_) => true,
                Value::Number(n) if name == QUANTITY => n.is_i64() || n.is_u64() || n.is_f64(),
                Value::Number(n) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                _ => false,
            };
            if !ok {
                let expected =
                    if name == QUANTITY { "a quantity such as 500m or 64Mi" } else { "an integer or a string" };
                self.mismatch(path, expected, value);
            }
            return ok;
        }
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => self.object(schema, value, path),
            Some("array") => {
                let Value::Array(items) = value else {
                    self.mismatch(path, "a list", value);
                    return false;
                };
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        // A null item is the zero value, as Go decodes it (the rules then see what is missing).
                        if item.is_null() || !self.walk(item_schema, item, &format!("{path}[{i}]")) {
                            *item = self.zero(item_schema, 0);
                        }
                    }
                }
                true
            }
            Some("string") => match value {
                Value::String(text) if format == "byte" => self.base64(text, path),
                Value::String(text) if format == "date-time" => {
                    let ok = serde_json::from_value::<Time>(Value::String(text.clone())).is_ok();
                    if !ok {
                        self.problem(
                            path,
                            format!("invalid value {text:?}: expected an RFC 3339 time such as 2025-01-31T12:00:00Z"),
                        );
                    }
                    ok
                }
                Value::String(_) => true,
                _ => {
                    self.mismatch(path, "a string", value);
                    false
                }
            },
            Some("integer") => {
                // kubectl reads YAML 1.1, where a plain 0400 is octal (file modes); YAML 1.2 reads text.
                if let Some(octal) = value.as_str().and_then(yaml11_octal) {
                    *value = Value::from(octal);
                }
                let Value::Number(n) = value else {
                    self.mismatch(path, "an integer", value);
                    return false;
                };
                let ok = match n.as_i64() {
                    Some(i) => format != "int32" || i32::try_from(i).is_ok(),
                    None => false,
                };
                if !ok {
                    let bits = if format == "int32" { "32-bit" } else { "64-bit" };
                    self.problem(path, format!("invalid value {n}: expected a {bits} integer"));
                }
                ok
            }
            Some("number") => {
                let ok = value.is_number();
                if !ok {
                    self.mismatch(path, "a number", value);
                }
                ok
            }
            Some("boolean") => {
                // kubectl reads YAML 1.1, where yes/no/on/off are booleans; YAML 1.2 reads text.
                if let Some(b) = value.as_str().and_then(yaml11_bool) {
                    *value = Value::Bool(b);
                }
                let ok = value.is_boolean();
                if !ok {
                    self.mismatch(path, "a boolean (true or false)", value);
                }
                ok
            }
            _ => true,
        }
    }

    fn object(&mut self, schema: &'static Value, value: &mut Value, path: &str) -> bool {
        let Value::Object(map) = value else {
            self.mismatch(path, "a mapping", value);
            return false;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|s| s.is_object());
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            let (item_schema, item_path) = match (properties.and_then(|p| p.get(&key)), additional) {
                (Some(item_schema), _) => (item_schema, child(path, &key)),
                (None, Some(item_schema)) => (item_schema, format!("{path}[{key}]")),
                (None, None) => {
                    if let Some(properties) = properties {
                        self.unknown(&child(path, &key), &key, properties);
                        map.remove(&key);
                    }
                    continue; // neither properties nor additionalProperties: free-form data
                }
            };
            let keep = match map.get_mut(&key) {
                // A null field is unset; a null map value is the zero value, as Go decodes it.
                Some(item) if item.is_null() => {
                    if additional.is_some() && properties.is_none_or(|p| !p.contains_key(&key)) {
                        *item = self.zero(item_schema, 0);
                    }
                    true
                }
                Some(item) => self.walk(item_schema, item, &item_path),
                None => true,
            };
            if !keep {
                if required.contains(&key.as_str()) {
                    map.insert(key, self.zero(item_schema, 0));
                } else {
                    map.remove(&key);
                }
            }
        }
        for name in required {
            if map.get(name).is_none_or(Value::is_null) {
                self.problem(&child(path, name), "required");
                if let Some(item_schema) = properties.and_then(|p| p.get(name)) {
                    map.insert(name.to_string(), self.zero(item_schema, 0));
                }
            }
        }
        true
    }

    fn unknown(&mut self, path: &str, key: &str, properties: &Map<String, Value>) {
        let mut valid: Vec<&str> = properties.keys().map(String::as_str).collect();
        valid.sort_unstable();
        let mut message = format!("unknown field; valid fields: {}", valid.join(", "));
        if let Some(near) = closest(key, valid.iter().copied()) {
            message.push_str(&format!("; did you mean {near:?}?"));
        }
        self.problem(path, message);
    }

    /// Secret and binary data: base64 as Go decodes it (line breaks ignored, padding required).
    fn base64(&mut self, text: &mut String, path: &str) -> bool {
        use base64::Engine as _;
        if text.contains(['\n', '\r']) {
            text.retain(|c| c != '\n' && c != '\r');
        }
        match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
            Ok(_) => true,
            Err(e) => {
                self.problem(path, format!("invalid base64 ({e}): values here must be base64-encoded (put plain text under stringData instead)"));
                false
            }
        }
    }

    fn mismatch(&mut self, path: &str, expected: &str, found: &Value) {
        let hint = match (expected, found) {
            ("a string", Value::Number(_) | Value::Bool(_)) => format!("; quote it if you mean the text: \"{found}\""),
            ("an integer", Value::String(s)) if s.trim().parse::<i64>().is_ok() => "; remove the quotes".to_string(),
            ("a boolean (true or false)", Value::String(s)) => {
                let lower = s.to_ascii_lowercase();
                if lower == "true" || lower == "false" { "; remove the quotes".to_string() } else { String::new() }
            }
            _ => String::new(),
        };
        self.problem(path, format!("expected {expected}, found {}{hint}", describe(found)));
    }

    /// The zero value of a schema: what Go would hold for a missing field. Required fields of
    /// objects are filled in too, so the typed object can be built.
    fn zero(&self, schema: &'static Value, depth: usize) -> Value {
        let (schema, _) = self.resolve(schema);
        if schema.get("x-kubernetes-int-or-string").is_some() {
            return Value::from(0);
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => Value::String(String::new()),
            Some("integer" | "number") => Value::from(0),
            Some("boolean") => Value::Bool(false),
            Some("array") => Value::Array(Vec::new()),
            Some("object") => {
                let mut map = Map::new();
                let required = schema.get("required").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                let properties = schema.get("properties").and_then(Value::as_object);
                for name in required.iter().filter_map(Value::as_str) {
                    if let Some(item_schema) = properties.and_then(|p| p.get(name)).filter(|_| depth < 16) {
                        map.insert(name.to_string(), self.zero(item_schema, depth + 1));
                    }
                }
                Value::Object(map)
            }
            _ => Value::Null,
        }
    }
}

/// A YAML 1.1 octal integer such as `0644` (YAML 1.2 readers leave it a string).
fn yaml11_octal(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('0').filter(|d| !d.is_empty() && d.bytes().all(|b| (b'0'..=b'7').contains(&b)))?;
    i64::from_str_radix(digits, 8).ok()
}

/// A YAML 1.1 boolean other than true/false (`yes`, `No`, `ON`, `off`, `y`, `N`...).
fn yaml11_bool(text: &str) -> Option<bool> {
    let spellings = |word: &str| {
        let mut title = word.to_string();
        title[..1].make_ascii_uppercase();
        [word.to_string(), title, word.to_ascii_uppercase()]
    };
    for (word, value) in [("yes", true), ("on", true), ("y", true), ("no", false), ("off", false), ("n", false)] {
        if spellings(word).iter().any(|s| s == text) {
            return Some(value);
        }
    }
    None
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

/// The candidate nearest to `word` (typos, swapped letters, wrong case), if near enough.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance, case-insensitive, counting a swap of two neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

// ---------------------------------------------------------------------------------------------
// The rules of the API server, per kind.
// ---------------------------------------------------------------------------------------------

/// Problems found by the rules: (path, message).
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    fn required(&mut self, path: impl Into<String>) {
        self.add(path, "required");
    }

    /// One "invalid value" problem per reason.
    fn invalid(&mut self, path: &str, value: &str, reasons: Vec<String>) {
        for reason in reasons {
            self.add(path, format!("invalid value {value:?}: {reason}"));
        }
    }

    fn duplicate(&mut self, path: impl Into<String>, value: &str) {
        self.add(path, format!("duplicate {value:?}"));
    }

    fn unsupported(&mut self, path: impl Into<String>, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let mut message = format!("unsupported value {value:?}: supported values: {}", list.join(", "));
        if let Some(near) = closest(value, supported.iter().copied()) {
            message.push_str(&format!("; did you mean {near:?}?"));
        }
        self.add(path, message);
    }

    /// `value` must be one of `supported` when set.
    fn one_of(&mut self, path: impl Into<String>, value: Option<&str>, supported: &[&str]) {
        if let Some(value) = value {
            if !supported.contains(&value) {
                self.unsupported(path, value, supported);
            }
        }
    }

    /// `value`, when set, must be at least `min`.
    fn at_least(&mut self, path: impl Into<String>, value: Option<i64>, min: i64) {
        if let Some(v) = value {
            if v < min {
                self.add(path, format!("invalid value {v}: must be greater than or equal to {min}"));
            }
        }
    }
}

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const HOST_PATH_TYPES: &[&str] =
    &["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"];
const PROPAGATIONS: &[&str] = &["None", "HostToContainer", "Bidirectional"];
const RECURSIVE_READ_ONLY: &[&str] = &["Disabled", "IfPossible", "Enabled"];
const SCHEMES: &[&str] = &["HTTP", "HTTPS"];
const SERVICE_TYPES: &[&str] = &["ClusterIP", "NodePort"];
const SESSION_AFFINITIES: &[&str] = &["None", "ClientIP"];
const SUPPORTED_VOLUMES: &[&str] =
    &["emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected", "persistentVolumeClaim"];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const VOLUME_FIELD_PATHS: &[&str] =
    &["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations"];
const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];
const MAX_DATA_BYTES: usize = 1024 * 1024;
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// How an object's `metadata.name` is checked.
#[derive(Clone, Copy)]
enum NameRule {
    Subdomain,
    Dns1035,
}

/// The rules for any object's metadata: the name (a DNS subdomain, or a DNS-1035 label when
/// `dns1035`, as Services need), namespace, labels and annotations.
pub fn validate_object_meta(meta: &ObjectMeta, dns1035: bool) -> Vec<(String, String)> {
    let mut p = Problems::default();
    validate_metadata(meta, if dns1035 { NameRule::Dns1035 } else { NameRule::Subdomain }, &mut p);
    p.0
}

/// The rules for a pod spec found at `path` (`spec.template.spec` of a Deployment).
pub fn validate_pod_spec_at(spec: &PodSpec, path: &str) -> Vec<(String, String)> {
    let mut p = Problems::default();
    validate_pod_spec(spec, path, &mut p);
    p.0
}

/// The rules for a Pod (paths relative to the object, such as `spec.containers[0].image`).
pub fn validate_pod(pod: &Pod) -> Vec<(String, String)> {
    let mut p = Problems::default();
    validate_metadata(&pod.metadata, NameRule::Subdomain, &mut p);
    match &pod.spec {
        Some(spec) => validate_pod_spec(spec, "spec", &mut p),
        None => p.required("spec.containers"),
    }
    p.0
}

fn validate_pod_spec(spec: &PodSpec, path: &str, p: &mut Problems) {
    let volumes = validate_volumes(spec.volumes.as_deref().unwrap_or_default(), &format!("{path}.volumes"), p);
    if spec.containers.is_empty() {
        p.required(format!("{path}.containers"));
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let all = init
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{path}.initContainers[{i}]"), c, true))
        .chain(spec.containers.iter().enumerate().map(|(i, c)| (format!("{path}.containers[{i}]"), c, false)));
    let mut names = HashSet::new();
    let mut host_ports = HashSet::new();
    let host_network = spec.host_network == Some(true);
    for (cpath, container, is_init) in all {
        validate_container(container, &cpath, is_init, &volumes, p);
        if !container.name.is_empty() && !names.insert(container.name.as_str()) {
            p.duplicate(format!("{cpath}.name"), &container.name);
        }
        for (j, port) in container.ports.as_deref().unwrap_or_default().iter().enumerate() {
            let port_path = format!("{cpath}.ports[{j}]");
            let host_port = port.host_port.unwrap_or(0);
            if host_network && host_port != 0 && host_port != port.container_port {
                p.add(
                    format!("{port_path}.containerPort"),
                    format!("invalid value {}: must match hostPort when hostNetwork is true", port.container_port),
                );
            }
            // Init containers run before the others, so only the long-running ones can collide.
            if host_port != 0 && !is_init {
                let key = format!("{host_port}/{}", port.protocol.as_deref().unwrap_or("TCP"));
                if !host_ports.insert((key.clone(), port.host_ip.clone().unwrap_or_default())) {
                    p.duplicate(format!("{port_path}.hostPort"), &key);
                }
            }
        }
    }
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        p.add(format!("{path}.ephemeralContainers"), "forbidden: cannot be set on create (use kubectl debug)");
    }
    p.one_of(format!("{path}.restartPolicy"), spec.restart_policy.as_deref(), RESTART_POLICIES);
    p.one_of(format!("{path}.dnsPolicy"), spec.dns_policy.as_deref(), DNS_POLICIES);
    if spec.dns_policy.as_deref() == Some("None") && spec.dns_config.is_none() {
        p.add(format!("{path}.dnsConfig"), "required: must provide dnsConfig when dnsPolicy is None");
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            p.invalid(&format!("{path}.{field}"), value, check_dns1123_label(value));
        }
    }
    p.at_least(format!("{path}.terminationGracePeriodSeconds"), spec.termination_grace_period_seconds, 0);
    if let Some(seconds) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&seconds) {
            p.add(
                format!("{path}.activeDeadlineSeconds"),
                format!("invalid value {seconds}: must be between 1 and 2147483647, inclusive"),
            );
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        p.add(
            format!("{path}.shareProcessNamespace"),
            "invalid value true: shareProcessNamespace and hostPID cannot both be enabled",
        );
    }
}

fn validate_container(c: &Container, path: &str, is_init: bool, volumes: &HashSet<&str>, p: &mut Problems) {
    if c.name.is_empty() {
        p.required(format!("{path}.name"));
    } else {
        p.invalid(&format!("{path}.name"), &c.name, check_dns1123_label(&c.name));
    }
    match c.image.as_deref() {
        None | Some("") => p.required(format!("{path}.image")),
        Some(image) if image.trim() != image => {
            p.invalid(&format!("{path}.image"), image, vec!["must not have leading or trailing whitespace".into()])
        }
        Some(_) => {}
    }
    p.one_of(format!("{path}.imagePullPolicy"), c.image_pull_policy.as_deref(), PULL_POLICIES);

    let mut port_names = HashSet::new();
    for (j, port) in c.ports.as_deref().unwrap_or_default().iter().enumerate() {
        validate_container_port(port, &format!("{path}.ports[{j}]"), &mut port_names, p);
    }
    for (j, env) in c.env.as_deref().unwrap_or_default().iter().enumerate() {
        validate_env(env, &format!("{path}.env[{j}]"), p);
    }
    for (j, from) in c.env_from.as_deref().unwrap_or_default().iter().enumerate() {
        let fpath = format!("{path}.envFrom[{j}]");
        match (&from.config_map_ref, &from.secret_ref) {
            (Some(_), Some(_)) => p.add(&fpath, "may not have more than one field specified at a time"),
            (None, None) => p.add(&fpath, "required: must specify one of configMapRef or secretRef"),
            _ => {}
        }
        for name in [from.config_map_ref.as_ref().map(|r| &r.name), from.secret_ref.as_ref().map(|r| &r.name)] {
            if name.is_some_and(String::is_empty) {
                p.required(format!(
                    "{fpath}.{}.name",
                    if from.config_map_ref.is_some() { "configMapRef" } else { "secretRef" }
                ));
            }
        }
        if let Some(prefix) = from.prefix.as_deref().filter(|s| !s.is_empty()) {
            p.invalid(&format!("{fpath}.prefix"), prefix, check_env_name(prefix));
        }
    }
    if let Some(resources) = &c.resources {
        validate_resources(resources, &format!("{path}.resources"), p);
    }
    let mut mount_paths = HashSet::new();
    for (j, mount) in c.volume_mounts.as_deref().unwrap_or_default().iter().enumerate() {
        validate_volume_mount(mount, &format!("{path}.volumeMounts[{j}]"), volumes, &mut mount_paths, p);
    }

    let sidecar = c.restart_policy.as_deref() == Some("Always");
    if is_init {
        p.one_of(format!("{path}.restartPolicy"), c.restart_policy.as_deref(), &["Always"]);
    } else if c.restart_policy.is_some() {
        p.add(format!("{path}.restartPolicy"), "forbidden: may not be set for non-init containers");
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe, ProbeKind::Liveness),
        ("readinessProbe", &c.readiness_probe, ProbeKind::Readiness),
        ("startupProbe", &c.startup_probe, ProbeKind::Startup),
    ];
    for (field, probe, kind) in probes {
        let Some(probe) = probe else { continue };
        if is_init && !sidecar {
            p.add(
                format!("{path}.{field}"),
                "forbidden: may not be set for init containers without restartPolicy=Always",
            );
        } else {
            validate_probe(probe, &format!("{path}.{field}"), kind, p);
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        if is_init && !sidecar {
            p.add(
                format!("{path}.lifecycle"),
                "forbidden: may not be set for init containers without restartPolicy=Always",
            );
        } else {
            for (field, handler) in [("postStart", &lifecycle.post_start), ("preStop", &lifecycle.pre_stop)] {
                if let Some(handler) = handler {
                    validate_lifecycle_handler(handler, &format!("{path}.lifecycle.{field}"), p);
                }
            }
        }
    }
}

fn validate_container_port<'a>(port: &'a ContainerPort, path: &str, names: &mut HashSet<&'a str>, p: &mut Problems) {
    if port.container_port == 0 {
        p.required(format!("{path}.containerPort"));
    } else {
        check_port_number(i64::from(port.container_port), &format!("{path}.containerPort"), p);
    }
    if let Some(host_port) = port.host_port.filter(|h| *h != 0) {
        check_port_number(i64::from(host_port), &format!("{path}.hostPort"), p);
    }
    p.one_of(format!("{path}.protocol"), port.protocol.as_deref(), PROTOCOLS);
    if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
        p.invalid(&format!("{path}.name"), name, check_port_name(name));
        if !names.insert(name) {
            p.duplicate(format!("{path}.name"), name);
        }
    }
    if let Some(ip) = port.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
        if ip.parse::<IpAddr>().is_err() {
            p.invalid(&format!("{path}.hostIP"), ip, vec!["must be a valid IP address".into()]);
        }
    }
}

fn check_port_number(port: i64, path: &str, p: &mut Problems) {
    if !(1..=65535).contains(&port) {
        p.add(path, format!("invalid value {port}: must be between 1 and 65535, inclusive"));
    }
}

/// A port given as a number or as the name of a container port.
fn check_port_number_or_name(port: &IntOrString, path: &str, p: &mut Problems) {
    match port {
        IntOrString::Int(n) => check_port_number(i64::from(*n), path, p),
        IntOrString::String(name) if name.is_empty() => p.required(path),
        IntOrString::String(name) => p.invalid(path, name, check_port_name(name)),
    }
}

fn validate_env(env: &EnvVar, path: &str, p: &mut Problems) {
    if env.name.is_empty() {
        p.required(format!("{path}.name"));
    } else {
        p.invalid(&format!("{path}.name"), &env.name, check_env_name(&env.name));
    }
    let Some(from) = &env.value_from else { return };
    let fpath = format!("{path}.valueFrom");
    if env.value.as_deref().is_some_and(|v| !v.is_empty()) {
        p.add(&fpath, "may not be specified when `value` is not empty");
    }
    match set_fields(from).len() {
        0 => p.add(&fpath, "required: must specify one of fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef"),
        1 => {}
        _ => p.add(&fpath, "may not have more than one field specified at a time"),
    }
    if let Some(field) = &from.field_ref {
        validate_field_ref(field, &format!("{fpath}.fieldRef"), ENV_FIELD_PATHS, p);
    }
    if let Some(resource) = &from.resource_field_ref {
        validate_resource_field_ref(resource, &format!("{fpath}.resourceFieldRef"), p);
    }
    let selectors = [
        ("configMapKeyRef", from.config_map_key_ref.as_ref().map(|s| (&s.name, &s.key))),
        ("secretKeyRef", from.secret_key_ref.as_ref().map(|s| (&s.name, &s.key))),
    ];
    for (field, selector) in selectors {
        let Some((name, key)) = selector else { continue };
        if name.is_empty() {
            p.required(format!("{fpath}.{field}.name"));
        }
        if key.is_empty() {
            p.required(format!("{fpath}.{field}.key"));
        } else {
            p.invalid(&format!("{fpath}.{field}.key"), key, check_config_key(key));
        }
    }
}

fn validate_field_ref(field: &ObjectFieldSelector, path: &str, supported: &[&str], p: &mut Problems) {
    if field.api_version.as_deref().is_some_and(|v| !v.is_empty() && v != "v1") {
        p.one_of(format!("{path}.apiVersion"), field.api_version.as_deref(), &["v1"]);
    }
    let fp = field.field_path.as_str();
    if fp.is_empty() {
        p.required(format!("{path}.fieldPath"));
        return;
    }
    // metadata.labels['key'] and metadata.annotations['key'] pick one entry.
    for prefix in ["metadata.labels['", "metadata.annotations['"] {
        if let Some(key) = fp.strip_prefix(prefix).and_then(|rest| rest.strip_suffix("']")) {
            p.invalid(&format!("{path}.fieldPath"), fp, check_qualified_name(key));
            return;
        }
    }
    p.one_of(format!("{path}.fieldPath"), Some(fp), supported);
}

fn validate_resource_field_ref(field: &ResourceFieldSelector, path: &str, p: &mut Problems) {
    let r = field.resource.as_str();
    if r.is_empty() {
        p.required(format!("{path}.resource"));
    } else if !r.starts_with("limits.hugepages-") && !r.starts_with("requests.hugepages-") {
        p.one_of(format!("{path}.resource"), Some(r), RESOURCE_FIELDS);
    }
}

/// A CPU quantity in millicores; unlike `quantity::parse_cpu`, zero is allowed (a request of 0).
fn cpu_millis(text: &str) -> Result<u64, Error> {
    quantity::parse_cpu(text).or_else(|e| if quantity::parse_bytes(text).ok() == Some(0) { Ok(0) } else { Err(e) })
}

fn validate_resources(r: &ResourceRequirements, path: &str, p: &mut Problems) {
    let mut parsed: HashMap<(&str, &str), (u64, &str)> = HashMap::new();
    for (section, map) in [("limits", &r.limits), ("requests", &r.requests)] {
        for (name, q) in map.iter().flatten() {
            let value = match name.as_str() {
                "cpu" => cpu_millis(&q.0),
                "memory" => quantity::parse_bytes(&q.0),
                _ => continue, // other resources (ephemeral-storage, hugepages, devices): accepted as written
            };
            match value {
                Ok(v) => {
                    parsed.insert((section, name.as_str()), (v, q.0.as_str()));
                }
                Err(e) => p.add(format!("{path}.{section}[{name}]"), e.to_string()),
            }
        }
    }
    for name in ["cpu", "memory"] {
        if let (Some((request, rtext)), Some((limit, ltext))) =
            (parsed.get(&("requests", name)), parsed.get(&("limits", name)))
        {
            if request > limit {
                p.add(
                    format!("{path}.requests[{name}]"),
                    format!("invalid value {rtext:?}: must be less than or equal to {name} limit of {ltext}"),
                );
            }
        }
    }
}

fn validate_volume_mount<'a>(
    m: &'a VolumeMount,
    path: &str,
    volumes: &HashSet<&str>,
    mount_paths: &mut HashSet<&'a str>,
    p: &mut Problems,
) {
    if m.name.is_empty() {
        p.required(format!("{path}.name"));
    } else if !volumes.contains(m.name.as_str()) {
        p.add(format!("{path}.name"), format!("not found {:?}: no volume of this name in spec.volumes", m.name));
    }
    if m.mount_path.is_empty() {
        p.required(format!("{path}.mountPath"));
    } else if !mount_paths.insert(m.mount_path.as_str()) {
        p.invalid(&format!("{path}.mountPath"), &m.mount_path, vec!["must be unique".into()]);
    }
    let sub_path = m.sub_path.as_deref().unwrap_or("");
    if !sub_path.is_empty() {
        p.invalid(&format!("{path}.subPath"), sub_path, check_descending_path(sub_path));
    }
    let sub_path_expr = m.sub_path_expr.as_deref().unwrap_or("");
    if !sub_path_expr.is_empty() {
        if !sub_path.is_empty() {
            p.add(format!("{path}.subPathExpr"), "forbidden: subPathExpr and subPath are mutually exclusive");
        }
        p.invalid(&format!("{path}.subPathExpr"), sub_path_expr, check_descending_path(sub_path_expr));
    }
    p.one_of(format!("{path}.mountPropagation"), m.mount_propagation.as_deref(), PROPAGATIONS);
    p.one_of(format!("{path}.recursiveReadOnly"), m.recursive_read_only.as_deref(), RECURSIVE_READ_ONLY);
    if m.recursive_read_only.as_deref().is_some_and(|r| r != "Disabled") && m.read_only != Some(true) {
        p.add(format!("{path}.recursiveReadOnly"), "forbidden: may only be specified when readOnly is true");
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

fn validate_probe(probe: &Probe, path: &str, kind: ProbeKind, p: &mut Problems) {
    let handlers = [probe.exec.is_some(), probe.http_get.is_some(), probe.tcp_socket.is_some(), probe.grpc.is_some()];
    match handlers.iter().filter(|h| **h).count() {
        0 => p.add(path, "required: must specify a handler type (exec, httpGet, tcpSocket or grpc)"),
        1 => {}
        _ => p.add(path, "forbidden: may not specify more than 1 handler type"),
    }
    if let Some(exec) = &probe.exec {
        if exec.command.as_ref().is_none_or(Vec::is_empty) {
            p.required(format!("{path}.exec.command"));
        }
    }
    if let Some(http) = &probe.http_get {
        check_port_number_or_name(&http.port, &format!("{path}.httpGet.port"), p);
        p.one_of(format!("{path}.httpGet.scheme"), http.scheme.as_deref(), SCHEMES);
    }
    if let Some(tcp) = &probe.tcp_socket {
        check_port_number_or_name(&tcp.port, &format!("{path}.tcpSocket.port"), p);
    }
    if let Some(grpc) = &probe.grpc {
        check_port_number(i64::from(grpc.port), &format!("{path}.grpc.port"), p);
    }
    let numbers = [
        ("initialDelaySeconds", probe.initial_delay_seconds, 0),
        ("timeoutSeconds", probe.timeout_seconds, 0),
        ("periodSeconds", probe.period_seconds, 1),
        ("successThreshold", probe.success_threshold, 0),
        ("failureThreshold", probe.failure_threshold, 0),
    ];
    for (field, value, min) in numbers {
        p.at_least(format!("{path}.{field}"), value.map(i64::from), min);
    }
    if kind != ProbeKind::Readiness {
        if let Some(threshold) = probe.success_threshold.filter(|t| *t != 1 && *t >= 0) {
            p.add(format!("{path}.successThreshold"), format!("invalid value {threshold}: must be 1"));
        }
    }
    if let Some(seconds) = probe.termination_grace_period_seconds {
        if kind == ProbeKind::Readiness {
            p.add(format!("{path}.terminationGracePeriodSeconds"), "forbidden: may not be set for readiness probes");
        } else if seconds <= 0 {
            p.add(
                format!("{path}.terminationGracePeriodSeconds"),
                format!("invalid value {seconds}: must be greater than 0"),
            );
        }
    }
}

fn validate_lifecycle_handler(handler: &LifecycleHandler, path: &str, p: &mut Problems) {
    let count =
        [handler.exec.is_some(), handler.http_get.is_some(), handler.tcp_socket.is_some(), handler.sleep.is_some()]
            .iter()
            .filter(|h| **h)
            .count();
    match count {
        0 => p.add(path, "required: must specify a handler type (exec, httpGet, tcpSocket or sleep)"),
        1 => {}
        _ => p.add(path, "forbidden: may not specify more than 1 handler type"),
    }
    if let Some(exec) = &handler.exec {
        if exec.command.as_ref().is_none_or(Vec::is_empty) {
            p.required(format!("{path}.exec.command"));
        }
    }
    if let Some(http) = &handler.http_get {
        check_port_number_or_name(&http.port, &format!("{path}.httpGet.port"), p);
        p.one_of(format!("{path}.httpGet.scheme"), http.scheme.as_deref(), SCHEMES);
    }
    if let Some(tcp) = &handler.tcp_socket {
        check_port_number_or_name(&tcp.port, &format!("{path}.tcpSocket.port"), p);
    }
    if let Some(sleep) = &handler.sleep {
        p.at_least(format!("{path}.sleep.seconds"), Some(sleep.seconds), 0);
    }
}

/// The JSON names of the fields set in `value` (a volume's sources, an env var's sources).
fn set_fields<T: Serialize>(value: &T) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect(),
        _ => Vec::new(),
    }
}

/// Check the volumes; the set of their names, for the mounts.
fn validate_volumes<'a>(volumes: &'a [Volume], path: &str, p: &mut Problems) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let vpath = format!("{path}[{i}]");
        if volume.name.is_empty() {
            p.required(format!("{vpath}.name"));
        } else {
            p.invalid(&format!("{vpath}.name"), &volume.name, check_dns1123_label(&volume.name));
            if !names.insert(volume.name.as_str()) {
                p.duplicate(format!("{vpath}.name"), &volume.name);
            }
        }
        // No source at all is fine: the API server makes it an emptyDir (a default, applied elsewhere).
        let mut sources = set_fields(volume);
        sources.retain(|s| s != "name");
        if sources.len() > 1 {
            p.add(&vpath, format!("forbidden: may not specify more than 1 volume type (found {})", sources.join(", ")));
            continue;
        }
        if let Some(source) = sources.first() {
            if !SUPPORTED_VOLUMES.contains(&source.as_str()) {
                p.add(
                    format!("{vpath}.{source}"),
                    format!(
                        "volume type {source:?} is not supported by podlab: use one of {}",
                        SUPPORTED_VOLUMES.join(", ")
                    ),
                );
            }
        }
        validate_volume_source(volume, &vpath, p);
    }
    names
}

fn validate_volume_source(volume: &Volume, vpath: &str, p: &mut Problems) {
    if let Some(dir) = &volume.empty_dir {
        let medium = dir.medium.as_deref().unwrap_or("");
        // The API server leaves this to the kubelet, which refuses other values when starting the pod.
        if !["", "Memory", "HugePages"].contains(&medium) && !medium.starts_with("HugePages-") {
            p.unsupported(format!("{vpath}.emptyDir.medium"), medium, &["", "Memory", "HugePages"]);
        }
        if let Some(limit) = &dir.size_limit {
            if let Err(e) = quantity::parse_bytes(&limit.0) {
                p.add(format!("{vpath}.emptyDir.sizeLimit"), e.to_string());
            }
        }
    }
    if let Some(host) = &volume.host_path {
        if host.path.is_empty() {
            p.required(format!("{vpath}.hostPath.path"));
        } else if has_backsteps(&host.path) {
            p.invalid(&format!("{vpath}.hostPath.path"), &host.path, vec!["must not contain '..'".into()]);
        }
        p.one_of(format!("{vpath}.hostPath.type"), host.type_.as_deref(), HOST_PATH_TYPES);
    }
    if let Some(cm) = &volume.config_map {
        let cpath = format!("{vpath}.configMap");
        if cm.name.is_empty() {
            p.required(format!("{cpath}.name"));
        }
        check_mode(cm.default_mode, &format!("{cpath}.defaultMode"), p);
        validate_items(cm.items.as_deref().unwrap_or_default(), &cpath, p);
    }
    if let Some(secret) = &volume.secret {
        let spath = format!("{vpath}.secret");
        if secret.secret_name.as_deref().unwrap_or("").is_empty() {
            p.required(format!("{spath}.secretName"));
        }
        check_mode(secret.default_mode, &format!("{spath}.defaultMode"), p);
        validate_items(secret.items.as_deref().unwrap_or_default(), &spath, p);
    }
    if let Some(downward) = &volume.downward_api {
        let dpath = format!("{vpath}.downwardAPI");
        check_mode(downward.default_mode, &format!("{dpath}.defaultMode"), p);
        for (j, item) in downward.items.as_deref().unwrap_or_default().iter().enumerate() {
            let ipath = format!("{dpath}.items[{j}]");
            check_item_path(&item.path, &format!("{ipath}.path"), p);
            check_mode(item.mode, &format!("{ipath}.mode"), p);
            match (&item.field_ref, &item.resource_field_ref) {
                (Some(field), None) => validate_field_ref(field, &format!("{ipath}.fieldRef"), VOLUME_FIELD_PATHS, p),
                (None, Some(resource)) => {
                    validate_resource_field_ref(resource, &format!("{ipath}.resourceFieldRef"), p)
                }
                (Some(_), Some(_)) => {
                    p.add(&ipath, "fieldRef and resourceFieldRef can not be specified simultaneously")
                }
                (None, None) => p.add(&ipath, "required: must specify one of fieldRef or resourceFieldRef"),
            }
        }
    }
    if let Some(projected) = &volume.projected {
        let ppath = format!("{vpath}.projected");
        check_mode(projected.default_mode, &format!("{ppath}.defaultMode"), p);
        for (j, source) in projected.sources.as_deref().unwrap_or_default().iter().enumerate() {
            let spath = format!("{ppath}.sources[{j}]");
            match set_fields(source).len() {
                0 => p.add(&spath, "required: must specify one projection (secret, configMap, downwardAPI, ...)"),
                1 => {}
                _ => p.add(&spath, "forbidden: may not specify more than 1 projection per source"),
            }
            if let Some(cm) = &source.config_map {
                validate_items(cm.items.as_deref().unwrap_or_default(), &format!("{spath}.configMap"), p);
            }
            if let Some(secret) = &source.secret {
                validate_items(secret.items.as_deref().unwrap_or_default(), &format!("{spath}.secret"), p);
            }
        }
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        if claim.claim_name.is_empty() {
            p.required(format!("{vpath}.persistentVolumeClaim.claimName"));
        }
    }
}

/// `items` of a configMap or secret volume: which keys become which files.
fn validate_items(items: &[KeyToPath], path: &str, p: &mut Problems) {
    for (j, item) in items.iter().enumerate() {
        let ipath = format!("{path}.items[{j}]");
        if item.key.is_empty() {
            p.required(format!("{ipath}.key"));
        }
        check_item_path(&item.path, &format!("{ipath}.path"), p);
        check_mode(item.mode, &format!("{ipath}.mode"), p);
    }
}

fn check_item_path(item_path: &str, path: &str, p: &mut Problems) {
    if item_path.is_empty() {
        p.required(path);
        return;
    }
    let mut reasons = check_descending_path(item_path);
    if item_path.starts_with("..") && !reasons.iter().any(|r| r.contains("'..'")) {
        reasons.push("must not start with '..'".into());
    }
    p.invalid(path, item_path, reasons);
}

fn check_mode(mode: Option<i32>, path: &str, p: &mut Problems) {
    if let Some(mode) = mode {
        if !(0..=0o777).contains(&mode) {
            p.add(path, format!("invalid value {mode}: must be a number between 0 and 0777 (octal), both inclusive"));
        }
    }
}

/// The rules for a Service (paths relative to the object, such as `spec.ports[0].port`).
pub fn validate_service(svc: &Service) -> Vec<(String, String)> {
    let mut p = Problems::default();
    validate_metadata(&svc.metadata, NameRule::Dns1035, &mut p);
    let Some(spec) = &svc.spec else {
        p.required("spec.ports");
        return p.0;
    };
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    match service_type {
        "ClusterIP" | "NodePort" => {}
        "LoadBalancer" | "ExternalName" => {
            p.add("spec.type", format!("type {service_type:?} is not supported by podlab: use ClusterIP or NodePort"))
        }
        other => p.unsupported("spec.type", other, SERVICE_TYPES),
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") {
        if ip.parse::<IpAddr>().is_err() {
            p.invalid("spec.clusterIP", ip, vec!["must be a valid IP address (such as 10.96.0.10) or None".into()]);
        }
    }
    if headless && service_type == "NodePort" {
        p.invalid("spec.clusterIP", "None", vec!["may not be set to 'None' for NodePort services".into()]);
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !headless {
        p.required("spec.ports");
    }
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        validate_service_port(port, &format!("spec.ports[{i}]"), ports.len(), service_type, &mut p);
        let ppath = format!("spec.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            if !names.insert(name) {
                p.duplicate(format!("{ppath}.name"), name);
            }
        }
        let key = format!("{}/{}", port.port, port.protocol.as_deref().unwrap_or("TCP"));
        if !seen.insert(key.clone()) {
            p.duplicate(&ppath, &key);
        }
        if let Some(node_port) = port.node_port.filter(|n| *n != 0) {
            if !node_ports.insert(node_port) {
                p.duplicate(format!("{ppath}.nodePort"), &node_port.to_string());
            }
        }
    }
    if let Some(selector) = &spec.selector {
        validate_labels(selector, "spec.selector", &mut p);
    }
    p.one_of("spec.sessionAffinity", spec.session_affinity.as_deref(), SESSION_AFFINITIES);
    p.0
}

/// What Service and Endpoints ports share: a DNS-label name (required once there are several),
/// a port number and a protocol.
fn check_named_port(
    name: Option<&str>,
    number: i32,
    protocol: Option<&str>,
    path: &str,
    count: usize,
    p: &mut Problems,
) {
    match name.unwrap_or("") {
        "" if count > 1 => p.add(format!("{path}.name"), "required: ports must be named when there is more than one"),
        "" => {}
        name => p.invalid(&format!("{path}.name"), name, check_dns1123_label(name)),
    }
    check_port_number(i64::from(number), &format!("{path}.port"), p);
    p.one_of(format!("{path}.protocol"), protocol, PROTOCOLS);
}

fn validate_service_port(port: &ServicePort, path: &str, count: usize, service_type: &str, p: &mut Problems) {
    check_named_port(port.name.as_deref(), port.port, port.protocol.as_deref(), path, count, p);
    match &port.target_port {
        // 0 and "" mean "same as port" (the API server fills that in).
        None | Some(IntOrString::Int(0)) => {}
        Some(IntOrString::String(name)) if name.is_empty() => {}
        Some(target) => check_port_number_or_name(target, &format!("{path}.targetPort"), p),
    }
    if let Some(node_port) = port.node_port.filter(|n| *n != 0) {
        let npath = format!("{path}.nodePort");
        if service_type != "NodePort" {
            p.add(npath, format!("forbidden: may not be used when `type` is '{service_type}'"));
        } else if !(30000..=32767).contains(&node_port) {
            p.add(
                npath,
                format!("invalid value {node_port}: provided port is not in the valid range. The range of valid ports is 30000-32767"),
            );
        }
    }
}

/// The rules for a ConfigMap (paths relative to the object, such as `data[app.conf]`).
pub fn validate_config_map(cm: &ConfigMap) -> Vec<(String, String)> {
    let mut p = Problems::default();
    validate_metadata(&cm.metadata, NameRule::Subdomain, &mut p);
    let mut size = 0;
    for (key, value) in cm.data.iter().flatten() {
        p.invalid(&format!("data[{key}]"), key, check_config_key(key));
        size += value.len();
    }
    for (key, value) in cm.binary_data.iter().flatten() {
        p.invalid(&format!("binaryData[{key}]"), key, check_config_key(key));
        if cm.data.as_ref().is_some_and(|d| d.contains_key(key)) {
            p.invalid(&format!("binaryData[{key}]"), key, vec!["duplicate of key present in data".into()]);
        }
        size += value.0.len();
    }
    if size > MAX_DATA_BYTES {
        p.add("data", format!("too long: must have at most {MAX_DATA_BYTES} bytes (has {size})"));
    }
    p.0
}

/// The rules for a Secret (paths relative to the object). `stringData` counts as part of `data`;
/// a missing `type` means `Opaque`.
pub fn validate_secret(s: &Secret) -> Vec<(String, String)> {
    let mut p = Problems::default();
    validate_metadata(&s.metadata, NameRule::Subdomain, &mut p);
    let mut merged: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (key, value) in s.data.iter().flatten() {
        p.invalid(&format!("data[{key}]"), key, check_config_key(key));
        merged.insert(key, &value.0);
    }
    for (key, value) in s.string_data.iter().flatten() {
        p.invalid(&format!("stringData[{key}]"), key, check_config_key(key));
        merged.insert(key, value.as_bytes());
    }
    let size: usize = merged.values().map(|v| v.len()).sum();
    if size > MAX_DATA_BYTES {
        p.add("data", format!("too long: must have at most {MAX_DATA_BYTES} bytes (has {size})"));
    }
    let secret_type = s.type_.as_deref().filter(|t| !t.is_empty()).unwrap_or("Opaque");
    let need = |key: &str, p: &mut Problems| {
        if !merged.contains_key(key) {
            p.add(format!("data[{key}]"), format!("required for type {secret_type}"));
        }
    };
    match secret_type {
        "kubernetes.io/tls" => {
            need("tls.crt", &mut p);
            need("tls.key", &mut p);
        }
        "kubernetes.io/ssh-auth" => need("ssh-privatekey", &mut p),
        "kubernetes.io/basic-auth" if !merged.contains_key("username") && !merged.contains_key("password") => {
            p.add("data[username]", "required for type kubernetes.io/basic-auth (username or password)");
        }
        "kubernetes.io/dockerconfigjson" | "kubernetes.io/dockercfg" => {
            let key = if secret_type == "kubernetes.io/dockercfg" { ".dockercfg" } else { ".dockerconfigjson" };
            match merged.get(key) {
                None => need(key, &mut p),
                Some(bytes) => {
                    if let Err(e) = serde_json::from_slice::<Value>(bytes) {
                        p.add(format!("data[{key}]"), format!("invalid JSON: {e}"));
                    }
                }
            }
        }
        "kubernetes.io/service-account-token" => {
            let annotation = "kubernetes.io/service-account.name";
            if s.metadata.annotations.as_ref().is_none_or(|a| !a.contains_key(annotation)) {
                p.required(format!("metadata.annotations[{annotation}]"));
            }
        }
        _ => {} // Opaque and custom types: any keys
    }
    p.0
}

/// The rules for an Endpoints object (paths relative to the object, such as
/// `subsets[0].addresses[1].ip`). The API server accepts any DNS subdomain as its name, but only
/// Endpoints named like a Service are ever read (a Service without a selector takes the Endpoints
/// of its own name): podlab asks for a Service name, so a name that can never match is caught here.
pub fn validate_endpoints(endpoints: &Endpoints) -> Vec<(String, String)> {
    let mut p = Problems::default();
    validate_metadata(&endpoints.metadata, NameRule::Dns1035, &mut p);
    for (i, subset) in endpoints.subsets.iter().flatten().enumerate() {
        let spath = format!("subsets[{i}]");
        let ready = subset.addresses.as_deref().unwrap_or_default();
        let not_ready = subset.not_ready_addresses.as_deref().unwrap_or_default();
        if ready.is_empty() && not_ready.is_empty() {
            p.add(&spath, "required: must specify `addresses` or `notReadyAddresses`");
        }
        for (field, list) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
            for (j, address) in list.iter().enumerate() {
                validate_endpoint_address(address, &format!("{spath}.{field}[{j}]"), &mut p);
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        let mut names = HashSet::new();
        for (j, port) in ports.iter().enumerate() {
            let ppath = format!("{spath}.ports[{j}]");
            validate_endpoint_port(port, &ppath, ports.len(), &mut p);
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                if !names.insert(name) {
                    p.duplicate(format!("{ppath}.name"), name);
                }
            }
        }
    }
    p.0
}

fn validate_endpoint_address(address: &EndpointAddress, path: &str, p: &mut Problems) {
    let ipath = format!("{path}.ip");
    if address.ip.is_empty() {
        p.required(&ipath);
    } else {
        p.invalid(&ipath, &address.ip, check_endpoint_ip(&address.ip));
    }
    if let Some(hostname) = address.hostname.as_deref().filter(|h| !h.is_empty()) {
        p.invalid(&format!("{path}.hostname"), hostname, check_dns1123_label(hostname));
    }
    if let Some(node) = address.node_name.as_deref().filter(|n| !n.is_empty()) {
        p.invalid(&format!("{path}.nodeName"), node, check_dns1123_subdomain(node));
    }
}

/// An endpoint's address: an IPv4 address a connection can be sent to (the API server's
/// ValidateNonSpecialIP: not unspecified, loopback or link-local; podlab is IPv4 only).
fn check_endpoint_ip(text: &str) -> Vec<String> {
    let ip: Ipv4Addr = match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip,
        Ok(IpAddr::V6(_)) => return vec!["must be an IPv4 address: podlab's networks are IPv4 only".into()],
        Err(_) => return vec!["must be a valid IP address, such as 10.0.0.5".into()],
    };
    let mut reasons = Vec::new();
    if ip.is_unspecified() {
        reasons.push(format!("may not be unspecified ({ip})"));
    }
    if ip.is_loopback() {
        reasons.push("may not be in the loopback range (127.0.0.0/8): that is each pod's own lo".into());
    }
    if ip.is_link_local() {
        reasons.push("may not be in the link-local range (169.254.0.0/16)".into());
    }
    if ip.is_multicast() {
        reasons.push("may not be a multicast address (224.0.0.0/4): an endpoint is one pod or host".into());
    }
    if ip.is_broadcast() {
        reasons.push("may not be the broadcast address".into());
    }
    reasons
}

fn validate_endpoint_port(port: &EndpointPort, path: &str, count: usize, p: &mut Problems) {
    check_named_port(port.name.as_deref(), port.port, port.protocol.as_deref(), path, count, p);
    if let Some(app) = port.app_protocol.as_deref() {
        for reason in check_qualified_name(app) {
            p.add(format!("{path}.appProtocol"), format!("invalid value {app:?}: {reason}"));
        }
    }
}

fn validate_metadata(meta: &ObjectMeta, rule: NameRule, p: &mut Problems) {
    match meta.name.as_deref().unwrap_or("") {
        "" if meta.generate_name.as_deref().is_some_and(|g| !g.is_empty()) => {
            p.add("metadata.name", "required: generateName is only for `kubectl create`, give a fixed name")
        }
        "" => p.required("metadata.name"),
        name => p.invalid(
            "metadata.name",
            name,
            match rule {
                NameRule::Subdomain => check_dns1123_subdomain(name),
                NameRule::Dns1035 => check_dns1035_label(name),
            },
        ),
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        p.invalid("metadata.namespace", ns, check_dns1123_label(ns));
    }
    if let Some(labels) = &meta.labels {
        validate_labels(labels, "metadata.labels", p);
    }
    let mut size = 0;
    for (key, value) in meta.annotations.iter().flatten() {
        for reason in check_qualified_name(key) {
            p.add(format!("metadata.annotations[{key}]"), format!("invalid key {key:?}: {reason}"));
        }
        size += key.len() + value.len();
    }
    if size > MAX_ANNOTATION_BYTES {
        p.add("metadata.annotations", format!("too long: must have at most {MAX_ANNOTATION_BYTES} bytes (has {size})"));
    }
}

fn validate_labels(labels: &BTreeMap<String, String>, path: &str, p: &mut Problems) {
    for (key, value) in labels {
        let lpath = format!("{path}[{key}]");
        for reason in check_qualified_name(key) {
            p.add(&lpath, format!("invalid key {key:?}: {reason}"));
        }
        p.invalid(&lpath, value, check_label_value(value));
    }
}

// ---------------------------------------------------------------------------------------------
// Name formats. Each check returns the reasons a value is invalid (none when it is fine).
// ---------------------------------------------------------------------------------------------

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn starts_and_ends(s: &str, ok: fn(char) -> bool) -> bool {
    s.chars().next().is_some_and(ok) && s.chars().next_back().is_some_and(ok)
}

fn too_long(s: &str, max: usize) -> Option<String> {
    (s.len() > max).then(|| format!("must be no more than {max} characters"))
}

/// An RFC 1123 label: container, volume, port and namespace names.
fn check_dns1123_label(s: &str) -> Vec<String> {
    let mut reasons: Vec<String> = too_long(s, 63).into_iter().collect();
    if !(s.chars().all(|c| is_lower_alnum(c) || c == '-') && starts_and_ends(s, is_lower_alnum)) {
        reasons.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start \
             and end with an alphanumeric character (e.g. 'my-name' or '123-abc', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        );
    }
    reasons
}

/// An RFC 1123 subdomain: dot-separated labels, such as a Pod, ConfigMap or Secret name.
fn check_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut reasons: Vec<String> = too_long(s, 253).into_iter().collect();
    let part_ok =
        |part: &str| part.chars().all(|c| is_lower_alnum(c) || c == '-') && starts_and_ends(part, is_lower_alnum);
    if !s.split('.').all(part_ok) {
        reasons.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must \
             start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        );
    }
    reasons
}

/// An RFC 1035 label (starts with a letter): Service names, which become DNS names.
fn check_dns1035_label(s: &str) -> Vec<String> {
    let mut reasons: Vec<String> = too_long(s, 63).into_iter().collect();
    if !(s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && starts_and_ends(s, is_lower_alnum))
    {
        reasons.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic \
             character, and end with an alphanumeric character (e.g. 'my-name' or 'abc-123', regex used for \
             validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        );
    }
    reasons
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// A label or annotation key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters.
fn check_qualified_name(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split('/').collect::<Vec<_>>()[..] {
        [name] => (None, name),
        [prefix, name] => (Some(prefix), name),
        _ => {
            return vec![
                "a qualified name must be a name of alphanumeric characters, '-', '_' or '.' with an optional DNS \
                 subdomain prefix and '/' (e.g. 'example.com/MyName')"
                    .into(),
            ];
        }
    };
    let mut reasons = Vec::new();
    match prefix {
        Some("") => reasons.push("prefix part must be non-empty".to_string()),
        Some(prefix) => reasons.extend(check_dns1123_subdomain(prefix).into_iter().map(|r| format!("prefix part {r}"))),
        None => {}
    }
    if name.is_empty() {
        reasons.push("name part must be non-empty".into());
        return reasons;
    }
    if name.len() > 63 {
        reasons.push("name part must be no more than 63 characters".into());
    }
    if !(name.chars().all(is_label_char) && starts_and_ends(name, |c| c.is_ascii_alphanumeric())) {
        reasons.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .into(),
        );
    }
    reasons
}

/// A label value: empty, or at most 63 characters of alphanumerics, '-', '_' and '.'.
fn check_label_value(s: &str) -> Vec<String> {
    let mut reasons: Vec<String> = too_long(s, 63).into_iter().collect();
    let fine = s.is_empty() || (s.chars().all(is_label_char) && starts_and_ends(s, |c| c.is_ascii_alphanumeric()));
    if !fine {
        reasons.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must \
             start and end with an alphanumeric character (e.g. 'MyValue', 'my_value' or '12345')"
                .into(),
        );
    }
    reasons
}

/// A port name (IANA_SVC_NAME): up to 15 lowercase letters, digits and single inner '-', with a letter.
fn check_port_name(s: &str) -> Vec<String> {
    let mut reasons: Vec<String> = too_long(s, 15).into_iter().collect();
    if !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        reasons.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        reasons.push("must not contain consecutive hyphens".into());
    }
    if !s.chars().any(|c| c.is_ascii_alphabetic()) {
        reasons.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        reasons.push("must not begin or end with a hyphen".into());
    }
    reasons
}

/// An environment variable name: letters, digits, '_', '-' and '.', not starting with a digit.
fn check_env_name(s: &str) -> Vec<String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    if s.chars().all(ok_char) && !s.starts_with(|c: char| c.is_ascii_digit()) {
        return Vec::new();
    }
    vec![
        "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must \
         not start with a digit (e.g. 'my.env-name' or 'MY_ENV.NAME', regex used for validation is \
         '[-._a-zA-Z][-._a-zA-Z0-9]*')"
            .into(),
    ]
}

/// A ConfigMap or Secret key, which becomes a file name when mounted.
fn check_config_key(s: &str) -> Vec<String> {
    let mut reasons: Vec<String> = too_long(s, 253).into_iter().collect();
    if s.is_empty() || !s.chars().all(is_label_char) {
        reasons.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name' or \
             'KEY_NAME', regex used for validation is '[-._a-zA-Z0-9]+')"
                .into(),
        );
    }
    match s {
        "." => reasons.push("must not be '.'".into()),
        ".." => reasons.push("must not be '..'".into()),
        _ if s.starts_with("..") => reasons.push("must not start with '..'".into()),
        _ => {}
    }
    reasons
}

fn has_backsteps(path: &str) -> bool {
    path.split('/').any(|part| part == "..")
}

/// A path that must stay below a directory: relative, without `..` components.
fn check_descending_path(path: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if path.starts_with('/') {
        reasons.push("must be a relative path".to_string());
    }
    if has_backsteps(path) {
        reasons.push("must not contain '..'".to_string());
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_at_separator_lines() {
        let text = "# header\n---\na: 1\n---\n---\nb: 2\n--- # trailing comment\nc: |\n  ---x\n";
        let chunks = split_documents(text);
        let summary: Vec<(usize, usize)> = chunks.iter().map(|c| (c.number, c.first_line)).collect();
        assert_eq!(summary, [(1, 1), (2, 4), (3, 5), (4, 7)]);
        assert_eq!(chunks[0].text, "# header\n---\na: 1\n");
        assert_eq!(chunks[1].text, "---\n");
        assert_eq!(split_documents("%YAML 1.2\n---\na: 1\n").len(), 1);
        assert_eq!(split_documents("\u{feff}a: 1\n---\nb: 2\n")[0].text, "a: 1\n");
        assert!(split_documents("a: 1\n").len() == 1);
        assert!(!is_separator("----\n"));
        assert!(is_separator("---\r\n"));
    }

    #[test]
    fn yaml_errors_give_file_lines() {
        let text = "a: 1\n---\nb:\n  c: 1\n d: 2\n";
        let chunks = split_documents(text);
        let (path, message) = read_yaml(&chunks[1]).unwrap_err();
        assert_eq!(path, "");
        assert!(message.contains("line 5"), "{message}");
    }

    #[test]
    fn yaml_becomes_json_with_merges_and_string_keys() {
        let chunk = Chunk { number: 1, first_line: 1, text: "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n1: one\n" };
        let value = read_yaml(&chunk).unwrap();
        assert_eq!(value["m"]["x"], 1);
        assert_eq!(value["1"], "one");
        let tagged = Chunk { number: 1, first_line: 1, text: "a: !custom 3\n" };
        assert!(read_yaml(&tagged).unwrap_err().1.contains("tag"));
    }

    #[test]
    fn edit_distance_counts_swaps_once() {
        assert_eq!(edit_distance("contianers", "containers"), 1);
        assert_eq!(edit_distance("medum", "medium"), 1);
        assert_eq!(edit_distance("Always", "always"), 0);
        assert_eq!(closest("spce", ["spec", "status", "kind"]), Some("spec"));
        assert_eq!(closest("zzz", ["spec", "status"]), None);
    }

    #[test]
    fn names() {
        assert!(check_dns1123_label("web-1").is_empty());
        assert!(!check_dns1123_label("Web").is_empty());
        assert!(!check_dns1123_label("-web").is_empty());
        assert!(!check_dns1123_label(&"a".repeat(64)).is_empty());
        assert!(check_dns1123_subdomain("web.example-1.com").is_empty());
        assert!(!check_dns1123_subdomain("web..com").is_empty());
        assert!(!check_dns1123_subdomain("web_1").is_empty());
        assert!(check_dns1035_label("web").is_empty());
        assert!(!check_dns1035_label("1web").is_empty());
        assert!(check_qualified_name("app.kubernetes.io/name").is_empty());
        assert!(check_qualified_name("App_1").is_empty());
        assert!(!check_qualified_name("a/b/c").is_empty());
        assert!(!check_qualified_name("/name").is_empty());
        assert!(!check_qualified_name("Example.com/name").is_empty());
        assert!(check_label_value("").is_empty());
        assert!(!check_label_value("-x").is_empty());
        assert!(check_port_name("http-alt").is_empty());
        assert!(!check_port_name("8080").is_empty());
        assert!(!check_port_name("http--alt").is_empty());
        assert!(!check_port_name("a-very-long-port-name").is_empty());
        assert!(check_env_name("MY_VAR.x-y").is_empty());
        assert!(!check_env_name("1VAR").is_empty());
        assert!(!check_env_name("MY VAR").is_empty());
        assert!(check_config_key("app.conf").is_empty());
        assert!(!check_config_key("..data").is_empty());
        assert!(!check_config_key("a/b").is_empty());
        assert_eq!(check_descending_path("a/../b"), ["must not contain '..'"]);
        assert_eq!(check_descending_path("/abs"), ["must be a relative path"]);
        assert!(check_descending_path("a/..b").is_empty());
    }

    #[test]
    fn schema_walk_reports_and_patches() {
        let root = Kind::Pod.schema();
        let mut walker = Walker { root, problems: Vec::new() };
        let mut value = serde_json::json!({
            "metadata": {"name": "x", "labels": {"n": 1}},
            "spec": {"containers": [{"image": "i", "ports": [{"containerPort": "80"}]}], "hostNetwork": "True"}
        });
        walker.walk(root, &mut value, "");
        let paths: Vec<&str> = walker.problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.labels[n]",
                "spec.containers[0].ports[0].containerPort",
                "spec.containers[0].name",
                "spec.hostNetwork"
            ]
        );
        assert!(walker.problems[3].1.contains("remove the quotes"), "{:?}", walker.problems[3]);
        assert!(walker.problems[1].1.contains("remove the quotes"), "{:?}", walker.problems[1]);
        // The patched value builds the typed object.
        let pod: Pod = serde_json::from_value(value).unwrap();
        assert_eq!(pod.spec.unwrap().containers[0].ports.as_ref().unwrap()[0].container_port, 0);
    }

    #[test]
    fn yaml11_scalars() {
        assert_eq!(yaml11_octal("0644"), Some(0o644));
        assert_eq!(yaml11_octal("0"), None);
        assert_eq!(yaml11_octal("0089"), None);
        assert_eq!(yaml11_bool("yes"), Some(true));
        assert_eq!(yaml11_bool("OFF"), Some(false));
        assert_eq!(yaml11_bool("N"), Some(false));
        assert_eq!(yaml11_bool("yES"), None);
        assert_eq!(yaml11_bool("true"), None);
    }

    #[test]
    fn quantities_accept_numbers_and_zero_cpu() {
        assert_eq!(cpu_millis("0").unwrap(), 0);
        assert_eq!(cpu_millis("250m").unwrap(), 250);
        assert!(cpu_millis("fast").is_err());
    }

    #[test]
    fn endpoint_ips() {
        assert!(check_endpoint_ip("10.244.0.5").is_empty());
        assert!(check_endpoint_ip("192.0.2.1").is_empty());
        for (bad, why) in [
            ("127.0.0.1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("224.0.0.251", "multicast"),
            ("239.1.2.3", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("255.255.255.255", "broadcast"),
            ("fd00::1", "IPv4 only"),
            ("10.0.0", "valid IP address"),
            ("010.0.0.1", "valid IP address"),
        ] {
            let reasons = check_endpoint_ip(bad);
            assert!(reasons.iter().any(|r| r.contains(why)), "{bad}: {reasons:?}");
        }
    }

    #[test]
    fn endpoints_rules() {
        let text = "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: db\nsubsets:\n  - addresses: [{ip: 10.0.0.5}]\n    ports: [{port: 5432}]\n";
        let (objects, errors) = parse_documents(text);
        assert!(errors.is_empty(), "{errors:?}");
        let Object::Endpoints(e) = &objects[0] else { panic!("not endpoints: {objects:?}") };
        assert_eq!((objects[0].kind(), objects[0].name()), ("Endpoints", "db"));
        assert_eq!(e.subsets.as_ref().unwrap()[0].ports.as_ref().unwrap()[0].port, 5432);

        let bad = Endpoints {
            metadata: ObjectMeta { name: Some("db.example".into()), ..Default::default() },
            subsets: Some(vec![
                k8s_openapi::api::core::v1::EndpointSubset::default(),
                k8s_openapi::api::core::v1::EndpointSubset {
                    not_ready_addresses: Some(vec![EndpointAddress {
                        ip: "127.0.0.1".into(),
                        hostname: Some("Db_0".into()),
                        ..Default::default()
                    }]),
                    addresses: None,
                    ports: Some(vec![
                        EndpointPort { port: 0, name: Some("pg".into()), ..Default::default() },
                        EndpointPort { port: 5433, protocol: Some("tcp".into()), ..Default::default() },
                        EndpointPort { port: 5434, name: Some("pg".into()), ..Default::default() },
                    ]),
                },
            ]),
        };
        let paths: Vec<String> = validate_endpoints(&bad).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "metadata.name",
                "subsets[0]",
                "subsets[1].notReadyAddresses[0].ip",
                "subsets[1].notReadyAddresses[0].hostname",
                "subsets[1].ports[0].port",
                "subsets[1].ports[1].name",
                "subsets[1].ports[1].protocol",
                "subsets[1].ports[2].name",
            ]
        );
    }

    #[test]
    fn under() {
        assert!(is_under("spec.containers[0].name", "spec.containers[0]"));
        assert!(is_under("spec.containers", "spec.containers"));
        assert!(!is_under("spec.containers2", "spec.containers"));
        assert!(!is_under("spec", ""));
    }
}
