//! Typed indexes into core's tables, in the manner of ruff's `ruff_index`:
//! each table has its own index type, so an index of one cannot be used in
//! another, and a signature says which table it points into.

/// What containers generic over an index type ([`Bits`](crate::bits::Bits))
/// need of it; every `index_type!` implements it.
pub(crate) trait Idx: Copy {
    /// The index stored as `i` (containers keep indexes as `u32`).
    fn from_u32(i: u32) -> Self;

    /// The position it stands for.
    fn index(self) -> usize;

    /// The index as containers store it.
    fn to_u32(self) -> u32;
}

/// Declare an index type: a `u32` with `new(usize)` and `index() -> usize`.
/// Tables private to a module declare theirs there.
macro_rules! index_type {
    ($(#[$doc:meta])* $vis:vis $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis struct $name(u32);

        impl $name {
            /// The index of position `i`.
            #[inline]
            $vis fn new(i: usize) -> Self {
                Self(u32::try_from(i).expect("tables hold fewer than 2^32 entries"))
            }

            /// The position it stands for.
            #[inline]
            $vis fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl $crate::idx::Idx for $name {
            #[inline]
            fn from_u32(i: u32) -> Self {
                Self(i)
            }

            #[inline]
            fn index(self) -> usize {
                self.index()
            }

            #[inline]
            fn to_u32(self) -> u32 {
                self.0
            }
        }
    };
}
pub(crate) use index_type;

index_type!(
    /// An exposure: a position in [`Compiled::exposures`](crate::Compiled).
    pub(crate) ExposureIdx
);

index_type!(
    /// A policy info, what a rule traces to: a position in
    /// [`Compiled::policies`](crate::Compiled). Intent policies come first,
    /// at their index in `intent.policies`.
    pub(crate) PolicyIdx
);

index_type!(
    /// An address set: a position in the interned sets (`Sets`) and in
    /// [`Compiled`](crate::Compiled)'s set tables.
    pub(crate) SetIdx
);

index_type!(
    /// A chain: a position in [`Compiled`](crate::Compiled)'s chain table,
    /// as in [`Decision::chain`](crate::Decision::chain).
    pub ChainIdx
);

index_type!(
    /// A rule: its position in its chain (the chain's `rules`), as in
    /// [`Decision::rule`](crate::Decision::rule).
    pub RuleIdx
);

index_type!(
    /// An endpoint: a position in [`Compiled`](crate::Compiled)'s endpoint
    /// table, as in [`Decision::endpoint`](crate::Decision::endpoint).
    pub EndpointIdx
);

index_type!(
    /// A node: a position in [`Compiled::nodes`](crate::Compiled::nodes), the
    /// per-node IRs (nodes cluster by cluster, in workload order).
    pub(crate) NodeIdx
);

index_type!(
    /// A cluster: a position in the inventory's clusters and in
    /// [`Compiled::clusters`](crate::Compiled::clusters), as in
    /// [`LivePod::cluster`](crate::live::LivePod::cluster).
    pub ClusterIdx
);

index_type!(
    /// An intent policy's plan: a position in `Resolved::plans`, equal to
    /// the policy's index in `intent.policies`.
    pub(crate) PlanIdx
);

index_type!(
    /// A chain group (a distinct chain signature): a position in
    /// `Ordered::groups` and in `Chains::group_chain`.
    pub(crate) GroupIdx
);

index_type!(
    /// A pod class (pods no rule can tell apart): a position in the
    /// compile's classes, as in [`LivePod::class`](crate::live::LivePod::class)
    /// and [`Placed::Class`](crate::live::Placed::Class).
    pub ClassIdx
);

index_type!(
    /// A workload: a position in `World`'s workload table (nodes, pods and
    /// services cluster by cluster, then externals) and in
    /// [`Compiled`](crate::Compiled)'s workload catalog.
    pub(crate) WorkloadIdx
);

/// Consecutive workloads `start..end`: a cluster's nodes, pods or services,
/// or the externals. (`Range<WorkloadIdx>` cannot be iterated: `Step` is
/// unstable.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WorkloadRange {
    pub(crate) start: WorkloadIdx,
    pub(crate) end: WorkloadIdx,
}

impl WorkloadRange {
    /// The workloads at positions `start..end`.
    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Self {
        WorkloadRange {
            start: WorkloadIdx::new(start),
            end: WorkloadIdx::new(end),
        }
    }

    /// The `k`-th workload of the range.
    #[inline]
    pub(crate) fn nth(self, k: usize) -> WorkloadIdx {
        WorkloadIdx::new(self.start.index() + k)
    }

    /// How many workloads it holds.
    #[inline]
    pub(crate) fn len(self) -> usize {
        (self.end.0 - self.start.0) as usize
    }

    /// Whether `w` is one of them.
    #[inline]
    pub(crate) fn contains(self, w: WorkloadIdx) -> bool {
        self.start <= w && w < self.end
    }

    /// Its workloads, ascending.
    #[inline]
    pub(crate) fn iter(self) -> impl Iterator<Item = WorkloadIdx> {
        (self.start.0..self.end.0).map(WorkloadIdx)
    }
}
