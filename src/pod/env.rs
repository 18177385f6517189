//! A container's environment, the Kubernetes way: `env`, `envFrom` and the Downward API.
//!
//! The kubelet builds each container's variables in two passes: `envFrom` first (every key of a
//! ConfigMap or Secret, with an optional prefix), then `env` in order, where a later entry
//! replaces an earlier one. A `value` may refer to variables defined before it as `$(NAME)`;
//! `valueFrom` reads a key of a ConfigMap or Secret, a field of the pod (`fieldRef`: its name,
//! labels, IP...) or a resource of a container (`resourceFieldRef`: its cpu or memory limit).
//! The last two are the *Downward API*: how a program learns about its own pod without asking
//! the API server. Last come the *service links*: for each Service of the pod's namespace with a
//! ClusterIP, `WEB_SERVICE_HOST=10.96.0.20`, `WEB_SERVICE_PORT=80` and the Docker-link style
//! `WEB_PORT_80_TCP_ADDR`... (set when the container starts: later Services are not seen; the
//! container's own variables win). `command` and `args` are expanded with the same `$(NAME)` rule.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, EnvVar, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::error::{Error, Result};
use crate::pod::manifest::{ConfigMap, Object, Pod, Secret, Service};
use crate::pod::qos;
use crate::quantity;

/// What the Downward API can tell a container about its pod and node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFacts {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` ("default" when unset).
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.nodeName`: the node the pod runs on.
    pub node_name: String,
    /// `spec.serviceAccountName` ("default" when unset, as the API server's admission sets it).
    pub service_account: String,
    /// `status.podIP` (None before the pod network is up, or with no pod network).
    pub pod_ip: Option<String>,
    /// `status.hostIP`: the node's address.
    pub host_ip: String,
    /// The node's allocatable cpu in millicores: what an unset cpu limit reads as.
    pub node_cpu_millis: u64,
    /// The node's allocatable memory in bytes: what an unset memory limit reads as.
    pub node_memory_bytes: u64,
}

impl PodFacts {
    /// The facts of `pod` running on this machine as node `node_name`. The node's cpu and memory
    /// are the machine's (online CPUs, total RAM): podlab reserves nothing for itself, so
    /// allocatable equals capacity.
    pub fn of(pod: &Pod, node_name: &str, pod_ip: Option<String>, host_ip: &str) -> PodFacts {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let service_account = spec
            .and_then(|s| s.service_account_name.clone().or_else(|| s.service_account.clone()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string());
        PodFacts {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".to_string()),
            uid: meta.uid.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            node_name: node_name.to_string(),
            service_account,
            pod_ip,
            host_ip: host_ip.to_string(),
            node_cpu_millis: node_cpu_millis(),
            node_memory_bytes: node_memory_bytes(),
        }
    }
}

/// Online CPUs × 1000 (at least 1000).
fn node_cpu_millis() -> u64 {
    let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN).ok().flatten().unwrap_or(1);
    u64::try_from(cpus).unwrap_or(1).max(1) * 1000
}

/// Total RAM in bytes (what the kubelet's cAdvisor reads from /proc/meminfo).
fn node_memory_bytes() -> u64 {
    nix::sys::sysinfo::sysinfo().map(|i| i.ram_total()).unwrap_or(0)
}

/// The size of the root file system: what an unset ephemeral-storage limit reads as (the kubelet
/// uses the file system that holds its own directory).
fn node_ephemeral_storage() -> u64 {
    nix::sys::statvfs::statvfs(Path::new("/")).map(|s| s.blocks().saturating_mul(s.fragment_size())).unwrap_or(0)
}

/// The ConfigMaps, Secrets and Services of the pod's namespace, by name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Objects {
    /// ConfigMaps by `metadata.name`.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets by `metadata.name`.
    pub secrets: BTreeMap<String, Secret>,
    /// Services by `metadata.name`, with their ClusterIPs filled in (the service links). The
    /// API server's own Service, default/kubernetes, may be here for a pod of any namespace.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
}

impl Objects {
    /// The ConfigMaps, Secrets and Services of `namespace` among manifest objects.
    pub fn of(objects: &[Object], namespace: &str) -> Objects {
        let mut found = Objects::default();
        for object in objects.iter().filter(|o| o.namespace() == namespace) {
            match object {
                Object::ConfigMap(cm) => {
                    found.config_maps.insert(object.name().to_string(), (**cm).clone());
                }
                Object::Secret(secret) => {
                    found.secrets.insert(object.name().to_string(), (**secret).clone());
                }
                Object::Service(svc) => {
                    found.services.insert(object.name().to_string(), (**svc).clone());
                }
                _ => {}
            }
        }
        found
    }
}

/// The field paths [`field_ref`] knows.
const FIELD_PATHS: &str = "metadata.name, metadata.namespace, metadata.uid, metadata.labels, \
     metadata.labels['KEY'], metadata.annotations, metadata.annotations['KEY'], spec.nodeName, \
     spec.serviceAccountName, status.podIP, status.podIPs, status.hostIP, status.hostIPs";

/// The value of a pod field, as a `fieldRef` reads it: `metadata.name`, `metadata.namespace`,
/// `metadata.uid`, `metadata.labels['k']` and `metadata.annotations['k']` (empty when the key is
/// absent), `metadata.labels` and `metadata.annotations` (every entry as `key="value"` lines,
/// sorted, for downwardAPI volumes), `spec.nodeName`, `spec.serviceAccountName`, `status.podIP`,
/// `status.podIPs`, `status.hostIP`, `status.hostIPs` (lists joined with ","). A pod without an IP
/// reads as "". Another path is an [`Error::Invalid`] naming it.
pub fn field_ref(facts: &PodFacts, field_path: &str) -> Result<String> {
    if let Some((map, key)) = subscript(field_path) {
        let entries = match map {
            "metadata.labels" => &facts.labels,
            "metadata.annotations" => &facts.annotations,
            _ => return Err(unsupported_field(field_path)),
        };
        return Ok(entries.get(key).cloned().unwrap_or_default());
    }
    Ok(match field_path {
        "metadata.name" => facts.name.clone(),
        "metadata.namespace" => facts.namespace.clone(),
        "metadata.uid" => facts.uid.clone(),
        "metadata.labels" => format_map(&facts.labels),
        "metadata.annotations" => format_map(&facts.annotations),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => facts.service_account.clone(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        _ => return Err(unsupported_field(field_path)),
    })
}

fn unsupported_field(field_path: &str) -> Error {
    Error::invalid(format!("unsupported fieldPath {field_path:?}: use one of {FIELD_PATHS}"))
}

/// `metadata.labels['app']` → ("metadata.labels", "app").
fn subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (map, key) = inner.split_once("['")?;
    Some((map, key))
}

/// A map as the Downward API writes it into a file: `key="value"` lines in key order, the value
/// quoted the way Go's `%q` does, no newline after the last line.
fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

/// A string in double quotes with Go's escapes (`\"`, `\\`, `\n`, `\t`, `\x01`, `\u0085`...).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a container resource, as a `resourceFieldRef` reads it: `limits.cpu`,
/// `limits.memory`, `limits.ephemeral-storage`, `requests.cpu`, `requests.memory`,
/// `requests.ephemeral-storage`, divided by `divisor` (default 1; cpu in cores, so `1m` gives
/// millicores) and rounded up to a whole number, as Kubernetes does.
///
/// The container is `sel.containerName` when set, else `container_name`. A limit that is not set
/// (or zero) reads as the node's allocatable amount, as the kubelet does; a request that is not
/// set takes the limit's value (the API server's default), else 0.
pub fn resource_field_ref(
    facts: &PodFacts,
    pod: &Pod,
    container_name: &str,
    sel: &ResourceFieldSelector,
) -> Result<String> {
    let name = sel.container_name.as_deref().filter(|n| !n.is_empty()).unwrap_or(container_name);
    let what = format!("resourceFieldRef {:?} of container {name:?}", sel.resource);
    if name.is_empty() {
        return Err(Error::invalid(format!("{what}: containerName is required here")));
    }
    let spec = pod.spec.as_ref();
    let c = spec
        .into_iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .find(|c| c.name == name)
        .ok_or_else(|| Error::invalid(format!("{what}: the pod has no container {name:?}")))?;
    let r = qos::container_resources(c)?;
    let value = match sel.resource.as_str() {
        "limits.cpu" => Amount::Cpu(r.cpu_limit_milli.unwrap_or(facts.node_cpu_millis)),
        "requests.cpu" => Amount::Cpu(r.cpu_request_milli.unwrap_or(0)),
        "limits.memory" => Amount::Bytes(r.memory_limit.unwrap_or(facts.node_memory_bytes)),
        "requests.memory" => Amount::Bytes(r.memory_request.unwrap_or(0)),
        "limits.ephemeral-storage" => {
            Amount::Bytes(storage(c, "limits", &what)?.unwrap_or_else(node_ephemeral_storage))
        }
        "requests.ephemeral-storage" => {
            let request = match storage(c, "requests", &what)? {
                Some(v) => Some(v),
                None if has_storage(c, "requests") => None, // "0": set, and zero
                None => storage(c, "limits", &what)?,
            };
            Amount::Bytes(request.unwrap_or(0))
        }
        other if other.contains("hugepages-") => {
            return Err(Error::invalid(format!("{what}: hugepages are not supported by podlab")));
        }
        _ => {
            return Err(Error::invalid(format!(
                "{what}: unsupported resource: use limits.cpu, limits.memory, limits.ephemeral-storage, \
                 requests.cpu, requests.memory or requests.ephemeral-storage"
            )));
        }
    };
    let divisor = sel.divisor.as_ref().map(|Quantity(q)| q.as_str()).filter(|q| !is_zero(q));
    Ok(match value {
        Amount::Cpu(milli) => {
            let per = match divisor {
                None => 1000,
                Some(d) => quantity::parse_cpu(d).map_err(|e| Error::invalid(format!("{what}: divisor: {e}")))?,
            };
            milli.div_ceil(per).to_string()
        }
        Amount::Bytes(bytes) => {
            let per = match divisor {
                None => 1,
                Some(d) => quantity::parse_bytes(d).map_err(|e| Error::invalid(format!("{what}: divisor: {e}")))?,
            };
            bytes.div_ceil(per.max(1)).to_string()
        }
    })
}

enum Amount {
    Cpu(u64),
    Bytes(u64),
}

fn is_zero(q: &str) -> bool {
    quantity::parse_bytes(q).ok() == Some(0)
}

fn has_storage(c: &Container, section: &str) -> bool {
    let res = c.resources.as_ref();
    let list =
        if section == "limits" { res.and_then(|r| r.limits.as_ref()) } else { res.and_then(|r| r.requests.as_ref()) };
    list.is_some_and(|l| l.contains_key("ephemeral-storage"))
}

/// `resources.<section>.ephemeral-storage` in bytes; None when absent or zero.
fn storage(c: &Container, section: &str, what: &str) -> Result<Option<u64>> {
    let res = c.resources.as_ref();
    let list =
        if section == "limits" { res.and_then(|r| r.limits.as_ref()) } else { res.and_then(|r| r.requests.as_ref()) };
    let Some(Quantity(text)) = list.and_then(|l| l.get("ephemeral-storage")) else { return Ok(None) };
    let bytes = quantity::parse_bytes(text)
        .map_err(|e| Error::invalid(format!("{what}: resources.{section}.ephemeral-storage: {e}")))?;
    Ok((bytes > 0).then_some(bytes))
}

/// The environment of container `c`, in order: the keys of each `envFrom` source (with its
/// prefix), then each `env` entry; a name defined again replaces the earlier value in place.
///
/// A `value` is expanded ([`expand`]) against the variables defined before it. A `valueFrom`
/// reads a pod field ([`field_ref`]), a resource ([`resource_field_ref`]), or a key of a ConfigMap
/// or Secret of `objects`. A missing object or key is an error naming the container and the
/// variable, unless the reference is `optional: true`: then the variable (or the whole envFrom
/// source) is left out. envFrom keys that are not valid variable names are skipped, with a
/// warning, as older kubelets did. Then come the variables of the Services ([`service_env`])
/// that the container does not define itself; `$(NAME)` in a `value` can refer to them too.
pub fn container_env(pod: &Pod, c: &Container, facts: &PodFacts, objects: &Objects) -> Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let services = service_env(pod, objects);
    let ns = &facts.namespace;
    for (i, from) in c.env_from.iter().flatten().enumerate() {
        let what = format!("container {:?}: envFrom[{i}]", c.name);
        let prefix = from.prefix.as_deref().unwrap_or("");
        let mut entries: Vec<(String, String)> = Vec::new();
        if let Some(r) = &from.config_map_ref {
            match objects.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        entries.push((k.clone(), v.clone()));
                    }
                }
                None if r.optional == Some(true) => continue,
                None => return Err(not_found(&what, "configmap", &r.name, ns)),
            }
        } else if let Some(r) = &from.secret_ref {
            match objects.secrets.get(&r.name) {
                Some(secret) => {
                    for (k, v) in secret.data.iter().flatten() {
                        let text = env_text(&v.0)
                            .map_err(|why| Error::invalid(format!("{what}: secret {:?} key {k:?} {why}", r.name)))?;
                        entries.push((k.clone(), text));
                    }
                }
                None if r.optional == Some(true) => continue,
                None => return Err(not_found(&what, "secret", &r.name, ns)),
            }
        }
        let mut skipped = Vec::new();
        for (key, value) in entries {
            let name = format!("{prefix}{key}");
            if is_env_name(&name) {
                set(&mut env, name, value);
            } else {
                skipped.push(name);
            }
        }
        if !skipped.is_empty() {
            tracing::warn!("{what}: keys {skipped:?} are not valid environment variable names: skipped");
        }
    }
    for var in c.env.iter().flatten() {
        let what = format!("container {:?}: env {}", c.name, var.name);
        let value = match env_value(pod, c, var, &env, &services, facts, objects).map_err(|e| prefixed(&what, e))? {
            Some(value) => value,
            None => continue, // an optional reference to something missing
        };
        set(&mut env, var.name.clone(), value);
    }
    for (name, value) in services {
        if lookup(&env, &name).is_none() {
            env.push((name, value));
        }
    }
    Ok(env)
}

/// The service links of the pod's containers, as the kubelet makes them: for each Service of
/// the pod's namespace (`enableServiceLinks`, true by default), and for default/kubernetes
/// always, that has a ClusterIP and ports, in name order:
/// `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT` (the first port), `{SVC}_SERVICE_PORT_{NAME}` for
/// each named port, then Docker's link variables: `{SVC}_PORT=tcp://IP:PORT` (the first port)
/// and, for each port, `{SVC}_PORT_{PORT}_{PROTO}` with `_PROTO`, `_PORT` and `_ADDR`. Names are
/// upper-cased, with `-` made `_`. Headless Services (and those without an address yet) give none.
pub fn service_env(pod: &Pod, objects: &Objects) -> Vec<(String, String)> {
    let spec = pod.spec.as_ref();
    let links = spec.and_then(|s| s.enable_service_links).unwrap_or(true);
    let ns = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
    let mut out = Vec::new();
    for svc in objects.services.values() {
        let svc_ns = svc.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let master = svc_ns == "default" && name == "kubernetes";
        if !(master || (links && svc_ns == ns)) {
            continue;
        }
        let Some(spec) = svc.spec.as_ref() else { continue };
        let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else { continue };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = env_var_name(name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for port in ports {
            if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{prefix}_SERVICE_PORT_{}", env_var_name(port_name)), port.port.to_string()));
            }
        }
        for (i, port) in ports.iter().enumerate() {
            let proto = port.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP");
            let lower = proto.to_ascii_lowercase();
            let url = format!("{lower}://{ip}:{}", port.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let link = format!("{prefix}_PORT_{}_{}", port.port, proto.to_ascii_uppercase());
            out.push((link.clone(), url));
            out.push((format!("{link}_PROTO"), lower));
            out.push((format!("{link}_PORT"), port.port.to_string()));
            out.push((format!("{link}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// A Service or port name as part of a variable name: `foo-bar` → `FOO_BAR`.
fn env_var_name(name: &str) -> String {
    name.replace('-', "_").to_ascii_uppercase()
}

/// One `env` entry's value; None when an optional reference finds nothing.
fn env_value(
    pod: &Pod,
    c: &Container,
    var: &EnvVar,
    env: &[(String, String)],
    services: &[(String, String)],
    facts: &PodFacts,
    objects: &Objects,
) -> Result<Option<String>> {
    let value = var.value.as_deref().unwrap_or("");
    let Some(from) = var.value_from.as_ref().filter(|_| value.is_empty()) else {
        // The container's variables first, then the service links (the kubelet's mapping).
        return Ok(Some(expand(value, &|name| lookup(env, name).or_else(|| lookup(services, name)))));
    };
    let ns = &facts.namespace;
    if let Some(field) = &from.field_ref {
        return field_ref(facts, &field.field_path).map(Some);
    }
    if let Some(sel) = &from.resource_field_ref {
        return resource_field_ref(facts, pod, &c.name, sel).map(Some);
    }
    if let Some(sel) = &from.config_map_key_ref {
        let optional = sel.optional == Some(true);
        let Some(cm) = objects.config_maps.get(&sel.name) else {
            return if optional { Ok(None) } else { Err(not_found("", "configmap", &sel.name, ns)) };
        };
        return match cm.data.as_ref().and_then(|d| d.get(&sel.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(Error::Missing(format!("couldn't find key {} in ConfigMap {ns}/{}", sel.key, sel.name))),
        };
    }
    if let Some(sel) = &from.secret_key_ref {
        let optional = sel.optional == Some(true);
        let Some(secret) = objects.secrets.get(&sel.name) else {
            return if optional { Ok(None) } else { Err(not_found("", "secret", &sel.name, ns)) };
        };
        return match secret.data.as_ref().and_then(|d| d.get(&sel.key)) {
            Some(v) => env_text(&v.0)
                .map(Some)
                .map_err(|why| Error::invalid(format!("secret {:?} key {:?} {why}", sel.name, sel.key))),
            None if optional => Ok(None),
            None => Err(Error::Missing(format!("couldn't find key {} in Secret {ns}/{}", sel.key, sel.name))),
        };
    }
    // valueFrom with no source: validation refuses it; an empty value is what the kubelet gives.
    Ok(Some(String::new()))
}

/// `configmap "app" not found in namespace "default"` (kubelet: `configmaps "app" not found`).
fn not_found(what: &str, kind: &str, name: &str, ns: &str) -> Error {
    let lead = if what.is_empty() { String::new() } else { format!("{what}: ") };
    Error::Missing(format!(
        "{lead}{kind} {name:?} not found in namespace {ns:?} (create it, or mark the reference optional: true)"
    ))
}

fn prefixed(what: &str, e: Error) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{what}: {m}")),
        Error::Missing(m) => Error::Missing(format!("{what}: {m}")),
        other => other,
    }
}

/// Secret bytes as an environment value: UTF-8 text without NUL.
fn env_text(bytes: &[u8]) -> std::result::Result<String, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8 text: mount the secret as a file instead")?;
    if text.contains('\0') {
        return Err("contains a NUL byte, which an environment variable cannot hold");
    }
    Ok(text.to_string())
}

/// A valid variable name: letters, digits, '_', '-' and '.', not starting with a digit.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
    match env.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    }
}

fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes `lookup(NAME)` when it is defined, and stays
/// as written when it is not; `$$` becomes `$`, so `$$(NAME)` gives a literal `$(NAME)`. A `$`
/// before anything else, or an unclosed `$(`, is kept as is. Nothing is expanded twice.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 == bytes.len() {
            i += 1;
            continue;
        }
        out.push_str(&s[copied..i]);
        match bytes[i + 1] {
            b'$' => {
                out.push('$');
                i += 2;
            }
            b'(' => match s[i + 2..].find(')') {
                Some(len) => {
                    let name = &s[i + 2..i + 2 + len];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&format!("$({name})")),
                    }
                    i += 2 + len + 1;
                }
                None => {
                    out.push_str("$(");
                    i += 2;
                }
            },
            _ => {
                out.push('$');
                i += 1;
            }
        }
        copied = i;
    }
    out.push_str(&s[copied..]);
    out
}

/// `command` or `args` with `$(VAR)` expanded against the container's environment.
pub fn expand_all(v: &[String], env: &[(String, String)]) -> Vec<String> {
    v.iter().map(|s| expand(s, &|name| lookup(env, name))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVarSource, ObjectFieldSelector, PodSpec,
        ResourceRequirements, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expand_with(s: &str) -> String {
        let vars = map(&[("VAR_A", "A"), ("VAR_B", "B"), ("VAR_C", "C"), ("VAR_REF", "$(VAR_A)"), ("BIG_MONEY", "$1")]);
        expand(s, &|name| vars.get(name).cloned())
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("$$(VAR_B)$(VAR_A)", "$(VAR_B)A"),
            ("$$(VAR_A)$$(VAR_B)", "$(VAR_A)$(VAR_B)"),
            ("f00__(VAR_A)__", "f00__(VAR_A)__"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$(VAR_A", "$(VAR_A"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$(VAR_A$(VAR_B", "$(VAR_A$(VAR_B"),
            ("$(", "$("),
            ("$", "$"),
            ("$()", "$()"),
            ("$VAR_A", "$VAR_A"),
            ("$$", "$"),
            ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("$$$$$$$(BIG_MONEY)", "$$$$1"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("héllo $(VAR_A) $é", "héllo A $é"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand_with(input), want, "expand({input:?})");
        }
    }

    fn facts() -> PodFacts {
        PodFacts {
            name: "web".into(),
            namespace: "shop".into(),
            uid: "1234-abcd".into(),
            labels: map(&[("app", "web"), ("tier", "front")]),
            annotations: map(&[("note", "say \"hi\"\n")]),
            node_name: "node-1".into(),
            service_account: "default".into(),
            pod_ip: Some("10.88.0.5".into()),
            host_ip: "192.168.1.10".into(),
            node_cpu_millis: 4000,
            node_memory_bytes: 8 << 30,
        }
    }

    #[test]
    fn field_refs() {
        let f = facts();
        assert_eq!(field_ref(&f, "metadata.name").unwrap(), "web");
        assert_eq!(field_ref(&f, "metadata.namespace").unwrap(), "shop");
        assert_eq!(field_ref(&f, "metadata.uid").unwrap(), "1234-abcd");
        assert_eq!(field_ref(&f, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field_ref(&f, "metadata.labels['nope']").unwrap(), "");
        assert_eq!(field_ref(&f, "metadata.labels").unwrap(), "app=\"web\"\ntier=\"front\"");
        assert_eq!(field_ref(&f, "metadata.annotations").unwrap(), "note=\"say \\\"hi\\\"\\n\"");
        assert_eq!(field_ref(&f, "metadata.annotations['note']").unwrap(), "say \"hi\"\n");
        assert_eq!(field_ref(&f, "spec.nodeName").unwrap(), "node-1");
        assert_eq!(field_ref(&f, "spec.serviceAccountName").unwrap(), "default");
        assert_eq!(field_ref(&f, "status.podIP").unwrap(), "10.88.0.5");
        assert_eq!(field_ref(&f, "status.podIPs").unwrap(), "10.88.0.5");
        assert_eq!(field_ref(&f, "status.hostIP").unwrap(), "192.168.1.10");
        assert_eq!(field_ref(&PodFacts { pod_ip: None, ..f.clone() }, "status.podIP").unwrap(), "");
        let err = field_ref(&f, "spec.restartPolicy").unwrap_err().to_string();
        assert!(err.contains("\"spec.restartPolicy\"") && err.contains("metadata.name"), "{err}");
        assert!(field_ref(&f, "spec.containers['x']").is_err());
        assert_eq!(go_quote("a\tb\u{1}\u{85}é"), "\"a\\tb\\x01\\u0085é\"");
    }

    fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect())
    }

    fn container(name: &str, limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                limits: quantities(limits),
                requests: quantities(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod_of(containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
            spec: Some(PodSpec { containers, ..Default::default() }),
            ..Default::default()
        }
    }

    fn sel(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            resource: resource.into(),
            divisor: divisor.map(|d| Quantity(d.into())),
            container_name: None,
        }
    }

    #[test]
    fn resource_refs() {
        let f = facts();
        let pod = pod_of(vec![
            container("app", &[("cpu", "1500m"), ("memory", "128Mi")], &[("cpu", "250m")]),
            container("side", &[], &[("memory", "0")]),
        ]);
        let get = |c: &str, r: &str, d: Option<&str>| resource_field_ref(&f, &pod, c, &sel(r, d)).unwrap();
        // cpu is rounded up to whole divisor units: 1.5 cores → 2.
        assert_eq!(get("app", "limits.cpu", None), "2");
        assert_eq!(get("app", "limits.cpu", Some("1m")), "1500");
        assert_eq!(get("app", "limits.cpu", Some("0")), "2");
        assert_eq!(get("app", "requests.cpu", None), "1");
        assert_eq!(get("app", "requests.cpu", Some("1m")), "250");
        assert_eq!(get("app", "limits.memory", None), (128u64 << 20).to_string());
        assert_eq!(get("app", "limits.memory", Some("1Mi")), "128");
        assert_eq!(get("app", "limits.memory", Some("1M")), "135");
        // A request defaults to the limit.
        assert_eq!(get("app", "requests.memory", Some("1Mi")), "128");
        // No limit: the node's allocatable amount.
        assert_eq!(get("side", "limits.cpu", None), "4");
        assert_eq!(get("side", "limits.memory", Some("1Gi")), "8");
        assert_eq!(get("side", "requests.cpu", None), "0");
        assert_eq!(get("side", "requests.memory", None), "0");
        assert!(get("side", "limits.ephemeral-storage", None).parse::<u64>().unwrap() > 0);
        assert_eq!(get("side", "requests.ephemeral-storage", None), "0");
        // containerName in the selector wins.
        let mut other = sel("limits.memory", Some("1Mi"));
        other.container_name = Some("app".into());
        assert_eq!(resource_field_ref(&f, &pod, "side", &other).unwrap(), "128");
        let err = resource_field_ref(&f, &pod, "nope", &sel("limits.cpu", None)).unwrap_err().to_string();
        assert!(err.contains("no container \"nope\""), "{err}");
        let err = resource_field_ref(&f, &pod, "app", &sel("limits.gpu", None)).unwrap_err().to_string();
        assert!(err.contains("unsupported resource"), "{err}");
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
    }

    fn var_from(name: &str, from: EnvVarSource) -> EnvVar {
        EnvVar { name: name.into(), value: None, value_from: Some(from) }
    }

    fn objects() -> Objects {
        let cm = ConfigMap {
            metadata: ObjectMeta { name: Some("settings".into()), ..Default::default() },
            data: Some(map(&[("MODE", "fast"), ("LEVEL", "3"), ("bad key", "x"), ("1ST", "y")])),
            ..Default::default()
        };
        let secret = Secret {
            metadata: ObjectMeta { name: Some("db".into()), ..Default::default() },
            data: Some([("password".to_string(), k8s_openapi::ByteString(b"s3cret".to_vec()))].into_iter().collect()),
            ..Default::default()
        };
        Objects {
            config_maps: [("settings".to_string(), cm)].into_iter().collect(),
            secrets: [("db".to_string(), secret)].into_iter().collect(),
            services: BTreeMap::new(),
        }
    }

    #[test]
    fn env_order_expansion_and_sources() {
        let c = Container {
            name: "app".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource { name: "settings".into(), optional: None }),
                prefix: Some("CFG_".into()),
                secret_ref: None,
            }]),
            env: Some(vec![
                var("GREETING", "hello $(NAME)"),
                var("NAME", "world"),
                var("MSG", "$(GREETING), $(NAME) in $(CFG_MODE) mode; $$(NAME)"),
                var_from(
                    "POD",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".into(), api_version: None }),
                        ..Default::default()
                    },
                ),
                var_from(
                    "PASSWORD",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "db".into(),
                            key: "password".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                var_from(
                    "MISSING",
                    EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "settings".into(),
                            key: "NOPE".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    },
                ),
                var("CFG_LEVEL", "9"),
            ]),
            ..Default::default()
        };
        let pod = pod_of(vec![c.clone()]);
        let env = container_env(&pod, &c, &facts(), &objects()).unwrap();
        let want: Vec<(String, String)> = [
            ("CFG_1ST", "y"),
            ("CFG_LEVEL", "9"),
            ("CFG_MODE", "fast"),
            ("GREETING", "hello $(NAME)"),
            ("NAME", "world"),
            ("MSG", "hello $(NAME), world in fast mode; $(NAME)"),
            ("POD", "web"),
            ("PASSWORD", "s3cret"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want);
        assert_eq!(
            expand_all(&["echo".into(), "$(NAME)".into(), "$(UNSET)".into()], &env),
            ["echo", "world", "$(UNSET)"]
        );
    }

    #[test]
    fn env_missing_objects() {
        let required = |from: EnvVarSource| {
            let c = Container { name: "app".into(), env: Some(vec![var_from("X", from)]), ..Default::default() };
            container_env(&pod_of(vec![c.clone()]), &c, &facts(), &objects())
        };
        let err = required(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector { name: "gone".into(), key: "k".into(), optional: None }),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("container \"app\": env X: configmap \"gone\" not found in namespace \"shop\""), "{err}");
        let err = required(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: "db".into(), key: "user".into(), optional: None }),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("env X: couldn't find key user in Secret shop/db"), "{err}");
        let optional = required(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: "gone".into(), key: "k".into(), optional: Some(true) }),
            ..Default::default()
        })
        .unwrap();
        assert!(optional.is_empty());

        let from = |optional| {
            let c = Container {
                name: "app".into(),
                env_from: Some(vec![EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource { name: "gone".into(), optional }),
                    ..Default::default()
                }]),
                ..Default::default()
            };
            container_env(&pod_of(vec![c.clone()]), &c, &facts(), &objects())
        };
        assert!(from(Some(true)).unwrap().is_empty());
        let err = from(None).unwrap_err().to_string();
        assert!(err.contains("container \"app\": envFrom[0]: configmap \"gone\" not found"), "{err}");
    }

    fn svc(ns: &str, name: &str, cluster_ip: &str, ports: &[(&str, i32, &str)]) -> Service {
        use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, port, proto)| ServicePort {
                            name: (!n.is_empty()).then(|| n.to_string()),
                            port: *port,
                            protocol: (!proto.is_empty()).then(|| proto.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn with_services(list: Vec<Service>) -> Objects {
        let services = list.into_iter().map(|s| (s.metadata.name.clone().unwrap(), s)).collect();
        Objects { services, ..objects() }
    }

    fn pod_in(ns: &str, links: Option<bool>, containers: Vec<Container>) -> Pod {
        let mut pod = pod_of(containers);
        pod.metadata.namespace = Some(ns.into());
        pod.spec.as_mut().unwrap().enable_service_links = links;
        pod
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn service_links_use_the_kubelets_names() {
        let objects = with_services(vec![
            svc("shop", "foo-bar", "1.2.3.4", &[("", 8080, "TCP")]),
            svc("shop", "abc-123", "5.6.7.8", &[("u-d-p", 8081, "UDP"), ("t-c-p", 8081, "")]),
            svc("shop", "headless", "None", &[("", 80, "TCP")]),
            svc("shop", "pending", "", &[("", 80, "TCP")]),
            svc("other", "elsewhere", "9.9.9.9", &[("", 80, "TCP")]),
        ]);
        let env = service_env(&pod_in("shop", None, vec![]), &objects);
        let want = pairs(&[
            ("ABC_123_SERVICE_HOST", "5.6.7.8"),
            ("ABC_123_SERVICE_PORT", "8081"),
            ("ABC_123_SERVICE_PORT_U_D_P", "8081"),
            ("ABC_123_SERVICE_PORT_T_C_P", "8081"),
            ("ABC_123_PORT", "udp://5.6.7.8:8081"),
            ("ABC_123_PORT_8081_UDP", "udp://5.6.7.8:8081"),
            ("ABC_123_PORT_8081_UDP_PROTO", "udp"),
            ("ABC_123_PORT_8081_UDP_PORT", "8081"),
            ("ABC_123_PORT_8081_UDP_ADDR", "5.6.7.8"),
            ("ABC_123_PORT_8081_TCP", "tcp://5.6.7.8:8081"),
            ("ABC_123_PORT_8081_TCP_PROTO", "tcp"),
            ("ABC_123_PORT_8081_TCP_PORT", "8081"),
            ("ABC_123_PORT_8081_TCP_ADDR", "5.6.7.8"),
            ("FOO_BAR_SERVICE_HOST", "1.2.3.4"),
            ("FOO_BAR_SERVICE_PORT", "8080"),
            ("FOO_BAR_PORT", "tcp://1.2.3.4:8080"),
            ("FOO_BAR_PORT_8080_TCP", "tcp://1.2.3.4:8080"),
            ("FOO_BAR_PORT_8080_TCP_PROTO", "tcp"),
            ("FOO_BAR_PORT_8080_TCP_PORT", "8080"),
            ("FOO_BAR_PORT_8080_TCP_ADDR", "1.2.3.4"),
        ]);
        assert_eq!(env, want);
        // enableServiceLinks: false: none, but the API server's own Service.
        assert!(service_env(&pod_in("shop", Some(false), vec![]), &objects).is_empty());
        let master = with_services(vec![
            svc("default", "kubernetes", "10.96.0.1", &[("https", 443, "TCP")]),
            svc("default", "web", "10.96.0.20", &[("", 80, "TCP")]),
        ]);
        let names: Vec<String> =
            service_env(&pod_in("default", Some(false), vec![]), &master).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names[..3], ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_SERVICE_PORT_HTTPS"]);
        assert!(names.iter().all(|n| n.starts_with("KUBERNETES_")), "{names:?}");
        let names: Vec<String> =
            service_env(&pod_in("shop", Some(false), vec![]), &master).into_iter().map(|(k, _)| k).collect();
        assert!(names.contains(&"KUBERNETES_PORT_443_TCP_ADDR".to_string()), "{names:?}");
    }

    #[test]
    fn container_variables_win_over_service_links() {
        let c = Container {
            name: "app".into(),
            env: Some(vec![
                var("FOO_BAR_SERVICE_PORT", "9999"),
                var("URL", "http://$(FOO_BAR_SERVICE_HOST):$(FOO_BAR_SERVICE_PORT)/"),
            ]),
            ..Default::default()
        };
        let pod = pod_in("shop", None, vec![c.clone()]);
        let objects = with_services(vec![svc("shop", "foo-bar", "1.2.3.4", &[("", 8080, "TCP")])]);
        let env = container_env(&pod, &c, &facts(), &objects).unwrap();
        let get = |name: &str| lookup(&env, name);
        assert_eq!(get("FOO_BAR_SERVICE_PORT").as_deref(), Some("9999"));
        assert_eq!(env.iter().filter(|(n, _)| n == "FOO_BAR_SERVICE_PORT").count(), 1);
        assert_eq!(get("URL").as_deref(), Some("http://1.2.3.4:9999/"), "$(VAR) sees service links");
        assert_eq!(get("FOO_BAR_PORT_8080_TCP_ADDR").as_deref(), Some("1.2.3.4"));
        // The container's own variables come first, the service links after them.
        assert_eq!(env[0].0, "FOO_BAR_SERVICE_PORT");
        assert_eq!(env[1].0, "URL");
        assert_eq!(expand_all(&["$(FOO_BAR_PORT)".into()], &env), ["tcp://1.2.3.4:8080"]);
    }

    #[test]
    fn objects_keep_services_and_read_old_files() {
        let text = r#"{"config_maps": {}, "secrets": {}}"#;
        let old: Objects = serde_json::from_str(text).unwrap();
        assert!(old.services.is_empty());
        let manifest =
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports: [{port: 80}]\n";
        let parsed = crate::pod::manifest::parse(manifest, "t").unwrap();
        assert_eq!(Objects::of(&parsed, "shop").services.keys().collect::<Vec<_>>(), ["web"]);
        assert!(Objects::of(&parsed, "default").services.is_empty());
    }

    #[test]
    fn facts_of_a_pod() {
        let mut pod = pod_of(vec![]);
        pod.metadata.labels = Some(map(&[("app", "web")]));
        let f = PodFacts::of(&pod, "node-1", None, "10.0.0.1");
        assert_eq!((f.namespace.as_str(), f.service_account.as_str()), ("default", "default"));
        assert_eq!(f.labels, map(&[("app", "web")]));
        assert!(f.node_cpu_millis >= 1000 && f.node_memory_bytes > 0);
    }
}
