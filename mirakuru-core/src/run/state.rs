//! What the keeper tells the tests: where the service is, or why it did not start. Written
//! once per start, whole (a reader never sees half of it), as JSON.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fixture::Fixture;
use crate::ready::Captures;

/// The outcome of the keeper's start.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum State {
    Ready(Box<Seen>),
    /// The start failed: the message every test of the run gets.
    Failed(String),
}

/// What a test sees of a running service.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Seen {
    /// The keeper's socket (abstract name).
    pub(crate) keeper: String,
    /// The keeper's pid: what answers on its socket must be it.
    pub(crate) keeper_pid: u32,
    pub(crate) name: String,
    pub(crate) command: String,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) pid: Option<u32>,
    pub(crate) url: Option<String>,
    pub(crate) socket: Option<PathBuf>,
    pub(crate) pid_file: Option<PathBuf>,
    pub(crate) tmpdir: PathBuf,
    pub(crate) captures: Option<Groups>,
    /// Each check, with how many microseconds after the spawn it became ready.
    pub(crate) readiness_times: Vec<(String, u64)>,
}

/// What a readiness check captured: its groups and their names.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Groups {
    groups: Vec<Option<String>>,
    names: Vec<Option<String>>,
}

impl Seen {
    /// What `fixture`, started in this process, shows.
    pub(crate) fn of(fixture: &Fixture) -> Seen {
        let executor = fixture.executor();
        let captures = executor.captures().map(|c| {
            let (groups, names) = c.parts();
            Groups { groups: groups.to_vec(), names: names.to_vec() }
        });
        Seen {
            keeper: String::new(),
            keeper_pid: std::process::id(),
            name: fixture.name().to_string(),
            command: executor.command().to_string(),
            host: fixture.host().to_string(),
            port: fixture.port_if_any(),
            pid: fixture.pid(),
            url: fixture.details().url.clone(),
            socket: fixture.details().socket.clone(),
            pid_file: fixture.details().pid_file.clone(),
            tmpdir: fixture.tmpdir().to_path_buf(),
            captures,
            readiness_times: (fixture.readiness_times().into_iter())
                .map(|(check, after)| (check, after.as_micros().min(u64::MAX as u128) as u64))
                .collect(),
        }
    }

    pub(crate) fn captures(&self) -> Option<Captures> {
        let Groups { groups, names } = self.captures.clone()?;
        Some(Captures::new(groups, names))
    }

    pub(crate) fn readiness_times(&self) -> Vec<(String, Duration)> {
        (self.readiness_times.iter())
            .map(|(check, micros)| (check.clone(), Duration::from_micros(*micros)))
            .collect()
    }
}

impl State {
    pub(crate) fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        super::place::write_atomically(path, &json)
    }

    /// The state at `path`; `None` while there is none.
    pub(crate) fn read(path: &Path) -> Option<State> {
        use std::io::Read;
        let mut file =
            crate::fixture::open_checked(path, std::fs::OpenOptions::new().read(true)).ok()?;
        let mut json = Vec::new();
        file.read_to_end(&mut json).ok()?;
        serde_json::from_slice(&json).ok()
    }
}
