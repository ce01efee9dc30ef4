//! Scenarios that tests of more than one crate share, written as a user
//! writes them: the intent in KDL (`fixtures/*.kdl`), read by the real front
//! end; the inventory with the [`builder`](crate::builder) helpers.

use std::sync::Arc;

use ringfence_intent::model::{Intent, Os, Proto, SourceFile};
use ringfence_inventory::model::Inventory;

use crate::builder::{PodExt, ServiceExt, cluster, inventory, node, pod, service};

/// `text` as the one intent file `intent.kdl`; panics if it does not check.
pub fn intent(text: &str) -> Intent {
    let files = vec![SourceFile {
        path: "intent.kdl".to_string(),
        text: Arc::from(text),
    }];
    let checked = ringfence_intent::load(files);
    checked
        .intent
        .unwrap_or_else(|| panic!("the fixture does not check: {:?}", checked.diagnostics))
}

/// A NodePort's implicit node-return rule against an absolute deny from the
/// nodes (`fixtures/node-return.kdl`): `apps/no-nodes` denies the nodes
/// everything in scope `apps` (namespace `ns-a`), `apps/web-in` allows the
/// external `corp` (192.0.2.0/24) to service `ns-a/db` on tcp 443.
///
/// Inventory: cluster `c1`, nodes `n1` (10.10.0.11) and `n2` (10.10.0.12);
/// pod `ns-a/db-0` (10.244.1.12, on n1, Deployment `db`, `http` 8080);
/// service `ns-a/db` (cluster IP 10.96.0.12, 443 → `http`, node port 30120,
/// `externalTrafficPolicy: Cluster`).
pub fn node_return() -> (Intent, Inventory) {
    let inv = inventory(vec![cluster(
        "c1",
        vec![
            node("n1", Os::Linux, &["10.10.0.11"]),
            node("n2", Os::Linux, &["10.10.0.12"]),
        ],
        vec![],
        vec![
            pod("ns-a", "db-0", "n1", &["10.244.1.12"])
                .labels(&[("app", "db")])
                .owner("Deployment", "db")
                .port("http", 8080, Proto::Tcp),
        ],
        vec![
            service("ns-a", "db", &[("app", "db")], "10.96.0.12")
                .named_port(Proto::Tcp, 443, "http")
                .node_port(30120),
        ],
    )]);
    (intent(include_str!("../fixtures/node-return.kdl")), inv)
}
