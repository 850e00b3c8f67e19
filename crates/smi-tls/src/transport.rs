//! The mesh's TLS transport once the handshake is done: rustls driven directly rather than
//! through tokio-rustls, so that HTTP/2's bytes reach the socket in few records and few system
//! calls.
//!
//! Two things differ from tokio-rustls, and both come from measuring the data-plane benchmark
//! (BENCHMARKS.md, "Data-path speed"):
//!
//! - **Writes are gathered, and flushes coalesced.** h2 flushes after every DATA frame of 256
//!   bytes or more, so a server answering 64 requests at once used to seal 64 records and make
//!   64 `writev` calls. Here written plaintext is gathered in one buffer, and a flush that
//!   follows new writes is put off until the next flush with nothing new (h2 always makes one at
//!   the end of its write pass) or the next read: the whole pass becomes a few 16 KiB records and
//!   one system call. A put-off flush wakes the task, so it is never forgotten; reads, shutdown
//!   and a full buffer send it at once. Only for callers that poll the stream again after a
//!   flush, as hyper's connections do ([`Transport::coalescing`]); otherwise a flush is a flush.
//! - **Reads are large.** rustls reads at most 4 KiB per call; here one `read` takes up to
//!   [`READ_BUFFER`] of ciphertext, which rustls then takes from memory.
use std::io::{self, BufRead as _, IoSlice, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use rustls::Connection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Ciphertext read from the socket in one system call, at most: a few full records.
pub const READ_BUFFER: usize = 32 * 1024;

/// Plaintext gathered before it is sealed and sent without waiting for a flush: enough for one
/// write pass of an HTTP/2 connection under load (64 responses of 1 KiB), small enough that a
/// connection does not hold much memory. Larger writes are sealed straight from the caller's
/// buffers.
pub const WRITE_BUFFER: usize = 64 * 1024;

/// A TLS connection (client or server) over `IO` after its handshake.
#[derive(Debug)]
pub struct Transport<IO: AsyncRead + AsyncWrite + Unpin> {
    io: IO,
    tls: Connection,
    /// Ciphertext from the socket that rustls has not taken yet: `incoming[start..end]`.
    /// Allocated at the first read, so that a connection that never reads holds none.
    incoming: Vec<u8>,
    start: usize,
    end: usize,
    /// The socket has ended (a read of 0 bytes); rustls has been told.
    eof: bool,
    /// Plaintext written and not yet sealed into records.
    outgoing: Vec<u8>,
    /// Ciphertext bytes sealed and not yet sent, at most (what we gave rustls, plus records).
    sealed: usize,
    coalescing: bool,
    /// Written since the last flush.
    written: bool,
    /// A flush was put off: the next read, write past the buffer, flush or shutdown sends.
    flush_owed: bool,
    close_notify_sent: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Transport<IO> {
    /// The connection `tls`, whose handshake is complete, over `io`. Whatever rustls already
    /// holds (records read with the handshake's last flight, tickets to send) is kept.
    pub fn new(io: IO, tls: impl Into<Connection>) -> Self {
        let mut tls = tls.into();
        // The bounds are ours (`WRITE_BUFFER`, back-pressure on what is sealed): rustls then
        // always takes what it is given, and bytes cannot be split between it and `outgoing`.
        tls.set_buffer_limit(None);
        Self {
            io,
            tls,
            incoming: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            outgoing: Vec::new(),
            sealed: 0,
            coalescing: false,
            written: false,
            flush_owed: false,
            close_notify_sent: false,
        }
    }

    /// Coalesces flushes (see the module): for a caller that polls the stream again after each
    /// flush until it is idle, such as hyper's HTTP/1 and HTTP/2 connections.
    pub fn coalescing(mut self) -> Self {
        self.coalescing = true;
        self
    }

    /// The socket and the TLS connection.
    pub fn get_ref(&self) -> (&IO, &Connection) {
        (&self.io, &self.tls)
    }

    /// Seals the gathered plaintext into records.
    fn seal(&mut self) -> io::Result<()> {
        if !self.outgoing.is_empty() {
            self.tls.writer().write_all(&self.outgoing)?;
            self.sealed += self.outgoing.len();
            self.outgoing.clear();
        }
        Ok(())
    }

    /// Seals and sends everything written so far.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.seal()?;
        while self.tls.wants_write() {
            let mut socket = SyncWriter {
                io: &mut self.io,
                cx,
            };
            match self.tls.write_tls(&mut socket) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.sealed = 0;
        self.flush_owed = false;
        Poll::Ready(Ok(()))
    }

    /// Sends a put-off flush, or what rustls wants to send after reading (a key update), as far
    /// as the socket takes it without waiting.
    fn send_owed(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if (self.flush_owed || self.tls.wants_write())
            && let Poll::Ready(Err(e)) = self.poll_send(cx)
        {
            return Err(e);
        }
        Ok(())
    }

    /// Gives rustls ciphertext from `incoming`, reading the socket when it is used up.
    /// `Ready(Ok(()))` when rustls has new input (records or the end of the stream).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.start == self.end {
            if self.eof {
                // rustls knows: its reader now says Ok(0) or UnexpectedEof, never WouldBlock.
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            if self.incoming.is_empty() {
                self.incoming = vec![0; READ_BUFFER];
            }
            let mut buf = ReadBuf::new(&mut self.incoming);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            (self.start, self.end) = (0, n);
            if n == 0 {
                self.eof = true;
                // An empty reader is how rustls learns of the end.
                self.tls.read_tls(&mut io::empty())?;
                return Poll::Ready(Ok(()));
            }
        }
        let n = self
            .tls
            .read_tls(&mut &self.incoming[self.start..self.end])?;
        self.start += n;
        if let Err(e) = self.tls.process_new_packets() {
            // Send the alert rustls queued, if the socket takes it now.
            let _ = self.poll_send(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Transport<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.send_owed(cx)?;
        loop {
            match this.tls.reader().into_first_chunk() {
                Ok(chunk) => {
                    // Empty only at a clean end (close_notify): the end of the stream.
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    this.tls.reader().consume(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            ready!(this.poll_fill(cx))?;
            this.send_owed(cx)?;
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Transport<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        // Back-pressure: what is sealed must reach the socket before more is taken.
        if this.sealed >= WRITE_BUFFER {
            ready!(this.poll_send(cx))?;
        }
        this.written = true;
        if this.outgoing.len() + len <= WRITE_BUFFER {
            for b in bufs {
                this.outgoing.extend_from_slice(b);
            }
            return Poll::Ready(Ok(len));
        }
        // Too large to gather: seal what is gathered, then the first buffer from where it is
        // (up to `WRITE_BUFFER`; a short write, as the contract allows).
        this.seal()?;
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        let first = &first[..first.len().min(WRITE_BUFFER)];
        this.tls.writer().write_all(first)?;
        this.sealed += first.len();
        Poll::Ready(Ok(first.len()))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.coalescing && this.written {
            this.written = false;
            this.flush_owed = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        this.written = false;
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_notify_sent {
            this.seal()?;
            this.tls.send_close_notify();
            this.close_notify_sent = true;
        }
        ready!(this.poll_send(cx))?;
        match ready!(Pin::new(&mut this.io).poll_shutdown(cx)) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Drop for Transport<IO> {
    /// A put-off flush is sent now, as far as the socket takes it without waiting: the caller
    /// flushed, so it counts on those bytes leaving (hyper may drop a connection right after its
    /// last flush).
    fn drop(&mut self) {
        if self.flush_owed {
            let _ = self.poll_send(&mut Context::from_waker(Waker::noop()));
        }
    }
}

/// The socket as a blocking writer for rustls: `WouldBlock` when it is not ready.
struct SyncWriter<'a, 'b, IO> {
    io: &'a mut IO,
    cx: &'a mut Context<'b>,
}

impl<IO: AsyncWrite + Unpin> Write for SyncWriter<'_, '_, IO> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
