#[mirakuru::fixture(cmd = "redis-server --port {port}", tcp = 0, timeout = "soon", envvars = ["A=1"])]
#[test]
fn reads(redis: &mirakuru::Fixture) {
    let _ = redis.port();
}

fn main() {}
