//! Bad input never panics: bounded property runs (in CI, seconds) over the same entry points as
//! the cargo-fuzz targets in `fuzz/` (for longer runs): join tokens, CSRs, the control API's
//! protobuf messages as a workload decodes and compiles them. The policy loader has its own
//! property tests in smi-core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use prost::Message;
use smi_control::ca::{Authority, CaStore};
use smi_core::model::PolicySet;
use smi_core::proto::v1;
use smi_core::{Options, ServiceAccount, Snapshot};

fn authority() -> &'static Authority {
    static CA: OnceLock<(tempfile::TempDir, Authority)> = OnceLock::new();
    &CA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ca = CaStore::new(dir.path())
            .open_or_init("cluster.local")
            .unwrap();
        (dir, ca)
    })
    .1
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_token_text_is_parsed_or_refused(text in ".{0,300}") {
        let _ = smi_core::token::parse(&text);
    }

    #[test]
    fn token_shaped_garbage_is_parsed_or_refused(claims in "[A-Za-z0-9_-]{0,200}", mac in "[A-Za-z0-9_-]{0,60}") {
        let _ = smi_core::token::parse(&format!("smi1.{claims}.{mac}"));
    }

    #[test]
    fn any_csr_bytes_are_signed_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let account = ServiceAccount::new("a", "b");
        let result = authority().issue_workload(&bytes, &account, &[], Duration::from_secs(60));
        prop_assert!(result.is_err(), "random bytes are not a CSR");
    }

    #[test]
    fn any_policy_update_bytes_decode_convert_and_compile_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        if let Ok(update) = v1::PolicyUpdate::decode(bytes.as_slice())
            && let Ok(policy) = PolicySet::try_from(update.policy.unwrap_or_default())
        {
            let _ = Snapshot::compile(policy, Options::default());
        }
    }
}

/// Structured updates: valid protobuf with arbitrary strings where names, regexes and identities go.
fn arbitrary_policy() -> impl Strategy<Value = v1::Policy> {
    let text = "[a-z./*()\\[\\]^$|+?-]{0,12}";
    (text, text, text, text, 0u64..200).prop_map(|(name, regex, method, service, weight)| {
        v1::Policy {
            http_route_groups: vec![v1::HttpRouteGroup {
                meta: Some(v1::Meta {
                    namespace: "ns".into(),
                    name: name.clone(),
                    ..Default::default()
                }),
                matches: vec![v1::HttpMatch {
                    name: name.clone(),
                    path_regex: Some(regex),
                    methods: vec![method],
                    ..Default::default()
                }],
            }],
            traffic_splits: vec![v1::TrafficSplit {
                meta: Some(v1::Meta {
                    namespace: "ns".into(),
                    name: name.clone(),
                    ..Default::default()
                }),
                service: service.clone(),
                backends: vec![v1::Backend { service, weight }],
                matches: vec![name],
            }],
            ..Default::default()
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn structured_updates_with_hostile_strings_convert_and_compile_or_are_refused(policy in arbitrary_policy()) {
        if let Ok(policy) = PolicySet::try_from(policy) {
            let _ = Snapshot::compile(policy, Options::default());
        }
    }
}
