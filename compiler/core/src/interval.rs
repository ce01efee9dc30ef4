//! Address sets for the compiler: IPv4 and IPv6 addresses plus pod classes,
//! over the interval sets of [`ringfence_schema::interval`] (re-exported here).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ringfence_schema::interval;

use crate::idx::{ClassIdx, Idx};
pub use ringfence_schema::interval::{IntervalSet, Point, PortSet};

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
        let (v4, v6) = interval::of_nets(nets.into_iter().copied());
        Addrs {
            v4,
            v6,
            ids: IntervalSet::empty(),
        }
    }

    /// A set of single addresses.
    pub fn from_ips<'a>(ips: impl IntoIterator<Item = &'a IpAddr>) -> Self {
        let (v4, v6) = interval::of_ips(ips.into_iter().copied());
        Addrs {
            v4,
            v6,
            ids: IntervalSet::empty(),
        }
    }

    /// One pod class.
    pub fn class(id: ClassIdx) -> Self {
        let id = id.to_u32();
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

    /// The classes, ascending.
    pub fn classes(&self) -> impl Iterator<Item = ClassIdx> + '_ {
        self.ids
            .ranges()
            .iter()
            .flat_map(|&(lo, hi)| (lo..=hi).map(ClassIdx::from_u32))
    }

    /// Whether class `id` is in the set.
    pub fn has_class(&self, id: ClassIdx) -> bool {
        self.ids.contains(id.to_u32())
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
            v4: IntervalSet::range(3, 17),
            ..Addrs::default()
        };
        let got: Vec<String> = odd.v4_prefixes().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            got,
            ["0.0.0.3/32", "0.0.0.4/30", "0.0.0.8/29", "0.0.0.16/31"]
        );
    }
}
