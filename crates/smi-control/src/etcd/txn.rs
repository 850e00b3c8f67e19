//! The pieces of etcd transactions: compares on what was read, and the operations, for the
//! store's writes and `smictl apply`/`delete`.

use super::client::{pb, prefix_end};

/// The compare "`key` does not exist".
pub fn absent(key: &str) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Create as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(pb::compare::TargetUnion::CreateRevision(0)),
        range_end: Vec::new(),
    }
}

/// The compare "`key` was last modified at `revision`" (0: it does not exist; etcd compares a
/// missing key's revisions as 0).
pub fn mod_revision_is(key: &str, revision: i64) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(pb::compare::TargetUnion::ModRevision(revision)),
        range_end: Vec::new(),
    }
}

/// The compare "no key under `prefix` was modified after `revision`" (a key deleted since is
/// not seen).
pub fn unchanged_since(prefix: &str, revision: i64) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Less as i32,
        target: pb::compare::CompareTarget::Mod as i32,
        key: prefix.as_bytes().to_vec(),
        target_union: Some(pb::compare::TargetUnion::ModRevision(revision + 1)),
        range_end: prefix_end(prefix.as_bytes()),
    }
}

pub fn put_op(key: &str, value: Vec<u8>, lease: i64) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub fn delete_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            },
        )),
    }
}

pub fn get_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// What each range operation of a failed transaction found: the key's value and revision, or
/// `None` where it found nothing, in the order of the operations.
pub fn found(answer: &pb::TxnResponse) -> Vec<Option<&pb::KeyValue>> {
    answer
        .responses
        .iter()
        .map(|r| match &r.response {
            Some(pb::response_op::Response::ResponseRange(range)) => range.kvs.first(),
            _ => None,
        })
        .collect()
}
