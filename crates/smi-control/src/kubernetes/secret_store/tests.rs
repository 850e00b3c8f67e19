//! The Secret's layout without a server: the CA to and from the three PEM keys and the retire
//! times, a root replaced underneath (cert-manager) kept as retiring, broken keys named, the
//! ledger's bound and the version mark.

use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::DISPLACED_OVERLAP;
use super::layout::{CA_CRT, CaKeys, Data, RETIRING, TLS_CRT, TLS_KEY, fingerprint, pem, write_ca};
use super::ledger::{Entry, MAX_TOKENS, TOKEN_USES, Uses, VERSIONS, reserve};
use crate::ca::{CaFile, unix_now};

const TD: &str = "cluster.local";
const SECRET: &str = "kubernetes:secret/smi-system/smi-control-state";

fn text(data: &Data, key: &str) -> String {
    String::from_utf8(data[key].clone()).unwrap()
}

fn ders(pem_text: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem_text.as_bytes())
        .map(|c| c.unwrap().to_vec())
        .collect()
}

/// A Secret's data holding a new CA.
fn new_ca() -> Data {
    let mut data = Data::new();
    write_ca(&CaFile::new(TD).unwrap(), &mut data, unix_now(), SECRET).unwrap();
    data
}

/// What cert-manager writes when it renews a self-signed CA: a new root, its key in SEC1
/// (its default encoding, PKCS#1), and `ca.crt` as the new root alone.
fn cert_manager_renewal(data: &mut Data) -> Vec<u8> {
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let sec1 = ec.private_key().as_der().unwrap();
    let key = KeyPair::try_from(ec.to_pkcs8v1().unwrap().as_ref()).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let cert = params.self_signed(&key).unwrap();
    data.insert(TLS_CRT.into(), cert.pem().into_bytes());
    data.insert(
        TLS_KEY.into(),
        pem("EC PRIVATE KEY", sec1.as_ref()).into_bytes(),
    );
    data.insert(CA_CRT.into(), cert.pem().into_bytes());
    cert.der().to_vec()
}

fn read(data: &Data) -> CaKeys {
    CaKeys::read(data, SECRET).unwrap().expect("a CA")
}

fn error(data: &Data) -> String {
    CaKeys::read(data, SECRET).unwrap_err().to_string()
}

#[test]
fn a_new_ca_is_the_three_pem_keys_and_reads_back_the_same() {
    let data = new_ca();
    let signer = ders(&text(&data, TLS_CRT));
    assert_eq!(signer.len(), 1);
    assert_eq!(ders(&text(&data, CA_CRT)), signer);
    assert!(text(&data, TLS_KEY).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(!data.contains_key(RETIRING));

    let keys = read(&data);
    assert_eq!(keys.signer(), signer[0].as_slice());
    let (file, unrecorded) = keys.to_ca_file(None, unix_now(), SECRET).unwrap();
    assert!(!unrecorded);
    let authority = file.authority(TD, SECRET.as_ref()).unwrap();
    assert_eq!(authority.bundle().len(), 1);
    assert_eq!(authority.bundle()[0].as_ref(), signer[0].as_slice());
    assert_eq!(file.next_retirement(), None);
}

#[test]
fn a_rotation_keeps_the_old_root_in_ca_crt_with_its_retire_time() {
    let mut data = new_ca();
    let old = ders(&text(&data, TLS_CRT)).remove(0);
    let now = unix_now();
    let (mut file, _) = read(&data).to_ca_file(None, now, SECRET).unwrap();
    file.rotate(TD, Duration::from_secs(3600)).unwrap();
    write_ca(&file, &mut data, now, SECRET).unwrap();

    let new = ders(&text(&data, TLS_CRT)).remove(0);
    assert_ne!(new, old);
    assert_eq!(ders(&text(&data, CA_CRT)), [new.clone(), old.clone()]);
    let retiring: serde_json::Value = serde_json::from_slice(&data[RETIRING]).unwrap();
    let retire = retiring[fingerprint(&old)].as_u64().unwrap();
    assert!((now + 3600..=now + 3601).contains(&retire), "{retire}");

    let (file, unrecorded) = read(&data).to_ca_file(Some(&old), now, SECRET).unwrap();
    assert!(!unrecorded, "the rotation recorded everything");
    assert_eq!(
        file.authority(TD, SECRET.as_ref()).unwrap().bundle().len(),
        2
    );
    assert!(file.next_retirement().is_some());
}

#[test]
fn a_root_replaced_by_cert_manager_stays_trusted_as_retiring() {
    let mut data = new_ca();
    let old = ders(&text(&data, TLS_CRT)).remove(0);
    let new = cert_manager_renewal(&mut data);
    let sec1_key = data[TLS_KEY].clone();
    let now = unix_now();

    // Without knowing the previous signer, nothing tells that it was one.
    let (alone, unrecorded) = read(&data).to_ca_file(None, now, SECRET).unwrap();
    assert!(!unrecorded);
    assert_eq!(
        alone.authority(TD, SECRET.as_ref()).unwrap().bundle().len(),
        1
    );

    let (file, unrecorded) = read(&data).to_ca_file(Some(&old), now, SECRET).unwrap();
    assert!(unrecorded, "the displaced root is not in the Secret yet");
    let bundle: Vec<Vec<u8>> = file
        .authority(TD, SECRET.as_ref())
        .unwrap()
        .bundle()
        .iter()
        .map(|c| c.to_vec())
        .collect();
    assert_eq!(bundle, [new.clone(), old.clone()]);
    write_ca(&file, &mut data, now, SECRET).unwrap();

    assert_eq!(
        data[TLS_KEY], sec1_key,
        "cert-manager's key is left as it wrote it"
    );
    assert_eq!(ders(&text(&data, CA_CRT)), [new, old.clone()]);
    let retiring: serde_json::Value = serde_json::from_slice(&data[RETIRING]).unwrap();
    assert_eq!(
        retiring[fingerprint(&old)].as_u64(),
        Some(now + DISPLACED_OVERLAP.as_secs())
    );
    let (_, unrecorded) = read(&data).to_ca_file(Some(&old), now + 5, SECRET).unwrap();
    assert!(!unrecorded, "recorded once, at the first sight");
}

#[test]
fn a_root_left_in_ca_crt_without_a_retire_time_retires_after_the_overlap() {
    let mut data = new_ca();
    let old = text(&data, TLS_CRT);
    cert_manager_renewal(&mut data);
    let bundle = format!("{}{old}", text(&data, CA_CRT));
    data.insert(CA_CRT.into(), bundle.into_bytes());
    let now = unix_now();
    let (file, unrecorded) = read(&data).to_ca_file(None, now, SECRET).unwrap();
    assert!(unrecorded);
    let retire = file.next_retirement().unwrap();
    let secs = retire
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(secs, now + DISPLACED_OVERLAP.as_secs());
}

#[test]
fn a_retired_root_leaves_ca_crt_and_is_not_taken_back() {
    let mut data = new_ca();
    let old = ders(&text(&data, TLS_CRT)).remove(0);
    let now = unix_now();
    let (mut file, _) = read(&data).to_ca_file(None, now, SECRET).unwrap();
    file.rotate(TD, Duration::ZERO).unwrap();
    write_ca(&file, &mut data, now, SECRET).unwrap();
    assert_eq!(ders(&text(&data, CA_CRT)).len(), 1, "the retired root left");
    let (file, unrecorded) = read(&data).to_ca_file(Some(&old), now, SECRET).unwrap();
    assert!(
        !unrecorded,
        "its retire time is kept, so it is not a displaced root"
    );
    assert_eq!(
        file.authority(TD, SECRET.as_ref()).unwrap().bundle().len(),
        1
    );
}

#[test]
fn broken_or_missing_keys_are_errors_naming_them() {
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let broken_body = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";
    let cases: [(&str, Option<&str>, &str); 7] = [
        (TLS_KEY, Some("not a key"), "tls.key: no PEM private key"),
        (
            TLS_KEY,
            Some(&other_key),
            "tls.key: not the key of the certificate in tls.crt",
        ),
        (TLS_KEY, None, "tls.key: missing"),
        (TLS_CRT, Some("not PEM"), "tls.crt: no PEM certificate"),
        (TLS_CRT, None, "tls.crt: missing"),
        (
            CA_CRT,
            Some(broken_body),
            "ca.crt: not an X.509 certificate",
        ),
        (
            RETIRING,
            Some("{\"a\": \"b\"}"),
            "smi-mesh.retiring.json: invalid type",
        ),
    ];
    for (key, value, expected) in cases {
        let mut data = new_ca();
        match value {
            Some(value) => data.insert(key.into(), value.as_bytes().to_vec()),
            None => data.remove(key),
        };
        let error = error(&data);
        assert!(
            error.starts_with(&format!("{SECRET}:{expected}")),
            "{key}: {error}"
        );
    }
    let mut two = new_ca();
    let both = format!("{}{}", text(&two, TLS_CRT), text(&new_ca(), TLS_CRT));
    two.insert(TLS_CRT.into(), both.into_bytes());
    assert!(
        error(&two).contains("tls.crt: 2 certificates"),
        "{}",
        error(&two)
    );
}

#[test]
fn a_secret_without_ca_keys_or_with_empty_ones_has_no_ca() {
    assert!(CaKeys::read(&Data::new(), SECRET).unwrap().is_none());
    let made_ahead = Data::from([(TLS_CRT.into(), Vec::new()), (TLS_KEY.into(), Vec::new())]);
    assert!(CaKeys::read(&made_ahead, SECRET).unwrap().is_none());
}

#[test]
fn the_ledger_bounds_new_tokens_and_forgets_expired_ones() {
    let now = unix_now();
    let live = Entry {
        used: 1,
        expires_unix: now + 600,
    };
    let mut uses = Uses(
        (0..MAX_TOKENS)
            .map(|i| (format!("{i:018x}"), live))
            .collect(),
    );
    let error = uses
        .record("ffff", live, now, SECRET)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!("{SECRET}:{TOKEN_USES}: holds")),
        "{error}"
    );
    uses.record(
        &format!("{:018x}", 7),
        Entry { used: 2, ..live },
        now,
        SECRET,
    )
    .expect("a known token may still be counted");
    uses.0.insert(
        format!("{:018x}", 0),
        Entry {
            used: 1,
            expires_unix: now - 120,
        },
    );
    uses.record("ffff", live, now, SECRET)
        .expect("an expired entry made room");
    assert_eq!(uses.0.len(), MAX_TOKENS);

    let mut data = Data::new();
    uses.write(&mut data, SECRET).unwrap();
    assert_eq!(Uses::read(&data, SECRET).unwrap(), uses);
    data.insert(TOKEN_USES.into(), b"[1, 2]".to_vec());
    let error = Uses::read(&data, SECRET).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{SECRET}:{TOKEN_USES}: invalid type")),
        "{error}"
    );
}

#[test]
fn versions_continue_above_the_mark_and_a_corrupt_mark_is_named() {
    let mut data = Data::new();
    assert_eq!(reserve(&mut data, 10, SECRET).unwrap(), 1..11);
    assert_eq!(reserve(&mut data, 10, SECRET).unwrap(), 11..21);
    data.insert(VERSIONS.into(), b"{\"reserved\": 7}".to_vec());
    let error = reserve(&mut data, 1, SECRET).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{SECRET}:{VERSIONS}: unknown field")),
        "{error}"
    );
    assert_eq!(data[VERSIONS], b"{\"reserved\": 7}");
}
