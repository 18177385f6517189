//! The resources the API server serves: what kubectl learns from discovery.
//!
//! A Kubernetes API is a set of *resources* (`pods`, `deployments`), each a collection of
//! objects of one *kind* (`Pod`) in an API *group* and *version* (`apps/v1`; the core group is
//! the empty string, served under `/api/v1`). A resource is either namespaced
//! (`/api/v1/namespaces/default/pods/web`) or cluster-wide (`/api/v1/nodes/vm1`), and some
//! have *subresources* (`pods/status`, `deployments/scale`) that change one part of an object.

/// One resource of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// The API group: "" (core), "apps", "batch", ...
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL name: "pods".
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served: "status", "scale", "binding", "log", "exec", "eviction".
    pub subresources: &'static [&'static str],
    /// Categories (`kubectl get all` lists the resources in "all").
    pub categories: &'static [&'static str],
}

impl Resource {
    /// "v1" for the core group, "apps/v1" for the others: the objects' apiVersion.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The verbs every resource here supports (as discovery lists them).
    pub fn verbs(&self) -> &'static [&'static str] {
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.contains(&name)
    }
}

#[allow(clippy::too_many_arguments)]
const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    subresources: &'static [&'static str],
    categories: &'static [&'static str],
) -> Resource {
    Resource { group, version, kind, plural, singular, namespaced, short_names, subresources, categories }
}

const ALL: &[&str] = &["all"];

/// Every resource served, in discovery order.
pub const RESOURCES: &[Resource] = &[
    r("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"], &["status"], &[]),
    r("", "v1", "Pod", "pods", "pod", true, &["po"], &["status", "binding", "log", "exec", "eviction"], ALL),
    r("", "v1", "Service", "services", "service", true, &["svc"], &["status"], ALL),
    r("", "v1", "Endpoints", "endpoints", "endpoints", true, &["ep"], &[], &[]),
    r("", "v1", "Node", "nodes", "node", false, &["no"], &["status"], &[]),
    r("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"], &[], &[]),
    r("", "v1", "Secret", "secrets", "secret", true, &[], &[], &[]),
    r("", "v1", "Event", "events", "event", true, &["ev"], &[], &[]),
    r("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", false, &["pv"], &["status"], &[]),
    r(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
        &["status"],
        &[],
    ),
    r("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["sa"], &[], &[]),
    r("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, &[], &[], &[]),
    r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, &[], &[], &[]),
    r("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"], &["status", "scale"], ALL),
    r("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"], &["status", "scale"], ALL),
    r("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, &["ds"], &["status"], ALL),
    r("batch", "v1", "Job", "jobs", "job", true, &[], &["status"], ALL),
    r("batch", "v1", "CronJob", "cronjobs", "cronjob", true, &["cj"], &["status"], ALL),
    r("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", false, &["sc"], &[], &[]),
];

/// The resource `plural` of `group` (any version served).
pub fn find(group: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.plural == plural)
}

/// The resource of objects with this apiVersion and kind.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The groups other than core, each once, in order ("apps", "batch", ...).
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(find("", "pods").map(|r| r.kind), Some("Pod"));
        assert_eq!(find("apps", "deployments").map(|r| r.api_version()), Some("apps/v1".to_string()));
        assert_eq!(by_kind("v1", "Service").map(|r| r.plural), Some("services"));
        assert!(by_kind("apps/v1", "Pod").is_none());
        assert_eq!(groups(), ["coordination.k8s.io", "discovery.k8s.io", "apps", "batch", "storage.k8s.io"]);
    }

    #[test]
    fn plurals_and_short_names_are_unique() {
        let mut names: Vec<(&str, &str)> = Vec::new();
        for r in RESOURCES {
            for n in std::iter::once(&r.plural).chain(r.short_names) {
                assert!(!names.contains(&(r.group, n)), "{n} twice in {:?}", r.group);
                names.push((r.group, n));
            }
        }
    }
}
