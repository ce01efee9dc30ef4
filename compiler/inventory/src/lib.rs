//! Cluster inventory: what nodes, namespaces, pods and services exist.
//!
//! [`load`] reads one `kubectl get nodes,namespaces,pods,services -A -o json`
//! List per cluster ([`parse_list`] reads one), or Kubernetes manifests
//! (files and directories of YAML or JSON; [`manifests`]) that together
//! describe one cluster before deploy, and scores pods from Trivy reports.
//! The result is fully sorted, so everything built from it is deterministic.
//! [`digest`] fingerprints the inventory files. [`events`] keeps a cluster
//! current from watch events (a live inventory).

mod digest;
mod error;
pub mod events;
pub mod fields;
mod kubectl;
pub mod manifests;
pub mod model;
pub mod names;
mod owner;
mod prune;
mod trivy;

use std::path::{Path, PathBuf};

pub use digest::digest;
pub use error::InventoryError;
pub use kubectl::{CLUSTER_ANNOTATION, parse_list};
pub use model::Inventory;
pub use trivy::{Scores, normalize_image};

/// The cluster name of manifests given as inventory.
pub const MANIFESTS_CLUSTER: &str = "manifests";

/// Reads every cluster (one kubectl List file each; all the manifests given
/// together make one more, [`MANIFESTS_CLUSTER`]) and gives pods the CVSS
/// scores of the Trivy reports. Every problem in every file is reported.
///
/// A path is a kubectl List when it is a JSON `List` holding a `Node`;
/// directories, YAML files and other JSON are manifests.
pub fn load(inventory: &[PathBuf], trivy: &[PathBuf]) -> Result<Inventory, InventoryError> {
    read_all(inventory, trivy, None)
}

/// [`load`], and the [`digest`] of the same files, each file hashed from the
/// bytes parsed instead of read again (a directory of manifests is read
/// again for its digest).
pub fn load_digested(
    inventory: &[PathBuf],
    trivy: &[PathBuf],
) -> Result<(Inventory, String), InventoryError> {
    let mut hasher = digest::Hasher::default();
    let loaded = read_all(inventory, trivy, Some(&mut hasher))?;
    Ok((loaded, hasher.hex()))
}

fn read_all(
    inventory: &[PathBuf],
    trivy: &[PathBuf],
    mut hasher: Option<&mut digest::Hasher>,
) -> Result<Inventory, InventoryError> {
    let mut errors = Vec::new();
    let mut clusters = Vec::new();
    let mut manifests = Vec::new();
    for path in inventory {
        if path.is_dir() {
            match manifests::read(std::slice::from_ref(path)) {
                Ok(objects) => manifests.extend(objects),
                Err(InventoryError::Several(list)) => errors.extend(list),
                Err(e) => errors.push(e),
            }
            // Read again for the digest; a failure here is one the read above
            // already reported, unless the directory changed in between.
            if let Some(h) = hasher.as_deref_mut()
                && let Err(source) = h.dir(path)
                && errors.is_empty()
            {
                errors.push(InventoryError::Read {
                    file: path.display().to_string(),
                    source,
                });
            }
            continue;
        }
        let name = path.display().to_string();
        let read = manifests::read_text(path).and_then(|text| {
            // The fast reader parses a List it accepts once, and says whether
            // it is a cluster's; anything else is looked at again. The digest
            // is taken beside it.
            let (fast, ()) = rayon::join(
                || kubectl::fast::parse(&text, &name),
                || {
                    if let Some(h) = hasher.as_deref_mut() {
                        h.file(text.as_bytes());
                    }
                },
            );
            let cluster = match fast {
                Some((cluster, true)) => Some(Ok(cluster)),
                Some((_, false)) => None,
                None => is_kubectl_list(&text).then(|| kubectl::read_list(&text, &name)),
            };
            match cluster {
                Some(c) => c.map(|c| clusters.push(c)),
                None => manifests::parse(&text, &name).map(|objects| manifests.extend(objects)),
            }
        });
        match read {
            Ok(()) => {}
            Err(InventoryError::Several(list)) => errors.extend(list),
            Err(e) => errors.push(e),
        }
    }
    if !manifests.is_empty() || (clusters.is_empty() && errors.is_empty()) {
        match manifests::cluster(&manifests, MANIFESTS_CLUSTER) {
            Ok(c) => clusters.push(c),
            Err(InventoryError::Several(list)) => errors.extend(list),
            Err(e) => errors.push(e),
        }
    }
    let mut reports = Vec::new();
    for path in trivy {
        match read(path).and_then(|json| trivy::parse_report(&json, &path.display().to_string())) {
            Ok(report) => reports.push(report),
            Err(e) => errors.push(e),
        }
    }

    // Stable: of two files naming one cluster, the earlier comes first.
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    for w in clusters.windows(2).filter(|w| w[0].name == w[1].name) {
        errors.push(InventoryError::DuplicateCluster {
            cluster: w[0].name.clone(),
            first: w[0].source.clone(),
            second: w[1].source.clone(),
        });
    }
    if let Some(e) = InventoryError::from_list(errors) {
        return Err(e);
    }
    let mut inventory = Inventory { clusters };
    trivy::apply(&mut inventory, &reports);
    Ok(inventory)
}

/// Whether a file is a kubectl List of a cluster (JSON, `kind: List`, with a
/// `Node` among its items, a [`CLUSTER_ANNOTATION`], or no items at all), as
/// opposed to manifests.
fn is_kubectl_list(text: &str) -> bool {
    if !text.trim_start().starts_with('{') {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Item {
        kind: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        annotations: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
    }
    #[derive(serde::Deserialize)]
    struct List {
        kind: Option<String>,
        metadata: Option<Meta>,
        items: Option<Vec<Item>>,
    }
    let Ok(l) = serde_json::from_str::<List>(text) else {
        // Not even a List's shape: let the kubectl reader say what is wrong.
        return serde_json::from_str::<serde::de::IgnoredAny>(text).is_err();
    };
    let named = l
        .metadata
        .and_then(|m| m.annotations)
        .is_some_and(|a| a.contains_key(CLUSTER_ANNOTATION));
    l.kind.as_deref() == Some("List")
        && (named
            || l.items.as_ref().is_none_or(Vec::is_empty)
            || l.items
                .iter()
                .flatten()
                .any(|i| i.kind.as_deref() == Some("Node")))
}

fn read(path: &Path) -> Result<String, InventoryError> {
    std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        file: path.display().to_string(),
        source,
    })
}
