//! Interval sets over integers: addresses (u32 for IPv4, u128 for IPv6) and ports.
//!
//! Every set is kept canonical (sorted, disjoint, non-adjacent inclusive
//! ranges), so equality is structural and union, intersection and difference
//! are linear merges. Shadow analysis and the matrix rely on these being exact.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ringfence_schema::net::PortRange;

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
#[derive(Clone, PartialEq, Eq, Hash, Default)]
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

/// A set of IPv4 and IPv6 addresses, plus (for the compiler's analysis)
/// pod *classes*.
///
/// While chains are built and compressed, a pod does not stand for its
/// addresses but for its class (every pod with the same memberships shares
/// one): `ids` holds the class numbers, points of their own dimension that
/// no address and no external covers. Rules and sets then depend on which
/// classes exist, never on which addresses the pods have at the moment, so
/// pods can come and go without changing a rule. Sets of real addresses
/// (what nodes enforce, and what `explain` and `matrix` evaluate) have no
/// `ids`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Addrs {
    /// IPv4 addresses.
    pub v4: IntervalSet<u32>,
    /// IPv6 addresses.
    pub v6: IntervalSet<u128>,
    /// Pod classes (analysis only).
    pub ids: IntervalSet<u32>,
}

impl Addrs {
    /// No address.
    pub fn empty() -> Self {
        Addrs::default()
    }

    /// Every address of both families, and every class.
    pub fn full() -> Self {
        Addrs {
            v4: IntervalSet::full(),
            v6: IntervalSet::full(),
            ids: IntervalSet::full(),
        }
    }

    /// The addresses covered by some prefixes.
    pub fn from_nets<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for n in nets {
            match n.trunc() {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Addrs {
            v4: IntervalSet::from_ranges(v4),
            v6: IntervalSet::from_ranges(v6),
            ids: IntervalSet::empty(),
        }
    }

    /// A set of single addresses.
    pub fn from_ips<'a>(ips: impl IntoIterator<Item = &'a IpAddr>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for ip in ips {
            match ip {
                IpAddr::V4(a) => v4.push((u32::from(*a), u32::from(*a))),
                IpAddr::V6(a) => v6.push((u128::from(*a), u128::from(*a))),
            }
        }
        Addrs {
            v4: IntervalSet::from_ranges(v4),
            v6: IntervalSet::from_ranges(v6),
            ids: IntervalSet::empty(),
        }
    }

    /// One pod class.
    pub fn class(id: u32) -> Self {
        Addrs {
            ids: IntervalSet::range(id, id),
            ..Addrs::default()
        }
    }

    /// The same addresses without classes.
    pub fn addresses_only(&self) -> Self {
        Addrs {
            v4: self.v4.clone(),
            v6: self.v6.clone(),
            ids: IntervalSet::empty(),
        }
    }

    /// The class numbers, ascending.
    pub fn classes(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids.ranges().iter().flat_map(|&(lo, hi)| lo..=hi)
    }

    /// Whether `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// Whether the set has no address and no class.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.ids.is_empty()
    }

    /// Whether the set holds every address and every class.
    pub fn is_full(&self) -> bool {
        self.v4.is_full() && self.v6.is_full() && self.ids.is_full()
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &Self) -> Self {
        Addrs {
            v4: self.v4.union(&other.v4),
            v6: self.v6.union(&other.v6),
            ids: self.ids.union(&other.ids),
        }
    }

    /// `self ∩ other`.
    pub fn intersection(&self, other: &Self) -> Self {
        Addrs {
            v4: self.v4.intersection(&other.v4),
            v6: self.v6.intersection(&other.v6),
            ids: self.ids.intersection(&other.ids),
        }
    }

    /// `self \ other`.
    pub fn difference(&self, other: &Self) -> Self {
        Addrs {
            v4: self.v4.difference(&other.v4),
            v6: self.v6.difference(&other.v6),
            ids: self.ids.difference(&other.ids),
        }
    }

    /// Whether the sets share an address or a class.
    pub fn intersects(&self, other: &Self) -> bool {
        self.v4.intersects(&other.v4)
            || self.v6.intersects(&other.v6)
            || self.ids.intersects(&other.ids)
    }

    /// Number of ranges (both families and classes), a measure of size.
    pub fn range_count(&self) -> usize {
        self.v4.ranges().len() + self.v6.ranges().len() + self.ids.ranges().len()
    }

    /// The minimal list of IPv4 prefixes covering exactly the IPv4 part.
    pub fn v4_prefixes(&self) -> Vec<Ipv4Net> {
        let mut out = Vec::new();
        for &(lo, hi) in self.v4.ranges() {
            cover(u128::from(lo), u128::from(hi), 32, &mut |net, len| {
                out.push(Ipv4Net::new(Ipv4Addr::from(net as u32), len).expect("prefix length"))
            });
        }
        out
    }

    /// The minimal list of IPv6 prefixes covering exactly the IPv6 part.
    pub fn v6_prefixes(&self) -> Vec<Ipv6Net> {
        let mut out = Vec::new();
        for &(lo, hi) in self.v6.ranges() {
            cover(lo, hi, 128, &mut |net, len| {
                out.push(Ipv6Net::new(Ipv6Addr::from(net), len).expect("prefix length"))
            });
        }
        out
    }

    /// The lowest address of the set, IPv4 first.
    pub fn first(&self) -> Option<IpAddr> {
        if let Some(&(lo, _)) = self.v4.ranges().first() {
            return Some(IpAddr::V4(Ipv4Addr::from(lo)));
        }
        self.v6
            .ranges()
            .first()
            .map(|&(lo, _)| IpAddr::V6(Ipv6Addr::from(lo)))
    }
}

/// Split `[lo, hi]` (in a `bits`-wide space) into the fewest aligned prefixes.
fn cover(mut lo: u128, hi: u128, bits: u8, emit: &mut impl FnMut(u128, u8)) {
    let bits = u32::from(bits);
    loop {
        let span = hi - lo; // addresses in the range, minus one
        let fits = |size: u32| {
            if size >= 128 {
                span == u128::MAX
            } else {
                (1u128 << size) - 1 <= span
            }
        };
        // The largest block aligned at `lo` that does not pass `hi`.
        let mut size = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size > 0 && !fits(size) {
            size -= 1;
        }
        let last = if size >= 128 {
            u128::MAX
        } else {
            lo + ((1u128 << size) - 1)
        };
        emit(lo, (bits - size) as u8);
        if last >= hi {
            return;
        }
        lo = last + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_schema::net::AddressSet;

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
    fn prefixes_are_minimal_and_match_ipnet_aggregation() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/25",
            "10.0.0.128/25",
            "10.0.1.5/32",
            "10.0.1.6/31",
            "0.0.0.0/0",
            "fd00::/64",
            "fd00:0:0:1::/64",
            "2001:db8::1/128",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
        for k in 1..=nets.len() {
            let a = Addrs::from_nets(&nets[..k]);
            let expect = AddressSet::new("x", nets[..k].iter().copied());
            assert_eq!(a.v4_prefixes(), expect.v4, "v4 of first {k}");
            assert_eq!(a.v6_prefixes(), expect.v6, "v6 of first {k}");
        }
        let full = Addrs::full();
        assert_eq!(full.v4_prefixes(), vec!["0.0.0.0/0".parse().unwrap()]);
        assert_eq!(full.v6_prefixes(), vec!["::/0".parse().unwrap()]);
        let odd = Addrs {
            v4: s(&[(3, 17)]),
            ..Addrs::default()
        };
        let got: Vec<String> = odd.v4_prefixes().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            got,
            ["0.0.0.3/32", "0.0.0.4/30", "0.0.0.8/29", "0.0.0.16/31"]
        );
    }

    #[test]
    fn ports_round_trip_through_rule_lists() {
        let p = PortSet::from_port_ranges(&[PortRange::single(80), "8000-8100".parse().unwrap()]);
        assert!(p.contains(8050) && !p.contains(81));
        assert_eq!(p.to_port_ranges().len(), 2);
        assert!(PortSet::from_port_ranges(&[]).is_full());
        assert!(PortSet::full().to_port_ranges().is_empty());
    }
}
