//! Writing a change of policy in one etcd transaction, on the versions it was decided on: each
//! key is written only if its modification revision is still the one read (0 when it was
//! absent: etcd compares a missing key's as 0), and only if no other policy key was changed
//! since the policy was read (the whole policy was validated with the change, not only the keys
//! written), so that a concurrent change fails it whole.

use prost::Message;

use crate::etcd::txn::{delete_op, found, get_op, mod_revision_is, put_op, unchanged_since};
use crate::etcd::{Etcd, EtcdError, pb};

/// etcd's default `--max-txn-ops`: a transaction with more operations is refused.
pub const MAX_TXN_OPS: usize = 128;

/// etcd's default `--max-request-bytes` (1.5 MiB), less room for what etcd wraps a request in.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024 - 1024;

/// One key to change: put `value`, or delete it (`None`), if it is still at `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub key: String,
    pub revision: i64,
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(
        "{0} resources changed; etcd takes at most {MAX_TXN_OPS} in one transaction (its --max-txn-ops), and an apply is all or nothing: apply them in parts"
    )]
    TooMany(usize),
    #[error(
        "the change is {0} bytes; etcd takes at most 1.5 MiB in one request (its --max-request-bytes), and an apply is all or nothing: apply it in parts"
    )]
    TooLarge(usize),
    /// Someone else changed these keys since they were read; nothing was written.
    #[error("changed by someone else: {}", .0.join(", "))]
    Conflict(Vec<String>),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

/// The policy as it was read: its keys' prefix and the revision it was read at.
#[derive(Clone, Copy, Debug)]
pub struct ReadAt<'a> {
    pub prefix: &'a str,
    pub revision: i64,
}

/// The transaction for `writes` on the policy as `read`, refused when etcd would refuse it.
pub fn request(writes: &[Write], read: ReadAt<'_>) -> Result<pb::TxnRequest, CommitError> {
    if writes.len() > MAX_TXN_OPS {
        return Err(CommitError::TooMany(writes.len()));
    }
    let request = pb::TxnRequest {
        compare: writes
            .iter()
            .map(|w| mod_revision_is(&w.key, w.revision))
            .chain([unchanged_since(read.prefix, read.revision)])
            .collect(),
        success: writes
            .iter()
            .map(|w| match &w.value {
                Some(value) => put_op(&w.key, value.clone(), 0),
                None => delete_op(&w.key),
            })
            .collect(),
        // On a conflict, the keys as they are now: which of them changed, or whether they
        // already hold this change (a retry of a write whose answer was lost).
        failure: writes.iter().map(|w| get_op(&w.key)).collect(),
    };
    let len = request.encoded_len();
    if len > MAX_REQUEST_BYTES {
        return Err(CommitError::TooLarge(len));
    }
    Ok(request)
}

/// Writes all of `writes` (their [`request`]), or nothing.
pub fn commit(etcd: &Etcd, request: pb::TxnRequest, writes: &[Write]) -> Result<(), CommitError> {
    let client = etcd.client().clone();
    let answer = etcd
        .runtime()
        .block_on(async move { client.txn(request).await })?;
    if answer.succeeded {
        return Ok(());
    }
    let now = found(&answer);
    if writes
        .iter()
        .zip(&now)
        .all(|(w, now)| now.map(|kv| &kv.value) == w.value.as_ref())
    {
        // Every key already holds what was to be written: this is a retry of the same write
        // after its answer was lost (see `EtcdClient::txn`).
        return Ok(());
    }
    let mut changed: Vec<String> = writes
        .iter()
        .zip(&now)
        .filter(|(w, now)| w.revision != now.map_or(0, |kv| kv.mod_revision))
        .map(|(w, _)| w.key.clone())
        .collect();
    if changed.is_empty() {
        // None of the keys written changed: another policy key did.
        changed.push("another policy resource".to_owned());
    }
    Err(CommitError::Conflict(changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: ReadAt<'static> = ReadAt {
        prefix: "/smi-mesh/policy/",
        revision: 41,
    };

    fn put(n: usize, len: usize) -> Write {
        Write {
            key: format!("/smi-mesh/policy/TrafficSplit/shop/s{n}"),
            revision: i64::try_from(n).unwrap(),
            value: Some(vec![b'x'; len]),
        }
    }

    #[test]
    fn each_write_is_compared_on_the_revision_it_was_read_at() {
        let writes = [
            put(0, 3),
            Write {
                value: None,
                ..put(7, 0)
            },
        ];
        let request = request(&writes, READ).unwrap();
        let revisions: Vec<_> = request
            .compare
            .iter()
            .map(|c| (c.target, c.target_union.clone()))
            .collect();
        let mod_target = pb::compare::CompareTarget::Mod as i32;
        assert_eq!(
            revisions,
            [
                (mod_target, Some(pb::compare::TargetUnion::ModRevision(0))),
                (mod_target, Some(pb::compare::TargetUnion::ModRevision(7))),
                // The whole policy: nothing under the prefix changed after the read.
                (mod_target, Some(pb::compare::TargetUnion::ModRevision(42))),
            ]
        );
        let guard = &request.compare[2];
        assert_eq!(guard.result, pb::compare::CompareResult::Less as i32);
        assert_eq!(guard.key, b"/smi-mesh/policy/");
        assert_eq!(guard.range_end, b"/smi-mesh/policy0");
        assert!(matches!(
            request.success[0].request,
            Some(pb::request_op::Request::RequestPut(ref p)) if p.value == b"xxx"
        ));
        assert!(matches!(
            request.success[1].request,
            Some(pb::request_op::Request::RequestDeleteRange(_))
        ));
        assert_eq!(request.failure.len(), 2);
    }

    #[test]
    fn a_transaction_etcd_would_refuse_is_refused_naming_the_limit() {
        let many: Vec<Write> = (0..=MAX_TXN_OPS).map(|n| put(n, 10)).collect();
        let err = request(&many, READ).unwrap_err();
        assert!(matches!(err, CommitError::TooMany(129)), "{err}");
        assert!(err.to_string().contains("at most 128"), "{err}");
        assert!(request(&many[..MAX_TXN_OPS], READ).is_ok());

        let large: Vec<Write> = (0..2).map(|n| put(n, 800 * 1024)).collect();
        let err = request(&large, READ).unwrap_err();
        assert!(matches!(err, CommitError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("1.5 MiB"), "{err}");
    }
}
