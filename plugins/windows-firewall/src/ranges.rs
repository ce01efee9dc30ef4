//! Addresses of both families as interval sets (the schema's
//! [`IntervalSet`]), and how Windows Firewall writes their ranges.

use std::net::{Ipv4Addr, Ipv6Addr};

use ringfence_schema::interval::IntervalSet;

/// Addresses of both families.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Addrs {
    pub(crate) v4: IntervalSet<u32>,
    pub(crate) v6: IntervalSet<u128>,
}

impl Addrs {
    pub(crate) fn all() -> Self {
        Addrs {
            v4: IntervalSet::full(),
            v6: IntervalSet::full(),
        }
    }
    pub(crate) fn none() -> Self {
        Addrs {
            v4: IntervalSet::empty(),
            v6: IntervalSet::empty(),
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
        self.v4.is_full() && self.v6.is_full()
    }
    pub(crate) fn intersect(&self, o: &Self) -> Self {
        Addrs {
            v4: self.v4.intersection(&o.v4),
            v6: self.v6.intersection(&o.v6),
        }
    }
    pub(crate) fn subtract(&self, o: &Self) -> Self {
        Addrs {
            v4: self.v4.difference(&o.v4),
            v6: self.v6.difference(&o.v6),
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
