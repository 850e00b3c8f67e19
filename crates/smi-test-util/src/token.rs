//! Join tokens for tests: the one place a test mints them, with the CA and token key of a
//! control service's state directory (created there if the control has not started yet).

use std::path::Path;
use std::time::Duration;

use smi_control::ca::CaStore;
use smi_control::enroll::{JoinTokens, NewToken};
use smi_core::{ServiceAccount, ServiceRef};

/// The trust domain every fixture's control service runs in.
pub const TRUST_DOMAIN: &str = smi_core::DEFAULT_TRUST_DOMAIN;

/// How long a token lives and how many certificates it buys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    pub ttl: Duration,
    pub uses: u32,
}

impl Default for TokenSpec {
    /// Ten minutes, one use: what `smictl token create` gives by default, and long enough for
    /// any test.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            uses: 1,
        }
    }
}

/// A join token for `identity` that may serve `serves`, signed with the token key in `state`
/// and pinning its CA. The identity and services are taken as given, without the checks that
/// parsing them applies, so a test can also mint what a forger would.
pub fn mint_token(
    state: &Path,
    identity: &ServiceAccount,
    serves: &[ServiceRef],
    spec: TokenSpec,
) -> NewToken {
    let store = CaStore::new(state);
    let ca = store
        .open_or_init(TRUST_DOMAIN)
        .unwrap_or_else(|e| panic!("the CA in {}: {e}", state.display()));
    let key = store
        .token_key()
        .unwrap_or_else(|e| panic!("the token key in {}: {e}", state.display()));
    JoinTokens::new(&key, TRUST_DOMAIN).create_with_uses(
        identity,
        serves,
        spec.ttl,
        ca.bundle(),
        spec.uses,
    )
}

/// A single-use join token for `identity` (`ns/name`) that may serve `serves` (`ns/name`
/// each), living ten minutes.
pub fn join_token(state: &Path, identity: &str, serves: &[&str]) -> String {
    let identity: ServiceAccount = identity
        .parse()
        .unwrap_or_else(|e| panic!("{identity:?} is not a ServiceAccount: {e}"));
    let serves: Vec<ServiceRef> = serves
        .iter()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("{s:?} is not a service: {e}"))
        })
        .collect();
    mint_token(state, &identity, &serves, TokenSpec::default()).token
}
