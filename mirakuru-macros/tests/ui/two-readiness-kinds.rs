// Two readiness kinds without saying how they combine: one of them is probably a mistake.
#[mirakuru::fixture(cmd = "redis-server --port 6379 --unixsocket /tmp/r.sock", tcp = 6379, unix = "/tmp/r.sock")]
#[test]
fn waits_for_redis() {}

fn main() {}
