//! What to run and how: argv or a command line, shell, working directory, environment, user,
//! and where each standard stream goes. Everything is checked by `Command::validate` before
//! anything is spawned, so bad input is an [`Error::InvalidArgument`] that says what to fix.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::platform;

/// The command an executor runs: one string, split as a POSIX shell would split it (without
/// running a shell, unless [`shell`](crate::Executor::shell) is set), or a list of arguments.
///
/// Converted from `&str`/`String` (a command line) or from an array, slice or `Vec` of
/// strings (argv), so executors take either:
///
/// ```
/// use mirakuru::SimpleExecutor;
///
/// let a = SimpleExecutor::new("redis-server --port 6390 --save ''");
/// let b = SimpleExecutor::new(["redis-server", "--port", "6390", "--save", ""]);
/// assert_eq!(a.command().to_string(), "redis-server --port 6390 --save ''");
/// assert_eq!(b.command().to_string(), "redis-server --port 6390 --save ''");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    program: Program,
    pub(crate) shell: bool,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    pub(crate) env_clear: bool,
    pub(crate) stdin: Stdin,
    pub(crate) stdout: Redirect,
    pub(crate) stderr: Redirect,
    pub(crate) user: Option<String>,
}

/// A command checked and resolved, ready to spawn.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) argv: Vec<OsString>,
    /// `(uid, gid)` to switch to, when running as another user.
    pub(crate) user: Option<(u32, u32)>,
}

#[derive(Clone, PartialEq, Eq)]
enum Program {
    /// A command line: split into arguments as a POSIX shell would, or given to `sh -c`.
    /// Text, except after placeholders filled in with a path that is not (see `substitute`).
    Line(OsString),
    Args(Vec<OsString>),
}

/// Where a process's stdout or stderr goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Redirect {
    /// Drained into a bounded buffer for the whole life of the process; see
    /// [`Executor::output`](crate::Executor::output). The default: the output is in every
    /// error message, and a pipe that nobody reads never blocks the service.
    #[default]
    Capture,
    /// Shared with the test binary (printed to the terminal or to the test runner).
    Inherit,
    /// Discarded (`/dev/null`).
    Null,
    /// Appended to a file, created if missing.
    File(PathBuf),
}

/// Where a process's stdin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdin {
    /// `/dev/null`: reads see end of file at once. The default.
    #[default]
    Null,
    /// Shared with the test binary.
    Inherit,
    /// A pipe that stays open and is never written, for programs that exit when stdin
    /// closes (Python mirakuru's default).
    Open,
}

impl Command {
    fn new(program: Program) -> Command {
        Command {
            program,
            shell: false,
            cwd: None,
            env: Vec::new(),
            env_clear: false,
            stdin: Stdin::Null,
            stdout: Redirect::Capture,
            stderr: Redirect::Capture,
            user: None,
        }
    }

    /// The argument vector to execute, after splitting and shell wrapping; every problem is an
    /// [`Error::InvalidArgument`] naming the command and what to do.
    pub(crate) fn argv(&self) -> Result<Vec<OsString>, Error> {
        let invalid = |problem: String, hint: &str| Error::InvalidArgument {
            command: self.to_string(),
            problem,
            hint: hint.to_string(),
        };
        let argv: Vec<OsString> = match (&self.program, self.shell) {
            (Program::Line(line), true) => vec!["sh".into(), "-c".into(), line.clone()],
            (Program::Args(args), true) => {
                let joined: Vec<u8> =
                    args.iter().map(|a| shell_quote(a.as_bytes())).collect::<Vec<_>>().join(&b' ');
                vec!["sh".into(), "-c".into(), OsString::from_vec(joined)]
            }
            (Program::Line(line), false) => split(line).map_err(|e| {
                invalid(
                    format!("the command line cannot be split into arguments ({e})"),
                    "close the quote, escape it with a backslash, or pass the arguments as a list",
                )
            })?,
            (Program::Args(args), false) => args.clone(),
        };
        let blank = |s: &OsStr| s.as_bytes().iter().all(u8::is_ascii_whitespace);
        if argv.first().is_none_or(|p| blank(p))
            || (self.shell && matches!(&self.program, Program::Line(l) if blank(l)))
        {
            return Err(invalid("the command is empty".into(), "give the program to run"));
        }
        if let Some(arg) = argv.iter().find(|a| a.as_bytes().contains(&0)) {
            return Err(invalid(
                format!("argument {:?} contains a NUL byte", arg.to_string_lossy()),
                "remove the NUL byte: the operating system cannot pass it",
            ));
        }
        Ok(argv)
    }

    /// Checks everything that can be checked without spawning: arguments, environment names,
    /// working directory, user, and that the program exists and is executable.
    pub(crate) fn validate(&self) -> Result<Prepared, Error> {
        let argv = self.argv()?;
        let invalid = |problem: String, hint: &str| Error::InvalidArgument {
            command: self.to_string(),
            problem,
            hint: hint.to_string(),
        };
        for (name, value) in &self.env {
            let bytes = name.as_bytes();
            if bytes.is_empty() || bytes.contains(&b'=') || bytes.contains(&0) {
                return Err(invalid(
                    format!("environment variable name {:?} is not valid", name.to_string_lossy()),
                    "use a non-empty name without `=` or NUL bytes",
                ));
            }
            // The value is never printed: environments hold passwords.
            if value.as_ref().is_some_and(|v| v.as_bytes().contains(&0)) {
                return Err(invalid(
                    format!(
                        "the value of environment variable {:?} contains a NUL byte",
                        name.to_string_lossy()
                    ),
                    "remove the NUL byte from the value",
                ));
            }
        }
        if let Some(cwd) = &self.cwd {
            if !cwd.is_dir() {
                let what = if cwd.exists() { "is not a directory" } else { "does not exist" };
                return Err(invalid(
                    format!("the working directory {} {what}", cwd.display()),
                    "create it first or fix the `cwd` path",
                ));
            }
        }
        if let Some(file) = [&self.stdout, &self.stderr].into_iter().find_map(|r| match r {
            Redirect::File(p) => Some(p),
            _ => None,
        }) {
            let parent = self.resolve(file).parent().map(Path::to_path_buf).unwrap_or_default();
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                return Err(invalid(
                    format!(
                        "the output file {} is in a directory that does not exist",
                        file.display()
                    ),
                    "create the directory first",
                ));
            }
        }
        let user = self.resolve_user()?;
        self.check_program(&argv[0])?;
        Ok(Prepared { argv, user })
    }

    /// `user` as `(uid, gid)`: a name, a uid, or `uid:gid`.
    fn resolve_user(&self) -> Result<Option<(u32, u32)>, Error> {
        let Some(user) = &self.user else { return Ok(None) };
        let invalid = |problem: String, hint: &str| Error::InvalidArgument {
            command: self.to_string(),
            problem,
            hint: hint.to_string(),
        };
        let ids = match user.split_once(':') {
            Some((u, g)) => u.parse::<u32>().ok().zip(g.parse::<u32>().ok()),
            None => None,
        };
        let (uid, gid) = match ids.or_else(|| lookup_user(user)) {
            Some(ids) => ids,
            None => {
                return Err(invalid(
                    format!("the user {user:?} does not exist"),
                    "create it (useradd) or give an existing user name, uid or uid:gid",
                ))
            }
        };
        let me = platform::geteuid();
        if me != 0 && uid != me {
            return Err(invalid(
                format!("cannot run as user {user:?}: only root can switch users, and this runs as uid {me}"),
                "run the tests as root, or leave `.user(...)` out when not running as root",
            ));
        }
        Ok(Some((uid, gid)))
    }

    fn check_program(&self, program: &OsStr) -> Result<(), Error> {
        let invalid = |problem: String, hint: &str| Error::InvalidArgument {
            command: self.to_string(),
            problem,
            hint: hint.to_string(),
        };
        let name = Path::new(program);
        let candidates: Vec<PathBuf> = if program.as_bytes().contains(&b'/') {
            vec![self.resolve(name)]
        } else {
            let path =
                self.child_env("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
            std::env::split_paths(&path).map(|dir| self.resolve(&dir).join(name)).collect()
        };
        let mut not_executable = None;
        for candidate in &candidates {
            match std::fs::metadata(candidate) {
                Ok(meta) if meta.is_dir() => {
                    if program.as_bytes().contains(&b'/') {
                        return Err(invalid(
                            format!("the program {} is a directory", candidate.display()),
                            "point the command at an executable file",
                        ));
                    }
                }
                Ok(meta) => {
                    use std::os::unix::fs::PermissionsExt;
                    if meta.permissions().mode() & 0o111 != 0 {
                        return Ok(());
                    }
                    not_executable.get_or_insert(candidate.clone());
                }
                Err(_) => {}
            }
        }
        if let Some(path) = not_executable {
            return Err(invalid(
                format!("the program {} is not executable", path.display()),
                "make it executable (chmod +x) or run it through its interpreter",
            ));
        }
        if program.as_bytes().contains(&b'/') {
            Err(invalid(
                format!("the program {} does not exist", candidates[0].display()),
                "check the path (relative paths are resolved against `cwd` when it is set)",
            ))
        } else {
            Err(invalid(
                format!("the program `{}` was not found in PATH", name.display()),
                "install it, add its directory to PATH, or give its full path",
            ))
        }
    }

    /// The value a variable will have in the child.
    fn child_env(&self, key: &str) -> Option<OsString> {
        if let Some((_, value)) = self.env.iter().rev().find(|(k, _)| k == key) {
            return value.clone();
        }
        if self.env_clear {
            return None;
        }
        std::env::var_os(key)
    }

    /// The same command running `program` instead of its first word: a preset's program,
    /// found where it is installed. A command line is left as it is.
    pub(crate) fn with_program(&self, program: OsString) -> Command {
        let mut command = self.clone();
        if let Program::Args(args) = &mut command.program {
            match args.first_mut() {
                Some(first) => *first = program,
                None => args.push(program),
            }
        }
        command
    }

    /// One more argument at the end: to a list as it is, to a command line quoted as a shell
    /// would need it (so that it stays one argument).
    pub(crate) fn push_arg(&mut self, arg: OsString) {
        match &mut self.program {
            Program::Args(args) => args.push(arg),
            Program::Line(line) => {
                use std::os::unix::ffi::{OsStrExt, OsStringExt};
                let mut bytes = line.as_bytes().to_vec();
                bytes.push(b' ');
                bytes.extend(shell_quote(arg.as_bytes()));
                *line = OsString::from_vec(bytes);
            }
        }
    }

    /// A path as the child will see it: relative paths are relative to its working directory.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        match &self.cwd {
            Some(cwd) if path.is_relative() => cwd.join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// `(uid, gid)` of a user name, or of a uid — which need not have a passwd entry (a
/// container's arbitrary uid): its group is then the number itself, never ours.
pub(crate) fn lookup_user(user: &str) -> Option<(u32, u32)> {
    match user.parse::<u32>() {
        Ok(uid) => Some(match nix::unistd::User::from_uid(uid.into()) {
            Ok(Some(u)) => (u.uid.as_raw(), u.gid.as_raw()),
            _ => (uid, uid),
        }),
        Err(_) => match nix::unistd::User::from_name(user) {
            Ok(Some(u)) => Some((u.uid.as_raw(), u.gid.as_raw())),
            _ => None,
        },
    }
}

/// Splits a command line as a POSIX shell would, without running one.
fn split(line: &OsStr) -> Result<Vec<OsString>, String> {
    let line = line.to_str().ok_or("it is not valid UTF-8")?;
    let args = shell_words::split(line).map_err(|e| e.to_string())?;
    Ok(args.into_iter().map(OsString::from).collect())
}

/// `bytes` as one word for `sh`: single-quoted unless it is made of safe characters only.
/// Works for any bytes, UTF-8 or not (a `'` is written `'\''`).
pub(crate) fn shell_quote(bytes: &[u8]) -> Vec<u8> {
    let safe = |b: &u8| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(b);
    if !bytes.is_empty() && bytes.iter().all(safe) {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'\'');
    for &b in bytes {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Replaces every `{name}` of `vars` in `text` by its value; `quote` quotes values for `sh`.
fn replace_vars(text: &[u8], vars: &[(&str, &OsStr)], quote: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        if rest[0] == b'{' {
            for (name, value) in vars {
                let key = format!("{{{name}}}");
                if rest.starts_with(key.as_bytes()) {
                    let value = value.as_bytes();
                    out.extend(if quote { shell_quote(value) } else { value.to_vec() });
                    rest = &rest[key.len()..];
                    continue 'scan;
                }
            }
        }
        out.push(rest[0]);
        rest = &rest[1..];
    }
    out
}

/// `text` with every `{name}` of `vars` replaced by its value, byte for byte.
pub(crate) fn fill_vars(text: &OsStr, vars: &[(&str, &OsStr)]) -> OsString {
    OsString::from_vec(replace_vars(text.as_bytes(), vars, false))
}

impl Command {
    /// The command with every `{name}` of `vars` replaced by its value, byte for byte (a path
    /// that is not UTF-8 stays as it is): in the arguments, environment values, working
    /// directory and output files. A command line is split into arguments first, so a value
    /// needs no quoting — except in a line run by `sh -c`, where each value is quoted, so that
    /// a space, `$` or `;` in a path is taken as part of it.
    pub(crate) fn substitute(&self, vars: &[(&str, &OsStr)]) -> Command {
        let fill = |text: &OsStr| fill_vars(text, vars);
        let mut out = self.clone();
        out.program = match &self.program {
            Program::Line(line) if self.shell => {
                Program::Line(OsString::from_vec(replace_vars(line.as_bytes(), vars, true)))
            }
            Program::Line(line) => match split(line) {
                Ok(args) => Program::Args(args.iter().map(|a| fill(a)).collect()),
                // Kept as written, for start() to report the quoting error.
                Err(_) => Program::Line(fill(line)),
            },
            Program::Args(args) => Program::Args(args.iter().map(|a| fill(a)).collect()),
        };
        for (_, value) in &mut out.env {
            if let Some(v) = value {
                *v = fill(v);
            }
        }
        if let Some(cwd) = &mut out.cwd {
            *cwd = PathBuf::from(fill(cwd.as_os_str()));
        }
        for redirect in [&mut out.stdout, &mut out.stderr] {
            if let Redirect::File(path) = redirect {
                *path = PathBuf::from(fill(path.as_os_str()));
            }
        }
        out
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.program {
            Program::Line(line) => f.write_str(&line.to_string_lossy()),
            Program::Args(args) => {
                f.write_str(&shell_words::join(args.iter().map(|a| a.to_string_lossy())))
            }
        }
    }
}

impl fmt::Debug for Command {
    /// Environment values are left out: they often hold passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("command", &self.to_string())
            .field("shell", &self.shell)
            .field("cwd", &self.cwd)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl From<&str> for Command {
    fn from(line: &str) -> Command {
        Command::new(Program::Line(line.into()))
    }
}

impl From<String> for Command {
    fn from(line: String) -> Command {
        Command::new(Program::Line(line.into()))
    }
}

impl From<&String> for Command {
    fn from(line: &String) -> Command {
        Command::new(Program::Line(line.into()))
    }
}

impl<S: AsRef<OsStr>> From<Vec<S>> for Command {
    fn from(args: Vec<S>) -> Command {
        Command::new(Program::Args(args.iter().map(|a| a.as_ref().to_os_string()).collect()))
    }
}

impl<S: AsRef<OsStr>> From<&[S]> for Command {
    fn from(args: &[S]) -> Command {
        Command::new(Program::Args(args.iter().map(|a| a.as_ref().to_os_string()).collect()))
    }
}

impl<S: AsRef<OsStr>, const N: usize> From<[S; N]> for Command {
    fn from(args: [S; N]) -> Command {
        Command::new(Program::Args(args.iter().map(|a| a.as_ref().to_os_string()).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_pushed_stays_one_argument() {
        let mut line = Command::from("postgres -D /data");
        line.push_arg("max_connections=300 # two words".into());
        assert_eq!(line.to_string(), "postgres -D /data 'max_connections=300 # two words'");
        let mut args = Command::from(vec!["postgres".to_string()]);
        args.push_arg("-c".into());
        assert_eq!(args.argv().expect("valid").len(), 2);
    }

    fn problem(cmd: impl Into<Command>) -> String {
        match cmd.into().validate().map(|p| p.argv) {
            Err(Error::InvalidArgument { problem, .. }) => problem,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn command_lines_split_like_a_shell() {
        let argv = Command::from("echo 'a b' c\\ d \"e\"").argv().expect("splits");
        assert_eq!(argv, ["echo", "a b", "c d", "e"]);
    }

    #[test]
    fn lists_are_shown_quoted() {
        assert_eq!(Command::from(["sleep", "300", "a b"]).to_string(), "sleep 300 'a b'");
    }

    #[test]
    fn placeholders_are_filled_in_byte_for_byte_and_quoted_for_the_shell() {
        use std::os::unix::ffi::OsStrExt;
        let odd = OsStr::from_bytes(b"/tmp/a b;$x\xff");
        let vars = [("tmpdir", odd), ("port", OsStr::new("5432"))];
        let cmd = Command::from("postgres -D {tmpdir}/data -p {port}").substitute(&vars);
        let argv = cmd.argv().expect("valid");
        assert_eq!(argv[2].as_bytes(), b"/tmp/a b;$x\xff/data");
        assert_eq!(argv[4], "5432");
        let mut line = Command::from("ls {tmpdir} && echo {port}");
        line.shell = true;
        let argv = line.substitute(&vars).argv().expect("valid");
        assert_eq!(argv[2].as_bytes(), b"ls '/tmp/a b;$x\xff' && echo 5432");
        assert_eq!(
            shell_quote(b"it's"),
            b"'it'\\''s'".to_vec(),
            "a quote inside is closed, escaped and reopened"
        );
    }

    #[test]
    fn shell_wraps_the_line() {
        let mut cmd = Command::from("echo $HOME | cat");
        cmd.shell = true;
        assert_eq!(cmd.argv().expect("valid"), ["sh", "-c", "echo $HOME | cat"]);
    }

    #[test]
    fn bad_commands_are_explained() {
        assert!(problem("echo 'open").contains("cannot be split"));
        assert!(problem("").contains("empty"));
        assert!(problem("   ").contains("empty"));
        assert!(problem(Vec::<String>::new()).contains("empty"));
        assert!(problem(["echo", "a\0b"]).contains("NUL"));
        assert!(problem("surely-no-such-program-xyz").contains("not found in PATH"));
        assert!(problem("/surely/no/such/program").contains("does not exist"));
        assert!(problem("/tmp").contains("is a directory"));
    }

    #[test]
    fn bad_environment_names_are_explained_without_values() {
        let mut cmd = Command::from("true");
        cmd.env.push(("A=B".into(), Some("secret".into())));
        let p = problem(cmd);
        assert!(p.contains("A=B") && !p.contains("secret"), "{p}");
        let mut cmd = Command::from("true");
        cmd.env.push(("PASSWORD".into(), Some("sec\0ret".into())));
        let p = problem(cmd);
        assert!(p.contains("PASSWORD") && !p.contains("sec"), "{p}");
    }

    #[test]
    fn unknown_users_are_explained() {
        let mut cmd = Command::from("true");
        cmd.user = Some("no-such-user-mirakuru".into());
        assert!(problem(cmd).contains("does not exist"));
    }

    #[test]
    fn missing_working_directory_is_explained() {
        let mut cmd = Command::from("true");
        cmd.cwd = Some("/surely/not/here".into());
        assert!(problem(cmd).contains("does not exist"));
    }
}
