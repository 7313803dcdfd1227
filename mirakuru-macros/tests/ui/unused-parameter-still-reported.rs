#![deny(unused_variables)]

// A fixture parameter the body never uses is reported on the parameter, as it would be
// without the attribute.
#[mirakuru::fixture(cmd = "redis-server --port {port}", tcp = auto)]
fn reads(redis: &mirakuru::Fixture) {}

fn main() {
    reads();
}
