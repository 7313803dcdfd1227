//! Ready when Redis answers `PING` with `PONG`. A TCP connect is not enough: Redis accepts
//! connections while it loads its dataset and answers every command with
//! `-LOADING Redis is loading the dataset in memory` until it is done (redis `server.c`,
//! `shared.loadingerr`; docs/design.md §4).

use std::path::PathBuf;
use std::time::Duration;

use super::probe::{Prober, Step, Target, Verdict};
use super::{Check, Context, Setup, Status};
use crate::error::Error;

/// Errors Redis answers while it is up but cannot serve yet: loading its dataset, running a
/// slow script (`BUSY`), a replica cut from its master with `replica-serve-stale-data no`
/// (`MASTERDOWN`), a cluster slot moving (`TRYAGAIN`).
const NOT_YET: &[&str] = &["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"];

/// Ready when Redis answers `PING` with `+PONG` (over TCP or a unix socket). `-LOADING` and the
/// other "not now" errors mean not yet. Any other error means the server is up, as
/// `pg_isready` decides for PostgreSQL: `-NOAUTH` (a password is set and not given here) is
/// ready — give the password with [`password`](Redis::password) to see `-LOADING` through
/// it, since Redis checks the password first. A wrong password fails the start at once.
///
/// ```no_run
/// # fn main() -> Result<(), mirakuru::Error> {
/// use mirakuru::{ready, Executor};
///
/// let mut redis = Executor::new("redis-server --port 6390 --save ''", ready::redis("127.0.0.1", 6390));
/// redis.start()?; // PONG received: the dataset is loaded
/// redis.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Redis {
    prober: Prober,
    user: Option<String>,
    password: Option<String>,
    answer: Option<String>,
}

/// A check that is ready when Redis at `host:port` answers `PING` with `PONG`; see [`Redis`].
pub fn redis(host: impl Into<String>, port: u16) -> Redis {
    Redis::new(Target::tcp(host, port))
}

impl Redis {
    fn new(target: Target) -> Redis {
        Redis { prober: Prober::new(target), user: None, password: None, answer: None }
    }

    /// Redis listening on the unix socket at `path` (`--unixsocket`).
    pub fn unix(path: impl Into<PathBuf>) -> Redis {
        Redis::new(Target::unix(path))
    }

    /// Authenticates first (`AUTH password`, or `AUTH user password` with
    /// [`user`](Redis::user)), so that a server with `requirepass` shows its real state.
    pub fn password(mut self, password: impl Into<String>) -> Redis {
        self.password = Some(password.into());
        self
    }

    /// The ACL user to authenticate as (Redis 6+), with [`password`](Redis::password).
    pub fn user(mut self, user: impl Into<String>) -> Redis {
        self.user = Some(user.into());
        self
    }

    /// Counts only an answer from a listener of the service's own process tree (see
    /// [`Tcp::owned`](super::Tcp::owned)): a foreign server on the port does not make the
    /// service ready. Linux only.
    pub fn owned(mut self) -> Redis {
        self.prober.owner.required = true;
        self
    }

    pub(crate) fn fail_when_taken(mut self) -> Redis {
        self.prober.owner.fail_when_taken = true;
        self
    }

    /// How long one attempt may take, connect to answer. Default: 1 s.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Redis {
        self.prober.attempt_timeout = timeout;
        self
    }

    /// What the server answered when it was found ready.
    pub fn answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }

    fn request(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(password) = &self.password {
            let mut args = vec!["AUTH"];
            if let Some(user) = &self.user {
                args.push(user);
            }
            args.push(password);
            out.extend(resp_command(&args));
        }
        out.extend(resp_command(&["PING"]));
        out
    }
}

/// A command as a RESP array of bulk strings: safe for any byte in the arguments, where an
/// inline command would split a password with a space.
pub(crate) fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(format!("${}\r\n", arg.len()).into_bytes());
        out.extend(arg.as_bytes());
        out.extend(b"\r\n");
    }
    out
}

/// Splits off the first line of a RESP answer: `None` while it is incomplete.
fn line(answer: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = answer.windows(2).position(|w| w == b"\r\n")?;
    Some((&answer[..end], &answer[end + 2..]))
}

/// Reads the answers to `[AUTH,] PING`.
pub(crate) fn classify(answer: &[u8], authenticated: bool) -> Verdict {
    let mut rest = answer;
    if authenticated {
        let Some((auth, after)) = line(rest) else { return incomplete(answer) };
        match auth.first() {
            Some(b'+') => rest = after,
            Some(b'-') => {
                let text = String::from_utf8_lossy(auth);
                let code = text[1..].split_whitespace().next().unwrap_or("");
                if NOT_YET.contains(&code) {
                    return Verdict::NotYet(format!("Redis answered AUTH with {text}"));
                }
                return Verdict::Failed(format!(
                    "Redis refused the password: {text}; check the password (and user) given to \
                     the Redis check"
                ));
            }
            _ => return not_redis(auth),
        }
    }
    let Some((reply, _)) = line(rest) else { return incomplete(answer) };
    let text = String::from_utf8_lossy(reply).into_owned();
    match reply.first() {
        Some(b'+') => Verdict::Ready(text, None),
        Some(b'-') => {
            let code = text[1..].split_whitespace().next().unwrap_or("");
            if NOT_YET.contains(&code) {
                Verdict::NotYet(format!("Redis answered PING with {text}"))
            } else {
                Verdict::Ready(format!("{text} (the server is up)"), None)
            }
        }
        _ => not_redis(reply),
    }
}

fn incomplete(answer: &[u8]) -> Verdict {
    if answer.len() > 4096 {
        not_redis(answer)
    } else {
        Verdict::More
    }
}

fn not_redis(reply: &[u8]) -> Verdict {
    let shown: String = String::from_utf8_lossy(reply).chars().take(60).collect();
    Verdict::NotYet(format!("the answer {shown:?} is not Redis's"))
}

impl Check for Redis {
    fn describe(&self) -> String {
        format!("Redis at {} to answer PING with PONG", self.prober.target)
    }

    fn prepare(&mut self, setup: &mut Setup<'_>) -> Result<(), String> {
        if self.user.is_some() && self.password.is_none() {
            return Err("a Redis user was given without a password; add `.password(...)`".into());
        }
        self.prober.target.prepare(setup)?;
        self.prober.reset();
        self.answer = None;
        Ok(())
    }

    fn already_running(&mut self, _setup: &Setup<'_>) -> Result<Option<String>, Error> {
        Ok(self.prober.target.answers())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        let request = self.request();
        let authenticated = self.password.is_some();
        match self.prober.poll(cx, &request, |a| classify(a, authenticated)) {
            Step::Ready(answer) => {
                self.answer = Some(answer);
                Status::Ready
            }
            Step::NotYet => Status::NotYet,
            Step::Failed(why) => Status::Failed(why),
        }
    }

    fn last_attempt(&self) -> Option<String> {
        self.prober.last_attempt()
    }

    fn port(&self) -> Option<u16> {
        self.prober.target.port()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pong_is_ready() {
        assert_eq!(classify(b"+PONG\r\n", false), Verdict::Ready("+PONG".into(), None));
    }

    #[test]
    fn an_incomplete_answer_waits_for_more() {
        assert_eq!(classify(b"+PO", false), Verdict::More);
        assert_eq!(classify(b"+PONG\r", false), Verdict::More);
        assert_eq!(classify(b"+OK\r\n", true), Verdict::More);
    }

    #[test]
    fn loading_and_the_other_not_now_errors_are_not_ready() {
        for answer in [
            &b"-LOADING Redis is loading the dataset in memory\r\n"[..],
            b"-BUSY Redis is busy running a script.\r\n",
            b"-MASTERDOWN Link with MASTER is down\r\n",
        ] {
            assert!(matches!(classify(answer, false), Verdict::NotYet(_)), "{answer:?}");
        }
        assert!(matches!(
            classify(b"+OK\r\n-LOADING Redis is loading\r\n", true),
            Verdict::NotYet(why) if why.contains("-LOADING")
        ));
    }

    #[test]
    fn other_errors_mean_the_server_is_up() {
        assert!(matches!(
            classify(b"-NOAUTH Authentication required.\r\n", false),
            Verdict::Ready(why, None) if why.contains("NOAUTH")
        ));
        assert!(matches!(
            classify(b"-DENIED Redis is running in protected mode\r\n", false),
            Verdict::Ready(..)
        ));
    }

    #[test]
    fn a_wrong_password_fails_for_good() {
        assert!(matches!(
            classify(b"-WRONGPASS invalid username-password pair\r\n-NOAUTH x\r\n", true),
            Verdict::Failed(why) if why.contains("WRONGPASS")
        ));
    }

    #[test]
    fn another_server_is_not_redis() {
        assert!(matches!(
            classify(b"HTTP/1.1 400 Bad Request\r\n", false),
            Verdict::NotYet(why) if why.contains("not Redis")
        ));
        assert!(matches!(classify(&[b'x'; 5000], false), Verdict::NotYet(_)));
    }

    #[test]
    fn requests_are_resp_arrays() {
        assert_eq!(redis("h", 1).request(), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            redis("h", 1).user("u").password("p w").request(),
            b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$3\r\np w\r\n*1\r\n$4\r\nPING\r\n"
        );
    }
}
