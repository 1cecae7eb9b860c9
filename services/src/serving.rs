//! The one serving loop both listeners run (the HTTP API and the S3 endpoint).
//!
//! `axum::serve` keeps a connection open for as long as the client likes: one that sends
//! nothing, trickles its request head a byte at a time, or parks idle between requests holds
//! a socket forever. [`serve`] accepts connections itself and bounds each:
//!
//! - **per-IP cap**: at most [`HttpSettings::max_connections_per_ip`] open connections from
//!   one address; a connection over it is closed as soon as it is accepted;
//! - **header-read timeout**: a request head must be complete within
//!   [`HttpSettings::header_read_timeout`] of the connection's start, or of the first byte of
//!   a later request on it;
//! - **idle timeout**: a connection with no request in flight is closed after
//!   [`HttpSettings::idle_timeout`]. A request is in flight until its response body has been
//!   sent, so a streaming response (an event stream, which sends heartbeats) is never idle.
//!
//! hyper's own `header_read_timeout` is not used: from the second request on it runs from the
//! end of the previous response, so it would cut keep-alive connections at the header timeout
//! rather than the idle one. Both deadlines are kept by [`Activity`] instead.
//!
//! hyper answers a request head it cannot parse (too large, URI too long, not HTTP) by itself
//! with an empty body, before the router sees anything, and has no hook for it. [`Tracked`]
//! recognises those responses (shaped like them, and written after the head of every
//! response the router produced) and writes the listener's own error format in their place ([`ErrorFormat`]).
//!
//! Shutdown is graceful as with `axum::serve`: accepting stops, each connection finishes its
//! in-flight requests and closes, and [`serve`] returns when all have closed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use ferrobase_core::ErrorCode;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::config::HttpSettings;

/// Serves `app` on `listener` within `limits`, answering the requests hyper rejects itself
/// in `errors`' format, until `shutdown` resolves, then stops accepting
/// and returns once every open connection has finished its requests and closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpSettings,
    errors: ErrorFormat,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limits = Arc::new(limits);
    let per_ip = PerIpConnections::new(limits.max_connections_per_ip);
    // Connections watch `stop` to begin their graceful shutdown; each holds a `closed`
    // receiver, so `closed_tx.closed()` resolves when the last one ends.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (closed_tx, closed_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // back off briefly instead of spinning on the error.
                    tracing::debug!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = per_ip.acquire(remote.ip()) else {
            tracing::debug!(%remote, "connection refused: too many connections from this address");
            drop(stream);
            continue;
        };
        let connection = Connection {
            app: app.clone(),
            limits: limits.clone(),
            errors,
            remote,
        };
        let stop = stop_rx.clone();
        let closed = closed_rx.clone();
        tokio::spawn(async move {
            connection.run(stream, stop).await;
            drop(slot);
            drop(closed);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(closed_rx);
    closed_tx.closed().await;
}

/// One accepted connection.
struct Connection {
    app: Router,
    limits: Arc<HttpSettings>,
    errors: ErrorFormat,
    remote: SocketAddr,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut stop: watch::Receiver<bool>) {
        // Streamed bodies (object downloads) are written after their headers: without
        // NODELAY, Nagle's algorithm holds the body back until the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new(Instant::now()));
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
            errors: self.errors,
            replacing: None,
            heads_written: 0,
        });
        let service = {
            let activity = activity.clone();
            let app = self.app;
            let remote = self.remote;
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                // The peer's address, for per-IP limits (`axum::extract::ConnectInfo`).
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                let in_flight = InFlight::begin(activity.clone());
                let app = app.clone();
                async move {
                    let response = match app.oneshot(request.map(Body::new)).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    in_flight.0.answered.fetch_add(1, Ordering::AcqRel);
                    // The request stays in flight until hyper drops the body: after the last
                    // byte of a streamed response, not when its headers are ready.
                    Ok::<_, Infallible>(response.map(|body| {
                        Body::new(body.map_frame(move |frame| {
                            let _in_flight = &in_flight;
                            frame
                        }))
                    }))
                }
            })
        };
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let mut conn = std::pin::pin!(builder.serve_connection(io, service));
        let mut stopping = *stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let deadline = activity.deadline(&self.limits);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(remote = %self.remote, %error, "connection ended with an error");
                    }
                    return;
                }
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
                () = activity.changed.notified() => {}
                () = sleep_until(deadline.map(|deadline| deadline.at)) => {
                    if let Some(deadline) = activity.deadline(&self.limits)
                        && deadline.at <= Instant::now()
                    {
                        tracing::debug!(
                            remote = %self.remote,
                            reason = deadline.reason,
                            "closing the connection"
                        );
                        return;
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, for its deadlines.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head, since the connection's start or a later request's first
    /// byte.
    Head { since: Instant },
    /// This many requests in flight (more than one only on HTTP/2).
    Busy { requests: usize },
    /// No request in flight and nothing received since the last response ended.
    Idle { since: Instant },
}

/// When a connection is to be closed, and why.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    reason: &'static str,
}

/// A connection's phase, shared by its IO (bytes received), its service (requests begun and
/// ended) and its supervisor (which sleeps until the phase's deadline).
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    /// Woken when the deadline may have moved earlier (it only ever moves later otherwise).
    changed: Notify,
    /// Responses the router has produced on this connection.
    answered: AtomicUsize,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Activity {
            phase: Mutex::new(Phase::Head { since: now }),
            changed: Notify::new(),
            answered: AtomicUsize::new(0),
        }
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let before = *phase;
        *phase = change(before);
        let after = *phase;
        drop(phase);
        if !matches!(
            (before, after),
            (Phase::Busy { .. }, Phase::Busy { .. }) | (Phase::Head { .. }, Phase::Head { .. })
        ) {
            self.changed.notify_one();
        }
    }

    fn received(&self) {
        self.update(|phase| match phase {
            Phase::Idle { .. } => Phase::Head {
                since: Instant::now(),
            },
            other => other,
        });
    }

    fn deadline(&self, limits: &HttpSettings) -> Option<Deadline> {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Head { since } => Some(Deadline {
                at: since + limits.header_read_timeout,
                reason: "the request head was not received within the header-read timeout",
            }),
            Phase::Busy { .. } => None,
            Phase::Idle { since } => Some(Deadline {
                at: since + limits.idle_timeout,
                reason: "idle for the idle timeout",
            }),
        }
    }
}

/// A request in flight on a connection, from the service call to the end of its response.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.update(|phase| match phase {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        });
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            _ => Phase::Idle {
                since: Instant::now(),
            },
        });
    }
}

/// How a listener words the errors hyper answers by itself, before any request reaches the
/// router: a request head too large (431), a URI too long (414), a request that is not HTTP
/// (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// The API's `{"error":{"code","message"}}`.
    Json,
    /// S3's `<Error><Code>..</Code><Message>..</Message></Error>`.
    S3Xml,
}

impl ErrorFormat {
    /// The whole response (head and body) for one of hyper's automatic error statuses.
    fn response(self, status: StatusCode) -> Vec<u8> {
        let (code, s3_code, message) = match status {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
                ErrorCode::TooLarge,
                "RequestHeaderSectionTooLarge",
                "the request headers are too large",
            ),
            StatusCode::URI_TOO_LONG => (
                ErrorCode::TooLarge,
                "InvalidURI",
                "the request URI is too long",
            ),
            _ => (
                ErrorCode::InvalidArgument,
                "InvalidRequest",
                "the request is not valid HTTP/1.1",
            ),
        };
        let (content_type, body) = match self {
            ErrorFormat::Json => (
                "application/json",
                serde_json::json!({"error": {"code": code.as_str(), "message": message}})
                    .to_string(),
            ),
            ErrorFormat::S3Xml => (
                "application/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                     <Error><Code>{s3_code}</Code><Message>{message}</Message></Error>"
                ),
            ),
        };
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// The status of `head` if it is, byte for byte, a response hyper writes by itself after
/// failing to parse a request head: `HTTP/1.1 <status>`, `content-length: 0`, a date,
/// perhaps `connection: close`, and nothing else. `total` is the length of the whole write it starts.
fn automatic_error(head: &[u8], total: usize) -> Option<StatusCode> {
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let status = StatusCode::from_bytes(status).ok()?;
    if ![
        StatusCode::BAD_REQUEST,
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ]
    .contains(&status)
    {
        return None;
    }
    let status_line = format!("HTTP/1.1 {status}\r\n");
    let headers = head
        .strip_prefix(status_line.as_bytes())?
        .strip_suffix(b"\r\n\r\n")?;
    // An HTTP date is 29 bytes: `Sun, 06 Nov 1994 08:49:37 GMT`.
    let automatic_header = |line: &[u8]| {
        line == b"connection: close"
            || line == b"content-length: 0"
            || (line.starts_with(b"date: ") && line.len() == 6 + 29)
    };
    let exact = head.len() == total
        && headers
            .split(|&b| b == b'\n')
            .all(|line| automatic_header(line.strip_suffix(b"\r").unwrap_or(line)))
        && headers
            .windows(b"content-length: 0".len())
            .any(|window| window == b"content-length: 0");
    exact.then_some(status)
}

/// The TCP stream, telling [`Activity`] when bytes arrive, and giving hyper's automatic error
/// responses (empty bodies; hyper offers no hook for them) the listener's error format.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    errors: ErrorFormat,
    replacing: Option<Replacement>,
    /// Writes that began with a response head: the router's responses, so far.
    heads_written: usize,
}

/// An automatic error response being written in place of hyper's.
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    /// How many of hyper's bytes it stands for.
    consumed: usize,
}

impl Tracked {
    /// Starts replacing hyper's bytes if they are an automatic error response: one shaped
    /// like it, written when every response the router produced has had its head written.
    /// (An application response can look the same: an empty 400 with no headers.)
    fn check_automatic_error(&mut self, bufs: &[io::IoSlice<'_>]) {
        if self.replacing.is_some() {
            return;
        }
        let Some(head) = bufs.iter().find(|buf| !buf.is_empty()) else {
            return;
        };
        if !head.starts_with(b"HTTP/1.") {
            return;
        }
        let total = bufs.iter().map(|buf| buf.len()).sum();
        let answered = self.activity.answered.load(Ordering::Acquire);
        match automatic_error(head, total) {
            Some(status) if self.heads_written >= answered => {
                self.replacing = Some(Replacement {
                    bytes: self.errors.response(status),
                    written: 0,
                    consumed: total,
                });
            }
            _ => self.heads_written += 1,
        }
    }

    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<usize>>> {
        let replacement = self.replacing.as_mut()?;
        while replacement.written < replacement.bytes.len() {
            let rest = &replacement.bytes[replacement.written..];
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(written)) => replacement.written += written,
                Poll::Ready(Err(error)) => return Some(Poll::Ready(Err(error))),
                Poll::Pending => return Some(Poll::Pending),
            }
        }
        let consumed = replacement.consumed;
        self.replacing = None;
        Some(Poll::Ready(Ok(consumed)))
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_automatic_error(&[io::IoSlice::new(buf)]);
        if let Some(poll) = self.poll_replacement(cx) {
            return poll;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check_automatic_error(bufs);
        if let Some(poll) = self.poll_replacement(cx) {
            return poll;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections per remote address.
#[derive(Debug, Clone)]
struct PerIpConnections {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its address's count; given back on drop.
struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIpConnections {
    fn new(max: usize) -> Self {
        PerIpConnections {
            max,
            open: Arc::default(),
        }
    }

    fn acquire(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_shaped_error_heads_count_as_automatic() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                     content-length: 0\r\n\
                     date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
        assert_eq!(
            automatic_error(head, head.len()),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        assert_eq!(
            automatic_error(head, head.len() + 10),
            None,
            "followed by a body"
        );
        let json = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     content-length: 2\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
        assert_eq!(automatic_error(json, json.len()), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\
                   date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
        assert_eq!(automatic_error(ok, ok.len()), None);
    }

    #[test]
    fn the_per_ip_cap_counts_open_connections_per_address() {
        let per_ip = PerIpConnections::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = per_ip.acquire(a).unwrap();
        let _second = per_ip.acquire(a).unwrap();
        assert!(per_ip.acquire(a).is_none());
        assert!(per_ip.acquire(b).is_some());
        drop(first);
        assert!(per_ip.acquire(a).is_some());
    }
}
