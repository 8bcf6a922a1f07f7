//! A lean unary gRPC client straight over `h2`, for the transcoder's calls to remote contexts.
//!
//! Why not tonic's `Channel`: every call through it crosses a `tower::buffer` queue to a worker
//! task, and hyper's HTTP/2 client spawns a task per request to wait for the response; with
//! the message already in hand, none of that is needed. Here the calling task sends HEADERS and
//! one DATA frame, awaits the response stream and reads the trailers itself; the only other
//! task is the connection's. A few connections per context are dialled lazily, used in turn,
//! and redialled after they close; an idle connection is pinged so a dead peer is noticed.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header, uri::PathAndQuery};
use tokio::net::TcpStream;
use tonic::Status;

/// How often an open connection is pinged, and how long the answer may take.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Per-stream and per-connection receive windows: replies are small, but a listing can be
/// large and should not stall on window updates.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No connection could be made or the stream was never opened: nothing reached the
    /// service, so any call may be repeated (on another instance).
    NotSent(String),
    /// The call may have reached the service (connection lost or stream refused before an
    /// answer): safe to repeat when the method is idempotent.
    Transport(String),
    /// The service answered with this status.
    Status(Status),
}

/// One remote context reached over a few HTTP/2 connections.
#[derive(Debug)]
pub struct UnaryClient {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    connect_timeout: Duration,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

#[derive(Debug, Default)]
struct Slot {
    /// The open connection's request handle, if any.
    open: Mutex<Option<SendRequest<Bytes>>>,
    /// Held while dialling, so one caller dials and the others wait for its connection.
    dialling: tokio::sync::Mutex<()>,
}

impl UnaryClient {
    /// A client of `url` (plain `http://host:port`; anything else is `None`) with
    /// `connections` lazily dialled connections.
    pub fn new(url: &str, connections: usize, connect_timeout: Duration) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        Some(Self {
            scheme: uri.scheme()?.clone(),
            authority: uri.authority()?.clone(),
            connect_timeout,
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// Calls `path` with the encoded request `message` and `metadata`, asking the service to
    /// answer within `timeout`; the encoded reply.
    ///
    /// # Errors
    /// [`CallError::Status`] with the service's status; [`CallError::Transport`] when the
    /// call could not be made or the connection failed before an answer.
    pub async fn call(
        &self,
        path: &PathAndQuery,
        metadata: HeaderMap,
        message: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[i];
        // A connection found closed before anything was sent (the service restarted, say) is
        // redialled once at once: nothing reached the service yet.
        let mut sender = match self.sender(slot).await?.ready().await {
            Ok(sender) => sender,
            Err(_) => {
                forget(slot);
                self.sender(slot).await?.ready().await.map_err(|e| {
                    forget(slot);
                    not_sent(&e)
                })?
            }
        };
        let request = self.request(path, metadata, timeout);
        let (response, mut body) = sender.send_request(request, false).map_err(|e| {
            forget(slot);
            not_sent(&e)
        })?;
        body.send_data(frame(&message), true)
            .map_err(|e| stream_error(slot, &e))?;
        let response = response.await.map_err(|e| stream_error(slot, &e))?;
        let (parts, mut stream) = response.into_parts();
        // A trailers-only answer carries the status in the headers.
        if let Some(status) = Status::from_header_map(&parts.headers) {
            return reply(status, Bytes::new());
        }
        if parts.status != http::StatusCode::OK {
            return Err(CallError::Status(Status::unknown(format!(
                "upstream answered HTTP {}",
                parts.status
            ))));
        }
        let mut received = BytesMut::new();
        while let Some(chunk) = stream.data().await {
            let chunk = chunk.map_err(|e| stream_error(slot, &e))?;
            let _ = stream.flow_control().release_capacity(chunk.len());
            received.extend_from_slice(&chunk);
        }
        let trailers = stream
            .trailers()
            .await
            .map_err(|e| stream_error(slot, &e))?;
        let status = trailers
            .as_ref()
            .and_then(Status::from_header_map)
            .unwrap_or_else(|| Status::internal("upstream sent no grpc-status"));
        reply(status, received.freeze())
    }

    fn request(&self, path: &PathAndQuery, metadata: HeaderMap, timeout: Duration) -> Request<()> {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(path.clone());
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
        *request.headers_mut() = metadata;
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        if let Ok(value) = HeaderValue::from_str(&grpc_timeout(timeout)) {
            headers.insert(GRPC_TIMEOUT, value);
        }
        headers
            .entry(header::USER_AGENT)
            .or_insert(HeaderValue::from_static("polyshop-gateway"));
        request
    }

    /// The slot's open connection, dialling one if there is none.
    async fn sender(&self, slot: &Slot) -> Result<SendRequest<Bytes>, CallError> {
        if let Some(open) = current(slot) {
            return Ok(open);
        }
        let _dialling = slot.dialling.lock().await;
        if let Some(open) = current(slot) {
            return Ok(open);
        }
        let sender = self.dial().await?;
        *lock(slot) = Some(sender.clone());
        Ok(sender)
    }

    async fn dial(&self) -> Result<SendRequest<Bytes>, CallError> {
        let host = self.authority.host();
        let port = self.authority.port_u16().unwrap_or(80);
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| CallError::NotSent(format!("connecting to {} timed out", self.authority)))?
            .map_err(|e| {
                CallError::NotSent(format!("cannot connect to {}: {e}", self.authority))
            })?;
        let _ = tcp.set_nodelay(true);
        let (sender, mut connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(tcp)
            .await
            .map_err(|e| not_sent(&e))?;
        let pings = connection.ping_pong();
        let authority = self.authority.clone();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                result = connection => result.map_err(|e| e.to_string()),
                why = keepalive(pings) => Err(why),
            };
            if let Err(e) = outcome {
                tracing::debug!(upstream = %authority, error = %e, "upstream connection closed");
            }
        });
        Ok(sender)
    }
}

/// Pings every [`KEEPALIVE_EVERY`]; returns why the peer is considered gone.
async fn keepalive(pings: Option<h2::PingPong>) -> String {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(KEEPALIVE_EVERY).await;
        match tokio::time::timeout(KEEPALIVE_TIMEOUT, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => return format!("keepalive ping failed: {e}"),
            Err(_) => return "keepalive ping unanswered".to_owned(),
        }
    }
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<SendRequest<Bytes>>> {
    slot.open
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn current(slot: &Slot) -> Option<SendRequest<Bytes>> {
    lock(slot).clone()
}

/// Drops the slot's connection after it failed, so the next call dials a new one.
fn forget(slot: &Slot) {
    *lock(slot) = None;
}

fn transport(e: &h2::Error) -> CallError {
    CallError::Transport(e.to_string())
}

fn not_sent(e: &h2::Error) -> CallError {
    CallError::NotSent(e.to_string())
}

/// A call refused, or lost with its connection (which is then dropped), got no answer; a
/// stream the service reset is the service's answer.
fn stream_error(slot: &Slot, e: &h2::Error) -> CallError {
    if e.is_reset() && e.reason() != Some(h2::Reason::REFUSED_STREAM) && !e.is_go_away() {
        return CallError::Status(Status::unavailable(format!(
            "upstream reset the call: {}",
            e.reason().unwrap_or(h2::Reason::INTERNAL_ERROR)
        )));
    }
    if e.is_go_away() || e.is_io() {
        forget(slot);
    }
    // HTTP/2 guarantees a refused stream was not processed.
    if e.reason() == Some(h2::Reason::REFUSED_STREAM) && !e.is_go_away() {
        return not_sent(e);
    }
    transport(e)
}

/// The message with gRPC's length prefix (uncompressed).
fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    #[allow(clippy::cast_possible_truncation)]
    framed.put_u32(message.len() as u32);
    framed.extend_from_slice(message);
    framed.freeze()
}

/// The one message of a successful reply, or the status.
fn reply(status: Status, mut body: Bytes) -> Result<Bytes, CallError> {
    if status.code() != tonic::Code::Ok {
        return Err(CallError::Status(status));
    }
    let malformed =
        |why: &str| CallError::Status(Status::internal(format!("upstream reply: {why}")));
    if body.len() < 5 {
        return Err(malformed("no message"));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err(malformed("compressed, though no compression was offered"));
    }
    if body.len() != len {
        return Err(malformed("not exactly one message"));
    }
    Ok(body)
}

/// `grpc-timeout` for `timeout`: the finest unit whose count fits the spec's 8 digits, so a
/// tight deadline reaches the service as tight as the caller asked.
fn grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let secs = u128::from(timeout.as_secs());
    [
        (timeout.as_nanos(), "n"),
        (timeout.as_micros(), "u"),
        (timeout.as_millis(), "m"),
        (secs, "S"),
        (secs / 60, "M"),
    ]
    .into_iter()
    .find(|(count, _)| *count <= MAX)
    .map_or_else(
        || format!("{}H", (secs / 3600).min(MAX)),
        |(count, unit)| format!("{count}{unit}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_unframes_one_message() {
        let framed = frame(b"abc");
        assert_eq!(&framed[..], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let body = reply(Status::ok(""), framed);
        assert!(matches!(body, Ok(b) if &b[..] == b"abc"));
    }

    #[test]
    fn refuses_compressed_short_and_trailing_replies() {
        for bad in [
            Bytes::from_static(&[1, 0, 0, 0, 1, 7]),
            Bytes::from_static(&[0, 0, 0]),
            Bytes::from_static(&[0, 0, 0, 0, 1, 7, 7]),
        ] {
            assert!(matches!(
                reply(Status::ok(""), bad),
                Err(CallError::Status(s)) if s.code() == tonic::Code::Internal
            ));
        }
    }

    #[test]
    fn an_error_status_wins_over_the_body() {
        let result = reply(Status::not_found("gone"), frame(b"x"));
        assert!(matches!(result, Err(CallError::Status(s)) if s.code() == tonic::Code::NotFound));
    }

    #[test]
    fn timeouts_use_the_finest_unit_within_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_nanos(1)), "1n");
        assert_eq!(grpc_timeout(Duration::from_millis(50)), "50000000n");
        assert_eq!(grpc_timeout(Duration::from_millis(1500)), "1500000u");
        assert_eq!(grpc_timeout(Duration::from_secs(30)), "30000000u");
        assert_eq!(grpc_timeout(Duration::from_secs(3000)), "3000000m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc_timeout(Duration::from_secs(u64::MAX)), "99999999H");
    }

    #[test]
    fn only_plain_http_urls_get_a_client() {
        assert!(UnaryClient::new("http://127.0.0.1:50051", 2, Duration::from_secs(1)).is_some());
        assert!(UnaryClient::new("https://catalog:443", 2, Duration::from_secs(1)).is_none());
        assert!(UnaryClient::new("not a url", 2, Duration::from_secs(1)).is_none());
    }
}
