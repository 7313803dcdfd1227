//! Checks made of checks: [`All`] (ready when every one is), [`Any`] (when one is) and
//! [`Timed`] (one check with a time limit of its own inside the overall deadline). They nest.
//!
//! The parts are polled together, not one after the other, so the slowest part alone sets
//! the time to ready; each part asks for its own wake-ups (its fds, its next attempt) and the
//! wait wakes for any of them. testcontainers-go's `ForAll` runs its parts in sequence, and
//! its `ForAny` fails at the first failure; composite timeouts needed three modes in
//! testcontainers-java (docs/design.md §6). Here: the startup timeout bounds everything,
//! and [`with_timeout`] bounds one part.

use std::time::{Duration, Instant};

use super::{Captures, Check, Context, Setup, Status};
use crate::error::Error;

/// A part of a combinator, with where it stands.
struct Member {
    check: Box<dyn Check>,
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Pending,
    /// Ready this long after the spawn.
    Ready(Duration),
    Failed(String),
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("check", &self.check.describe())
            .field("state", &self.state)
            .finish()
    }
}

/// What all combinators share.
#[derive(Debug, Default)]
struct Members(Vec<Member>);

impl Members {
    fn push(&mut self, check: Box<dyn Check>) {
        self.0.push(Member { check, state: State::Pending });
    }

    fn describe(&self, joiner: &str) -> String {
        let parts: Vec<String> = self.0.iter().map(|m| m.check.describe()).collect();
        format!("{joiner} ({})", parts.join("; "))
    }

    fn prepare(&mut self, setup: &mut Setup<'_>, name: &str) -> Result<(), String> {
        if self.0.is_empty() {
            return Err(format!("{name}() has no checks; add them with `.with(check)`"));
        }
        for m in &mut self.0 {
            m.state = State::Pending;
            m.check.prepare(setup)?;
        }
        Ok(())
    }

    fn already_running(&mut self, setup: &Setup<'_>) -> Result<Option<String>, Error> {
        for m in &mut self.0 {
            if let Some(reason) = m.check.already_running(setup)? {
                return Ok(Some(reason));
            }
        }
        Ok(None)
    }

    /// Polls every pending part once; each sees the port of the parts before it.
    fn poll(&mut self, cx: &mut Context<'_>) {
        let outer = cx.port;
        let mut known = None;
        for m in &mut self.0 {
            if m.state != State::Pending {
                known = known.or(m.check.port());
                continue;
            }
            cx.port = m.check.port().or(known).or(outer);
            m.state = match m.check.poll(cx) {
                Status::Ready => State::Ready(cx.elapsed()),
                Status::NotYet => State::Pending,
                Status::Failed(why) => State::Failed(why),
            };
            known = known.or(m.check.port());
        }
        cx.port = outer;
    }

    fn pending(&self) -> Option<String> {
        let pending: Vec<String> = self
            .0
            .iter()
            .filter(|m| m.state == State::Pending)
            .map(|m| match m.check.last_attempt() {
                Some(last) => format!("{} (last attempt: {last})", m.check.describe()),
                None => m.check.describe(),
            })
            .collect();
        (!pending.is_empty()).then(|| format!("still waiting for {}", pending.join("; ")))
    }

    fn port(&self) -> Option<u16> {
        let ready = self.0.iter().filter(|m| matches!(m.state, State::Ready(_)));
        ready.chain(self.0.iter()).find_map(|m| m.check.port())
    }

    fn captures(&self) -> Option<Captures> {
        self.0.iter().find_map(|m| m.check.captures())
    }

    fn ready_times(&self, only: Option<usize>) -> Vec<(String, Duration)> {
        let mut times = Vec::new();
        for (i, m) in self.0.iter().enumerate() {
            if only.is_some_and(|w| w != i) {
                continue;
            }
            if let State::Ready(after) = m.state {
                times.push((m.check.describe(), after));
                times.extend(m.check.ready_times());
            }
        }
        times
    }

    fn release(&mut self) {
        for m in &mut self.0 {
            m.check.release();
        }
    }
}

/// Ready when every one of its checks is ready; fails as soon as one fails (a
/// [`with_timeout`] part that runs out of time fails). Each part, once ready, is not polled
/// again. The error of a timeout names the parts still pending, with their last attempts.
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
/// use std::time::Duration;
///
/// // Redis said READY=1, and answers PING within 5 s of the spawn.
/// let mut redis = Executor::new(
///     "redis-server --port 6390 --save '' --supervised systemd",
///     ready::all()
///         .with(ready::notify())
///         .with_timeout(ready::redis("127.0.0.1", 6390), Duration::from_secs(5)),
/// );
/// redis.start()?;
/// for (check, after) in redis.readiness_times() {
///     println!("{check}: {after:?}");
/// }
/// redis.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct All {
    members: Members,
}

/// A check that is ready when all of its parts are; add them with [`All::with`].
pub fn all() -> All {
    All::default()
}

impl All {
    /// Adds a part.
    pub fn with(mut self, check: impl Check + 'static) -> All {
        self.members.push(Box::new(check));
        self
    }

    /// Adds a part that must be ready within `timeout` of the spawn.
    pub fn with_timeout(self, check: impl Check + 'static, timeout: Duration) -> All {
        self.with(with_timeout(check, timeout))
    }
}

impl FromIterator<Box<dyn Check>> for All {
    fn from_iter<I: IntoIterator<Item = Box<dyn Check>>>(checks: I) -> All {
        let mut all = All::default();
        for check in checks {
            all.members.push(check);
        }
        all
    }
}

impl Check for All {
    fn describe(&self) -> String {
        self.members.describe("all of")
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        self.members.prepare(setup, "all")
    }

    fn already_running(&mut self, setup: &Setup<'_>) -> Result<Option<String>, Error> {
        self.members.already_running(setup)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        self.members.poll(cx);
        for m in &self.members.0 {
            if let State::Failed(why) = &m.state {
                return Status::Failed(format!("{} failed: {why}", m.check.describe()));
            }
        }
        if self.members.0.iter().all(|m| matches!(m.state, State::Ready(_))) {
            Status::Ready
        } else {
            Status::NotYet
        }
    }

    fn last_attempt(&self) -> Option<String> {
        self.members.pending()
    }

    fn port(&self) -> Option<u16> {
        self.members.port()
    }

    fn captures(&self) -> Option<Captures> {
        self.members.captures()
    }

    fn ready_times(&self) -> Vec<(String, Duration)> {
        self.members.ready_times(None)
    }

    fn release(&mut self) {
        self.members.release()
    }
}

/// Ready when one of its checks is ready. A part that fails (or runs out of its
/// [`with_timeout`] time) is dropped; the whole fails only when every part has failed.
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
///
/// // A Redis built with or without systemd support: whichever says ready first.
/// let mut redis = Executor::new(
///     "redis-server --port 6390 --save '' --supervised auto",
///     ready::any().with(ready::notify()).with(ready::redis("127.0.0.1", 6390)),
/// );
/// redis.start()?;
/// redis.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Any {
    members: Members,
    winner: Option<usize>,
}

/// A check that is ready when one of its parts is; add them with [`Any::with`].
pub fn any() -> Any {
    Any::default()
}

impl Any {
    /// Adds a part.
    pub fn with(mut self, check: impl Check + 'static) -> Any {
        self.members.push(Box::new(check));
        self
    }

    /// Adds a part that is dropped if not ready within `timeout` of the spawn.
    pub fn with_timeout(self, check: impl Check + 'static, timeout: Duration) -> Any {
        self.with(with_timeout(check, timeout))
    }
}

impl FromIterator<Box<dyn Check>> for Any {
    fn from_iter<I: IntoIterator<Item = Box<dyn Check>>>(checks: I) -> Any {
        let mut any = Any::default();
        for check in checks {
            any.members.push(check);
        }
        any
    }
}

impl Check for Any {
    fn describe(&self) -> String {
        self.members.describe("any of")
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        self.winner = None;
        self.members.prepare(setup, "any")
    }

    fn already_running(&mut self, setup: &Setup<'_>) -> Result<Option<String>, Error> {
        self.members.already_running(setup)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        self.members.poll(cx);
        if let Some(i) = self.members.0.iter().position(|m| matches!(m.state, State::Ready(_))) {
            self.winner = Some(i);
            return Status::Ready;
        }
        let failures: Option<Vec<String>> = self
            .members
            .0
            .iter()
            .map(|m| match &m.state {
                State::Failed(why) => Some(format!("{} failed: {why}", m.check.describe())),
                _ => None,
            })
            .collect();
        match failures {
            Some(all) => Status::Failed(format!("every check failed: {}", all.join("; "))),
            None => Status::NotYet,
        }
    }

    fn last_attempt(&self) -> Option<String> {
        let failed: Vec<String> = self
            .members
            .0
            .iter()
            .filter_map(|m| match &m.state {
                State::Failed(why) => Some(format!("{} failed: {why}", m.check.describe())),
                _ => None,
            })
            .collect();
        let pending = self.members.pending();
        let parts: Vec<String> = pending.into_iter().chain(failed).collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn port(&self) -> Option<u16> {
        match self.winner {
            Some(i) => self.members.0[i].check.port().or_else(|| self.members.port()),
            None => self.members.port(),
        }
    }

    fn captures(&self) -> Option<Captures> {
        match self.winner {
            Some(i) => self.members.0[i].check.captures(),
            None => self.members.captures(),
        }
    }

    fn ready_times(&self) -> Vec<(String, Duration)> {
        match self.winner {
            Some(i) => self.members.ready_times(Some(i)),
            None => Vec::new(),
        }
    }

    fn release(&mut self) {
        self.members.release()
    }
}

/// A check with a time limit of its own, counted from its first poll (the spawn): past it,
/// the check fails, with its last attempt. Inside [`All`] that fails the start at once;
/// inside [`Any`] the part is dropped. See [`with_timeout`].
#[derive(Debug)]
pub struct Timed<C> {
    check: C,
    timeout: Duration,
    started: Option<Instant>,
}

/// `check`, failing if it is not ready within `timeout` of the spawn (while the executor's
/// startup timeout bounds the whole start).
pub fn with_timeout<C: Check>(check: C, timeout: Duration) -> Timed<C> {
    Timed { check, timeout, started: None }
}

impl<C: Check> Timed<C> {
    /// The check inside.
    pub fn inner(&self) -> &C {
        &self.check
    }
}

impl<C: Check> Check for Timed<C> {
    fn describe(&self) -> String {
        format!("{} within {:?}", self.check.describe(), self.timeout)
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err(format!(
                "the timeout of {} is zero; give it a positive duration",
                self.check.describe()
            ));
        }
        self.started = None;
        self.check.prepare(setup)
    }

    fn already_running(&mut self, setup: &Setup<'_>) -> Result<Option<String>, Error> {
        self.check.already_running(setup)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let started = *self.started.get_or_insert_with(Instant::now);
        let status = self.check.poll(cx);
        if status != Status::NotYet {
            return status;
        }
        let elapsed = started.elapsed();
        if elapsed >= self.timeout {
            let last = match self.check.last_attempt() {
                Some(last) => format!(" (last attempt: {last})"),
                None => String::new(),
            };
            return Status::Failed(format!("not ready within its own {:?}{last}", self.timeout));
        }
        cx.poll_again_in(self.timeout - elapsed);
        Status::NotYet
    }

    fn last_attempt(&self) -> Option<String> {
        self.check.last_attempt()
    }

    fn port(&self) -> Option<u16> {
        self.check.port()
    }

    fn captures(&self) -> Option<Captures> {
        self.check.captures()
    }

    fn ready_times(&self) -> Vec<(String, Duration)> {
        self.check.ready_times()
    }

    fn release(&mut self) {
        self.check.release()
    }
}
