//! Kubernetes quantities: `500m` CPU, `64Mi` memory.
//!
//! Kubernetes writes resources as a number with an optional suffix: decimal SI
//! (`k`, `M`, `G`, `T`, `P`, `E`), binary (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`), milli (`m`)
//! or an exponent (`129e6`). CPU is counted in millicores (`0.5` = `500m`), memory in bytes.

use crate::error::{Error, Result};

/// Parse a CPU quantity into millicores: `"500m"` → 500, `"0.5"` → 500, `"2"` → 2000.
pub fn parse_cpu(text: &str) -> Result<u64> {
    let milli = parse_scaled(text, 3).map_err(|why| bad("cpu", text, why))?;
    if milli == 0 {
        return Err(bad("cpu", text, "must be more than 0 (the smallest is 1m)"));
    }
    Ok(milli)
}

/// Parse a memory (or any byte) quantity: `"64Mi"` → 67108864, `"1G"` → 10^9.
pub fn parse_bytes(text: &str) -> Result<u64> {
    parse_scaled(text, 0).map_err(|why| bad("memory", text, why))
}

/// Format bytes the way Kubernetes users write them (`64Mi`, `1536Ki`, `1000`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    for (i, unit) in UNITS.iter().enumerate() {
        let size = 1u64 << (10 * (6 - i));
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

fn bad(what: &str, text: &str, why: &str) -> Error {
    Error::invalid(format!(
        "invalid {what} quantity {text:?}: {why} (examples: {})",
        if what == "cpu" { "500m, 0.5, 2" } else { "64Mi, 1Gi, 500M, 1048576" }
    ))
}

/// Parse `text` and return its value times 10^`extra_decimals`, rounded up (as Kubernetes
/// rounds 0.0001 CPU up to 1m), refusing negatives, overflows and unknown suffixes.
fn parse_scaled(text: &str, extra_decimals: u32) -> std::result::Result<u64, &'static str> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.starts_with('-') {
        return Err("must not be negative");
    }
    let number = number.strip_prefix('+').unwrap_or(number);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("not a number");
    }
    // value = digits × base^power × 10^exp10 / 10^frac_len
    let (base, power, exp10): (u128, u32, i64) = match suffix {
        "" => (1, 0, 0),
        "m" => (1, 0, -3),
        "k" => (1, 0, 3),
        "M" => (1, 0, 6),
        "G" => (1, 0, 9),
        "T" => (1, 0, 12),
        "P" => (1, 0, 15),
        "E" => (1, 0, 18),
        "Ki" => (1024, 1, 0),
        "Mi" => (1024, 2, 0),
        "Gi" => (1024, 3, 0),
        "Ti" => (1024, 4, 0),
        "Pi" => (1024, 5, 0),
        "Ei" => (1024, 6, 0),
        s if s.starts_with(['e', 'E']) => {
            let e: i64 = s[1..].parse().map_err(|_| "bad exponent")?;
            if e.abs() > 30 {
                return Err("exponent out of range");
            }
            (1, 0, e)
        }
        _ => return Err("unknown suffix"),
    };
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err("too large");
    }
    let mantissa: u128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| "too large")? };
    let mut value = mantissa.checked_mul(base.checked_pow(power).ok_or("too large")?).ok_or("too large")?;
    let scale = exp10 + i64::from(extra_decimals) - frac_part.len() as i64;
    if scale >= 0 {
        let factor = 10u128.checked_pow(scale as u32).ok_or("too large")?;
        value = value.checked_mul(factor).ok_or("too large")?;
    } else {
        let divisor = 10u128.checked_pow((-scale) as u32).ok_or("too small")?;
        value = value.div_ceil(divisor);
    }
    u64::try_from(value).map_err(|_| "too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu("500m").unwrap(), 500);
        assert_eq!(parse_cpu("0.5").unwrap(), 500);
        assert_eq!(parse_cpu("2").unwrap(), 2000);
        assert_eq!(parse_cpu("1.25").unwrap(), 1250);
        assert_eq!(parse_cpu("0.0001").unwrap(), 1);
        assert!(parse_cpu("0").is_err());
        assert!(parse_cpu("-1").is_err());
        assert!(parse_cpu("half").is_err());
        assert!(parse_cpu("").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("128974848").unwrap(), 128_974_848);
        assert_eq!(parse_bytes("129e6").unwrap(), 129_000_000);
        assert_eq!(parse_bytes("123Ki").unwrap(), 123 * 1024);
        assert_eq!(parse_bytes("1.5Gi").unwrap(), 3 << 29);
        assert!(parse_bytes("64MB").is_err());
        assert!(parse_bytes("99999999999Ei").is_err());
        let err = parse_bytes("lots").unwrap_err().to_string();
        assert!(err.contains("\"lots\""), "{err}");
    }

    #[test]
    fn format() {
        assert_eq!(format_bytes(64 << 20), "64Mi");
        assert_eq!(format_bytes(1536 * 1024), "1536Ki");
        assert_eq!(format_bytes(1000), "1000");
    }
}
