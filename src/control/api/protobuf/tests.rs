//! Bodies kubectl v1.32 sent (captured), and hand-built ones from a tiny encoder below, decoded
//! and compared with the JSON kubectl would have sent.

use serde_json::{Value, json};

use super::message::{Decoder, MAX_DEPTH, MAX_VALUES, Path};
use super::table::{self, Card, Presence, Ty};
use super::*;
use crate::control::api::resources::RESOURCES;

// ---- a tiny protobuf encoder ----

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Field `n` as a varint (negative numbers as protobuf writes them: 10 bytes).
fn int(n: u32, v: i64) -> Vec<u8> {
    [varint(u64::from(n) << 3), varint(v as u64)].concat()
}

/// Field `n` as length-delimited bytes.
fn bytes(n: u32, b: &[u8]) -> Vec<u8> {
    [varint(u64::from(n) << 3 | 2), varint(b.len() as u64), b.to_vec()].concat()
}

fn string(n: u32, s: &str) -> Vec<u8> {
    bytes(n, s.as_bytes())
}

/// Field `n` as a message made of `parts`.
fn msg(n: u32, parts: &[Vec<u8>]) -> Vec<u8> {
    bytes(n, &parts.concat())
}

/// A map entry of field `n`: {key=1, value=2}.
fn entry(n: u32, key: &str, value: Vec<u8>) -> Vec<u8> {
    msg(n, &[string(1, key), value])
}

/// Time/MicroTime {seconds=1, nanos=2}.
fn time(n: u32, seconds: i64, nanos: i64) -> Vec<u8> {
    msg(n, &[int(1, seconds), int(2, nanos)])
}

/// The envelope: magic, runtime.Unknown {typeMeta, raw, contentEncoding, contentType}.
fn object(api_version: &str, kind: &str, parts: &[Vec<u8>]) -> Vec<u8> {
    let typemeta = msg(1, &[string(1, api_version), string(2, kind)]);
    [MAGIC.to_vec(), typemeta, msg(2, parts), string(3, ""), string(4, "")].concat()
}

/// ObjectMeta as Go writes it: every plain field, empty or not.
fn meta(name: &str, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut parts = vec![string(1, name), string(2, ""), string(3, ""), string(4, ""), string(5, "")];
    parts.extend([string(6, ""), int(7, 0), bytes(8, &[])]);
    parts.extend(extra.iter().cloned());
    msg(1, &parts)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn ok(body: &[u8]) -> Value {
    decode(body).unwrap_or_else(|e| panic!("decode failed: {e}"))
}

fn err(body: &[u8]) -> String {
    match decode(body) {
        Ok(v) => panic!("decoded, but an error was expected: {v}"),
        Err(e) => e.to_string(),
    }
}

// ---- what kubectl sends ----

/// `kubectl create configmap c --from-literal=a=b` (kubectl v1.32).
const KUBECTL_CONFIGMAP: &str =
    "6b3873000a0f0a0276311209436f6e6669674d6170121b0a110a016312001a0022002a0032003800420012060a01611201621a002200";

/// `kubectl create deployment app --image=busybox:1.36 --replicas=2 --port=8080` (v1.32).
const KUBECTL_DEPLOYMENT: &str = "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c2010a1f0a0361707012001a0022002a003200380042005a0a0a0361707012036170701290010802120c0a0a0a0361707012036170701a760a1c0a0012001a0022002a003200380042005a0a0a036170701203617070125612380a0762757379626f78120c62757379626f783a312e33362a00320b0a00100018903f22002a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200";

/// `kubectl create service nodeport api --tcp=443:8443` (v1.32).
const KUBECTL_SERVICE: &str = "6b3873000a0d0a027631120753657276696365126a0a1f0a0361706912001a0022002a003200380042005a0a0a03617070120361706912430a1d0a083434332d38343433120354435018bb032207080010fb411a002800120a0a0361707012036170691a0022084e6f6465506f72743a00420052005a00600068001a020a001a002200";

#[test]
fn kubectl_configmap() {
    assert_eq!(
        ok(&unhex(KUBECTL_CONFIGMAP)),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}})
    );
}

#[test]
fn kubectl_deployment() {
    // What `kubectl create deployment ... -o json --dry-run=client` prints, but for the null
    // creationTimestamps, which are left out.
    let want = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "labels": {"app": "app"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{
                    "name": "busybox", "image": "busybox:1.36",
                    "ports": [{"containerPort": 8080}],
                    "resources": {},
                }]},
            },
            "strategy": {},
        },
        "status": {},
    });
    assert_eq!(ok(&unhex(KUBECTL_DEPLOYMENT)), want);
}

#[test]
fn kubectl_service() {
    let want = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "labels": {"app": "api"}},
        "spec": {
            "ports": [{"name": "443-8443", "protocol": "TCP", "port": 443, "targetPort": 8443}],
            "selector": {"app": "api"},
            "type": "NodePort",
        },
        "status": {"loadBalancer": {}},
    });
    assert_eq!(ok(&unhex(KUBECTL_SERVICE)), want);
}

// ---- types and empty values ----

#[test]
fn scalars_maps_and_nested_lists() {
    let container = |name: &str, ports: &[i64]| {
        let mut parts = vec![string(1, name), string(2, "busybox"), string(3, "sh"), string(3, "-c")];
        for p in ports {
            parts.push(msg(6, &[string(1, ""), int(2, 0), int(3, *p), string(4, "TCP")]));
        }
        parts.push(msg(
            8,
            &[entry(1, "cpu", msg(2, &[string(1, "100m")])), entry(2, "memory", msg(2, &[string(1, "64Mi")]))],
        ));
        msg(2, &parts)
    };
    let body = object(
        "v1",
        "Pod",
        &[
            meta("web", &[entry(11, "app", string(2, "web")), entry(12, "note", string(2, "")), string(14, "x/y")]),
            msg(
                2,
                &[
                    container("a", &[80]),
                    container("b", &[53, 8080, 9090]),
                    int(4, -5),
                    int(11, 0),
                    int(25, -7),
                    msg(14, &[int(2, 0), int(3, 0), bytes(4, &[varint(1), varint(2), varint(3)].concat())]),
                ],
            ),
        ],
    );
    let pod = ok(&body);
    assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(pod["metadata"]["annotations"], json!({"note": ""}));
    assert_eq!(pod["metadata"]["finalizers"], json!(["x/y"]));
    let spec = &pod["spec"];
    assert_eq!(spec["containers"][1]["ports"][2], json!({"containerPort": 9090, "protocol": "TCP"}));
    assert_eq!(spec["containers"][1]["command"], json!(["sh", "-c"]));
    assert_eq!(spec["containers"][0]["resources"], json!({"limits": {"cpu": "100m"}, "requests": {"memory": "64Mi"}}));
    // A negative int64 and int32 (pointers: kept), a false plain bool (omitempty: dropped).
    assert_eq!(spec["terminationGracePeriodSeconds"], -5);
    assert_eq!(spec["priority"], -7);
    assert!(spec.get("hostNetwork").is_none(), "{spec}");
    // Pointers set to zero stay; a packed list of int64.
    assert_eq!(
        spec["securityContext"],
        json!({"runAsUser": 0, "runAsNonRoot": false, "supplementalGroups": [1, 2, 3]})
    );
}

#[test]
fn bytes_are_base64() {
    let body = object(
        "v1",
        "Secret",
        &[meta("s", &[]), entry(2, "p", bytes(2, b"x")), entry(2, "bin", bytes(2, &[0, 255, 1])), string(3, "Opaque")],
    );
    assert_eq!(
        ok(&body),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"p": "eA==", "bin": "AP8B"}, "type": "Opaque"})
    );
}

#[test]
fn pointers_keep_zero_and_always_fields_are_filled() {
    // replicas=0 is a pointer (kept); containerPort absent is always in the JSON (0).
    let body = object(
        "apps/v1",
        "Deployment",
        &[
            meta("d", &[]),
            msg(
                2,
                &[int(1, 0), msg(3, &[msg(2, &[msg(2, &[string(2, "img"), msg(6, &[string(4, "UDP")])])])]), int(7, 0)],
            ),
        ],
    );
    let d = ok(&body);
    assert_eq!(d["spec"]["replicas"], 0);
    assert!(d["spec"].get("paused").is_none());
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0],
        json!({"name": "", "image": "img", "ports": [{"containerPort": 0, "protocol": "UDP"}]})
    );
}

#[test]
fn times_quantities_and_int_or_string() {
    let body = object(
        "coordination.k8s.io/v1",
        "Lease",
        &[
            meta("l", &[time(8, 1_704_067_200, 999)]),
            msg(2, &[string(1, "me"), int(2, 15), time(4, 1_704_067_200, 123_456_789)]),
        ],
    );
    let lease = ok(&body);
    assert_eq!(lease["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
    assert_eq!(
        lease["spec"],
        json!({"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": "2024-01-01T00:00:00.123456Z"})
    );

    let port = |target: Vec<u8>| {
        let body = object("v1", "Service", &[meta("s", &[]), msg(2, &[msg(1, &[int(3, 80), target])])]);
        ok(&body)["spec"]["ports"][0].clone()
    };
    assert_eq!(port(msg(4, &[int(1, 0), int(2, 8080), string(3, "")])), json!({"port": 80, "targetPort": 8080}));
    assert_eq!(port(msg(4, &[int(1, 1), int(2, 0), string(3, "http")])), json!({"port": 80, "targetPort": "http"}));
    // The zero IntOrString of an omitempty field: left out, so the server defaults it.
    assert_eq!(port(msg(4, &[int(1, 0), int(2, 0), string(3, "")])), json!({"port": 80}));
    let bad = err(&object("v1", "Service", &[msg(2, &[msg(1, &[msg(4, &[int(1, 7)])])])]));
    assert!(bad.contains("Service spec.ports[0].targetPort: type 7"), "{bad}");
}

#[test]
fn inline_fields_are_the_parents() {
    let pv = object(
        "v1",
        "PersistentVolume",
        &[
            meta("pv", &[]),
            msg(
                2,
                &[
                    entry(1, "storage", msg(2, &[string(1, "1Gi")])),
                    msg(2, &[msg(3, &[string(1, "/data")])]),
                    string(3, "ReadWriteOnce"),
                ],
            ),
        ],
    );
    assert_eq!(
        ok(&pv)["spec"],
        json!({"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data"}, "accessModes": ["ReadWriteOnce"]})
    );
    // Volume inlines VolumeSource, ConfigMapVolumeSource inlines LocalObjectReference.
    let pod = object(
        "v1",
        "Pod",
        &[
            meta("p", &[]),
            msg(
                2,
                &[msg(1, &[string(1, "cfg"), msg(2, &[msg(19, &[msg(1, &[string(1, "settings")]), int(3, 0o644)])])])],
            ),
        ],
    );
    assert_eq!(
        ok(&pod)["spec"]["volumes"],
        json!([{"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}}])
    );
}

#[test]
fn delete_options_and_eviction() {
    let opts = [int(1, 0), msg(2, &[string(1, "1234")]), string(4, "Foreground"), string(5, "All")];
    for api_version in ["v1", "meta.k8s.io/v1", "apps/v1"] {
        let v = ok(&object(api_version, "DeleteOptions", &opts));
        assert_eq!(v["gracePeriodSeconds"], 0, "{v}");
        assert_eq!(v["preconditions"], json!({"uid": "1234"}));
        assert_eq!(v["propagationPolicy"], "Foreground");
        assert_eq!(v["dryRun"], json!(["All"]));
        assert_eq!(v["apiVersion"], api_version);
    }
    let ev = ok(&object("policy/v1", "Eviction", &[meta("web", &[string(3, "default")]), msg(2, &[int(1, 30)])]));
    assert_eq!(
        ev,
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web", "namespace": "default"}, "deleteOptions": {"gracePeriodSeconds": 30}})
    );
}

#[test]
fn unknown_fields_are_skipped_and_repeats_merge() {
    let body = object(
        "v1",
        "ConfigMap",
        &[
            int(99, 7),
            msg(1, &[string(1, "c"), bytes(500, b"future"), [varint(98 << 3 | 1), vec![0; 8]].concat()]),
            [varint(97 << 3 | 5), vec![0; 4]].concat(),
            // metadata a second time: merged into the first, as protobuf does.
            msg(1, &[entry(11, "k", string(2, "v"))]),
            entry(2, "a", string(2, "1")),
            entry(2, "a", string(2, "2")),
        ],
    );
    assert_eq!(
        ok(&body),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"k": "v"}}, "data": {"a": "2"}})
    );
}

// ---- bad input ----

#[test]
fn errors_name_the_field() {
    assert_eq!(decode(b"{\"kind\":\"Pod\"}"), Err(ProtoError::NotProtobuf));
    assert!(matches!(decode(&object("v1", "Widget", &[])), Err(ProtoError::UnknownKind { .. })));
    assert!(matches!(decode(&object("apps/v1", "Pod", &[])), Err(ProtoError::UnknownKind { .. })));
    let gz = [MAGIC.to_vec(), msg(1, &[string(1, "v1"), string(2, "Pod")]), string(3, "gzip")].concat();
    assert!(err(&gz).contains("contentEncoding \"gzip\""));
    assert!(err(&MAGIC).contains("names no kind"));

    let wrong = object("apps/v1", "Deployment", &[msg(2, &[string(1, "two")])]);
    assert_eq!(
        err(&wrong),
        "Deployment spec.replicas: length-delimited bytes (wire type 2) where an int32 (a varint) was expected"
    );
    let wrong =
        object("v1", "Pod", &[msg(2, &[msg(2, &[string(1, "c"), msg(6, &[int(3, 80)]), msg(6, &[int(4, 1)])])])]);
    assert_eq!(
        err(&wrong),
        "Pod spec.containers[0].ports[1].protocol: a varint (wire type 0) where a string (length-delimited) was expected"
    );
    let not_utf8 = object("v1", "ConfigMap", &[entry(2, "k", bytes(2, &[0xff]))]);
    assert_eq!(err(&not_utf8), "ConfigMap data[\"k\"]: the string is not UTF-8");
}

#[test]
fn truncated_and_mangled_bodies_are_errors_not_panics() {
    let full = unhex(KUBECTL_DEPLOYMENT);
    for len in 0..full.len() {
        // Every cut either decodes (a cut between fields of the envelope) or is an error.
        let _ = decode(&full[..len]);
    }
    let cut = &full[..full.len() - 40];
    assert!(decode(cut).is_err());
    // Flip bytes with a fixed pseudo-random sequence: never a panic.
    let mut seed: u32 = 12345;
    for _ in 0..5000 {
        let mut b = full.clone();
        for _ in 0..3 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = 4 + (seed as usize >> 8) % (b.len() - 4);
            b[i] = (seed >> 16) as u8;
        }
        let _ = decode(&b);
    }
}

#[test]
fn sizes_and_depths_are_bounded() {
    // More values than allowed: 2-byte empty strings.
    let many: Vec<u8> = std::iter::repeat_n(string(14, ""), MAX_VALUES + 1).flatten().collect();
    let body = object("v1", "ConfigMap", &[bytes(1, &many)]);
    assert!(err(&body).contains("more than"), "{}", err(&body));
    // Too deep (only RawExtension nesting could get there; the table's kinds nest ~15 deep).
    let mut m = serde_json::Map::new();
    let r = Decoder::default().message(&[], 0, &mut m, &Path::ROOT, MAX_DEPTH + 1);
    assert!(r.is_err_and(|e| e.problem.contains("deeper than")));
}

#[test]
fn raw_extensions_embed_json_or_protobuf() {
    let mut d = Decoder::default();
    let inner = object("v1", "ConfigMap", &[meta("inner", &[])]);
    let v = d.value(Ty::RawExtension, wire::Wire::Bytes(&[]), &Path::ROOT, 0);
    assert_eq!(v.map_err(|e| e.problem), Ok(Value::Null));
    let raw = bytes(1, &inner);
    let v = d.value(Ty::RawExtension, wire::Wire::Bytes(&raw), &Path::ROOT, 0).map_err(|e| e.problem);
    assert_eq!(v, Ok(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner"}})));
    let raw = bytes(1, br#"{"a": [1, 2]}"#);
    assert_eq!(
        d.value(Ty::RawExtension, wire::Wire::Bytes(&raw), &Path::ROOT, 0).map_err(|e| e.problem),
        Ok(json!({"a": [1, 2]}))
    );
    let raw = bytes(1, b"{nope");
    assert!(d.value(Ty::RawExtension, wire::Wire::Bytes(&raw), &Path::ROOT, 0).is_err());
    let d90 = int(1, 90_000_000_000);
    let v = d.value(Ty::Duration, wire::Wire::Bytes(&d90), &Path::ROOT, 0).map_err(|e| e.problem);
    assert_eq!(v, Ok(json!("1m30s")));
}

// ---- the table ----

#[test]
fn every_served_kind_is_in_the_table() {
    for r in RESOURCES {
        assert!(
            table::kind(&r.api_version(), r.kind).is_some(),
            "{} {} has no protobuf schema",
            r.api_version(),
            r.kind
        );
    }
    for (v, k) in [("v1", "Binding"), ("policy/v1", "Eviction"), ("autoscaling/v1", "Scale"), ("v1", "DeleteOptions")] {
        assert!(table::kind(v, k).is_some(), "{v} {k}");
    }
    assert_eq!(kinds().count(), RESOURCES.len() + 3);
}

#[test]
fn the_table_is_consistent() {
    let count = schema::MESSAGES.len();
    for m in schema::MESSAGES {
        assert!(m.fields.windows(2).all(|w| w[0].number < w[1].number), "{}: fields out of order", m.name);
        for f in m.fields {
            if let Ty::Message(i) = f.ty {
                assert!(usize::from(i) < count, "{}.{}", m.name, f.json);
            }
            assert_eq!(f.presence == Presence::Inline, f.json.is_empty(), "{}.{}", m.name, f.json);
            if f.presence == Presence::Inline {
                assert!(matches!((f.card, f.ty), (Card::One, Ty::Message(_))), "{}", m.name);
            }
        }
    }
    assert_eq!(table::message(table::kind("v1", "Pod").unwrap_or(0)).name, "k8s.io.api.core.v1.Pod");
}

#[test]
fn content_types() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf("Application/Vnd.Kubernetes.Protobuf; charset=binary"));
    assert!(!is_protobuf("application/json"));
}
