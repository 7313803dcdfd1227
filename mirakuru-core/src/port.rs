//! Free TCP ports, for services that are told which port to listen on.
//!
//! A port is found by binding port 0 and reading what the kernel chose. The socket is only
//! bound, never listening: were it listening, a child forked at that moment by another thread
//! (which holds the socket until it execs) could accept a readiness probe's connection and
//! pass for the service. Handing a port to a service still leaves a window in which another
//! process may take it; fixtures start again on another port when that happens.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;

use nix::sys::socket::{
    bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6,
};

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed
/// out before.
///
/// ```
/// let port = mirakuru::free_port().expect("a free port");
/// assert_ne!(port, 0);
/// assert_ne!(mirakuru::free_port().expect("another"), port, "never the same one twice");
/// ```
///
/// # Errors
///
/// If no socket can be bound on 127.0.0.1.
pub fn free_port() -> io::Result<u16> {
    free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A free port on the address `host` names (an IP literal, with or without brackets, or a name).
pub(crate) fn free_port_for(host: &str) -> io::Result<u16> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ip = (bare, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    free_port_on(ip)
}

fn free_port_on(ip: IpAddr) -> io::Result<u16> {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    // The kernel hands out ephemeral ports in turn, so a repeat is rare; a few tries suffice.
    for _ in 0..64 {
        let port = bound_port(ip)?;
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no port that was not handed out before"))
}

/// Binds `ip:0` without listening and returns the port the kernel chose.
fn bound_port(ip: IpAddr) -> io::Result<u16> {
    let family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    let port = match SocketAddr::new(ip, 0) {
        SocketAddr::V4(addr) => {
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(addr))?;
            getsockname::<SockaddrIn>(std::os::fd::AsRawFd::as_raw_fd(&fd))?.port()
        }
        SocketAddr::V6(addr) => {
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(addr))?;
            getsockname::<SockaddrIn6>(std::os::fd::AsRawFd::as_raw_fd(&fd))?.port()
        }
    };
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_and_never_handed_out_twice() {
        let ports: HashSet<u16> = (0..50).map(|_| free_port().expect("port")).collect();
        assert_eq!(ports.len(), 50);
        for &port in ports.iter().take(5) {
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free to bind");
        }
    }

    #[test]
    fn hosts_pick_their_family() {
        assert_ne!(free_port_for("localhost").expect("port"), 0);
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let port = free_port_for("[::1]").expect("port");
            std::net::TcpListener::bind(("::1", port)).expect("an IPv6 port");
        }
    }
}
