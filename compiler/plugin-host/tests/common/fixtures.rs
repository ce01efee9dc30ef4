//! Small hand-written IRs, used by the golden files and the Windows tests.

use ringfence_schema::ir::Action::{Allow, Deny};
use ringfence_schema::ir::Direction::{Egress, Ingress};
use ringfence_schema::ir::EndpointKind::{HostPod, Node, Pod};
use ringfence_schema::ir::Mode::{Analyze, Enforce};
use ringfence_schema::ir::*;
use ringfence_schema::net::Proto;

use super::*;

/// Two pods and the node, IPv4 and IPv6, one empty set.
pub fn basic(os: Os) -> NodeIr {
    ir(
        os,
        "n1",
        &["192.168.0.10", "fd00::10"],
        vec![
            endpoint(
                "node/n1",
                Node,
                true,
                &["192.168.0.10", "fd00::10"],
                "node_in",
                Some("node_out"),
            ),
            endpoint(
                "pod/shop/web",
                Pod,
                true,
                &["10.0.1.5", "fd00:1::5"],
                "web_in",
                Some("web_out"),
            ),
            endpoint(
                "pod/shop/db",
                Pod,
                true,
                &["10.0.1.6"],
                "db_in",
                Some("db_out"),
            ),
        ],
        vec![
            chain(
                "web_in",
                Ingress,
                Enforce,
                vec![
                    rule(
                        "web-from-internet",
                        Allow,
                        Some("internet"),
                        Proto::Tcp,
                        &["80", "443"],
                    ),
                    rule("web-nobody", Allow, Some("nobody"), Proto::Tcp, &["22"]),
                    all("web-in-default", Deny),
                ],
            ),
            chain(
                "web_out",
                Egress,
                Enforce,
                vec![
                    rule("web-to-db", Allow, Some("db_pods"), Proto::Tcp, &["5432"]),
                    rule("web-dns", Allow, None, Proto::Udp, &["53"]),
                    all("web-out-default", Deny),
                ],
            ),
            chain(
                "db_in",
                Ingress,
                Enforce,
                vec![
                    rule(
                        "db-from-web",
                        Allow,
                        Some("web_pods"),
                        Proto::Tcp,
                        &["5432"],
                    ),
                    all("db-in-default", Deny),
                ],
            ),
            chain("db_out", Egress, Enforce, vec![all("db-out-default", Deny)]),
            chain(
                "node_in",
                Ingress,
                Enforce,
                vec![
                    rule("node-no-ssh", Deny, Some("internet"), Proto::Tcp, &["22"]),
                    all("node-in-default", Allow),
                ],
            ),
            chain(
                "node_out",
                Egress,
                Enforce,
                vec![all("node-out-default", Allow)],
            ),
        ],
        vec![
            set("db_pods", &["10.0.1.6/32"]),
            set("internet", &["0.0.0.0/0", "::/0"]),
            set("nobody", &[]),
            set("web_pods", &["10.0.1.5/32", "fd00:1::5/128"]),
        ],
        Vec::new(),
    )
}

/// Everything else: a host-network pod, analyze mode, logging, ICMP, SCTP,
/// port ranges, a remote endpoint, NodePort and LoadBalancer exposures.
pub fn full(os: Os) -> NodeIr {
    let mut exporter = endpoint(
        "hostpod/monitoring/exporter",
        HostPod,
        true,
        &["192.168.0.10", "fd00::10"],
        "exporter_in",
        None,
    );
    exporter.ports = vec![
        "tcp/9100".to_string().try_into().unwrap(),
        "udp/9100".to_string().try_into().unwrap(),
    ];
    let mut logged = rule(
        "api-deny-logged",
        Deny,
        Some("corp"),
        Proto::Tcp,
        &["8000-8999"],
    );
    logged.log = true;
    let exposures = vec![
        exposure(
            "shop/api",
            ExposureKind::NodePort,
            Proto::Tcp,
            &[],
            30080,
            &[("pod/shop/api", 8080), ("pod/shop/api-remote", 8080)],
        ),
        exposure(
            "shop/api-lb",
            ExposureKind::LoadBalancer,
            Proto::Tcp,
            &["203.0.113.7", "2001:db8::7"],
            443,
            &[("pod/shop/api", 8443)],
        ),
    ];
    ir(
        os,
        "n2",
        &["192.168.0.10", "fd00::10"],
        vec![
            endpoint(
                "node/n2",
                Node,
                true,
                &["192.168.0.10", "fd00::10"],
                "node_in",
                Some("node_out"),
            ),
            exporter,
            endpoint(
                "pod/shop/api",
                Pod,
                true,
                &["10.0.2.7", "fd00:2::7"],
                "api_in",
                Some("api_out"),
            ),
            endpoint(
                "pod/shop/api-remote",
                Pod,
                false,
                &["10.0.3.9"],
                "api_in",
                None,
            ),
        ],
        vec![
            chain(
                "api_in",
                Ingress,
                Analyze,
                vec![
                    logged,
                    rule("api-from-corp", Allow, Some("corp"), Proto::Any, &[]),
                    rule("api-ping", Allow, None, Proto::Icmp, &[]),
                    rule("api-sctp", Allow, Some("v6_only"), Proto::Sctp, &[]),
                    all("api-in-default", Deny),
                ],
            ),
            chain(
                "api_out",
                Egress,
                Enforce,
                vec![
                    rule("api-out-high", Deny, None, Proto::Udp, &["1024-65535"]),
                    all("api-out-default", Allow),
                ],
            ),
            chain(
                "exporter_in",
                Ingress,
                Enforce,
                vec![
                    rule("scrape", Allow, Some("corp"), Proto::Tcp, &["9100"]),
                    all("exporter-default", Deny),
                ],
            ),
            chain(
                "node_in",
                Ingress,
                Enforce,
                vec![all("node-in-default", Allow)],
            ),
            chain(
                "node_out",
                Egress,
                Enforce,
                vec![
                    rule("node-no-smtp", Deny, None, Proto::Tcp, &["25"]),
                    all("node-out-default", Allow),
                ],
            ),
        ],
        vec![
            set(
                "corp",
                &["172.16.0.0/12", "10.0.0.0/16", "2001:db8:c0::/48"],
            ),
            set("v6_only", &["2001:db8:5c::/48"]),
        ],
        exposures,
    )
}
