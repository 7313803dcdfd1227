//! `mirakuru-test-service`: the scriptable fake service that mirakuru's tests start. Its code,
//! and the list of its flags, are in `mirakuru_test::test_service`, which the benchmark runs too.

fn main() {
    mirakuru_test::test_service::main()
}
