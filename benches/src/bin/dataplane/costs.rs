//! The cost model of one request: what the kernel and rustls do for it.
//!
//! - [`Perf`]: system calls by kind and context switches of a process, counted by the kernel
//!   (`perf stat` on its tracepoints) over a saturation window; divided by the requests served,
//!   the I/O cost of one request.
//! - [`rustls_floor`]: rustls' own cost for one request and its response, both ends in this
//!   process with no socket: sealing and opening the records, and rustls' bookkeeping. What TLS
//!   costs at the least; the rest of B - A is moving bytes.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use crate::Error;

/// What h2 writes for the benchmark's GET (HEADERS with END_STREAM) and its 1 KiB answer
/// (HEADERS, then DATA), frame headers included: from the bytes A's server writes per request.
pub const REQUEST_BYTES: usize = 40;
pub const RESPONSE_BYTES: usize = 1070;

/// The events counted per request (`perf stat` names), in the cost table's order.
pub const EVENTS: [(&str, &str); 6] = [
    ("raw_syscalls:sys_enter", "syscalls"),
    ("syscalls:sys_enter_recvfrom", "recv"),
    ("syscalls:sys_enter_writev", "writev"),
    ("syscalls:sys_enter_sendto", "send"),
    ("syscalls:sys_enter_epoll_wait", "epoll_wait"),
    ("context-switches", "switches"),
];

/// `perf stat` counting [`EVENTS`] of one process until [`Perf::stop`]. The kernel's
/// tracepoints count every system call exactly, at a small cost per call: the cost table is
/// measured in a pass of its own, not in the rounds that give the throughput.
pub struct Perf {
    child: std::process::Child,
}

impl Perf {
    /// `None` where perf is not installed or cannot attach (Debian: `apt-get install
    /// linux-perf`; tracepoints need root or `perf_event_paranoid` <= -1).
    pub fn start(pid: u32) -> Option<Self> {
        let events: Vec<&str> = EVENTS.iter().map(|(e, _)| *e).collect();
        let child = std::process::Command::new("perf")
            .args([
                "stat",
                "-x",
                ",",
                "-e",
                &events.join(","),
                "-p",
                &pid.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        // perf prints nothing until it stops; give it time to attach before the load starts.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Some(Self { child })
    }

    /// Stops counting; each event's count, in [`EVENTS`]' order.
    pub fn stop(mut self) -> Option<[f64; EVENTS.len()]> {
        std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .ok()?;
        let mut report = String::new();
        self.child.stderr.take()?.read_to_string(&mut report).ok()?;
        self.child.wait().ok()?;
        let mut counts = [0.0; EVENTS.len()];
        for line in report.lines() {
            let fields: Vec<&str> = line.split(',').collect();
            if let (Some(value), Some(event)) = (fields.first(), fields.get(2))
                && let Some(i) = EVENTS.iter().position(|(e, _)| e == event)
            {
                counts[i] = value.parse().ok()?;
            }
        }
        Some(counts)
    }
}

/// Moves what `from` has to send into `to`, and what `to` reads of it into `got`.
fn pass(
    from: &mut rustls::Connection,
    to: &mut rustls::Connection,
    got: &mut Vec<u8>,
) -> Result<(), Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire)?;
    }
    let mut wire = &wire[..];
    got.clear();
    while !wire.is_empty() {
        to.read_tls(&mut wire)?;
        to.process_new_packets()?;
        // Taken as it comes: rustls holds at most 16 KiB of plaintext unread.
        match to.reader().read_to_end(got) {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Microseconds of CPU (one thread) for one request of `request` bytes and its response of
/// `response` bytes through rustls in memory, both ends, `batch` of each per record (1: a
/// record per message, as h2 over tokio-rustls sends them; 64: a write pass coalesced).
pub fn rustls_floor(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    request: usize,
    response: usize,
    batch: usize,
) -> Result<f64, Error> {
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut c = rustls::Connection::Client(ClientConnection::new(client, name)?);
    let mut s = rustls::Connection::Server(ServerConnection::new(server)?);
    // A coalesced pass is more than rustls' default 64 KiB of unsent data.
    c.set_buffer_limit(None);
    s.set_buffer_limit(None);
    let mut got = Vec::new();
    while c.is_handshaking() || s.is_handshaking() {
        pass(&mut c, &mut s, &mut got)?;
        pass(&mut s, &mut c, &mut got)?;
    }
    let (ask, answer) = (vec![b'q'; request * batch], vec![b'r'; response * batch]);
    let rounds = 20_000 / batch;
    let started = Instant::now();
    for _ in 0..rounds {
        c.writer().write_all(&ask)?;
        pass(&mut c, &mut s, &mut got)?;
        s.writer().write_all(&answer)?;
        pass(&mut s, &mut c, &mut got)?;
    }
    if got.len() != answer.len() {
        return Err("the in-memory exchange lost bytes".into());
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / (rounds * batch) as f64)
}

/// Microseconds of one `write` of `bytes` to a loopback TCP socket whose reader (a thread of its
/// own, on the other CPU when there is one) drains it in 64 KiB reads: what one system call on
/// the data path costs the writer here, loopback delivery included (Linux runs the receiving
/// side of loopback TCP in the sender's system call).
pub fn loopback_write_us(bytes: usize) -> Result<f64, Error> {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut writer = TcpStream::connect(listener.local_addr()?)?;
    writer.set_nodelay(true)?;
    let (mut reader, _) = listener.accept()?;
    let writes = 100_000;
    let total = writes * bytes;
    let drain = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0; 64 * 1024];
        let mut read = 0;
        while read < total {
            match reader.read(&mut buf)? {
                0 => break,
                n => read += n,
            }
        }
        Ok(())
    });
    let message = vec![b'r'; bytes];
    let started = Instant::now();
    for _ in 0..writes {
        writer.write_all(&message)?;
    }
    let elapsed = started.elapsed();
    drain.join().map_err(|_| "the reader thread panicked")??;
    Ok(elapsed.as_secs_f64() * 1e6 / writes as f64)
}
