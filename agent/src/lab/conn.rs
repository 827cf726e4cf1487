//! Connection-level faults of a callee, done to real sockets beneath its HTTP server.
//!
//! Every accepted connection is wrapped in a [`FaultStream`] that reads the callee's current
//! [`ConnMode`] each time the HTTP server wants bytes, so a fault reaches the connections
//! already open (a caller's pooled keep-alive connections) as well as new ones:
//!
//! - [`ConnMode::CloseWithoutResponse`]: the request's bytes are read and dropped and the
//!   server is told the peer closed; it closes without a byte of response (the caller's
//!   client reports the connection closed before the message completed: Go's `EOF`).
//! - [`ConnMode::Reset`]: the same, with `SO_LINGER` 0 and no FIN first, so the close sends
//!   an RST.
//! - [`ConnMode::Hold`]: nothing is read and nothing is closed; the caller times out and
//!   closes its end, and the socket sits in CLOSE_WAIT here. At most [`max_held`] connections
//!   are held (a share of the process's descriptor limit, because the agent runs in the same
//!   process and must keep its own files and sockets); past it they are closed.
//!
//! The lab's stop token ends every connection: a stream reports end of stream once it fires,
//! so the server's graceful shutdown finishes even with held connections.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::tasks::{TaskGroup, TaskGuard, Tasks};

/// What a callee does with the bytes of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnMode {
    /// Serve HTTP normally.
    Serve = 0,
    /// Read each request and close without answering.
    CloseWithoutResponse = 1,
    /// Read each request and reset the connection.
    Reset = 2,
    /// Neither read nor close: CLOSE_WAIT once the caller gives up.
    Hold = 3,
}

/// The connection mode of one service, switched while it runs.
#[derive(Debug, Default)]
pub struct ConnSwitch(AtomicU8);

impl ConnSwitch {
    /// Switches every connection, open or future, to `mode`.
    pub fn set(&self, mode: ConnMode) {
        self.0.store(mode as u8, Ordering::Relaxed);
    }

    /// The current mode.
    pub fn get(&self) -> ConnMode {
        match self.0.load(Ordering::Relaxed) {
            1 => ConnMode::CloseWithoutResponse,
            2 => ConnMode::Reset,
            3 => ConnMode::Hold,
            _ => ConnMode::Serve,
        }
    }
}

/// Share of the soft descriptor limit that held connections may use: the agent in the same
/// process needs the rest for its log files, its OTLP and web connections.
const HELD_SHARE_OF_FD_LIMIT: u64 = 4;

/// Most connections held at once, whatever the descriptor limit.
const MAX_HELD: u64 = 4096;

/// How many connections [`ConnMode::Hold`] keeps at most in this process.
pub fn max_held() -> i64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by pointer.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    i64::try_from((soft / HELD_SHARE_OF_FD_LIMIT).min(MAX_HELD)).unwrap_or(256)
}

/// A listener whose connections obey a [`ConnSwitch`].
pub struct FaultListener {
    inner: TcpListener,
    switch: Arc<ConnSwitch>,
    tasks: Arc<Tasks>,
    max_held: i64,
    stop: CancellationToken,
}

impl FaultListener {
    /// Wraps a bound listener.
    pub fn new(
        inner: TcpListener,
        switch: Arc<ConnSwitch>,
        tasks: Arc<Tasks>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            inner,
            switch,
            tasks,
            max_held: max_held(),
            stop,
        }
    }
}

impl Listener for FaultListener {
    type Io = FaultStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let stream = FaultStream {
                        inner: stream,
                        switch: self.switch.clone(),
                        tasks: self.tasks.clone(),
                        max_held: self.max_held,
                        held: None,
                        reset_on_close: false,
                        closing: false,
                        stop: Box::pin(self.stop.clone().cancelled_owned()),
                    };
                    return (stream, peer);
                }
                // Out of descriptors or a connection aborted before accept: the same
                // back-off as axum's own listener, so one bad moment is not a busy loop.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The caller's address, for handlers (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, FaultListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// An accepted connection that obeys its service's [`ConnSwitch`].
pub struct FaultStream {
    inner: TcpStream,
    switch: Arc<ConnSwitch>,
    tasks: Arc<Tasks>,
    max_held: i64,
    held: Option<TaskGuard>,
    reset_on_close: bool,
    /// Set once the server was told the peer closed: it is told so again on every later
    /// read (the server may read again, e.g. after sniffing the protocol, and must not wait).
    closing: bool,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl AsyncRead for FaultStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing {
            return Poll::Ready(Ok(()));
        }
        if this.stop.as_mut().poll(cx).is_ready() {
            this.held = None;
            this.closing = true;
            return Poll::Ready(Ok(())); // end of stream: the lab is stopping
        }
        match this.switch.get() {
            ConnMode::Serve => Pin::new(&mut this.inner).poll_read(cx, buf),
            mode @ (ConnMode::CloseWithoutResponse | ConnMode::Reset) => {
                let mut scratch = [0u8; 4096];
                let mut request = ReadBuf::new(&mut scratch);
                match Pin::new(&mut this.inner).poll_read(cx, &mut request) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                    Poll::Ready(Ok(())) => {
                        if mode == ConnMode::Reset {
                            this.reset_on_close = true;
                            // An RST instead of a FIN when the server drops the socket.
                            let _ = socket2::SockRef::from(&this.inner)
                                .set_linger(Some(Duration::ZERO));
                        }
                        // The request is gone; the server sees a peer that closed.
                        this.closing = true;
                        Poll::Ready(Ok(()))
                    }
                }
            }
            ConnMode::Hold => {
                if this.held.is_none() {
                    if this.tasks.count(TaskGroup::HeldConnection) >= this.max_held {
                        this.closing = true;
                        return Poll::Ready(Ok(()));
                    }
                    this.held = Some(this.tasks.enter(TaskGroup::HeldConnection));
                }
                // Woken only by the stop token, registered above.
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for FaultStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reset_on_close {
            // A FIN now would reach the caller before the RST of the close.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
