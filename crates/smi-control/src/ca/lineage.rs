//! When a certificate's chain of renewals began: every workload certificate carries the time of
//! its first enrollment (the join token's use), copied from certificate to certificate on each
//! renewal, so that renewal can be refused past a maximum total lifetime
//! ([`crate::serve::ServeConfig::max_chain_lifetime`]).
//!
//! The extension: OID [`FIRST_ENROLLED_OID`] (`1.3.6.1.4.1.32473.764.1`), non-critical, its
//! value a DER `GeneralizedTime` (`YYYYMMDDHHMMSSZ`, UTC, whole seconds). Peers ignore it (it is
//! non-critical and no TLS decision reads it); only the control reads it, from a certificate its
//! own handshake has verified against the trust bundle. smi-mesh has no IANA enterprise number:
//! the OID sits under 32473, the number RFC 5612 sets aside for documentation, until it has one.
//! A certificate without the extension (issued before it existed) counts from its `notBefore`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::CustomExtension;
use rustls::pki_types::CertificateDer;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `1.3.6.1.4.1.32473.764.1`: the first-enrollment time of a certificate's chain.
pub const FIRST_ENROLLED_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 32473, 764, 1];

/// DER tag of `GeneralizedTime`, and the length of `YYYYMMDDHHMMSSZ`.
const GENERALIZED_TIME: u8 = 0x18;
const TIME_LEN: usize = 15;

/// The extension saying that the chain was first enrolled at `at` (whole seconds, UTC).
pub(crate) fn first_enrolled_extension(at: SystemTime) -> CustomExtension {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let time = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let mut content = vec![GENERALIZED_TIME, TIME_LEN as u8];
    content.extend_from_slice(text.as_bytes());
    CustomExtension::from_oid_content(FIRST_ENROLLED_OID, content)
}

/// When the chain of `leaf` was first enrolled: the extension's time, or the certificate's
/// `notBefore` when it has none. An extension that is present but malformed is an error.
pub fn first_enrolled(leaf: &CertificateDer<'_>) -> Result<SystemTime, String> {
    let (_, cert) =
        X509Certificate::from_der(leaf).map_err(|e| format!("unparseable certificate: {e}"))?;
    let oid = Oid::from(FIRST_ENROLLED_OID).map_err(|_| "the first-enrollment OID".to_owned())?;
    match cert.extensions().iter().find(|e| e.oid == oid) {
        Some(ext) => parse_time(ext.value).ok_or_else(|| {
            "the certificate's first-enrollment extension is not a GeneralizedTime".to_owned()
        }),
        None => {
            let secs = u64::try_from(cert.validity().not_before.timestamp()).unwrap_or(0);
            Ok(UNIX_EPOCH + Duration::from_secs(secs))
        }
    }
}

/// `GeneralizedTime` `YYYYMMDDHHMMSSZ`, exactly (DER allows no other form for whole seconds).
fn parse_time(der: &[u8]) -> Option<SystemTime> {
    let [GENERALIZED_TIME, len, text @ ..] = der else {
        return None;
    };
    if usize::from(*len) != TIME_LEN || text.len() != TIME_LEN || text[14] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let month = time::Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(digits(0..4)?).ok()?,
        month,
        u8::try_from(digits(6..8)?).ok()?,
    )
    .ok()?;
    let time = time::Time::from_hms(
        u8::try_from(digits(8..10)?).ok()?,
        u8::try_from(digits(10..12)?).ok()?,
        u8::try_from(digits(12..14)?).ok()?,
    )
    .ok()?;
    let secs = u64::try_from(date.with_time(time).assume_utc().unix_timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_round_trips_in_whole_seconds() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_123);
        let ext = first_enrolled_extension(at + Duration::from_millis(900));
        assert!(!ext.criticality());
        assert_eq!(&ext.content()[2..], b"20231114221523Z");
        assert_eq!(parse_time(ext.content()), Some(at));
    }

    #[test]
    fn a_certificate_without_the_extension_counts_from_its_not_before() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
        let old = params.self_signed(&key).unwrap();
        assert_eq!(
            first_enrolled(old.der()),
            Ok(UNIX_EPOCH + Duration::from_secs(1_600_000_000))
        );
        params.custom_extensions.push(first_enrolled_extension(
            UNIX_EPOCH + Duration::from_secs(1_650_000_000),
        ));
        let new = params.self_signed(&key).unwrap();
        assert_eq!(
            first_enrolled(new.der()),
            Ok(UNIX_EPOCH + Duration::from_secs(1_650_000_000))
        );
    }

    #[test]
    fn anything_but_the_exact_der_form_is_refused() {
        for bad in [
            &b""[..],
            b"\x18\x0f20231114221523",
            b"\x17\x0d231114221523Z",
            b"\x18\x0f2023111422152aZ",
            b"\x18\x0f20231314221523Z",
            b"\x18\x1020231114221523.5Z",
            b"\x18\x0f20231114221523Zx",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }
}
