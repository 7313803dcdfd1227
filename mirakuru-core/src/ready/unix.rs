//! Ready when a unix stream socket accepts connections. The socket file's appearance is seen
//! through inotify; since listen(2) makes no event, a connect follows on a short schedule.

use std::path::{Path, PathBuf};

use super::{Backoff, Check, Context, Setup, Status};
use crate::error::Error;
use crate::platform::{self, DirWatch, MAX_SOCKET_PATH};

/// Ready when the unix socket at a path accepts a connection.
#[derive(Debug)]
pub struct UnixSocket {
    path: PathBuf,
    resolved: PathBuf,
    watch: Option<DirWatch>,
    backoff: Backoff,
    last: Option<String>,
}

impl UnixSocket {
    /// Waits for the socket at `path` (relative paths are resolved against the executor's
    /// working directory).
    pub fn new(path: impl Into<PathBuf>) -> UnixSocket {
        let path = path.into();
        UnixSocket {
            resolved: path.clone(),
            path,
            watch: None,
            backoff: Backoff::new(),
            last: None,
        }
    }

    /// The socket path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether the socket at `path` listens. A listener whose backlog is full answers EAGAIN,
/// which still proves it listens.
pub(crate) fn probe(path: &Path) -> std::io::Result<()> {
    use rustix::io::Errno;
    match platform::connect_unix_nonblocking(path) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error().map(Errno::from_raw_os_error),
                Some(Errno::AGAIN | Errno::INPROGRESS)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl Check for UnixSocket {
    fn describe(&self) -> String {
        format!("unix socket {} to accept connections", self.resolved.display())
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err(
                "the unix socket path is empty; give the path the service will listen on".into()
            );
        }
        super::check_path(&self.path, "unix socket path")?;
        self.resolved = setup.resolve(&self.path);
        let len = self.resolved.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(format!(
                "the unix socket path {} is {len} bytes long, more than the {MAX_SOCKET_PATH} the \
                 operating system allows; use a shorter directory (such as one under /tmp)",
                self.resolved.display()
            ));
        }
        self.watch = DirWatch::new(&self.resolved);
        self.backoff = Backoff::new();
        self.last = None;
        Ok(())
    }

    fn already_running(&mut self, _setup: &Setup<'_>) -> Result<Option<String>, Error> {
        Ok(probe(&self.resolved)
            .ok()
            .map(|()| format!("unix socket {} accepts connections", self.resolved.display())))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        if self.watch.as_ref().is_some_and(|w| w.drain().changed) {
            self.backoff.reset();
        }
        match probe(&self.resolved) {
            Ok(()) => Status::Ready,
            Err(e) => {
                let missing = e.kind() == std::io::ErrorKind::NotFound;
                self.last = Some(e.to_string());
                match &self.watch {
                    // Not there yet: its creation will wake us.
                    Some(watch) if missing => cx.poll_when_readable(watch),
                    // There but not listening yet (bind comes before listen), or no inotify.
                    Some(watch) => {
                        cx.poll_when_readable(watch);
                        cx.poll_again_in(self.backoff.next_delay());
                    }
                    None => cx.poll_again_in(self.backoff.next_delay()),
                }
                Status::NotYet
            }
        }
    }

    fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }
}
