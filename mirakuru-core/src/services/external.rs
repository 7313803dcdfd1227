//! External services: when the preset's environment variable (`MIRAKURU_POSTGRES_URL`, …)
//! names a running service — a CI service container, a team's database cluster — nothing is
//! started. The service is waited for by protocol, up to the spec's `timeout`, and tests get
//! databases of their own on it as on a server of their own.

use std::sync::Arc;
use std::time::Duration;

use super::{Endpoint, Preset};
use crate::fixture::Fixture;
use crate::Error;

/// The URL the preset's variable names, if it is set and not empty.
pub(crate) fn external(preset: &dyn Preset) -> Option<(&'static str, String)> {
    let var = preset.external_var()?;
    let url = std::env::var(var).ok().filter(|u| !u.trim().is_empty())?;
    Some((var, url))
}

/// The fixture of the external service at `url`, once it answers.
pub(crate) fn attach(
    name: &str,
    preset: Arc<dyn Preset>,
    schema: Vec<std::path::PathBuf>,
    (var, url): (&'static str, String),
    timeout: Duration,
) -> Result<Fixture, Error> {
    let endpoint = Endpoint::parse(url.trim(), preset.default_port()).map_err(|problem| {
        Error::InvalidArgument {
            command: format!("{var}={url}"),
            problem,
            hint: format!(
                "set {var} to a URL such as {}, or unset it to start a server",
                example(preset.as_ref())
            ),
        }
    })?;
    if let Err(why) = preset.probe(&endpoint, timeout) {
        // Nothing was started, so no process output or kill to speak of.
        return Err(Error::Io {
            command: format!("{var}={}", shown(&endpoint)),
            action: format!("waiting for the external {} to answer ({why})", preset.title()),
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        });
    }
    Ok(Fixture::external(name.to_string(), endpoint, preset, schema))
}

/// The URL without its password, for messages.
pub(crate) fn shown(endpoint: &Endpoint) -> String {
    let mut shown = endpoint.clone();
    let hidden = shown.password.take().is_some();
    let url = shown.url();
    match (hidden, &shown.user) {
        // `scheme://user@…` becomes `scheme://user:***@…`.
        (true, Some(user)) => url.replacen(&format!("{user}@"), &format!("{user}:***@"), 1),
        (true, None) => url.replacen("://", "://:***@", 1),
        _ => url,
    }
}

fn example(preset: &dyn Preset) -> String {
    match preset.title() {
        "PostgreSQL" => "postgresql://user:password@host:5432/postgres".into(),
        "Redis" => "redis://host:6379".into(),
        _ => "mysql://root:password@host:3306/".into(),
    }
}
