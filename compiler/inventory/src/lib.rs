//! Cluster inventory: what nodes, namespaces, pods and services exist.
//!
//! [`load`] reads one `kubectl get nodes,namespaces,pods,services -A -o json`
//! List per cluster ([`parse_list`] reads one) and scores pods from Trivy
//! reports. The result is fully sorted, so everything built from it is
//! deterministic. [`digest`] fingerprints the inventory files. [`events`]
//! keeps a cluster current from watch events (a live inventory).

mod digest;
mod error;
pub mod events;
mod fields;
mod kubectl;
pub mod model;
mod owner;
mod prune;
mod trivy;

use std::path::{Path, PathBuf};

pub use digest::digest;
pub use error::InventoryError;
pub use kubectl::{CLUSTER_ANNOTATION, parse_list};
pub use model::Inventory;
pub use trivy::{Scores, normalize_image};

/// Reads every cluster (one List file each) and gives pods the CVSS scores of
/// the Trivy reports. Every problem in every file is reported.
pub fn load(inventory: &[PathBuf], trivy: &[PathBuf]) -> Result<Inventory, InventoryError> {
    let mut errors = Vec::new();
    let mut clusters = Vec::new();
    for path in inventory {
        match read(path).and_then(|json| parse_list(&json, &path.display().to_string())) {
            Ok(cluster) => clusters.push(cluster),
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

fn read(path: &Path) -> Result<String, InventoryError> {
    std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        file: path.display().to_string(),
        source,
    })
}
