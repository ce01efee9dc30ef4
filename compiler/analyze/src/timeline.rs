//! The timeline: minute slots regrouped into at most a given number of
//! buckets of a round width (1 min, 5 min, … 1 day, 1 week), aligned to
//! multiples of the width since the Unix epoch.

use std::collections::BTreeMap;

use crate::analysis::{Bucket, Timeline};
use crate::outcome::{OUTCOMES, Outcome};
use crate::tally::SLOT_SECS;

const WIDTHS: [i64; 14] = [
    60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
    2_592_000,
];

/// `a / b` rounded up, for positive numbers.
fn div_ceil(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// The bucket width (seconds) and the first bucket's start (seconds since
/// the epoch) for flows from minute slot `first` to `last`.
pub(crate) fn buckets(first: i64, last: i64, max_buckets: usize) -> (i64, i64) {
    let max_buckets = max_buckets.max(2) as i64;
    let (lo, hi) = (first * SLOT_SECS, last * SLOT_SECS);
    let span = hi - lo + SLOT_SECS;
    let width = WIDTHS
        .iter()
        .copied()
        .find(|w| div_ceil(span, *w) < max_buckets)
        // Longer than the widest width allows: as many days as it takes.
        .unwrap_or_else(|| div_ceil(div_ceil(span, max_buckets - 1), 86_400).max(1) * 86_400);
    (width, lo.div_euclid(width) * width)
}

/// Regroup minute slots (slot number → flows per outcome) into at most
/// `max_buckets` buckets (empty buckets between flows included). `span` is
/// the first and last minute of the flows when the slots are already
/// buckets (the minutes they start at), otherwise the slots give it.
pub(crate) fn timeline(
    slots: &BTreeMap<i64, [u64; OUTCOMES]>,
    max_buckets: usize,
    time: impl Fn(i64) -> String,
    span: Option<(i64, i64)>,
) -> Timeline {
    let (Some((&first, _)), Some((&last, _))) = (slots.first_key_value(), slots.last_key_value())
    else {
        return Timeline::default();
    };
    let (first, last) = span.unwrap_or((first, last));
    let (width, start) = buckets(first, last, max_buckets);
    let hi = last * SLOT_SECS;
    let n = ((hi - start) / width + 1) as usize;
    let mut counts = vec![[0u64; OUTCOMES]; n];
    for (&slot, c) in slots {
        let b = ((slot * SLOT_SECS - start) / width) as usize;
        for (a, x) in counts[b].iter_mut().zip(c) {
            *a += x;
        }
    }
    Timeline {
        bucket_seconds: width,
        buckets: counts
            .into_iter()
            .enumerate()
            .map(|(i, c)| Bucket {
                start: time((start + i as i64 * width) * 1_000_000_000),
                flows: Outcome::ALL
                    .iter()
                    .zip(c)
                    .filter(|(_, n)| *n > 0)
                    .map(|(o, n)| (*o, n))
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(ns: i64) -> String {
        (ns / 1_000_000_000).to_string()
    }

    #[test]
    fn buckets_are_round_and_cover_every_slot() {
        let mut slots = BTreeMap::new();
        // 10:00 and 12:59 (minutes since the epoch), three hours apart.
        let ten = 10 * 60;
        slots.insert(ten, [1, 0, 0, 0, 0, 0]);
        slots.insert(ten + 179, [0, 2, 0, 0, 0, 0]);
        let t = timeline(&slots, 48, secs, None);
        assert_eq!(t.bucket_seconds, 300);
        assert_eq!(t.buckets.len(), 36);
        assert_eq!(t.buckets[0].start, "36000");
        assert_eq!(t.buckets[0].flows[&Outcome::Permitted], 1);
        assert_eq!(t.buckets[35].flows[&Outcome::Escaped], 2);
        assert!(t.buckets[1..35].iter().all(|b| b.flows.is_empty()));
        let total: u64 = t.buckets.iter().flat_map(|b| b.flows.values()).sum();
        assert_eq!(total, 3);

        // One minute: one bucket of a minute.
        let one: BTreeMap<_, _> = [(ten, [0, 0, 1, 0, 0, 0])].into();
        let t = timeline(&one, 48, secs, None);
        assert_eq!((t.bucket_seconds, t.buckets.len()), (60, 1));

        // A year: days, still at most 48 buckets.
        let year: BTreeMap<_, _> = [(0, [1; 6]), (365 * 1440, [1; 6])].into();
        let t = timeline(&year, 48, secs, None);
        assert!(t.buckets.len() <= 48, "{}", t.buckets.len());
        assert_eq!(t.bucket_seconds % 86_400, 0);
        assert!(
            timeline(&BTreeMap::new(), 48, secs, None)
                .buckets
                .is_empty()
        );
    }
}
