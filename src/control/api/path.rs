//! Where a request points: resource, namespace, name and subresource, from its URL.
//!
//! `/api/v1/namespaces/default/pods/web/status` is the `status` subresource of the pod `web`
//! in namespace `default`; `/apis/apps/v1/deployments` lists deployments of every namespace;
//! `/api/v1/nodes/vm1` is a cluster-wide object. The key in the store follows the same parts.

use super::resources::{self, Resource};
use super::status::{ApiError, ApiResult};

/// What a request URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: &'static Resource,
    /// The namespace of a namespaced request; None lists or watches every namespace.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    /// Parse the segments after `/api/v1/` or `/apis/GROUP/VERSION/`.
    pub fn parse(group: &str, version: &str, rest: &str) -> ApiResult<Target> {
        let segs: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let find = |plural: &str| -> ApiResult<&'static Resource> {
            resources::find(group, plural).filter(|r| r.version == version).ok_or_else(|| {
                let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
                ApiError::new(
                    404,
                    "NotFound",
                    format!("the server could not find the requested resource ({plural} in {gv})"),
                )
            })
        };
        let namespaced_plural =
            |s: &str| resources::find(group, s).is_some_and(|r| r.namespaced && r.version == version);
        let t = match segs.as_slice() {
            ["namespaces", ns, plural, rest @ ..] if namespaced_plural(plural) && rest.len() <= 2 => Target {
                resource: find(plural)?,
                namespace: Some(ns.to_string()),
                name: rest.first().map(|s| s.to_string()),
                subresource: rest.get(1).map(|s| s.to_string()),
            },
            [plural, rest @ ..] if rest.len() <= 2 => {
                let resource = find(plural)?;
                if resource.namespaced && !rest.is_empty() {
                    return Err(ApiError::new(
                        404,
                        "NotFound",
                        format!("{plural} are namespaced: use /namespaces/NAMESPACE/{plural}/NAME"),
                    ));
                }
                Target {
                    resource,
                    namespace: None,
                    name: rest.first().map(|s| s.to_string()),
                    subresource: rest.get(1).map(|s| s.to_string()),
                }
            }
            _ => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("the server could not find the requested resource ({rest})"),
                ));
            }
        };
        if let Some(sub) = &t.subresource {
            if !t.resource.has_subresource(sub) {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("{} have no subresource {sub:?}", t.resource.plural),
                ));
            }
        }
        Ok(t)
    }

    /// The store key of the named object (or the prefix of the collection, ending in `/`).
    pub fn key(&self) -> String {
        let mut k = collection_prefix(self.resource);
        if let Some(ns) = &self.namespace {
            k.push_str(ns);
            k.push('/');
        }
        if let Some(name) = &self.name {
            k.push_str(name);
        }
        k
    }

    /// The name, for requests that need one.
    pub fn name(&self) -> ApiResult<&str> {
        self.name.as_deref().ok_or_else(|| ApiError::method_not_allowed("this request needs an object name"))
    }
}

/// `/registry/<group or core>/<plural>/`: where every object of a resource lives.
pub fn collection_prefix(r: &Resource) -> String {
    let group = if r.group.is_empty() { "core" } else { r.group };
    format!("/registry/{group}/{}/", r.plural)
}

/// The store key of one object.
pub fn object_key(r: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if r.namespaced => format!("{}{ns}/{name}", collection_prefix(r)),
        _ => format!("{}{name}", collection_prefix(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = Target::parse("", "v1", "namespaces/default/pods/web/status").unwrap();
        assert_eq!((t.resource.kind, t.namespace.as_deref(), t.name.as_deref()), ("Pod", Some("default"), Some("web")));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        assert_eq!(t.key(), "/registry/core/pods/default/web");
        let t = Target::parse("", "v1", "pods").unwrap();
        assert_eq!((t.namespace.clone(), t.name.clone()), (None, None));
        assert_eq!(t.key(), "/registry/core/pods/");
        let t = Target::parse("", "v1", "namespaces/kube-system").unwrap();
        assert_eq!((t.resource.kind, t.name.as_deref()), ("Namespace", Some("kube-system")));
        let t = Target::parse("", "v1", "namespaces/x/status").unwrap();
        assert_eq!((t.resource.kind, t.subresource.as_deref()), ("Namespace", Some("status")));
        let t = Target::parse("apps", "v1", "namespaces/a/deployments").unwrap();
        assert_eq!(t.key(), "/registry/apps/deployments/a/");
        assert_eq!(Target::parse("", "v1", "nodes/vm1").unwrap().key(), "/registry/core/nodes/vm1");
        assert_eq!(Target::parse("", "v1", "bogus").unwrap_err().code, 404);
        assert_eq!(Target::parse("", "v1", "pods/web").unwrap_err().code, 404);
        assert_eq!(Target::parse("", "v1", "namespaces/a/pods/web/nope").unwrap_err().code, 404);
        assert_eq!(Target::parse("apps", "v1", "pods").unwrap_err().code, 404);
    }
}
