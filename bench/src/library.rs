//! The library side: a `Launch` turned into the executor a user would write for it.

use std::time::Duration;

use mirakuru::ready::{self, Check};
use mirakuru::{
    Error, Executor, HttpExecutor, OutputExecutor, PidExecutor, SimpleExecutor, TcpExecutor,
    UnixSocketExecutor,
};
use mirakuru_test::Tag;

use crate::launch::{Launch, Ready};

/// A startup deadline far above any scenario: a round that hits it is a failure, not a sample.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What the benchmark does with an executor, whatever its readiness check.
pub trait Service {
    fn start(&mut self) -> Result<(), Error>;
    fn stop(&mut self) -> Result<(), Error>;
}

impl<C: Check> Service for Executor<C> {
    fn start(&mut self) -> Result<(), Error> {
        Executor::start(self)
    }

    fn stop(&mut self) -> Result<(), Error> {
        Executor::stop(self)
    }
}

/// The executor for `launch`, tagged so that the end-of-run check can find its processes.
pub fn executor(launch: &Launch, tag: &Tag, stop_timeout: Option<Duration>) -> Box<dyn Service> {
    let argv = launch.argv.clone();
    match &launch.ready {
        Ready::Nothing => {
            configure(SimpleExecutor::new(argv).into_inner(), launch, tag, stop_timeout)
        }
        Ready::Tcp(port) => configure(
            TcpExecutor::new(argv, "127.0.0.1", *port).into_inner(),
            launch,
            tag,
            stop_timeout,
        ),
        Ready::Http(port) => configure(
            HttpExecutor::new(argv, format!("http://127.0.0.1:{port}/")).into_inner(),
            launch,
            tag,
            stop_timeout,
        ),
        Ready::Unix(path) => {
            configure(UnixSocketExecutor::new(argv, path).into_inner(), launch, tag, stop_timeout)
        }
        Ready::Pid(path) => {
            configure(PidExecutor::new(argv, path).into_inner(), launch, tag, stop_timeout)
        }
        Ready::Output(banner) => {
            configure(OutputExecutor::new(argv, *banner).into_inner(), launch, tag, stop_timeout)
        }
        Ready::Notify => configure(Executor::new(argv, ready::notify()), launch, tag, stop_timeout),
    }
}

fn configure<C: Check + 'static>(
    executor: Executor<C>,
    launch: &Launch,
    tag: &Tag,
    stop_timeout: Option<Duration>,
) -> Box<dyn Service> {
    let mut executor = executor.timeout(START_TIMEOUT).env(Tag::VAR, tag.value());
    if let Some(user) = &launch.user {
        executor = executor.user(user.name.clone());
    }
    if let Some(dir) = &launch.cwd {
        executor = executor.cwd(dir);
    }
    if let Some(timeout) = stop_timeout {
        executor = executor.stop_timeout(timeout);
    }
    Box::new(executor)
}
