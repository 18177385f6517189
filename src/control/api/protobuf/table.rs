//! The shape of the schema table (schema.rs is generated): what the decoder knows of a message.
//!
//! A protobuf message on the wire is a list of (field number, value) pairs; nothing in it says
//! what the numbers mean. The table does, one entry per Kubernetes message: number -> JSON name,
//! value type, one/repeated/map, and how Go's JSON encoding treats the field when it is empty.

use super::schema::{DELETE_OPTIONS, KINDS, MESSAGES};

/// The type of a field's value (of each element for repeated fields, of each value for maps).
/// The generator writes whichever the kinds need; today's kinds need no RawExtension, Duration,
/// unsigned or floating-point field, but the decoder reads them all.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Bool,
    Int32,
    Int64,
    UInt32,
    UInt64,
    Double,
    Float,
    /// Raw bytes: a base64 string in JSON (`Secret.data`).
    Bytes,
    /// Another message of the table, by index in `MESSAGES`.
    Message(u16),
    /// meta/v1 Time `{seconds=1, nanos=2}`: RFC 3339 to the second, in UTC.
    Time,
    /// meta/v1 MicroTime: RFC 3339 with microseconds.
    MicroTime,
    /// meta/v1 Duration `{duration=1}` (nanoseconds): a Go duration string ("1m30s").
    Duration,
    /// meta/v1 FieldsV1 `{Raw=1}`: JSON bytes.
    FieldsV1,
    /// resource.Quantity `{string=1}`: "100m", "1Gi".
    Quantity,
    /// intstr.IntOrString `{type=1, intVal=2, strVal=3}`: 80 or "http".
    IntOrString,
    /// runtime.RawExtension `{raw=1}`: an embedded object, JSON (or Kubernetes protobuf).
    RawExtension,
}

/// How many values a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    One,
    Repeated,
    /// `map<string, V>`: entries are messages {key=1, value=2}; a JSON object.
    Map,
}

/// What Go's JSON encoding does with the field, which the decoder copies. Go's protobuf encoder
/// writes every non-pointer field, empty or not, so emptiness on the wire means little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// A Go pointer: present on the wire means set, even to 0, false or "" (`replicas: 0`).
    Pointer,
    /// `json:",omitempty"` on a plain value: an empty value ("", 0, false) is left out.
    OmitEmpty,
    /// No omitempty: always in the JSON, its zero value when the wire has none.
    Always,
    /// `json:",inline"`: the message's fields are the parent's (`Volume` and `VolumeSource`).
    Inline,
}

#[derive(Debug)]
pub struct Field {
    pub number: u32,
    /// The JSON name ("" for an inline field).
    pub json: &'static str,
    pub ty: Ty,
    pub card: Card,
    pub presence: Presence,
}

#[derive(Debug)]
pub struct Message {
    /// The protobuf name, `k8s.io.api.core.v1.Container`.
    pub name: &'static str,
    /// In field-number order.
    pub fields: &'static [Field],
}

impl Message {
    pub fn field(&self, number: u32) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields.binary_search_by_key(&number, |f| f.number).ok().map(|i| &fields[i])
    }

    /// The short name, `Container`.
    pub fn short_name(&self) -> &'static str {
        self.name.rsplit('.').next().unwrap_or(self.name)
    }
}

pub fn message(index: u16) -> &'static Message {
    &MESSAGES[usize::from(index)]
}

/// The message of objects of this apiVersion and kind (DeleteOptions under any apiVersion).
pub fn kind(api_version: &str, kind: &str) -> Option<u16> {
    if kind == "DeleteOptions" {
        return Some(DELETE_OPTIONS);
    }
    KINDS.iter().find(|(v, k, _)| *v == api_version && *k == kind).map(|(_, _, i)| *i)
}

/// Every (apiVersion, kind) of the table (DeleteOptions is taken under any apiVersion).
pub fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    KINDS.iter().map(|(v, k, _)| (*v, *k))
}
