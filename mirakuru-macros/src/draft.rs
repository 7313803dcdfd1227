//! What has been read of one fixture attribute while it is checked ([`Draft`]): its
//! arguments sorted by key, its checks, command, options and name, each read by a step of its
//! own; `def::check` says in which order, and the rules of `valid` look at it in between.
//! [`Anchor`]: where an error about the attribute as a whole goes.

use proc_macro2::Span;
use syn::{Attribute, Ident, LitStr};

use crate::args::{Arg, Value};
use crate::command::{self, Cmd};
use crate::errors::Errors;
use crate::keys::{
    self, Given, Key, Needs, Role, ARGS, CMD, ENV, HTTP, NAME, PATH, READY, SCOPE, SERVICE, SHELL,
    URL,
};
use crate::placeholders::{self, PortUse};
use crate::readiness::{self, HttpTarget, Readiness};
use crate::values::{self, string, Port, Typed};

/// Where an error about the attribute as a whole (a missing command) goes: the attribute
/// being expanded (the call site), or a stacked one.
pub(crate) enum Anchor<'a> {
    CallSite,
    Attr(&'a Attribute),
}

impl Anchor<'_> {
    pub(crate) fn error(&self, message: &str) -> syn::Error {
        match self {
            Anchor::CallSite => syn::Error::new(Span::call_site(), message),
            Anchor::Attr(attr) => syn::Error::new_spanned(attr, message),
        }
    }
}

/// One attribute while it is checked: its arguments sorted by key, and what has been read
/// from them so far.
pub(crate) struct Draft<'a> {
    pub(crate) given: Given<'a>,
    /// The readiness checks read, in the order written.
    pub(crate) checks: Vec<(&'static Key, &'a Arg, Readiness)>,
    /// Whether every readiness check could be read: when not, nothing that depends on them
    /// (the port, above all) is known.
    pub(crate) checks_ok: bool,
    /// `ready = any` (or `all`), and where it is written.
    pub(crate) ready: Option<(bool, Span)>,
    /// The plain options read so far, each once; `None` for a value with errors.
    pub(crate) options: Vec<(&'static Key, Option<Typed>)>,
    pub(crate) cmd: Option<Cmd>,
    pub(crate) name: Option<Ident>,
    /// `scope = run`, and the key's span; `None` for the default scope.
    pub(crate) run_scope: Option<Span>,
}

impl<'a> Draft<'a> {
    pub(crate) fn new(given: Given<'a>) -> Draft<'a> {
        Draft {
            given,
            checks: Vec::new(),
            checks_ok: true,
            ready: None,
            options: Vec::new(),
            cmd: None,
            name: None,
            run_scope: None,
        }
    }

    /// Reads the plain options that `which` picks and that are not read yet, in the order of
    /// their setters.
    pub(crate) fn read_options(&mut self, which: impl Fn(&Key) -> bool, errors: &mut Errors) {
        let port_use = self.port_use();
        for (key, opt) in keys::options() {
            let done = self.options.iter().any(|(k, _)| k.name == key.name);
            let Some(arg) = self.given.valid(key.name).filter(|_| which(key) && !done) else {
                continue;
            };
            // Like `path` and `url`, the HTTP check's options are read into it only when
            // there is one; without, `refinements_need_their_check` said what is missing.
            if key.needs == Needs::Http && !self.has_check(HTTP) {
                continue;
            }
            let value = errors.take(values::read(opt.kind, arg, opt.example));
            if let (Some(value), true) = (&value, opt.placeholders) {
                for lit in value.strings() {
                    placeholders::check(&lit, key.name, port_use, errors);
                }
            }
            self.options.push((key, value));
        }
    }

    pub(crate) fn read_checks(&mut self, errors: &mut Errors) {
        for (key, arg) in self.given.iter() {
            let Role::Check(read) = key.role else { continue };
            let check = match arg.value {
                Value::Invalid => None,
                _ => errors.take(read(arg)),
            };
            match check {
                Some(check) => self.checks.push((key, arg, check)),
                None => self.checks_ok = false,
            }
        }
    }

    /// Reads where the HTTP check goes, and checks the placeholders of every check's
    /// strings, check by check.
    pub(crate) fn read_check_strings(&mut self, errors: &mut Errors) {
        let port_use = self.port_use();
        for (key, _, check) in &mut self.checks {
            if let Readiness::Http(port, _) = check {
                *check = Readiness::Http(*port, http_target(&self.given, port_use, errors));
            }
            placeholders::in_check(key.name, check, port_use, errors);
        }
    }

    pub(crate) fn read_ready(&mut self, errors: &mut Errors) {
        self.ready = self.given.valid(READY).and_then(|a| errors.take(readiness::ready_mode(a)));
    }

    pub(crate) fn read_command(&mut self, errors: &mut Errors) {
        let shell = self.is_true(SHELL);
        self.cmd = match (self.given.valid(SERVICE), self.given.valid(CMD), self.given.valid(ARGS))
        {
            (Some(a), ..) => errors.take(values::service(a)).map(Cmd::Service),
            (None, Some(a), _) => errors.take(command::command_line(a, shell)),
            (None, None, Some(a)) => errors.take(command::arg_list(a)),
            (None, None, None) => None,
        };
        if let Some(cmd) = &self.cmd {
            let key = match cmd {
                Cmd::Line(_) => CMD,
                Cmd::Args(_) => ARGS,
                Cmd::Service(_) => SERVICE,
            };
            placeholders::in_command(key, cmd, self.port_use(), errors);
        }
    }

    pub(crate) fn read_name(&mut self, errors: &mut Errors) {
        self.name = self.given.valid(NAME).and_then(|a| errors.take(values::name(a)));
    }

    pub(crate) fn read_scope(&mut self, errors: &mut Errors) {
        let arg = self.given.valid(SCOPE);
        let run = arg.and_then(|a| errors.take(values::scope(a))).unwrap_or(false);
        self.run_scope = arg.filter(|_| run).map(|a| a.key.span());
    }

    pub(crate) fn has_check(&self, name: &str) -> bool {
        self.checks.iter().any(|(key, ..)| key.name == name)
    }

    /// The first check on a port, and its key: the port of every check on one.
    pub(crate) fn first_port(&self) -> Option<(&'static Key, Port)> {
        self.checks.iter().find_map(|(key, _, check)| check.port().map(|port| (*key, port)))
    }

    /// Where `tcp = discover` is written, if it is.
    pub(crate) fn discover(&self) -> Option<Span> {
        self.checks.iter().find_map(|(_, _, check)| match check {
            Readiness::Discover(span) => Some(*span),
            _ => None,
        })
    }

    /// What `{port}` stands for, as far as the checks tell.
    pub(crate) fn port_use(&self) -> PortUse {
        match (self.checks_ok, self.first_port(), self.discover()) {
            (false, ..) => PortUse::Unknown,
            (true, Some((_, Port::Auto(_))), _) => PortUse::Auto,
            (true, Some((_, Port::Fixed(p, _))), _) => PortUse::Fixed(p),
            (true, None, Some(_)) => PortUse::Discover,
            // Every preset waits on a port it chooses at start.
            (true, None, None) if self.given.has(SERVICE) => PortUse::Auto,
            (true, None, None) => PortUse::None,
        }
    }

    /// The value of the plain option `name`, if it is read and valid.
    pub(crate) fn option(&self, name: &str) -> Option<&Typed> {
        self.options.iter().find(|(key, _)| key.name == name).and_then(|(_, v)| v.as_ref())
    }

    pub(crate) fn is_true(&self, name: &str) -> bool {
        self.option(name).is_some_and(Typed::is_true)
    }

    /// The words the service is told, in its command and its environment; `None` without a
    /// command, or when an expression in it may say anything.
    pub(crate) fn service_words(&self) -> Option<Vec<String>> {
        let cmd = self.cmd.as_ref()?;
        if let Cmd::Service(_) = cmd {
            // A preset is told its port and directory by its own command.
            return None;
        }
        let texts = cmd.texts();
        let mut words: Vec<String> = texts.iter().map(|t| t.value()).collect::<Option<_>>()?;
        if let Some(Typed::Env(vars)) = self.option(ENV) {
            words.extend(vars.iter().map(|v| v.value.clone()));
        }
        Some(words)
    }
}

/// Where the HTTP check goes: `path`, `url`, or `/`.
fn http_target(given: &Given<'_>, port_use: PortUse, errors: &mut Errors) -> HttpTarget {
    if let Some(a) = given.valid(PATH) {
        if let Some(path) = errors.take(string(a, "\"/health\"")) {
            placeholders::check(&path, PATH, port_use, errors);
            return HttpTarget::Path(path);
        }
    } else if let Some(a) = given.valid(URL) {
        if let Some(url) = errors.take(string(a, "\"http://{host}:{port}/health\"")) {
            errors.take(plain_http(&url));
            placeholders::check(&url, URL, port_use, errors);
            return HttpTarget::Url(url);
        }
    }
    HttpTarget::Root
}

/// The HTTP check speaks plain HTTP: an `https://` URL would never answer it.
fn plain_http(url: &LitStr) -> syn::Result<()> {
    let lower = url.value().to_ascii_lowercase();
    if lower.starts_with("http://") {
        return Ok(());
    }
    let why = if lower.starts_with("https://") {
        "the HTTP check speaks plain HTTP"
    } else {
        "it must start with `http://`"
    };
    Err(syn::Error::new_spanned(
        url,
        format!(
            "`url` is not an http:// URL: {why}; write it as `\"http://{{host}}:{{port}}/path\"`"
        ),
    ))
}
