#!/usr/bin/env bash
# Kubernetes import benchmark: 200 namespaces x 5 Deployments and 10
# NetworkPolicies each (2,000 policies), `import k8s` then `matrix -o txt` on
# the same manifests as inventory; wall time, CPU time and peak RSS.
#
#   bench/netpol.sh [DIR] [NAMESPACES]
. "$(dirname "$0")/lib.sh"
DIR=${1:-/tmp/ringfence-netpol-bench}
NS=${2:-200}
cargo build --release -q -p ringfence-cli
RF=$CARGO_TARGET_DIR/release/ringfence
rm -rf "$DIR" && mkdir -p "$DIR/m"
python3 - "$DIR/m" "$NS" <<'PY'
import sys
out, n = sys.argv[1], int(sys.argv[2])
apps = ["web", "api", "db", "cache", "worker"]
for i in range(n):
    ns = f"ns{i:03d}"
    docs = [f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{tier: t{i % 4}}}}}"]
    for a in apps:
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {a}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {a}}}}}
  template:
    metadata: {{labels: {{app: {a}}}}}
    spec: {{containers: [{{name: c, ports: [{{name: http, containerPort: 8080}}, {{containerPort: 9090}}]}}]}}""")
    docs.append(f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny, namespace: {ns}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress, Egress]}}")
    docs.append(f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: dns, namespace: {ns}}}\nspec: {{podSelector: {{}}, policyTypes: [Egress], egress: [{{ports: [{{protocol: UDP, port: 53}}]}}]}}")
    k = 0
    for s in apps:
        for d in apps:
            if s == d or k >= 8:
                continue
            k += 1
            docs.append(f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {d}-from-{s}, namespace: {ns}}}
spec:
  podSelector: {{matchLabels: {{app: {d}}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: {s}}}}}}}, {{namespaceSelector: {{matchLabels: {{tier: t{(i + 1) % 4}}}}}, podSelector: {{matchLabels: {{app: {s}}}}}}}]
    ports: [{{port: http}}, {{port: 9090}}]
  egress:
  - to: [{{ipBlock: {{cidr: 10.{i % 250}.0.0/16, except: [10.{i % 250}.1.0/24]}}}}]
  - to: [{{namespaceSelector: {{}}}}]
    ports: [{{port: 8080}}, {{port: 9090}}]""")
    open(f"{out}/{ns}.yaml", "w").write("\n---\n".join(docs) + "\n")
PY
uptime
/usr/bin/time -f 'import: %e s %U u %S s %M KB' "$RF" import k8s "$DIR/m" --out "$DIR/intent" >/dev/null
/usr/bin/time -f 'matrix: %e s %U u %S s %M KB' "$RF" matrix "$DIR/intent" --inventory "$DIR/m" -o txt >"$DIR/matrix.txt"
echo "$(grep -c '=>' "$DIR/matrix.txt") connections"
