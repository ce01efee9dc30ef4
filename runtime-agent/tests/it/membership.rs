//! Live membership in a real kernel: a live IR compiled by the real
//! pipeline and rendered by the real nftables plugin, filled by signed
//! snapshots and deltas (sealed by `ringfence-bundle`), every attack refused
//! with its code and the ruleset byte-identical before and after.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ringfence_agent::agent::{Agent, BundleOutcome, Config, MemberOutcome};
use ringfence_agent::source::Source;
use ringfence_bundle::{
    SigningKey, Trust, bundle_file, format_time, seal_bundle, seal_delta, seal_envelope,
    seal_snapshot,
};
use ringfence_core::compile_live as compile;
use ringfence_core::live::LivePods;
use ringfence_schema::bundle::{BUNDLE_FORMAT, BackendRef, BundlePayload, SourceKind, SourceRef};
use ringfence_schema::ir::{NodeIr, Os};
use ringfence_schema::membership::{
    Changes, DeltaPayload, MEMBERSHIP_FORMAT, MemberEndpoint, Membership, SetChange,
    SnapshotPayload,
};
use ringfence_testkit::synth::{Params, generate};
use serde_json::Value;

use crate::support::{Keys, Netns, config, nft_in, open_state};

/// A node of a small synthetic cluster: its live IR, rules and membership.
struct Live {
    ir: NodeIr,
    rules: String,
    m: Membership,
}

impl Live {
    /// The node's managed pods (those with chains).
    fn managed(&self) -> Vec<&MemberEndpoint> {
        self.m
            .endpoints
            .iter()
            .filter(|e| e.ingress.is_some())
            .collect()
    }
}

/// A live node, its name, a namespace `tag` for its kernel, and keys.
fn live_in(tag: &str) -> (Live, String, Netns, Keys) {
    let l = live_node();
    let node = l.ir.node.clone();
    (l, node, Netns::new(tag), Keys::new())
}

/// [`live_in`] with an agent (state in `state` of the keys' directory)
/// that has the live bundle, generation 1, in force.
fn live_agent(tag: &str) -> (Live, Netns, Keys, PathBuf, Agent) {
    let (l, node, ns, keys) = live_in(tag);
    let state = keys.path("state");
    let mut a = agent(&ns, &keys, &node, &state, None);
    in_force(&mut a, &l, &keys, SystemTime::now());
    (l, ns, keys, state, a)
}

/// The live bundle, generation 1, offered to `a` and in force.
fn in_force(a: &mut Agent, l: &Live, keys: &Keys, now: SystemTime) {
    assert!(matches!(
        a.offer(&bundle(l, 1, &keys.key), None, now),
        BundleOutcome::Applied { generation: 1 }
    ));
}

/// A source directory among the keys' files holding the node's bundle
/// (generation 1), and its (empty) membership directory.
fn source(l: &Live, keys: &Keys) -> (PathBuf, PathBuf) {
    let src = keys.path("src");
    let dir = src.join("membership").join(&l.ir.node);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        src.join(format!("{}.bundle", l.ir.node)),
        bundle(l, 1, &keys.key),
    )
    .unwrap();
    (src, dir)
}

fn live_node() -> Live {
    let s = generate(&Params::small_linux());
    let (c, d) = compile(&s.intent, &s.inventory);
    let mut c = c.unwrap_or_else(|| panic!("{d:?}"));
    let pods = LivePods::from_compiled(&mut c);
    let (ir, m) = c
        .nodes()
        .iter()
        .filter(|n| n.os == Os::Linux)
        .filter_map(|n| {
            let ir = c.live_ir(&n.node, &c.node_classes(&n.node))?;
            let m = c.membership(&ir, &pods);
            let managed = m.endpoints.iter().filter(|e| e.ingress.is_some()).count();
            (managed >= 3 && !m.sets.is_empty()).then_some((ir, m))
        })
        .next()
        .expect("a Linux node with three managed pods");
    let host = ringfence_plugin_host::Host::with_cache(Default::default(), None).unwrap();
    let out = host.builtin("nftables").unwrap().render(&ir).unwrap();
    let rules = out.artifacts[0].content.clone();
    Live { ir, rules, m }
}

fn bundle(l: &Live, generation: u64, key: &SigningKey) -> Vec<u8> {
    let payload = BundlePayload {
        format: BUNDLE_FORMAT,
        cluster: l.ir.cluster.clone(),
        node: l.ir.node.clone(),
        os: Os::Linux,
        backend: BackendRef {
            name: "nftables".into(),
            version: "0.1.0".into(),
            sha256: "00".repeat(32),
        },
        generation,
        issued_at: "2019-01-01T00:00:00Z".into(),
        expires_at: "2099-01-01T00:00:00Z".into(),
        source: SourceRef {
            repository: None,
            commit: Some(format!("{generation:040x}")),
            tree: None,
            kind: SourceKind::Commit,
        },
        inventory_sha256: "11".repeat(32),
        files: vec![
            bundle_file("ir.json", serde_json::to_string(&l.ir).unwrap()),
            bundle_file("rules.nft", l.rules.clone()),
        ],
    };
    seal_bundle(&payload, &[key])
}

/// Seals a node's chain of documents as the publisher does.
struct Chain<'a> {
    l: &'a Live,
    key: &'a SigningKey,
    generation: u64,
    sequence: u64,
    digest: String,
    m: Membership,
}

fn times(valid: bool) -> (String, String) {
    let now = SystemTime::now();
    let (from, to) = if valid {
        (
            now - Duration::from_secs(5),
            now + Duration::from_secs(3600),
        )
    } else {
        (
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )
    };
    (format_time(from).unwrap(), format_time(to).unwrap())
}

impl<'a> Chain<'a> {
    fn new(l: &'a Live, key: &'a SigningKey, generation: u64) -> Self {
        Chain {
            l,
            key,
            generation,
            sequence: 0,
            digest: String::new(),
            m: Membership::default(),
        }
    }

    fn snapshot_payload(&self, sequence: u64, m: &Membership) -> SnapshotPayload {
        let (issued_at, expires_at) = times(true);
        SnapshotPayload {
            format: MEMBERSHIP_FORMAT,
            cluster: self.l.ir.cluster.clone(),
            node: self.l.ir.node.clone(),
            generation: self.generation,
            sequence,
            issued_at,
            expires_at,
            membership: m.clone(),
        }
    }

    /// The next document: a snapshot of `m`.
    fn snapshot(&mut self, m: &Membership) -> Vec<u8> {
        self.sequence += 1;
        let (bytes, digest) = seal_snapshot(&self.snapshot_payload(self.sequence, m), &[self.key]);
        self.digest = digest;
        self.m = m.clone();
        bytes
    }

    fn delta_payload(&self, changes: Changes) -> DeltaPayload {
        let (issued_at, expires_at) = times(true);
        DeltaPayload {
            format: MEMBERSHIP_FORMAT,
            cluster: self.l.ir.cluster.clone(),
            node: self.l.ir.node.clone(),
            generation: self.generation,
            sequence: self.sequence + 1,
            previous: self.digest.clone(),
            issued_at,
            expires_at,
            changes,
        }
    }

    /// The next document: the delta to `m`.
    fn delta(&mut self, m: &Membership) -> Vec<u8> {
        let p = self.delta_payload(Membership::diff(&self.m, m));
        let (bytes, digest) = seal_delta(&p, &[self.key]);
        self.sequence += 1;
        self.digest = digest;
        self.m = m.clone();
        bytes
    }
}

fn agent(ns: &Netns, keys: &Keys, node: &str, state: &Path, members: Option<Trust>) -> Agent {
    Agent::new(
        Config {
            node: node.into(),
            membership_trust: members,
            ..config(keys.trust())
        },
        open_state(state),
        nft_in(ns),
    )
}

/// Our table's sets and maps as nft lists them: name → element keys.
fn elements(ns: &Netns) -> std::collections::BTreeMap<String, Vec<String>> {
    let json: Value = serde_json::from_str(&ns.sh("nft -j list table inet ringfence")).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for item in json["nftables"].as_array().unwrap() {
        for kind in ["set", "map"] {
            if let Some(s) = item.get(kind) {
                let keys = s["elem"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| match e {
                        // A map entry: [key, verdict].
                        Value::Array(kv) => kv[0].to_string(),
                        v => v.to_string(),
                    })
                    .map(|k| k.trim_matches('"').to_string())
                    .collect();
                out.insert(s["name"].as_str().unwrap().to_string(), keys);
            }
        }
    }
    out
}

fn has(ns: &Netns, container: &str, a: &IpAddr) -> bool {
    elements(ns)
        .get(container)
        .is_some_and(|e| e.contains(&a.to_string()))
}

fn fam(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "v4" } else { "v6" }
}

/// The membership without endpoint `gone` (its addresses leave every set).
fn without(m: &Membership, gone: &MemberEndpoint) -> Membership {
    let mut m = m.clone();
    m.endpoints.retain(|e| e.name != gone.name);
    for s in &mut m.sets {
        s.addresses.retain(|a| !gone.addresses.contains(a));
    }
    m.sets.retain(|s| !s.addresses.is_empty());
    m.targets.retain(|t| t.endpoint != gone.name);
    m
}

fn refused(o: MemberOutcome) -> &'static str {
    match o {
        MemberOutcome::Refused(e) => e.reason.code(),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn membership_fills_a_live_bundle_and_every_attack_leaves_the_kernel_alone() {
    let (l, ns, keys, state, mut a) = live_agent("members");
    let now = SystemTime::now();
    assert!(a.is_live());
    let pods = l.managed();
    let first = pods[0].addresses[0];
    assert!(!has(&ns, &format!("ingress-{}", fam(&first)), &first));

    // Snapshot: every managed pod is dispatched, every set filled.
    let mut chain = Chain::new(&l, &keys.key, 1);
    let snap = chain.snapshot(&l.m);
    assert!(matches!(
        a.offer_membership(&snap, now, Instant::now()),
        MemberOutcome::Applied { sequence: 1 }
    ));
    for e in &pods {
        for x in &e.addresses {
            assert!(has(&ns, &format!("ingress-{}", fam(x)), x), "{x}");
            assert!(has(&ns, &format!("egress-{}", fam(x)), x), "{x}");
        }
    }
    for s in &l.m.sets {
        for x in &s.addresses {
            assert!(
                has(&ns, &format!("{}_{}", s.name, fam(x)), x),
                "{x} in {}",
                s.name
            );
        }
    }
    // The live elements are the membership in force: no drift.
    a.check_drift(now);
    assert!(a.stats.drift.is_empty(), "{:?}", a.stats.drift);

    // Delta: a pod leaves; its address leaves every set and map at once.
    let gone = pods[0].clone();
    let m2 = without(&l.m, &gone);
    let d2 = chain.delta(&m2);
    assert!(matches!(
        a.offer_membership(&d2, now, Instant::now()),
        MemberOutcome::Applied { sequence: 2 }
    ));
    for (name, elems) in elements(&ns) {
        for x in &gone.addresses {
            let fixed =
                l.ir.sets
                    .iter()
                    .any(|s| !s.live && name.starts_with(&s.name));
            assert!(
                fixed || name.starts_with("podnets-") || !elems.contains(&x.to_string()),
                "{x} still in {name}"
            );
        }
    }
    let second = pods[1].addresses[0];
    assert!(has(&ns, &format!("ingress-{}", fam(&second)), &second));
    a.check_drift(now);
    assert!(a.stats.drift.is_empty(), "{:?}", a.stats.drift);

    // Every attack: refused with its code, the kernel untouched.
    let before = ns.ruleset();
    let attack = |a: &mut Agent, bytes: &[u8], code: &str| {
        assert_eq!(
            refused(a.offer_membership(bytes, now, Instant::now())),
            code
        );
        assert_eq!(ns.ruleset(), before, "{code} changed the kernel");
    };
    // Replay of an applied delta, and of the snapshot (a reordered document).
    attack(&mut a, &d2, "replay");
    attack(&mut a, &snap, "replay");
    // A gap: delta 4 before delta 3.
    let m3 = without(&m2, pods[1]);
    let mut ahead = Chain {
        m: chain.m.clone(),
        digest: chain.digest.clone(),
        ..Chain::new(&l, &keys.key, 1)
    };
    ahead.sequence = chain.sequence;
    let d3 = ahead.delta(&m3);
    let d4 = ahead.delta(&m2);
    attack(&mut a, &d4, "gap");
    // Another history: the right sequence, the wrong previous digest.
    let mut other = chain.delta_payload(Membership::diff(&m2, &m3));
    other.previous = "ab".repeat(32);
    attack(&mut a, &seal_delta(&other, &[&keys.key]).0, "broken-chain");
    // Wrong node, wrong generation, expired.
    let mut p = chain.snapshot_payload(9, &m2);
    p.node = "another-node".into();
    attack(&mut a, &seal_snapshot(&p, &[&keys.key]).0, "wrong-node");
    let mut p = chain.snapshot_payload(9, &m2);
    p.generation = 2;
    attack(
        &mut a,
        &seal_snapshot(&p, &[&keys.key]).0,
        "wrong-generation",
    );
    let mut p = chain.snapshot_payload(9, &m2);
    (p.issued_at, p.expires_at) = times(false);
    attack(&mut a, &seal_snapshot(&p, &[&keys.key]).0, "expired");
    // A set the bundle does not declare.
    let evil = Changes {
        sets: vec![SetChange {
            name: "evil".into(),
            add: vec!["10.99.0.1".parse().unwrap()],
            remove: Vec::new(),
        }],
        ..Changes::default()
    };
    attack(
        &mut a,
        &seal_delta(&chain.delta_payload(evil), &[&keys.key]).0,
        "undeclared",
    );
    // The membership key trying to add a rule: a pod judged by a chain the
    // bundle does not declare, and a document that is not membership at all.
    let mut rogue = pods[1].clone();
    rogue.name = "pod/x/rogue".into();
    rogue.addresses = vec!["10.99.0.2".parse().unwrap()];
    rogue.ingress = Some("accept_everything".into());
    let chain_attack = Changes {
        endpoints: vec![rogue],
        ..Changes::default()
    };
    attack(
        &mut a,
        &seal_delta(&chain.delta_payload(chain_attack), &[&keys.key]).0,
        "undeclared",
    );
    let rule = seal_envelope(
        "application/vnd.ringfence.bundle.v1+json",
        b"{\"rules.nft\":\"add rule inet ringfence forward accept\"}",
        &[&keys.key],
    );
    attack(&mut a, &rule, "unsupported-format");
    // A removal of something absent.
    let absent = Changes {
        endpoints_removed: vec![gone.name.clone()],
        ..Changes::default()
    };
    attack(
        &mut a,
        &seal_delta(&chain.delta_payload(absent), &[&keys.key]).0,
        "inconsistent",
    );
    // A key the agent does not trust for membership.
    let stranger = Keys::new();
    let mut forged = Chain {
        m: chain.m.clone(),
        digest: chain.digest.clone(),
        ..Chain::new(&l, &stranger.key, 1)
    };
    forged.sequence = chain.sequence;
    attack(&mut a, &forged.delta(&m3), "unknown-key");
    for code in [
        "replay",
        "gap",
        "broken-chain",
        "wrong-node",
        "wrong-generation",
        "expired",
        "undeclared",
        "unsupported-format",
        "inconsistent",
        "unknown-key",
    ] {
        assert!(
            a.stats.members.refused.get(code).is_some_and(|&n| n >= 1),
            "{code} counted"
        );
    }
    assert!(
        a.last_error()
            .is_some_and(|e| e.contains("membership refused"))
    );

    // In order, the chain goes on.
    assert!(matches!(
        a.offer_membership(&d3, now, Instant::now()),
        MemberOutcome::Applied { sequence: 3 }
    ));
    assert!(!has(&ns, &format!("ingress-{}", fam(&second)), &second));

    // A restart continues the chain: nothing reloaded, delta 4 follows.
    drop(a);
    let before = ns.ruleset();
    let mut a = agent(&ns, &keys, &l.ir.node, &state, None);
    a.startup(SystemTime::now()).unwrap();
    assert_eq!(ns.ruleset(), before, "a restart reloads nothing");
    assert_eq!(a.members().map(|m| m.sequence), Some(3));
    assert!(matches!(
        a.offer_membership(&d4, now, Instant::now()),
        MemberOutcome::Applied { sequence: 4 }
    ));
    assert!(has(&ns, &format!("ingress-{}", fam(&second)), &second));

    // Drift in a live set is drift; self-heal puts the membership back.
    let victim = format!("ingress-{}", fam(&second));
    ns.sh(&format!(
        "nft delete element inet ringfence {victim} '{{ {second} }}'"
    ));
    a.check_drift(now);
    assert!(
        a.stats.drift.changed.iter().any(|c| c.contains(&victim)),
        "{:?}",
        a.stats.drift
    );
    drop(a);
    let mut a = Agent::new(
        Config {
            node: l.ir.node.clone(),
            self_heal: true,
            ..config(keys.trust())
        },
        open_state(&state),
        nft_in(&ns),
    );
    a.startup(SystemTime::now()).unwrap();
    assert!(
        has(&ns, &victim, &second),
        "start-up put the membership back"
    );
    a.check_drift(now);
    assert!(a.stats.drift.is_empty(), "{:?}", a.stats.drift);
}

#[test]
fn every_element_changed_in_a_live_set_or_map_is_drift_and_self_heal_restores_it() {
    let l = live_node();
    let node = l.ir.node.clone();
    let keys = Keys::new();
    let now = SystemTime::now();
    // A live set holding an IPv4 address, and a managed pod's dispatch entry.
    let set =
        l.m.sets
            .iter()
            .find(|s| s.addresses.iter().any(IpAddr::is_ipv4))
            .expect("a live set with an IPv4 address");
    let x = *set.addresses.iter().find(|a| a.is_ipv4()).unwrap();
    let set = format!("{}_v4", set.name);
    let pod =
        l.m.endpoints
            .iter()
            .find(|e| e.ingress.is_some() && e.addresses[0].is_ipv4())
            .expect("a managed IPv4 pod");
    let p = pod.addresses[0];
    let other =
        l.m.endpoints
            .iter()
            .filter_map(|e| e.ingress.as_deref())
            .find(|c| Some(*c) != pod.ingress.as_deref())
            .expect("a second ingress chain");
    let stranger = "10.255.255.254";
    // Removed, added, and a map entry pointing at another chain.
    let tamper = |ns: &Netns| {
        ns.sh(&format!(
            "nft delete element inet ringfence {set} '{{ {x} }}'; \
             nft add element inet ringfence {set} '{{ {stranger} }}'; \
             nft delete element inet ringfence ingress-v4 '{{ {p} }}'; \
             nft add element inet ringfence ingress-v4 '{{ {p} : jump c_{other} }}'"
        ));
    };
    let filled = |self_heal: bool, tag: &str| {
        let ns = Netns::new(tag);
        let state = keys.path(tag);
        let mut a = Agent::new(
            Config {
                node: node.clone(),
                self_heal,
                ..config(keys.trust())
            },
            open_state(&state),
            nft_in(&ns),
        );
        in_force(&mut a, &l, &keys, now);
        let snap = Chain::new(&l, &keys.key, 1).snapshot(&l.m);
        assert!(matches!(
            a.offer_membership(&snap, now, Instant::now()),
            MemberOutcome::Applied { sequence: 1 }
        ));
        a.check_drift(now);
        assert!(a.stats.drift.is_empty(), "{:?}", a.stats.drift);
        (ns, a)
    };

    // Found, each element named.
    let (ns, mut a) = filled(false, "memdrift");
    tamper(&ns);
    a.check_drift(now);
    let d = &a.stats.drift;
    assert!(d.missing.is_empty() && d.extra.is_empty(), "{d:?}");
    assert!(
        d.changed
            .contains(&format!("set {set} elements -{x}, +{stranger}")),
        "{d:?}"
    );
    let entry = d
        .changed
        .iter()
        .find(|c| c.starts_with("set map:ingress-v4 elements "))
        .unwrap_or_else(|| panic!("{d:?}"));
    assert!(
        entry.contains(&format!("-{p} : ")) && entry.contains(&format!("+{p} : ")),
        "{entry}"
    );
    assert!(entry.contains(&format!("c_{other}")), "{entry}");
    drop((ns, a));

    // Healed: the membership in force is back, element for element.
    let (ns, mut a) = filled(true, "memheal");
    let clean = elements(&ns);
    tamper(&ns);
    assert_ne!(elements(&ns), clean);
    a.check_drift(now);
    assert!(a.stats.drift.is_empty(), "{:?}", a.stats.drift);
    assert_eq!(elements(&ns), clean);
    assert!(has(&ns, &set, &x) && !has(&ns, &set, &stranger.parse().unwrap()));
    let verdict = ns.sh("nft list map inet ringfence ingress-v4");
    assert!(
        verdict.contains(&format!("{p} : jump c_{}", pod.ingress.as_deref().unwrap())),
        "{verdict}"
    );
}

#[test]
fn a_dir_source_is_followed_and_a_gap_recovers_through_the_snapshot() {
    let (l, node, ns, keys) = live_in("memsrc");
    let members = Keys::new();
    let (src, dir) = source(&l, &keys);
    // A separate membership key: the bundle key does not sign membership.
    let mut a = agent(
        &ns,
        &keys,
        &node,
        &keys.path("state"),
        Some(members.trust()),
    );
    let source = Source::Dir(src.clone());
    let now = SystemTime::now();
    let ringfence_agent::source::Fetched::Bundle { bytes, .. } = source.fetch(&node).unwrap()
    else {
        panic!("no bundle")
    };
    assert!(matches!(
        a.offer(&bytes, None, now),
        BundleOutcome::Applied { .. }
    ));
    // Nothing published yet: nothing to do.
    assert!(!a.sync_membership(&source, None, now).unwrap());

    let pods = l.managed();
    let (p0, p1) = (pods[0].addresses[0], pods[1].addresses[0]);
    let mut chain = Chain::new(&l, &members.key, 1);
    std::fs::write(dir.join("snapshot"), chain.snapshot(&l.m)).unwrap();
    let m2 = without(&l.m, pods[0]);
    std::fs::write(dir.join("2.delta"), chain.delta(&m2)).unwrap();
    std::fs::write(dir.join("head"), "2\n").unwrap();
    assert!(a.sync_membership(&source, None, now).unwrap());
    assert_eq!(a.members().map(|m| m.sequence), Some(2));
    assert!(!has(&ns, &format!("ingress-{}", fam(&p0)), &p0));
    assert!(has(&ns, &format!("ingress-{}", fam(&p1)), &p1));

    // Documents 3 and 4 are lost; the publisher's snapshot at 5 recovers.
    let m3 = without(&m2, pods[1]);
    chain.delta(&m3);
    chain.delta(&m2);
    let m5 = without(&m2, pods[2]);
    std::fs::remove_file(dir.join("2.delta")).unwrap();
    std::fs::write(dir.join("snapshot"), chain.snapshot(&m5)).unwrap();
    let m6 = l.m.clone();
    std::fs::write(dir.join("6.delta"), chain.delta(&m6)).unwrap();
    std::fs::write(dir.join("head"), "6\n").unwrap();
    assert!(a.sync_membership(&source, None, now).unwrap());
    assert_eq!(a.members().map(|m| m.sequence), Some(6));
    for e in &pods {
        assert!(has(
            &ns,
            &format!("ingress-{}", fam(&e.addresses[0])),
            &e.addresses[0]
        ));
    }
    a.check_drift(now);
    assert!(a.stats.drift.is_empty(), "{:?}", a.stats.drift);

    // A delta signed by the bundle key (not a membership key) is refused.
    let mut wrong = Chain {
        m: chain.m.clone(),
        digest: chain.digest.clone(),
        ..Chain::new(&l, &keys.key, 1)
    };
    wrong.sequence = chain.sequence;
    let before = ns.ruleset();
    std::fs::write(dir.join("7.delta"), wrong.delta(&m2)).unwrap();
    std::fs::write(dir.join("head"), "7\n").unwrap();
    assert!(!a.sync_membership(&source, None, now).unwrap());
    assert_eq!(ns.ruleset(), before);
    assert_eq!(a.stats.members.refused.get("unknown-key"), Some(&1));
    // Polled again: the same document is not counted twice.
    assert!(!a.sync_membership(&source, None, now).unwrap());
    assert_eq!(a.stats.members.refused.get("unknown-key"), Some(&1));
}

#[test]
fn the_binary_follows_membership_with_its_own_key_and_reports_the_sequence() {
    let (l, node, ns, keys) = live_in("membin");
    let members = Keys::new();
    let (src, dir) = source(&l, &keys);
    let mut chain = Chain::new(&l, &members.key, 1);
    std::fs::write(dir.join("snapshot"), chain.snapshot(&l.m)).unwrap();
    std::fs::write(dir.join("head"), "1\n").unwrap();
    let state = keys.path("state");
    let once = |extra: &[&str]| {
        let mut cmd = keys.cli(
            &[
                "run",
                "--once",
                "--no-index",
                "--node",
                &node,
                "--netns",
                &ns.name,
            ],
            &state,
        );
        cmd.arg("--source").arg(&src).args(extra);
        cmd
    };
    // Trusting only the bundle key, the membership key's snapshot is refused.
    let out = once(&[]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown-key"));
    let first =
        l.m.endpoints
            .iter()
            .find(|e| e.ingress.is_some())
            .unwrap()
            .addresses[0];
    assert!(!has(&ns, &format!("ingress-{}", fam(&first)), &first));
    let members_pub = members.pubkey();
    ringfence_testkit::cmd::run(&mut once(&[
        "--membership-trust",
        members_pub.to_str().unwrap(),
    ]));
    assert!(has(&ns, &format!("ingress-{}", fam(&first)), &first));
    let status = crate::support::bin()
        .args(["status", "--format", "json", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["membership"]["sequence"], 1);
    assert_eq!(v["report"]["status"], "in-sync");
}

#[test]
fn a_snapshot_refused_before_its_bundle_is_taken_once_the_bundle_is_in_force() {
    let (l, node, ns, keys) = live_in("memgen");
    let src = keys.path("src");
    let dir = src.join("membership").join(&node);
    std::fs::create_dir_all(&dir).unwrap();
    let mut a = agent(&ns, &keys, &node, &keys.path("state"), None);
    let source = Source::Dir(src.clone());
    let now = SystemTime::now();
    in_force(&mut a, &l, &keys, now);
    let pods = l.managed();
    let mut chain = Chain::new(&l, &keys.key, 1);
    std::fs::write(dir.join("snapshot"), chain.snapshot(&l.m)).unwrap();
    std::fs::write(dir.join("head"), "1\n").unwrap();
    assert!(a.sync_membership(&source, None, now).unwrap());

    // The publisher starts generation 2's chain (a pod left) before the
    // agent has that bundle, as watch does: the snapshot is refused and
    // the kernel keeps generation 1's membership.
    let m2 = without(&l.m, pods[0]);
    let mut chain2 = Chain::new(&l, &keys.key, 2);
    chain2.sequence = chain.sequence;
    std::fs::write(dir.join("snapshot"), chain2.snapshot(&m2)).unwrap();
    std::fs::write(dir.join("head"), "2\n").unwrap();
    let before = ns.ruleset();
    // The first refusal asks the loop to fetch the bundle now; the same
    // snapshot refused again does not ask twice (no busy loop).
    for asks in [true, false] {
        assert!(!a.sync_membership(&source, None, now).unwrap());
        assert_eq!(a.take_rules_behind(), asks);
    }
    assert_eq!(ns.ruleset(), before);
    assert_eq!(a.stats.members.refused.get("wrong-generation"), Some(&1));
    let p0 = pods[0].addresses[0];
    assert!(has(&ns, &format!("ingress-{}", fam(&p0)), &p0));

    // Generation 2's bundle arrives: the same snapshot bytes now fit it.
    assert!(matches!(
        a.offer(&bundle(&l, 2, &keys.key), None, now),
        BundleOutcome::Applied { generation: 2 }
    ));
    assert!(a.sync_membership(&source, None, now).unwrap());
    assert_eq!(
        a.members().map(|m| (m.generation, m.sequence)),
        Some((2, 2))
    );
    assert!(!has(&ns, &format!("ingress-{}", fam(&p0)), &p0));
    let p1 = pods[1].addresses[0];
    assert!(has(&ns, &format!("ingress-{}", fam(&p1)), &p1));
    assert_eq!(a.stats.members.refused.get("wrong-generation"), Some(&1));
    a.check_drift(now);
    assert!(a.stats.drift.is_empty(), "{:?}", a.stats.drift);
}

#[test]
fn a_delta_in_the_kernel_but_not_recorded_is_applied_once_after_a_restart() {
    let (l, ns, keys, state, mut a) = live_agent("memcrash");
    let now = SystemTime::now();
    let mut chain = Chain::new(&l, &keys.key, 1);
    let snap = chain.snapshot(&l.m);
    assert!(matches!(
        a.offer_membership(&snap, now, Instant::now()),
        MemberOutcome::Applied { sequence: 1 }
    ));
    let record = std::fs::read(state.join("membership.json")).unwrap();
    let pods = l.managed();
    let (p0, p1) = (pods[0].addresses[0], pods[1].addresses[0]);
    let d2 = chain.delta(&without(&l.m, pods[0]));
    assert!(matches!(
        a.offer_membership(&d2, now, Instant::now()),
        MemberOutcome::Applied { sequence: 2 }
    ));
    assert!(!has(&ns, &format!("ingress-{}", fam(&p0)), &p0));

    // The agent dies after the kernel took delta 2, before recording it.
    drop(a);
    std::fs::write(state.join("membership.json"), &record).unwrap();
    let mut a = agent(&ns, &keys, &l.ir.node, &state, None);
    a.startup(SystemTime::now()).unwrap();
    // The kernel is brought back to what is recorded, so delta 2 follows
    // on from there rather than being applied on top of itself.
    assert_eq!(a.members().map(|m| m.sequence), Some(1));
    assert!(has(&ns, &format!("ingress-{}", fam(&p0)), &p0));
    assert!(matches!(
        a.offer_membership(&d2, now, Instant::now()),
        MemberOutcome::Applied { sequence: 2 }
    ));
    assert!(!has(&ns, &format!("ingress-{}", fam(&p0)), &p0));
    assert!(has(&ns, &format!("ingress-{}", fam(&p1)), &p1));
    assert!(a.stats.members.refused.is_empty(), "{:?}", a.stats.members);
    a.check_drift(now);
    assert!(a.stats.drift.is_empty(), "{:?}", a.stats.drift);
}
