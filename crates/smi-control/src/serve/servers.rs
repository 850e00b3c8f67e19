//! The two servers of a control: the gRPC API (TLS, through the hot-swappable config) and the
//! admin HTTP server. Each ends when `stopping` turns true.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use smi_core::proto::v1::control_server::ControlServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, MAX_STREAMS_PER_CONNECTION, REQUEST_TIMEOUT};
use crate::admin::{self, Access, AdminState};
use crate::api::ControlApi;

pub(super) fn grpc(
    api: ControlApi,
    listener: TcpListener,
    tls: Arc<ArcSwap<ServerConfig>>,
    stopping: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let incoming = smi_tls::accept::incoming(listener, tls);
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .timeout(REQUEST_TIMEOUT)
        .add_service(
            ControlServer::new(api)
                .max_decoding_message_size(MAX_REQUEST_BYTES)
                .max_encoding_message_size(MAX_RESPONSE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, stopped(stopping));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    })
}

pub(super) fn admin(
    state: AdminState,
    access: Access,
    listener: TcpListener,
    stopping: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let server = axum::serve(listener, admin::router(state, access))
        .with_graceful_shutdown(stopped(stopping));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "admin server failed");
        }
    })
}

async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}
