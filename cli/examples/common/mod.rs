//! What the benchmark examples share: reaching the services of a system started by
//! `gateway/scripts/with-system.sh`.

use tonic::Request;

/// `message` with `token` as its bearer credentials.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    r
}

/// The URL of a service: its POLYSHOP_<SERVICE>_LISTEN address, else the default port.
pub fn service_url(service: &str, default_port: u16) -> String {
    let addr = std::env::var(format!("POLYSHOP_{service}_LISTEN"))
        .unwrap_or_else(|_| format!("127.0.0.1:{default_port}"));
    format!("http://{addr}")
}
