//! The synthetic generator: deterministic, compiles cleanly, and its files
//! say what its model values say.

use ringfence_core::compile;
use ringfence_testkit::synth::{Params, generate, kubectl_list};

#[test]
fn synthetic_clusters_are_deterministic_and_compile() {
    let p = Params::small();
    let a = generate(&p);
    let b = generate(&p);
    assert_eq!(a.kdl(), b.kdl());
    assert_eq!(a.kubectl_json(), b.kubectl_json());
    assert_eq!(a.intent.policies.len(), p.policies);
    let (ca, da) = compile(&a.intent, &a.inventory);
    let (cb, _) = compile(&b.intent, &b.inventory);
    let (ca, cb) = (ca.expect("compiles"), cb.expect("compiles"));
    assert!(
        da.iter()
            .all(|d| d.severity == ringfence_intent::Severity::Warning),
        "{da:#?}"
    );
    assert_eq!(ca.nodes(), cb.nodes(), "same input, same IRs");
    assert_eq!(ca.nodes().len(), p.nodes);
    for ir in ca.nodes() {
        ir.validate().unwrap_or_else(|e| panic!("{}: {e}", ir.node));
        assert!(!ir.endpoints.is_empty());
    }
    // Exposures and Windows nodes are part of the mix.
    assert!(ca.nodes().iter().any(|n| !n.exposures.is_empty()));
    assert!(ca.nodes().iter().any(|n| n.backend == "windows-firewall"));
    // A different seed gives a different cluster.
    let c = generate(&Params { seed: 2, ..p });
    assert_ne!(c.kubectl_json(), a.kubectl_json());
}

#[test]
fn kubectl_lists_carry_the_model() {
    let s = generate(&Params::small());
    let c = &s.inventory.clusters[0];
    let v = kubectl_list(c);
    assert_eq!(v["kind"], "List");
    assert_eq!(
        v["metadata"]["annotations"]["ringfence.io/cluster"],
        c.name.as_str()
    );
    let items = v["items"].as_array().unwrap();
    let count = |k: &str| items.iter().filter(|i| i["kind"] == k).count();
    assert_eq!(count("Node"), c.nodes.len());
    assert_eq!(count("Pod"), c.pods.len());
    assert_eq!(count("Service"), c.services.len());
    assert_eq!(count("Namespace"), c.namespaces.len());
    let pod = items
        .iter()
        .find(|i| i["kind"] == "Pod" && i["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet")
        .unwrap();
    let hash = pod["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert!(
        pod["metadata"]["ownerReferences"][0]["name"]
            .as_str()
            .unwrap()
            .ends_with(hash)
    );
    assert!(
        pod["status"]["podIPs"].as_array().unwrap().len() == 2,
        "dual stack"
    );
    let hostnet = items
        .iter()
        .find(|i| i["spec"]["hostNetwork"] == true)
        .unwrap();
    assert_eq!(
        hostnet["spec"]["containers"][0]["ports"][0]["containerPort"],
        9100
    );
    let np = items
        .iter()
        .find(|i| i["spec"]["type"] == "NodePort" || i["spec"]["type"] == "LoadBalancer")
        .unwrap();
    assert!(np["spec"]["ports"][0]["nodePort"].is_u64());
    assert_eq!(np["spec"]["ports"][0]["targetPort"], "http");
    // The files land where the CLI benchmarks look.
    let dir = std::env::temp_dir().join(format!("ringfence-synth-{}", std::process::id()));
    s.write(&dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("intent/intent.kdl")).unwrap(),
        s.kdl()
    );
    assert!(dir.join(format!("inventory/{}.json", c.name)).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
