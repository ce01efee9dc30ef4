//! `deploy/kubernetes` as a cluster would receive it: rendered by `kubectl
//! kustomize` (the base, and the example overlay with keys from `ringfence
//! keygen`), every object deserialized into its `k8s-openapi` type with any
//! field the type does not know refused, and the references between objects
//! (ConfigMaps, Secrets, the Service's selector, images, the binaries' flags)
//! checked against what was rendered.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolumeClaim, PodSpec, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use ringfence_e2e::bin::{binary, run};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// `kubectl kustomize DIR`, split into documents.
fn render(dir: &Path) -> Vec<Value> {
    let out = run(Command::new("kubectl").arg("kustomize").arg(dir));
    let yaml = String::from_utf8(out.stdout).expect("kustomize prints UTF-8");
    serde_saphyr::from_multiple::<Value>(&yaml).expect("kustomize prints valid YAML")
}

/// Deserialize into `T`, failing on every field `T` does not have.
fn strict<T: DeserializeOwned>(doc: &Value, what: &str) -> T {
    let mut unknown = Vec::new();
    // serde_ignored writes `?` for each Option it went through.
    let t = serde_ignored::deserialize(doc.clone(), |path| {
        unknown.push(path.to_string().replace(".?", ""))
    })
    .unwrap_or_else(|e| panic!("{what}: not a valid {}: {e}", std::any::type_name::<T>()));
    assert!(unknown.is_empty(), "{what}: unknown fields {unknown:?}");
    t
}

/// The Prometheus Operator's PodMonitor (a CRD, so not in k8s-openapi): the
/// fields we use, and no others.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // read by serde only
struct PodMonitor {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: PodMonitorSpec,
}
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodMonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // read by serde only
struct PodMetricsEndpoint {
    port: String,
    path: String,
    interval: String,
}

/// What a rendering holds, typed.
#[derive(Default)]
struct Objects {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    services: Vec<Service>,
    claims: Vec<PersistentVolumeClaim>,
    roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    deployments: Vec<Deployment>,
    daemon_sets: Vec<DaemonSet>,
    pod_monitors: Vec<PodMonitor>,
}

fn typed(docs: &[Value]) -> Objects {
    let mut o = Objects::default();
    for doc in docs {
        let kind = doc["kind"].as_str().expect("every object has a kind");
        let api = doc["apiVersion"]
            .as_str()
            .expect("every object has an apiVersion");
        let what = format!("{kind} {}", doc["metadata"]["name"]);
        match (api, kind) {
            ("v1", "Namespace") => o.namespaces.push(strict(doc, &what)),
            ("v1", "ServiceAccount") => o.service_accounts.push(strict(doc, &what)),
            ("v1", "ConfigMap") => o.config_maps.push(strict(doc, &what)),
            ("v1", "Secret") => {
                // kustomize wraps base64 over lines; the API server (Go's
                // base64) ignores the line breaks, k8s-openapi does not.
                let mut doc = doc.clone();
                for v in doc["data"]
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                {
                    *v = Value::String(v.as_str().unwrap_or("").replace(['\n', '\r'], ""));
                }
                o.secrets.push(strict(&doc, &what))
            }
            ("v1", "Service") => o.services.push(strict(doc, &what)),
            ("v1", "PersistentVolumeClaim") => o.claims.push(strict(doc, &what)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => o.roles.push(strict(doc, &what)),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                o.bindings.push(strict(doc, &what))
            }
            ("apps/v1", "Deployment") => o.deployments.push(strict(doc, &what)),
            ("apps/v1", "DaemonSet") => o.daemon_sets.push(strict(doc, &what)),
            ("monitoring.coreos.com/v1", "PodMonitor") => o.pod_monitors.push(strict(doc, &what)),
            _ => panic!("{what}: {api} {kind} is not a type this test knows: add it"),
        }
    }
    o
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().expect("named")
}

/// Every object is namespaced in ringfence-system (cluster-scoped ones aside),
/// and every ConfigMap, Secret, claim and service account a pod names exists.
fn check_references(o: &Objects) {
    let cms: BTreeSet<&str> = o.config_maps.iter().map(|c| name(&c.metadata)).collect();
    let secrets: BTreeSet<&str> = o.secrets.iter().map(|c| name(&c.metadata)).collect();
    let claims: BTreeSet<&str> = o.claims.iter().map(|c| name(&c.metadata)).collect();
    let sas: BTreeSet<&str> = o
        .service_accounts
        .iter()
        .map(|c| name(&c.metadata))
        .collect();
    assert_eq!(o.namespaces.len(), 1);
    for meta in o
        .config_maps
        .iter()
        .map(|x| &x.metadata)
        .chain(o.service_accounts.iter().map(|x| &x.metadata))
        .chain(o.services.iter().map(|x| &x.metadata))
        .chain(o.deployments.iter().map(|x| &x.metadata))
        .chain(o.daemon_sets.iter().map(|x| &x.metadata))
    {
        assert_eq!(
            meta.namespace.as_deref(),
            Some("ringfence-system"),
            "{meta:?}"
        );
    }
    let pods: Vec<(&str, &PodSpec)> = o
        .deployments
        .iter()
        .map(|d| (name(&d.metadata), d.spec.template.spec.as_ref().unwrap()))
        .chain(
            o.daemon_sets
                .iter()
                .map(|d| (name(&d.metadata), d.spec.template.spec.as_ref().unwrap())),
        )
        .collect();
    for (pod, spec) in &pods {
        let sa = spec.service_account_name.as_deref().unwrap();
        assert!(
            sas.contains(sa),
            "{pod}: service account {sa} is not rendered"
        );
        for v in spec.volumes.iter().flatten() {
            if let Some(c) = &v.config_map {
                assert!(
                    cms.contains(c.name.as_str()),
                    "{pod}: ConfigMap {} missing",
                    c.name
                );
            }
            if let Some(s) = &v.secret {
                let s = s.secret_name.as_deref().unwrap();
                // The base leaves the signing key to the overlay (or to kubectl create secret).
                assert!(
                    secrets.contains(s) || (secrets.is_empty() && s == "ringfence-signing-key"),
                    "{pod}: Secret {s} missing"
                );
            }
            if let Some(c) = &v.persistent_volume_claim {
                assert!(
                    claims.contains(c.claim_name.as_str()),
                    "{pod}: claim {}",
                    c.claim_name
                );
            }
        }
        for c in &spec.containers {
            for e in c.env_from.iter().flatten() {
                let cm = e.config_map_ref.as_ref().unwrap();
                assert!(
                    cms.contains(cm.name.as_str()),
                    "{pod}: envFrom {} missing",
                    cm.name
                );
            }
        }
    }
    // The publisher's Service selects the publisher's pods, on a port they expose.
    let svc = o
        .services
        .iter()
        .find(|s| name(&s.metadata) == "ringfence-publisher")
        .unwrap();
    let dep = o
        .deployments
        .iter()
        .find(|d| name(&d.metadata) == "ringfence-publisher")
        .unwrap();
    let labels = dep.spec.template.metadata.as_ref().unwrap().labels.as_ref();
    for (k, v) in svc.spec.as_ref().unwrap().selector.as_ref().unwrap() {
        assert_eq!(labels.unwrap().get(k), Some(v), "Service selector {k}={v}");
    }
    // The PodMonitor selects the agents by a label they carry, on a named port.
    let ds = &o.daemon_sets[0];
    let agent_labels = ds.spec.template.metadata.as_ref().unwrap().labels.clone();
    for m in &o.pod_monitors {
        for (k, v) in m.spec.selector.match_labels.as_ref().unwrap() {
            assert_eq!(agent_labels.as_ref().unwrap().get(k), Some(v));
        }
        let ports: Vec<&str> = ds.spec.template.spec.as_ref().unwrap().containers[0]
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_deref())
            .collect();
        for ep in &m.spec.pod_metrics_endpoints {
            assert!(
                ports.contains(&ep.port.as_str()),
                "PodMonitor port {}",
                ep.port
            );
        }
    }
    // The binding grants the publisher's account, read-only.
    let b = &o.bindings[0];
    assert_eq!(b.subjects.as_ref().unwrap()[0].name, "ringfence-publisher");
    for rule in o.roles.iter().flat_map(|r| r.rules.iter().flatten()) {
        for verb in &rule.verbs {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str()),
                "verb {verb}"
            );
        }
    }
}

/// Each container's flags are ones its binary's `--help` lists.
fn check_flags(o: &Objects) {
    let containers: Vec<&Container> = o
        .deployments
        .iter()
        .flat_map(|d| &d.spec.template.spec.as_ref().unwrap().containers)
        .chain(
            o.daemon_sets
                .iter()
                .flat_map(|d| &d.spec.template.spec.as_ref().unwrap().containers),
        )
        .collect();
    let mut missing = Vec::new();
    for c in containers {
        let image = c.image.as_deref().unwrap();
        let bin = if image.contains("ringfence-agent") {
            "ringfence-agent"
        } else {
            "ringfence"
        };
        let args = c.args.as_ref().unwrap();
        let help = run(Command::new(binary(bin)).arg(&args[0]).arg("--help")).stdout;
        let help = String::from_utf8(help).unwrap();
        for a in &args[1..] {
            let flag = a.split('=').next().unwrap();
            if flag.starts_with("--")
                && !help.contains(&format!("{flag} "))
                && !help.contains(&format!("{flag}\n"))
            {
                missing.push(format!("{bin} {} {flag}", args[0]));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags the manifests use that the binaries' --help does not list: {missing:?}"
    );
}

#[test]
fn base_renders_to_valid_objects() {
    let docs = render(&deploy_dir().join("base"));
    let o = typed(&docs);
    assert_eq!(o.daemon_sets.len(), 1);
    assert_eq!(o.deployments.len(), 1);
    assert!(o.secrets.is_empty(), "the base carries no private key");
    check_references(&o);
    // The images: transformer set every image.
    let images: BTreeSet<String> = o
        .daemon_sets
        .iter()
        .flat_map(|d| d.spec.clone().template.spec.unwrap().containers)
        .chain(
            o.deployments
                .iter()
                .flat_map(|d| d.spec.clone().template.spec.unwrap().containers),
        )
        .map(|c| c.image.unwrap())
        .collect();
    assert_eq!(
        images,
        BTreeSet::from([
            "ghcr.io/example/ringfence-agent:0.1.0".to_string(),
            "ghcr.io/example/ringfence:0.1.0".to_string()
        ])
    );
    // The base's trust key is a real public key (whose private half is gone).
    let pem = deploy_dir().join("base/trust/ci.pub");
    ringfence_bundle::load_trusted_key(&pem).expect("base/trust/ci.pub is a public key");
    check_flags(&o);
}

#[test]
fn example_overlay_renders_with_real_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("kubernetes");
    run(Command::new("cp").arg("-r").arg(deploy_dir()).arg(&copy));
    let overlay = copy.join("overlays/example");
    run(Command::new(binary("ringfence"))
        .arg("keygen")
        .arg("--out")
        .arg(overlay.join("signing")));
    let docs = render(&overlay);
    let o = typed(&docs);
    check_references(&o);
    assert_eq!(o.pod_monitors.len(), 1);
    // The signing key reached its Secret, and the trust ConfigMap holds the
    // matching public key, not the base's.
    let secret = &o.secrets[0];
    let key = &secret.data.as_ref().unwrap()["signing.key"];
    assert_eq!(key.0, std::fs::read(overlay.join("signing.key")).unwrap());
    let trust = o
        .config_maps
        .iter()
        .find(|c| name(&c.metadata).starts_with("ringfence-trust-"))
        .unwrap();
    let pub_pem = std::fs::read_to_string(overlay.join("signing.pub")).unwrap();
    assert_eq!(trust.data.as_ref().unwrap()["ci.pub"], pub_pem);
    // The DaemonSet mounts that (hash-suffixed) ConfigMap, so a new key rolls it.
    let ds = o.daemon_sets[0].spec.template.spec.as_ref().unwrap();
    assert!(ds.volumes.iter().flatten().any(|v| {
        v.config_map
            .as_ref()
            .is_some_and(|c| c.name == name(&trust.metadata))
    }));
    let images: Vec<String> = ds
        .containers
        .iter()
        .map(|c| c.image.clone().unwrap())
        .collect();
    assert_eq!(
        images,
        ["registry.example.invalid/platform/ringfence-agent:0.1.0"]
    );
    check_flags(&o);
}

#[test]
fn unknown_fields_are_refused() {
    // The check above is only worth something if a misspelt field fails it.
    let mut docs = render(&deploy_dir().join("base"));
    let ds = docs.iter_mut().find(|d| d["kind"] == "DaemonSet").unwrap();
    ds["spec"]["template"]["spec"]["hostNetwrok"] = Value::Bool(true);
    let r = std::panic::catch_unwind(|| typed(&docs));
    let msg = r
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .expect("refused");
    assert!(msg.contains("spec.template.spec.hostNetwrok"), "{msg}");
}
