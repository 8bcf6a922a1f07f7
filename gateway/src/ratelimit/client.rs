//! Who a request counts against: the client's address (from the socket, or from
//! `X-Forwarded-For` when the socket is a trusted proxy), its bucket key (an IPv6 client by its
//! /64, which one host or home gets whole), and the account a login or register names.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use bytes::{Buf, Bytes};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use ipnet::IpNet;
use prost_reflect::{DynamicMessage, ReflectMessage};
use tonic::{Code, body::Body};

use crate::{
    errors::EdgeError,
    routes::{LimitClass, Rpc},
};

/// Fields that name the account in a credentials request: `LoginRequest.login`,
/// `RegisterRequest.username`.
const ACCOUNT_FIELDS: [&str; 2] = ["login", "username"];

/// The proxies allowed to say who the client is (`gateway.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// The networks in `cidrs`; a bare address is a network of one. Entries that do not parse
    /// are skipped with a warning (the settings' validation refuses them first).
    pub fn new(cidrs: &[String]) -> Self {
        let nets = cidrs
            .iter()
            .filter_map(|c| {
                let parsed = c.parse::<IpNet>().ok().or_else(|| {
                    c.parse::<IpAddr>()
                        .ok()
                        .map(|ip| IpNet::from(ip.to_canonical()))
                });
                if parsed.is_none() {
                    tracing::warn!(entry = %c, "ignored a gateway.trusted_proxies entry that is not a CIDR");
                }
                parsed
            })
            .collect();
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client a request comes from: the socket peer, unless the peer is a trusted proxy
    /// and `X-Forwarded-For` names the client. Then it is the right-most address there that is
    /// not itself a trusted proxy (port 0): everything left of it was written by the client
    /// and proves nothing.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if self.0.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let mut client = peer;
        // Several headers are one list, in order.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop.trim()) else {
                // Garbage from here on: the last proxy that appended an address is the client.
                break;
            };
            client = SocketAddr::new(ip, 0);
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`[v6]:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The per-address bucket key: an IPv4 address whole (IPv4-mapped IPv6 too), an IPv6
/// address by its /64.
pub fn ip_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let prefix = Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX));
            format!("ip:{prefix}/64")
        }
    }
}

/// The per-account bucket key of `name`: case and surrounding blanks do not make another
/// account. Hashed, so a key stays small whatever the client sent and the gossip between
/// edges carries no login names; a collision only shares a bucket, as guessing the name
/// would anyway.
pub fn account_key(name: &str) -> String {
    // FNV-1a: the same on every edge and every build, which the gossip needs.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        let mut buf = [0; 4];
        for byte in c.encode_utf8(&mut buf).bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("account:{hash:016x}")
}

/// The account a credentials request names, when `rpc` is one and names one.
pub fn account(rpc: &Rpc, message: &DynamicMessage) -> Option<String> {
    if rpc.class != LimitClass::Credentials {
        return None;
    }
    ACCOUNT_FIELDS.iter().find_map(|name| {
        let field = message.descriptor().get_field_by_name(name)?;
        let value = message.get_field(&field);
        let name = value.as_str()?.trim();
        (!name.is_empty()).then(|| name.to_owned())
    })
}

/// Whether `rpc` names an account in its request, so that the gRPC path must read the body.
pub fn names_account(rpc: &Rpc) -> bool {
    rpc.class == LimitClass::Credentials
        && ACCOUNT_FIELDS
            .iter()
            .any(|f| rpc.method.input().get_field_by_name(f).is_some())
}

/// Reads a unary gRPC request's body (its one message, at most `max_bytes`, within `time`)
/// to find the account it names; returns the request with the body put back.
///
/// # Errors
/// INVALID_ARGUMENT for a body that is too large, not one gRPC frame, compressed (the edge
/// does not inflate) or not the method's message; DEADLINE_EXCEEDED when it is too slow.
pub async fn grpc_account(
    rpc: &Rpc,
    request: Request<Body>,
    max_bytes: usize,
    time: Duration,
) -> Result<(Option<String>, Request<Body>), EdgeError> {
    let (parts, body) = request.into_parts();
    let bytes = tokio::time::timeout(time, Limited::new(body, max_bytes).collect())
        .await
        .map_err(|_| EdgeError::body_too_slow(time))?
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                EdgeError::too_large(max_bytes)
            } else {
                EdgeError::bad_request(format!("the request body could not be read: {e}"))
            }
        })?
        .to_bytes();
    let account = {
        let mut frame = bytes.clone();
        if frame.remaining() < 5 {
            return Err(EdgeError::bad_request("the request is not a gRPC message"));
        }
        let compressed = frame.get_u8() != 0;
        let len = frame.get_u32() as usize;
        if compressed {
            return Err(EdgeError::new(
                Code::InvalidArgument,
                "send credentials uncompressed: the edge reads the account they name",
            ));
        }
        if frame.remaining() < len {
            return Err(EdgeError::bad_request("the gRPC message is cut short"));
        }
        let message = DynamicMessage::decode(rpc.method.input(), frame.slice(..len))
            .map_err(|e| EdgeError::bad_request(format!("the request does not decode: {e}")))?;
        account(rpc, &message)
    };
    let body = Body::new(Full::new(Bytes::clone(&bytes)));
    Ok((account, Request::from_parts(parts, body)))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use http::HeaderValue;

    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("ascii"));
        }
        h
    }

    fn at(ip: [u8; 4]) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 4000)
    }

    #[test]
    fn ipv4_is_keyed_whole_and_ipv6_by_its_slash_64() {
        assert_eq!(ip_key("192.0.2.7".parse().expect("ip")), "ip:192.0.2.7");
        assert_eq!(
            ip_key("::ffff:192.0.2.7".parse().expect("ip")),
            "ip:192.0.2.7"
        );
        assert_eq!(
            ip_key("2001:db8:a:b:1:2:3:4".parse().expect("ip")),
            "ip:2001:db8:a:b::/64"
        );
        assert_ne!(
            ip_key("2001:db8:a:b::1".parse().expect("ip")),
            ip_key("2001:db8:a:c::1".parse().expect("ip"))
        );
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let none = TrustedProxies::new(&[]);
        let proxies = TrustedProxies::new(&["10.0.0.0/8".into(), "192.0.2.1".into()]);
        let xff = headers(&["203.0.113.9"]);
        assert_eq!(none.client(at([10, 0, 0, 1]), &xff), at([10, 0, 0, 1]));
        assert_eq!(
            proxies.client(at([198, 51, 100, 1]), &xff),
            at([198, 51, 100, 1])
        );
        let honoured = proxies.client(at([10, 0, 0, 1]), &xff);
        assert_eq!(honoured.ip(), IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)));
        // An IPv4-mapped peer is the same proxy.
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:80".parse().expect("addr");
        assert_eq!(proxies.client(mapped, &xff), honoured);
    }

    #[test]
    fn the_right_most_address_that_is_not_a_proxy_is_the_client() {
        let proxies = TrustedProxies::new(&["10.0.0.0/8".into()]);
        let peer = at([10, 0, 0, 1]);
        let ip = |h: &[&str]| proxies.client(peer, &headers(h)).ip().to_string();
        // The client wrote the first entry itself: it does not count.
        assert_eq!(ip(&["1.1.1.1, 203.0.113.9, 10.0.0.2"]), "203.0.113.9");
        assert_eq!(
            ip(&["1.1.1.1", "203.0.113.9:5000, 10.0.0.2"]),
            "203.0.113.9"
        );
        assert_eq!(ip(&["[2001:db8::1]:443"]), "2001:db8::1");
        // Only proxies: the farthest one; garbage: the proxy that appended it.
        assert_eq!(ip(&["10.0.0.3, 10.0.0.2"]), "10.0.0.3");
        assert_eq!(ip(&["bogus, 10.0.0.2"]), "10.0.0.2");
        assert_eq!(ip(&[]), "10.0.0.1");
    }

    #[test]
    fn account_keys_ignore_case_and_blanks() {
        assert_eq!(
            account_key("Alice@Example.com "),
            account_key("alice@example.com")
        );
        assert_ne!(account_key("alice"), account_key("alicf"));
        assert!(account_key(&"x".repeat(100_000)).len() < 30);
    }
}
