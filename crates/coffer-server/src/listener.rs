//! Per-connection time limits of a listener (`http_read_header_timeout`,
//! `http_idle_timeout`, `http_write_timeout`), enforced below HTTP by wrapping the
//! connection's I/O.
//!
//! A connection is in one of three phases:
//!
//! - **head**: a request is on its way but its headers are not all in. Starts at accept (so
//!   the TLS handshake and the first request's headers share one limit) and, on a kept-alive
//!   HTTP/1 connection, at the first byte of each later request. Bounded by the header timeout.
//! - **busy**: at least one request is being handled. Reads have no limit here (the body has
//!   its own, `http_read_timeout`, applied where it is read, in `http.rs`); writes must finish
//!   within the write timeout of the latest request's arrival.
//! - **idle**: no request in progress and none started. Bounded by the idle timeout.
//!
//! A limit that runs out makes the pending read or write fail with `TimedOut`, which ends the
//! connection. hyper's own `header_read_timeout` is not used: its clock starts when hyper
//! begins waiting for the next request, so on a kept-alive connection it would also cut idle
//! time down to the header timeout.

use coffer_config::ListenerConfig;
use parking_lot::Mutex;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A listener's limits, zero durations already turned into "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Headers of a request (and the TLS handshake before the first one).
    pub header: Option<Duration>,
    /// A request's body, once its headers are in.
    pub read: Option<Duration>,
    /// A response, from its request's arrival.
    pub write: Option<Duration>,
    /// Waiting for the next request.
    pub idle: Option<Duration>,
    /// Connections open at once; `None`: no cap.
    pub max_connections: Option<usize>,
}

impl Limits {
    /// The limits a `listener "tcp"` stanza sets.
    pub fn of(listener: &ListenerConfig) -> Limits {
        let limit = |d: Duration| (!d.is_zero()).then_some(d);
        Limits {
            header: limit(listener.http_read_header_timeout),
            read: limit(listener.http_read_timeout),
            write: limit(listener.http_write_timeout),
            idle: limit(listener.http_idle_timeout),
            max_connections: (listener.max_connections > 0).then_some(listener.max_connections),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Head { since: Instant },
    Busy,
    Idle { since: Instant },
}

#[derive(Debug)]
struct State {
    phase: Phase,
    in_flight: usize,
    /// When the latest request arrived (the write timeout counts from here).
    last_request: Option<Instant>,
    /// When the head of the latest request began to arrive.
    head_started: Instant,
}

/// The phase of one connection, shared by its I/O wrapper and its request handlers.
#[derive(Debug)]
pub struct Watch {
    limits: Limits,
    /// HTTP/2 sends frames of its own while idle (pings, settings): on an h2 connection only a
    /// request, not any byte, ends an idle spell.
    h2: bool,
    state: Mutex<State>,
}

impl Watch {
    /// A connection accepted at `accepted`; its first request's headers are due by
    /// `accepted + header timeout`.
    pub fn new(limits: Limits, accepted: Instant, h2: bool) -> Arc<Watch> {
        Arc::new(Watch {
            limits,
            h2,
            state: Mutex::new(State {
                phase: Phase::Head { since: accepted },
                in_flight: 0,
                last_request: None,
                head_started: accepted,
            }),
        })
    }

    /// Whether the connection speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.h2
    }

    /// A request's headers are in; the connection is busy until the returned guard drops.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        let mut state = self.state.lock();
        if let Phase::Head { since } = state.phase {
            state.head_started = since;
        }
        state.phase = Phase::Busy;
        state.in_flight += 1;
        // Only the write timeout counts from here: without one, no clock is read.
        if self.limits.write.is_some() {
            state.last_request = Some(Instant::now());
        }
        RequestGuard {
            watch: self.clone(),
        }
    }

    fn bytes_read(&self) {
        if self.h2 {
            return;
        }
        let mut state = self.state.lock();
        if let Phase::Idle { .. } = state.phase {
            state.phase = Phase::Head {
                since: Instant::now(),
            };
        }
    }

    /// Response bytes went out: an idle spell starts after the last of them, not when the
    /// handler returned.
    fn bytes_written(&self) {
        let mut state = self.state.lock();
        if let Phase::Idle { .. } = state.phase {
            state.phase = Phase::Idle {
                since: Instant::now(),
            };
        }
    }

    fn read_deadline(&self) -> Option<Instant> {
        match self.state.lock().phase {
            Phase::Head { since } => self.limits.header.map(|d| since + d),
            Phase::Idle { since } => self.limits.idle.map(|d| since + d),
            Phase::Busy => None,
        }
    }

    fn write_deadline(&self) -> Option<Instant> {
        let limit = self.limits.write?;
        let state = self.state.lock();
        // HTTP/1 writes a response after its handler returned; HTTP/2 also writes frames of its
        // own between requests, which no request's deadline covers.
        if self.h2 && state.in_flight == 0 {
            return None;
        }
        state.last_request.map(|last| last + limit)
    }
}

/// Marks its connection busy while alive. Once the last guard is gone the connection is idle;
/// the idle limit is armed when the response is flushed (`TimedIo::poll_flush`).
pub struct RequestGuard {
    watch: Arc<Watch>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut state = self.watch.state.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            // HTTP/1 writes the response after its handler returns, and its first byte out
            // starts the idle spell again (`bytes_written`); until then it counts from the
            // request's arrival, which needs no clock read here. An HTTP/2 stream reset by the
            // client may write nothing, so there the spell starts now.
            state.phase = Phase::Idle {
                since: if self.watch.h2 {
                    Instant::now()
                } else {
                    state.head_started
                },
            };
        }
    }
}

/// A connection's I/O with its [`Watch`]'s deadlines applied to pending reads and writes.
pub struct TimedIo<I> {
    inner: I,
    watch: Arc<Watch>,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<I> TimedIo<I> {
    /// Wrap `inner`.
    pub fn new(inner: I, watch: Arc<Watch>) -> TimedIo<I> {
        TimedIo {
            inner,
            watch,
            read_timer: None,
            write_timer: None,
        }
    }
}

/// Whether `deadline` has passed, arming `timer` to wake the task when it does.
///
/// The timer is moved only to an earlier deadline. Deadlines move later with every request on
/// a kept-alive connection, and moving the timer each time costs a timer-wheel update per
/// request (measured on the read path); a timer that fires before the deadline it now stands
/// for is re-armed then, which happens at most once per timeout period.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if deadline < sleep.deadline() {
        sleep.as_mut().reset(deadline);
    }
    if sleep.as_mut().poll(cx).is_pending() {
        return false;
    }
    if Instant::now() >= deadline {
        return true;
    }
    sleep.as_mut().reset(deadline);
    sleep.as_mut().poll(cx).is_ready()
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl<I: AsyncRead + Unpin> AsyncRead for TimedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.watch.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.watch.read_deadline() {
                Some(deadline) if expired(&mut this.read_timer, deadline, cx) => {
                    Poll::Ready(Err(timed_out("waiting for the client")))
                }
                _ => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> TimedIo<I> {
    fn check_write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.watch.write_deadline() {
            Some(deadline) if expired(&mut self.write_timer, deadline, cx) => {
                Err(timed_out("writing the response"))
            }
            _ => Ok(()),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TimedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_write(cx)?;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                this.watch.bytes_written();
            }
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_write(cx)?;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                this.watch.bytes_written();
            }
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check_write(cx)?;
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            // A response is out. hyper may not read again before the client speaks, so arm the
            // idle (or next header) limit here, on this task's waker: when it runs out the task
            // wakes and the next read fails.
            if let Some(deadline) = this.watch.read_deadline() {
                let _ = expired(&mut this.read_timer, deadline, cx);
            }
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
