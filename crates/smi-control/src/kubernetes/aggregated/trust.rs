//! The front proxy in force, from the ConfigMap `kube-system/extension-apiserver-authentication`:
//! read once at start (a start without it fails, saying why), then watched (kube-rs's watcher:
//! a field selector on its name, which is what the `extension-apiserver-authentication-reader`
//! Role allows; relists and backoff as the watcher does them).
//!
//! A changed ConfigMap is published whole ([`FrontProxy`], a new generation) once it parses;
//! one that does not parse leaves the last good one in force. A deleted ConfigMap trusts no one
//! until it is back: fail closed.

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use super::AggregatedApiError;
use super::requestheader::{CONFIG_MAP_NAME, FrontProxy, RequestHeaderConfig};

/// The front proxy as the ConfigMap says now.
pub(super) async fn load(api: &Api<ConfigMap>) -> Result<FrontProxy, AggregatedApiError> {
    let map = api
        .get(CONFIG_MAP_NAME)
        .await
        .map_err(|e| AggregatedApiError::Read(e.to_string()))?;
    Ok(FrontProxy::new(RequestHeaderConfig::try_from(&map)?, 1)?)
}

/// Where a new front proxy goes: the swap the guard reads per request, then the generation
/// for whoever waits on changes.
#[derive(Debug)]
pub(super) struct Published {
    pub current: Arc<ArcSwap<FrontProxy>>,
    pub generation: watch::Sender<u64>,
}

impl Published {
    fn store(&self, front: FrontProxy) {
        let generation = front.generation;
        self.current.store(Arc::new(front));
        self.generation.send_replace(generation);
    }
}

/// Publishes each change of the ConfigMap, until `stopping`.
pub(super) async fn follow(
    api: Api<ConfigMap>,
    published: Published,
    mut stopping: watch::Receiver<bool>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP_NAME}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut failing = false;
    // Whether the list being read (after a start or a relist) holds the ConfigMap.
    let mut listed = false;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let Some(event) = event else {
            return;
        };
        match event {
            Ok(event) => {
                if failing {
                    tracing::info!(
                        configmap = CONFIG_MAP_NAME,
                        "front-proxy ConfigMap watch recovered"
                    );
                    failing = false;
                }
                match event {
                    Event::Init => listed = false,
                    Event::InitApply(map) => {
                        listed = true;
                        apply(&published, &map);
                    }
                    Event::Apply(map) => apply(&published, &map),
                    Event::InitDone if listed => {}
                    Event::InitDone | Event::Delete(_) => close(&published),
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(configmap = CONFIG_MAP_NAME, error = %e, "front-proxy ConfigMap watch failed; keeping the last front proxy and retrying");
                }
                failing = true;
            }
        }
    }
}

fn apply(published: &Published, map: &ConfigMap) {
    let now = published.current.load();
    let config = match RequestHeaderConfig::try_from(map) {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(error = %e, "front-proxy ConfigMap not usable; keeping the last one");
            return;
        }
    };
    if now.config() == Some(&config) {
        return;
    }
    match FrontProxy::new(config, now.generation + 1) {
        Ok(front) => {
            tracing::info!(
                generation = front.generation,
                allowed_names = ?front.config().map(|c| &c.allowed_names),
                "front-proxy CA and headers updated"
            );
            published.store(front);
        }
        Err(e) => {
            tracing::warn!(error = %e, "front-proxy ConfigMap not usable; keeping the last one")
        }
    }
}

fn close(published: &Published) {
    let now = published.current.load();
    if now.config().is_none() {
        return;
    }
    tracing::warn!(
        configmap = CONFIG_MAP_NAME,
        "front-proxy ConfigMap deleted: no request is authenticated until it is back"
    );
    published.store(FrontProxy::closed(now.generation + 1));
}
