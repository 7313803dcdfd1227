//! nginx: in the foreground, with a configuration written into the fixture's directory and
//! every path it writes (pid file, logs, temporary files) there too, serving the directory's
//! `html/` (an `index.html` saying `mirakuru` until the test writes its own); ready when `/` answers. As root it runs as `www-data` (or `nobody`), which owns
//! the fixture's directory, so that its workers can read what the test puts there.

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
    title: "nginx",
    env: "MIRAKURU_NGINX_BIN",
    dirs: &["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin", "/opt/homebrew/bin"],
    install: "Debian/Ubuntu: apt-get install nginx-light; macOS: brew install nginx",
};

#[derive(Debug)]
pub(crate) struct Nginx;

pub(crate) fn spec() -> Spec {
    let cmd = ["nginx", "-p", "{tmpdir}", "-c", "{tmpdir}/nginx.conf", "-e", "{tmpdir}/error.log"];
    let spec = Spec::args("nginx", cmd)
        .http(Port::Auto, "/")
        .stop_signal(crate::Signal::SIGQUIT)
        .preset(Arc::new(Nginx));
    as_service_user(spec, &["www-data", "nobody"])
}

impl Preset for Nginx {
    fn title(&self) -> &'static str {
        "nginx"
    }

    fn default_port(&self) -> u16 {
        80
    }

    fn prepare(
        &self,
        command: &Command,
        places: &Places<'_>,
        owner: Option<(u32, u32)>,
    ) -> Result<Command, Error> {
        let nginx = SEARCH.find(&["nginx"])?;
        let dir = places.tmpdir.display();
        let port = places.port.unwrap_or(8080);
        let host = if places.host.contains(':') {
            format!("[{}]", places.host)
        } else {
            places.host.to_string()
        };
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             error_log {dir}/error.log;\nevents {{ worker_connections 128; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  \
             proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  \
             uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  \
             server {{\n    listen {host}:{port};\n    root {dir}/html;\n  }}\n}}\n"
        );
        let io = |source| Error::Io {
            command: nginx.display().to_string(),
            action: format!("writing the configuration into {dir} for"),
            source,
        };
        let html = places.tmpdir.join("html");
        std::fs::create_dir_all(&html).map_err(io)?;
        std::fs::write(places.tmpdir.join("nginx.conf"), conf).map_err(io)?;
        // What `/` answers until the test puts its own files there.
        std::fs::write(html.join("index.html"), "mirakuru\n").map_err(io)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&html, Some(uid), Some(gid)).map_err(io)?;
            std::os::unix::fs::chown(html.join("index.html"), Some(uid), Some(gid)).map_err(io)?;
        }
        Ok(command.with_program(nginx.into_os_string()))
    }

    fn endpoint(&self, host: &str, port: Option<u16>, _tmpdir: &Path) -> Endpoint {
        Endpoint {
            scheme: "http".into(),
            user: None,
            password: None,
            host: host.into(),
            port: port.unwrap_or(80),
            path: None,
            socket: None,
            query: None,
        }
    }

    fn probe(&self, endpoint: &Endpoint, timeout: Duration) -> Result<String, String> {
        let request = format!("HEAD / HTTP/1.0\r\nHost: {}\r\n\r\n", endpoint.host);
        wait_ready(
            endpoint,
            request.as_bytes(),
            |a| match a.starts_with(b"HTTP/") {
                true => Verdict::Ready("nginx answered".into(), None),
                false if a.len() < 5 => Verdict::More,
                false => Verdict::NotYet("not HTTP".into()),
            },
            timeout,
        )
    }
}
