//! Where a service is, as its clients take it: `scheme://[user[:password]@]host[:port][/path]`.
//! Parsed by hand rather than with the `url` crate, whose IDNA tables would weigh more than
//! every preset together: only this one form is needed, with `%XX` escapes in the user and
//! password.

use std::fmt::Write as _;
use std::path::PathBuf;

/// A service's address and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) scheme: String,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The database (PostgreSQL, MariaDB) or index (Redis), if the URL names one.
    pub(crate) path: Option<String>,
    /// The server's unix socket, when this process started it.
    pub(crate) socket: Option<PathBuf>,
    /// What follows `?` (`sslmode=require`, …): given on to the server's client as it is.
    pub(crate) query: Option<String>,
}

impl Endpoint {
    /// Parses `url`; `default_port` when it names none.
    pub(crate) fn parse(url: &str, default_port: u16) -> Result<Endpoint, String> {
        let bad = |why: &str| format!("{url:?} is not a service URL: {why}");
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no `scheme://`"))?;
        let rest = rest.split('#').next().unwrap_or_default();
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, (!q.is_empty()).then(|| q.to_string())),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, (!p.is_empty()).then(|| p.to_string())),
            None => (rest, None),
        };
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(decode(u)?), Some(decode(p)?)),
                None => (Some(decode(c)?), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed `[`"))?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (host_port.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| bad("a bad port"))?,
            None => default_port,
        };
        let path = path.map(|p| decode(&p)).transpose()?;
        Ok(Endpoint {
            scheme: scheme.to_string(),
            user: user.filter(|u| !u.is_empty()),
            password,
            host,
            port,
            path,
            socket: None,
            query,
        })
    }

    /// The URL, with another path.
    pub(crate) fn url_with_path(&self, path: Option<&str>) -> String {
        let mut url = format!("{}://", self.scheme);
        // `user:password@`, `user@`, or `:password@` (Redis's `requirepass` has no user).
        if self.user.is_some() || self.password.is_some() {
            url.push_str(&encode(self.user.as_deref().unwrap_or("")));
            if let Some(password) = &self.password {
                let _ = write!(url, ":{}", encode(password));
            }
            url.push('@');
        }
        if self.host.contains(':') {
            let _ = write!(url, "[{}]", self.host);
        } else {
            url.push_str(&self.host);
        }
        let _ = write!(url, ":{}/", self.port);
        if let Some(path) = path {
            url.push_str(&encode(path));
        }
        if let Some(query) = &self.query {
            let _ = write!(url, "?{query}");
        }
        url
    }

    /// The host as a part of a file name: what a URL's host may hold beyond letters, digits,
    /// dots, dashes and colons becomes `_`, and `..` too, so that a lock file named after it
    /// is a plain name in its directory whatever `MIRAKURU_POSTGRES_URL` says.
    pub(crate) fn file_key(&self) -> String {
        plain(&self.host)
    }

    /// The URL.
    pub(crate) fn url(&self) -> String {
        self.url_with_path(self.path.as_deref())
    }
}

/// `text` as a plain part of a file name: letters, digits, dots, dashes and colons; anything
/// else, and `..`, made `_`.
pub(crate) fn plain(text: &str) -> String {
    let kept =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || ".-:".contains(c) { c } else { '_' });
    kept.collect::<String>().replace("..", "__")
}

/// `%XX` escapes decoded.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte = hex.ok_or_else(|| format!("{text:?} holds a bad `%` escape"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} decodes to bytes that are not UTF-8"))
}

/// Escapes what may not stand in a URL's user, password or path.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_parsed_into_its_parts_and_built_back() {
        let e = Endpoint::parse("postgresql://app:p%40ss@db.example:6543/main?sslmode=off", 5432)
            .expect("a valid URL");
        assert_eq!(e.user.as_deref(), Some("app"));
        assert_eq!(e.password.as_deref(), Some("p@ss"));
        assert_eq!((e.host.as_str(), e.port), ("db.example", 6543));
        assert_eq!(e.path.as_deref(), Some("main"));
        assert_eq!(
            e.url_with_path(Some("t1")),
            "postgresql://app:p%40ss@db.example:6543/t1?sslmode=off",
            "the query is given on"
        );
        let redis = Endpoint::parse("redis://:s3cret@127.0.0.1:6390/2", 6379).expect("a valid URL");
        assert_eq!((redis.user.as_deref(), redis.password.as_deref()), (None, Some("s3cret")));
        assert_eq!(redis.url(), "redis://:s3cret@127.0.0.1:6390/2", "a password without a user");
        let v6 = Endpoint::parse("redis://[::1]", 6379).expect("a valid URL");
        assert_eq!((v6.host.as_str(), v6.port, v6.user.clone()), ("::1", 6379, None));
        assert_eq!(v6.url(), "redis://[::1]:6379/");
    }

    #[test]
    fn a_host_names_a_file_in_its_directory_only() {
        // A `/` ends the host, and escapes in it are not decoded: what is left is odd
        // characters, made plain.
        let e = Endpoint::parse("redis://..%2F..%2Fetc", 1).expect("a URL");
        assert_eq!(e.file_key(), "___2F___2Fetc");
        assert!(!Endpoint::parse("redis://a/../../x", 1).expect("a URL").file_key().contains('/'));
        let v6 = Endpoint::parse("redis://[::1]:1", 1).expect("a URL");
        assert_eq!(v6.file_key(), "::1");
    }

    #[test]
    fn a_bad_url_says_what_is_wrong() {
        for (url, why) in [
            ("localhost:5432", "scheme"),
            ("postgresql://:5432", "no host"),
            ("postgresql://h:99999", "bad port"),
            ("postgresql://u%zz@h", "escape"),
        ] {
            let err = Endpoint::parse(url, 1).expect_err(url);
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
