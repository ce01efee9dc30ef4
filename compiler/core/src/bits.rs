//! A fixed-size bitset over workload indexes: scope, filter and target
//! membership are evaluated as whole-inventory bitsets, so a query costs a few
//! word operations per 64 workloads instead of a walk per workload.

/// A set of indexes below a fixed length.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    /// No index set.
    pub(crate) fn new(len: usize) -> Self {
        Bits {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Every index set.
    pub(crate) fn full(len: usize) -> Self {
        let mut b = Bits {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        b.trim();
        b
    }

    /// The indexes yielded, set.
    pub(crate) fn from_indexes(len: usize, idx: impl IntoIterator<Item = u32>) -> Self {
        let mut b = Bits::new(len);
        for i in idx {
            b.set(i);
        }
        b
    }

    fn trim(&mut self) {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
    }

    /// Whether index `i` is set.
    pub(crate) fn get(&self, i: u32) -> bool {
        let i = i as usize;
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Set index `i`.
    pub(crate) fn set(&mut self, i: u32) {
        let i = i as usize;
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// `self &= other`.
    pub(crate) fn and_with(&mut self, other: &Bits) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// `self |= other`.
    pub(crate) fn or_with(&mut self, other: &Bits) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// `!self`.
    pub(crate) fn not(&self) -> Bits {
        let mut b = Bits {
            words: self.words.iter().map(|w| !w).collect(),
            len: self.len,
        };
        b.trim();
        b
    }

    /// The set indexes, ascending.
    pub(crate) fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some((wi * 64) as u32 + b)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_algebra_and_iteration() {
        let a = Bits::from_indexes(130, [0, 5, 64, 129]);
        let b = Bits::from_indexes(130, [5, 64, 100]);
        let mut i = a.clone();
        i.and_with(&b);
        assert_eq!(i.ones().collect::<Vec<_>>(), [5, 64]);
        let mut u = a.clone();
        u.or_with(&b);
        assert_eq!(u.ones().collect::<Vec<_>>(), [0, 5, 64, 100, 129]);
        assert!(a.get(129) && !a.get(128));
        assert_eq!(Bits::full(130).ones().count(), 130);
        assert_eq!(a.not().ones().count(), 126);
        assert_eq!(Bits::full(0).ones().count(), 0);
    }
}
