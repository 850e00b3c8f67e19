//! The telemetry store's clock: a parameter, so that tests move time on instead of sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the store reads the time from: the wall clock in a control, a [`ManualClock`] in tests.
pub trait Clock: Debug + Send + Sync + 'static {
    fn now(&self) -> SystemTime;

    /// [`Clock::now`] as milliseconds since the Unix epoch (0 before it).
    fn now_millis(&self) -> u64 {
        millis(self.now())
    }
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    pub fn new(at: SystemTime) -> Self {
        Self {
            millis: AtomicU64::new(millis(at)),
        }
    }

    /// Moves the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::Relaxed);
    }

    pub fn set(&self, at: SystemTime) {
        self.millis.store(millis(at), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}

/// `t` as milliseconds since the Unix epoch (0 before it).
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
