//! Ports for processes that must be told where to listen before they start (`polyshop up`'s
//! extra instances, the test systems).
//!
//! The port comes from below the kernel's ephemeral range: a port the kernel handed out for
//! `bind(0)` is one it may hand out again, moments later, as the local port of any outgoing
//! connection on the machine, and a listener cannot bind a port a connected socket holds.
//! CI saw exactly that: a killed instance could not be restarted on its port for seconds
//! because another process's client connection had taken it.

use std::{
    collections::HashSet,
    io,
    net::TcpListener,
    ops::Range,
    sync::{Mutex, PoisonError},
};

/// Where the search starts when the kernel's range cannot be read (Linux's default low end
/// is 32768).
const EPHEMERAL_LOW_DEFAULT: u16 = 32768;
/// The lowest port handed out: clear of the well-known and most registered service ports.
const LOWEST: u16 = 20000;

/// Hands out ports free now, none twice, from below the ephemeral range.
#[derive(Debug, Default)]
pub struct FreePorts {
    given: HashSet<u16>,
    next: Option<u16>,
}

impl FreePorts {
    /// Hands out free ports, never one of `taken`.
    pub fn new(taken: impl IntoIterator<Item = u16>) -> Self {
        Self {
            given: taken.into_iter().collect(),
            next: None,
        }
    }

    /// The next free port: one that binds on 127.0.0.1 now and was not handed out before.
    ///
    /// # Errors
    /// If no port of the range binds.
    pub fn pick(&mut self) -> io::Result<u16> {
        let range = candidates();
        let span = range.end - range.start;
        // A random start, so two processes handing out ports at once rarely try the same.
        let mut port = self
            .next
            .unwrap_or_else(|| range.start + rand::random::<u16>() % span);
        for _ in 0..span {
            let candidate = port;
            port = if port + 1 >= range.end {
                range.start
            } else {
                port + 1
            };
            if self.given.contains(&candidate) {
                continue;
            }
            if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
                self.given.insert(candidate);
                self.next = Some(port);
                return Ok(candidate);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free port in {}..{}", range.start, range.end),
        ))
    }
}

/// A port from this process's one [`FreePorts`]: free now, never handed out twice in the
/// process (tests that run in parallel each start systems on such ports).
///
/// # Errors
/// If no port of the range binds.
pub fn free_port() -> io::Result<u16> {
    static PORTS: Mutex<Option<FreePorts>> = Mutex::new(None);
    PORTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(FreePorts::default)
        .pick()
}

/// The ports [`FreePorts`] chooses from: from [`LOWEST`] up to the ephemeral range.
fn candidates() -> Range<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(EPHEMERAL_LOW_DEFAULT);
    // A kernel whose range starts low leaves no room below it: use the default's span.
    if low > LOWEST + 1000 {
        LOWEST..low
    } else {
        LOWEST..EPHEMERAL_LOW_DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_bindable_and_never_repeated() {
        let range = candidates();
        let mut ports = FreePorts::default();
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let port = ports.pick().expect("a port");
            assert!(range.contains(&port), "{port} outside {range:?}");
            assert!(seen.insert(port), "{port} handed out twice");
            TcpListener::bind(("127.0.0.1", port)).expect("the port binds");
        }
    }

    #[test]
    fn a_taken_or_bound_port_is_skipped() {
        let first = FreePorts::default().pick().expect("a port");
        let after_first = || FreePorts {
            given: HashSet::from([first]),
            next: Some(first),
        };
        let second = after_first().pick().expect("a port");
        let held = TcpListener::bind(("127.0.0.1", second)).expect("bind the port just found free");
        let port = after_first().pick().expect("a port");
        assert_ne!(port, first, "a port handed out before");
        assert_ne!(port, second, "a port a listener holds");
        drop(held);
    }
}
