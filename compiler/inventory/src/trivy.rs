//! Vulnerability scores from Trivy image reports (`trivy image --format json`,
//! SchemaVersion 2): an image scores its highest CVSS, a pod the highest of
//! its images.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::InventoryError;
use crate::fields::Object;
use crate::kubectl::strip_position;
use crate::model::{Inventory, Pod};

/// What a Trivy report file must be.
const TRIVY_HELP: &str = "give the output of `trivy image --format json IMAGE` (SchemaVersion 2)";

/// The score of one scanned image.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Report {
    /// Normalised references the image is known by: `ArtifactName`, and its
    /// `Metadata.RepoDigests` for pods that name the image by digest.
    pub(crate) images: Vec<String>,
    /// The highest CVSS score of its vulnerabilities (0 without any).
    pub(crate) score: f64,
}

/// Reads one Trivy report.
pub(crate) fn parse_report(json: &str, file: &str) -> Result<Report, InventoryError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| InventoryError::Json {
        file: file.to_owned(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e),
        help: TRIVY_HELP,
    })?;
    let document = |problem: String| InventoryError::Document {
        file: file.to_owned(),
        problem,
        help: TRIVY_HELP,
    };
    if !doc.is_object() {
        return Err(document("not a Trivy report: not a JSON object".into()));
    }
    match doc.get("SchemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(v) => {
            return Err(document(format!(
                "Trivy report SchemaVersion {v} is not supported"
            )));
        }
        None => {
            return Err(document(
                "not a Trivy report: it has no `SchemaVersion`".into(),
            ));
        }
    }
    let artifact = doc
        .get("ArtifactName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let object = Object {
        file,
        name: if artifact.is_empty() {
            "the Trivy report".to_owned()
        } else {
            format!("the Trivy report for {artifact}")
        },
        help: TRIVY_HELP,
    };
    let root = object.root(&doc);
    let artifact = root
        .key("ArtifactName")
        .required_str("scan a container image: `trivy image --format json IMAGE`")?;

    let mut images = vec![normalize_image(artifact)];
    for d in root.at("Metadata.RepoDigests").items()? {
        images.extend(d.str()?.map(normalize_image));
    }
    images.sort();
    images.dedup();

    let mut score: f64 = 0.0;
    for result in root.key("Results").items()? {
        for vuln in result.key("Vulnerabilities").items()? {
            let Some(Value::Object(sources)) = vuln.key("CVSS").value() else {
                continue;
            };
            for source in sources.keys() {
                let s = vuln.key("CVSS").key(source);
                let v3 = s.key("V3Score");
                let (field, value) = match v3.f64()? {
                    Some(v) => (v3, v),
                    None => {
                        let v2 = s.key("V2Score");
                        match v2.f64()? {
                            Some(v) => (v2, v),
                            None => continue,
                        }
                    }
                };
                if !(0.0..=10.0).contains(&value) {
                    return Err(field.error(
                        format!("is {value}, outside the CVSS range 0-10"),
                        "re-run the scan; Trivy writes scores between 0 and 10",
                    ));
                }
                score = score.max(value);
            }
        }
    }
    Ok(Report { images, score })
}

/// Gives every pod the highest score among its images' reports.
pub(crate) fn apply(inventory: &mut Inventory, reports: &[Report]) {
    let scores = Scores::new(reports);
    for pod in inventory.clusters.iter_mut().flat_map(|c| &mut c.pods) {
        pod.cvss = scores.of(pod);
    }
}

/// The highest score of each image among Trivy reports, for pods that
/// arrive one by one (a live inventory).
#[derive(Clone, Debug, Default)]
pub struct Scores(BTreeMap<String, f64>);

impl Scores {
    pub(crate) fn new(reports: &[Report]) -> Self {
        let mut scores: BTreeMap<String, f64> = BTreeMap::new();
        for r in reports {
            for image in &r.images {
                let s = scores.entry(image.clone()).or_default();
                *s = s.max(r.score);
            }
        }
        Scores(scores)
    }

    /// Read Trivy reports (errors name the file).
    pub fn load(paths: &[std::path::PathBuf]) -> Result<Self, InventoryError> {
        let mut reports = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
                file: path.display().to_string(),
                source,
            });
            match text.and_then(|t| parse_report(&t, &path.display().to_string())) {
                Ok(r) => reports.push(r),
                Err(e) => errors.push(e),
            }
        }
        match InventoryError::from_list(errors) {
            Some(e) => Err(e),
            None => Ok(Scores::new(&reports)),
        }
    }

    /// A pod's score: the highest of its images' (0 when none was scanned).
    pub fn of(&self, pod: &Pod) -> f64 {
        if self.0.is_empty() {
            // No reports: nothing to look images up in.
            return 0.0;
        }
        pod.images
            .iter()
            .filter_map(|i| self.0.get(normalize_image(i).as_str()))
            .fold(0.0, |a: f64, &b| a.max(b))
    }
}

/// The canonical form of an image reference, as the container runtime
/// resolves it: `nginx` is `docker.io/library/nginx:latest`, `bitnami/redis:7`
/// is `docker.io/bitnami/redis:7`. A reference with a digest keeps the digest
/// as written (and drops any tag, which the digest overrides).
pub fn normalize_image(reference: &str) -> String {
    let reference = reference.trim();
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    // A tag's colon comes after the last slash; an earlier one is a registry port.
    let last_segment = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_segment..].rfind(':') {
        Some(i) => (
            &name_tag[..last_segment + i],
            Some(&name_tag[last_segment + i + 1..]),
        ),
        None => (name_tag, None),
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => ("docker.io", name),
    };
    let registry = match registry {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    };
    let library = if registry == "docker.io" && !path.contains('/') {
        "library/"
    } else {
        ""
    };
    match digest {
        Some(d) => format!("{registry}/{library}{path}@{d}"),
        None => format!("{registry}/{library}{path}:{}", tag.unwrap_or("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cluster, Pod};

    #[test]
    fn image_references_normalise_as_the_runtime_resolves_them() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("library/nginx:1.25", "docker.io/library/nginx:1.25"),
            (
                "docker.io/library/nginx:latest",
                "docker.io/library/nginx:latest",
            ),
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
            (
                "quay.io/prometheus/prometheus:v2.53.0",
                "quay.io/prometheus/prometheus:v2.53.0",
            ),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost/app:1", "localhost/app:1"),
            (
                "registry.example.com:5000/shop/cart:1.2",
                "registry.example.com:5000/shop/cart:1.2",
            ),
            (
                "nginx@sha256:abc123",
                "docker.io/library/nginx@sha256:abc123",
            ),
            (
                "nginx:1.25@sha256:abc123",
                "docker.io/library/nginx@sha256:abc123",
            ),
            (
                "registry.k8s.io/coredns/coredns:v1.11.1",
                "registry.k8s.io/coredns/coredns:v1.11.1",
            ),
        ];
        for (reference, expected) in cases {
            assert_eq!(normalize_image(reference), expected, "{reference}");
        }
    }

    /// A report shaped like Trivy 0.5x output.
    fn report(artifact: &str, scores: &[(&str, Option<f64>, Option<f64>)]) -> String {
        let vulns: Vec<Value> = scores
            .iter()
            .enumerate()
            .map(|(i, (source, v3, v2))| {
                let mut cvss = serde_json::Map::new();
                if let Some(v) = v3 {
                    cvss.insert(
                        "V3Vector".into(),
                        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into(),
                    );
                    cvss.insert("V3Score".into(), (*v).into());
                }
                if let Some(v) = v2 {
                    cvss.insert("V2Vector".into(), "AV:N/AC:L/Au:N/C:P/I:P/A:P".into());
                    cvss.insert("V2Score".into(), (*v).into());
                }
                serde_json::json!({
                    "VulnerabilityID": format!("CVE-2024-{:04}", 1000 + i),
                    "PkgName": "openssl",
                    "InstalledVersion": "3.0.11-1~deb12u1",
                    "FixedVersion": "3.0.13-1~deb12u1",
                    "Severity": "HIGH",
                    "CVSS": { *source: cvss },
                })
            })
            .collect();
        serde_json::json!({
            "SchemaVersion": 2,
            "CreatedAt": "2024-06-01T10:00:00.000000000Z",
            "ArtifactName": artifact,
            "ArtifactType": "container_image",
            "Metadata": {
                "OS": { "Family": "debian", "Name": "12.5" },
                "RepoDigests": [format!("{artifact}@sha256:0123abcd")],
            },
            "Results": [
                { "Target": format!("{artifact} (debian 12.5)"), "Class": "os-pkgs", "Type": "debian",
                  "Vulnerabilities": vulns },
                { "Target": "app/requirements.txt", "Class": "lang-pkgs", "Type": "pip" },
            ],
        })
        .to_string()
    }

    #[test]
    fn an_image_scores_its_highest_v3_score_falling_back_to_v2() {
        let json = report(
            "registry.example.com/shop/cart:1.0",
            &[
                ("nvd", Some(5.3), Some(5.0)),
                ("redhat", None, Some(7.5)),
                ("ghsa", Some(6.1), Some(9.3)),
                ("nvd", None, None),
            ],
        );
        let r = parse_report(&json, "cart.json").unwrap();
        // 7.5 (a V2 fallback) beats 6.1; the V2 9.3 is ignored where a V3 score exists.
        assert_eq!(r.score, 7.5);
        assert_eq!(
            r.images,
            [
                "registry.example.com/shop/cart:1.0",
                "registry.example.com/shop/cart@sha256:0123abcd"
            ]
        );
    }

    #[test]
    fn a_report_without_vulnerabilities_scores_zero() {
        let json = report("alpine:3.20", &[]);
        assert_eq!(parse_report(&json, "a.json").unwrap().score, 0.0);
        let bare = r#"{"SchemaVersion": 2, "ArtifactName": "alpine:3.20", "Results": null}"#;
        assert_eq!(parse_report(bare, "a.json").unwrap().score, 0.0);
    }

    fn pod(name: &str, images: &[&str]) -> Pod {
        Pod {
            namespace: "shop".into(),
            name: name.into(),
            labels: Default::default(),
            node: None,
            ips: vec![],
            host_network: false,
            ports: vec![],
            owner: None,
            images: images.iter().map(|s| s.to_string()).collect(),
            cvss: 0.0,
            phase: "Running".into(),
        }
    }

    #[test]
    fn a_pod_scores_the_highest_of_its_matched_images() {
        let mut inventory = Inventory {
            clusters: vec![Cluster {
                name: "c".into(),
                pods: vec![
                    pod("web", &["nginx", "registry.example.com/shop/cart:1.0"]),
                    pod(
                        "pinned",
                        &["registry.example.com/shop/cart@sha256:0123abcd"],
                    ),
                    pod("other", &["nginx:1.27"]),
                    pod("unscanned", &["busybox"]),
                ],
                ..Default::default()
            }],
        };
        let nvd = |image: &str, score: f64, file: &str| {
            parse_report(&report(image, &[("nvd", Some(score), None)]), file).unwrap()
        };
        let reports = [
            nvd("docker.io/library/nginx:latest", 9.8, "n.json"),
            // A second, lower report for the same image does not lower its score.
            nvd("nginx", 4.0, "n2.json"),
            nvd("registry.example.com/shop/cart:1.0", 5.3, "c.json"),
            // Nothing runs this image: fine.
            nvd("redis:7", 7.0, "r.json"),
        ];
        apply(&mut inventory, &reports);
        let scores: Vec<(&str, f64)> = inventory.clusters[0]
            .pods
            .iter()
            .map(|p| (p.name.as_str(), p.cvss))
            .collect();
        assert_eq!(
            scores,
            [
                ("web", 9.8),
                ("pinned", 5.3),
                ("other", 0.0),
                ("unscanned", 0.0)
            ]
        );
    }

    #[test]
    fn bad_reports_name_the_file_and_what_is_wrong() {
        let cases = [
            (
                "{\"SchemaVersion\": 2,\n \"ArtifactName\": }",
                "t.json:2:18: not valid JSON: expected value",
            ),
            ("[1, 2]", "t.json: not a Trivy report: not a JSON object"),
            (
                "{\"ArtifactName\": \"x\"}",
                "t.json: not a Trivy report: it has no `SchemaVersion`",
            ),
            (
                "{\"SchemaVersion\": 1, \"ArtifactName\": \"x\"}",
                "t.json: Trivy report SchemaVersion 1 is not supported",
            ),
            (
                "{\"SchemaVersion\": 2, \"Results\": []}",
                "t.json: the Trivy report: `ArtifactName` is missing",
            ),
            (
                r#"{"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Vulnerabilities": [{"CVSS": {"nvd": {"V3Score": "high"}}}]}]}"#,
                "t.json: the Trivy report for x: `Results[0].Vulnerabilities[0].CVSS.nvd.V3Score` is a string, expected a number",
            ),
            (
                r#"{"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Vulnerabilities": [{"CVSS": {"nvd": {"V2Score": 98}}}]}]}"#,
                "t.json: the Trivy report for x: `Results[0].Vulnerabilities[0].CVSS.nvd.V2Score` is 98, outside the CVSS range 0-10",
            ),
        ];
        for (json, expected) in cases {
            let message = parse_report(json, "t.json").unwrap_err().to_string();
            assert!(
                message.starts_with(expected),
                "{message}\n  expected: {expected}"
            );
            assert!(message.contains("; "), "no advice in: {message}");
        }
    }
}
