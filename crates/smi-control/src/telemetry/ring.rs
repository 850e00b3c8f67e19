//! One series' history: a ring of time slots, in two tiers so that an hour costs 121 slots at
//! most rather than 720. The last five minutes are kept in 5 s slots (a window of `30s` is read
//! to the nearest 5 s); older data is folded into 1 min slots, dropped after an hour. Only
//! slots with data are stored.
//!
//! Which slots a window reads: every slot whose middle lies inside it, and always the current
//! one. A window then spans, on average, exactly its length, and never more than half a slot
//! more or less (2.5 s for windows up to five minutes, 30 s beyond).

use std::collections::VecDeque;
use std::time::Duration;

use super::query::Totals;
use super::slot::SlotData;

/// The fine slots: 5 s each, for the last five minutes (60 of them).
pub const FINE_SLOT: Duration = Duration::from_secs(5);
pub const FINE_SLOTS: u64 = 60;
/// The coarse slots: 1 min each, up to [`SPAN`].
pub const COARSE_SLOT: Duration = Duration::from_secs(60);
/// How far back the store remembers, and the longest window it answers.
pub const SPAN: Duration = Duration::from_secs(3600);

const FINE: u64 = FINE_SLOT.as_millis() as u64;
const COARSE: u64 = COARSE_SLOT.as_millis() as u64;
const SPAN_MS: u64 = SPAN.as_millis() as u64;

/// A series' slots, each tier ascending by index (the slot's start divided by its length).
#[derive(Clone, Debug, Default)]
pub struct Ring {
    fine: VecDeque<Slot>,
    coarse: VecDeque<Slot>,
}

#[derive(Clone, Debug)]
struct Slot {
    index: u64,
    data: SlotData,
}

impl Ring {
    /// Adds what arrived at `now` (milliseconds since the epoch) to its slot.
    pub fn add(&mut self, now: u64, data: SlotData) {
        self.advance(now);
        insert(&mut self.fine, now / FINE, data);
    }

    /// Folds fine slots older than five minutes into coarse ones and drops what is older than
    /// [`SPAN`].
    pub fn advance(&mut self, now: u64) {
        let keep_fine = fine_horizon(now);
        while let Some(slot) = self.fine.front().filter(|s| s.index < keep_fine) {
            let coarse = slot.index * FINE / COARSE;
            if let Some(slot) = self.fine.pop_front() {
                insert(&mut self.coarse, coarse, slot.data);
            }
        }
        let keep_coarse = now.saturating_sub(SPAN_MS) / COARSE;
        while self.coarse.front().is_some_and(|s| s.index < keep_coarse) {
            self.coarse.pop_front();
        }
    }

    /// No slot holds anything (every slot has expired).
    pub fn is_empty(&self) -> bool {
        self.fine.is_empty() && self.coarse.is_empty()
    }

    /// Adds the slots of the `window` ending at `now` to `totals` (see the module's docs).
    pub fn read(&self, now: u64, window: Duration, totals: &mut Totals) {
        let start = now.saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
        let expired = now.saturating_sub(SPAN_MS);
        let current = now / FINE;
        let keep_fine = fine_horizon(now);
        let inside = |slot_start: u64, len: u64| {
            // Its middle is after the window's start: 2 * start + len > 2 * window start.
            slot_start + len > expired && 2 * slot_start + len > 2 * start
        };
        for slot in &self.fine {
            // A fine slot not yet folded (no report since) reads as the coarse slot it will be.
            let included = if slot.index < keep_fine {
                let coarse = slot.index * FINE / COARSE;
                inside(coarse * COARSE, COARSE)
            } else {
                slot.index >= current || inside(slot.index * FINE, FINE)
            };
            if included {
                slot.data.add_to(totals);
            }
        }
        for slot in &self.coarse {
            if inside(slot.index * COARSE, COARSE) {
                slot.data.add_to(totals);
            }
        }
    }

    /// Holds data younger than [`SPAN`] at `now`.
    pub fn live(&self, now: u64) -> bool {
        let expired = now.saturating_sub(SPAN_MS);
        let fine = self
            .fine
            .back()
            .is_some_and(|s| (s.index + 1) * FINE > expired);
        let coarse = self
            .coarse
            .back()
            .is_some_and(|s| (s.index + 1) * COARSE > expired);
        fine || coarse
    }

    /// Slots held.
    pub fn slots(&self) -> usize {
        self.fine.len() + self.coarse.len()
    }

    /// The bytes it holds on the heap (slot arrays as allocated, and each slot's data).
    pub fn heap_bytes(&self) -> usize {
        let arrays = (self.fine.capacity() + self.coarse.capacity()) * size_of::<Slot>();
        let data: usize = self
            .fine
            .iter()
            .chain(&self.coarse)
            .map(|s| s.data.heap_bytes())
            .sum();
        arrays + data
    }
}

/// The oldest fine slot kept at `now`.
fn fine_horizon(now: u64) -> u64 {
    (now / FINE).saturating_sub(FINE_SLOTS - 1)
}

/// Adds `data` to slot `index` of `tier`, which stays ascending. Reports arrive in time order,
/// so the slot is nearly always the last or a new last one.
fn insert(tier: &mut VecDeque<Slot>, index: u64, data: SlotData) {
    let at = match tier.back() {
        Some(last) if last.index < index => tier.len(),
        None => 0,
        Some(_) => match tier.binary_search_by_key(&index, |s| s.index) {
            Ok(found) => {
                let slot = &mut tier[found];
                slot.data = slot.data.merged(&data);
                return;
            }
            Err(at) => at,
        },
    };
    tier.insert(at, Slot { index, data });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::report::Counts;

    fn data(success: u64) -> SlotData {
        SlotData::new(
            Counts {
                success,
                ..Counts::default()
            },
            [(100, success)],
        )
    }

    fn read(ring: &Ring, now: u64, window: Duration) -> u64 {
        let mut totals = Totals::default();
        ring.read(now, window, &mut totals);
        totals.counts.success
    }

    const T0: u64 = 1_700_000_000_000 / COARSE * COARSE;

    #[test]
    fn a_window_reads_the_slots_whose_middle_it_covers() {
        let mut ring = Ring::default();
        // One report per 5 s slot for a minute, each in the middle of its slot.
        for i in 0..12 {
            ring.add(T0 + i * FINE + 2_500, data(i + 1));
        }
        let now = T0 + 12 * FINE - 1;
        // 30 s: the last six slots (7..=12).
        assert_eq!(
            read(&ring, now, Duration::from_secs(30)),
            (7..=12).sum::<u64>()
        );
        // Shorter than a slot: the current one only.
        assert_eq!(read(&ring, now, Duration::from_secs(1)), 12);
        assert_eq!(
            read(&ring, now, Duration::from_secs(3600)),
            (1..=12).sum::<u64>()
        );
        // Two repeats in one slot add up.
        ring.add(now, data(100));
        assert_eq!(read(&ring, now, Duration::from_secs(1)), 112);
        assert_eq!(ring.slots(), 12);
    }

    #[test]
    fn old_slots_fold_into_minutes_and_expire_after_an_hour() {
        let mut ring = Ring::default();
        for i in 0..24 {
            ring.add(T0 + i * FINE, data(1));
        }
        // Ten minutes later the two minutes of fine slots are two coarse slots.
        let later = T0 + 10 * COARSE;
        ring.advance(later);
        assert_eq!(ring.slots(), 2);
        assert_eq!(read(&ring, later, Duration::from_secs(3600)), 24);
        // The newer of them is 8 min 30 s old in its middle: a 9 min window reads only it.
        assert_eq!(read(&ring, later, Duration::from_secs(9 * 60)), 12);
        ring.advance(T0 + SPAN_MS + COARSE);
        assert_eq!(ring.slots(), 1);
        ring.advance(T0 + SPAN_MS + 2 * COARSE);
        assert!(ring.is_empty());
    }

    #[test]
    fn a_slot_not_yet_folded_reads_as_the_minute_it_will_be_folded_into() {
        let mut ring = Ring::default();
        ring.add(T0 + 55 * 1_000, data(1));
        let later = T0 + 10 * COARSE;
        let mut advanced = ring.clone();
        advanced.advance(later);
        for minutes in [8, 9, 10, 11, 60] {
            let window = Duration::from_secs(minutes * 60);
            assert_eq!(
                read(&ring, later, window),
                read(&advanced, later, window),
                "{minutes} min"
            );
        }
    }

    #[test]
    fn a_report_from_a_clock_that_went_back_lands_in_its_own_slot() {
        let mut ring = Ring::default();
        ring.add(T0 + 3 * FINE, data(1));
        ring.add(T0 + FINE, data(2));
        ring.add(T0 + 3 * FINE, data(4));
        assert_eq!(ring.slots(), 2);
        assert_eq!(read(&ring, T0 + 3 * FINE, Duration::from_secs(1)), 5);
        assert_eq!(read(&ring, T0 + 3 * FINE, Duration::from_secs(60)), 7);
    }
}
