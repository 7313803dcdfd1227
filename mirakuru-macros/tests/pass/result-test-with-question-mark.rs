#[mirakuru::fixture(unix = auto, args = ["server", "--socket", "{socket}"], stop_timeout = "500ms",
    env = ["MODE=test", "DIR={tmpdir}"], cwd = "{tmpdir}", expected_returncode = -15)]
#[test]
fn reads(server: &mirakuru::Fixture) -> Result<(), std::io::Error> {
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(server.socket())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    if reply.is_empty() {
        return Err(std::io::Error::other("empty reply"));
    }
    Ok(())
}

#[mirakuru::fixture(pid = "{tmpdir}/server.pid", cmd = "server --pidfile {tmpdir}/server.pid")]
fn checked(server: &mirakuru::Fixture) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(server.pid_file())?;
    let _pid: u32 = text.trim().parse()?;
    Ok(())
}

fn main() {
    let _: fn() -> Result<(), Box<dyn std::error::Error>> = checked;
}
