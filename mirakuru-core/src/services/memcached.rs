//! memcached: on a free port of the loopback, UDP off; ready when it accepts connections. It
//! refuses to run as root, so as root it runs as its Debian user (`memcache`) or `nobody`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::binaries::Search;
use super::client::wait_ready;
use super::{as_service_user, Endpoint, Preset};
use crate::command::Command;
use crate::fixture::{Places, Port, Spec};
use crate::ready::probe::Verdict;
use crate::Error;

const SEARCH: Search = Search {
    title: "memcached",
    env: "MIRAKURU_MEMCACHED_BIN",
    dirs: &["/usr/sbin", "/usr/local/sbin", "/opt/homebrew/bin"],
    install: "Debian/Ubuntu: apt-get install memcached; macOS: brew install memcached",
};

#[derive(Debug)]
pub(crate) struct Memcached;

pub(crate) fn spec() -> Spec {
    let cmd = ["memcached", "-p", "{port}", "-l", "{host}", "-U", "0"];
    let spec = Spec::args("memcached", cmd).tcp(Port::Auto).preset(Arc::new(Memcached));
    as_service_user(spec, &["memcache", "nobody"])
}

impl Preset for Memcached {
    fn title(&self) -> &'static str {
        "memcached"
    }

    fn default_port(&self) -> u16 {
        11211
    }

    fn prepare(
        &self,
        command: &Command,
        _: &Places<'_>,
        _: Option<(u32, u32)>,
    ) -> Result<Command, Error> {
        Ok(command.with_program(SEARCH.find(&["memcached"])?.into_os_string()))
    }

    fn endpoint(&self, host: &str, port: Option<u16>, _tmpdir: &Path) -> Endpoint {
        Endpoint {
            scheme: "memcache".into(),
            user: None,
            password: None,
            host: host.into(),
            port: port.unwrap_or(11211),
            path: None,
            socket: None,
            query: None,
        }
    }

    fn probe(&self, endpoint: &Endpoint, timeout: Duration) -> Result<String, String> {
        wait_ready(
            endpoint,
            b"version\r\n",
            |a| match a.windows(2).any(|w| w == b"\r\n") {
                true => Verdict::Ready(String::from_utf8_lossy(a).trim().to_string(), None),
                false => Verdict::More,
            },
            timeout,
        )
    }
}
