//! Checking the rules that involve several keys (or a key and the item), one function each.
//! A rule looks at what `def` has read so far ([`Draft`]) and records what is wrong;
//! `def::check` says when each one runs.

use quote::quote;

use crate::ast::SharedStatic;
use crate::command::Cmd;
use crate::draft::{Anchor, Draft};
use crate::errors::Errors;
use crate::keys::{ARGS, CMD, KEYS, LOAD, OWNED, READY, SERVICE, UNIX};
use crate::readiness::Readiness;
use crate::values::{Port, Typed};

/// Two readiness kinds are a mistake unless `ready` says how they combine: someone who
/// writes `tcp = 5432, unix = "..."` may well mean one of them only.
pub(crate) fn readiness_needs_ready_mode(d: &Draft<'_>, errors: &mut Errors) {
    if d.given.has(READY) {
        return;
    }
    if let [(first, ..), (second, arg, _), ..] = d.checks.as_slice() {
        errors.spanned(
            arg.key.clone(),
            format!(
                "two readiness kinds, `{}` and `{}`; keep one, or say how they combine: \
                 `ready = all` (every check must pass) or `ready = any` (the first to pass)",
                first.name, second.name,
            ),
        );
    }
}

/// `ready` with fewer than two checks says nothing.
pub(crate) fn ready_needs_two_checks(d: &Draft<'_>, errors: &mut Errors) {
    if let Some((_, span)) = d.ready {
        if d.checks.len() < 2 && d.checks_ok {
            errors.at(
                span,
                "`ready` says how several readiness checks combine, and this fixture has \
                 fewer than two; remove it",
            );
        }
    }
}

/// One port per fixture: every check on a port waits on the same one.
pub(crate) fn one_port(d: &Draft<'_>, errors: &mut Errors) {
    let Some((first_key, first)) = d.first_port() else { return };
    for (key, arg, check) in &d.checks {
        match check.port() {
            Some(port) if !port.same(first) => errors.spanned(
                arg.value.tokens(),
                format!(
                    "`{} = {}` and `{} = {}` differ, and a fixture has one port; write the same \
                     port for every check (`auto` everywhere, or the same number)",
                    first_key.name,
                    first.written(),
                    key.name,
                    port.written()
                ),
            ),
            _ => {}
        }
    }
}

/// `tcp = discover` learns the port once the service listens: a check that needs the port
/// before cannot have it.
pub(crate) fn discover_has_no_port(d: &Draft<'_>, errors: &mut Errors) {
    if let (Some(span), Some((key, _))) = (d.discover(), d.first_port()) {
        errors.at(
            span,
            format!(
                "`tcp = discover` finds the port once the service listens, but `{}` needs the \
                 port before the start; give the port (`auto` or a number) and drop `discover`",
                key.name
            ),
        );
    }
}

/// The keys that refine a check (`path`, `status`, `exec_output`, `file_line`, ...) mean
/// nothing without it; the table says which check each one needs.
pub(crate) fn refinements_need_their_check(d: &Draft<'_>, errors: &mut Errors) {
    for key in KEYS {
        let (Some((check, how)), Some(arg)) = (key.needs.check(), d.given.get(key.name)) else {
            continue;
        };
        if !d.given.has(check) {
            errors.spanned(&arg.key, format!("`{}` only applies to {how}", key.name));
        }
    }
}

/// `owned = true` checks who listens on the fixture's port: it needs one, and `discover`
/// only ever finds the service's own.
pub(crate) fn owned_needs_a_port(d: &Draft<'_>, errors: &mut Errors) {
    let Some(Typed::Flag(owned)) = d.option(OWNED).filter(|v| v.is_true()) else { return };
    if d.discover().is_some() {
        errors.spanned(
            owned,
            "`tcp = discover` only ever finds the service's own listeners; remove `owned`",
        );
    } else if d.first_port().is_none() && d.checks_ok {
        errors.spanned(
            owned,
            "`owned` checks who listens on the fixture's port, and it has none; add \
             `tcp = auto` (or `http`, `redis`, `postgres`)",
        );
    }
}

/// A fixture runs a command: `cmd` or `args` (given both, the second is reported as the
/// keys are sorted).
pub(crate) fn one_command(d: &Draft<'_>, anchor: &Anchor<'_>, errors: &mut Errors) {
    if !d.given.has(CMD) && !d.given.has(ARGS) && !d.given.has(SERVICE) {
        errors.push(anchor.error(
            "missing command: add `cmd = \"program --flag\"` (a command line) or \
             `args = [\"program\", \"--flag\"]` (a list of arguments), or use a ready-made \
             server: `service = postgres`",
        ));
    }
}

/// A schema is loaded into the databases of a database preset only.
pub(crate) fn load_needs_a_database_service(d: &Draft<'_>, errors: &mut Errors) {
    // Without `service`, `refinements_need_their_check` says what is missing.
    let (Some(load), Some(Cmd::Service(service))) = (d.given.get(LOAD), &d.cmd) else { return };
    if service != "postgres" && service != "mariadb" {
        errors.spanned(
            &load.key,
            format!(
                "`load` fills the databases of a ready-made database server, and `{service}` has \
                 none to fill; use `service = postgres` (or `mariadb`)"
            ),
        );
    }
}

/// A port chosen at start that the service is never told about cannot be listened on.
pub(crate) fn auto_port_must_reach_service(d: &Draft<'_>, errors: &mut Errors) {
    let (Some(words), Some((_, Port::Auto(span)))) = (d.service_words(), d.first_port()) else {
        return;
    };
    if !words.iter().any(|w| w.contains("{port}")) {
        errors.at(
            span,
            "`auto` picks a free port at start, but the command never mentions `{port}`; pass \
             it to the service (`--port {port}`, or in `env`), or write the port it listens on",
        );
    }
}

/// Nor can a socket made for the fixture that the service is never told about.
pub(crate) fn auto_socket_must_reach_service(d: &Draft<'_>, errors: &mut Errors) {
    let Some(words) = d.service_words() else { return };
    let auto = d.checks.iter().any(|(_, _, check)| matches!(check, Readiness::Unix(None)));
    if auto && !words.iter().any(|w| w.contains("{socket}")) {
        if let Some(arg) = d.given.get(UNIX) {
            errors.spanned(
                arg.value.tokens(),
                "`unix = auto` waits for the socket at `{socket}`, but the command never \
                 mentions `{socket}`; pass it to the service, or write the socket's path",
            );
        }
    }
}

/// A shared fixture's `static` is one fixture: stacking more attributes on it is a slip.
pub(crate) fn static_holds_one_fixture(s: &SharedStatic, errors: &mut Errors) {
    for attr in &s.stacked {
        errors.spanned(
            attr,
            "a shared fixture's `static` holds one fixture; declare one `static` per fixture",
        );
    }
}

pub(crate) fn static_is_not_mut(s: &SharedStatic, errors: &mut Errors) {
    if let Some(token) = &s.mutability {
        errors.spanned(
            token,
            "a shared fixture cannot be `static mut`; remove `mut`: it is shared safely without it",
        );
    }
}

/// The attribute writes the initializer.
pub(crate) fn static_has_no_initializer(s: &SharedStatic, errors: &mut Errors) {
    if let Some((eq, expr)) = &s.init {
        errors.spanned(
            quote!(#eq #expr),
            "a shared fixture's `static` has no initializer: #[mirakuru::fixture(...)] writes it; remove `= ...`",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{error, ok, setter};
    use quote::quote;

    #[test]
    fn several_readiness_checks_combine_in_the_order_written() {
        let def = ok(quote!(
            cmd = "redis-server --port {port} --supervised systemd",
            ready = all,
            notify = true,
            redis = auto,
            tcp = auto
        ));
        assert!(matches!(
            def.readiness.as_slice(),
            [Readiness::Notify(_), Readiness::Redis(Port::Auto(_)), Readiness::Tcp(Port::Auto(_))]
        ));
        assert!(!def.ready_any);
        let def = ok(quote!(cmd = "s {port}", ready = any, http = auto, tcp = auto));
        assert!(def.ready_any);
        assert!(error(quote!(cmd = "s {port}", tcp = auto, ready = any))
            .starts_with("`ready` says how several readiness checks combine"));
        assert!(error(quote!(cmd = "s {port}", tcp = auto, output = "x"))
            .starts_with("two readiness kinds, `tcp` and `output`"));
        assert!(error(quote!(cmd = "s", notify = true, output = "x", ready = "any"))
            .starts_with("write `ready = any` without quotes"));
        assert!(error(quote!(cmd = "s", notify = true, output = "x", ready = first))
            .starts_with("`ready` is `all`"));
    }

    #[test]
    fn a_fixture_has_one_port() {
        assert_eq!(
            error(quote!(cmd = "x {port}", ready = all, tcp = auto, http = 8080)),
            "`tcp = auto` and `http = 8080` differ, and a fixture has one port; write the same port for every check (`auto` everywhere, or the same number)"
        );
        assert!(error(quote!(cmd = "x", ready = all, tcp = 1, redis = 2))
            .contains("`tcp = 1` and `redis = 2` differ"));
        ok(quote!(cmd = "x", ready = all, tcp = 6379, redis = 6379));
        ok(quote!(cmd = "x {port}", ready = all, postgres = auto, tcp = auto, owned = true));
    }

    #[test]
    fn discovery_and_ownership_are_checked() {
        assert!(matches!(
            ok(quote!(cmd = "server --port 0", tcp = discover)).readiness.as_slice(),
            [Readiness::Discover(_)]
        ));
        assert!(error(quote!(cmd = "server --port {port}", tcp = discover))
            .starts_with("`{port}` is not known before the start with `tcp = discover`"));
        assert!(error(quote!(cmd = "server --port 0", tcp = discover, owned = true))
            .starts_with("`tcp = discover` only ever finds the service's own listeners"));
        assert!(error(quote!(cmd = "server", output = "x", owned = true))
            .starts_with("`owned` checks who listens on the fixture's port"));
        assert!(error(quote!(cmd = "x", tcp = 0)).contains("or `tcp = discover`"));
        assert!(error(quote!(cmd = "x", tcp = "discover"))
            .starts_with("write `tcp = discover` without quotes"));
        assert!(setter(&ok(quote!(cmd = "x --port {port}", tcp = auto, owned = true)), "owned")
            .is_some_and(Typed::is_true));
    }

    #[test]
    fn an_automatic_port_must_reach_the_service() {
        assert!(error(quote!(cmd = "redis-server", tcp = auto)).starts_with(
            "`auto` picks a free port at start, but the command never mentions `{port}`"
        ));
        ok(quote!(cmd = "server", env = ["PORT={port}"], http = auto));
        assert!(error(quote!(cmd = "server", unix = auto))
            .starts_with("`unix = auto` waits for the socket at `{socket}`"));
        ok(quote!(args = ["server", "--socket", "{socket}"], unix = auto));
    }

    #[test]
    fn http_keys_need_http() {
        assert_eq!(
            error(quote!(cmd = "x", status = 200)),
            "`status` only applies to an HTTP check; add `http = auto` or `http = <port>`"
        );
        assert!(error(quote!(cmd = "x {port}", tcp = auto, path = "/"))
            .starts_with("`path` only applies to an HTTP check"));
        assert!(error(quote!(cmd = "x {port}", http = auto, path = "/", url = "http://x"))
            .starts_with("`path` and `url` both say where"));
        assert!(error(quote!(cmd = "x {port}", http = auto, url = "https://{host}:{port}/"))
            .contains("plain HTTP"));
        assert!(error(quote!(cmd = "x {port}", http = auto, method = "G T"))
            .starts_with("\"G T\" is not an HTTP method"));
    }
}
