//! Each mTLS role against its counterpart, over an in-memory duplex: the certificates are real
//! (rcgen, P-256, issued with the SAN convention of `smi_core::san`), the handshakes are rustls'.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::sync::Arc;

mod common;

use rcgen::{CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use smi_core::{WorkloadNames, control_spiffe_id};
use smi_tls::{OwnCertificate, PeerIdentityError, peer_identity, peer_spiffe_id};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use common::{Ca, workload};

/// What each side saw of the other after one handshake.
#[derive(Debug)]
struct Seen {
    /// The server's leaf, as the client saw it.
    server_leaf: Option<CertificateDer<'static>>,
    /// The client's leaf, as the server saw it.
    client_leaf: Option<CertificateDer<'static>>,
    alpn: Option<Vec<u8>>,
}

/// Runs one handshake, dialling the name of service `bookstore/bookstore`. The error says
/// which sides failed, and why (the other side of a refusal often fails too, on the alert).
async fn handshake(client: ClientConfig, server: ServerConfig) -> Result<Seen, String> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let connector = TlsConnector::from(Arc::new(client));
    let name = ServerName::try_from(STORE_DNS).unwrap();
    let (client, server) = tokio::join!(connector.connect(name, a), acceptor.accept(b));
    let (client, server) = match (client, server) {
        (Ok(client), Ok(server)) => (client, server),
        (Ok(_), Err(s)) => return Err(format!("server: {s}")),
        (Err(c), Ok(_)) => return Err(format!("client: {c}")),
        (Err(c), Err(s)) => return Err(format!("client: {c}; server: {s}")),
    };
    let leaf = |certs: Option<&[CertificateDer<'static>]>| certs.and_then(|c| c.first().cloned());
    Ok(Seen {
        server_leaf: leaf(client.get_ref().1.peer_certificates()),
        client_leaf: leaf(server.get_ref().1.peer_certificates()),
        alpn: client.get_ref().1.alpn_protocol().map(<[u8]>::to_vec),
    })
}

const STORE_DNS: &str = "bookstore.bookstore.svc.cluster.local";

/// A client as any TLS library makes one: verifying the server by DNS name against the CA.
fn standard_client(
    ca: &Ca,
    own: Option<OwnCertificate>,
    version: &'static rustls::SupportedProtocolVersion,
) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    match own {
        Some(own) => builder.with_client_auth_cert(own.chain, own.key).unwrap(),
        None => builder.with_no_client_auth(),
    }
}

#[tokio::test]
async fn workloads_authenticate_each_other_and_read_the_names_the_ca_wrote() {
    let ca = Ca::new();
    let store = workload("bookstore", "bookstore", &[("bookstore", "bookstore-v1")]);
    let buyer = workload("bookbuyer", "bookbuyer", &[]);
    let mtls = ca.mtls();
    let seen = handshake(
        mtls.workload_client(ca.issue(&buyer)).unwrap(),
        mtls.workload_server(ca.issue(&store)).unwrap(),
    )
    .await
    .unwrap();
    let server = peer_identity(&seen.server_leaf.unwrap()).unwrap();
    assert_eq!(server.spiffe_id, store.spiffe_id);
    assert_eq!(server.serves, store.serves);
    let client = peer_spiffe_id(seen.client_leaf.as_ref().map(std::slice::from_ref)).unwrap();
    assert_eq!(client, buyer.spiffe_id);
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn a_workload_server_requires_a_client_certificate_of_its_bundle() {
    let (ca, other) = (Ca::new(), Ca::new());
    let store = workload("bookstore", "bookstore", &[("bookstore", "bookstore")]);
    let server = ca.mtls().workload_server(ca.issue(&store)).unwrap();
    let thief = workload("bookthief", "bookthief", &[]);
    // The server itself is fine by any standard client's rules...
    let ours = standard_client(&ca, Some(ca.issue(&thief)), &rustls::version::TLS13);
    assert!(handshake(ours, server.clone()).await.is_ok());
    // ...but a client without a certificate, or with one of another CA, is refused by it.
    for client in [
        standard_client(&ca, None, &rustls::version::TLS13),
        standard_client(&ca, Some(other.issue(&thief)), &rustls::version::TLS13),
    ] {
        let refused = handshake(client, server.clone()).await.unwrap_err();
        assert!(refused.contains("server:"), "{refused}");
    }
}

#[tokio::test]
async fn the_control_client_accepts_only_the_control_identity() {
    let ca = Ca::new();
    let mtls = ca.mtls();
    let control = WorkloadNames::new(control_spiffe_id("cluster.local"), Vec::new());
    let buyer = ca.issue(&workload("bookbuyer", "bookbuyer", &[]));
    let seen = handshake(
        mtls.control_client(Some(buyer.clone()), "cluster.local")
            .unwrap(),
        mtls.control_server(ca.issue(&control)).unwrap(),
    )
    .await
    .unwrap();
    assert!(seen.client_leaf.is_some());
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    // First contact: no client certificate, still accepted by the control server.
    let first = mtls.control_client(None, "cluster.local").unwrap();
    assert!(
        handshake(first, mtls.control_server(ca.issue(&control)).unwrap())
            .await
            .is_ok()
    );
    // A workload of the same CA posing as the control.
    let impostor = ca.issue(&workload("bookthief", "bookthief", &[]));
    let refused = handshake(
        mtls.control_client(Some(buyer), "cluster.local").unwrap(),
        mtls.control_server(impostor).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(refused.contains("not the control service"), "{refused}");
}

/// A CA, the bookstore's certificate (serving `bookstore/bookstore`) and the buyer's.
fn store_and_buyer() -> (Ca, OwnCertificate, OwnCertificate) {
    let ca = Ca::new();
    let store = ca.issue(&workload(
        "bookstore",
        "bookstore",
        &[("bookstore", "bookstore")],
    ));
    let buyer = ca.issue(&workload("bookbuyer", "bookbuyer", &[]));
    (ca, store, buyer)
}

#[tokio::test]
async fn every_server_role_refuses_a_tls_1_2_client() {
    let (ca, store, buyer) = store_and_buyer();
    let mtls = ca.mtls();
    for server in [
        mtls.workload_server(store.clone()).unwrap(),
        mtls.control_server(store).unwrap(),
    ] {
        let tls13 = standard_client(&ca, Some(buyer.clone()), &rustls::version::TLS13);
        assert!(handshake(tls13, server.clone()).await.is_ok());
        let tls12 = standard_client(&ca, Some(buyer.clone()), &rustls::version::TLS12);
        let refused = handshake(tls12, server).await.unwrap_err();
        assert!(refused.contains("Tls12NotOffered"), "{refused}");
    }
}

#[tokio::test]
async fn every_client_role_refuses_a_tls_1_2_server() {
    let (ca, store, buyer) = store_and_buyer();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls12 = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(store.chain, store.key)
        .unwrap();
    let mtls = ca.mtls();
    for client in [
        mtls.workload_client(buyer.clone()).unwrap(),
        mtls.control_client(Some(buyer), "cluster.local").unwrap(),
    ] {
        let refused = handshake(client, tls12.clone()).await.unwrap_err();
        assert!(refused.contains("client:"), "{refused}");
    }
}

#[test]
fn a_certificate_without_a_spiffe_id_is_a_typed_error() {
    let ca = Ca::new();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = IsCa::NoCa;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    assert_eq!(
        peer_identity(cert.der()),
        Err(PeerIdentityError::Names(smi_core::SanError::SpiffeIdCount(
            0
        )))
    );
    assert_eq!(peer_spiffe_id(None), Err(PeerIdentityError::NoCertificate));
    assert!(matches!(
        peer_identity(&CertificateDer::from(vec![1, 2, 3])),
        Err(PeerIdentityError::Unparseable(_))
    ));
}
