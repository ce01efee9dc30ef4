//! Property: on random intents, inventories and flows, the per-node IRs
//! (evaluated with `NodeIr::evaluate` on the consumer's node for egress and
//! the provider's node for ingress) decide exactly what the direct
//! evaluation of the intent decides — the same action and the same deciding
//! policy on each side. So resolution, ordering, grouping, compression and
//! slicing never change meaning.

use std::net::IpAddr;

use proptest::prelude::*;
use ringfence_core::{Side, compile};
use ringfence_intent::model::Proto;
use ringfence_schema::ir::{Action, SideVerdict};

use crate::oracle::Oracle;
use crate::scenario::{Choices, scenario};

const PORTS: [u16; 8] = [80, 8080, 8081, 53, 9100, 22, 30080, 8050];

fn side_of(v: Option<SideVerdict<'_>>) -> Option<(Action, String)> {
    v.map(|s| (s.rule.action, s.rule.policy.clone()))
}

fn check(choices: &[u8], flows: &[(usize, usize, usize, usize)]) -> Result<(), TestCaseError> {
    let mut c = Choices::new(choices);
    let sc = scenario(&mut c);
    let (compiled, diags) = compile(&sc.intent, &sc.inventory);
    let compiled = compiled.unwrap_or_else(|| panic!("compile failed: {diags:#?}"));
    let oracle = Oracle::new(&sc.intent, &sc.inventory);
    let irs = compiled.nodes();
    for ir in irs {
        prop_assert!(
            ir.validate().is_ok(),
            "invalid IR for {}: {:?}",
            ir.node,
            ir.validate()
        );
    }
    let find_ir = |cluster: usize, node: &str| {
        let cname = &sc.inventory.clusters[cluster].name;
        irs.iter()
            .find(|ir| &ir.cluster == cname && ir.node == node)
    };
    for &(si, di, pi, porti) in flows {
        let src: IpAddr = sc.addresses[si % sc.addresses.len()];
        let dst: IpAddr = sc.addresses[di % sc.addresses.len()];
        let proto = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Sctp][pi % 4];
        let port = proto.has_ports().then_some(PORTS[porti % PORTS.len()]);
        let ctx = || {
            format!(
                "flow {src} -> {dst} {proto} {port:?}\nintent:\n{}",
                sc.intent.files[0].text
            )
        };

        // Egress.
        let expect = oracle
            .consumer(src)
            .map(|w| oracle.egress(w, dst, proto, port));
        let got = match oracle.consumer(src) {
            Some(w) => {
                let (cl, node) = oracle.node_name(w);
                let ir = find_ir(cl, &node).expect("a node IR");
                side_of(ir.evaluate(src, dst, proto, port).egress)
            }
            None => {
                for ir in irs {
                    prop_assert!(
                        ir.evaluate(src, dst, proto, port).egress.is_none(),
                        "unmanaged src judged on {}\n{}",
                        ir.node,
                        ctx()
                    );
                }
                None
            }
        };
        prop_assert_eq!(&got, &expect, "egress\n{}", ctx());
        let fast = compiled.verdict_direct(src, dst, proto, port);
        let fast_eg = match fast.egress {
            Side::NotManaged => None,
            Side::Decided(d) => Some((d.action, compiled.rule(&d).policy.clone())),
        };
        prop_assert_eq!(&fast_eg, &expect, "fast egress\n{}", ctx());

        // Ingress.
        let expect = oracle
            .provider(dst, proto, port)
            .map(|w| oracle.ingress(w, src, proto, port));
        let got = match oracle.provider(dst, proto, port) {
            Some(w) => {
                let (cl, node) = oracle.node_name(w);
                let ir = find_ir(cl, &node).expect("a node IR");
                side_of(ir.evaluate(src, dst, proto, port).ingress)
            }
            None => {
                for ir in irs {
                    prop_assert!(
                        ir.evaluate(src, dst, proto, port).ingress.is_none(),
                        "unmanaged dst judged on {}\n{}",
                        ir.node,
                        ctx()
                    );
                }
                None
            }
        };
        prop_assert_eq!(&got, &expect, "ingress\n{}", ctx());
        let fast_in = match fast.ingress {
            Side::NotManaged => None,
            Side::Decided(d) => Some((d.action, compiled.rule(&d).policy.clone())),
        };
        prop_assert_eq!(&fast_in, &expect, "fast ingress\n{}", ctx());
    }

    // Exposures: each target's verdict is its ingress decision for the original source.
    for ir in irs {
        for x in &ir.exposures {
            let dst = match x.addresses.first() {
                Some(&a) => a,
                None => ir.addresses[0],
            };
            for &src in sc.addresses.iter().take(12) {
                for (target, v) in ir.evaluate_exposure(src, dst, x.proto, x.port) {
                    let w = oracle
                        .by_endpoint(&ir.cluster, &target.endpoint)
                        .expect("targets are workloads");
                    prop_assert!(
                        oracle.managed(w),
                        "exposure target {} is not managed",
                        target.endpoint
                    );
                    let expect = oracle.ingress(w, src, x.proto, Some(target.port));
                    let got = v.map(|s| (s.rule.action, s.rule.policy.clone()));
                    prop_assert_eq!(
                        got,
                        Some(expect),
                        "exposure {} on {} from {}",
                        x.service,
                        ir.node,
                        src
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn node_irs_decide_as_the_intent_says(
        choices in prop::collection::vec(any::<u8>(), 0..160),
        flows in prop::collection::vec((any::<usize>(), any::<usize>(), any::<usize>(), any::<usize>()), 60),
    ) {
        check(&choices, &flows)?;
    }
}
