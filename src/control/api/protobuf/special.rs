//! Kubernetes' own small messages, whose JSON is not an object of their fields.
//!
//! In Go these types marshal themselves: a `metav1.Time` is the string "2024-01-01T00:00:00Z"
//! (seconds only; the zero time is `null`), a `resource.Quantity` the string "100m", an
//! `intstr.IntOrString` the number 80 or the string "http", a `metav1.Duration` the Go duration
//! "1m30s". On the wire each is a tiny message; here each becomes its JSON value.

use serde_json::{Value, json};

use super::wire::{Reader, Wire};

/// The last value of each of fields 1..=3 of a small message (later fields win, as in protobuf).
fn fields(buf: &[u8]) -> Result<[Option<Wire<'_>>; 3], String> {
    let mut out = [None; 3];
    let mut r = Reader::new(buf);
    while let Some((n, w)) = r.next_field()? {
        if (1..=3).contains(&n) {
            out[n as usize - 1] = Some(w);
        }
    }
    Ok(out)
}

fn varint(w: Option<Wire<'_>>, what: &str) -> Result<u64, String> {
    match w {
        None => Ok(0),
        Some(Wire::Varint(v)) => Ok(v),
        Some(other) => Err(format!("{what}: {} where a varint was expected", other.name())),
    }
}

fn bytes<'a>(w: Option<Wire<'a>>, what: &str) -> Result<&'a [u8], String> {
    match w {
        None => Ok(&[]),
        Some(Wire::Bytes(b)) => Ok(b),
        Some(other) => Err(format!("{what}: {} where bytes were expected", other.name())),
    }
}

fn string(w: Option<Wire<'_>>, what: &str) -> Result<String, String> {
    let b = bytes(w, what)?;
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what}: the string is not UTF-8"))
}

/// The first and last second Go's JSON encoding takes: years 0000 to 9999.
const MIN_SECONDS: i64 = -62_167_219_200;
const MAX_SECONDS: i64 = 253_402_300_799;

/// meta/v1 Time: {seconds=1, nanos=2}, to the second (Go drops the nanoseconds when it reads
/// it). An empty message is the zero time: `null`.
pub fn time(buf: &[u8]) -> Result<Value, String> {
    if buf.is_empty() {
        return Ok(Value::Null);
    }
    let [seconds, _, _] = fields(buf)?;
    let s = varint(seconds, "seconds")? as i64;
    Ok(json!(format!("{}Z", &rfc3339(s, 0)?[..19])))
}

/// meta/v1 MicroTime: like Time, with microseconds ("2024-01-01T00:00:00.123456Z").
pub fn micro_time(buf: &[u8]) -> Result<Value, String> {
    if buf.is_empty() {
        return Ok(Value::Null);
    }
    let [seconds, nanos, _] = fields(buf)?;
    let s = varint(seconds, "seconds")? as i64;
    let n = i64::from(varint(nanos, "nanos")? as i32);
    // Go normalizes nanoseconds out of 0..1e9 into the seconds.
    let (s, n) = (s.saturating_add(n.div_euclid(1_000_000_000)), n.rem_euclid(1_000_000_000));
    Ok(json!(format!("{}Z", &rfc3339(s, n as u32)?[..26])))
}

fn rfc3339(seconds: i64, nanos: u32) -> Result<String, String> {
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
        return Err(format!("time {seconds}s from 1970 is outside the years 0000 to 9999"));
    }
    Ok(crate::runtime::state::rfc3339(seconds, nanos))
}

/// meta/v1 Duration: {duration=1} in nanoseconds, written as Go writes a time.Duration.
pub fn duration(buf: &[u8]) -> Result<Value, String> {
    let [d, _, _] = fields(buf)?;
    Ok(json!(go_duration(varint(d, "duration")? as i64)))
}

/// Go's `time.Duration.String()`: "0s", "1.5µs", "20ms", "1m30s", "2h0m0s", "-5s".
pub fn go_duration(d: i64) -> String {
    const SECOND: u64 = 1_000_000_000;
    let u = d.unsigned_abs();
    let sign = if d < 0 { "-" } else { "" };
    if u == 0 {
        return "0s".to_string();
    }
    if u < SECOND {
        let (unit, scale) = match u {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", decimal(u, scale));
    }
    let (h, m, s) = (u / SECOND / 3600, u / SECOND / 60 % 60, u % (60 * SECOND));
    let secs = decimal(s, SECOND);
    match (h, m) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

/// `v / scale` with the fraction, trailing zeros dropped: decimal(1500, 1000) = "1.5".
fn decimal(v: u64, scale: u64) -> String {
    let (int, frac) = (v / scale, v % scale);
    if frac == 0 {
        return int.to_string();
    }
    let digits = scale.ilog10() as usize;
    let f = format!("{frac:0digits$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// resource.Quantity: {string=1}; the empty quantity is "0".
pub fn quantity(buf: &[u8]) -> Result<Value, String> {
    let [s, _, _] = fields(buf)?;
    let s = string(s, "string")?;
    Ok(json!(if s.is_empty() { "0".to_string() } else { s }))
}

/// intstr.IntOrString: {type=1 (0 int, 1 string), intVal=2, strVal=3}.
pub fn int_or_string(buf: &[u8]) -> Result<Value, String> {
    let [ty, int_val, str_val] = fields(buf)?;
    match varint(ty, "type")? {
        0 => Ok(json!(varint(int_val, "intVal")? as i32)),
        1 => Ok(json!(string(str_val, "strVal")?)),
        t => Err(format!("type {t} is neither 0 (an int) nor 1 (a string)")),
    }
}

/// The `raw=1` bytes of a RawExtension or FieldsV1 (JSON, or Kubernetes protobuf for the
/// former; the caller decides).
pub fn raw(buf: &[u8]) -> Result<&[u8], String> {
    let [r, _, _] = fields(buf)?;
    bytes(r, "raw")
}

/// JSON bytes as a value; empty bytes are `null`.
pub fn json_bytes(raw: &[u8]) -> Result<Value, String> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| format!("the embedded bytes are not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (d, want) in [
            (0, "0s"),
            (5, "5ns"),
            (1_500, "1.5µs"),
            (20_000_000, "20ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (7_200_000_000_000, "2h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-5_000_000_000, "-5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(d), want, "{d}");
        }
    }

    #[test]
    fn times() {
        // seconds=1704067200 (2024-01-01T00:00:00Z), nanos=5: Time drops the nanoseconds.
        let buf = [0x08, 0x80, 0x81, 0xc8, 0xac, 0x06, 0x10, 0x05];
        assert_eq!(time(&buf), Ok(json!("2024-01-01T00:00:00Z")));
        assert_eq!(time(&[]), Ok(Value::Null));
        assert_eq!(time(&[0x08, 0x00]), Ok(json!("1970-01-01T00:00:00Z")));
        // nanos=123456789: MicroTime keeps the microseconds.
        let buf = [0x08, 0x80, 0x81, 0xc8, 0xac, 0x06, 0x10, 0x95, 0x9a, 0xef, 0x3a];
        assert_eq!(micro_time(&buf), Ok(json!("2024-01-01T00:00:00.123456Z")));
        let far = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(time(&far).unwrap_err().contains("outside the years"));
    }
}
