#![deny(warnings)]
#![deny(clippy::all)]

#[mirakuru::fixture(output = "hi", args = ["sh", "-c", "echo hi; exec sleep 30"])]
fn unit(service: &mirakuru::Fixture) {
    let _ = service.pid();
}

#[mirakuru::fixture(name = a, tcp = auto, cmd = "a --port {port}")]
#[mirakuru::fixture(name = b, http = auto, cmd = "b --port {port}", status = 204)]
fn result(a: &mirakuru::Fixture, b: &mirakuru::Fixture) -> Result<(), String> {
    if a.port() == b.port() {
        return Err("same port".into());
    }
    let n: u16 = "1".parse().map_err(|e: std::num::ParseIntError| e.to_string())?;
    let _ = n;
    Ok(())
}

#[mirakuru::fixture(cmd = "sleep 30", kill_signal = KILL, stop_timeout = 0)]
fn value() -> u32 {
    7
}

#[mirakuru::fixture(cmd = "sleep 30")]
fn no_parameter() {}

#[mirakuru::fixture(cmd = "sleep 30")]
async fn asynchronous(s: &mirakuru::Fixture) -> Result<u16, String> {
    Ok(s.port())
}

#[mirakuru::fixture(cmd = "sleep 30", shell = true)]
static SHARED: mirakuru::SharedFixture;

fn main() {
    let _: fn() = unit;
    let _: fn() -> Result<(), String> = result;
    let _: fn() -> u32 = value;
    let _: fn() = no_parameter;
    drop(asynchronous());
    let _ = &SHARED;
}
