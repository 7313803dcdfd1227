//! Which TCP ports processes listen on, read from `/proc` without connecting: the socket
//! inodes in `/proc/<pid>/fd` matched against the rows in state LISTEN of
//! `/proc/<pid>/net/tcp` and `tcp6` (docs/design.md §5: how testcontainers-go and -java check
//! "is it listening" inside a container). Used to discover a port, and to tell a listener of a
//! service from a foreign process on the same port. Where there is no `/proc`, nothing is
//! found.
//!
//! The listening sockets of our own network namespace are asked of the kernel over
//! `NETLINK_SOCK_DIAG` (what `ss` uses): reading `/proc/net/tcp` walks the whole connection
//! table on every read. The text tables remain the fallback, and the way into another
//! namespace.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::platform;

/// One listening TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listener {
    pub(crate) addr: IpAddr,
    pub(crate) port: u16,
    /// The socket's inode: lower ones were created earlier.
    pub(crate) inode: u64,
    pub(crate) pid: u32,
}

/// The listening TCP sockets held by any of `pids` (none where there is no `/proc`).
pub(crate) fn listeners_of(pids: &[u32]) -> Vec<Listener> {
    // socket inode -> a pid holding it; and one pid per network namespace, to read its tables.
    let mut inodes: HashMap<u64, u32> = HashMap::new();
    let mut namespaces: HashMap<std::path::PathBuf, u32> = HashMap::new();
    for &pid in pids {
        let held = sockets_held(pid);
        if held.is_empty() {
            continue;
        }
        for inode in held {
            inodes.entry(inode).or_insert(pid);
        }
        if let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) {
            namespaces.entry(ns).or_insert(pid);
        }
    }
    let mut found = Vec::new();
    let own = std::fs::read_link("/proc/self/ns/net").ok();
    for (namespace, &pid) in &namespaces {
        let rows =
            if Some(namespace) == own.as_ref() { listening_here() } else { listening_in(pid) };
        for row in rows {
            if let Some(&owner) = inodes.get(&row.inode) {
                if !found.iter().any(|l: &Listener| l.inode == row.inode) {
                    found.push(Listener { pid: owner, ..row });
                }
            }
        }
    }
    found.sort_by_key(|l| l.inode);
    found
}

/// The first of `pids` that holds one of the sockets `inodes` (socket inodes are unique in
/// the system, whatever the namespace): no table of listeners is read again.
pub(crate) fn holder(pids: &[u32], inodes: &[u64]) -> Option<u32> {
    (pids.iter().copied()).find(|&pid| sockets_held(pid).iter().any(|i| inodes.contains(i)))
}

/// The inodes of the sockets `pid` holds, from its `/proc/<pid>/fd` (none if it cannot be
/// read).
fn sockets_held(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    (dir.flatten())
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| socket_inode(target.as_os_str().as_encoded_bytes()))
        .collect()
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The rows of a `/proc/net/tcp{,6}` table in state `0A` (TCP_LISTEN), with `pid` 0.
///
/// A row (proc_net_tcp(5)): `sl local_address rem_address st tx:rx tr:when retrnsmt uid
/// timeout inode ...`; addresses are the kernel's 32-bit words printed in hex in host byte
/// order, the port in hex after `ntohs`.
pub(crate) fn parse_table(text: &[u8]) -> Vec<Listener> {
    let text = String::from_utf8_lossy(text);
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(&state), Some(inode)) =
            (fields.get(1), fields.get(3), fields.get(9))
        else {
            continue;
        };
        if state != "0A" {
            continue;
        }
        let Some((addr, port)) = local.split_once(':') else { continue };
        let (Some(addr), Ok(port), Ok(inode)) =
            (parse_addr(addr), u16::from_str_radix(port, 16), inode.parse::<u64>())
        else {
            continue;
        };
        // Inode 0: a socket being torn down, owned by nobody.
        if inode != 0 {
            rows.push(Listener { addr, port, inode, pid: 0 });
        }
    }
    rows
}

fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// The inodes of the sockets listening on TCP `port` in this process's network namespace.
pub(crate) fn listening_on(port: u16) -> Vec<u64> {
    listening_here().into_iter().filter(|row| row.port == port).map(|row| row.inode).collect()
}

/// The listening sockets of this process's network namespace, with `pid` 0: asked of the
/// kernel directly where it answers (see `platform::tcp_listening`: reading `/proc/net/tcp`
/// walks every connection, and cost 8 ms a ready), else read from `/proc`.
fn listening_here() -> Vec<Listener> {
    match platform::tcp_listening() {
        Some(rows) => (rows.into_iter())
            .filter(|&(_, _, inode)| inode != 0)
            .map(|(addr, port, inode)| Listener { addr, port, inode, pid: 0 })
            .collect(),
        None => listening_in(std::process::id()),
    }
}

/// The listening sockets of the network namespace of `pid`, read from `/proc`.
fn listening_in(pid: u32) -> Vec<Listener> {
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| parse_table(&text))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &[u8] = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 77 1 0000000000000000 100 0 0 10 0
   3: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
";

    const TCP6: &[u8] = b"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:18EB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn listening_rows_are_parsed_and_others_skipped() {
        let rows = parse_table(TCP);
        assert_eq!(rows.len(), 2, "{rows:?}");
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        assert_eq!((rows[0].port, rows[0].inode), (8080, 4242));
        assert_eq!(
            (rows[1].addr, rows[1].port, rows[1].inode),
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 6379, 77)
        );
    }

    /// What the kernel says over netlink is what `/proc` says: the same sockets, addresses,
    /// ports and inodes.
    #[test]
    fn the_kernel_and_proc_agree_on_listeners() {
        if !platform::HAS_PROCFS {
            return;
        }
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let v6 = std::net::TcpListener::bind("[::1]:0").ok();
        let ports: Vec<u16> = [Some(&v4), v6.as_ref()]
            .into_iter()
            .flatten()
            .map(|l| l.local_addr().expect("its address").port())
            .collect();
        let ours = |rows: Vec<Listener>| {
            let mut rows: Vec<(IpAddr, u16, u64)> = (rows.into_iter())
                .filter(|r| ports.contains(&r.port))
                .map(|r| (r.addr, r.port, r.inode))
                .collect();
            rows.sort();
            rows
        };
        let asked = ours(listening_here());
        assert_eq!(asked, ours(listening_in(std::process::id())));
        assert_eq!(asked.len(), ports.len(), "{asked:?}");
        if platform::tcp_listening().is_none() {
            eprintln!("the kernel does not answer NETLINK_SOCK_DIAG here: /proc was compared");
        }
    }

    #[test]
    fn ipv6_rows_are_parsed() {
        let rows = parse_table(TCP6);
        assert_eq!(rows.len(), 1);
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
        assert_eq!(rows[0].port, 6379);
    }

    #[test]
    fn socket_links_give_inodes() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn finds_a_listener_of_this_process() {
        if !crate::platform::HAS_PROCFS {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let found = listeners_of(&[std::process::id()]);
        assert!(found.iter().any(|l| l.port == port && l.pid == std::process::id()), "{found:?}");
        drop(listener);
        assert!(!listeners_of(&[std::process::id()]).iter().any(|l| l.port == port));
    }
}
