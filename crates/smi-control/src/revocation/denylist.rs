//! `revoked.json`: the deny list, as `smictl revoke` writes it and the control reads it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use smi_core::ServiceAccount;

use crate::ca::CaStore;
use crate::files::state_files::{invalid, read_secret, write_atomic};
use crate::traits::StoreError;

/// The deny list's file name in the state directory.
pub const FILE: &str = "revoked.json";

/// The longest reason kept with a revocation, in characters.
pub const MAX_REASON_CHARS: usize = 256;

/// The longest token id accepted (ours are 18 hex digits).
const MAX_JTI_CHARS: usize = 64;

/// Revoked identities and join tokens. Unknown fields are refused: a misspelt key would
/// otherwise revoke nothing without a word.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyList {
    #[serde(default)]
    pub identities: Vec<RevokedIdentity>,
    #[serde(default)]
    pub tokens: Vec<RevokedToken>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedIdentity {
    /// `namespace/serviceaccount`.
    pub identity: String,
    pub revoked_at_unix: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedToken {
    /// The token's id (`jti`), as `smictl token create` prints it.
    pub jti: String,
    pub revoked_at_unix: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl DenyList {
    /// Where the deny list of `state_dir` lives.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE)
    }

    /// Reads the deny list of `state_dir`: empty when there is none; an error naming the file
    /// and the entry when it cannot be read (a link, open to others, not JSON, a bad entry).
    pub fn load(state_dir: &Path) -> Result<DenyList, StoreError> {
        let path = Self::path(state_dir);
        let Some(text) = read_secret(&path)? else {
            return Ok(DenyList::default());
        };
        Self::parse(text.as_bytes(), &path)
    }

    /// A deny list as stored at `origin` (a path, or an etcd key), which errors name.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<DenyList, StoreError> {
        let list: DenyList =
            serde_json::from_slice(bytes).map_err(|e| invalid(origin, e.to_string()))?;
        list.validate().map_err(|e| invalid(origin, e))?;
        Ok(list)
    }

    /// The list as stored, checked first.
    pub fn to_json(&self, origin: &Path) -> Result<Vec<u8>, StoreError> {
        self.validate().map_err(|e| invalid(origin, e))?;
        serde_json::to_vec_pretty(self).map_err(|e| invalid(origin, e.to_string()))
    }

    /// Replaces the deny list of `state_dir` in one step (mode 0600; the directory is made
    /// 0700 if needed).
    pub fn save(&self, state_dir: &Path) -> Result<(), StoreError> {
        let path = Self::path(state_dir);
        let json = self.to_json(&path)?;
        CaStore::new(state_dir).create_dir()?;
        write_atomic(&path, &json, 0o600)
    }

    /// Revokes `identity`; `false` when it already was (its time is kept; a new reason
    /// replaces the old one).
    pub fn revoke_identity(
        &mut self,
        identity: &ServiceAccount,
        reason: Option<String>,
        now_unix: u64,
    ) -> bool {
        let text = identity.to_string();
        if let Some(entry) = self.identities.iter_mut().find(|e| e.identity == text) {
            if reason.is_some() {
                entry.reason = reason;
            }
            return false;
        }
        self.identities.push(RevokedIdentity {
            identity: text,
            revoked_at_unix: now_unix,
            reason,
        });
        true
    }

    /// Revokes the join token `jti`; `false` when it already was.
    pub fn revoke_token(&mut self, jti: &str, reason: Option<String>, now_unix: u64) -> bool {
        if let Some(entry) = self.tokens.iter_mut().find(|e| e.jti == jti) {
            if reason.is_some() {
                entry.reason = reason;
            }
            return false;
        }
        self.tokens.push(RevokedToken {
            jti: jti.to_owned(),
            revoked_at_unix: now_unix,
            reason,
        });
        true
    }

    /// Every entry well formed, or the first that is not, by its place in the file.
    pub fn validate(&self) -> Result<(), String> {
        for (i, e) in self.identities.iter().enumerate() {
            e.identity
                .parse::<ServiceAccount>()
                .map_err(|err| format!("identities[{i}].identity {:?}: {err}", e.identity))?;
            if let Some(reason) = &e.reason {
                check_reason(reason).map_err(|err| format!("identities[{i}].reason: {err}"))?;
            }
        }
        for (i, e) in self.tokens.iter().enumerate() {
            check_jti(&e.jti).map_err(|err| format!("tokens[{i}].jti: {err}"))?;
            if let Some(reason) = &e.reason {
                check_reason(reason).map_err(|err| format!("tokens[{i}].reason: {err}"))?;
            }
        }
        Ok(())
    }
}

/// A token id: 1 to 64 lowercase hex digits.
pub fn check_jti(jti: &str) -> Result<(), String> {
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if jti.is_empty() || jti.len() > MAX_JTI_CHARS || !jti.chars().all(hex) {
        return Err(format!(
            "{jti:?} is not a token id (1 to {MAX_JTI_CHARS} lowercase hex digits, as `smictl token create` prints)"
        ));
    }
    Ok(())
}

/// A reason: one line of at most [`MAX_REASON_CHARS`] characters.
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(format!("longer than {MAX_REASON_CHARS} characters"));
    }
    if reason.chars().any(char::is_control) {
        return Err("contains control characters (keep it to one line of text)".into());
    }
    Ok(())
}
