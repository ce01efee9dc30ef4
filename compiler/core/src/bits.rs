//! A fixed-size bitset over a table's indexes (in core, workloads: a
//! `Bits<WorkloadIdx>`): scope, filter and target
//! membership are evaluated as whole-inventory bitsets, so a query costs a few
//! word operations per 64 workloads instead of a walk per workload.

use std::marker::PhantomData;

use crate::idx::Idx;

/// A set of indexes of type `I` below a fixed length.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bits<I> {
    words: Vec<u64>,
    len: usize,
    idx: PhantomData<I>,
}

impl<I: Idx> Bits<I> {
    /// No index set.
    pub(crate) fn new(len: usize) -> Self {
        Bits {
            words: vec![0; len.div_ceil(64)],
            len,
            idx: PhantomData,
        }
    }

    /// Every index set.
    pub(crate) fn full(len: usize) -> Self {
        let mut b = Bits {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
            idx: PhantomData,
        };
        b.trim();
        b
    }

    /// The indexes yielded, set.
    pub(crate) fn from_indexes(len: usize, idx: impl IntoIterator<Item = I>) -> Self {
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
    #[inline]
    pub(crate) fn get(&self, i: I) -> bool {
        let i = i.index();
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Set index `i`.
    #[inline]
    pub(crate) fn set(&mut self, i: I) {
        let i = i.index();
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// `self &= other`.
    pub(crate) fn and_with(&mut self, other: &Bits<I>) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// `self |= other`.
    pub(crate) fn or_with(&mut self, other: &Bits<I>) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// `!self`.
    pub(crate) fn not(&self) -> Bits<I> {
        let mut b = Bits {
            words: self.words.iter().map(|w| !w).collect(),
            len: self.len,
            idx: PhantomData,
        };
        b.trim();
        b
    }

    /// The set indexes, ascending.
    pub(crate) fn ones(&self) -> impl Iterator<Item = I> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(I::from_u32((wi * 64) as u32 + b))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::WorkloadIdx;

    fn ws(idx: &[usize]) -> Vec<WorkloadIdx> {
        idx.iter().map(|&i| WorkloadIdx::new(i)).collect()
    }

    #[test]
    fn set_algebra_and_iteration() {
        let a = Bits::from_indexes(130, ws(&[0, 5, 64, 129]));
        let b = Bits::from_indexes(130, ws(&[5, 64, 100]));
        let mut i = a.clone();
        i.and_with(&b);
        assert_eq!(i.ones().collect::<Vec<_>>(), ws(&[5, 64]));
        let mut u = a.clone();
        u.or_with(&b);
        assert_eq!(u.ones().collect::<Vec<_>>(), ws(&[0, 5, 64, 100, 129]));
        assert!(a.get(WorkloadIdx::new(129)) && !a.get(WorkloadIdx::new(128)));
        assert_eq!(Bits::<WorkloadIdx>::full(130).ones().count(), 130);
        assert_eq!(a.not().ones().count(), 126);
        assert_eq!(Bits::<WorkloadIdx>::full(0).ones().count(), 0);
    }
}
