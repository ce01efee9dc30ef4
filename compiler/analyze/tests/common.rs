//! What the tests share: a small cluster whose intent exercises every
//! ordering rule, and helpers to analyse flows against it.

use std::net::IpAddr;

use ringfence_analyze::{Analysis, Analyzer, Input, Observed, Options, Version};
use ringfence_core::{Compiled, compile};
use ringfence_intent::Diagnostic;
use ringfence_intent::model::{Action, Direction, Intent, Mode, PolicyRank, Proto};
use ringfence_inventory::model::Inventory;
use ringfence_schema::flow::NetworkVerdict;
use ringfence_testkit::builder::{
    IntentBuilder, PodExt, ServiceExt, cluster_c1, pod, q, service, t,
};

/// A compiled version and what it came from.
pub(crate) struct Built {
    pub(crate) intent: Intent,
    pub(crate) compiled: Compiled,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl Built {
    pub(crate) fn version<'a>(&'a self, label: &'a str) -> Version<'a> {
        Version::new(label, &self.intent, &self.compiled, &self.warnings)
    }
}

pub(crate) fn build(intent: Intent, inv: &Inventory) -> Built {
    let (c, warnings) = compile(&intent, inv);
    let compiled = c.unwrap_or_else(|| panic!("does not compile: {warnings:#?}"));
    Built {
        intent,
        compiled,
        warnings,
    }
}

/// The scenario's inventory: one cluster `c1`, nodes `n1`, `n2`.
///
/// | pod | address | node | labels |
/// |---|---|---|---|
/// | app/web-1, app/web-2 | 10.0.1.1, 10.0.1.4 | n1, n2 | app=web (Deployment web) |
/// | app/api-1 | 10.0.1.2 | n2 | app=api |
/// | app/db-1 | 10.0.1.3 | n1 | app=db |
/// | app/bad-1 | 10.0.1.9 | n2 | app=worker, quarantine=true |
/// | lab/x-1 | 10.0.2.1 | n1 | (scope `lab`, analyze mode) |
/// | other/o-1 | 10.0.3.1 | n2 | (only in the top scope) |
///
/// Services: `app/api` cluster IP 10.96.0.10 tcp 80 → 8080, 443 → 8443; `app/web`
/// NodePort 30080 → 8080 (cluster IP 10.96.0.11).
pub(crate) fn inventory_() -> Inventory {
    cluster_c1(
        2,
        vec![
            pod("app", "web-1", "n1", &["10.0.1.1"])
                .labels(&[("app", "web")])
                .owner("Deployment", "web")
                .port("http", 8080, Proto::Tcp),
            pod("app", "web-2", "n2", &["10.0.1.4"])
                .labels(&[("app", "web")])
                .owner("Deployment", "web")
                .port("http", 8080, Proto::Tcp),
            pod("app", "api-1", "n2", &["10.0.1.2"])
                .labels(&[("app", "api")])
                .port("http", 8080, Proto::Tcp)
                .port("https", 8443, Proto::Tcp),
            pod("app", "db-1", "n1", &["10.0.1.3"]).labels(&[("app", "db")]),
            pod("app", "bad-1", "n2", &["10.0.1.9"])
                .labels(&[("app", "worker"), ("quarantine", "true")]),
            pod("lab", "x-1", "n1", &["10.0.2.1"]),
            pod("other", "o-1", "n2", &["10.0.3.1"]),
        ],
        vec![
            service("app", "api", &[("app", "api")], "10.96.0.10")
                .port(Proto::Tcp, 80, 8080)
                .port(Proto::Tcp, 443, 8443),
            service("app", "web", &[("app", "web")], "10.96.0.11")
                .port(Proto::Tcp, 80, 8080)
                .node_port(30080),
        ],
    )
}

/// The scenario's intent; `web_to_api_ports` lets a test narrow
/// `app/web-to-api`.
///
/// - `top` (cluster c1): no catch-all (implicit allow); absolute deny
///   `no-telnet` (any → any tcp 23); default allow `top-db` (any → db 5432).
/// - `app` (namespace app) catch-all deny: `web-to-api` (web → service
///   app/api tcp 80), `web-telnet` (web → api tcp 23, shadowed by
///   `top/no-telnet`), `deny-db-from-web` (web → db tcp 5432, before the
///   parent's `top-db`), `corp-to-web` (external corp → service app/web tcp
///   80), `never-used` (api → web tcp 9000).
/// - `lab` (namespace lab), analyze mode, catch-all deny.
/// - quarantine: pods labelled quarantine=true; exception `from-corp`
///   (ingress from corp, tcp 22).
pub(crate) fn intent_(web_to_api_ports: &str) -> Intent {
    let mut b = IntentBuilder::new();
    let corp = b.external("corp", &["192.0.2.0/24"]);
    let top = b.scope("top", None, q::cluster("c1"));
    let app = b.scope("app", Some(top), q::namespace("app"));
    b.catch_all(app, Direction::Ingress, Action::Deny);
    b.catch_all(app, Direction::Egress, Action::Deny);
    let lab = b.scope("lab", Some(top), q::namespace("lab"));
    b.enforcement(lab, Mode::Analyze);
    b.catch_all(lab, Direction::Ingress, Action::Deny);
    b.catch_all(lab, Direction::Egress, Action::Deny);
    let web = b.filter("web", Some(app), true, q::label("app", "web"));
    let api = b.filter("api", Some(app), true, q::label("app", "api"));
    let db = b.filter("db", None, false, q::label("app", "db"));
    let bad = b.filter("bad", None, false, q::label("quarantine", "true"));
    use PolicyRank::{Absolute, Default};
    #[rustfmt::skip]
    let policies = [
        (top, Absolute, Action::Deny, "no-telnet", t::any(), t::any(), "23"),
        (top, Default, Action::Allow, "top-db", t::any(), t::filter(db), "5432"),
        (app, Default, Action::Allow, "web-to-api", t::filter(web), t::service("app", "api"), web_to_api_ports),
        (app, Default, Action::Allow, "web-telnet", t::filter(web), t::filter(api), "23"),
        (app, Default, Action::Deny, "deny-db-from-web", t::filter(web), t::filter(db), "5432"),
        (app, Default, Action::Allow, "corp-to-web", t::external(corp), t::service("app", "web"), "80"),
        (app, Default, Action::Allow, "never-used", t::filter(api), t::filter(web), "9000"),
    ];
    for (scope, rank, action, id, from, to, ports) in policies {
        b.policy(scope, rank, action, id, from, to, Proto::Tcp, ports);
    }
    b.quarantine(&[bad]);
    b.exception(
        "from-corp",
        Direction::Ingress,
        t::external(corp),
        Proto::Tcp,
        "22",
    );
    b.build()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A flow at `minute` past 2024-05-01T12:00:00Z.
pub(crate) fn flow(
    src: &str,
    dst: &str,
    proto: Proto,
    port: Option<u16>,
    verdict: Option<NetworkVerdict>,
    minute: i64,
) -> Observed {
    let t = (1_714_564_800 + minute * 60) * 1_000_000_000;
    Observed {
        src: ip(src),
        dst: ip(dst),
        proto,
        port,
        orig: None,
        packets: 10,
        bytes: 1000,
        first_ns: t,
        last_ns: t + 5_000_000_000,
        verdict,
    }
}

/// Analyse flows with one worker.
pub(crate) fn analyse(
    version: Version<'_>,
    against: Option<Version<'_>>,
    flows: &[Observed],
) -> Analysis {
    let a = Analyzer::new(version, against, Options::default());
    let mut t = a.tally();
    for f in flows {
        t.add(f);
    }
    a.finish(t, Input::default(), None)
}

pub(crate) const ALLOW: Action = Action::Allow;
pub(crate) const DENY: Action = Action::Deny;
