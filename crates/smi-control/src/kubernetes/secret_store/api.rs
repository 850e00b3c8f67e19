//! The store's calls to the API server (on its runtime, from any thread): read, create, and
//! read-modify-write on the resourceVersion read; and the copy the watch keeps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};

use super::follow::{data, fingerprint};
use super::layout::{Data, TLS_CRT, origin, write_ca};
use super::{ATTEMPTS, SECRET_TYPE, SecretStore, TOKEN_KEY};
use crate::ca::{CaFile, unix_now};
use crate::files::state_files::invalid;
use crate::store_runtime::RuntimeError;
use crate::traits::StoreError;

/// What a read-modify-write's change decided.
pub(super) enum Step<T> {
    /// Write the changed data; then `T`.
    Write(T),
    /// Nothing to write: `T` now.
    Keep(T),
}

impl SecretStore {
    // === the API server ===

    /// Runs a call on the store's runtime, from any thread.
    pub(super) fn call<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, kube::Error>> + Send + 'static,
    ) -> Result<Result<T, kube::Error>, StoreError> {
        self.runtime
            .block_on(async move { Ok::<_, RuntimeError>(call.await) })
            .map_err(|e| self.failed(e.to_string()))
    }

    pub(super) fn failed(&self, message: String) -> StoreError {
        StoreError::Io {
            path: self.name.clone().into(),
            source: std::io::Error::other(message),
        }
    }

    /// Reads the Secret from the API server (`None`: there is none).
    pub(super) fn fetch(&self) -> Result<Option<Secret>, StoreError> {
        let (api, name) = (self.api.clone(), self.secret.clone());
        let got = self
            .call(async move { api.get_opt(&name).await })?
            .map_err(|e| self.failed(format!("reading it: {}", describe(&e))))?;
        self.shared.read(got.clone());
        Ok(got)
    }

    /// Makes the Secret with a new CA and token key; `None` when another replica made it first.
    pub(super) fn create(&self, trust_domain: &str) -> Result<Option<Secret>, StoreError> {
        let mut data = Data::new();
        write_ca(
            &CaFile::new(trust_domain)?,
            &mut data,
            unix_now(),
            &self.name,
        )?;
        data.insert(TOKEN_KEY.into(), self.new_token_key()?);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.secret.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/part-of".to_owned(),
                    "smi-mesh".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.into()),
            data: Some(encode(data)),
            ..Secret::default()
        };
        let api = self.api.clone();
        match self.call(async move { api.create(&PostParams::default(), &secret).await })? {
            Ok(stored) => {
                tracing::info!(
                    secret = self.name,
                    "created the state Secret with a new root CA"
                );
                self.shared.wrote(stored.clone(), None);
                Ok(Some(stored))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(e) => Err(self.failed(format!("creating it: {}", describe(&e)))),
        }
    }

    /// Reads, changes and replaces the Secret on the resourceVersion read, again on a 409
    /// Conflict; `key` names what changes in errors.
    pub(super) fn update<T>(
        &self,
        key: &str,
        mut change: impl FnMut(&mut Data) -> Result<Step<T>, StoreError>,
    ) -> Result<T, StoreError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Replicas that collided try again at different moments: up to 1, 2, 4... ms.
                let jitter = rand::random::<u64>() % (1 << attempt.min(7));
                std::thread::sleep(Duration::from_millis(jitter));
            }
            let secret = match self.fetch()? {
                Some(secret) => secret,
                None => return Err(self.absent(key)),
            };
            self.check_type(&secret)?;
            let mut changed = data(&secret);
            let value = match change(&mut changed)? {
                Step::Keep(value) => return Ok(value),
                Step::Write(value) => value,
            };
            let before = fingerprint(Some(&secret));
            let mut new = secret;
            new.data = Some(encode(changed));
            let (api, name) = (self.api.clone(), self.secret.clone());
            match self
                .call(async move { api.replace(&name, &PostParams::default(), &new).await })?
            {
                Ok(stored) => {
                    self.shared.wrote(stored, before);
                    return Ok(value);
                }
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => return Err(self.failed(format!("writing {key}: {}", describe(&e)))),
            }
        }
        Err(StoreError::Conflict {
            path: origin(&self.name, key),
            message: format!(
                "changed by others {ATTEMPTS} times while this change was being made; nothing written, try again"
            ),
        })
    }

    // === the copy ===

    /// The Secret as last seen: `None` when there is none and never was (gone after it was
    /// seen is an error).
    pub(super) fn current(&self) -> Result<Option<Arc<Secret>>, StoreError> {
        match self.shared.seen().secret {
            Some(secret) => Ok(Some(secret)),
            None if self.shared.ever.load(Ordering::Acquire) => Err(self.absent("")),
            None => Ok(None),
        }
    }

    /// The error for a Secret that is not there when `key` is needed.
    pub(super) fn absent(&self, key: &str) -> StoreError {
        let path = if key.is_empty() {
            self.name.clone().into()
        } else {
            origin(&self.name, key)
        };
        let message = if self.shared.ever.load(Ordering::Acquire) {
            "the Secret is gone; restore it (a new CA would make every certificate issued untrusted, a new token key every join token)"
        } else {
            "no state Secret yet: a control makes it, with the CA, when it first starts"
        };
        StoreError::Invalid {
            path,
            message: message.into(),
        }
    }

    pub(super) fn ca_gone(&self) -> StoreError {
        invalid(
            &origin(&self.name, TLS_CRT),
            "the CA is gone from the Secret; restore tls.crt, tls.key and ca.crt (a new root would make every certificate issued untrusted)".into(),
        )
    }

    pub(super) fn check_type(&self, secret: &Secret) -> Result<(), StoreError> {
        match secret.type_.as_deref() {
            None | Some("Opaque" | SECRET_TYPE) => Ok(()),
            Some(other) => Err(invalid(
                &PathBuf::from(&self.name),
                format!("a Secret of type {other}; the state Secret is {SECRET_TYPE} or Opaque"),
            )),
        }
    }
}

pub(super) fn encode(data: Data) -> BTreeMap<String, ByteString> {
    data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()
}

/// A kube error, shortly: the API's status and message, or the client's error.
pub(super) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let hint = match status.code {
                403 => {
                    " (may this ServiceAccount get, update and watch this Secret, and create Secrets in its namespace on a first start?)"
                }
                404 => " (does the namespace exist?)",
                _ => "",
            };
            format!(
                "{} {}: {}{hint}",
                status.code, status.reason, status.message
            )
        }
        other => other.to_string(),
    }
}
