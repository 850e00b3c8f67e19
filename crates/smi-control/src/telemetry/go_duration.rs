//! Durations as Go writes and reads them (`time.ParseDuration`, `Duration.String`): the `?t=`
//! window of smi-metrics' API and the `window` field of TrafficMetrics (a `metav1.Duration`).

use std::time::Duration;

/// Reads `30s`, `1m30s`, `1.5h`, `500ms`, `250us` / `250µs`, `100ns`, or `0`. A sign is
/// accepted as Go does, but a negative duration is an error here (a window cannot be).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 30s, 1m30s, 1.5h, 500ms)");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        nanos += value * scale;
        rest = tail;
    }
    if negative && nanos > 0.0 {
        return Err(format!("{text:?}: a window must not be negative"));
    }
    // Go's limit: about 290 years.
    if !nanos.is_finite() || nanos > i64::MAX as f64 {
        return Err(format!("{text:?} is too long a duration"));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Writes `d` as Go's `Duration.String` does: `30s`, `1m0s`, `1h0m0s`, `1.5s`, `500ms`, `0s`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (unit, per) = match nanos {
            n if n < 1_000 => ("ns", 1),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(nanos, per));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    let s = decimal(
        u128::from(secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `n / per` with the fraction's trailing zeros dropped (`1.5`, `2`).
fn decimal(n: u128, per: u128) -> String {
    let (whole, frac) = (n / per, n % per);
    if frac == 0 {
        return whole.to_string();
    }
    let width = per.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_go_reads() {
        let ms = Duration::from_millis;
        let ns = Duration::from_nanos;
        for (text, want) in [
            ("30s", ms(30_000)),
            ("1m30s", ms(90_000)),
            ("1.5h", ms(5_400_000)),
            ("500ms", ms(500)),
            ("250us", ns(250_000)),
            ("250µs", ns(250_000)),
            ("100ns", ns(100)),
            ("1h2m3s", ms(3_723_000)),
            ("+5s", ms(5_000)),
            ("0", Duration::ZERO),
            ("-0s", Duration::ZERO),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        for bad in ["", "30", "s", "1d", "1.5.5s", "-5s", "5 s", "abc", "."] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("9999999999h").unwrap_err().contains("too long"));
    }

    #[test]
    fn writes_what_go_writes() {
        let ms = Duration::from_millis;
        for (d, text) in [
            (ms(30_000), "30s"),
            (ms(60_000), "1m0s"),
            (ms(90_000), "1m30s"),
            (ms(3_600_000), "1h0m0s"),
            (ms(1_500), "1.5s"),
            (ms(500), "500ms"),
            (Duration::from_nanos(250_000), "250µs"),
            (Duration::ZERO, "0s"),
            (ms(3_723_250), "1h2m3.25s"),
        ] {
            assert_eq!(format(d), text, "{d:?}");
        }
    }
}
