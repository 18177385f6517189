//! Kubernetes' protobuf encoding of request bodies, read into the JSON the server takes.
//!
//! Besides JSON the API server speaks a binary encoding, `application/vnd.kubernetes.protobuf`,
//! which kubectl's typed commands send (`create configmap`, `create deployment`, `drain`). A body
//! is the 4 magic bytes `k8s\0` and a `runtime.Unknown` message: the object's apiVersion and kind,
//! and the object as protobuf (the messages of k8s.io/api's generated.proto). The wire carries
//! only field numbers; a table generated from those .proto files and the Go types names them.

#[rustfmt::skip]
mod schema;
mod message;
mod special;
mod table;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use message::{Decoder, Path};
use wire::{Reader, Wire};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The first 4 bytes of every Kubernetes protobuf body.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// What is wrong with a protobuf body.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ProtoError {
    #[error("the body is not Kubernetes protobuf: it does not begin with the 4 bytes \"k8s\\0\"")]
    NotProtobuf,
    /// The runtime.Unknown envelope around the object cannot be read.
    #[error("the protobuf envelope (runtime.Unknown) cannot be read: {0}")]
    Envelope(String),
    /// A kind the table does not have (the server reads protobuf only for the kinds it serves).
    #[error(
        "apiVersion {api_version:?}, kind {kind:?}: this server reads protobuf only for the kinds it serves \
         (and Binding, Eviction, Scale, DeleteOptions); send this one as JSON"
    )]
    UnknownKind { api_version: String, kind: String },
    /// A field of the object is malformed: `path` is its JSON path (`spec.replicas`).
    #[error("{kind} {path}: {problem}")]
    Field { kind: String, path: String, problem: String },
}

/// Whether a Content-Type header names Kubernetes protobuf (parameters and case aside).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// The object of a Kubernetes protobuf body as the JSON a client would have sent: `apiVersion`
/// and `kind` from the envelope, the fields under their JSON names, empty values as Go's JSON
/// encoding writes them. Never panics; errors say which field is wrong and how.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    object(&mut Decoder::default(), body, 0)
}

/// The (apiVersion, kind) pairs that can be decoded (DeleteOptions under any apiVersion too).
pub fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    table::kinds()
}

/// The envelope's contents.
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

/// runtime.Unknown: {typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3, contentType=4}.
fn envelope(buf: &[u8]) -> Result<Unknown<'_>, String> {
    let mut u = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    let mut r = Reader::new(buf);
    while let Some((n, w)) = r.next_field()? {
        match (n, w) {
            (1, Wire::Bytes(meta)) => {
                let mut m = Reader::new(meta);
                while let Some((n, w)) = m.next_field().map_err(|e| format!("typeMeta: {e}"))? {
                    match (n, w) {
                        (1, Wire::Bytes(b)) => u.api_version = utf8(b, "typeMeta.apiVersion")?,
                        (2, Wire::Bytes(b)) => u.kind = utf8(b, "typeMeta.kind")?,
                        (1 | 2, w) => {
                            return Err(format!("typeMeta field {n}: {} where a string was expected", w.name()));
                        }
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => u.raw = b,
            (3, Wire::Bytes(b)) => u.content_encoding = utf8(b, "contentEncoding")?,
            (4, Wire::Bytes(b)) => u.content_type = utf8(b, "contentType")?,
            (1..=4, w) => return Err(format!("field {n}: {} where length-delimited bytes were expected", w.name())),
            _ => {}
        }
    }
    Ok(u)
}

fn utf8(b: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

/// One enveloped object (the body, or an object embedded in a RawExtension at `depth`).
fn object(dec: &mut Decoder, body: &[u8], depth: usize) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(&MAGIC[..]).ok_or(ProtoError::NotProtobuf)?;
    let u = envelope(rest).map_err(ProtoError::Envelope)?;
    if !u.content_encoding.is_empty() {
        return Err(ProtoError::Envelope(format!("contentEncoding {:?} is not supported", u.content_encoding)));
    }
    if u.kind.is_empty() {
        return Err(ProtoError::Envelope("it names no kind (typeMeta.kind is empty)".to_string()));
    }
    // The envelope may carry JSON (contentType application/json); protobuf is the default.
    if u.content_type.starts_with("application/json") {
        let mut v: Value = serde_json::from_slice(u.raw).map_err(|e| ProtoError::Field {
            kind: u.kind.clone(),
            path: "(the object)".to_string(),
            problem: format!("the enveloped JSON cannot be read: {e}"),
        })?;
        if let Value::Object(m) = &mut v {
            m.insert("apiVersion".to_string(), Value::String(u.api_version));
            m.insert("kind".to_string(), Value::String(u.kind));
        }
        return Ok(v);
    }
    if !u.content_type.is_empty() && !is_protobuf(&u.content_type) {
        return Err(ProtoError::Envelope(format!("contentType {:?} is not supported", u.content_type)));
    }
    let index = table::kind(&u.api_version, &u.kind)
        .ok_or_else(|| ProtoError::UnknownKind { api_version: u.api_version.clone(), kind: u.kind.clone() })?;
    let mut out = Map::new();
    dec.message(u.raw, index, &mut out, &Path::ROOT, depth).map_err(|b| ProtoError::Field {
        kind: u.kind.clone(),
        path: b.path,
        problem: b.problem,
    })?;
    out.insert("apiVersion".to_string(), Value::String(u.api_version));
    out.insert("kind".to_string(), Value::String(u.kind));
    Ok(Value::Object(out))
}
