//! Readiness, one file per kind of check as in `mirakuru-core/src/ready/`. Each file holds its
//! kind's tests through every API (the named executor, `Executor::new` with the check, the
//! fixture attribute), its entries of the bad-input catalogue, and the real servers whose
//! readiness that kind decides (each prints one line and returns when its server is not
//! installed, unless `MIRAKURU_REQUIRE_SERVICES=1`).

mod combinators;
mod custom;
mod exec;
mod file;
mod http;
mod listeners;
mod notify;
mod output;
mod pidfile;
mod postgres;
mod ready_fd;
mod redis;
mod tcp;
mod unix;
