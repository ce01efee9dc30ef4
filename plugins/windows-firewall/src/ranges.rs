//! Sorted, disjoint, non-adjacent inclusive intervals: the set algebra the
//! lowering needs for addresses (u32 / u128) and ports (u16).

use std::net::{Ipv4Addr, Ipv6Addr};

/// An integer type intervals are made of.
pub(crate) trait Bound: Copy + Ord + std::fmt::Debug {
    /// Smallest value.
    const MIN: Self;
    /// Largest value.
    const MAX: Self;
    /// `self + 1`, if it exists.
    fn succ(self) -> Option<Self>;
    /// `self - 1`, if it exists.
    fn pred(self) -> Option<Self>;
}

macro_rules! bound {
    ($t:ty) => {
        impl Bound for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn pred(self) -> Option<Self> {
                self.checked_sub(1)
            }
        }
    };
}
bound!(u16);
bound!(u32);
bound!(u128);

/// A set of values as canonical intervals.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Ranges<T: Bound>(pub(crate) Vec<(T, T)>);

impl<T: Bound> Ranges<T> {
    pub(crate) fn empty() -> Self {
        Ranges(Vec::new())
    }

    pub(crate) fn all() -> Self {
        Ranges(vec![(T::MIN, T::MAX)])
    }

    /// Canonical form of arbitrary intervals.
    pub(crate) fn from_unsorted(mut v: Vec<(T, T)>) -> Self {
        v.sort();
        let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if last.1.succ().is_none_or(|n| a <= n) => {
                    if b > last.1 {
                        last.1 = b;
                    }
                }
                _ => out.push((a, b)),
            }
        }
        Ranges(out)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn is_all(&self) -> bool {
        self.0 == [(T::MIN, T::MAX)]
    }

    pub(crate) fn contains(&self, x: T) -> bool {
        let i = self.0.partition_point(|r| r.0 <= x);
        i > 0 && x <= self.0[i - 1].1
    }

    pub(crate) fn union(&self, other: &Self) -> Self {
        let mut v = self.0.clone();
        v.extend_from_slice(&other.0);
        Ranges::from_unsorted(v)
    }

    pub(crate) fn intersect(&self, other: &Self) -> Self {
        let (a, b) = (&self.0, &other.0);
        let (mut i, mut j) = (0, 0);
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
        Ranges(out)
    }

    pub(crate) fn subtract(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let b = &other.0;
        let mut j = 0;
        for &(mut lo, hi) in &self.0 {
            while j < b.len() && b[j].1 < lo {
                j += 1;
            }
            let mut k = j;
            let mut done = false;
            while k < b.len() && b[k].0 <= hi {
                if b[k].0 > lo {
                    out.push((lo, b[k].0.pred().expect("b[k].0 > lo >= MIN")));
                }
                match b[k].1.succ() {
                    Some(n) if n <= hi => lo = n,
                    _ => {
                        done = true;
                        break;
                    }
                }
                k += 1;
            }
            if !done {
                out.push((lo, hi));
            }
        }
        Ranges(out)
    }
}

/// Addresses of both families.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Addrs {
    pub(crate) v4: Ranges<u32>,
    pub(crate) v6: Ranges<u128>,
}

impl Addrs {
    pub(crate) fn all() -> Self {
        Addrs {
            v4: Ranges::all(),
            v6: Ranges::all(),
        }
    }
    pub(crate) fn none() -> Self {
        Addrs {
            v4: Ranges::empty(),
            v6: Ranges::empty(),
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
    pub(crate) fn union(&self, o: &Self) -> Self {
        Addrs {
            v4: self.v4.union(&o.v4),
            v6: self.v6.union(&o.v6),
        }
    }
    pub(crate) fn is_all(&self) -> bool {
        self.v4.is_all() && self.v6.is_all()
    }
    pub(crate) fn intersect(&self, o: &Self) -> Self {
        Addrs {
            v4: self.v4.intersect(&o.v4),
            v6: self.v6.intersect(&o.v6),
        }
    }
    pub(crate) fn subtract(&self, o: &Self) -> Self {
        Addrs {
            v4: self.v4.subtract(&o.v4),
            v6: self.v6.subtract(&o.v6),
        }
    }
}

/// `a`, `a/len` when the interval is exactly a prefix, else `a-b`: the
/// forms `-LocalAddress` / `-RemoteAddress` accept.
pub(crate) fn show_v4((a, b): (u32, u32)) -> String {
    if a == b {
        return Ipv4Addr::from(a).to_string();
    }
    let span = b - a;
    if span.wrapping_add(1).is_power_of_two() && a & span == 0 {
        let len = 32 - (span.count_ones());
        return format!("{}/{len}", Ipv4Addr::from(a));
    }
    if a == 0 && b == u32::MAX {
        return "0.0.0.0/0".into();
    }
    format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b))
}

/// As [`show_v4`] for IPv6.
pub(crate) fn show_v6((a, b): (u128, u128)) -> String {
    if a == b {
        return Ipv6Addr::from(a).to_string();
    }
    let span = b - a;
    if span.wrapping_add(1).is_power_of_two() && a & span == 0 {
        let len = 128 - span.count_ones();
        return format!("{}/{len}", Ipv6Addr::from(a));
    }
    if a == 0 && b == u128::MAX {
        return "::/0".into();
    }
    format!("{}-{}", Ipv6Addr::from(a), Ipv6Addr::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[(u16, u16)]) -> Ranges<u16> {
        Ranges::from_unsorted(v.to_vec())
    }

    #[test]
    fn algebra() {
        let a = r(&[(10, 20), (30, 40)]);
        let b = r(&[(15, 35)]);
        assert_eq!(a.union(&b).0, [(10, 40)]);
        assert_eq!(a.intersect(&b).0, [(15, 20), (30, 35)]);
        assert_eq!(a.subtract(&b).0, [(10, 14), (36, 40)]);
        assert_eq!(r(&[(1, 2), (3, 4)]).0, [(1, 4)], "adjacent merge");
        assert_eq!(
            Ranges::<u16>::all().subtract(&r(&[(0, 0)])).0,
            [(1, u16::MAX)]
        );
        assert_eq!(
            Ranges::<u16>::all().subtract(&r(&[(u16::MAX, u16::MAX)])).0,
            [(0, u16::MAX - 1)]
        );
        assert!(Ranges::<u16>::all().subtract(&Ranges::all()).is_empty());
        assert_eq!(
            r(&[(0, 100)]).subtract(&r(&[(5, 5), (7, 9), (100, 100)])).0,
            [(0, 4), (6, 6), (10, 99)]
        );
        // exhaustive check against a bitmap on a small domain
        let sets: Vec<Ranges<u16>> = vec![
            r(&[]),
            r(&[(0, 3)]),
            r(&[(2, 5), (9, 12)]),
            r(&[(1, 1), (4, 4), (6, 13)]),
            r(&[(0, 15)]),
        ];
        for x in &sets {
            for y in &sets {
                for v in 0..16u16 {
                    assert_eq!(x.union(y).contains(v), x.contains(v) || y.contains(v));
                    assert_eq!(x.intersect(y).contains(v), x.contains(v) && y.contains(v));
                    assert_eq!(x.subtract(y).contains(v), x.contains(v) && !y.contains(v));
                }
            }
        }
    }

    #[test]
    fn address_forms() {
        let ip = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
        assert_eq!(show_v4((ip("10.0.0.0"), ip("10.0.0.255"))), "10.0.0.0/24");
        assert_eq!(show_v4((ip("10.0.0.1"), ip("10.0.0.1"))), "10.0.0.1");
        assert_eq!(
            show_v4((ip("10.0.0.1"), ip("10.0.0.2"))),
            "10.0.0.1-10.0.0.2"
        );
        assert_eq!(show_v4((0, u32::MAX)), "0.0.0.0/0");
        assert_eq!(show_v6((0, u128::MAX)), "::/0");
        assert_eq!(show_v6((1 << 64, (2 << 64) - 1)), "0:0:0:1::/64");
    }
}
