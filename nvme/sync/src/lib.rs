//! The one way ferrofab takes a `std::sync` lock: [`CountedLock::lock_counted`] for a `Mutex`,
//! [`CountedRwLock::read_counted`] and [`CountedRwLock::write_counted`] for an `RwLock`. Each
//! acquisition is counted on the calling thread ([`taken`]), so a test can prove that a path
//! takes no lock, as the allocation-counting reactor test proves it allocates nothing. The
//! workspace's `clippy.toml` disallows the `std` methods everywhere else, so a lock cannot be
//! taken around the count.
//!
//! A poisoned lock is taken anyway: a thread that panicked while holding one left data that
//! every caller here is written to tolerate (counters, lists, registries), and the daemon
//! keeps serving rather than cascading the panic.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{
    Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
};

thread_local! {
    static TAKEN: Cell<u64> = const { Cell::new(0) };
    static REPORT: Cell<Option<&'static AtomicU64>> = const { Cell::new(None) };
}

fn count() {
    TAKEN.with(|t| t.set(t.get() + 1));
    if let Some(to) = REPORT.with(Cell::get) {
        to.fetch_add(1, Ordering::Relaxed);
    }
}

/// Also add this thread's acquisitions to `to` from now on, where other threads can read
/// them (a test watching a reactor thread it does not run on).
pub fn report_to(to: &'static AtomicU64) {
    REPORT.with(|r| r.set(Some(to)));
}

/// Locks this thread took (or tried to take) through this crate since it started.
pub fn taken() -> u64 {
    TAKEN.with(Cell::get)
}

/// Counted locking of a `Mutex`.
pub trait CountedLock<T: ?Sized> {
    /// Lock, waiting for it.
    fn lock_counted(&self) -> MutexGuard<'_, T>;
    /// Lock if no one holds it.
    fn try_lock_counted(&self) -> Option<MutexGuard<'_, T>>;
}

/// Counted locking of an `RwLock`.
pub trait CountedRwLock<T: ?Sized> {
    /// Share with other readers.
    fn read_counted(&self) -> RwLockReadGuard<'_, T>;
    /// Hold alone.
    fn write_counted(&self) -> RwLockWriteGuard<'_, T>;
}

#[allow(clippy::disallowed_methods)]
impl<T: ?Sized> CountedLock<T> for Mutex<T> {
    fn lock_counted(&self) -> MutexGuard<'_, T> {
        count();
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock_counted(&self) -> Option<MutexGuard<'_, T>> {
        count();
        match self.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

#[allow(clippy::disallowed_methods)]
impl<T: ?Sized> CountedRwLock<T> for RwLock<T> {
    fn read_counted(&self) -> RwLockReadGuard<'_, T> {
        count();
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_counted(&self) -> RwLockWriteGuard<'_, T> {
        count();
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_acquisition_counts_on_its_own_thread() {
        let m = Mutex::new(1);
        let l = RwLock::new(2);
        let before = taken();
        *m.lock_counted() += 1;
        assert_eq!(*l.read_counted(), 2);
        *l.write_counted() += 1;
        let held = m.lock_counted();
        assert!(m.try_lock_counted().is_none(), "held above");
        drop(held);
        assert_eq!(taken() - before, 5);
        let other = std::thread::spawn(taken).join().unwrap();
        assert_eq!(other, 0, "another thread's count is its own");
        assert_eq!((*m.lock_counted(), *l.read_counted()), (2, 3));
    }

    #[test]
    fn a_reporting_thread_adds_to_the_shared_counter() {
        static SEEN: AtomicU64 = AtomicU64::new(0);
        let m = std::sync::Arc::new(Mutex::new(()));
        let m2 = m.clone();
        std::thread::spawn(move || {
            drop(m2.lock_counted());
            report_to(&SEEN);
            drop(m2.lock_counted());
            drop(m2.try_lock_counted());
        })
        .join()
        .unwrap();
        drop(m.lock_counted());
        assert_eq!(
            SEEN.load(Ordering::Relaxed),
            2,
            "after report_to, on that thread only"
        );
    }

    #[test]
    fn a_poisoned_lock_is_taken_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(7));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock_counted();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.lock_counted(), 7);
        assert_eq!(m.try_lock_counted().map(|g| *g), Some(7));
    }
}
