//! Ready when an HTTP request is answered with an expected status. Plain HTTP/1.1 over TCP,
//! without a client library: one request per attempt, every attempt bounded by a timeout
//! (mirakuru #1175: a hung endpoint hung the executor for hours), the query string and
//! `;params` sent (mirakuru #1174), the fragment dropped.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use regex::Regex;

use super::listeners::{Confirmed, Owner};
use super::tcp::Tcp;
use super::{Backoff, Check, Context, Setup, Status};
use crate::error::Error;

/// The default status pattern: any 2xx, as in Python mirakuru.
const DEFAULT_STATUS: &str = r"^2\d\d$";

/// The default limit of one request: mirakuru 3.0.4 had none before #1175; 5 s leaves room for
/// health endpoints that wait themselves (Elasticsearch's `wait_for_status`).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The statuses that count as ready: one code, or a regular expression over the three digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusPattern {
    /// Exactly this code.
    Code(u16),
    /// A regular expression that must match the whole status code (`"2\d\d"`, `"200|401"`).
    /// Python mirakuru matched only a prefix, so `"20"` also accepted `204`.
    Regex(String),
}

impl From<u16> for StatusPattern {
    fn from(code: u16) -> Self {
        StatusPattern::Code(code)
    }
}

impl From<&str> for StatusPattern {
    fn from(pattern: &str) -> Self {
        StatusPattern::Regex(pattern.to_string())
    }
}

impl From<String> for StatusPattern {
    fn from(pattern: String) -> Self {
        StatusPattern::Regex(pattern)
    }
}

/// An `http://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// What goes on the request line: path with `;params`, then `?query`; never the fragment.
    pub(crate) target: String,
    /// The `Host` header.
    pub(crate) authority: String,
}

impl Url {
    pub(crate) fn parse(url: &str) -> Result<Url, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("{url:?} is not a URL; write it as http://host:port/path"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "{url:?} is an https URL, and the HTTP check speaks plain HTTP only; use an \
                     http:// URL, or wait for the port with a TCP check"
                ))
            }
            other => {
                return Err(format!(
                    "{url:?} has the scheme {other:?}; only http:// URLs can be checked"
                ))
            }
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, remainder) = rest.split_at(end);
        if authority.contains('@') {
            return Err(format!(
                "{url:?} holds credentials; they are not sent from the URL: pass an \
                 Authorization header instead"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| {
                format!("{url:?} has an unclosed IPv6 address; write http://[::1]:8080/")
            })?;
            match after {
                "" => (host, None),
                p if p.starts_with(':') => (host, Some(&p[1..])),
                _ => return Err(format!("{url:?} has text after its IPv6 address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host; write it as http://host:port/path"));
        }
        let port = match port {
            None | Some("") => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(format!(
                        "{url:?} has the port {p:?}; give a port between 1 and 65535"
                    ))
                }
                Ok(port) => port,
            },
        };
        let without_fragment = remainder.split('#').next().unwrap_or("");
        let target = if without_fragment.starts_with('/') {
            without_fragment.to_string()
        } else {
            format!("/{without_fragment}")
        };
        if let Some(c) = target.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{url:?} contains {c:?}; percent-encode it (a space is %20)"));
        }
        Ok(Url { host: host.to_string(), port, target, authority: authority.to_string() })
    }
}

/// Ready when a request to a URL gets an expected status (default: any 2xx to `HEAD`).
#[derive(Debug, Clone)]
pub struct Http {
    url: String,
    method: String,
    status: StatusPattern,
    headers: Vec<(String, String)>,
    payload: Option<Vec<(String, String)>>,
    request_timeout: Duration,
    parsed: Option<Url>,
    addrs: Vec<SocketAddr>,
    status_regex: Option<Regex>,
    request: Vec<u8>,
    owner: Owner,
    backoff: Backoff,
    last: Option<String>,
}

impl Http {
    /// Waits for `url` (`http://host[:port]/path[;params][?query]`; port 80 by default).
    pub fn new(url: impl Into<String>) -> Http {
        Http {
            url: url.into(),
            method: "HEAD".into(),
            status: StatusPattern::Regex(DEFAULT_STATUS.into()),
            headers: Vec::new(),
            payload: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            parsed: None,
            addrs: Vec::new(),
            status_regex: None,
            request: Vec::new(),
            owner: Owner::default(),
            backoff: Backoff::new(),
            last: None,
        }
    }

    /// The URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request method. Default: `HEAD`.
    pub fn with_method(mut self, method: impl Into<String>) -> Http {
        self.method = method.into();
        self
    }

    /// The status that counts as ready (see [`HttpExecutor::status`](crate::HttpExecutor::status)).
    pub fn with_status(mut self, status: impl Into<StatusPattern>) -> Http {
        self.status = status.into();
        self
    }

    /// Counts only an answer from a listener of the service's own process tree (see
    /// [`Tcp::owned`](super::Tcp::owned)). Linux only.
    pub fn owned(mut self) -> Http {
        self.owner.required = true;
        self
    }

    pub(crate) fn fail_when_taken(mut self) -> Http {
        self.owner.fail_when_taken = true;
        self
    }

    /// Adds a request header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Http {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A form body (`application/x-www-form-urlencoded`), as Python mirakuru's `payload`.
    pub fn with_payload<K: Into<String>, V: Into<String>>(
        mut self,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Http {
        self.set_payload(fields.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// How long one request may take before it counts as a failed attempt. Default: 5 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Http {
        self.request_timeout = timeout;
        self
    }

    pub(crate) fn set_method(&mut self, method: String) {
        self.method = method;
    }

    pub(crate) fn set_status(&mut self, status: StatusPattern) {
        self.status = status;
    }

    pub(crate) fn add_header(&mut self, name: String, value: String) {
        self.headers.push((name, value));
    }

    pub(crate) fn set_payload(&mut self, fields: Vec<(String, String)>) {
        self.payload = Some(fields);
    }

    pub(crate) fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// The host of the URL, if it is valid.
    pub(crate) fn url_host(&self) -> Option<String> {
        Url::parse(&self.url).ok().map(|u| u.host)
    }

    fn build_request(&self, url: &Url) -> Vec<u8> {
        let body = self.payload.as_ref().map(|pairs| form_encode(pairs));
        let has = |name: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, url.target);
        if !has("host") {
            head.push_str(&format!("Host: {}\r\n", url.authority));
        }
        if !has("user-agent") {
            head.push_str("User-Agent: mirakuru\r\n");
        }
        head.push_str("Connection: close\r\n");
        if let Some(body) = &body {
            if !has("content-type") {
                head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            }
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        if let Some(body) = body {
            request.extend_from_slice(body.as_bytes());
        }
        request
    }

    fn status_ok(&self, code: u16) -> bool {
        match (&self.status, &self.status_regex) {
            (StatusPattern::Code(expected), _) => code == *expected,
            (StatusPattern::Regex(_), Some(re)) => re.is_match(&code.to_string()),
            (StatusPattern::Regex(_), None) => false,
        }
    }

    /// One request: `Ok(status)` or why there was no usable answer. The whole attempt —
    /// connect, request, every read of the answer — fits in `timeout`: a server that trickles
    /// its answer a byte at a time cannot make one attempt last longer.
    fn attempt(&self, timeout: Duration) -> Result<u16, String> {
        let timeout = timeout.max(Duration::from_millis(1));
        let deadline = Instant::now() + timeout;
        let too_slow = || format!("no complete response within {} ms", timeout.as_millis());
        let left = || deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
        let mut stream = Tcp::connect(&self.addrs, timeout)?;
        let _ = stream.set_write_timeout(Some(left().ok_or_else(too_slow)?));
        stream.write_all(&self.request).map_err(|e| format!("sending the request failed: {e}"))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let _ = stream.set_read_timeout(Some(left().ok_or_else(too_slow)?));
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(too_slow());
                }
                Err(e) => return Err(format!("reading the response failed: {e}")),
            };
            if n == 0 {
                return Err(if buf.is_empty() {
                    "the connection was closed without a response".into()
                } else {
                    "the connection was closed before the response headers were complete".into()
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(outcome) = parse_status(&buf) {
                return outcome;
            }
        }
    }
}

/// The status of a response once its headers are complete; `None` while more is needed.
fn parse_status(buf: &[u8]) -> Option<Result<u16, String>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            Some(response.code.ok_or_else(|| "the response has no status".into()))
        }
        Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => None,
        Ok(httparse::Status::Partial) => Some(Err("the response headers exceed 64 KiB".into())),
        // Too many headers still tells the status; anything else is not HTTP.
        Err(httparse::Error::TooManyHeaders) => {
            Some(response.code.ok_or_else(|| "the response has no status".into()))
        }
        Err(e) => {
            let start = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
            Some(Err(format!("the answer is not HTTP ({e}): {start:?}")))
        }
    }
}

/// `application/x-www-form-urlencoded`, as Python's `urlencode` (mirakuru's `payload`).
fn form_encode(pairs: &[(String, String)]) -> String {
    fn encode(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(k, &mut out);
        out.push('=');
        encode(v, &mut out);
    }
    out
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Check for Http {
    fn describe(&self) -> String {
        let status = match &self.status {
            StatusPattern::Code(code) => format!("status {code}"),
            StatusPattern::Regex(re) => format!("a status matching {re:?}"),
        };
        format!("{} {} to answer with {status}", self.method, self.url)
    }

    fn prepare(&mut self, _setup: &mut Setup<'_>) -> Result<(), String> {
        let url = Url::parse(&self.url)?;
        if !is_token(&self.method) {
            return Err(format!(
                "{:?} is not an HTTP method; use one such as HEAD, GET or POST",
                self.method
            ));
        }
        for (name, value) in &self.headers {
            if !is_token(name) {
                return Err(format!("{name:?} is not a valid HTTP header name"));
            }
            if value.contains(['\r', '\n']) {
                return Err(format!("the value of header {name:?} contains a line break"));
            }
        }
        self.status_regex = match &self.status {
            StatusPattern::Code(code) if !(100..=999).contains(code) => {
                return Err(format!(
                    "{code} is not an HTTP status; give a code between 100 and 999"
                ))
            }
            StatusPattern::Code(_) => None,
            StatusPattern::Regex(pattern) => {
                Some(Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                    format!(
                        "the status pattern {pattern:?} is not a valid regular expression ({})",
                        e.to_string().lines().last().unwrap_or("syntax error").trim()
                    )
                })?)
            }
        };
        self.addrs = Tcp::resolve(&url.host, url.port)?;
        self.request = self.build_request(&url);
        self.parsed = Some(url);
        self.owner.prepare()?;
        self.backoff = Backoff::new();
        self.last = None;
        Ok(())
    }

    /// Like Python mirakuru: something accepting TCP connections on the URL's port.
    fn already_running(&mut self, _setup: &Setup<'_>) -> Result<Option<String>, Error> {
        let Some(url) = &self.parsed else { return Ok(None) };
        Ok(Tcp::connect(&self.addrs, Duration::from_millis(500))
            .ok()
            .map(|_| format!("{}:{} accepts connections", url.host, url.port)))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Status {
        match self.attempt(cx.remaining().min(self.request_timeout)) {
            Ok(code) if self.status_ok(code) => {
                let port = self.parsed.as_ref().map_or(0, |u| u.port);
                match self.owner.confirm(cx, port) {
                    Confirmed::Yes => return Status::Ready,
                    Confirmed::Taken(why) => return Status::Failed(why),
                    Confirmed::NotYet(why) => {
                        self.last = Some(format!("HTTP {code}, but {why}"));
                        cx.poll_again_in(self.backoff.next_delay());
                    }
                }
            }
            Ok(code) => {
                self.last = Some(format!("HTTP {code}"));
                // It answers, just not yet as wished: no need to ask a thousand times a second.
                cx.poll_again_in(self.backoff.next_delay().max(Duration::from_millis(5)));
            }
            Err(e) => {
                self.last = Some(e);
                cx.poll_again_in(self.backoff.next_delay());
            }
        }
        Status::NotYet
    }

    fn last_attempt(&self) -> Option<String> {
        self.last.clone()
    }

    fn port(&self) -> Option<u16> {
        Url::parse(&self.url).ok().map(|u| u.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn urls_are_taken_apart() {
        let u = url("http://127.0.0.1:8080/health;v=1?wait_for_status=yellow&timeout=1s#frag");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.target, "/health;v=1?wait_for_status=yellow&timeout=1s");
        assert_eq!(url("http://localhost").port, 80);
        assert_eq!(url("http://localhost").target, "/");
        assert_eq!(url("http://h:81?x=1").target, "/?x=1");
        let v6 = url("http://[::1]:9000/x");
        assert_eq!((v6.host.as_str(), v6.port, v6.authority.as_str()), ("::1", 9000, "[::1]:9000"));
        assert_eq!(url("HTTP://h/").host, "h");
    }

    #[test]
    fn bad_urls_are_explained() {
        for (bad, says) in [
            ("https://localhost/", "plain HTTP"),
            ("localhost:80", "not a URL"),
            ("http:///path", "no host"),
            ("http://h:0/", "between 1 and 65535"),
            ("http://h:99999/", "between 1 and 65535"),
            ("http://h:x/", "between 1 and 65535"),
            ("ftp://h/", "only http://"),
            ("http://u:p@h/", "credentials"),
            ("http://h/a b", "percent-encode"),
            ("http://[::1/", "unclosed"),
        ] {
            let err = Url::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn status_patterns_match_whole_codes() {
        let mut check = Http::new("http://127.0.0.1:1/");
        check.status = StatusPattern::Regex("20".into());
        check.status_regex = Some(Regex::new("^(?:20)$").expect("valid"));
        assert!(!check.status_ok(204), "mirakuru's prefix match accepted 204 for \"20\"");
        check.status = StatusPattern::Regex(DEFAULT_STATUS.into());
        check.status_regex = Some(Regex::new(&format!("^(?:{DEFAULT_STATUS})$")).expect("valid"));
        assert!(check.status_ok(200) && check.status_ok(299) && !check.status_ok(301));
        check.status = StatusPattern::Code(401);
        assert!(check.status_ok(401) && !check.status_ok(200));
    }

    #[test]
    fn request_carries_method_target_headers_and_form_body() {
        let mut check = Http::new("http://example.test:8080/p;x?q=1#f");
        check.method = "POST".into();
        check.headers.push(("X-Token".into(), "abc".into()));
        check.payload = Some(vec![("a b".into(), "c&d".into())]);
        let request = String::from_utf8(check.build_request(&url(&check.url))).expect("utf8");
        assert!(
            request.starts_with("POST /p;x?q=1 HTTP/1.1\r\nHost: example.test:8080\r\n"),
            "{request}"
        );
        assert!(request.contains("X-Token: abc\r\n"));
        assert!(request.contains("Content-Type: application/x-www-form-urlencoded\r\n"));
        assert!(
            request.ends_with("Content-Length: 9\r\nX-Token: abc\r\n\r\na+b=c%26d"),
            "{request}"
        );
    }
}
