//! Kubernetes resource Quantities, as TrafficSplit v1alpha1 uses for weights.
//!
//! Converted to milli-units (`1` -> 1000, `500m` -> 500), which keeps the intended ratio. The Go
//! SDK's conversion used the unscaled integer and so turned `1`:`500m` into 1:500.

/// Parses a non-negative Quantity into milli-units.
pub(crate) fn parse_milli(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.starts_with('-') {
        return Err(format!("{text:?} is negative; weights must be >= 0"));
    }
    let number = number.strip_prefix('+').unwrap_or(number);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty()
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "{text:?} is not a Kubernetes quantity (e.g. 1, 500m, 1.5)"
        ));
    }
    // value = (whole.frac) * multiplier * 1000, where multiplier = num / den
    let (num, den): (u128, u128) = match suffix {
        "m" => (1, 1000),
        "" => (1, 1),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        other => return Err(format!("{text:?}: unknown quantity suffix {other:?}")),
    };
    let digits = format!("{whole}{frac}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| format!("{text:?} is too large"))?
    };
    let scale = 10u128
        .checked_pow(u32::try_from(frac.len()).map_err(|_| format!("{text:?} is too long"))?)
        .ok_or_else(|| format!("{text:?} has too many decimals"))?;
    let milli = mantissa
        .checked_mul(num * 1000)
        .map(|v| v / (den * scale))
        .ok_or_else(|| format!("{text:?} is too large"))?;
    u64::try_from(milli).map_err(|_| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_milli;

    #[test]
    fn converts_to_milli_units() {
        for (text, milli) in [
            ("1", 1000),
            ("500m", 500),
            ("10m", 10),
            ("1500m", 1500),
            ("1.5", 1500),
            ("0", 0),
            ("0.1", 100),
            ("2k", 2_000_000),
            ("1Ki", 1_024_000),
            ("+3", 3000),
        ] {
            assert_eq!(parse_milli(text), Ok(milli), "{text}");
        }
    }

    #[test]
    fn refuses_negative_and_garbage() {
        for bad in ["-1", "-500m", "abc", "1x", "", "m", "1..2"] {
            assert!(parse_milli(bad).is_err(), "{bad} should be refused");
        }
    }
}
