//! The CA and the token key in the Secret: made on a first start (or added to a Secret made
//! ahead of the control), and a root displaced by someone else recorded as retiring.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::api::Step;
use super::follow::data;
use super::layout::{CaKeys, Data, TLS_CRT, origin, write_ca};
use super::{DISPLACED_OVERLAP, SecretStore, TOKEN_KEY};
use crate::ca::{CaFile, TOKEN_KEY_LEN, decode_token_key, unix_now};
use crate::files::state_files::{invalid, no_randomness};
use crate::traits::StoreError;

impl SecretStore {
    /// `smictl ca rotate` on the Secret: a new root signs; the others stay trusted for
    /// `overlap` (the state directory's rotation, on the same roots). Retried on the version
    /// read if others write meanwhile.
    pub fn rotate(&self, trust_domain: &str, overlap: Duration) -> Result<(), StoreError> {
        self.update(TLS_CRT, |data| {
            let now = unix_now();
            let keys = CaKeys::read(data, &self.name)?.ok_or_else(|| {
                invalid(
                    &origin(&self.name, TLS_CRT),
                    "no CA yet: start a control first".into(),
                )
            })?;
            let (mut file, _) = keys.to_ca_file(None, now, &self.name)?;
            file.rotate(trust_domain, overlap)?;
            write_ca(&file, data, now, &self.name)?;
            Ok(Step::Write(()))
        })
    }

    /// The data with a CA: the Secret made if there is none, a CA added to one made without.
    pub(super) fn ca_data(&self, trust_domain: &str) -> Result<Data, StoreError> {
        let secret = match self.current()? {
            Some(secret) => secret,
            None => match self.create(trust_domain)? {
                Some(created) => Arc::new(created),
                // Another replica was first: its CA is the one.
                None => Arc::new(self.fetch()?.ok_or_else(|| self.absent(TLS_CRT))?),
            },
        };
        self.check_type(&secret)?;
        let data = data(&secret);
        if CaKeys::read(&data, &self.name)?.is_some() {
            return Ok(data);
        }
        if self.ca_seen.load(Ordering::Acquire) {
            return Err(self.ca_gone());
        }
        // A Secret made ahead of the control (so that RBAC can name it), without a CA yet.
        self.update(TLS_CRT, |data| {
            if CaKeys::read(data, &self.name)?.is_none() {
                write_ca(&CaFile::new(trust_domain)?, data, unix_now(), &self.name)?;
                tracing::info!(secret = self.name, "made a new root CA in the state Secret");
                return Ok(Step::Write(data.clone()));
            }
            Ok(Step::Keep(data.clone()))
        })
    }

    /// Records in the Secret what [`CaKeys::to_ca_file`] found unrecorded (a root displaced
    /// by someone else); the CA as the Secret then says, and its signer.
    pub(super) fn record_displaced(
        &self,
        previous: Option<&[u8]>,
    ) -> Result<(CaFile, Vec<u8>), StoreError> {
        self.update(TLS_CRT, |data| {
            let now = unix_now();
            let keys = CaKeys::read(data, &self.name)?.ok_or_else(|| self.ca_gone())?;
            let (file, unrecorded) = keys.to_ca_file(previous, now, &self.name)?;
            let signer = keys.signer().to_vec();
            if !unrecorded {
                return Ok(Step::Keep((file, signer)));
            }
            write_ca(&file, data, now, &self.name)?;
            tracing::info!(
                secret = self.name,
                overlap_secs = DISPLACED_OVERLAP.as_secs(),
                "the signing root was replaced by someone else (cert-manager?); the previous one stays trusted for the overlap"
            );
            Ok(Step::Write((file, signer)))
        })
    }

    pub(super) fn new_token_key(&self) -> Result<Vec<u8>, StoreError> {
        let mut key = vec![0u8; TOKEN_KEY_LEN];
        aws_lc_rs::rand::fill(&mut key)
            .map_err(|_| no_randomness(&origin(&self.name, TOKEN_KEY)))?;
        Ok(STANDARD.encode(&key).into_bytes())
    }

    pub(super) fn decode_token_key(&self, text: &[u8]) -> Result<Vec<u8>, StoreError> {
        let path = origin(&self.name, TOKEN_KEY);
        let text = std::str::from_utf8(text).map_err(|_| invalid(&path, "not UTF-8".into()))?;
        decode_token_key(&path, text)
    }
}
