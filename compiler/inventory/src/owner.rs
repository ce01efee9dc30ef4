//! Which workload owns a pod, from its `metadata.ownerReferences`.
//!
//! Kubernetes names a Deployment's pods through a ReplicaSet called
//! `<deployment>-<pod-template-hash>`; the hash is stripped so that every
//! revision of a Deployment groups under one owner.

use crate::model::{Labels, Owner};

/// The label the Deployment controller puts on the pods (and the name) of each ReplicaSet.
const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// One entry of `metadata.ownerReferences`.
#[derive(Debug)]
pub(crate) struct OwnerRef<'a> {
    /// `kind`.
    pub(crate) kind: &'a str,
    /// `name`.
    pub(crate) name: &'a str,
    /// `controller`.
    pub(crate) controller: bool,
}

/// The owning workload: the controller reference (else the first reference),
/// a ReplicaSet that looks like a Deployment's mapped to the Deployment.
pub(crate) fn derive(refs: &[OwnerRef<'_>], pod_labels: &Labels) -> Option<Owner> {
    let owner = refs
        .iter()
        .find(|r| r.controller)
        .or_else(|| refs.first())?;
    if owner.kind == "ReplicaSet"
        && let Some(deployment) = deployment_of(owner.name, pod_labels)
    {
        return Some(Owner {
            kind: "Deployment".to_owned(),
            name: deployment.to_owned(),
        });
    }
    Some(Owner {
        kind: owner.kind.to_owned(),
        name: owner.name.to_owned(),
    })
}

/// The Deployment a ReplicaSet named `replica_set` belongs to, if its name has
/// the Deployment controller's shape.
fn deployment_of<'a>(replica_set: &'a str, pod_labels: &Labels) -> Option<&'a str> {
    match pod_labels.get(TEMPLATE_HASH_LABEL) {
        // The label is authoritative: the ReplicaSet is `<deployment>-<hash>`, or not a Deployment's.
        Some(hash) => replica_set
            .strip_suffix(hash.as_str())
            .and_then(|rest| rest.strip_suffix('-'))
            .filter(|d| !d.is_empty()),
        None => {
            let (deployment, suffix) = replica_set.rsplit_once('-')?;
            (!deployment.is_empty() && looks_like_template_hash(suffix)).then_some(deployment)
        }
    }
}

/// Whether `s` could be a pod-template hash: Kubernetes encodes a 32-bit hash
/// with `rand.SafeEncodeString`, whose alphabet has no vowels (so real words
/// such as `backend` are never mistaken for one), in at most 10 characters.
fn looks_like_template_hash(s: &str) -> bool {
    const ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
    (5..=10).contains(&s.len()) && s.chars().all(|c| ALPHABET.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r<'a>(kind: &'a str, name: &'a str, controller: bool) -> OwnerRef<'a> {
        OwnerRef {
            kind,
            name,
            controller,
        }
    }

    fn owner(kind: &str, name: &str) -> Option<Owner> {
        Some(Owner {
            kind: kind.into(),
            name: name.into(),
        })
    }

    fn hash_label(h: &str) -> Labels {
        Labels::from([(TEMPLATE_HASH_LABEL.to_owned(), h.to_owned())])
    }

    #[test]
    fn owner_derivation_table() {
        let none = Labels::new();
        let cases: Vec<(Vec<OwnerRef>, Labels, Option<Owner>)> = vec![
            // The Deployment controller's naming, with its label.
            (
                vec![r("ReplicaSet", "frontend-7d9f8b6c5d", true)],
                hash_label("7d9f8b6c5d"),
                owner("Deployment", "frontend"),
            ),
            // A Deployment whose name has dashes.
            (
                vec![r("ReplicaSet", "legacy-reports-5c689d88bb", true)],
                hash_label("5c689d88bb"),
                owner("Deployment", "legacy-reports"),
            ),
            // Without the label: a hash-looking suffix is stripped.
            (
                vec![r("ReplicaSet", "frontend-7d9f8b6c5d", true)],
                none.clone(),
                owner("Deployment", "frontend"),
            ),
            // Without the label: a word is not a hash (it has vowels).
            (
                vec![r("ReplicaSet", "web-backend", true)],
                none.clone(),
                owner("ReplicaSet", "web-backend"),
            ),
            // Without the label: too short to be a hash.
            (
                vec![r("ReplicaSet", "web-v2", true)],
                none.clone(),
                owner("ReplicaSet", "web-v2"),
            ),
            // A label that does not match the name: a hand-made ReplicaSet.
            (
                vec![r("ReplicaSet", "frontend-7d9f8b6c5d", true)],
                hash_label("abc"),
                owner("ReplicaSet", "frontend-7d9f8b6c5d"),
            ),
            // A ReplicaSet named just like the hash.
            (
                vec![r("ReplicaSet", "7d9f8b6c5d", true)],
                hash_label("7d9f8b6c5d"),
                owner("ReplicaSet", "7d9f8b6c5d"),
            ),
            (
                vec![r("StatefulSet", "postgres", true)],
                none.clone(),
                owner("StatefulSet", "postgres"),
            ),
            (
                vec![r("DaemonSet", "node-exporter", true)],
                hash_label("irrelevant"),
                owner("DaemonSet", "node-exporter"),
            ),
            // A CronJob's Job keeps kind Job and its timestamped name.
            (
                vec![r("Job", "loadgen-28930140", true)],
                none.clone(),
                owner("Job", "loadgen-28930140"),
            ),
            // Static pods are owned by their node.
            (
                vec![r("Node", "prod-eu1-linux-a", true)],
                none.clone(),
                owner("Node", "prod-eu1-linux-a"),
            ),
            // The controller reference wins over an earlier plain one.
            (
                vec![
                    r("ConfigMap", "settings", false),
                    r("StatefulSet", "redis", true),
                ],
                none.clone(),
                owner("StatefulSet", "redis"),
            ),
            // No controller: the first reference.
            (
                vec![r("ConfigMap", "settings", false), r("Secret", "x", false)],
                none.clone(),
                owner("ConfigMap", "settings"),
            ),
            (vec![], none.clone(), None),
        ];
        for (refs, labels, expected) in cases {
            assert_eq!(derive(&refs, &labels), expected, "{refs:?} {labels:?}");
        }
    }
}
