//! Interval sets over integers: addresses (u32 for IPv4, u128 for IPv6) and ports.
//!
//! Every set is kept canonical (sorted, disjoint, non-adjacent inclusive
//! ranges), so equality is structural and union, intersection and difference
//! are linear merges. The compiler's shadow analysis and matrix, and backends
//! that lower first-match chains to regions (Windows Firewall), rely on these
//! being exact.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::net::PortRange;

/// An unsigned integer type an [`IntervalSet`] can range over.
pub trait Point: Copy + Ord + fmt::Debug + Send + Sync + 'static {
    /// The smallest value.
    const MIN: Self;
    /// The largest value.
    const MAX: Self;
    /// `self + 1` (never called on `MAX`).
    fn succ(self) -> Self;
    /// `self - 1` (never called on `MIN`).
    fn pred(self) -> Self;
}

macro_rules! point {
    ($($t:ty),*) => {$(
        impl Point for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Self { self + 1 }
            fn pred(self) -> Self { self - 1 }
        }
    )*};
}
point!(u16, u32, u128);

/// A set of integers as canonical inclusive ranges.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IntervalSet<T: Point> {
    ranges: Vec<(T, T)>,
}

impl<T: Point> fmt::Debug for IntervalSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.ranges.iter().map(|(a, b)| a..=b))
            .finish()
    }
}

impl<T: Point> IntervalSet<T> {
    /// The empty set.
    pub fn empty() -> Self {
        IntervalSet { ranges: Vec::new() }
    }

    /// Every value.
    pub fn full() -> Self {
        IntervalSet {
            ranges: vec![(T::MIN, T::MAX)],
        }
    }

    /// One inclusive range (`lo <= hi`).
    pub fn range(lo: T, hi: T) -> Self {
        debug_assert!(lo <= hi);
        IntervalSet {
            ranges: vec![(lo, hi)],
        }
    }

    /// The canonical set covering any inclusive ranges (reversed ones are ignored).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (T, T)>) -> Self {
        let mut v: Vec<(T, T)> = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        v.sort_unstable();
        let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if last.1 == T::MAX || lo <= last.1.succ() => {
                    last.1 = last.1.max(hi);
                }
                _ => out.push((lo, hi)),
            }
        }
        IntervalSet { ranges: out }
    }

    /// The ranges, sorted, disjoint and non-adjacent.
    pub fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether the set holds every value.
    pub fn is_full(&self) -> bool {
        self.ranges.len() == 1 && self.ranges[0] == (T::MIN, T::MAX)
    }

    /// Whether `x` is in the set (binary search).
    pub fn contains(&self, x: T) -> bool {
        let i = self.ranges.partition_point(|r| r.0 <= x);
        i > 0 && x <= self.ranges[i - 1].1
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &Self) -> Self {
        if self.is_empty() || other.is_full() {
            return other.clone();
        }
        if other.is_empty() || self.is_full() {
            return self.clone();
        }
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.ranges, &other.ranges);
        let mut out: Vec<(T, T)> = Vec::with_capacity(a.len() + b.len());
        while i < a.len() || j < b.len() {
            let next = if j >= b.len() || (i < a.len() && a[i] <= b[j]) {
                i += 1;
                a[i - 1]
            } else {
                j += 1;
                b[j - 1]
            };
            match out.last_mut() {
                Some(last) if last.1 == T::MAX || next.0 <= last.1.succ() => {
                    last.1 = last.1.max(next.1);
                }
                _ => out.push(next),
            }
        }
        IntervalSet { ranges: out }
    }

    /// `self ∩ other`.
    pub fn intersection(&self, other: &Self) -> Self {
        if self.is_full() {
            return other.clone();
        }
        if other.is_full() {
            return self.clone();
        }
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.ranges, &other.ranges);
        let mut out = Vec::new();
        while i < a.len() && j < b.len() {
            let lo = a[i].0.max(b[j].0);
            let hi = a[i].1.min(b[j].1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        IntervalSet { ranges: out }
    }

    /// Whether `self ∩ other` is not empty, without building it.
    pub fn intersects(&self, other: &Self) -> bool {
        if self.is_empty() || other.is_empty() {
            return false;
        }
        if self.is_full() || other.is_full() {
            return true;
        }
        // Walk the smaller set, binary-searching the larger.
        let (small, large) = if self.ranges.len() <= other.ranges.len() {
            (&self.ranges, &other.ranges)
        } else {
            (&other.ranges, &self.ranges)
        };
        small.iter().any(|&(lo, hi)| {
            // The first range of `large` that ends at or after `lo`.
            let k = large.partition_point(|r| r.1 < lo);
            k < large.len() && large[k].0 <= hi
        })
    }

    /// `self \ other`.
    pub fn difference(&self, other: &Self) -> Self {
        if other.is_empty() || self.is_empty() {
            return self.clone();
        }
        if other.is_full() {
            return Self::empty();
        }
        let mut out = Vec::with_capacity(self.ranges.len());
        let b = &other.ranges;
        let mut j = 0;
        for &(lo, hi) in &self.ranges {
            let mut cur = lo;
            let mut done = false;
            while j < b.len() && b[j].1 < cur {
                j += 1;
            }
            let mut k = j;
            while k < b.len() && b[k].0 <= hi {
                if b[k].0 > cur {
                    out.push((cur, b[k].0.pred()));
                }
                if b[k].1 >= hi {
                    done = true;
                    break;
                }
                cur = b[k].1.succ();
                k += 1;
            }
            if !done {
                out.push((cur, hi));
            }
        }
        IntervalSet { ranges: out }
    }

    /// `!self`.
    pub fn complement(&self) -> Self {
        Self::full().difference(self)
    }

    /// Whether every value of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.difference(other).is_empty()
    }
}

/// A set of ports (0-65535).
pub type PortSet = IntervalSet<u16>;

impl PortSet {
    /// The ports of a rule's port list; an empty list means every port.
    pub fn from_port_ranges(ports: &[PortRange]) -> Self {
        if ports.is_empty() {
            return Self::full();
        }
        Self::from_ranges(ports.iter().map(|r| (r.start, r.end)))
    }

    /// The canonical port list of this set (empty for the full set, as rules write it).
    pub fn to_port_ranges(&self) -> Vec<PortRange> {
        if self.is_full() {
            return Vec::new();
        }
        self.ranges()
            .iter()
            .map(|&(start, end)| PortRange { start, end })
            .collect()
    }
}

/// Addresses of both families: IPv4 as `u32`, IPv6 as `u128`.
pub type IpSets = (IntervalSet<u32>, IntervalSet<u128>);

/// The addresses some prefixes cover (host bits ignored), per family.
pub fn of_nets(nets: impl IntoIterator<Item = IpNet>) -> IpSets {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for n in nets {
        match n.trunc() {
            IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
            IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
        }
    }
    (IntervalSet::from_ranges(v4), IntervalSet::from_ranges(v6))
}

/// Single addresses, per family.
pub fn of_ips(ips: impl IntoIterator<Item = IpAddr>) -> IpSets {
    of_nets(ips.into_iter().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(r: &[(u32, u32)]) -> IntervalSet<u32> {
        IntervalSet::from_ranges(r.iter().copied())
    }

    #[test]
    fn canonical_form_merges_overlaps_and_neighbours() {
        assert_eq!(
            s(&[(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]).ranges(),
            &[(1, 9), (20, 30)]
        );
        assert_eq!(s(&[(0, u32::MAX), (7, 8)]), IntervalSet::full());
        assert!(s(&[(3, 2)]).is_empty());
    }

    #[test]
    fn algebra_matches_pointwise_definitions() {
        let a = s(&[(0, 10), (20, 30), (40, 40)]);
        let b = s(&[(5, 25), (40, 50)]);
        let u = a.union(&b);
        let i = a.intersection(&b);
        let d = a.difference(&b);
        for x in 0..60u32 {
            let (ia, ib) = (a.contains(x), b.contains(x));
            assert_eq!(u.contains(x), ia || ib, "union at {x}");
            assert_eq!(i.contains(x), ia && ib, "intersection at {x}");
            assert_eq!(d.contains(x), ia && !ib, "difference at {x}");
        }
        assert_eq!(d.ranges(), &[(0, 4), (26, 30)]);
        assert!(a.intersects(&b));
        assert!(!s(&[(0, 4)]).intersects(&s(&[(5, 9)])));
        assert!(i.is_subset(&a) && i.is_subset(&b));
        assert_eq!(a.complement().complement(), a);
        assert_eq!(
            IntervalSet::<u32>::full().difference(&s(&[(0, 0), (u32::MAX, u32::MAX)])),
            s(&[(1, u32::MAX - 1)])
        );
    }

    #[test]
    fn algebra_is_exact_at_the_domain_edges() {
        let r = |v: &[(u16, u16)]| PortSet::from_ranges(v.iter().copied());
        let full = PortSet::full();
        assert_eq!(full.difference(&r(&[(0, 0)])).ranges(), [(1, u16::MAX)]);
        assert_eq!(
            full.difference(&r(&[(u16::MAX, u16::MAX)])).ranges(),
            [(0, u16::MAX - 1)]
        );
        assert!(full.difference(&full).is_empty());
        assert_eq!(r(&[(1, 2), (3, 4)]).ranges(), [(1, 4)], "adjacent merge");
        let sets = [
            r(&[]),
            r(&[(0, 3)]),
            r(&[(2, 5), (9, 12)]),
            r(&[(1, 1), (4, 4), (6, 13)]),
            r(&[(0, 15)]),
        ];
        for x in &sets {
            for y in &sets {
                for v in 0..16u16 {
                    let (a, b) = (x.contains(v), y.contains(v));
                    assert_eq!(x.union(y).contains(v), a || b);
                    assert_eq!(x.intersection(y).contains(v), a && b);
                    assert_eq!(x.difference(y).contains(v), a && !b);
                }
            }
        }
    }

    #[test]
    fn ports_round_trip_through_rule_lists() {
        let p = PortSet::from_port_ranges(&[PortRange::single(80), "8000-8100".parse().unwrap()]);
        assert!(p.contains(8050) && !p.contains(81));
        assert_eq!(p.to_port_ranges().len(), 2);
        assert!(PortSet::from_port_ranges(&[]).is_full());
        assert!(PortSet::full().to_port_ranges().is_empty());
    }

    #[test]
    fn addresses_become_ranges_per_family() {
        let nets = ["10.0.1.7/24", "10.0.0.0/24", "fd00::1/127"].map(|n| n.parse().unwrap());
        let (v4, v6) = of_nets(nets);
        assert_eq!(
            v4.ranges(),
            [(0x0a00_0000, 0x0a00_01ff)],
            "host bits dropped, merged"
        );
        let fd00 = 0xfd00_u128 << 112;
        assert_eq!(v6.ranges(), [(fd00, fd00 + 1)]);
        let ips = ["10.0.0.2", "10.0.0.1", "::1"].map(|a| a.parse().unwrap());
        let (v4, v6) = of_ips(ips);
        assert_eq!(v4.ranges(), [(0x0a00_0001, 0x0a00_0002)]);
        assert_eq!(v6.ranges(), [(1, 1)]);
    }
}
