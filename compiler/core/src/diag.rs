//! The diagnostics the compiler core reports, one constructor per code.
//!
//! | code | severity | when |
//! |---|---|---|
//! | `ringfence::cluster-split` | error | workloads of one cluster are members of two top-level scopes |
//! | `ringfence::scopes-share-workloads` | warning | a workload is in two scopes neither of which is inside the other |
//! | `ringfence::shadowed-policy` | warning | every rule of a policy, everywhere it applies, is decided earlier |
//! | `ringfence::conflicting-policy` | warning | an earlier policy with the opposite action decides part of a later one |
//! | `ringfence::unknown-service` | warning | a `service:NS/NAME` no cluster has |
//! | `ringfence::unknown-service-port` | warning | policy ports a provided service does not have |
//! | `ringfence::unresolved-target-port` | warning | a named `targetPort` a backing pod does not declare |

use ringfence_intent::Diagnostic;
use ringfence_intent::diagnostics::Code;
use ringfence_intent::model::Span;

/// Workloads of `cluster` fall into two top-level scopes.
pub(crate) fn cluster_split(
    cluster: &str,
    a: (&str, Span),
    b: (&str, Span),
    example: &str,
) -> Diagnostic {
    Diagnostic::error(
        Code::ClusterSplit,
        format!(
            "cluster `{cluster}` is split between top-level scopes `{}` and `{}` (e.g. {example} is in `{}`)",
            a.0, b.0, b.0
        ),
    )
    .with_label(b.1, format!("`{}` takes workloads of `{cluster}`", b.0))
    .with_label(a.1, format!("`{}` takes workloads of `{cluster}` too", a.0))
    .with_help(
        "map each cluster to exactly one top-level scope: narrow the queries of the \
         top-level scopes (e.g. `cluster \"…\"`) so they do not share a cluster",
    )
}

/// A workload in two scopes neither of which contains the other: `later`
/// comes later in priority order, so it counts as the more specific one.
pub(crate) fn overlapping_scopes(
    (earlier, earlier_span): (&str, Span),
    (later, later_span): (&str, Span),
    example: &str,
    count: usize,
) -> Diagnostic {
    let others = match count {
        1 => String::new(),
        n => format!(
            " and {} other workload{}",
            n - 1,
            if n == 2 { "" } else { "s" }
        ),
    };
    let verb = if count == 1 { "is" } else { "are" };
    Diagnostic::warning(
        Code::ScopesShareWorkloads,
        format!(
            "`{example}`{others} {verb} in both `{earlier}` and `{later}`, neither inside the \
             other: `{later}` comes later in priority order, so its default policies decide \
             before `{earlier}`'s and its catch-all applies"
        ),
    )
    .with_label(
        later_span,
        format!("`{later}` counts as the more specific scope"),
    )
    .with_label(
        earlier_span,
        format!("`{earlier}` takes the same workloads"),
    )
    .with_help(
        "declare one scope inside the other, or narrow their queries so they do not share \
         workloads; the order of sibling scopes is their declaration order",
    )
}

/// A policy that never decides a flow.
pub(crate) fn shadowed_policy(id: &str, span: Span, by: &[(String, Option<Span>)]) -> Diagnostic {
    let names: Vec<String> = by.iter().map(|(id, _)| format!("`{id}`")).collect();
    let mut d = Diagnostic::warning(
        Code::ShadowedPolicy,
        format!(
            "policy `{id}` never decides a flow: everything it matches is decided earlier by {}",
            if names.is_empty() {
                "earlier rules".to_string()
            } else {
                names.join(", ")
            }
        ),
    )
    .with_label(span, "shadowed everywhere it applies");
    for (id, s) in by.iter().filter_map(|(id, s)| Some((id, (*s)?))).take(3) {
        d = d.with_label(s, format!("`{id}` decides these flows first"));
    }
    d.with_help("remove it, or narrow or reorder the earlier policies if it should decide")
}

/// An earlier policy with the opposite action takes part of a later one.
pub(crate) fn conflicting_policy(
    (later, later_span, later_action): (&str, Span, &str),
    (earlier, earlier_span, earlier_action): (&str, Span, &str),
) -> Diagnostic {
    Diagnostic::warning(
        Code::ConflictingPolicy,
        format!(
            "policy `{later}` ({later_action}) is partly overridden by the earlier `{earlier}` \
             ({earlier_action})"
        ),
    )
    .with_label(
        later_span,
        format!("some flows it matches are decided by `{earlier}`"),
    )
    .with_label(
        earlier_span,
        format!("`{earlier}` comes first in the global order"),
    )
    .with_help(
        "if this is intended (an exception), nothing to do; otherwise narrow one of the \
         two policies so their flows do not overlap",
    )
}

/// A policy names a service no cluster has.
pub(crate) fn unknown_service(policy: &str, span: Span, service: &str) -> Diagnostic {
    Diagnostic::warning(
        Code::UnknownService,
        format!("policy `{policy}` refers to service `{service}`, which no cluster has"),
    )
    .with_label(span, "this policy opens nothing for that service")
    .with_help("check the namespace and name, or the inventory given to the compiler")
}

/// Policy ports a service does not have.
pub(crate) fn unknown_service_port(
    policy: &str,
    span: Span,
    service: &str,
    missing: &str,
    has: &str,
) -> Diagnostic {
    Diagnostic::warning(
        Code::UnknownServicePort,
        format!("policy `{policy}` names port(s) {missing} that service `{service}` does not have"),
    )
    .with_label(span, "these ports of the service open nothing")
    .with_help(format!(
        "policy ports name service ports; `{service}` has {has}"
    ))
}

/// A named target port a backing pod does not declare.
pub(crate) fn unresolved_target_port(
    policy: &str,
    span: Span,
    service: &str,
    target: &str,
    pod: &str,
) -> Diagnostic {
    Diagnostic::warning(
        Code::UnresolvedTargetPort,
        format!(
            "service `{service}` targets port `{target}`, which pod `{pod}` does not declare; \
             policy `{policy}` skips that pod"
        ),
    )
    .with_label(span, format!("opens nothing on `{pod}` for this port"))
    .with_help(format!(
        "name the container port `{target}` in the pod spec, or use a numeric targetPort"
    ))
}
