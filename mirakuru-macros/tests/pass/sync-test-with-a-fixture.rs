// The supported order: the fixture attribute above `#[test]`.
#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''")]
#[test]
fn reads(redis: &mirakuru::Fixture) {
    assert!(redis.port() > 0);
    mirakuru::stopped!(redis, {
        assert!(!redis.running());
    });
}

// The same expansion outside a test, so that rustc type-checks it in this binary.
#[mirakuru::fixture(tcp = auto, cmd = "redis-server --port {port} --save ''")]
fn reads_checked(redis: &mirakuru::Fixture) {
    assert!(redis.port() > 0);
    let _pid: Option<u32> = redis.pid();
    let _output = redis.output();
    mirakuru::stopped!(redis, {
        assert!(!redis.running());
    });
}

// Other attributes stay, in order; the parameter may have any name with one fixture.
/// A test that is skipped unless asked for.
#[mirakuru::fixture(output = "hi", args = ["sh", "-c", "echo hi; exec sleep 30"], timeout = 5)]
#[test]
#[ignore = "needs nothing, but shows #[ignore] is kept"]
#[should_panic(expected = "boom")]
fn panics(service: &mirakuru::Fixture) {
    let _ = service.pid();
    panic!("boom");
}

fn main() {
    let _: fn() = reads_checked;
}
