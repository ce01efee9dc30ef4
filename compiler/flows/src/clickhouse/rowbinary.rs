//! Reading ClickHouse's `RowBinary` answers: little-endian numbers, strings
//! and arrays prefixed with their LEB128 length. Every length is capped, so
//! a corrupt answer is an error, never an allocation of its size.

use std::io::{self, BufRead};

/// Longest string accepted (a conversation key is far shorter).
const MAX_STRING: u64 = 64 << 10;
/// Longest array accepted.
const MAX_ARRAY: u64 = 1 << 10;

/// A `RowBinary` stream.
pub(crate) struct Rows<R> {
    input: R,
}

impl<R: BufRead> Rows<R> {
    pub(crate) fn new(input: R) -> Self {
        Rows { input }
    }

    /// Whether the stream has ended (between rows).
    pub(crate) fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.input.fill_buf()?.is_empty())
    }

    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.input.read_exact(&mut b)?;
        Ok(b)
    }

    pub(crate) fn u8(&mut self) -> io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }

    pub(crate) fn i8(&mut self) -> io::Result<i8> {
        Ok(i8::from_le_bytes(self.bytes()?))
    }

    pub(crate) fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes(self.bytes()?))
    }

    pub(crate) fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    pub(crate) fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_le_bytes(self.bytes()?))
    }

    fn len(&mut self, max: u64, what: &str) -> io::Result<usize> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if n > max {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{what} of {n} elements (more than {max})"),
                    ));
                }
                return Ok(n as usize);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a length longer than 64 bits",
        ))
    }

    /// A `String` as bytes (any bytes: the caller checks the text).
    pub(crate) fn string(&mut self) -> io::Result<Vec<u8>> {
        let n = self.len(MAX_STRING, "a string")?;
        let mut v = vec![0u8; n];
        self.input.read_exact(&mut v)?;
        Ok(v)
    }

    pub(crate) fn array_u8(&mut self) -> io::Result<Vec<u8>> {
        let n = self.len(MAX_ARRAY, "an array")?;
        (0..n).map(|_| self.u8()).collect()
    }

    /// A `uniqUpTo(threshold)` state of `UInt16` values, as ClickHouse 18.16
    /// and current servers both write it: the count (`UInt8`), then, unless
    /// it is past `threshold` (more distinct values than kept), the values
    /// themselves, in no order. `None`: more than `threshold`.
    pub(crate) fn uniq_up_to_u16(&mut self, threshold: u8) -> io::Result<Option<Vec<u16>>> {
        let n = self.u8()?;
        if n > threshold {
            return Ok(None);
        }
        (0..n)
            .map(|_| self.u16())
            .collect::<io::Result<_>>()
            .map(Some)
    }

    pub(crate) fn array_u64(&mut self) -> io::Result<Vec<u64>> {
        let n = self.len(MAX_ARRAY, "an array")?;
        (0..n).map(|_| self.u64()).collect()
    }
}

/// Writing rows for `INSERT … FORMAT RowBinary`.
pub(crate) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_lengths_are_capped() {
        let mut buf = Vec::new();
        let long = vec![b'x'; 300];
        put_string(&mut buf, b"abc");
        put_string(&mut buf, &long);
        buf.extend_from_slice(&7u16.to_le_bytes());
        let mut r = Rows::new(&buf[..]);
        assert_eq!(r.string().unwrap(), b"abc");
        assert_eq!(r.string().unwrap(), long);
        assert_eq!(r.u16().unwrap(), 7);
        assert!(r.at_end().unwrap());
        // A length of 2^40: refused before allocating.
        let huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        let e = Rows::new(&huge[..]).string().unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        // Cut short: an error, not a short value.
        let cut = [5, b'a', b'b'];
        assert!(Rows::new(&cut[..]).string().is_err());
    }

    /// The bytes ClickHouse 18.16 answers for `uniqUpToState(5)` of 3 and
    /// of 9 distinct `UInt16` values (current servers write the same).
    #[test]
    fn uniq_up_to_states_read_their_values() {
        let three = [0x03, 0x01, 0x00, 0x08, 0x00, 0x0f, 0x00, 0x06];
        let mut r = Rows::new(&three[..]);
        assert_eq!(r.uniq_up_to_u16(5).unwrap(), Some(vec![1, 8, 15]));
        assert_eq!(r.uniq_up_to_u16(5).unwrap(), None);
        assert!(r.at_end().unwrap());
        assert!(Rows::new(&three[..5]).uniq_up_to_u16(5).is_err());
    }
}
