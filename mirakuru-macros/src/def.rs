//! Checking one fixture attribute, into a [`Def`]: the order in which its keys are sorted,
//! its values typed and the rules applied (which is also the order of its errors). What has
//! been read so far is a [`Draft`] (`draft.rs`), which the rules of `valid` look at.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::{Attribute, Ident};

use crate::args::{self, Arg};
use crate::ast::SharedStatic;
use crate::command::{self, Cmd};
use crate::draft::{Anchor, Draft};
use crate::errors::Errors;
use crate::keys::{self, Given, Needs, ENV, OWNED, SHELL};
use crate::readiness::Readiness;
use crate::valid;
use crate::values::Typed;

/// A fixture's description, checked: what `expand` needs.
pub(crate) struct Def {
    /// The name used in messages.
    pub(crate) name: String,
    /// `name = ident`, which parameters bind to.
    pub(crate) name_ident: Option<Ident>,
    pub(crate) cmd: Cmd,
    /// What the fixture waits for, in the order written; empty: only that it runs.
    pub(crate) readiness: Vec<Readiness>,
    /// `ready = any`: any of the checks, instead of all.
    pub(crate) ready_any: bool,
    /// The plain options given, in the order their setters are emitted.
    pub(crate) options: Vec<Setter>,
    /// `scope = run`: where the key is written.
    pub(crate) run_scope: Option<proc_macro2::Span>,
}

/// `.setter(value)`: a plain option, as it is passed to the runtime.
pub(crate) struct Setter {
    pub(crate) setter: &'static str,
    pub(crate) value: Typed,
}

/// Reads and checks the fixture attribute being expanded (`args`) and the ones stacked under
/// it, in source order; `None` for each that has errors (recorded in `errors`).
pub(crate) fn read_all(
    args: TokenStream,
    stacked: &[Attribute],
    default_name: Option<&str>,
    errors: &mut Errors,
) -> Vec<Option<Def>> {
    let mut defs = Vec::with_capacity(1 + stacked.len());
    let (ours, parse_errors) = args::args(args);
    errors.extend(parse_errors);
    defs.push(check(&ours, &Anchor::CallSite, default_name, errors));
    for attr in stacked {
        let def = errors.take(args::attr_args(attr)).and_then(|tokens| {
            let (args, parse_errors) = args::args(tokens);
            errors.extend(parse_errors);
            check(&args, &Anchor::Attr(attr), default_name, errors)
        });
        defs.push(def);
    }
    defs
}

/// The fixture of a shared static, named after the static unless `name` says otherwise.
pub(crate) fn for_static(args: TokenStream, s: &SharedStatic) -> syn::Result<Def> {
    let mut errors = Errors::default();
    let default_name = s.ident.unraw().to_string().to_lowercase();
    let def = read_all(args, &[], Some(&default_name), &mut errors).into_iter().next().flatten();
    valid::static_holds_one_fixture(s, &mut errors);
    valid::static_is_not_mut(s, &mut errors);
    valid::static_has_no_initializer(s, &mut errors);
    errors.finish_with(def)
}

/// Checks one fixture attribute's arguments, recording what is wrong in `all_errors`; the
/// fixture when nothing is. `default_name` names it in messages when it has no `name` (a
/// static's name); without either, the program's file name does.
///
/// Each step reads what the next ones depend on. The order is also the order of the errors,
/// which users see: it is kept as it has always been.
pub(crate) fn check(
    args: &[Arg],
    anchor: &Anchor<'_>,
    default_name: Option<&str>,
    all_errors: &mut Errors,
) -> Option<Def> {
    let mut errors = Errors::default();
    let e = &mut errors;
    let mut d = Draft::new(Given::sort(args, e));
    // How the command line is split depends on `shell`.
    d.read_options(|key| key.name == SHELL, e);
    // The checks come next: whether `{port}` means anything depends on them.
    d.read_checks(e);
    valid::readiness_needs_ready_mode(&d, e);
    valid::one_port(&d, e);
    valid::discover_has_no_port(&d, e);
    valid::refinements_need_their_check(&d, e);
    d.read_check_strings(e);
    d.read_ready(e);
    valid::ready_needs_two_checks(&d, e);
    d.read_options(|key| key.name == OWNED, e);
    valid::owned_needs_a_port(&d, e);
    // The options refining the `exec` and `file` checks.
    d.read_options(|key| key.needs < Needs::Nothing, e);
    d.read_command(e);
    valid::one_command(&d, anchor, e);
    valid::load_needs_a_database_service(&d, e);
    // What the service is told, which `auto` ports and sockets must be part of.
    d.read_options(|key| key.name == ENV, e);
    valid::auto_port_must_reach_service(&d, e);
    valid::auto_socket_must_reach_service(&d, e);
    d.read_options(|_| true, e);
    d.read_name(e);
    d.read_scope(e);
    let ok = errors.is_empty();
    all_errors.extend(errors);
    finish(d, ok, default_name)
}

/// The fixture, if it has a command, its checks could be read, and nothing was wrong
/// (`ok`): the errors of what it lacks are reported already.
fn finish(d: Draft<'_>, ok: bool, default_name: Option<&str>) -> Option<Def> {
    let shell = d.is_true(SHELL);
    let (Some(cmd), true, true) = (d.cmd, d.checks_ok, ok) else {
        return None;
    };
    let name = match (&d.name, default_name) {
        (Some(ident), _) => ident.unraw().to_string(),
        (None, Some(name)) => name.to_string(),
        (None, None) => command::program_name(&cmd, shell),
    };
    let mut read = d.options;
    let options = keys::options()
        .into_iter()
        .filter_map(|(key, opt)| {
            let at = read.iter().position(|(k, _)| k.name == key.name)?;
            let value = read.swap_remove(at).1?;
            Some(Setter { setter: opt.setter, value })
        })
        .collect();
    Some(Def {
        name,
        name_ident: d.name,
        cmd,
        readiness: d.checks.into_iter().map(|(_, _, check)| check).collect(),
        ready_any: d.ready.is_some_and(|(any, _)| any),
        options,
        run_scope: d.run_scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::HttpTarget;
    use crate::tests::{env, millis, ok, setter, signal};
    use crate::values::Port;
    use crate::values::Status;
    use quote::quote;

    #[test]
    fn accepts_a_full_http_fixture() {
        let def = ok(quote!(
            name = web,
            http = auto,
            path = "/health",
            method = "GET",
            status = "2\\d\\d",
            cmd = "python3 -m http.server {port} --bind {host}",
            timeout = "1.5s",
            stop_timeout = 5,
            env = ["A=1", "DIR={tmpdir}"],
            cwd = "{tmpdir}",
            shell = false,
            user = "nobody",
            stop_signal = INT,
            kill_signal = "SIGKILL",
            expected_returncode = -15,
            host = "::1",
        ));
        assert_eq!(def.name, "web");
        assert!(matches!(
            def.readiness.as_slice(),
            [Readiness::Http(Port::Auto(_), HttpTarget::Path(_))]
        ));
        assert_eq!(millis(&def, "timeout"), Some(1500));
        assert_eq!(millis(&def, "stop_timeout"), Some(5000));
        assert_eq!(env(&def), [("A", "1"), ("DIR", "{tmpdir}")]);
        assert_eq!(signal(&def, "stop_signal").as_deref(), Some("SIGINT"));
        assert_eq!(signal(&def, "kill_signal").as_deref(), Some("SIGKILL"));
        assert!(matches!(setter(&def, "expected_returncode"), Some(Typed::I32(-15, _))));
        assert!(matches!(setter(&def, "status"), Some(Typed::Status(Status::Pattern(_)))));
    }

    #[test]
    fn a_static_names_the_fixture_unless_name_is_given() {
        let name = |tokens| {
            let (args, _) = crate::args::args(tokens);
            check(&args, &Anchor::CallSite, Some("redis"), &mut Errors::default()).map(|d| d.name)
        };
        assert_eq!(name(quote!(cmd = "redis-server")).as_deref(), Some("redis"));
        assert_eq!(name(quote!(cmd = "redis-server", name = cache)).as_deref(), Some("cache"));
    }

    #[test]
    fn all_errors_of_an_attribute_are_reported_together() {
        let messages = crate::tests::check(quote!(tcp = 0, timeout = "soon", prot = 1))
            .err()
            .unwrap_or_default();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[0].starts_with("unknown `mirakuru::fixture` argument `prot`"));
        assert!(messages[1].starts_with("port 0 cannot be waited for"));
        assert!(messages[2].starts_with("missing command"));
        assert!(messages[3].starts_with("`timeout = \"soon\"` is not a duration"));
    }

    #[test]
    fn an_invalid_readiness_check_does_not_also_report_the_port_placeholder() {
        assert_eq!(
            crate::tests::check(quote!(cmd = "x --port {port}", tcp = 0)).err().map(|m| m.len()),
            Some(1)
        );
    }
}
