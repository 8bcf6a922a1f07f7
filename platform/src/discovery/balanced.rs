//! A pool of tonic channels as one tower service, so generated clients call a context's
//! instances as they would call one channel. Each call goes to the pool's pick; how it ends
//! feeds that instance's outlier record. A refused connection ejects the instance at once,
//! so a caller's next attempt (its own retry) goes elsewhere.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{body::Body, transport::Channel};
use tower::{BoxError, Service, ServiceExt};

use super::{Outcome, Pool};

/// A channel-like client over a context's instances.
#[derive(Debug, Clone)]
pub struct Balanced {
    pool: Arc<Pool<Channel>>,
}

/// No instance of the context is known.
#[derive(Debug, thiserror::Error)]
#[error("no instance of {0} is known")]
pub struct NoInstance(String);

impl Balanced {
    /// Calls over `pool`.
    pub fn new(pool: Arc<Pool<Channel>>) -> Self {
        Self { pool }
    }

    /// The pool it calls over.
    pub fn pool(&self) -> &Arc<Pool<Channel>> {
        &self.pool
    }
}

impl Service<http::Request<Body>> for Balanced {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is per instance: the call waits on the picked channel's.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let pool = self.pool.clone();
        Box::pin(async move {
            let picked = pool
                .pick(None)
                .ok_or_else(|| NoInstance(pool.service().to_owned()))?;
            let channel = picked.client().clone();
            let result = channel.oneshot(request).await;
            picked.record(match &result {
                Ok(response) if unavailable(response.headers()) => Outcome::Failed,
                Ok(_) => Outcome::Answered,
                Err(e) if never_sent(e) => Outcome::Refused,
                Err(_) => Outcome::Failed,
            });
            result.map_err(Into::into)
        })
    }
}

/// A trailers-only UNAVAILABLE: the instance is shedding or going away.
fn unavailable(headers: &http::HeaderMap) -> bool {
    headers.get("grpc-status").is_some_and(|v| v == "14")
}

/// Whether `error` says no connection could be made, so the request never left: connection
/// refused, no route, or a connect timeout.
pub fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        // hyper-util's connector names its failures so; tonic wraps them as transport errors.
        if e.to_string().contains("tcp connect error") {
            return true;
        }
        source = e.source();
    }
    false
}
