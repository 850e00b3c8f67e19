//! The Secret's small JSON keys besides the CA: `token-uses.json` (the token-use ledger, one
//! map for every token: the Secret is one object) and `versions.json` (the version mark, as
//! the state directory's `versions.json`).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::layout::{Data, origin, present};
use crate::files::state_files::invalid;
use crate::traits::StoreError;

pub(super) const TOKEN_USES: &str = "token-uses.json";
pub(super) const VERSIONS: &str = "versions.json";

/// The most join tokens the ledger holds: a Secret holds at most 1 MiB, and an entry takes
/// about 60 bytes (tokens minted by `smictl token create`). A new token beyond it is refused
/// until entries expire.
pub const MAX_TOKENS: usize = 10_000;

/// How long after its expiry a token's entry is kept: an enrollment that verified the token
/// just before it expired still finds its count (as in the state directory).
const GRACE_SECS: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Entry {
    pub used: u32,
    pub expires_unix: u64,
}

/// `token-uses.json`: jti -> its uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Uses(pub BTreeMap<String, Entry>);

// === impl Uses ===

impl Uses {
    /// The ledger in `data`; an error naming the key when it is not the ledger's JSON (it is
    /// left as it is: guessing would forget counts, and let used tokens enroll again).
    pub fn read(data: &Data, secret: &str) -> Result<Uses, StoreError> {
        let Some(json) = present(data, TOKEN_USES) else {
            return Ok(Uses::default());
        };
        serde_json::from_slice(json).map(Uses).map_err(|e| {
            invalid(
                &origin(secret, TOKEN_USES),
                format!("{e}; no join token can enroll until it is fixed (removing the key forgets every count: used tokens could enroll again until they expire)"),
            )
        })
    }

    /// Records `entry` for `jti`, forgetting the entries of tokens expired a while ago; a new
    /// token beyond [`MAX_TOKENS`] is refused.
    pub fn record(
        &mut self,
        jti: &str,
        entry: Entry,
        now: u64,
        secret: &str,
    ) -> Result<(), StoreError> {
        self.0
            .retain(|_, e| e.expires_unix.saturating_add(GRACE_SECS) > now);
        if !self.0.contains_key(jti) && self.0.len() >= MAX_TOKENS {
            return Err(invalid(
                &origin(secret, TOKEN_USES),
                format!(
                    "holds the uses of {MAX_TOKENS} live join tokens, the most one Secret holds; a new token can enroll once some expire (mint tokens with shorter lives)"
                ),
            ));
        }
        self.0.insert(jti.to_owned(), entry);
        Ok(())
    }

    pub fn write(&self, data: &mut Data, secret: &str) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&self.0)
            .map_err(|e| invalid(&origin(secret, TOKEN_USES), e.to_string()))?;
        data.insert(TOKEN_USES.into(), json);
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    reserved_below: u64,
}

/// Moves the mark in `data` up by `count`; the numbers below it and above the old one.
pub(super) fn reserve(data: &mut Data, count: u64, secret: &str) -> Result<Range<u64>, StoreError> {
    let key = origin(secret, VERSIONS);
    let mark = match present(data, VERSIONS) {
        Some(json) => serde_json::from_slice::<Mark>(json).map_err(|e| {
            invalid(&key, format!("{e}; restore it, or remove it (versions then start again from 1, and workloads that kept a view may take a new state for the one they hold)"))
        })?.reserved_below,
        None => 0,
    };
    let start = mark.max(1);
    let end = start
        .checked_add(count)
        .ok_or_else(|| invalid(&key, "version numbers exhausted".into()))?;
    let json = serde_json::to_vec(&Mark {
        reserved_below: end,
    })
    .map_err(|e| invalid(&key, e.to_string()))?;
    data.insert(VERSIONS.into(), json);
    Ok(start..end)
}
