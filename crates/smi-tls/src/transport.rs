//! The mesh's TLS transport once the handshake is done: rustls driven directly rather than
//! through tokio-rustls, so that HTTP/2's bytes reach the socket in few records and few system
//! calls. The rules below come from the data-plane benchmark (BENCHMARKS.md, "Data-path
//! speed"), each measured.
//!
//! - **A write pass is one record stream.** h2 flushes after every DATA frame of 256 bytes or
//!   more (it writes the frame's payload as a buffer of its own), so a server answering 64
//!   requests at once used to seal 64 records and make 64 `writev` calls. Here written plaintext
//!   is gathered, and a flush right after such a frame is put off: the pass's last flush (h2
//!   always makes one, with nothing new written) or the next read sends it all. A put-off flush
//!   wakes the task, so it cannot be forgotten, and dropping the transport tries to send it.
//! - **A full record goes at once** ([`RECORD`]): the peer starts on the first responses while
//!   the rest of a long pass is written, instead of both ends taking turns.
//! - **Any other flush is a flush**: after a write of one buffer (h2 gathered small frames
//!   itself, as a client's requests are), waiting would only add a turn of the scheduler.
//! - **Reads are large.** rustls reads at most 4 KiB per call; here one `read` takes up to
//!   [`READ_BUFFER`] of ciphertext, which rustls then takes from memory.
//!
//! Flushes are put off only for a caller that polls the stream again after a flush, as hyper's
//! connections do ([`Transport::coalescing`]). Otherwise (streams an application owns) every
//! write is sent as it is made, as under tokio-rustls, and reads never send.
use std::io::{self, BufRead as _, IoSlice, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, BytesMut};
use rustls::Connection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Ciphertext read from the socket in one system call, at most: a few full records.
pub const READ_BUFFER: usize = 32 * 1024;

/// Plaintext gathered before it is sealed and sent: one full TLS record. A write that reaches
/// it is sealed with what was gathered, from the caller's buffers.
pub const RECORD: usize = 16 * 1024;

/// Ciphertext sealed and not yet taken by the socket, at most, before a write waits for it.
const UNSENT_LIMIT: usize = 4 * RECORD;

/// A TLS connection (client or server) over `IO` after its handshake.
#[derive(Debug)]
pub struct Transport<IO: AsyncRead + AsyncWrite + Unpin> {
    io: IO,
    tls: Connection,
    /// Ciphertext from the socket that rustls has not taken yet. Allocated when the socket has
    /// something, handed back when it has nothing: an idle connection holds no buffer of ours.
    incoming: BytesMut,
    /// The socket has ended (a read of 0 bytes); rustls has been told.
    eof: bool,
    /// Plaintext written and not yet sealed into records (handed back once all is sent).
    outgoing: Vec<u8>,
    /// Plaintext sealed and not yet taken by the socket, at most.
    sealed: usize,
    coalescing: bool,
    /// The last write was of a frame with its payload apart (more than one buffer): h2 flushes
    /// after each such DATA frame, and more usually follow in the same pass.
    frame_apart: bool,
    /// The last write took only part of what it was given: the next one goes on with it.
    partial: bool,
    /// A flush was put off: the next read, flush, shutdown or drop sends it.
    flush_owed: bool,
    close_notify_sent: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Transport<IO> {
    /// The connection `tls`, whose handshake is complete, over `io`. Whatever rustls already
    /// holds (records read with the handshake's last flight, tickets to send) is kept.
    pub fn new(io: IO, tls: impl Into<Connection>) -> Self {
        let mut tls = tls.into();
        // The bounds are ours (`RECORD`, back-pressure on what is sealed): rustls then
        // always takes what it is given, and bytes cannot be split between it and `outgoing`.
        tls.set_buffer_limit(None);
        Self {
            io,
            tls,
            incoming: BytesMut::new(),
            eof: false,
            outgoing: Vec::new(),
            sealed: 0,
            coalescing: false,
            frame_apart: false,
            partial: false,
            flush_owed: false,
            close_notify_sent: false,
        }
    }

    /// Puts off a flush right after a frame written with its payload apart (see the module):
    /// for a caller that polls the stream again after each flush until it is idle, such as
    /// hyper's HTTP/2 connections.
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
        ready!(self.poll_write_tls(cx))?;
        self.sealed = 0;
        self.flush_owed = false;
        self.outgoing = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// Sends what rustls has sealed (records, alerts).
    fn poll_write_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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
        Poll::Ready(Ok(()))
    }

    /// Sends a put-off flush before a read, as far as the socket takes it without waiting. Only
    /// when coalescing: then one task drives both directions (hyper's connection), while a
    /// stream split across tasks must send only from its writer (tokio keeps one write waker per
    /// socket, so a read-side send would take the writer's). A send error is left for the next
    /// write or flush to report, so that what was already received is still read.
    fn send_owed(&mut self, cx: &mut Context<'_>) {
        if self.coalescing && (self.flush_owed || self.tls.wants_write()) {
            let _ = self.try_send(cx);
        }
    }

    /// Sends what is sealed as far as the socket takes it without waiting.
    fn try_send(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.poll_send(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(()),
        }
    }

    /// Gives rustls ciphertext from `incoming`, reading the socket when it is used up.
    /// `Ready(Ok(()))` when rustls has new input (records or the end of the stream).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.incoming.is_empty() {
            if self.eof {
                // rustls knows: its reader now says Ok(0) or UnexpectedEof, never WouldBlock.
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            self.incoming.reserve(READ_BUFFER);
            let read =
                tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.incoming);
            let Poll::Ready(n) = read else {
                self.incoming = BytesMut::new();
                return Poll::Pending;
            };
            if n? == 0 {
                self.eof = true;
                // An empty reader is how rustls learns of the end.
                self.tls.read_tls(&mut io::empty())?;
                return Poll::Ready(Ok(()));
            }
        }
        let n = self.tls.read_tls(&mut &self.incoming[..])?;
        self.incoming.advance(n);
        if let Err(e) = self.tls.process_new_packets() {
            // Send the alert rustls queued, if the socket takes it now (rustls takes no more
            // plaintext after an error, so nothing gathered is sealed).
            let _ = self.poll_write_tls(cx);
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
        this.send_owed(cx);
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
            this.send_owed(cx);
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
        if this.sealed >= UNSENT_LIMIT {
            ready!(this.poll_send(cx))?;
        }
        if !this.partial {
            this.frame_apart = bufs.iter().filter(|b| !b.is_empty()).count() > 1;
        }
        if this.outgoing.len() + len < RECORD {
            if this.outgoing.capacity() == 0 {
                this.outgoing.reserve_exact(RECORD);
            }
            for b in bufs {
                this.outgoing.extend_from_slice(b);
            }
            this.partial = false;
            if !this.coalescing {
                // As tokio-rustls does: an application may write and then only read.
                this.try_send(cx)?;
            }
            return Poll::Ready(Ok(len));
        }
        // A record's worth or more: what is gathered and these buffers are sealed together from
        // where they are (rustls copies once, as it makes the records), and sent.
        let mut chunks = Vec::with_capacity(bufs.len() + 1);
        chunks.push(IoSlice::new(&this.outgoing));
        let mut taken = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            let n = b.len().min(UNSENT_LIMIT - taken);
            if n == 0 {
                break;
            }
            chunks.push(IoSlice::new(&b[..n]));
            taken += n;
        }
        let sealing = this.outgoing.len() + taken;
        if this.tls.writer().write_vectored(&chunks)? != sealing {
            return Poll::Ready(Err(io::Error::other("rustls took part of a write")));
        }
        this.outgoing.clear();
        this.sealed += sealing;
        this.partial = taken < len;
        this.try_send(cx)?;
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if std::mem::take(&mut this.frame_apart) && this.coalescing {
            this.flush_owed = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
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
    /// last flush). Best effort: a full socket (or an exhausted task budget) takes nothing.
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
