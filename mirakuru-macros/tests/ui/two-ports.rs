// Several readiness checks combine, but they share the fixture's one port.
#[mirakuru::fixture(cmd = "server --port {port}", ready = all, tcp = auto, http = 8080)]
#[test]
fn reads() {}

fn main() {}
