//! [`EtcdClient`]: the part of etcd's v3 API the control uses, over tonic, on every member
//! given. A request goes to the member that answered last; when that one is unreachable, or
//! answers that it cannot serve now (no leader, leader changed), the next is tried, round after
//! round with a short backoff, until the request timeout. Errors that retrying cannot fix (a
//! compare that failed, an unknown lease) come back at once.
//!
//! Why not the `etcd-client` crate: its build script needs a system `protoc`, which a machine
//! with only the Rust toolchain does not have (the README's demo must build there). The stubs
//! here are generated from `proto/etcd/v3.proto` with protox, as the control API's are.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status, Streaming};

use super::EtcdConfig;

/// The generated etcd v3 messages and client stubs.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;
use pb::lease_client::LeaseClient;
use pb::watch_client::WatchClient;

/// Client TLS to etcd: the CA that signed the members' certificates, and this replica's
/// client certificate and key (PEM files).
#[derive(Clone, Debug)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd {what}: no member answered ({tried})")]
    Unavailable { what: &'static str, tried: String },
    #[error("etcd {what}: {code:?}: {message}")]
    Refused {
        what: &'static str,
        code: Code,
        message: String,
    },
    #[error("etcd endpoint {endpoint}: {message}")]
    Config { endpoint: String, message: String },
    #[error("etcd: {0}")]
    Runtime(#[from] crate::store_runtime::RuntimeError),
}

#[derive(Debug)]
struct Member {
    url: String,
    channel: Channel,
}

#[derive(Clone, Debug)]
pub struct EtcdClient {
    members: Arc<[Member]>,
    /// The member that answered last: requests start there.
    current: Arc<AtomicUsize>,
    request_timeout: Duration,
}

/// Between rounds over every member: etcd elects a leader in about a second.
const FIRST_ROUND_DELAY: Duration = Duration::from_millis(50);
const MAX_ROUND_DELAY: Duration = Duration::from_millis(500);
/// The least time one attempt on one member gets.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);
/// The largest answer decoded: a page of keys, or a watch answer carrying many revisions'
/// changes at once (etcd takes values up to 1.5 MiB).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

impl EtcdClient {
    /// Channels to every member, connected when first used. Must run in the etcd runtime's
    /// context ([`StoreRuntime::enter`](super::StoreRuntime::enter)).
    pub fn new(config: &EtcdConfig) -> Result<Self, EtcdError> {
        if config.endpoints.is_empty() {
            return Err(EtcdError::Config {
                endpoint: String::new(),
                message: "no etcd endpoint given".into(),
            });
        }
        let tls = config.tls.as_ref().map(client_tls).transpose()?;
        let members = config
            .endpoints
            .iter()
            .map(|url| {
                let config_error = |message: String| EtcdError::Config {
                    endpoint: url.clone(),
                    message,
                };
                let mut endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|e| config_error(e.to_string()))?
                    .connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true)
                    // A member that dies under a watch is noticed within seconds.
                    .http2_keep_alive_interval(Duration::from_secs(2))
                    .keep_alive_timeout(Duration::from_secs(2))
                    .keep_alive_while_idle(true);
                if let Some(tls) = &tls {
                    endpoint = endpoint
                        .tls_config(tls.clone())
                        .map_err(|e| config_error(e.to_string()))?;
                }
                Ok(Member {
                    url: url.clone(),
                    channel: endpoint.connect_lazy(),
                })
            })
            .collect::<Result<Vec<_>, EtcdError>>()?;
        Ok(Self {
            members: members.into(),
            current: Arc::default(),
            request_timeout: config.request_timeout,
        })
    }

    /// Runs `call` on a member, moving to the next on failures that another member, or a
    /// moment, can fix (see the module).
    async fn call<T, F, Fut>(&self, what: &'static str, mut call: F) -> Result<T, EtcdError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + self.request_timeout;
        // One member that hangs (cut off from the others, its reads wait for a quorum) must not
        // take the whole time: each attempt gets a share of it.
        let attempt = (self.request_timeout / u32::try_from(self.members.len()).unwrap_or(1))
            .max(MIN_ATTEMPT);
        let mut delay = FIRST_ROUND_DELAY;
        let mut tried = Vec::new();
        loop {
            for _ in 0..self.members.len() {
                let index = self.current.load(Ordering::Relaxed) % self.members.len();
                let member = &self.members[index];
                let until = deadline.min(Instant::now() + attempt);
                let failure =
                    match tokio::time::timeout_at(until, call(member.channel.clone())).await {
                        Ok(Ok(answer)) => return Ok(answer),
                        Ok(Err(status)) if !retryable(&status) => {
                            return Err(EtcdError::Refused {
                                what,
                                code: status.code(),
                                message: status.message().to_owned(),
                            });
                        }
                        Ok(Err(status)) => status.message().to_owned(),
                        Err(_) => "timed out".to_owned(),
                    };
                remember(&mut tried, &member.url, &failure);
                let _ = self.current.compare_exchange(
                    index,
                    index + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                if Instant::now() >= deadline {
                    return Err(EtcdError::Unavailable {
                        what,
                        tried: tried.join("; "),
                    });
                }
            }
            let now = Instant::now();
            if now + delay >= deadline {
                return Err(EtcdError::Unavailable {
                    what,
                    tried: tried.join("; "),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_ROUND_DELAY);
        }
    }

    /// One unary KV call, `method` on a client of whichever member [`call`](Self::call) picks.
    async fn kv<Req, Res, F, Fut>(
        &self,
        what: &'static str,
        request: Req,
        method: F,
    ) -> Result<Res, EtcdError>
    where
        Req: Clone,
        F: Fn(KvClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
    {
        self.call(what, |channel| method(kv_client(channel), request.clone()))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Every key under `prefix` at one revision, in pages, with that revision.
    pub async fn list(&self, prefix: &[u8]) -> Result<(Vec<pb::KeyValue>, i64), EtcdError> {
        // Pages of at most 100 values of at most 1.5 MiB each stay under MAX_ANSWER_BYTES.
        const PAGE: i64 = 100;
        let end = prefix_end(prefix);
        let mut from = prefix.to_vec();
        let mut revision = 0;
        let mut all = Vec::new();
        loop {
            let request = pb::RangeRequest {
                key: from.clone(),
                range_end: end.clone(),
                limit: PAGE,
                revision,
                ..Default::default()
            };
            let page = self
                .kv("list", request, |mut kv, r| async move {
                    kv.range(leader_required(r)).await
                })
                .await?;
            if revision == 0 {
                revision = header_revision(page.header.as_ref());
            }
            let more = page.more;
            if let Some(last) = page.kvs.last() {
                from = last.key.clone();
                from.push(0);
            }
            all.extend(page.kvs);
            if !more {
                return Ok((all, revision));
            }
        }
    }

    /// One key, read through the leader (linearizable), with the store's revision.
    pub async fn get(&self, key: &[u8]) -> Result<(Option<pb::KeyValue>, i64), EtcdError> {
        let request = pb::RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        let answer = self
            .kv("get", request, |mut kv, r| async move {
                kv.range(leader_required(r)).await
            })
            .await?;
        let revision = header_revision(answer.header.as_ref());
        Ok((answer.kvs.into_iter().next(), revision))
    }

    /// How many keys start with `prefix`.
    pub async fn count(&self, prefix: &[u8]) -> Result<i64, EtcdError> {
        let request = pb::RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            count_only: true,
            ..Default::default()
        };
        let answer = self
            .kv("count", request, |mut kv, r| async move {
                kv.range(leader_required(r)).await
            })
            .await?;
        Ok(answer.count)
    }

    /// Writes `value` at `key` (under `lease`, 0 for none); the revision it made.
    pub async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, EtcdError> {
        let request = pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            prev_kv: false,
        };
        let answer = self
            .kv("put", request, |mut kv, r| async move {
                kv.put(leader_required(r)).await
            })
            .await?;
        Ok(header_revision(answer.header.as_ref()))
    }

    pub async fn delete(&self, key: &[u8]) -> Result<i64, EtcdError> {
        let request = pb::DeleteRangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        let answer = self
            .kv("delete", request, |mut kv, r| async move {
                kv.delete_range(leader_required(r)).await
            })
            .await?;
        Ok(header_revision(answer.header.as_ref()))
    }

    /// One transaction. A retry after an answer was lost may find its own write and take the
    /// failure branch: callers compare on what they read, so that reads as a conflict.
    pub async fn txn(&self, request: pb::TxnRequest) -> Result<pb::TxnResponse, EtcdError> {
        self.kv("transaction", request, |mut kv, r| async move {
            kv.txn(leader_required(r)).await
        })
        .await
    }

    /// A new lease of `ttl`; its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let request = pb::LeaseGrantRequest {
            ttl: i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX),
            id: 0,
        };
        let answer = self
            .call("lease grant", |channel| async move {
                LeaseClient::new(channel)
                    .lease_grant(request)
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        if !answer.error.is_empty() {
            return Err(EtcdError::Refused {
                what: "lease grant",
                code: Code::Unknown,
                message: answer.error,
            });
        }
        Ok(answer.id)
    }

    /// Renews `lease` once; `false` when etcd no longer has it (it expired).
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, EtcdError> {
        self.call("lease keep-alive", |channel| async move {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.send(pb::LeaseKeepAliveRequest { id: lease }).await;
            let mut answers = LeaseClient::new(channel)
                .lease_keep_alive(ReceiverStream::new(rx))
                .await?
                .into_inner();
            match answers.message().await? {
                Some(answer) => Ok(answer.ttl > 0),
                None => Err(Status::unavailable("the keep-alive stream ended")),
            }
        })
        .await
    }

    /// A watch of every key under `prefix` from `start_revision`, with progress notifications
    /// (so that a quiet watch still says how far it has seen). The stream is open, and its
    /// `created` answer read, when this returns.
    pub async fn watch(&self, prefix: &[u8], start_revision: i64) -> Result<Watch, EtcdError> {
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: prefix.to_vec(),
                    range_end: prefix_end(prefix),
                    start_revision,
                    progress_notify: true,
                    ..Default::default()
                },
            )),
        };
        self.call("watch", |channel| {
            let create = create.clone();
            async move {
                let (requests, rx) = mpsc::channel(1);
                let _ = requests.send(create).await;
                let mut responses = WatchClient::new(channel)
                    .max_decoding_message_size(MAX_ANSWER_BYTES)
                    .watch(leader_required(ReceiverStream::new(rx)))
                    .await?
                    .into_inner();
                match responses.message().await? {
                    Some(first) => Ok(Watch {
                        _requests: requests,
                        responses,
                        first: Some(first),
                    }),
                    None => Err(Status::unavailable("the watch stream ended at once")),
                }
            }
        })
        .await
    }
}

/// An open watch stream.
#[derive(Debug)]
pub struct Watch {
    /// Dropping it would end the request stream, and etcd would close the watch.
    _requests: mpsc::Sender<pb::WatchRequest>,
    responses: Streaming<pb::WatchResponse>,
    first: Option<pb::WatchResponse>,
}

impl Watch {
    /// The next answer; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<pb::WatchResponse>, Status> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        self.responses.message().await
    }
}

fn kv_client(channel: Channel) -> KvClient<Channel> {
    KvClient::new(channel).max_decoding_message_size(MAX_ANSWER_BYTES)
}

/// `message`, marked so that a member without a leader refuses it (`hasleader`, as etcd's own
/// clients send) instead of serving what it has: a member cut off from the others would
/// otherwise keep a watch open and quiet, and the control would think itself current.
fn leader_required<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "hasleader",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    request
}

/// What another member, or a moment, can fix: the member is unreachable, has no leader, or
/// lost one. (etcd says `Unavailable` for those; a connection that fails is `Unavailable` or
/// `Unknown` in tonic.)
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::ResourceExhausted
    )
}

fn remember(tried: &mut Vec<String>, url: &str, message: &str) {
    let line = format!("{url}: {message}");
    if !tried.contains(&line) {
        tried.push(line);
    }
}

fn header_revision(header: Option<&pb::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}

/// The end of the range of keys that start with `prefix` (etcd's `range_end`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): every key from `prefix` on.
    vec![0]
}

fn client_tls(tls: &EtcdTls) -> Result<ClientTlsConfig, EtcdError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| EtcdError::Config {
            endpoint: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(EtcdError::Config {
                endpoint: String::new(),
                message: "a client certificate needs its key, and a key its certificate".into(),
            });
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_last_byte_plus_one() {
        assert_eq!(prefix_end(b"/smi-mesh/"), b"/smi-mesh0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
