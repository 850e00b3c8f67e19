//! The data plane end to end, in one test process: the mesh's TLS. Clients without a certificate
//! or with another CA's are refused at the handshake, and outside TLS clients (curl, openssl)
//! speak to a meshed server with standard TLS 1.3 and the workload's PEM files. A real control
//! service, real workloads (`Mesh`), real mTLS on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use smi_client::Mesh;
use smi_client::control::{Credentials, enroll};
use smi_test_util::bookstore::{self, WAIT, customer};
use smi_test_util::{Control, tls};

/// Talks TLS to a mesh server and tries one HTTP/1.1 request; returns what came back.
async fn raw_exchange(addr: SocketAddr, config: rustls::ClientConfig) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls::connect(addr, Arc::new(config))
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        b"GET /buy-a-book/new HTTP/1.1\r\nhost: bookstore.bookstore\r\nconnection: close\r\n\r\n",
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut buf))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Presents no client certificate.
#[derive(Debug)]
struct NoCertificate;

impl rustls::client::ResolvesClientCert for NoCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// The mesh client TLS of `credentials`, speaking HTTP/1.1 (the raw exchange writes HTTP/1.1).
fn http1_tls(credentials: &Credentials) -> rustls::ClientConfig {
    let mut config = credentials.client_config().unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_or_with_another_cas_are_refused_at_the_handshake() {
    let mut cluster = bookstore::control(50, 50).await;
    let v1 = bookstore::v1(&cluster).await;
    let buyer = customer(&cluster, "bookbuyer/bookbuyer").await;

    let bundle = buyer.credentials().bundle_der().to_vec();
    let mut without = http1_tls(&buyer.credentials());
    without.client_auth_cert_resolver = Arc::new(NoCertificate);
    let answer = raw_exchange(v1.addr, without).await;
    assert!(
        !answer.as_ref().is_ok_and(|b| b.starts_with(b"HTTP/")),
        "answered without a client certificate: {answer:?}"
    );

    // A certificate from another control service's CA.
    let mut other = bookstore::control(50, 50).await;
    let foreign = enroll(&other.addr(), &other.token("bookbuyer/bookbuyer", &[]))
        .await
        .unwrap();
    let foreign = foreign.with_bundle(bundle).unwrap();
    let answer = raw_exchange(v1.addr, http1_tls(&foreign)).await;
    assert!(
        !answer.as_ref().is_ok_and(|b| b.starts_with(b"HTTP/")),
        "answered a foreign certificate: {answer:?}"
    );

    // The same request with the buyer's own certificate is answered.
    let answer = raw_exchange(v1.addr, http1_tls(&buyer.credentials())).await;
    assert!(answer.unwrap().starts_with(b"HTTP/1.1 200"));
    cluster.shutdown().await;
    other.shutdown().await;
}

/// A workload's certificate chain, key (mode 0600) and trust bundle as PEM files, for outside
/// TLS clients.
fn pem_files(dir: &Path, name: &str, mesh: &Mesh) -> (PathBuf, PathBuf, PathBuf) {
    let files = mesh.credentials().write_pem_files(dir, name).unwrap();
    (files.chain, files.key, files.bundle)
}

/// `curl` against a meshed server; returns (exit code, "<status> HTTP/<version>").
fn curl(addr: SocketAddr, bundle: &Path, client: Option<(&Path, &Path)>) -> (i32, String) {
    let host = "bookstore-v1.bookstore.svc.cluster.local";
    let mut command = std::process::Command::new("curl");
    command
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} HTTP/%{http_version}",
            "--max-time",
            "5",
        ])
        .arg("--cacert")
        .arg(bundle)
        .args(["--resolve", &format!("{host}:{}:127.0.0.1", addr.port())]);
    if let Some((chain, key)) = client {
        command.arg("--cert").arg(chain).arg("--key").arg(key);
    }
    let output = command
        .arg(format!("https://{host}:{}/buy-a-book/new", addr.port()))
        .output()
        .expect("curl is installed (scripts/test installs it)");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_openssl_speak_to_a_meshed_server_with_standard_tls() {
    let mut cluster = bookstore::control(100, 0).await;
    let v1 = bookstore::v1(&cluster).await;
    let buyer = cluster.mesh("bookbuyer/bookbuyer", &[], &[]).await;
    let thief = cluster.mesh("bookthief/bookthief", &[], &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (buyer_crt, buyer_key, bundle) = pem_files(dir.path(), "buyer", &buyer);
    let (thief_crt, thief_key, _) = pem_files(dir.path(), "thief", &thief);
    let addr = v1.addr;

    let (without, with_buyer, with_thief) = tokio::task::spawn_blocking({
        let (bundle, buyer_crt, buyer_key, thief_crt, thief_key) = (
            bundle.clone(),
            buyer_crt.clone(),
            buyer_key.clone(),
            thief_crt,
            thief_key,
        );
        move || {
            (
                curl(addr, &bundle, None),
                curl(addr, &bundle, Some((&buyer_crt, &buyer_key))),
                curl(addr, &bundle, Some((&thief_crt, &thief_key))),
            )
        }
    })
    .await
    .unwrap();
    assert!(
        without.0 != 0 && without.1.starts_with("000"),
        "no client certificate must not get an answer: {without:?}"
    );
    // HTTP/2, negotiated by ALPN.
    assert_eq!(with_buyer, (0, "200 HTTP/2".to_owned()));
    assert_eq!(with_thief, (0, "403 HTTP/2".to_owned()));

    // openssl s_client: TLS 1.3, and the server's chain verifies against the bundle.
    let handshake = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-alpn",
                "h2",
                "-brief",
            ])
            .arg("-CAfile")
            .arg(&bundle)
            .arg("-cert")
            .arg(&buyer_crt)
            .arg("-key")
            .arg(&buyer_key)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed (scripts/test installs it)")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&handshake.stdout),
        String::from_utf8_lossy(&handshake.stderr)
    );
    assert!(text.contains("TLSv1.3"), "{text}");
    assert!(text.contains("Verification: OK"), "{text}");
    assert!(
        text.contains("Peer certificate: CN = bookstore/bookstore"),
        "{text}"
    );
    cluster.shutdown().await;
}
