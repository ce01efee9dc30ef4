//! Addresses, prefixes and numbers appended to a `String` as their
//! `Display` impls write them (`Ipv6Addr` in RFC 5952 form as `std` prints
//! it), without `core::fmt`: the IR's prefix lists and a backend's set
//! elements are text in bulk, and `core::fmt` was half of that time. ASCII
//! goes in char by char, which needs no UTF-8 check. The tests compare every
//! function with `Display`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Append `n` in decimal.
pub fn push_u32(out: &mut String, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push_ascii(out, &buf[i..]);
}

/// Append `n` in lowercase hexadecimal without leading zeros.
fn push_hex(out: &mut String, n: u16) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 4];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = DIGITS[usize::from(n & 0xf)];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    push_ascii(out, &buf[i..]);
}

/// ASCII char by char: no UTF-8 check, unlike a `&str` from the bytes.
fn push_ascii(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(b));
    }
}

/// Append `a` as `Ipv4Addr`'s `Display` writes it.
pub fn push_v4(out: &mut String, a: Ipv4Addr) {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
}

/// Append `a` as `Ipv6Addr`'s `Display` writes it: IPv4-mapped addresses as
/// `::ffff:a.b.c.d`, else the longest run of two or more zero groups (the
/// first if tied) as `::`.
pub fn push_v6(out: &mut String, a: Ipv6Addr) {
    if let Some(v4) = a.to_ipv4_mapped() {
        out.push_str("::ffff:");
        push_v4(out, v4);
        return;
    }
    let s = a.segments();
    let (mut best, mut best_len, mut cur, mut cur_len) = (0, 0, 0, 0);
    for (i, &g) in s.iter().enumerate() {
        if g == 0 {
            if cur_len == 0 {
                cur = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                (best, best_len) = (cur, cur_len);
            }
        } else {
            cur_len = 0;
        }
    }
    let groups = |out: &mut String, part: &[u16]| {
        for (i, &g) in part.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            push_hex(out, g);
        }
    };
    if best_len > 1 {
        groups(out, &s[..best]);
        out.push_str("::");
        groups(out, &s[best + best_len..]);
    } else {
        groups(out, &s);
    }
}

/// Append an address of either family.
pub fn push_ip(out: &mut String, a: IpAddr) {
    match a {
        IpAddr::V4(a) => push_v4(out, a),
        IpAddr::V6(a) => push_v6(out, a),
    }
}

/// Append `n` as `a.b.c.d/len`.
pub fn push_v4net(out: &mut String, n: &Ipv4Net) {
    push_v4(out, n.addr());
    out.push('/');
    push_u32(out, n.prefix_len().into());
}

/// Append `n` as `addr/len`.
pub fn push_v6net(out: &mut String, n: &Ipv6Net) {
    push_v6(out, n.addr());
    out.push('/');
    push_u32(out, n.prefix_len().into());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SplitMix64, so the random cases are the same on every run.
    pub(crate) fn rng(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn same<T: std::fmt::Display>(x: T, f: impl Fn(&mut String)) {
        let mut s = String::from("~");
        f(&mut s);
        assert_eq!(s, format!("~{x}"));
    }

    #[test]
    fn numbers_as_display() {
        for n in [0u32, 1, 9, 10, 99, 100, 65535, 65536, u32::MAX] {
            same(n, |s| push_u32(s, n));
        }
    }

    #[test]
    fn ipv4_as_display() {
        let mut seed = 1;
        let mut cases: Vec<u32> = vec![0, 1, u32::MAX, 0x0a00_0001, 0x6464_6464];
        cases.extend((0..20_000).map(|_| rng(&mut seed) as u32));
        // Every octet value in every position.
        cases.extend((0..=255u32).flat_map(|o| [o, o << 8, o << 16, o << 24]));
        for a in cases {
            let a = Ipv4Addr::from(a);
            same(a, |s| push_v4(s, a));
            let n = Ipv4Net::new(a, a.octets()[3] % 33).unwrap().trunc();
            same(n, |s| push_v4net(s, &n));
        }
    }

    #[test]
    fn ipv6_as_display() {
        let mut seed = 2;
        let mut cases: Vec<u128> = vec![0, 1, u128::MAX, 0xffff_0a00_0001, 0x1_0000_0000];
        for _ in 0..50_000 {
            // Random groups, each zero half the time, so runs of zeros of
            // every length and position (and ties) occur.
            let mut a = 0u128;
            for _ in 0..8 {
                let r = rng(&mut seed);
                let g = if r & 1 == 0 {
                    0
                } else {
                    (r >> 8) as u16 >> (r % 13)
                };
                a = a << 16 | u128::from(g);
            }
            cases.push(a);
        }
        // IPv4-mapped and IPv4-compatible forms.
        cases.extend((0..1000).map(|_| 0xffff_0000_0000 | u128::from(rng(&mut seed) as u32)));
        cases.extend((0..1000).map(|_| u128::from(rng(&mut seed) as u32)));
        for a in cases {
            let a = Ipv6Addr::from(a);
            same(a, |s| push_v6(s, a));
            same(IpAddr::V6(a), |s| push_ip(s, IpAddr::V6(a)));
            let n = Ipv6Net::new(a, (a.segments()[7] % 129) as u8)
                .unwrap()
                .trunc();
            same(n, |s| push_v6net(s, &n));
        }
    }
}
