#!/usr/bin/env python3
"""Generate src/control/api/protobuf/schema.rs: the protobuf schema of the kinds the API server takes.

Kubernetes clients (kubectl's typed commands) may send objects in Kubernetes' protobuf encoding.
The decoder in src/control/api/protobuf/mod.rs turns such a body into the JSON the client would
have sent; it is driven by a table, one entry per protobuf message: field number -> JSON name,
type, and what Go's JSON encoding does with an empty value. This script writes that table from
the two sources that define it, at one release tag:

  * kubernetes/api and kubernetes/apimachinery `generated.proto` files: message names, field
    numbers, protobuf types, repeated and map fields;
  * the Go types (`types.go` and friends) of the same packages: each field's struct tag
    (`json:"hostIP,omitempty" protobuf:"bytes,11,opt,name=hostIP"`) gives the JSON name,
    `omitempty` and `,inline`, and the Go type says whether the field is a pointer (a present
    zero value is kept) or not (Go's protobuf encoder writes it even when empty).

Usage (the committed table was made from the v0.33.13 tags, matching k8s-openapi's v1_33):

    git clone --depth 1 --branch v0.33.13 https://github.com/kubernetes/api /tmp/k8s-api
    git clone --depth 1 --branch v0.33.13 https://github.com/kubernetes/apimachinery /tmp/k8s-apimachinery
    scripts/gen-proto-schema.py --api /tmp/k8s-api --apimachinery /tmp/k8s-apimachinery \
        --tag v0.33.13 --check-k8s-pb ~/.cargo/registry/src/*/k8s-pb-0.9.0/src \
        > src/control/api/protobuf/schema.rs

(mod.rs declares the module `#[rustfmt::skip]`: the file stays exactly as this script writes it.)

Only the standard library is used. The script fails loudly when a proto field has no Go field
or the two disagree on a field's name, rather than writing a table that is silently wrong.
--check-k8s-pb compares every field number and type with kube-rs's k8s-pb crate (prost code
generated from the same .proto files), a second reading of the same facts.
"""

import argparse
import os
import re
import sys

# The kinds the API server takes as protobuf: every kind of src/control/api/resources.rs, and the
# bodies of its subresources (binding, eviction, scale) and of DELETE (DeleteOptions, sent with
# the apiVersion of the resource's group, so it is matched on its kind alone).
KINDS = [
    ("v1", "k8s.io.api.core.v1", ["Namespace", "Pod", "Service", "Endpoints", "Node", "ConfigMap",
                                   "Secret", "Event", "PersistentVolume", "PersistentVolumeClaim",
                                   "ServiceAccount", "Binding"]),
    ("coordination.k8s.io/v1", "k8s.io.api.coordination.v1", ["Lease"]),
    ("discovery.k8s.io/v1", "k8s.io.api.discovery.v1", ["EndpointSlice"]),
    ("apps/v1", "k8s.io.api.apps.v1", ["Deployment", "ReplicaSet", "DaemonSet"]),
    ("batch/v1", "k8s.io.api.batch.v1", ["Job", "CronJob"]),
    ("storage.k8s.io/v1", "k8s.io.api.storage.v1", ["StorageClass"]),
    ("policy/v1", "k8s.io.api.policy.v1", ["Eviction"]),
    ("autoscaling/v1", "k8s.io.api.autoscaling.v1", ["Scale"]),
]
DELETE_OPTIONS = "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"

# Messages with a JSON form of their own (custom MarshalJSON in Go): the decoder knows them.
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
}

SCALARS = {
    "string": "Str",
    "bool": "Bool",
    "int32": "Int32",
    "int64": "Int64",
    "uint32": "UInt32",
    "uint64": "UInt64",
    "double": "Double",
    "float": "Float",
    "bytes": "Bytes",
}


def fail(msg):
    sys.exit(f"gen-proto-schema: {msg}")


# ---- generated.proto -------------------------------------------------------------------------

FIELD_RE = re.compile(r"^\s*(optional|repeated|required)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP_RE = re.compile(r"^\s*map<\s*(\S+)\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")


def parse_proto(path):
    """{message name: [(label, type, name, number)]} and the package of one generated.proto."""
    package, messages, current, depth = None, {}, None, 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            code = line.split("//", 1)[0]
            m = re.match(r"^\s*package\s+([\w.]+)\s*;", code)
            if m:
                package = m.group(1)
                continue
            m = re.match(r"^message\s+(\w+)\s*\{", code)
            if m and depth == 0:
                current = m.group(1)
                messages[current] = []
                depth = 1
                continue
            if current is None:
                continue
            if re.match(r"^\s*(message|oneof|enum)\b", code):
                fail(f"{path}: nested {code.strip()} in {current} is not handled")
            m = MAP_RE.match(code)
            if m:
                key, value, name, num = m.groups()
                messages[current].append((("map", key), value, name, int(num)))
                continue
            m = FIELD_RE.match(code)
            if m:
                label, ty, name, num = m.groups()
                messages[current].append((label, ty, name, int(num)))
                continue
            depth += code.count("{") - code.count("}")
            if depth == 0:
                current = None
    if package is None:
        fail(f"{path}: no package line")
    return package, messages


# ---- Go struct tags --------------------------------------------------------------------------

NAMED_RE = re.compile(r"^\s*(\w+)\s+([^\s`]+)\s+`([^`]*)`")
EMBEDDED_RE = re.compile(r"^\s*([^\s`]+)\s+`([^`]*)`")
TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go_dir(directory):
    """{struct name: {proto number: (go type, json tag, proto name or None)}} of one Go package."""
    structs = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".go") or name.endswith("_test.go") or name.startswith("zz_generated"):
            continue
        if name == "generated.pb.go":
            continue
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            current = None
            for line in f:
                m = re.match(r"^type\s+(\w+)\s+struct\s*\{", line)
                if m:
                    current = m.group(1)
                    structs.setdefault(current, {})
                    continue
                if current is None:
                    continue
                if line.startswith("}"):
                    current = None
                    continue
                code = line.strip()
                if code.startswith("//"):
                    continue
                m = NAMED_RE.match(code)
                if m:
                    go_type, tag = m.group(2), m.group(3)
                else:
                    m = EMBEDDED_RE.match(code)
                    if not m:
                        continue
                    go_type, tag = m.group(1), m.group(2)
                tags = dict(TAG_RE.findall(tag))
                if "protobuf" not in tags or tags["protobuf"] == "-":
                    continue
                parts = tags["protobuf"].split(",")
                # The name= part is missing on some embedded fields: fields are matched by number.
                pname = next((p[5:] for p in parts if p.startswith("name=")), None)
                number = int(parts[1])
                if number in structs[current]:
                    fail(f"{directory}/{name}: {current}: protobuf field {number} twice")
                structs[current][number] = (go_type, tags.get("json"), pname)
    return structs


# ---- the table -------------------------------------------------------------------------------


PROST_RE = re.compile(r'#\[prost\((\w+)(.*)tag = "(\d+)"')


def check_k8s_pb(src, order, protos):
    """Compare the table's messages with kube-rs's k8s-pb (prost structs): an independent
    reading of the same .proto files. Prints a summary to stderr; fails on any difference."""
    structs = {}
    for dirpath, _, filenames in os.walk(src):
        if "mod.rs" not in filenames:
            continue
        package = os.path.relpath(dirpath, src).replace(os.sep, ".")
        current = None
        with open(os.path.join(dirpath, "mod.rs"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r"pub struct (\w+) \{", line)
                if m:
                    current = structs.setdefault((package, m.group(1).lower()), {})
                    continue
                m = PROST_RE.search(line)
                if m and current is not None:
                    cardinality = "repeated" if re.search(r"\brepeated\b", m.group(2)) else "one"
                    current[int(m.group(3))] = (m.group(1), cardinality)
                if line.startswith("}"):
                    current = None
    checked = 0
    for fqn in order:
        package, name = fqn.rsplit(".", 1)
        package = package.removeprefix("k8s.io.")
        pb = structs.get((package, name.lower()))
        if pb is None:
            fail(f"--check-k8s-pb: {fqn} is not in k8s-pb")
        for label, ty, field, number in protos[fqn]:
            got = pb.get(number)
            if got is None:
                fail(f"--check-k8s-pb: {fqn}.{field} ({number}) is not in k8s-pb")
            kind, cardinality = got
            if isinstance(label, tuple):
                ok = kind in ("map", "btree_map")
            elif ty in SCALARS:
                ok = kind == ty and (cardinality == "repeated") == (label == "repeated")
            else:
                ok = kind == "message" and (cardinality == "repeated") == (label == "repeated")
            if not ok:
                fail(f"--check-k8s-pb: {fqn}.{field} ({number}): {label} {ty} here, {got} in k8s-pb")
            checked += 1
    print(f"--check-k8s-pb: {checked} fields of {len(order)} messages agree with k8s-pb", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", required=True, help="a checkout of github.com/kubernetes/api")
    ap.add_argument("--apimachinery", required=True, help="a checkout of github.com/kubernetes/apimachinery")
    ap.add_argument("--tag", required=True, help="the tag both checkouts are at (written in the header)")
    ap.add_argument("--check-k8s-pb", metavar="DIR",
                    help="also compare every field number and type with the k8s-pb crate's prost structs "
                         "(its src/ directory, e.g. ~/.cargo/registry/src/*/k8s-pb-0.9.0/src)")
    args = ap.parse_args()

    protos = {}  # message FQN -> fields
    go = {}  # proto package -> structs
    for root in (args.api, args.apimachinery):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            if "generated.proto" not in filenames:
                continue
            package, messages = parse_proto(os.path.join(dirpath, "generated.proto"))
            for name, fields in messages.items():
                protos[f"{package}.{name}"] = fields
            go[package] = parse_go_dir(dirpath)

    roots = []
    for api_version, package, kinds in KINDS:
        for kind in kinds:
            roots.append((api_version, kind, f"{package}.{kind}"))

    # Every message reachable from the roots, in a stable order (breadth first).
    order, index = [], {}

    def resolve(ty, package):
        if ty in SCALARS:
            return None
        fqn = ty[1:] if ty.startswith(".") else f"{package}.{ty}"
        if fqn not in protos:
            fail(f"unknown message type {ty} (in package {package})")
        return fqn

    def visit(fqn):
        if fqn in index or fqn in SPECIAL:
            return
        index[fqn] = len(order)
        order.append(fqn)

    for _, _, fqn in roots:
        visit(fqn)
    visit(DELETE_OPTIONS)
    i = 0
    while i < len(order):
        fqn = order[i]
        package = fqn.rsplit(".", 1)[0]
        for label, ty, _, _ in protos[fqn]:
            for t in ([label[1], ty] if isinstance(label, tuple) else [ty]):
                ref = resolve(t, package)
                if ref:
                    visit(ref)
        i += 1

    if args.check_k8s_pb:
        check_k8s_pb(args.check_k8s_pb, order, protos)

    def ty_expr(ty, package):
        if ty in SCALARS:
            return f"Ty::{SCALARS[ty]}"
        fqn = resolve(ty, package)
        if fqn in SPECIAL:
            return f"Ty::{SPECIAL[fqn]}"
        return f"Ty::Message({index[fqn]})"

    out = []
    out.append(f"// @generated by scripts/gen-proto-schema.py from kubernetes/api and kubernetes/apimachinery {args.tag}")
    out.append("// (generated.proto for field numbers and types, the Go struct tags for JSON names and empty")
    out.append("// values). Do not edit: change the script and run it again (its header says how).")
    out.append("")
    out.append("use super::table::{Card, Card::*, Field, Message, Presence, Presence::*, Ty};")
    out.append("")
    out.append("const fn f(number: u32, json: &'static str, ty: Ty, card: Card, presence: Presence) -> Field {")
    out.append("    Field { number, json, ty, card, presence }")
    out.append("}")
    out.append("")
    out.append("/// The kinds taken, by apiVersion and kind: the index of their message in [`MESSAGES`].")
    out.append("pub static KINDS: &[(&str, &str, u16)] = &[")
    for api_version, kind, fqn in roots:
        out.append(f'    ("{api_version}", "{kind}", {index[fqn]}),')
    out.append("];")
    out.append("")
    out.append("/// meta/v1 DeleteOptions, taken under any apiVersion (clients send their group's).")
    out.append(f"pub const DELETE_OPTIONS: u16 = {index[DELETE_OPTIONS]};")
    out.append("")
    out.append("/// Every message the kinds reach; fields in field-number order.")
    out.append("pub static MESSAGES: &[Message] = &[")
    for n, fqn in enumerate(order):
        package, short = fqn.rsplit(".", 1)
        structs = go.get(package, {})
        if short not in structs:
            fail(f"{fqn}: no Go struct {short} in the package's Go files")
        gofields = structs[short]
        out.append(f'    // {n}')
        out.append(f'    Message {{ name: "{fqn}", fields: &[')
        for label, ty, name, number in sorted(protos[fqn], key=lambda x: x[3]):
            if number not in gofields:
                fail(f"{fqn}.{name}: no Go field with protobuf number {number}")
            go_type, json_tag, go_name = gofields[number]
            if go_name not in (None, name):
                fail(f"{fqn}: field {number} is {name} in generated.proto but {go_name} in the Go tag")
            if json_tag is None:
                fail(f"{fqn}.{name}: the Go field has no json tag")
            json_opts = json_tag.split(",")
            json_name = json_opts[0]
            if json_name == "-":
                fail(f"{fqn}.{name}: json:\"-\" on a protobuf field")
            inline = "inline" in json_opts[1:]
            if inline != (json_name == ""):
                fail(f"{fqn}.{name}: json tag {json_tag!r}: inline fields have no name, and only they")
            if isinstance(label, tuple):
                if label[1] != "string":
                    fail(f"{fqn}.{name}: map key {label[1]} (only string keys are handled)")
                card, value = "Map", ty_expr(ty, package)
            else:
                card, value = ("Repeated" if label == "repeated" else "One"), ty_expr(ty, package)
            if inline:
                if card != "One" or not value.startswith("Ty::Message"):
                    fail(f"{fqn}.{name}: an inline field must be one message")
                presence = "Inline"
            elif go_type.startswith("*"):
                presence = "Pointer"
            elif "omitempty" in json_opts[1:]:
                presence = "OmitEmpty"
            else:
                presence = "Always"
            out.append(f'        f({number}, "{json_name}", {value}, {card}, {presence}),')
        out.append("    ] },")
    out.append("];")
    print("\n".join(out))


if __name__ == "__main__":
    main()
