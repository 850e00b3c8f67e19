//! One time slot of one series, packed: what the store holds most of, so it is kept small. A
//! slot's success, failure and denied counts and its latency bins are one byte string of LEB128
//! varints (`success failure denied (bin-delta count)*`, bins ascending): a typical 5 s slot of
//! 50 bins takes about 100 bytes, where the same as `(u16, u64)` pairs would take 800.

use std::iter::Peekable;

use super::query::Totals;
use super::report::Counts;

/// A slot's counts and latency bins, packed.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotData(Box<[u8]>);

impl std::fmt::Debug for SlotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotData")
            .field("counts", &self.counts())
            .field("bins", &self.bins().collect::<Vec<_>>())
            .finish()
    }
}

impl SlotData {
    /// `bins` must be ascending (as [`smi_core::telemetry::LatencySketch::bins`] are).
    pub fn new(counts: Counts, bins: impl IntoIterator<Item = (u16, u64)>) -> Self {
        let mut out = Vec::with_capacity(16);
        for n in [counts.success, counts.failure, counts.denied] {
            write(&mut out, n);
        }
        let mut last = 0u16;
        for (bin, count) in bins {
            if count == 0 {
                continue;
            }
            write(&mut out, u64::from(bin.saturating_sub(last)));
            write(&mut out, count);
            last = bin;
        }
        Self(out.into_boxed_slice())
    }

    pub fn counts(&self) -> Counts {
        let mut rest = &self.0[..];
        let mut next = || read(&mut rest).unwrap_or(0);
        Counts {
            success: next(),
            failure: next(),
            denied: next(),
        }
    }

    /// The latency bins, ascending.
    pub fn bins(&self) -> Bins<'_> {
        let mut rest = &self.0[..];
        for _ in 0..3 {
            let _ = read(&mut rest);
        }
        Bins { rest, bin: 0 }
    }

    /// Both slots' observations in one.
    pub fn merged(&self, other: &SlotData) -> SlotData {
        let (a, b) = (self.counts(), other.counts());
        let counts = Counts {
            success: a.success.saturating_add(b.success),
            failure: a.failure.saturating_add(b.failure),
            denied: a.denied.saturating_add(b.denied),
        };
        SlotData::new(
            counts,
            Merge(self.bins().peekable(), other.bins().peekable()),
        )
    }

    /// Adds this slot's observations to `totals`.
    pub fn add_to(&self, totals: &mut Totals) {
        totals.add(self.counts(), self.bins());
    }

    /// The bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

/// The bins of a [`SlotData`].
#[derive(Clone, Debug)]
pub struct Bins<'a> {
    rest: &'a [u8],
    bin: u16,
}

impl Iterator for Bins<'_> {
    type Item = (u16, u64);

    fn next(&mut self) -> Option<(u16, u64)> {
        let delta = read(&mut self.rest)?;
        let count = read(&mut self.rest)?;
        self.bin = u16::try_from(delta)
            .ok()
            .and_then(|d| self.bin.checked_add(d))?;
        Some((self.bin, count))
    }
}

/// Two ascending bin sequences as one, counts of the same bin added.
struct Merge<'a>(Peekable<Bins<'a>>, Peekable<Bins<'a>>);

impl Iterator for Merge<'_> {
    type Item = (u16, u64);

    fn next(&mut self) -> Option<(u16, u64)> {
        match (self.0.peek().copied(), self.1.peek().copied()) {
            (Some((x, n)), Some((y, m))) if x == y => {
                self.0.next();
                self.1.next();
                Some((x, n.saturating_add(m)))
            }
            (Some(a), Some(b)) if a.0 < b.0 => self.0.next(),
            (_, Some(_)) => self.1.next(),
            (Some(_), None) => self.0.next(),
            (None, None) => None,
        }
    }
}

fn write(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// `None` at the end (or on a truncated varint, which [`write`] never makes).
fn read(rest: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(success: u64, failure: u64, denied: u64) -> Counts {
        Counts {
            success,
            failure,
            denied,
        }
    }

    #[test]
    fn counts_and_bins_read_back_and_merge() {
        let a = SlotData::new(counts(5, 1, u64::MAX), [(0, 1), (3, 2), (1199, 300)]);
        assert_eq!(a.counts(), counts(5, 1, u64::MAX));
        assert_eq!(a.bins().collect::<Vec<_>>(), [(0, 1), (3, 2), (1199, 300)]);
        let b = SlotData::new(counts(1, 0, 1), [(3, 1), (4, 1)]);
        let m = a.merged(&b);
        assert_eq!(m.counts(), counts(6, 1, u64::MAX));
        assert_eq!(
            m.bins().collect::<Vec<_>>(),
            [(0, 1), (3, 3), (4, 1), (1199, 300)]
        );
    }

    #[test]
    fn fifty_small_bins_take_about_two_bytes_each() {
        let bins: Vec<(u16, u64)> = (0..50).map(|i| (400 + i * 3, 2)).collect();
        let slot = SlotData::new(counts(100, 0, 0), bins);
        assert!(slot.heap_bytes() <= 105, "{}", slot.heap_bytes());
    }
}
