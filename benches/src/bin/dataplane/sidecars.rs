//! The sidecar model (variant D): a pair of HAProxy proxies with mTLS between them, using
//! certificates from the same control service.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use smi_test_util::{Control, LocalControl};
use tokio::net::TcpStream;

use crate::Error;

/// Whether `haproxy` can be run here.
pub fn installed() -> bool {
    std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok()
}

/// A free loopback port (bound and released; HAProxy binds it right after).
fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The HAProxy sidecar pair in front of the plain server `a_addr`: returns the client-side
/// proxy's address (h2c in), and the two processes.
pub async fn start(
    control: &LocalControl,
    dir: &std::path::Path,
    a_addr: SocketAddr,
) -> Result<(SocketAddr, Vec<tokio::process::Child>), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut files = Vec::new();
    for (name, identity) in [
        ("client-sidecar", "bench/client-sidecar"),
        ("server-sidecar", "bench/server-sidecar"),
    ] {
        let credentials = control.enroll(identity, &[]).await;
        // HAProxy wants the chain and the key in one file.
        let pem = credentials.write_pem_files(dir, name)?;
        let path = dir.join(format!("{name}.pem"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        std::io::Write::write_all(
            &mut file,
            format!(
                "{}{}",
                std::fs::read_to_string(&pem.chain)?,
                std::fs::read_to_string(&pem.key)?
            )
            .as_bytes(),
        )?;
        files.push(path);
    }
    let bundle = dir.join("bundle.pem");
    let (front, between) = (free_port()?, free_port()?);
    let defaults =
        "defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n";
    let client_side = format!(
        "global\n  maxconn 4000\n{defaults}frontend local\n  bind 127.0.0.1:{front} proto h2\n  default_backend remote\nbackend remote\n  server remote 127.0.0.1:{between} ssl crt {} ca-file {} verify required alpn h2\n",
        files[0].display(),
        bundle.display()
    );
    let server_side = format!(
        "global\n  maxconn 4000\n{defaults}frontend mtls\n  bind 127.0.0.1:{between} ssl crt {} ca-file {} verify required alpn h2\n  default_backend app\nbackend app\n  server app {a_addr} proto h2\n",
        files[1].display(),
        bundle.display()
    );
    let mut processes = Vec::new();
    for (name, config) in [
        ("server-side.cfg", server_side),
        ("client-side.cfg", client_side),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, config)?;
        processes.push(
            tokio::process::Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&path)
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    let addr: SocketAddr = format!("127.0.0.1:{front}").parse()?;
    // Ready when the client-side proxy accepts.
    let started = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("HAProxy did not start within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((addr, processes))
}
