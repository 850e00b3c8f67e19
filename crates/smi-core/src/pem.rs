//! PEM text for DER objects (certificates, keys), as tools and TLS libraries expect it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// `-----BEGIN {label}-----`, base64 in 64-column lines, `-----END {label}-----`.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Several certificates, one PEM block each.
pub fn certificates<T: AsRef<[u8]>>(ders: &[T]) -> String {
    ders.iter()
        .map(|d| encode("CERTIFICATE", d.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn wraps_at_64_columns() {
        let text = super::encode("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
    }
}
