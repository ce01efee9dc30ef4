//! Typed indexes into core's tables, in the manner of ruff's `ruff_index`:
//! each table has its own index type, so an index of one cannot be used in
//! another, and a signature says which table it points into.

/// Declare an index type: a `u32` with `new(usize)` and `index() -> usize`.
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
    };
}

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
