#[mirakuru::fixture(cmd = "redis-server")]
struct Redis;

fn main() {}
