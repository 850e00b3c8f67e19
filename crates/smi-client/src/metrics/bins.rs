//! The latency sketch's bin of a duration, fast: `smi_core::telemetry::sketch::bin_of` takes
//! two logarithms (tens of nanoseconds), more than the whole per-request budget. The bins are
//! fixed, so their bounds are found once (with `bin_of` itself, so that the two can never
//! disagree) and a duration's bin is then a table lookup and a comparison or three.

use std::sync::OnceLock;
use std::time::Duration;

use smi_core::telemetry::sketch::{BINS, bin_of};

/// Sub-ranges per power of two: each spans a ratio of at most 17/16, about three bins.
const SUB_BITS: u32 = 4;
const SUBS: usize = 1 << SUB_BITS;

struct Table {
    /// `upper[b]`: the largest duration, in nanoseconds, in bin `b` or below (bins only grow
    /// with the duration).
    upper: Box<[u64]>,
    /// The bin of the smallest duration of each sub-range (`sub_range`).
    start: Box<[u16]>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let bin = |nanos: u64| bin_of(Duration::from_nanos(nanos));
        let mut upper = vec![u64::MAX; BINS];
        let mut low = 0u64;
        for (b, bound) in upper.iter_mut().enumerate().take(BINS - 1) {
            // The smallest duration past bin `b`, by bisection from the previous bound.
            let (mut lo, mut hi) = (low, u64::MAX);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if usize::from(bin(mid)) > b {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            *bound = lo.saturating_sub(1);
            low = lo;
        }
        let start = (0..64 * SUBS)
            .map(|i| bin(sub_range_start(i)))
            .collect::<Vec<_>>();
        Table {
            upper: upper.into(),
            start: start.into(),
        }
    })
}

/// Which sub-range `nanos` falls in: its power of two and the next `SUB_BITS` bits (values
/// below `SUBS` index themselves).
fn sub_range(nanos: u64) -> usize {
    if nanos < SUBS as u64 {
        return nanos as usize;
    }
    let power = 63 - nanos.leading_zeros();
    let sub = (nanos >> (power - SUB_BITS)) as usize & (SUBS - 1);
    (power as usize) << SUB_BITS | sub
}

/// The smallest value of sub-range `i` (the inverse of [`sub_range`]).
fn sub_range_start(i: usize) -> u64 {
    let (power, sub) = ((i >> SUB_BITS) as u32, (i & (SUBS - 1)) as u64);
    if power < SUB_BITS {
        // Below SUBS, values index themselves; the other indexes there are never used.
        return if power == 0 { sub } else { 0 };
    }
    (SUBS as u64 | sub) << (power - SUB_BITS)
}

/// The sketch bin of `nanos`: `bin_of(Duration::from_nanos(nanos))`, without logarithms.
pub(crate) fn bin_of_nanos(nanos: u64) -> u16 {
    let table = table();
    let mut bin = table
        .start
        .get(sub_range(nanos))
        .copied()
        .map_or(0, usize::from);
    // Terminates: the last bin's bound is u64::MAX.
    while table.upper.get(bin).is_some_and(|&upper| nanos > upper) {
        bin += 1;
    }
    bin.min(BINS - 1) as u16
}

/// The smallest duration, in nanoseconds, in bin `bin`.
pub(crate) fn lower_nanos(bin: usize) -> u64 {
    match bin.checked_sub(1) {
        None => 0,
        Some(below) => table()
            .upper
            .get(below)
            .map_or(u64::MAX, |upper| upper.saturating_add(1)),
    }
}

/// Builds the table now (it takes a few milliseconds), so that no request waits for it.
pub(crate) fn warm_up() {
    table();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_agrees_with_the_sketch_everywhere() {
        let table = table();
        let check = |nanos: u64| {
            assert_eq!(
                bin_of_nanos(nanos),
                bin_of(Duration::from_nanos(nanos)),
                "{nanos} ns"
            );
        };
        // Every bound and its neighbours, where a disagreement would show.
        for &upper in table.upper.iter().take(BINS - 1) {
            check(upper);
            check(upper + 1);
            check(upper.saturating_sub(1));
        }
        // And a sweep over every scale.
        let mut nanos = 1u64;
        while nanos < u64::MAX / 2 {
            check(nanos);
            check(nanos + nanos / 3);
            nanos = nanos * 2 + 1;
        }
        check(0);
        check(u64::MAX);
    }
}
