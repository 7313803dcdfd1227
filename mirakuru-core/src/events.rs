//! What executors report through `tracing` (target `mirakuru`): each check's time to ready,
//! stops with their duration, failed starts, services that died, kills. Nothing is printed
//! unless the test installs a subscriber.

use std::time::Duration;

use crate::error::Error;

/// The service is ready: the whole check's time first, then each part's.
pub(crate) fn ready(command: &str, times: &[(String, Duration)]) {
    for (check, elapsed) in times {
        tracing::info!(
            target: "mirakuru",
            command = %command,
            check = %check,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "ready"
        );
    }
}

/// A start failed; nothing of it is left.
pub(crate) fn start_failed(command: &str, error: &Error) {
    tracing::warn!(target: "mirakuru", command = %command, error = %error, "start failed");
}

/// The service died after it was ready.
pub(crate) fn died(command: &str, error: &Error) {
    tracing::warn!(target: "mirakuru", command = %command, error = %error, "service died");
}

/// The service was stopped, in `took`, after running for `uptime`.
pub(crate) fn stopped(command: &str, took: Duration, uptime: Option<Duration>, graceful: bool) {
    tracing::info!(
        target: "mirakuru",
        command = %command,
        stop_ms = took.as_secs_f64() * 1000.0,
        ready_for_ms = uptime.map(|d| d.as_secs_f64() * 1000.0),
        graceful = graceful,
        "stopped"
    );
}

/// The service was killed.
pub(crate) fn killed(command: &str) {
    tracing::info!(target: "mirakuru", command = %command, "killed");
}

#[cfg(test)]
mod tests {
    use crate::ready;
    use crate::Executor;
    use std::fmt;
    use std::sync::Mutex;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// The events of one thread, as `message field=value ...` lines.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                self.0.insert_str(0, &format!("{value:?}"));
            } else {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
    }

    impl Subscriber for &'static Recorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(String::new());
            event.record(&mut line);
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn ready_and_stop_are_tracing_events_with_the_time_of_each_check() {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::with_default(recorder, || {
            let mut ex = Executor::new(
                ["sh", "-c", "echo one; echo two; exec sleep 30"],
                ready::all().with(ready::Banner::new("one")).with(ready::Banner::new("two")),
            );
            ex.start().expect("start");
            ex.stop().expect("stop");
        });
        let lines = recorder.0.lock().expect("lines").clone();
        let ready: Vec<&String> = lines.iter().filter(|l| l.starts_with("ready")).collect();
        assert_eq!(ready.len(), 3, "the whole check and each part: {lines:#?}");
        assert!(ready[0].contains("check=all of"), "{lines:#?}");
        assert!(ready[1].contains("check=the output to match \"one\""), "{lines:#?}");
        assert!(ready.iter().all(|l| l.contains("command=sh -c") && l.contains("elapsed_ms=")));
        assert!(lines.iter().any(|l| l.starts_with("stopped") && l.contains("graceful=true")));
    }

    #[test]
    fn a_failed_start_is_a_tracing_event() {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::with_default(recorder, || {
            let mut ex = Executor::new(["sh", "-c", "exit 4"], ready::Banner::new("never"));
            assert!(ex.start().is_err());
        });
        let lines = recorder.0.lock().expect("lines").clone();
        assert!(
            lines.iter().any(|l| l.starts_with("start failed") && l.contains("exit code 4")),
            "{lines:#?}"
        );
    }
}
