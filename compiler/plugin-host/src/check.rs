//! What a backend cannot express in an IR, from its declared capabilities,
//! found before anything is rendered so the compiler can point at policies.

use std::collections::BTreeSet;
use std::fmt;

use ringfence_schema::ir::{Action, Mode, NodeIr};
use ringfence_schema::plugin::PluginInfo;

/// A capability a backend may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// IPv6 addresses.
    Ipv6,
    /// Port ranges.
    PortRanges,
    /// Per-rule logging.
    Logging,
    /// Analyze mode.
    AnalyzeMode,
    /// NodePort / LoadBalancer exposures.
    Exposures,
    /// The target's rule limit.
    MaxRules,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Ipv6 => "ipv6",
            Capability::PortRanges => "port ranges",
            Capability::Logging => "logging",
            Capability::AnalyzeMode => "analyze mode",
            Capability::Exposures => "exposures",
            Capability::MaxRules => "max rules",
        })
    }
}

/// One thing the backend cannot express.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CapabilityProblem {
    /// The missing capability.
    pub capability: Capability,
    /// For humans: what, where, and what to do.
    pub message: String,
    /// The rule concerned, if any.
    pub rule: Option<String>,
    /// The policy concerned, if any.
    pub policy: Option<String>,
}

impl CapabilityProblem {
    /// Whether the backend would enforce something other than the IR says.
    /// Missing logging, or analyze mode without counting, loses telemetry
    /// but not meaning: traffic is still decided as the IR says.
    pub fn changes_meaning(&self) -> bool {
        !matches!(
            self.capability,
            Capability::Logging | Capability::AnalyzeMode
        )
    }
}

/// Every problem, sorted, one per (capability, rule).
pub(crate) fn check(info: &PluginInfo, ir: &NodeIr) -> Vec<CapabilityProblem> {
    let caps = &info.capabilities;
    let backend = &info.name;
    let mut out = BTreeSet::new();
    let mut add = |capability, message: String, rule: Option<&str>, policy: Option<&str>| {
        out.insert(CapabilityProblem {
            capability,
            message,
            rule: rule.map(str::to_owned),
            policy: policy.map(str::to_owned),
        });
    };
    let mut rules = 0u64;
    for c in &ir.chains {
        if c.mode == Mode::Analyze && !caps.analyze_mode {
            for r in c.rules.iter().filter(|r| r.action == Action::Deny) {
                add(
                    Capability::AnalyzeMode,
                    format!(
                        "{backend} cannot count what analyze mode lets through: the denies of policy {} pass uncounted",
                        r.policy
                    ),
                    Some(&r.id),
                    Some(&r.policy),
                );
            }
        }
        for r in &c.rules {
            rules += 1;
            if r.log && !caps.logging {
                add(
                    Capability::Logging,
                    format!(
                        "{backend} cannot log per rule, asked by policy {}",
                        r.policy
                    ),
                    Some(&r.id),
                    Some(&r.policy),
                );
            }
            if !caps.port_ranges && r.ports.iter().any(|p| p.start != p.end) {
                add(
                    Capability::PortRanges,
                    format!(
                        "{backend} supports single ports only; policy {} uses a range",
                        r.policy
                    ),
                    Some(&r.id),
                    Some(&r.policy),
                );
            }
            if !caps.ipv6
                && let Some(s) = r.peer.as_deref().and_then(|s| ir.set(s))
                && !s.v6.is_empty()
            {
                add(
                    Capability::Ipv6,
                    format!(
                        "{backend} has no IPv6; policy {} names IPv6 peers",
                        r.policy
                    ),
                    Some(&r.id),
                    Some(&r.policy),
                );
            }
        }
    }
    if !caps.ipv6 {
        for e in &ir.endpoints {
            if e.addresses.iter().any(|a| a.is_ipv6()) {
                add(
                    Capability::Ipv6,
                    format!(
                        "{backend} has no IPv6; endpoint {} has IPv6 addresses",
                        e.name
                    ),
                    None,
                    None,
                );
            }
        }
    }
    if !caps.exposures {
        for x in &ir.exposures {
            add(
                Capability::Exposures,
                format!(
                    "{backend} cannot judge NodePort/LoadBalancer traffic; service {} is exposed on node {}",
                    x.service, ir.node
                ),
                None,
                None,
            );
        }
    }
    if let Some(max) = caps.max_rules
        && rules > max
    {
        add(
            Capability::MaxRules,
            format!(
                "node {} needs {rules} rules; {backend} accepts at most {max}",
                ir.node
            ),
            None,
            None,
        );
    }
    out.into_iter().collect()
}
