//! `smi_tls::Transport` over real loopback TCP with real workload certificates: bytes of every
//! size both ways, the end of a stream (clean and cut), a forged record, and how many socket
//! writes a pass of HTTP/2-like writes and flushes costs, coalesced or not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use smi_tls::Transport;
use smi_tls::transport::RECORD;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use common::{Ca, workload};

const LIMIT: Duration = Duration::from_secs(10);

/// A socket that counts the writes that reached it (each one system call).
struct Counted {
    tcp: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            this.writes.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

type Client = Transport<Counted>;
type Server = Transport<TcpStream>;

/// A client and a server transport after a real handshake on loopback, and the count of the
/// client's socket writes (from the end of the handshake).
async fn pair() -> (Client, Server, Arc<AtomicUsize>) {
    let ((io, tls), server, writes) = handshake().await;
    (Transport::new(io, tls), server, writes)
}

/// As [`pair`], with the client's socket and TLS connection apart.
async fn handshake() -> ((Counted, ClientConnection), Server, Arc<AtomicUsize>) {
    let ca = Ca::new();
    let mtls = ca.mtls();
    let store = workload("bookstore", "bookstore", &[("bookstore", "bookstore-v1")]);
    let buyer = workload("bookbuyer", "bookbuyer", &[]);
    let mut server = mtls.workload_server(ca.issue(&store)).unwrap();
    // No session tickets: a client that closes with them unread would reset the connection
    // (the kernel's answer to unread data), and the tests read how streams end.
    server.send_tls13_tickets = 0;
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let connector = TlsConnector::from(Arc::new(mtls.workload_client(ca.issue(&buyer)).unwrap()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = Counted {
        tcp: TcpStream::connect(addr).await.unwrap(),
        writes: writes.clone(),
    };
    let (accepted, _) = listener.accept().await.unwrap();
    let name = ServerName::try_from("bookstore.bookstore.svc.cluster.local").unwrap();
    let (client, server) =
        tokio::join!(connector.connect(name, counted), acceptor.accept(accepted));
    let client = client.unwrap().into_inner();
    let (io, tls) = server.unwrap().into_inner();
    let server = Transport::new(io, tls);
    writes.store(0, Ordering::Relaxed);
    (client, server, writes)
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {LIMIT:?}"))
}

/// Echoes what it reads until the end of the stream, then closes its side cleanly.
async fn echo(mut server: Server) {
    let mut buf = vec![0; 70_000];
    loop {
        let n = server.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        server.write_all(&buf[..n]).await.unwrap();
        server.flush().await.unwrap();
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bytes_of_every_size_cross_both_ways_coalesced() {
    let (client, server, _) = pair().await;
    let mut client = client.coalescing();
    let echoed = tokio::spawn(echo(server.coalescing()));
    for size in [1, 1000, 16 * 1024 + 1, 200_000, 1 << 20] {
        let sent: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut back = vec![0; size];
        // Written as h2 writes DATA frames (each in two buffers, each flushed), and read at once
        // in the same task: a put-off flush goes out when the stream is read, and the echo
        // comes back while the client still writes.
        let (mut reader, mut writer) = tokio::io::split(&mut client);
        within("echo", async {
            let (wrote, read) = tokio::join!(
                async {
                    for frame in sent.chunks(1000) {
                        let (head, rest) = frame.split_at(1.min(frame.len()));
                        let mut bufs = [io::IoSlice::new(head), io::IoSlice::new(rest)];
                        let mut bufs = &mut bufs[..];
                        while !bufs.is_empty() {
                            let n = writer.write_vectored(bufs).await?;
                            io::IoSlice::advance_slices(&mut bufs, n);
                        }
                        writer.flush().await?;
                    }
                    writer.flush().await
                },
                reader.read_exact(&mut back)
            );
            wrote.unwrap();
            read.unwrap();
        })
        .await;
        assert!(back == sent, "{size} bytes came back changed");
    }
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within("clean end", client.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());
    within("echo task", echoed).await.unwrap();
}

#[tokio::test]
async fn without_coalescing_a_write_is_sent_as_it_is_made() {
    let (mut client, mut server, writes) = pair().await;
    // As under tokio-rustls: an application may write and then only read.
    client.write_all(b"ping").await.unwrap();
    assert_eq!(writes.load(Ordering::Relaxed), 1);
    client.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::Relaxed), 1);
    let mut buf = [0; 4];
    within("ping", server.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"ping");
}

/// Writes what h2 writes for a DATA frame of 256 bytes or more: its header and its payload as
/// two buffers, in one vectored write (repeated if the transport takes part of it).
async fn write_frame(client: &mut Client, payload: &[u8]) {
    let header = [0u8; 9];
    let (mut header, mut payload) = (&header[..], payload);
    while !header.is_empty() || !payload.is_empty() {
        let n = client
            .write_vectored(&[io::IoSlice::new(header), io::IoSlice::new(payload)])
            .await
            .unwrap();
        let from_header = n.min(header.len());
        header = &header[from_header..];
        payload = &payload[n - from_header..];
    }
}

#[tokio::test]
async fn a_flush_after_a_frame_apart_goes_out_at_the_next_poll_of_the_stream() {
    let (client, mut server, writes) = pair().await;
    let mut client = client.coalescing();
    write_frame(&mut client, b"ping").await;
    client.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::Relaxed), 0, "the flush is put off");
    // A second flush with nothing new written is the end of the pass: it sends.
    client.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::Relaxed), 1);

    write_frame(&mut client, b"pong").await;
    client.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::Relaxed), 1, "put off again");
    // Reading sends what is owed before waiting for the answer.
    let answer = tokio::spawn(async move {
        let mut buf = [0; 26];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf[9..13], b"ping");
        assert_eq!(&buf[22..], b"pong");
        server.write_all(b"ok").await.unwrap();
        server.flush().await.unwrap();
    });
    let mut buf = [0; 2];
    within("answer", client.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"ok");
    assert_eq!(writes.load(Ordering::Relaxed), 2);
    answer.await.unwrap();
}

#[tokio::test]
async fn a_flush_after_one_buffer_goes_out_at_once_even_coalescing() {
    let (client, mut server, writes) = pair().await;
    let mut client = client.coalescing();
    // What h2 writes when it gathered small frames itself (a client's requests).
    client.write_all(b"requests").await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::Relaxed), 1);
    let mut buf = [0; 8];
    within("requests", server.read_exact(&mut buf))
        .await
        .unwrap();
}

/// What h2 does when it answers many requests at once: each DATA frame written and flushed,
/// then one last flush. Returns the bytes written.
async fn write_pass(client: &mut Client, frames: usize) -> usize {
    for _ in 0..frames {
        write_frame(client, &[b'x'; 1000]).await;
        client.flush().await.unwrap();
    }
    client.flush().await.unwrap();
    frames * 1009
}

#[tokio::test]
async fn a_coalesced_write_pass_is_one_socket_write() {
    let (client, mut server, writes) = pair().await;
    let mut client = client.coalescing();
    let written = write_pass(&mut client, 15).await;
    assert!(written < RECORD);
    assert_eq!(writes.load(Ordering::Relaxed), 1);
    let mut all = vec![0; written];
    within("the pass", server.read_exact(&mut all))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_long_write_pass_goes_out_a_full_record_at_a_time() {
    let (client, mut server, writes) = pair().await;
    let mut client = client.coalescing();
    let written = write_pass(&mut client, 64).await;
    assert_eq!(writes.load(Ordering::Relaxed), written.div_ceil(RECORD));
    let mut all = vec![0; written];
    within("the pass", server.read_exact(&mut all))
        .await
        .unwrap();
}

#[tokio::test]
async fn without_coalescing_every_flush_is_a_socket_write() {
    let (mut client, mut server, writes) = pair().await;
    let written = write_pass(&mut client, 64).await;
    assert_eq!(writes.load(Ordering::Relaxed), 64);
    let mut all = vec![0; written];
    within("the pass", server.read_exact(&mut all))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_put_off_flush_is_sent_when_the_transport_is_dropped() {
    let (client, mut server, writes) = pair().await;
    let mut client = client.coalescing();
    write_frame(&mut client, b"last words").await;
    client.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::Relaxed), 0, "the flush is put off");
    drop(client);
    let mut heard = Vec::new();
    // The socket ends without close_notify (a drop is not a shutdown), after the bytes.
    let end = within("the last words", server.read_to_end(&mut heard)).await;
    assert_eq!(&heard[9..], b"last words");
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn gathered_bytes_go_out_before_close_notify() {
    let (client, mut server, _) = pair().await;
    let mut client = client.coalescing();
    write_frame(&mut client, b"unflushed").await;
    client.shutdown().await.unwrap();
    let mut heard = Vec::new();
    // A clean end (close_notify), after the bytes.
    within("the end", server.read_to_end(&mut heard))
        .await
        .unwrap();
    assert_eq!(&heard[9..], b"unflushed");
}

#[tokio::test]
async fn empty_buffers_in_a_vectored_write_are_skipped() {
    let (client, mut server, _) = pair().await;
    let mut client = client.coalescing();
    let big = vec![b'y'; 20_000];
    let n = client
        .write_vectored(&[io::IoSlice::new(&[]), io::IoSlice::new(&big)])
        .await
        .unwrap();
    assert!(
        n > 0,
        "an empty first buffer made the write look like a closed stream"
    );
    client.flush().await.unwrap();
    let mut got = vec![0; n];
    within("the write", server.read_exact(&mut got))
        .await
        .unwrap();
    assert!(got.iter().all(|&b| b == b'y'));
}

#[tokio::test]
async fn a_cut_connection_is_an_error_not_an_end() {
    let ((mut socket, _), mut server, _) = handshake().await;
    // The TCP stream ended without close_notify: a truncation, which the reader must not take
    // for an end.
    socket.tcp.shutdown().await.unwrap();
    let mut buf = [0; 16];
    let error = within("the cut", server.read(&mut buf)).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_forged_record_is_refused() {
    let ((mut socket, _), mut server, _) = handshake().await;
    // An application-data record whose tag cannot verify.
    let mut record = vec![23, 3, 3, 0, 40];
    record.extend([0x5a; 40]);
    socket.tcp.write_all(&record).await.unwrap();
    let mut buf = [0; 16];
    let error = within("the forged record", server.read(&mut buf))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
}
