//! A message on the wire to the JSON object Go would write for it, driven by the schema table.
//!
//! Each field's number is looked up in the message's table entry; its value is read as the
//! entry's type says and stored under its JSON name. Unknown fields are skipped (newer clients
//! send fields we do not know). Afterwards empty values are dropped or filled in as Go's JSON
//! encoding would (see `Presence`), so the server sees what the client would have sent as JSON.

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::special;
use super::table::{self, Card, Field, Presence, Ty};
use super::wire::{Reader, Wire};

/// How deep messages may nest (Kubernetes objects need about 15).
pub const MAX_DEPTH: usize = 64;
/// How many JSON values one body may become.
pub const MAX_VALUES: usize = 1 << 20;

/// Where in the object the decoder is, as a JSON path (`spec.containers[0].ports[1]`), kept as
/// a chain on the stack and written out only for an error.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Field(&'a str),
    Index(usize),
    Key(&'a str),
}

impl<'a> Path<'a> {
    pub const ROOT: Path<'static> = Path { parent: None, seg: Seg::Root };

    fn field(&'a self, name: &'a str) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Field(name) }
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Index(i) }
    }

    fn key(&'a self, k: &'a str) -> Path<'a> {
        Path { parent: Some(self), seg: Seg::Key(k) }
    }

    pub fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut p = Some(self);
        while let Some(here) = p {
            segs.push(here.seg);
            p = here.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Field(f) if out.is_empty() => out.push_str(f),
                Seg::Field(f) => {
                    out.push('.');
                    out.push_str(f);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Key(k) => out.push_str(&format!("[{k:?}]")),
            }
        }
        if out.is_empty() { "(the object)".to_string() } else { out }
    }
}

/// A problem at a place: the path and what is wrong.
#[derive(Debug, PartialEq)]
pub struct Bad {
    pub path: String,
    pub problem: String,
}

fn bad(path: &Path, problem: impl Into<String>) -> Bad {
    Bad { path: path.render(), problem: problem.into() }
}

/// Decodes one body: keeps count of the values made, so that no input can make it unbounded.
#[derive(Default)]
pub struct Decoder {
    values: usize,
}

impl Decoder {
    fn count(&mut self, path: &Path) -> Result<(), Bad> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(bad(path, format!("the object has more than {MAX_VALUES} values")));
        }
        Ok(())
    }

    /// Decode the fields of message `index` from `buf` into `out` (merging into what is there,
    /// as protobuf merges a message that occurs twice).
    pub fn message(
        &mut self,
        buf: &[u8],
        index: u16,
        out: &mut Map<String, Value>,
        path: &Path,
        depth: usize,
    ) -> Result<(), Bad> {
        let msg = table::message(index);
        if depth > MAX_DEPTH {
            return Err(bad(path, format!("messages nest deeper than {MAX_DEPTH} levels")));
        }
        let mut r = Reader::new(buf);
        while let Some((number, wire)) = r.next_field().map_err(|e| bad(path, format!("{}: {e}", msg.short_name())))? {
            let Some(field) = msg.field(number) else {
                continue;
            };
            self.field(field, wire, out, path, depth)?;
        }
        self.finish(index, out, path)
    }

    fn field(
        &mut self,
        field: &'static Field,
        wire: Wire,
        out: &mut Map<String, Value>,
        path: &Path,
        depth: usize,
    ) -> Result<(), Bad> {
        let here = path.field(field.json);
        match (field.card, field.ty) {
            (Card::One, Ty::Message(i)) => {
                let bytes = expect_bytes(wire, &here, "a message")?;
                if field.presence == Presence::Inline {
                    return self.message(bytes, i, out, path, depth + 1);
                }
                let slot = out.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(m) = slot {
                    self.message(bytes, i, m, &here, depth + 1)?;
                }
                self.count(&here)
            }
            (Card::One, ty) => {
                let v = self.value(ty, wire, &here, depth)?;
                out.insert(field.json.to_string(), v);
                self.count(&here)
            }
            (Card::Repeated, ty) => {
                let slot = out.entry(field.json).or_insert_with(|| Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                let Value::Array(list) = slot else { return Ok(()) };
                match wire {
                    // A packed list of numbers: one length-delimited run of them.
                    Wire::Bytes(b) if packable(ty) => {
                        let mut r = Reader::new(b);
                        while !r.at_end() {
                            let item = here.index(list.len());
                            let w = match ty {
                                Ty::Double => Wire::Fixed64(fixed::<8>(&mut r, &item)?),
                                Ty::Float => Wire::Fixed32(fixed::<4>(&mut r, &item)? as u32),
                                _ => Wire::Varint(r.varint().map_err(|e| bad(&item, e))?),
                            };
                            let v = self.value(ty, w, &item, depth)?;
                            list.push(v);
                            self.count(&item)?;
                        }
                        Ok(())
                    }
                    wire => {
                        let item = here.index(list.len());
                        let v = self.value(ty, wire, &item, depth)?;
                        list.push(v);
                        self.count(&item)
                    }
                }
            }
            (Card::Map, ty) => {
                let entry = expect_bytes(wire, &here, "a map entry")?;
                let (key, value) = self.map_entry(entry, ty, &here, depth)?;
                let slot = out.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(m) = slot {
                    m.insert(key, value);
                }
                self.count(&here)
            }
        }
    }

    /// A map entry: a message {key=1 (string), value=2}.
    fn map_entry(&mut self, buf: &[u8], ty: Ty, path: &Path, depth: usize) -> Result<(String, Value), Bad> {
        let mut key: Option<&[u8]> = None;
        let mut value: Option<Wire> = None;
        let mut r = Reader::new(buf);
        while let Some((n, w)) = r.next_field().map_err(|e| bad(path, format!("map entry: {e}")))? {
            match n {
                1 => key = Some(expect_bytes(w, path, "a string map key")?),
                2 => value = Some(w),
                _ => {}
            }
        }
        let key =
            std::str::from_utf8(key.unwrap_or_default()).map_err(|_| bad(path, "a map key is not UTF-8"))?.to_string();
        let here = path.key(&key);
        let value = match value {
            Some(w) => self.value(ty, w, &here, depth)?,
            // An absent value is the type's empty value.
            None => match ty {
                Ty::Message(_) | Ty::Time | Ty::MicroTime | Ty::Duration | Ty::Quantity | Ty::IntOrString => {
                    self.value(ty, Wire::Bytes(&[]), &here, depth)?
                }
                _ => zero(ty).unwrap_or(Value::Null),
            },
        };
        Ok((key, value))
    }

    /// One value of type `ty` (a whole message for `Ty::Message`).
    pub(super) fn value(&mut self, ty: Ty, wire: Wire, path: &Path, depth: usize) -> Result<Value, Bad> {
        let special = |r: Result<Value, String>| r.map_err(|e| bad(path, e));
        Ok(match ty {
            Ty::Str => {
                let b = expect_bytes(wire, path, "a string")?;
                Value::String(std::str::from_utf8(b).map_err(|_| bad(path, "the string is not UTF-8"))?.to_string())
            }
            Ty::Bytes => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(expect_bytes(wire, path, "bytes")?))
            }
            Ty::Bool => Value::Bool(expect_varint(wire, path, "a bool")? != 0),
            // Protobuf writes a negative int32 as the 64-bit varint of its sign extension.
            Ty::Int32 => Value::from(expect_varint(wire, path, "an int32")? as i32),
            Ty::Int64 => Value::from(expect_varint(wire, path, "an int64")? as i64),
            Ty::UInt32 => Value::from(expect_varint(wire, path, "a uint32")? as u32),
            Ty::UInt64 => Value::from(expect_varint(wire, path, "a uint64")?),
            Ty::Double | Ty::Float => {
                let f = match (ty, wire) {
                    (Ty::Double, Wire::Fixed64(v)) => f64::from_bits(v),
                    (Ty::Float, Wire::Fixed32(v)) => f64::from(f32::from_bits(v)),
                    (_, w) => {
                        return Err(bad(path, format!("{} where a floating-point number was expected", w.name())));
                    }
                };
                Value::Number(Number::from_f64(f).ok_or_else(|| bad(path, format!("{f} is not a JSON number")))?)
            }
            Ty::Message(i) => {
                let bytes = expect_bytes(wire, path, "a message")?;
                let mut m = Map::new();
                self.message(bytes, i, &mut m, path, depth + 1)?;
                Value::Object(m)
            }
            Ty::Time => special(special::time(expect_bytes(wire, path, "a Time")?))?,
            Ty::MicroTime => special(special::micro_time(expect_bytes(wire, path, "a MicroTime")?))?,
            Ty::Duration => special(special::duration(expect_bytes(wire, path, "a Duration")?))?,
            Ty::Quantity => special(special::quantity(expect_bytes(wire, path, "a Quantity")?))?,
            Ty::IntOrString => special(special::int_or_string(expect_bytes(wire, path, "an IntOrString")?))?,
            Ty::FieldsV1 => {
                let raw = special::raw(expect_bytes(wire, path, "a FieldsV1")?).map_err(|e| bad(path, e))?;
                special(special::json_bytes(raw))?
            }
            Ty::RawExtension => {
                let raw = special::raw(expect_bytes(wire, path, "a RawExtension")?).map_err(|e| bad(path, e))?;
                if raw.starts_with(&super::MAGIC) {
                    if depth + 1 > MAX_DEPTH {
                        return Err(bad(path, format!("messages nest deeper than {MAX_DEPTH} levels")));
                    }
                    super::object(self, raw, depth + 1).map_err(|e| bad(path, format!("the embedded object: {e}")))?
                } else {
                    special(special::json_bytes(raw))?
                }
            }
        })
    }

    /// Go's JSON encoding of the fields of message `index` as it now stands in `out`: empty
    /// `omitempty` values dropped, absent always-present values filled in, zero times dropped.
    fn finish(&mut self, index: u16, out: &mut Map<String, Value>, path: &Path) -> Result<(), Bad> {
        for field in table::message(index).fields {
            match (field.presence, field.ty) {
                (Presence::Inline, Ty::Message(i)) => self.finish(i, out, path)?,
                (Presence::Inline, _) => {}
                (presence, ty) => {
                    let present = out.get(field.json);
                    let drop = match present {
                        Some(Value::Null) => true,
                        Some(v) => presence == Presence::OmitEmpty && is_empty(v),
                        None => false,
                    };
                    if drop {
                        out.remove(field.json);
                    } else if present.is_none() && presence == Presence::Always && field.card == Card::One {
                        if let Some(z) = zero(ty) {
                            out.insert(field.json.to_string(), z);
                            self.count(path)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// An empty value as `omitempty` sees it (objects and lists are not: Go writes `{}` for an
/// empty struct, and empty lists are never on the wire).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// The JSON of a Go zero value of a scalar type (None: not a scalar; left out).
fn zero(ty: Ty) -> Option<Value> {
    match ty {
        Ty::Str | Ty::Bytes => Some(Value::String(String::new())),
        Ty::Bool => Some(Value::Bool(false)),
        Ty::Int32 | Ty::Int64 | Ty::UInt32 | Ty::UInt64 | Ty::IntOrString => Some(Value::from(0)),
        Ty::Double | Ty::Float => Some(Value::from(0.0)),
        Ty::Message(_) | Ty::Time | Ty::MicroTime | Ty::Duration | Ty::FieldsV1 | Ty::Quantity | Ty::RawExtension => {
            None
        }
    }
}

fn packable(ty: Ty) -> bool {
    matches!(ty, Ty::Bool | Ty::Int32 | Ty::Int64 | Ty::UInt32 | Ty::UInt64 | Ty::Double | Ty::Float)
}

fn fixed<const N: usize>(r: &mut Reader, path: &Path) -> Result<u64, Bad> {
    let mut v: u64 = 0;
    for i in 0..N {
        let b = r.byte().ok_or_else(|| bad(path, "a packed list of fixed-size numbers is cut short"))?;
        v |= u64::from(b) << (8 * i);
    }
    Ok(v)
}

fn expect_bytes<'a>(wire: Wire<'a>, path: &Path, what: &str) -> Result<&'a [u8], Bad> {
    match wire {
        Wire::Bytes(b) => Ok(b),
        w => Err(bad(path, format!("{} where {what} (length-delimited) was expected", w.name()))),
    }
}

fn expect_varint(wire: Wire, path: &Path, what: &str) -> Result<u64, Bad> {
    match wire {
        Wire::Varint(v) => Ok(v),
        w => Err(bad(path, format!("{} where {what} (a varint) was expected", w.name()))),
    }
}
