//! Which TCP ports the service's own processes listen on, read from `/proc` without connecting:
//! the socket inodes in `/proc/<pid>/fd` matched against the rows in state LISTEN of
//! `/proc/<pid>/net/tcp` and `tcp6` (docs/design.md §5: how testcontainers-go and -java check
//! "is it listening" inside a container). It discovers the port of a service started on port
//! 0 — so no test has to guess a free port and race others for it — and tells a listener of
//! the service from a foreign process answering on the same port (docker-proxy, moby#16976; an
//! earlier run that was not stopped).
//!
//! `NETLINK_SOCK_DIAG` (what `ss` uses) would scale further; a test service has a handful of
//! processes and sockets, and text files need no new dependency.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::{Check, Context, Setup, Status};

/// One listening TCP socket of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listener {
    pub(crate) addr: IpAddr,
    pub(crate) port: u16,
    /// The socket's inode: lower ones were created earlier.
    pub(crate) inode: u64,
    pub(crate) pid: u32,
}

/// The listening TCP sockets held by any of `pids` (none where there is no `/proc`).
pub(crate) fn of_pids(pids: &[u32]) -> Vec<Listener> {
    // socket inode -> a pid holding it; and one pid per network namespace, to read its tables.
    let mut inodes: HashMap<u64, u32> = HashMap::new();
    let mut namespaces: HashMap<std::path::PathBuf, u32> = HashMap::new();
    for &pid in pids {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        let mut any = false;
        for entry in dir.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else { continue };
            if let Some(inode) = socket_inode(target.as_os_str().as_encoded_bytes()) {
                inodes.entry(inode).or_insert(pid);
                any = true;
            }
        }
        if any {
            if let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) {
                namespaces.entry(ns).or_insert(pid);
            }
        }
    }
    let mut found = Vec::new();
    for &pid in namespaces.values() {
        for table in ["tcp", "tcp6"] {
            let Ok(text) = std::fs::read(format!("/proc/{pid}/net/{table}")) else { continue };
            for row in parse_table(&text) {
                if let Some(&owner) = inodes.get(&row.inode) {
                    if !found.iter().any(|l: &Listener| l.inode == row.inode) {
                        found.push(Listener { pid: owner, ..row });
                    }
                }
            }
        }
    }
    found.sort_by_key(|l| l.inode);
    found
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

/// The pids to look at: the leader at every attempt (servers listen in their main process),
/// the whole tree — a scan of `/proc` — at most every 20 ms, for servers that listen in a
/// worker or a daemon they forked.
#[derive(Debug, Default, Clone)]
pub(crate) struct TreeCache {
    pids: Vec<u32>,
    scanned: Option<Instant>,
}

impl TreeCache {
    pub(crate) fn pids(&mut self, cx: &Context<'_>) -> Vec<u32> {
        let stale = self.scanned.is_none_or(|t| t.elapsed() >= Duration::from_millis(20));
        if stale {
            self.pids = cx.tree_pids();
            self.scanned = Some(Instant::now());
        }
        let mut pids = self.pids.clone();
        for pid in [Some(cx.pid()), cx.main_pid].into_iter().flatten() {
            if !pids.contains(&pid) {
                pids.insert(0, pid);
            }
        }
        pids
    }
}

/// Ready when a process of the service's tree listens on a TCP port — any port, or the one
/// given with [`port`](Listening::port). Found in `/proc`, without connecting; the port found
/// is the service's [`port`](Check::port), so a service told to listen on port 0 reports the
/// port the kernel gave it. Linux only (elsewhere it never becomes ready).
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
///
/// // Port 0: the kernel picks a free port; nobody has to guess one.
/// let mut web = Executor::new("python3 -m http.server 0 --bind 127.0.0.1", ready::listening());
/// web.start()?;
/// let port = web.port().expect("discovered");
/// assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
/// web.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Listening {
    port: Option<u16>,
    found: Option<u16>,
    tree: TreeCache,
    next: Duration,
    last: Option<String>,
}

/// A check that is ready when the service listens on a TCP port; see [`Listening`].
pub fn listening() -> Listening {
    Listening::default()
}

impl Listening {
    /// Only this port counts (ownership: a foreign process listening on it does not).
    pub fn port(mut self, port: u16) -> Listening {
        self.port = Some(port);
        self
    }

    /// The port found listening, once ready.
    pub fn found(&self) -> Option<u16> {
        self.found
    }
}

impl Check for Listening {
    fn describe(&self) -> String {
        match self.port {
            Some(port) => format!("a process of the service to listen on TCP port {port}"),
            None => "the service to listen on a TCP port".into(),
        }
    }

    fn prepare(&mut self, _setup: &mut Setup<'_>) -> Result<(), String> {
        if self.port == Some(0) {
            return Err("port 0 cannot be listened on; leave the port out to wait for any port, \
                        and read the one found with `port()`"
                .into());
        }
        if !crate::platform::HAS_PROCFS {
            return Err("finding the ports a service listens on needs Linux's /proc; wait for a \
                        known port with a TCP check instead"
                .into());
        }
        self.found = None;
        self.tree = TreeCache::default();
        self.next = Duration::from_micros(500);
        self.last = None;
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let pids = self.tree.pids(cx);
        let listeners = of_pids(&pids);
        let hit = listeners.iter().find(|l| self.port.is_none_or(|p| p == l.port));
        if let Some(l) = hit {
            self.found = Some(l.port);
            return Status::Ready;
        }
        self.last = Some(match (self.port, listeners.is_empty()) {
            (_, true) => format!("no process of the service ({} seen) listens on TCP", pids.len()),
            (Some(p), false) => {
                let ports: Vec<String> = listeners.iter().map(|l| l.port.to_string()).collect();
                format!("the service listens on {} but not on {p}", ports.join(", "))
            }
            (None, false) => unreachable!("a listener would have matched"),
        });
        // No event says "listen(2) was called": poll, cheaply at first (the leader's fds), and
        // back off; output (servers print "listening on ...") wakes the wait sooner.
        cx.poll_again_in(self.next);
        let cap = if cx.elapsed() < Duration::from_secs(1) { 5 } else { 20 };
        self.next = (self.next * 3 / 2).min(Duration::from_millis(cap));
        Status::NotYet
    }

    fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }

    fn port(&self) -> Option<u16> {
        self.found.or(self.port)
    }
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
        let found = of_pids(&[std::process::id()]);
        assert!(found.iter().any(|l| l.port == port && l.pid == std::process::id()), "{found:?}");
        drop(listener);
        assert!(!of_pids(&[std::process::id()]).iter().any(|l| l.port == port));
    }
}
