// Every readiness key, and several of them combined, type-check through the facade.
use mirakuru::ready::{Context, Status};

fn listens(cx: &Context<'_>) -> Status {
    if cx.port().is_some() || !cx.listening_ports().is_empty() {
        Status::Ready
    } else {
        Status::NotYet
    }
}

#[mirakuru::fixture(
    cmd = "redis-server --port {port} --save '' --supervised systemd",
    ready = all,
    notify = true,
    redis = auto,
    exec = ["redis-cli", "-p", "{port}", "ping"],
    exec_output = "^PONG",
    exec_timeout = "2s",
    owned = true,
    timeout = "10s"
)]
fn redis(redis: &mirakuru::Fixture) {
    let _: u16 = redis.port();
    let _: Vec<(String, std::time::Duration)> = redis.readiness_times();
    let _: Result<(), mirakuru::Error> = redis.check_alive();
}

#[mirakuru::fixture(
    cmd = "postgres -D {tmpdir}/data -p {port} -k {tmpdir}",
    postgres = auto,
    file = "{tmpdir}/data/postmaster.pid",
    file_line = 8,
    file_matches = "^ready",
    ready = any,
    user = "postgres"
)]
fn pg(pg: &mirakuru::Fixture) {
    let _ = pg.port();
}

#[mirakuru::fixture(name = server, cmd = "server --port 0", ready = all, tcp = discover, output = "port (?P<port>\\d+)")]
#[mirakuru::fixture(name = fd, args = ["server", "--ready-fd", "3"], ready_fd = 3)]
#[mirakuru::fixture(name = probe, cmd = "server", ready = any, exec = "true", check = listens)]
#[mirakuru::fixture(name = inline, cmd = "server", check = |cx| if cx.elapsed().as_secs() > 0 { Status::Ready } else { Status::NotYet })]
fn others(
    server: &mirakuru::Fixture,
    fd: &mirakuru::Fixture,
    probe: &mirakuru::Fixture,
    inline: &mirakuru::Fixture,
) {
    let _: Option<mirakuru::ready::Captures> = server.captures();
    let _ = (fd, probe, inline);
}

fn main() {
    let _: fn() = redis;
    let _: fn() = pg;
    let _: fn() = others;
}
