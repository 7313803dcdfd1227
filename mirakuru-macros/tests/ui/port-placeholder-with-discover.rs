// With `tcp = discover` the service picks its port: there is none to fill in before.
#[mirakuru::fixture(cmd = "server --port {port}", tcp = discover)]
#[test]
fn reads() {}

fn main() {}
