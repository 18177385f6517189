//! Which lists of the built-in kinds merge, and by which key: the patch tags of the API types.
//!
//! In the Kubernetes Go types a field may carry `patchStrategy:"merge"` and `patchMergeKey:"name"`
//! (for example `PodSpec.Containers`): a strategic merge patch then merges that list item by item,
//! matching items by the key. A list without the tag is replaced whole; an object is always merged
//! key by key. This table lists every tagged field of the kinds we serve, and the path to it.
//! (Facts read from k8s.io/api core/v1, apps/v1, batch/v1 and apimachinery meta/v1, v1.32.)

use crate::control::api::resources::Resource;

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    /// No tag: a list is replaced by the patch's list; an object is merged key by key.
    Default,
    /// `patchStrategy:"merge"`: list items are merged (by `merge_key` for lists of objects,
    /// by value for lists of strings).
    Merge,
}

/// One field of an API type that has a patch tag, or leads to one.
#[derive(Debug)]
pub(super) struct Field {
    /// The JSON name.
    pub name: &'static str,
    pub strategy: Strategy,
    /// `patchMergeKey`: the item field that identifies an item of a merged list ("" for none).
    pub merge_key: &'static str,
    /// The type of the value (of each item, for a list), when it has tagged fields below it.
    pub ty: Option<&'static Type>,
}

/// An API type: only its fields that have patch tags, or lead to fields that do.
#[derive(Debug)]
pub(super) struct Type {
    pub fields: &'static [Field],
}

impl Type {
    /// The patch facts of field `name` (no tag and no known type when it is not listed).
    pub fn field(&self, name: &str) -> &'static Field {
        self.fields.iter().find(|f| f.name == name).unwrap_or(&UNTAGGED)
    }
}

/// The facts of a field that is not in the table: no tag, nothing tagged below it.
pub(super) static UNTAGGED: Field = Field { name: "", strategy: Strategy::Default, merge_key: "", ty: None };

/// The patch facts of `name` in `ty` (untagged when the type is unknown).
pub(super) fn field(ty: Option<&'static Type>, name: &str) -> &'static Field {
    ty.map(|t| t.field(name)).unwrap_or(&UNTAGGED)
}

const fn object(name: &'static str, ty: &'static Type) -> Field {
    Field { name, strategy: Strategy::Default, merge_key: "", ty: Some(ty) }
}

const fn merge_by(name: &'static str, merge_key: &'static str, ty: Option<&'static Type>) -> Field {
    Field { name, strategy: Strategy::Merge, merge_key, ty }
}

const fn merge_values(name: &'static str) -> Field {
    Field { name, strategy: Strategy::Merge, merge_key: "", ty: None }
}

/// Conditions of every status: merged by their `type`.
const CONDITIONS: Field = merge_by("conditions", "type", None);

// meta/v1 ObjectMeta
static OBJECT_META: Type = Type { fields: &[merge_values("finalizers"), merge_by("ownerReferences", "uid", None)] };

/// A kind with nothing tagged but its metadata (ConfigMap, Secret, Lease, ...).
static PLAIN: Type = Type { fields: &[object("metadata", &OBJECT_META)] };

// core/v1 Container, and EphemeralContainer (which has the same fields, inlined)
static CONTAINER: Type = Type {
    fields: &[
        merge_by("ports", "containerPort", None),
        merge_by("env", "name", None),
        merge_by("volumeMounts", "mountPath", None),
        merge_by("volumeDevices", "devicePath", None),
    ],
};

// core/v1 Volume -> EphemeralVolumeSource -> PersistentVolumeClaimTemplate (it has metadata)
static CLAIM_TEMPLATE: Type = Type { fields: &[object("metadata", &OBJECT_META)] };
static EPHEMERAL_VOLUME: Type = Type { fields: &[object("volumeClaimTemplate", &CLAIM_TEMPLATE)] };
static VOLUME: Type = Type { fields: &[object("ephemeral", &EPHEMERAL_VOLUME)] };

static POD_SPEC: Type = Type {
    fields: &[
        // "merge,retainKeys": kubectl sends `$retainKeys` in each volume (the server obeys
        // `$retainKeys` wherever it is, so that half of the tag needs no entry here).
        merge_by("volumes", "name", Some(&VOLUME)),
        merge_by("initContainers", "name", Some(&CONTAINER)),
        merge_by("containers", "name", Some(&CONTAINER)),
        merge_by("ephemeralContainers", "name", Some(&CONTAINER)),
        merge_by("imagePullSecrets", "name", None),
        merge_by("hostAliases", "ip", None),
        merge_by("topologySpreadConstraints", "topologyKey", None),
        merge_by("schedulingGates", "name", None),
        merge_by("resourceClaims", "name", None),
    ],
};

static POD_STATUS: Type = Type {
    fields: &[
        CONDITIONS,
        merge_by("hostIPs", "ip", None),
        merge_by("podIPs", "ip", None),
        merge_by("resourceClaimStatuses", "name", None),
    ],
};

static POD: Type =
    Type { fields: &[object("metadata", &OBJECT_META), object("spec", &POD_SPEC), object("status", &POD_STATUS)] };

/// PodTemplateSpec: the pod inside Deployments, ReplicaSets, DaemonSets and Jobs.
static POD_TEMPLATE: Type = Type { fields: &[object("metadata", &OBJECT_META), object("spec", &POD_SPEC)] };

/// A status whose only tagged field is `conditions`.
static CONDITIONS_STATUS: Type = Type { fields: &[CONDITIONS] };

/// The spec of a workload: its pod template.
static TEMPLATE_SPEC: Type = Type { fields: &[object("template", &POD_TEMPLATE)] };

/// ReplicaSet, DaemonSet, Job: a pod template in the spec, conditions in the status.
static WORKLOAD: Type = Type {
    fields: &[object("metadata", &OBJECT_META), object("spec", &TEMPLATE_SPEC), object("status", &CONDITIONS_STATUS)],
};

// apps/v1 Deployment. (`spec.strategy` is tagged retainKeys: kubectl apply sends `$retainKeys`
// there when the type changes between RollingUpdate and Recreate; nothing to list for that.)
static DEPLOYMENT_SPEC: Type = Type { fields: &[object("template", &POD_TEMPLATE)] };
static DEPLOYMENT: Type = Type {
    fields: &[object("metadata", &OBJECT_META), object("spec", &DEPLOYMENT_SPEC), object("status", &CONDITIONS_STATUS)],
};

// batch/v1 CronJob: spec.jobTemplate is a JobTemplateSpec (metadata + JobSpec).
static JOB_TEMPLATE: Type = Type { fields: &[object("metadata", &OBJECT_META), object("spec", &TEMPLATE_SPEC)] };
static CRON_JOB_SPEC: Type = Type { fields: &[object("jobTemplate", &JOB_TEMPLATE)] };
static CRON_JOB: Type = Type { fields: &[object("metadata", &OBJECT_META), object("spec", &CRON_JOB_SPEC)] };

static SERVICE_SPEC: Type = Type { fields: &[merge_by("ports", "port", None)] };
static SERVICE: Type = Type {
    fields: &[object("metadata", &OBJECT_META), object("spec", &SERVICE_SPEC), object("status", &CONDITIONS_STATUS)],
};

static NODE_SPEC: Type = Type { fields: &[merge_values("podCIDRs")] };
static NODE_STATUS: Type = Type { fields: &[CONDITIONS, merge_by("addresses", "type", None)] };
static NODE: Type =
    Type { fields: &[object("metadata", &OBJECT_META), object("spec", &NODE_SPEC), object("status", &NODE_STATUS)] };

/// Namespace and PersistentVolumeClaim: conditions in the status.
static WITH_CONDITIONS: Type =
    Type { fields: &[object("metadata", &OBJECT_META), object("status", &CONDITIONS_STATUS)] };

static SERVICE_ACCOUNT: Type = Type { fields: &[object("metadata", &OBJECT_META), merge_by("secrets", "name", None)] };

/// The type of the objects of `resource`, or None for a kind we have no tags for (the real
/// server refuses a strategic merge patch on those, as on custom resources).
pub(super) fn of(resource: &Resource) -> Option<&'static Type> {
    let ty = match (resource.group, resource.kind) {
        ("", "Pod") => &POD,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "Namespace") | ("", "PersistentVolumeClaim") => &WITH_CONDITIONS,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "ConfigMap" | "Secret" | "Endpoints" | "Event" | "PersistentVolume") => &PLAIN,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet" | "DaemonSet") | ("batch", "Job") => &WORKLOAD,
        ("batch", "CronJob") => &CRON_JOB,
        ("coordination.k8s.io", "Lease") | ("discovery.k8s.io", "EndpointSlice") => &PLAIN,
        ("storage.k8s.io", "StorageClass") => &PLAIN,
        _ => return None,
    };
    Some(ty)
}
