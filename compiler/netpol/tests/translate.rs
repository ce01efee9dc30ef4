//! The translation, file by file, of the Kubernetes documentation's examples
//! and of administrator policies (snapshots), and the problems of objects
//! the API server would refuse or that have no exact translation.

use ringfence_inventory::manifests::parse;
use ringfence_netpol::{Options, translate};

fn files(yaml: &str) -> String {
    let objects = parse(yaml, "policies.yaml").unwrap();
    let imported = translate(&objects, &Options::default()).unwrap_or_else(|r| {
        panic!(
            "{}",
            r.problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    imported
        .files
        .iter()
        .map(|(path, text)| format!("=== {path}\n{text}"))
        .collect()
}

fn problems(yaml: &str) -> String {
    let objects = parse(yaml, "policies.yaml").unwrap();
    let report = translate(&objects, &Options::default()).expect_err("refused");
    report.problems.iter().map(|p| format!("{p}\n")).collect()
}

fn settings() -> insta::internals::SettingsBindDropGuard {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s.bind_to_scope()
}

/// kubernetes.io, "Network Policies": the sample policy and the defaults.
const DOCS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
  namespace: quiet
spec:
  podSelector: {}
  policyTypes:
  - Ingress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-all-ingress
  namespace: open
spec:
  podSelector: {}
  ingress:
  - {}
  policyTypes:
  - Ingress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-all
  namespace: locked
spec:
  podSelector: {}
  policyTypes:
  - Ingress
  - Egress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: multi-port-egress
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
    - Egress
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/24
      ports:
        - protocol: TCP
          port: 32000
          endPort: 32768
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: egress-namespaces
  namespace: default
spec:
  podSelector:
    matchLabels:
      app: myapp
  policyTypes:
  - Egress
  egress:
  - to:
    - namespaceSelector:
        matchExpressions:
        - key: namespace
          operator: In
          values: ["frontend", "backend"]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: by-name-and-named-port
  namespace: shop
spec:
  podSelector:
    matchExpressions:
    - {key: tier, operator: NotIn, values: [cache]}
    - {key: canary, operator: DoesNotExist}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: ops
      podSelector:
        matchLabels: {app: probe}
    ports:
    - port: http
    - protocol: UDP
      port: 53
    - protocol: SCTP
"#;

#[test]
fn the_documentation_examples() {
    let _s = settings();
    insta::assert_snapshot!("docs-examples", files(DOCS));
}

const ADMIN: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: cluster-control
spec:
  priority: 34
  subject:
    namespaces: {}
  ingress:
  - name: "allow-from-monitoring"
    action: "Allow"
    from:
    - namespaces:
        matchLabels:
          kubernetes.io/metadata.name: monitoring
  - name: "pass-from-same-team"
    action: "Pass"
    from:
    - pods:
        namespaceSelector:
          matchLabels: {team: a}
        podSelector: {}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portRange: {protocol: UDP, start: 5000, end: 5100}
    - namedPort: metrics
  egress:
  - name: "deny-dns-servers"
    action: "Deny"
    to:
    - networks: ["8.8.8.8/32", "8.8.4.4/32"]
    ports:
    - portNumber: {protocol: UDP, port: 53}
  - name: "allow-nodes"
    action: "Allow"
    to:
    - nodes:
        matchExpressions:
        - {key: node-role.kubernetes.io/control-plane, operator: Exists}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: first
spec:
  priority: 3
  subject:
    pods:
      namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {app: db}}
  ingress:
  - action: Deny
    from:
    - namespaces: {matchLabels: {env: dev}}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: default
spec:
  subject:
    namespaces: {}
  ingress:
  - name: "default-deny"
    action: "Deny"
    from:
    - namespaces: {}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata:
  name: baseline-egress
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces: {}
  egress:
  - name: pass-dns
    action: Pass
    to:
    - namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
    protocols:
    - udp: {destinationPort: {number: 53}}
    - tcp: {destinationPort: {range: {start: 8000, end: 8100}}}
    - destinationNamedPort: dns-tcp
  - name: deny-rest
    action: Deny
    to:
    - networks: ["0.0.0.0/0"]
"#;

#[test]
fn administrator_policies() {
    let _s = settings();
    insta::assert_snapshot!("admin-policies", files(ADMIN));
}

const INVALID: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad-ports, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - ports:
    - {port: 70000}
    - {port: 80, endPort: 79}
    - {port: http, endPort: 90}
    - {protocol: ICMP}
    - {port: HTTP}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad-peers, namespace: shop}
spec:
  podSelector:
    matchExpressions:
    - {key: app, operator: In, values: []}
  egress:
  - to:
    - {}
    - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}
      podSelector: {}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}
    - ipBlock: {cidr: 10.0.0.0/33}
    - podSelector: {matchLabels: {"bad key!": x}}
  policyTypes: [Egress, Sideways]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec:
  priority: 10
  subject: {namespaces: {}}
  egress:
  - action: Allow
    to: [{domainNames: ["*.example.com"]}]
  - action: Allow
    to: [{networks: ["10.0.0.0/8"]}]
    ports: [{namedPort: http}]
  - action: Drop
    to: [{namespaces: {}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: b}
spec:
  priority: 10
  subject: {namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: c}
spec:
  priority: 1001
  subject: {namespaces: {}}
  ingress:
  - action: Pass
    from: []
  - action: Allow
    from: [{pods: {podSelector: {}}}]
    ports: [{portRange: {start: 90, end: 90}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: not-default}
spec:
  subject: {namespaces: {}}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: d}
spec:
  tier: Middle
  priority: 1
  subject: {namespaces: {}}
"#;

#[test]
fn invalid_and_untranslatable_objects_are_refused_with_file_object_and_field() {
    let _s = settings();
    insta::assert_snapshot!("problems", problems(INVALID));
}

#[test]
fn policy_types_are_inferred_and_rules_of_other_directions_ignored() {
    // Without policyTypes an egress section makes it Egress too; Ingress always.
    let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only-by-mistake, namespace: a}
spec:
  podSelector: {matchLabels: {app: x}}
  egress:
  - to: [{podSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: listed-ingress-only, namespace: b}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  egress:
  - to: [{podSelector: {}}]
"#;
    let out = files(yaml);
    // a: isolated both ways; b: ingress only, its egress rule ignored.
    assert!(out.contains("deny \"a.isolate-ingress\""), "{out}");
    assert!(out.contains("deny \"a.isolate-egress\""), "{out}");
    assert!(out.contains("deny \"b.isolate-ingress\""), "{out}");
    assert!(!out.contains("b.isolate-egress"), "{out}");
    assert!(!out.contains("b.listed-ingress-only.egress"), "{out}");
}

#[test]
fn output_is_formatted_and_checks_clean_and_is_deterministic() {
    let a = files(DOCS);
    let b = files(DOCS);
    assert_eq!(a, b);
    let objects = parse(ADMIN, "p.yaml").unwrap();
    let imported = translate(&objects, &Options::default()).unwrap();
    for (path, text) in &imported.files {
        assert_eq!(
            &ringfence_intent::format_source(0, text).unwrap(),
            text,
            "{path} is not as `ringfence fmt` writes it"
        );
    }
    // Every written policy is reported with its source.
    let r = &imported.report;
    assert_eq!(r.read.get("AdminNetworkPolicy"), Some(&2));
    assert!(r.policies.iter().all(|p| !p.source_object.is_empty()));
    let total: usize = r.written.iter().map(|f| f.policies).sum();
    assert_eq!(total, r.policies.len());
}
