//! The named executors — `SimpleExecutor`, `OutputExecutor`, `TcpExecutor`,
//! `UnixSocketExecutor`, `HttpExecutor`, `PidExecutor` — Python mirakuru's names for an
//! [`Executor`] with one readiness check each. One implementation: each is a thin wrapper that
//! derefs to its `Executor` and returns itself from every setter, written by one macro.

use std::path::PathBuf;
use std::time::Duration;

use crate::command::Command;
use crate::executor::Executor;
use crate::ready::{Banner, Http, Nothing, PidFile, StatusPattern, Tcp, UnixSocket};
use crate::settings::{settings_setters, Settings};

/// Declares a named executor: a wrapper over `Executor<$check>` that returns itself from
/// every setter and derefs to the `Executor` for everything else.
macro_rules! named_executor {
    ($(#[$meta:meta])* $name:ident($check:ty)) => {
        $(#[$meta])*
        pub struct $name(Executor<$check>);

        impl $name {
            fn configure(self, f: impl FnOnce(&mut Settings)) -> Self {
                Self(self.0.configure(f))
            }

            settings_setters!();

            /// The generic executor this one wraps.
            pub fn into_inner(self) -> Executor<$check> {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = Executor<$check>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<$name> for Executor<$check> {
            fn from(named: $name) -> Self {
                named.0
            }
        }
    };
}

named_executor! {
    /// Starts a process and returns as soon as it runs; stops its whole tree.
    ///
    /// ```
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::SimpleExecutor;
    ///
    /// let mut sleeper = SimpleExecutor::new("sleep 300");
    /// sleeper.start()?;
    /// assert!(sleeper.running());
    /// sleeper.stop()?;
    /// assert!(!sleeper.running());
    /// # Ok(()) }
    /// ```
    SimpleExecutor(Nothing)
}

impl SimpleExecutor {
    /// An executor for `command` (a command line or a list of arguments).
    pub fn new(command: impl Into<Command>) -> SimpleExecutor {
        SimpleExecutor(Executor::new(command, Nothing))
    }
}

named_executor! {
    /// Ready when the process prints a banner (Python mirakuru's `OutputExecutor`). The banner
    /// is a regex searched in every line of stdout and stderr as they arrive; a process that
    /// exits before printing it fails the start at once.
    ///
    /// ```
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::OutputExecutor;
    ///
    /// let mut ex = OutputExecutor::new(["sh", "-c", "echo 'listening on port 7000'; exec sleep 30"], r"port (\d+)");
    /// ex.start()?;
    /// assert_eq!(ex.captures().unwrap()[1].as_deref(), Some("7000"));
    /// ex.stop()?;
    /// # Ok(()) }
    /// ```
    OutputExecutor(Banner)
}

impl OutputExecutor {
    /// Runs `command` and waits until its output matches `banner` (a regular expression).
    pub fn new(command: impl Into<Command>, banner: impl Into<String>) -> OutputExecutor {
        OutputExecutor(Executor::new(command, Banner::new(banner)))
    }
}

named_executor! {
    /// Ready when a TCP port accepts connections (Python mirakuru's `TCPExecutor`).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::TcpExecutor;
    /// use std::time::Duration;
    ///
    /// let mut redis = TcpExecutor::new("redis-server --port 6390 --save ''", "127.0.0.1", 6390)
    ///     .timeout(Duration::from_secs(10));
    /// redis.start()?; // returns once the port accepts connections
    /// assert!(redis.running());
    /// redis.stop()?;
    /// # Ok(()) }
    /// ```
    TcpExecutor(Tcp)
}

impl TcpExecutor {
    /// Runs `command` and waits until `host:port` accepts connections.
    pub fn new(command: impl Into<Command>, host: impl Into<String>, port: u16) -> TcpExecutor {
        TcpExecutor(Executor::new(command, Tcp::new(host, port)))
    }

    /// The host, as given.
    pub fn host(&self) -> String {
        self.0.read_check(|c| c.host().to_string())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.0.read_check(Tcp::port)
    }
}

named_executor! {
    /// Ready when a unix socket accepts connections (Python mirakuru's `UnixSocketExecutor`).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::UnixSocketExecutor;
    ///
    /// let dir = std::env::temp_dir().join(format!("mirakuru-doc-unix-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let socket = dir.join("s.sock");
    /// let script = format!("import socket,time; s=socket.socket(socket.AF_UNIX); s.bind('{}'); s.listen(); time.sleep(30)", socket.display());
    /// let mut ex = UnixSocketExecutor::new(vec!["python3".to_string(), "-c".into(), script], &socket);
    /// ex.start()?;
    /// ex.stop()?;
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(()) }
    /// ```
    UnixSocketExecutor(UnixSocket)
}

impl UnixSocketExecutor {
    /// Runs `command` and waits until the unix socket at `path` accepts connections.
    pub fn new(command: impl Into<Command>, path: impl Into<PathBuf>) -> UnixSocketExecutor {
        UnixSocketExecutor(Executor::new(command, UnixSocket::new(path)))
    }

    /// The socket path, as given.
    pub fn socket(&self) -> PathBuf {
        self.0.read_check(|c| c.path().to_path_buf())
    }
}

named_executor! {
    /// Ready when an HTTP request gets an expected status (Python mirakuru's `HTTPExecutor`):
    /// `HEAD` and any 2xx by default.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::HttpExecutor;
    ///
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// let mut web = HttpExecutor::new(format!("python3 -m http.server {port} --bind 127.0.0.1"), format!("http://127.0.0.1:{port}/"))
    ///     .method("GET")
    ///     .status(200);
    /// web.start()?;
    /// web.stop()?;
    /// # Ok(()) }
    /// ```
    HttpExecutor(Http)
}

impl HttpExecutor {
    fn configure_check(self, f: impl FnOnce(&mut Http)) -> Self {
        Self(self.0.configure_check(f))
    }

    /// Runs `command` and waits until `url` answers with a 2xx status.
    pub fn new(command: impl Into<Command>, url: impl Into<String>) -> HttpExecutor {
        HttpExecutor(Executor::new(command, Http::new(url)))
    }

    /// The request method. Default: `HEAD`.
    pub fn method(self, method: impl Into<String>) -> Self {
        let method = method.into();
        self.configure_check(|c| c.set_method(method))
    }

    /// The status that counts as ready: a code (`200`) or a regular expression that must match
    /// the whole code (`"2\d\d|401"`). Default: `^2\d\d$`.
    pub fn status(self, status: impl Into<StatusPattern>) -> Self {
        let status = status.into();
        self.configure_check(|c| c.set_status(status))
    }

    /// Adds a request header.
    pub fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        self.configure_check(|c| c.add_header(name, value))
    }

    /// Adds request headers.
    pub fn headers<K: Into<String>, V: Into<String>>(
        self,
        headers: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let headers: Vec<_> = headers.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.configure_check(|c| headers.into_iter().for_each(|(k, v)| c.add_header(k, v)))
    }

    /// A form body (`application/x-www-form-urlencoded`), as Python mirakuru's `payload`.
    pub fn payload<K: Into<String>, V: Into<String>>(
        self,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let fields: Vec<_> = fields.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.configure_check(|c| c.set_payload(fields))
    }

    /// How long one request may take before it counts as a failed attempt. Default: 5 s.
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.configure_check(|c| c.set_request_timeout(timeout))
    }

    /// The URL, as given.
    pub fn url(&self) -> String {
        self.0.read_check(|c| c.url().to_string())
    }

    /// The host of the URL (empty if the URL is invalid).
    pub fn host(&self) -> String {
        self.0.read_check(|c| c.url_host().unwrap_or_default())
    }

    /// The port of the URL: 80 when it names none (0 if the URL is invalid).
    pub fn port(&self) -> u16 {
        self.0.read_check(|c| crate::ready::Check::port(c).unwrap_or(0))
    }
}

named_executor! {
    /// Ready when the service has written its pid file (Python mirakuru's `PidExecutor`).
    ///
    /// ```
    /// # fn main() -> Result<(), mirakuru::Error> {
    /// use mirakuru::PidExecutor;
    ///
    /// let dir = std::env::temp_dir().join(format!("mirakuru-doc-pid-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let pid_file = dir.join("service.pid");
    /// let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    /// let mut ex = PidExecutor::new(script, &pid_file).shell(true);
    /// ex.start()?;
    /// ex.stop()?;
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(()) }
    /// ```
    PidExecutor(PidFile)
}

impl PidExecutor {
    /// Runs `command` and waits until it has written its pid to `path`.
    pub fn new(command: impl Into<Command>, path: impl Into<PathBuf>) -> PidExecutor {
        PidExecutor(Executor::new(command, PidFile::new(path)))
    }

    /// The pid file path, as given.
    pub fn pid_file(&self) -> PathBuf {
        self.0.read_check(|c| c.path().to_path_buf())
    }
}
