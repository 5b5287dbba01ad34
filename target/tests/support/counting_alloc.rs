//! A global allocator that counts the allocations of threads that opted in (`TRACKED`), except
//! while they stand in for a device (`PAUSED`): the reactor tests (`tests/reactor.rs`) and the
//! NVMe/RDMA check (`examples/rdma_alloc_check.rs`) include it with `#[path]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// Count this thread's allocations.
    pub static TRACKED: Cell<bool> = const { Cell::new(false) };
    /// Not now: the thread is doing a model device's work, which is not the reactor's.
    pub static PAUSED: Cell<bool> = const { Cell::new(false) };
}

/// Allocations counted so far.
pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

pub struct CountingAlloc;

fn note_allocation() {
    if TRACKED.with(Cell::get) && !PAUSED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments
// unchanged, so System's guarantees are this allocator's; the counter touches no heap memory
// (const thread-local Cells and a static atomic).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
}
