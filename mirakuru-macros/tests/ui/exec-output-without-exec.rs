#[mirakuru::fixture(cmd = "redis-server --port {port}", tcp = auto, exec_output = "PONG")]
#[test]
fn reads() {}

fn main() {}
