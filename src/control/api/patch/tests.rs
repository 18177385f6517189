//! Each test is one thing kubectl does, with the body kubectl v1.32 sends for it, applied to an
//! object as our store holds it (with the server's defaults filled in).

use serde_json::{Value, json};

use super::*;
use crate::control::api::resources::{self, RESOURCES};

fn resource(api_version: &str, kind: &str) -> &'static Resource {
    resources::by_kind(api_version, kind).expect("a served kind")
}

fn patched(kind: (&str, &str), current: &Value, patch: Value, ty: PatchType) -> Value {
    let body = serde_json::to_vec(&patch).expect("patch serializes");
    let new = apply(resource(kind.0, kind.1), current, &body, ty).expect("patch applies");
    for field in ["apiVersion", "kind"] {
        assert_eq!(new[field], current[field], "{field} changed");
    }
    assert_eq!(new["metadata"]["name"], current["metadata"]["name"]);
    assert_eq!(new["metadata"]["namespace"], current["metadata"]["namespace"]);
    assert_no_directives(&new);
    new
}

fn failed(kind: (&str, &str), current: &Value, body: &[u8], ty: PatchType) -> PatchError {
    match apply(resource(kind.0, kind.1), current, body, ty) {
        Ok(new) => panic!("patch applied, giving {new}"),
        Err(e) => e,
    }
}

fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                assert!(!k.starts_with('$'), "directive {k} left in the object");
                assert_no_directives(v);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_directives),
        _ => {}
    }
}

const DEPLOYMENT: (&str, &str) = ("apps/v1", "Deployment");
const POD: (&str, &str) = ("v1", "Pod");
const SERVICE: (&str, &str) = ("v1", "Service");
const NODE: (&str, &str) = ("v1", "Node");

fn names(list: &Value) -> Vec<&str> {
    list.as_array().expect("a list").iter().map(|i| i["name"].as_str().expect("a name")).collect()
}

/// A Deployment as created by `kubectl apply` of web.yaml, defaults filled in by the server.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "5f0c2a4e-1111-4b5e-9a39-0d1f6f2a7c01",
            "generation": 1,
            "labels": {"app": "web"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}\n"
            }
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "prod"}, {"name": "WORKERS", "value": "4"}],
                            "volumeMounts": [
                                {"name": "html", "mountPath": "/usr/share/nginx/html", "readOnly": true},
                                {"name": "cache", "mountPath": "/var/cache/nginx"}
                            ],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File"
                        },
                        {
                            "name": "sidecar",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "tail -f /dev/null"],
                            "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File"
                        }
                    ],
                    "volumes": [
                        {"name": "html", "configMap": {"name": "web-html", "defaultMode": 420}},
                        {"name": "cache", "emptyDir": {}}
                    ],
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler",
                    "terminationGracePeriodSeconds": 30
                }
            }
        },
        "status": {
            "replicas": 2,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]
        }
    })
}

fn containers(d: &Value) -> &Value {
    &d["spec"]["template"]["spec"]["containers"]
}

/// A Pod as the scheduler and kubelet left it.
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c8f6d-x2x9k",
            "namespace": "default",
            "labels": {"app": "web", "env": "staging"},
            "finalizers": ["example.com/audit", "example.com/backup"],
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d",
                "uid": "0e2f7c55-2222-4c9e-8d1b-3b6f0e4a9d12", "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "nodeName": "vm1",
            "nodeSelector": {"disk": "hdd", "zone": "a"},
            "containers": [{
                "name": "web",
                "image": "nginx:1.25",
                "ports": [
                    {"containerPort": 80, "name": "http", "protocol": "TCP"},
                    {"containerPort": 8080, "name": "admin", "protocol": "TCP"}
                ],
                "terminationMessagePath": "/dev/termination-log"
            }],
            "securityContext": {"runAsNonRoot": true},
            "restartPolicy": "Always"
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.5",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
            ]
        }
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.42",
            "type": "ClusterIP",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        }
    })
}

// ---- content types ----

#[test]
fn content_types() {
    assert_eq!(PatchType::from_content_type("application/json-patch+json"), Some(PatchType::Json));
    assert_eq!(PatchType::from_content_type("application/merge-patch+json"), Some(PatchType::Merge));
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
        Some(PatchType::Strategic)
    );
    assert_eq!(PatchType::from_content_type(" Application/Apply-Patch+YAML "), Some(PatchType::Apply));
    assert_eq!(PatchType::from_content_type("application/json"), None);
    for ty in [PatchType::Json, PatchType::Merge, PatchType::Strategic, PatchType::Apply] {
        assert_eq!(PatchType::from_content_type(ty.content_type()), Some(ty));
    }
}

#[test]
fn every_served_kind_takes_a_strategic_patch() {
    for r in RESOURCES {
        assert!(schema::of(r).is_some(), "{} has no patch schema", r.kind);
    }
}

// ---- kubectl apply (client-side): a three-way strategic merge patch ----

/// web.yaml changed only the web container's image: kubectl sends the changed item (with its
/// merge key), the order of all items, and the new last-applied annotation.
#[test]
fn apply_changes_one_image_of_two_containers() {
    let current = deployment();
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.27", "name": "web"}]
        }}}
    });
    let new = patched(DEPLOYMENT, &current, patch, PatchType::Strategic);

    assert_eq!(names(containers(&new)), ["web", "sidecar"]);
    assert_eq!(containers(&new)[0]["image"], "nginx:1.27");
    // Everything else of both containers is as it was, defaults included.
    let mut expected = current.clone();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!("{\"new\":true}\n");
    assert_eq!(new, expected);
}

/// The sidecar was removed from web.yaml: kubectl sends a `$patch: delete` item for it, and the
/// new order of the containers that remain.
#[test]
fn apply_removes_a_container() {
    let patch = json!({
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"$patch": "delete", "name": "sidecar"}]
        }}}
    });
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(names(containers(&new)), ["web"]);
    assert_eq!(containers(&new)[0], deployment()["spec"]["template"]["spec"]["containers"][0]);
}

/// A container added between the two: `$setElementOrder` puts it where web.yaml has it.
#[test]
fn apply_adds_a_container_in_order() {
    let patch = json!({
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "logger"}, {"name": "sidecar"}],
            "containers": [{"image": "fluent-bit:3.0", "name": "logger"}]
        }}}
    });
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(names(containers(&new)), ["web", "logger", "sidecar"]);
    assert_eq!(containers(&new)[1], json!({"image": "fluent-bit:3.0", "name": "logger"}));
}

/// A container the server side added (an injected proxy, not in web.yaml) keeps its place
/// relative to its neighbours when kubectl applies a new order of its own containers: it was
/// before the sidecar, so it stays before it.
#[test]
fn apply_keeps_server_only_containers_in_place() {
    let mut current = deployment();
    let injected = json!({"name": "proxy", "image": "envoy:1.30"});
    current["spec"]["template"]["spec"]["containers"].as_array_mut().expect("list").insert(1, injected);
    let patch = json!({
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]
        }}}
    });
    let new = patched(DEPLOYMENT, &current, patch, PatchType::Strategic);
    assert_eq!(names(containers(&new)), ["proxy", "sidecar", "web"]);
}

/// web.yaml swaps the sidecar for a logger while the server holds an injected proxy after them.
/// The real server orders against its list as the merge left it in place (sidecar's slot taken
/// by the proxy, the logger appended after it): the proxy ends up between web and the logger.
#[test]
fn apply_swaps_a_container_next_to_a_server_only_one() {
    let mut current = deployment();
    let injected = json!({"name": "proxy", "image": "envoy:1.30"});
    current["spec"]["template"]["spec"]["containers"].as_array_mut().expect("list").push(injected);
    let patch = json!({
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "logger"}],
            "containers": [{"image": "fluent-bit:3.0", "name": "logger"}, {"$patch": "delete", "name": "sidecar"}]
        }}}
    });
    let new = patched(DEPLOYMENT, &current, patch, PatchType::Strategic);
    assert_eq!(names(containers(&new)), ["web", "proxy", "logger"]);
}

/// `strategy: {type: Recreate}` replaced RollingUpdate in web.yaml. kubectl sends `$retainKeys`
/// (DeploymentSpec.strategy is tagged retainKeys), so the server drops `rollingUpdate`, which
/// a Recreate deployment may not have.
#[test]
fn apply_switches_deployment_strategy_with_retain_keys() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(new["spec"]["strategy"], json!({"type": "Recreate"}));

    // Without the directive the old rollingUpdate would stay: that is what it is for.
    let plain = json!({"spec": {"strategy": {"type": "Recreate"}}});
    let new = patched(DEPLOYMENT, &deployment(), plain, PatchType::Strategic);
    assert_eq!(new["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
}

#[test]
fn retain_keys_must_name_what_the_patch_sets() {
    let body =
        br#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}}"#;
    let e = failed(DEPLOYMENT, &deployment(), body, PatchType::Strategic);
    assert!(matches!(&e, PatchError::BadFormat { path, .. } if path == "spec.strategy"), "{e}");
    assert!(e.to_string().contains("rollingUpdate"), "{e}");
    assert_eq!(e.status(), 400);
}

/// A finalizer removed from the manifest: metadata.finalizers is a merged list of strings, so
/// kubectl names the value to delete in `$deleteFromPrimitiveList/finalizers`. A finalizer a
/// controller added (not in the manifest) stays.
#[test]
fn apply_removes_a_finalizer() {
    let mut current = pod();
    current["metadata"]["finalizers"].as_array_mut().expect("list").push(json!("kubernetes.io/pv-protection"));
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["example.com/backup"],
        "$setElementOrder/finalizers": ["example.com/audit"]
    }});
    let new = patched(POD, &current, patch, PatchType::Strategic);
    assert_eq!(new["metadata"]["finalizers"], json!(["example.com/audit", "kubernetes.io/pv-protection"]));
}

#[test]
fn delete_from_a_list_that_is_absent_adds_nothing() {
    let patch = json!({"spec": {"$deleteFromPrimitiveList/podCIDRs": ["10.244.9.0/24"]}});
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "vm1"}, "spec": {}});
    let new = patched(NODE, &node, patch, PatchType::Strategic);
    assert_eq!(new["spec"], json!({}));
}

/// A finalizer added by `kubectl patch`: merged into the list of strings (the real server puts a
/// value new to the list before the server's values).
#[test]
fn patch_adds_a_finalizer() {
    let patch = json!({"metadata": {"finalizers": ["example.com/audit", "example.com/lock"]}});
    let new = patched(POD, &pod(), patch, PatchType::Strategic);
    assert_eq!(new["metadata"]["finalizers"], json!(["example.com/audit", "example.com/lock", "example.com/backup"]));
}

// ---- kubectl label / annotate: JSON merge patches ----

/// `kubectl label pod web tier=frontend env-` sends a merge patch; null removes the label.
#[test]
fn label_add_and_remove() {
    let patch = json!({"metadata": {"labels": {"env": null, "tier": "frontend"}}});
    let new = patched(POD, &pod(), patch, PatchType::Merge);
    assert_eq!(new["metadata"]["labels"], json!({"app": "web", "tier": "frontend"}));
    let mut expected = pod();
    expected["metadata"]["labels"] = json!({"app": "web", "tier": "frontend"});
    assert_eq!(new, expected);
}

/// `kubectl annotate deploy web owner=team-a`: the first annotation creates the map.
#[test]
fn annotate_creates_the_map() {
    let patch = json!({"metadata": {"annotations": {"owner": "team-a"}}});
    let new = patched(POD, &pod(), patch, PatchType::Merge);
    assert_eq!(new["metadata"]["annotations"], json!({"owner": "team-a"}));
}

/// Removing a label with a strategic patch (`kubectl patch -p`): null deletes there too.
#[test]
fn strategic_null_deletes_a_key() {
    let patch = json!({"metadata": {"labels": {"env": null, "gone": null}}});
    let new = patched(POD, &pod(), patch, PatchType::Strategic);
    assert_eq!(new["metadata"]["labels"], json!({"app": "web"}));
}

// ---- kubectl scale: a merge patch on the scale subresource ----

#[test]
fn scale_sets_replicas() {
    let scale = json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1042"},
        "spec": {"replicas": 2}, "status": {"replicas": 2, "selector": "app=web"}
    });
    let new = apply(resource(DEPLOYMENT.0, DEPLOYMENT.1), &scale, br#"{"spec":{"replicas":5}}"#, PatchType::Merge)
        .expect("patch applies");
    assert_eq!(new["spec"]["replicas"], 5);
    assert_eq!(new["status"], scale["status"]);
    let new = patched(DEPLOYMENT, &deployment(), json!({"spec": {"replicas": 0}}), PatchType::Merge);
    assert_eq!(new["spec"]["replicas"], 0);
}

// ---- kubectl set image / set env / edit: two-way strategic merge patches ----

#[test]
fn set_image() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{"image": "busybox:1.37", "name": "sidecar"}]
    }}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(containers(&new)[1]["image"], "busybox:1.37");
    assert_eq!(containers(&new)[1]["command"], deployment()["spec"]["template"]["spec"]["containers"][1]["command"]);
    assert_eq!(containers(&new)[0], deployment()["spec"]["template"]["spec"]["containers"][0]);
}

/// `kubectl set env deploy/web LOG_LEVEL=debug WORKERS=8`: env is merged by name.
#[test]
fn env_merges_by_name() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{
            "$setElementOrder/env": [{"name": "MODE"}, {"name": "WORKERS"}, {"name": "LOG_LEVEL"}],
            "env": [{"name": "WORKERS", "value": "8"}, {"name": "LOG_LEVEL", "value": "debug"}],
            "name": "web"
        }]
    }}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(
        containers(&new)[0]["env"],
        json!([
            {"name": "MODE", "value": "prod"},
            {"name": "WORKERS", "value": "8"},
            {"name": "LOG_LEVEL", "value": "debug"}
        ])
    );
}

/// `kubectl set env deploy/web MODE-` removes one variable; an edit turns another into a
/// reference to a secret (value null, valueFrom set).
#[test]
fn env_item_deleted_and_changed() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "$setElementOrder/env": [{"name": "WORKERS"}],
        "env": [
            {"$patch": "delete", "name": "MODE"},
            {"name": "WORKERS", "value": null, "valueFrom": {"secretKeyRef": {"name": "web", "key": "workers"}}}
        ],
        "name": "web"
    }]}}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(
        containers(&new)[0]["env"],
        json!([{"name": "WORKERS", "valueFrom": {"secretKeyRef": {"name": "web", "key": "workers"}}}])
    );
}

/// volumeMounts merge by mountPath: one changed, one added, the others kept. (Without a
/// `$setElementOrder`, as in a hand-written `kubectl patch`, the real server keeps the patch's
/// items in the patch's order, and puts an item new to the list before the server's items that
/// the patch does not name: the new volume comes first.)
#[test]
fn volume_mounts_merge_by_mount_path() {
    let patch = json!({"spec": {"template": {"spec": {
        "containers": [{
            "name": "web",
            "volumeMounts": [
                {"mountPath": "/var/cache/nginx", "name": "cache", "readOnly": true},
                {"mountPath": "/etc/nginx/conf.d", "name": "conf"}
            ]
        }],
        "volumes": [{"name": "conf", "configMap": {"name": "web-conf"}}]
    }}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(
        containers(&new)[0]["volumeMounts"],
        json!([
            {"name": "html", "mountPath": "/usr/share/nginx/html", "readOnly": true},
            {"mountPath": "/var/cache/nginx", "name": "cache", "readOnly": true},
            {"mountPath": "/etc/nginx/conf.d", "name": "conf"}
        ])
    );
    assert_eq!(names(&new["spec"]["template"]["spec"]["volumes"]), ["conf", "html", "cache"]);
}

/// Pod container ports merge by containerPort.
#[test]
fn container_ports_merge_by_container_port() {
    let patch = json!({"spec": {"containers": [{
        "name": "web",
        "ports": [{"containerPort": 8080, "name": "metrics"}, {"containerPort": 9090, "name": "debug"}]
    }]}});
    let new = patched(POD, &pod(), patch, PatchType::Strategic);
    assert_eq!(
        new["spec"]["containers"][0]["ports"],
        json!([
            {"containerPort": 80, "name": "http", "protocol": "TCP"},
            {"containerPort": 8080, "name": "metrics", "protocol": "TCP"},
            {"containerPort": 9090, "name": "debug"}
        ])
    );
}

/// Service ports merge by port: `kubectl patch svc web -p '{"spec":{"ports":[...443...]}}'`.
#[test]
fn service_ports_merge_by_port() {
    let patch = json!({"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}});
    let new = patched(SERVICE, &service(), patch, PatchType::Strategic);
    assert_eq!(
        new["spec"]["ports"],
        json!([
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}
        ])
    );
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.42");
}

/// A list without a patch strategy (tolerations) is replaced whole.
#[test]
fn untagged_lists_are_replaced() {
    let patch = json!({"spec": {"template": {"spec": {
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    }}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(
        new["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    // Same for a container's command.
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "command": ["sleep", "3600"]}]}}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(containers(&new)[1]["command"], json!(["sleep", "3600"]));
}

/// `kubectl edit`: several changes in one two-way patch.
#[test]
fn edit_changes_replicas_labels_and_resources() {
    let patch = json!({
        "metadata": {"labels": {"tier": "frontend"}},
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"name": "web", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "250m"}}}]
            }}
        }
    });
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(new["spec"]["replicas"], 3);
    assert_eq!(new["metadata"]["labels"], json!({"app": "web", "tier": "frontend"}));
    assert_eq!(
        containers(&new)[0]["resources"],
        json!({"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "250m"}})
    );
}

/// `kubectl rollout restart` stamps the pod template.
#[test]
fn rollout_restart_annotates_the_template() {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-23T10:00:00Z"
    }}}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(
        new["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-11-23T10:00:00Z"
    );
    assert_eq!(new["spec"]["template"]["metadata"]["labels"], json!({"app": "web"}));
}

/// `kubectl cordon vm1`.
#[test]
fn cordon_a_node() {
    let node = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "vm1"},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.56.11"}, {"type": "Hostname", "address": "vm1"}]}
    });
    let new = patched(NODE, &node, json!({"spec": {"unschedulable": true}}), PatchType::Strategic);
    assert_eq!(new["spec"]["unschedulable"], true);
    assert_eq!(new["spec"]["podCIDRs"], node["spec"]["podCIDRs"]);
    // Node addresses merge by type (a kubelet's status patch).
    let patch = json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.168.56.12"}]}});
    let new = patched(NODE, &node, patch, PatchType::Strategic);
    assert_eq!(
        new["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "192.168.56.12"}, {"type": "Hostname", "address": "vm1"}])
    );
}

// ---- status, owner references ----

/// The kubelet's status patch: conditions merge by type.
#[test]
fn pod_conditions_merge_by_type() {
    let patch = json!({"status": {
        "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}, {"type": "Initialized"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": null}, {"type": "Initialized", "status": "True"}]
    }});
    let new = patched(POD, &pod(), patch, PatchType::Strategic);
    assert_eq!(
        new["status"]["conditions"],
        json!([
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True"},
            {"type": "Initialized", "status": "True"}
        ])
    );
    assert_eq!(new["status"]["podIP"], "10.244.1.5");
}

/// The garbage collector's patch: ownerReferences merge by uid.
#[test]
fn owner_references_merge_by_uid() {
    let patch = json!({"metadata": {"ownerReferences": [
        {"uid": "0e2f7c55-2222-4c9e-8d1b-3b6f0e4a9d12", "blockOwnerDeletion": false}
    ]}});
    let new = patched(POD, &pod(), patch, PatchType::Strategic);
    let owner = &new["metadata"]["ownerReferences"][0];
    assert_eq!(owner["blockOwnerDeletion"], false);
    assert_eq!(owner["name"], "web-7d4b9c8f6d");
    assert_eq!(new["metadata"]["ownerReferences"].as_array().map(Vec::len), Some(1));
}

// ---- directives on objects and lists ----

#[test]
fn patch_replace_on_an_object_and_a_list() {
    let patch = json!({"spec": {"nodeSelector": {"$patch": "replace", "disk": "ssd"}}});
    let new = patched(POD, &pod(), patch, PatchType::Strategic);
    assert_eq!(new["spec"]["nodeSelector"], json!({"disk": "ssd"}));

    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "only", "image": "nginx:1.27"},
        {"$patch": "replace"}
    ]}}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Strategic);
    assert_eq!(containers(&new), &json!([{"name": "only", "image": "nginx:1.27"}]));
}

/// `$patch: delete` empties an object (the key stays, as on the real server).
#[test]
fn patch_delete_on_an_object() {
    let patch = json!({"spec": {"securityContext": {"$patch": "delete"}}});
    let new = patched(POD, &pod(), patch, PatchType::Strategic);
    assert_eq!(new["spec"]["securityContext"], json!({}));
}

/// A value new to the object is taken from the patch without its directives and nulls.
#[test]
fn new_values_lose_directives_and_nulls() {
    let patch = json!({"spec": {
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}, {"$patch": "delete", "ip": "10.0.0.2"}],
        "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": null}
    }});
    let new = patched(POD, &pod(), patch, PatchType::Strategic);
    assert_eq!(new["spec"]["hostAliases"], json!([{"ip": "10.0.0.1", "hostnames": ["db"]}]));
    assert_eq!(new["spec"]["dnsConfig"], json!({"nameservers": ["1.1.1.1"]}));
}

// ---- strategic patch errors ----

#[test]
fn bad_directives_are_refused() {
    let current = deployment();
    let e = failed(DEPLOYMENT, &current, br#"{"spec":{"strategy":{"$patch":"merge"}}}"#, PatchType::Strategic);
    assert!(matches!(&e, PatchError::BadDirective { path, .. } if path == "spec.strategy"), "{e}");
    assert_eq!(e.status(), 422);

    let body = br#"{"spec":{"template":{"spec":{"containers":[{"name":"web","$patch":"merge"}]}}}}"#;
    let e = failed(DEPLOYMENT, &current, body, PatchType::Strategic);
    assert!(e.to_string().contains("spec.template.spec.containers"), "{e}");

    let body = br#"{"spec":{"template":{"spec":{"$setElementOrder/containers":{"name":"web"}}}}}"#;
    let e = failed(DEPLOYMENT, &current, body, PatchType::Strategic);
    assert!(matches!(e, PatchError::BadFormat { .. }), "{e}");
    assert_eq!(e.status(), 400);

    let body = br#"{"metadata":{"$deleteFromPrimitiveListfinalizers":["a"]}}"#;
    let e = failed(POD, &pod(), body, PatchType::Strategic);
    assert!(matches!(e, PatchError::BadFormat { .. }), "{e}");
}

#[test]
fn list_items_need_their_merge_key() {
    let body = br#"{"spec":{"template":{"spec":{"containers":[{"image":"nginx:1.27"}]}}}}"#;
    let e = failed(DEPLOYMENT, &deployment(), body, PatchType::Strategic);
    match &e {
        PatchError::MissingMergeKey { path, key } => {
            assert_eq!((path.as_str(), key.as_str()), ("spec.template.spec.containers", "name"))
        }
        other => panic!("wrong error: {other}"),
    }
    assert_eq!(e.status(), 422);
}

#[test]
fn set_element_order_must_agree_with_the_patch() {
    let body = br#"{"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],
        "containers":[{"name":"sidecar","image":"a"},{"name":"web","image":"b"}]}}}}"#;
    let e = failed(DEPLOYMENT, &deployment(), body, PatchType::Strategic);
    assert!(matches!(&e, PatchError::OrderMismatch { path } if path == "spec.template.spec.containers"), "{e}");
}

#[test]
fn strategic_patch_must_be_an_object() {
    let e = failed(POD, &pod(), b"[1, 2]", PatchType::Strategic);
    assert!(matches!(e, PatchError::NotAnObject { found: "a list", .. }), "{e}");
    let e = failed(POD, &pod(), b"{\"metadata\": ", PatchType::Strategic);
    assert!(matches!(e, PatchError::BadJson(_)), "{e}");
    assert_eq!(e.status(), 400);
    // `null` is an empty patch.
    let same = apply(resource(POD.0, POD.1), &pod(), b"null", PatchType::Strategic).expect("applies");
    assert_eq!(same, pod());
}

// ---- JSON merge patch (RFC 7386) ----

/// `kubectl patch --type merge`: a list is replaced whole, even `containers`.
#[test]
fn merge_patch_replaces_lists() {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27", "args": null}]}}}});
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Merge);
    assert_eq!(containers(&new), &json!([{"name": "web", "image": "nginx:1.27"}]));
    assert_eq!(new["spec"]["template"]["spec"]["volumes"], deployment()["spec"]["template"]["spec"]["volumes"]);
}

#[test]
fn merge_patch_objects_and_nulls() {
    let patch = json!({
        "spec": {"strategy": {"rollingUpdate": null, "type": "Recreate"}, "paused": true},
        "metadata": {"annotations": {"note": {"nested": "x", "drop": null}}}
    });
    let new = patched(DEPLOYMENT, &deployment(), patch, PatchType::Merge);
    assert_eq!(new["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(new["spec"]["paused"], true);
    assert_eq!(new["metadata"]["annotations"]["note"], json!({"nested": "x"}));
}

#[test]
fn merge_patch_must_be_an_object() {
    let e = failed(POD, &pod(), b"null", PatchType::Merge);
    assert!(matches!(e, PatchError::NotAnObject { found: "null", .. }), "{e}");
    let e = failed(POD, &pod(), b"[]", PatchType::Merge);
    assert_eq!(e.status(), 400);
}

// ---- JSON patch (RFC 6902) ----

#[test]
fn json_patch_add_replace_remove_test() {
    let patch = json!([
        {"op": "test", "path": "/spec/containers/0/image", "value": "nginx:1.25"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.27"},
        {"op": "add", "path": "/metadata/labels/tier", "value": "frontend"},
        {"op": "remove", "path": "/metadata/labels/env"},
        {"op": "add", "path": "/spec/containers/0/ports/-", "value": {"containerPort": 9090}},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]);
    let new = patched(POD, &pod(), patch, PatchType::Json);
    assert_eq!(new["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(new["metadata"]["labels"], json!({"app": "web", "tier": "frontend"}));
    assert_eq!(new["spec"]["containers"][0]["ports"][2], json!({"containerPort": 9090}));
    assert_eq!(new["metadata"]["finalizers"], json!(["example.com/backup"]));
}

/// A failed `test` (someone changed the image meanwhile) applies nothing.
#[test]
fn json_patch_test_failure() {
    let current = pod();
    let body = br#"[
        {"op": "replace", "path": "/metadata/labels/app", "value": "api"},
        {"op": "test", "path": "/spec/containers/0/image", "value": "nginx:1.24"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.27"}
    ]"#;
    let e = failed(POD, &current, body, PatchType::Json);
    match &e {
        PatchError::OperationFailed { index, op, path, .. } => {
            assert_eq!((*index, *op, path.as_str()), (1, "test", "/spec/containers/0/image"))
        }
        other => panic!("wrong error: {other}"),
    }
    assert_eq!(e.status(), 422);
    assert_eq!(current, pod());
}

#[test]
fn json_patch_errors() {
    let e = failed(POD, &pod(), br#"[{"op": "remove", "path": "/metadata/labels/nope"}]"#, PatchType::Json);
    assert!(matches!(e, PatchError::OperationFailed { op: "remove", .. }), "{e}");
    assert!(e.to_string().contains("/metadata/labels/nope"), "{e}");

    let e = failed(POD, &pod(), br#"[{"op": "add", "path": "/spec/nope/deeper", "value": 1}]"#, PatchType::Json);
    assert_eq!(e.status(), 422);

    let e = failed(POD, &pod(), br#"{"op": "add", "path": "/a", "value": 1}"#, PatchType::Json);
    assert!(matches!(e, PatchError::NotOperations(_)), "{e}");
    assert_eq!(e.status(), 400);

    let e = failed(POD, &pod(), br#"[{"op": "frobnicate", "path": "/a"}]"#, PatchType::Json);
    assert_eq!(e.status(), 400);

    let many: Vec<Value> =
        (0..=MAX_JSON_PATCH_OPERATIONS).map(|_| json!({"op": "test", "path": "/kind", "value": "Pod"})).collect();
    let body = serde_json::to_vec(&many).expect("serializes");
    let e = failed(POD, &pod(), &body, PatchType::Json);
    assert!(matches!(e, PatchError::TooManyOperations(n) if n == MAX_JSON_PATCH_OPERATIONS + 1), "{e}");
    assert_eq!(e.status(), 413);
}

// ---- server-side apply ----

#[test]
fn server_side_apply_is_refused() {
    let e = failed(DEPLOYMENT, &deployment(), b"apiVersion: apps/v1\nkind: Deployment\n", PatchType::Apply);
    assert!(matches!(e, PatchError::ApplyUnsupported));
    assert_eq!(e.status(), 415);
    assert!(e.to_string().contains("--server-side"), "{e}");
}
