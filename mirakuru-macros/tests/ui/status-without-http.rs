#[mirakuru::fixture(cmd = "server --port {port}", tcp = auto, status = 200)]
#[test]
fn reads() {}

fn main() {}
