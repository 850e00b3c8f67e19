//! Metric values as Kubernetes Quantity strings, the way the SMI SDK writes them
//! (`resource.NewMilliQuantity`, canonical form): a whole number plainly (`"12"`), anything else
//! in milli-units (`"3250m"` is 3.25). Latencies are in milliseconds, so a latency of whole
//! microseconds is exact in milli-units; counts are whole numbers.

use std::time::Duration;

/// A latency in milliseconds: `"12"` for 12 ms, `"3250m"` for 3.25 ms (rounded to the µs).
pub fn latency_ms(latency: Duration) -> String {
    let micros = (latency.as_secs_f64() * 1e6).round() as u64;
    if micros.is_multiple_of(1000) {
        (micros / 1000).to_string()
    } else {
        format!("{micros}m")
    }
}

/// A count.
pub fn count(n: u64) -> String {
    n.to_string()
}

/// A Quantity string's value: a decimal number with an optional decimal SI suffix (`m`, `k`,
/// `M`, `G`, `T`, `P`, `E`), as servers other than this one may write them. `None` otherwise.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale = match &text[digits.len()..] {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    let ok = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+');
    ok.then(|| digits.parse::<f64>().ok().map(|v| v * scale))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_milliseconds_are_plain_and_the_rest_in_milli_units() {
        assert_eq!(latency_ms(Duration::from_millis(12)), "12");
        assert_eq!(latency_ms(Duration::from_micros(3250)), "3250m");
        assert_eq!(latency_ms(Duration::from_nanos(3_249_600)), "3250m");
        assert_eq!(latency_ms(Duration::ZERO), "0");
        assert_eq!(count(73492), "73492");
    }

    #[test]
    fn quantities_read_back() {
        assert_eq!(parse("12"), Some(12.0));
        assert_eq!(parse("3250m"), Some(3.25));
        assert_eq!(parse("73492m"), Some(73.492));
        assert_eq!(parse("1.5k"), Some(1500.0));
        assert_eq!(parse("12x"), None);
        assert_eq!(parse("m"), None);
        assert_eq!(parse(""), None);
    }
}
