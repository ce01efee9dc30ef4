//! Policy discovery: intent from observed flows (`schema/docs/discovery.md`).
//!
//! The stages, in order:
//!
//! 1. **Aggregate** (streaming, parallel): each flow is placed in the
//!    inventory (pod → its owner workload, service address → the service,
//!    node address → the node or the host-network pod on that port, anything
//!    else → an external /24 or /64), checked against the exclusion filters
//!    and added to its conversation. Memory grows with conversations, never
//!    with flows.
//! 2. **Filter**: replies and conversations below `--min-flows` go.
//! 3. **Group**: units per granularity; units that behave alike merge.
//! 4. **Generalize and compress**: ports fold into ranges per level; what
//!    almost all workloads of a namespace (namespaces of a cluster) do moves
//!    to the namespace (cluster); policies covered by broader ones go.
//! 5. **Write**: each group as a filter (labels first, checked against the
//!    whole inventory), externals, policies with their evidence, in the
//!    intent language; and a [`Summary`].
//!
//! The result depends only on the inventory, the flows and the options —
//! not on the order flows arrive in, nor on the number of threads.

use std::path::PathBuf;

use ringfence_flows::clickhouse::{Table, TableRead};
use ringfence_flows::{Flow, FlowError, ReadOptions, ReadStats, TableInput, Window, fold_files};
use ringfence_inventory::model::Inventory;

mod aggregate;
mod book;
mod compress;
mod emit;
mod exclude;
mod group;
mod ports;
mod select;
mod summary;

use aggregate::{Acc, Aggregator};
use book::Book;
pub use compress::COMPRESS_SHARE;
pub use exclude::{ExcludeError, Exclusions};
pub use ports::{PortGeneralization, SYSTEM_PORTS, Thresholds};
pub use select::Selection;
pub use summary::{ConversationCounts, FlowCounts, Group, PolicySummary, Settings, Summary};

/// How finely discovery groups workloads (the seed's step 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    /// The whole cluster is one boundary: policies for traffic crossing it,
    /// plus one intra-cluster allow.
    Cluster,
    /// One policy object per namespace (a namespace ringfence).
    Namespace,
    /// A service and the workloads behind it are one unit.
    Coarse,
    /// Workloads and services are separate units.
    Fine,
}

impl Granularity {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Cluster => "cluster",
            Granularity::Namespace => "namespace",
            Granularity::Coarse => "coarse",
            Granularity::Fine => "fine",
        }
    }

    /// The Jaccard similarity above which units merge: `fine` merges only
    /// identical behaviour; `coarse` also near-identical behaviour.
    pub fn similarity(self) -> f64 {
        match self {
            Granularity::Coarse => 0.75,
            _ => 1.0,
        }
    }
}

/// What to discover and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// How finely to group.
    pub granularity: Granularity,
    /// How boldly to fold ports into ranges.
    pub port_generalization: PortGeneralization,
    /// Conversations that never become policy.
    pub exclusions: Exclusions,
    /// Conversations seen fewer times are left out.
    pub min_flows: u64,
    /// Write `policies scope="NAME"` blocks for an existing scope instead
    /// of a self-contained intent.
    pub scope: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            granularity: Granularity::Coarse,
            port_generalization: PortGeneralization::Medium,
            exclusions: Exclusions::default(),
            min_flows: 1,
            scope: None,
        }
    }
}

/// Why discovery could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// A flow file could not be read.
    #[error(transparent)]
    Flows(#[from] FlowError),
    /// The inventory has no cluster.
    #[error(
        "the inventory has no cluster: give `--inventory` the output of `kubectl get nodes,namespaces,pods,services -A -o json`"
    )]
    EmptyInventory,
    /// `--scope` is empty.
    #[error("`--scope` needs the name of a scope declared in your intent")]
    EmptyScope,
}

/// One file to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    /// Its contents.
    pub text: String,
}

/// The result: intent files and a summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// The files, sorted by path.
    pub files: Vec<OutputFile>,
    /// What was read, found and written.
    pub summary: Summary,
}

/// A discovery in progress: feed it flows, then [`Discoverer::finish`].
pub struct Discoverer<'a> {
    book: Book<'a>,
    opts: Options,
    masks: Vec<(u64, u64)>,
    accs: Vec<Acc>,
    inputs: ReadStats,
}

impl<'a> Discoverer<'a> {
    /// Start a discovery against an inventory.
    pub fn new(inventory: &'a Inventory, opts: Options) -> Result<Self, DiscoverError> {
        if inventory.clusters.is_empty() {
            return Err(DiscoverError::EmptyInventory);
        }
        if opts.scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(DiscoverError::EmptyScope);
        }
        let book = Book::new(inventory);
        let masks = opts.exclusions.masks(&book);
        Ok(Discoverer {
            book,
            opts,
            masks,
            accs: Vec::new(),
            inputs: ReadStats::default(),
        })
    }

    /// Add one flow.
    pub fn observe(&mut self, flow: Flow) {
        let agg = Aggregator::new(&self.book, &self.opts.exclusions, &self.masks);
        if self.accs.is_empty() {
            self.accs.push(agg.new_acc());
        }
        agg.fold(&mut self.accs[0], flow);
    }

    /// Read flow files (each in its own format), in parallel chunks.
    pub fn read_files(
        &mut self,
        paths: &[PathBuf],
        read: &ReadOptions,
    ) -> Result<(), DiscoverError> {
        let agg = Aggregator::new(&self.book, &self.opts.exclusions, &self.masks);
        let (accs, stats) = fold_files(paths, read, || agg.new_acc(), |acc, f| agg.fold(acc, f))?;
        self.accs.extend(accs);
        self.inputs.files.extend(stats.files);
        self.inputs.errors.extend(stats.errors);
        self.inputs.errors.sort();
        self.inputs.errors.truncate(read.max_errors);
        Ok(())
    }

    /// How [`Discoverer::read_table`] reads a table over `window` (to send
    /// its query ahead with [`Table::ask_early`]).
    pub fn table_read(window: &Window) -> TableRead {
        TableRead {
            window: *window,
            src_ports: true,
            threads: 0,
            max_errors: ReadOptions::default().max_errors,
        }
    }

    /// Read a ClickHouse flow table: the engine aggregates the window's
    /// flows into conversations (with their source ports), folded in
    /// parallel as they arrive; the result equals reading the same flows
    /// from files.
    pub fn read_table(&mut self, table: &Table, window: &Window) -> Result<(), DiscoverError> {
        let agg = Aggregator::new(&self.book, &self.opts.exclusions, &self.masks);
        let (accs, stats) = table
            .fold_conversations(
                &Self::table_read(window),
                || agg.new_acc(),
                |acc, c| agg.fold_conversation(acc, &c),
            )
            .map_err(FlowError::from)?;
        self.accs.extend(accs);
        self.inputs.tables.push(TableInput {
            url: table.url().to_string(),
            layout: table.layout().name(),
            stats,
        });
        Ok(())
    }

    /// Group, generalize, compress and write.
    pub fn finish(self) -> Discovery {
        let Discoverer {
            book,
            opts,
            accs,
            inputs,
            ..
        } = self;
        let convs = aggregate::finish(accs, opts.min_flows);
        let mut units = group::Units::new(&book, opts.granularity, &convs.convs);
        let merged = units.merge_alike(&convs.convs, opts.granularity.similarity());
        let edges = units.edges(&convs.convs);
        let atoms = compress::atoms(&units, &edges, opts.port_generalization);
        let atoms = compress::compress(atoms, &mut units, &book);
        let (atoms, redundant) = compress::remove_redundant(atoms, &units);
        let settings = emit::Settings {
            scope: opts.scope.as_deref(),
            header: format!(
                "Granularity {}, port generalization {}, min-flows {}.",
                opts.granularity.name(),
                opts.port_generalization.name(),
                opts.min_flows
            ),
            level: opts.port_generalization.name(),
        };
        let mut model = emit::Model::build(&book, &units, &atoms, &settings);
        if opts.scope.is_none() {
            // Every cluster gets its scope, with or without observed traffic.
            model.scopes = (0..book.inv.clusters.len()).collect();
        }
        let files: Vec<OutputFile> = model
            .render(&book, &settings)
            .into_iter()
            .map(|(path, text)| OutputFile { path, text })
            .collect();
        let summary = summarize(
            &book, &opts, &convs, &model, &files, inputs, redundant, merged,
        );
        Discovery { files, summary }
    }
}

/// Discover from flow files in one call.
pub fn discover(
    inventory: &Inventory,
    flows: &[PathBuf],
    read: &ReadOptions,
    opts: Options,
) -> Result<Discovery, DiscoverError> {
    let mut d = Discoverer::new(inventory, opts)?;
    d.read_files(flows, read)?;
    Ok(d.finish())
}

#[allow(clippy::too_many_arguments)] // the one place that gathers every count
fn summarize(
    book: &Book<'_>,
    opts: &Options,
    convs: &aggregate::Conversations,
    model: &emit::Model,
    files: &[OutputFile],
    inputs: ReadStats,
    redundant: usize,
    merged: usize,
) -> Summary {
    let t = &convs.tally;
    let total = inputs.total();
    let excluded_by = opts
        .exclusions
        .names()
        .zip(t.excluded.iter().copied().chain(std::iter::repeat(0)))
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    let flows = FlowCounts {
        lines: total.lines,
        read: t.read,
        unparsable: total.unparsable,
        replies_marked: total.replies,
        not_flows: total.ignored,
        dropped_by_network: t.dropped,
        excluded: t.excluded.iter().sum(),
        excluded_by,
        unknown_addresses: t.unknown,
        ambiguous_addresses: t.ambiguous,
        outside_inventory: t.outside,
        replies_detected: convs.replies.1,
        below_min_flows: convs.below_min.1,
        covered: convs.convs.iter().map(|(_, ev)| ev.flows).sum(),
    };
    let mut groups: Vec<Group> = model
        .filters
        .iter()
        .map(|f| Group {
            name: f.name.clone(),
            kind: "filter".into(),
            selected_by: Some(emit::selection(f)),
            query: emit::describe_selection(f),
            members: f.members.clone(),
            file: f.file.path(book),
        })
        .collect();
    groups.extend(model.externals.iter().map(|e| {
        Group {
            name: e.name.clone(),
            kind: "external".into(),
            selected_by: None,
            query: e
                .cidrs
                .iter()
                .map(|c| format!("cidr \"{c}\""))
                .collect::<Vec<_>>()
                .join(" "),
            members: e.cidrs.iter().map(|c| c.to_string()).collect(),
            file: emit::FileKey::Externals.path(book),
        }
    }));
    let policies = model
        .policies
        .iter()
        .map(|p| PolicySummary {
            scope: p.scope.clone(),
            name: p.name.clone(),
            file: p.file.path(book),
            from: p.from.clone(),
            to: p.to.clone(),
            proto: p.proto.to_string(),
            ports: p
                .ports
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(","),
            flows: p.ev.flows,
            first_seen: p.ev.first.to_rfc3339(),
            last_seen: p.ev.last.to_rfc3339(),
        })
        .collect();
    let mut notes = Vec::new();
    for f in &inputs.files {
        if let Some(t) = &f.assumed_time {
            notes.push(format!(
                "{}: conntrack listings carry no time; its flows are dated {t} (the file's modification time)",
                f.path.display()
            ));
        }
    }
    if t.unknown > 0 {
        let ex: Vec<String> = t.unknown_examples.iter().map(|i| i.to_string()).collect();
        notes.push(format!(
            "{} flows had an address inside the clusters' ranges that no pod or service has (e.g. {}): pods gone since the inventory was taken? Take the inventory and the flows at the same time",
            t.unknown,
            ex.join(", ")
        ));
    }
    let through_lb = convs
        .convs
        .iter()
        .filter(|(k, _)| matches!(k.src, book::Peer::Entity(_)) && k.via == book::Via::LoadBalancer)
        .count();
    if through_lb > 0 {
        notes.push(format!(
            "{through_lb} conversations from inside a cluster went to a load balancer's address: the policy to the service admits them at its pods, but the consumer's egress is judged at the load balancer's address, which intent cannot name (externals exclude what the clusters own); have such consumers use the service's clusterIP or allow them by hand"
        ));
    }
    for e in &inputs.errors {
        notes.push(e.to_string());
    }
    for t in &inputs.tables {
        notes.extend(t.stats.errors.iter().cloned());
    }
    if let Some(scope) = &opts.scope {
        notes.push(format!(
            "policies are written for scope {scope}: they apply only to its members, so {scope} must contain both ends of every policy (or add the other side's policy in the scope that holds it)"
        ));
    }
    Summary {
        settings: Settings {
            granularity: opts.granularity.name().into(),
            port_generalization: opts.port_generalization.name().into(),
            min_flows: opts.min_flows,
            scope: opts.scope.clone(),
            exclusions: opts.exclusions.names().map(str::to_owned).collect(),
        },
        flows,
        conversations: ConversationCounts {
            kept: convs.convs.len() as u64,
            replies: convs.replies.0,
            below_min_flows: convs.below_min.0,
        },
        groups,
        policies,
        redundant_removed: redundant,
        merged_units: merged,
        files: files.iter().map(|f| f.path.clone()).collect(),
        notes,
        inputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::tests::{flow, shop};

    #[test]
    fn shop_end_to_end_smoke() {
        let inv = shop();
        for g in [
            Granularity::Fine,
            Granularity::Coarse,
            Granularity::Namespace,
            Granularity::Cluster,
        ] {
            let mut d = Discoverer::new(
                &inv,
                Options {
                    granularity: g,
                    ..Options::default()
                },
            )
            .unwrap();
            for (s, t, p) in [
                ("10.244.1.10", "10.96.0.20", 80),
                ("10.244.1.11", "10.96.0.20", 80),
                ("10.244.1.20", "10.244.1.30", 6379),
                ("198.51.100.7", "192.168.1.10", 30080),
                ("10.244.1.10", "192.168.1.10", 9100),
            ] {
                d.observe(flow(s, t, p));
            }
            let out = d.finish();
            for f in &out.files {
                eprintln!("==== {:?} {}\n{}", g, f.path, f.text);
            }
            eprintln!("{}", out.summary.to_text());
        }
    }
}
