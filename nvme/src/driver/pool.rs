//! Page-granular allocation inside one DMA region (queues, PRP lists, bounce buffers).
//!
//! The real seam maps one hugepage area per driver and registers it with the IOMMU once; tests
//! use a [`super::dma::HeapDma`]. Either way the driver carves what it needs out of that region
//! with a [`PagePool`]: allocations are whole pages, page-aligned in IOVA space (queues and PRP
//! list pages need this, NVMe Base 2.0 §4.1.1), zeroed, and returned to the pool on drop.

use ferrofab_sync::CountedLock as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::dma::{check_bounds, DmaError, DmaRegion};
use crate::backend::{DmaLease, LeaseHome};

static ZERO_PAGE: [u8; 4096] = [0; 4096];

/// A DMA region split into fixed-size pages handed out as [`DmaBuf`]s.
pub struct PagePool<M> {
    inner: Arc<PoolInner<M>>,
}

impl<M> Clone for PagePool<M> {
    fn clone(&self) -> Self {
        PagePool {
            inner: self.inner.clone(),
        }
    }
}

struct PoolInner<M> {
    mem: M,
    page_size: usize,
    /// `true` for each page in use.
    used: Mutex<Vec<bool>>,
    /// Allocations made so far (each takes the lock).
    allocations: AtomicU64,
}

impl<M: DmaRegion> PagePool<M> {
    /// Pool over the whole pages of `mem`. `page_size` must be a power of two and `mem`'s IOVA
    /// page-aligned, so every allocation is page-aligned for the device.
    pub fn new(mem: M, page_size: usize) -> Result<PagePool<M>, DmaError> {
        let misaligned =
            !page_size.is_power_of_two() || !mem.iova().is_multiple_of(page_size as u64);
        if misaligned {
            return Err(DmaError::Misaligned {
                iova: mem.iova(),
                page_size,
            });
        }
        let pages = mem.len() / page_size;
        Ok(PagePool {
            inner: Arc::new(PoolInner {
                mem,
                page_size,
                used: Mutex::new(vec![false; pages]),
                allocations: AtomicU64::new(0),
            }),
        })
    }

    /// Pages in the pool, used or free.
    pub fn pages(&self) -> usize {
        self.inner.lock().len()
    }

    /// How many allocations the pool has served (each took its lock).
    pub fn allocations(&self) -> u64 {
        self.inner.allocations.load(Ordering::Relaxed)
    }

    pub fn page_size(&self) -> usize {
        self.inner.page_size
    }

    /// What tells this pool's buffers from another pool's ([`DmaBuf::pool_id`]).
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.inner).cast::<()>() as usize
    }

    /// The pages of a lease this pool lent ([`DmaBuf::lend`]) as a buffer again; a lease of
    /// another home comes back.
    pub fn reclaim(&self, lease: DmaLease) -> Result<DmaBuf<M>, DmaLease>
    where
        M: DmaRegion + Send + Sync + 'static,
    {
        if lease.home_id() != Some(self.id()) {
            return Err(lease);
        }
        let tag = lease.into_tag();
        Ok(DmaBuf {
            pool: self.inner.clone(),
            first: (tag >> 32) as usize,
            pages: (tag & u64::from(u32::MAX)) as usize,
        })
    }

    /// Where this pool's lent buffers go back to.
    pub fn home(&self) -> Arc<dyn LeaseHome>
    where
        M: DmaRegion + Send + Sync + 'static,
    {
        self.inner.clone()
    }

    /// The process address of the pool's memory (see [`DmaRegion::addr`]).
    pub fn addr(&self) -> Option<usize>
    where
        M: DmaRegion,
    {
        self.inner.mem.addr()
    }

    /// Pages not in use.
    pub fn free_pages(&self) -> usize {
        self.inner.lock().iter().filter(|u| !**u).count()
    }

    /// `len` bytes (at least one page), zeroed, first-fit.
    pub fn alloc(&self, len: usize) -> Result<DmaBuf<M>, DmaError> {
        let buf = self.alloc_unzeroed(len)?;
        // Zeroed from a static page: allocating here would put a heap allocation on every
        // command's path.
        let len = buf.len();
        let mut off = 0;
        while off < len {
            let n = ZERO_PAGE.len().min(len - off);
            buf.write_bytes(off, &ZERO_PAGE[..n])?;
            off += n;
        }
        Ok(buf)
    }

    /// `len` bytes (at least one page), first-fit, holding what they last held: for a
    /// transfer's bounce buffer, of which the caller writes every byte the device reads and
    /// reads only the bytes a successful command had the device write.
    pub fn alloc_unzeroed(&self, len: usize) -> Result<DmaBuf<M>, DmaError> {
        let ps = self.inner.page_size;
        let pages = len.div_ceil(ps).max(1);
        self.inner.allocations.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut used = self.inner.lock();
            let first = find_run(&used, pages).ok_or(DmaError::Exhausted {
                pages,
                page_size: ps,
            })?;
            used[first..first + pages]
                .iter_mut()
                .for_each(|u| *u = true);
            first
        };
        Ok(DmaBuf {
            pool: self.inner.clone(),
            first,
            pages,
        })
    }
}

impl<M> PoolInner<M> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<bool>> {
        self.used.lock_counted()
    }
}

fn find_run(used: &[bool], pages: usize) -> Option<usize> {
    let mut start = 0;
    while start + pages <= used.len() {
        match used[start..start + pages].iter().rposition(|u| *u) {
            Some(busy) => start += busy + 1,
            None => return Some(start),
        }
    }
    None
}

/// Pages of a [`PagePool`]; freed when dropped.
pub struct DmaBuf<M> {
    pool: Arc<PoolInner<M>>,
    first: usize,
    pages: usize,
}

impl<M> DmaBuf<M> {
    fn base(&self) -> usize {
        self.first * self.pool.page_size
    }

    /// Pages it spans.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The pool it belongs to ([`PagePool::id`]).
    pub fn pool_id(&self) -> usize {
        Arc::as_ptr(&self.pool).cast::<()>() as usize
    }
}

impl<M: DmaRegion + Send + Sync + 'static> DmaBuf<M> {
    /// Lend the buffer out with `len` bytes of it in use; dropping the lease gives the pages
    /// back to the calling thread's queue on this pool, else to the pool.
    pub fn lend(mut self, len: usize) -> DmaLease {
        let home: Arc<dyn LeaseHome> = self.pool.clone();
        let lease = DmaLease::new(home, self.first, self.pages, len);
        // Nothing left to free: the lease has the pages now.
        self.pages = 0;
        lease
    }
}

impl<M: DmaRegion + Send + Sync + 'static> LeaseHome for PoolInner<M> {
    fn addr(&self, first: usize) -> Option<usize> {
        self.mem.addr().map(|a| a + first * self.page_size)
    }

    fn read(&self, first: usize, off: usize, dst: &mut [u8]) -> bool {
        self.mem
            .read_bytes(first * self.page_size + off, dst)
            .is_ok()
    }

    fn write(&self, first: usize, off: usize, src: &[u8]) -> bool {
        self.mem
            .write_bytes(first * self.page_size + off, src)
            .is_ok()
    }

    fn give_back(self: Arc<Self>, first: usize, pages: usize) {
        super::owned::keep_spare(DmaBuf {
            pool: self,
            first,
            pages,
        });
    }
}

/// Bounce buffers one queue pair keeps for its next commands, by page count, so that a queue
/// in steady state neither takes the pool's lock nor touches the pool's reference count: at
/// most `budget` pages in all, in buffers of up to [`Spares::MAX_PAGES`] pages; larger ones go
/// back to the pool. A buffer that does not fit in the budget makes room by freeing buffers of
/// the size class holding the most pages, so what is kept follows the sizes in use (after a
/// burst of large transfers, say) rather than staying as the first commands left it.
pub struct Spares<M> {
    /// `classes[n - 1]` holds buffers of `n` pages.
    classes: Vec<Vec<DmaBuf<M>>>,
    kept: usize,
    budget: usize,
}

impl<M: DmaRegion> Spares<M> {
    /// Buffers of up to 1 MiB in 4 KiB pages are kept.
    pub const MAX_PAGES: usize = 256;

    pub fn new(budget: usize) -> Spares<M> {
        Spares {
            classes: Vec::new(),
            kept: 0,
            budget,
        }
    }

    /// A kept buffer of the pages `len` bytes need, else a new one from `pool` (not zeroed:
    /// see [`PagePool::alloc_unzeroed`]).
    pub fn take(&mut self, pool: &PagePool<M>, len: usize) -> Result<DmaBuf<M>, DmaError> {
        let pages = len.div_ceil(pool.page_size()).max(1);
        if let Some(buf) = self.classes.get_mut(pages - 1).and_then(Vec::pop) {
            self.kept -= pages;
            return Ok(buf);
        }
        pool.alloc_unzeroed(len)
    }

    /// Keep `buf` for a later [`Spares::take`], freeing others to stay within the budget.
    pub fn give(&mut self, buf: DmaBuf<M>) {
        let pages = buf.pages;
        if pages > Self::MAX_PAGES || pages > self.budget {
            return;
        }
        while self.kept + pages > self.budget {
            let fullest = (0..self.classes.len())
                .max_by_key(|&c| self.classes[c].len() * (c + 1))
                .filter(|&c| !self.classes[c].is_empty());
            let Some(c) = fullest else { break };
            self.classes[c].pop();
            self.kept -= c + 1;
        }
        if self.classes.len() < pages {
            self.classes.resize_with(pages, Vec::new);
        }
        self.classes[pages - 1].push(buf);
        self.kept += pages;
    }
}

impl<M> Drop for DmaBuf<M> {
    fn drop(&mut self) {
        if self.pages == 0 {
            return;
        }
        let mut used = self.pool.lock();
        used[self.first..self.first + self.pages]
            .iter_mut()
            .for_each(|u| *u = false);
    }
}

impl<M> core::fmt::Debug for DmaBuf<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DmaBuf")
            .field("first_page", &self.first)
            .field("pages", &self.pages)
            .finish()
    }
}

impl<M: DmaRegion> DmaRegion for DmaBuf<M> {
    fn iova(&self) -> u64 {
        self.pool.mem.iova() + self.base() as u64
    }

    fn len(&self) -> usize {
        self.pages * self.pool.page_size
    }

    fn read_bytes(&self, off: usize, dst: &mut [u8]) -> Result<(), DmaError> {
        check_bounds(off, dst.len(), self.len())?;
        self.pool.mem.read_bytes(self.base() + off, dst)
    }

    fn write_bytes(&self, off: usize, src: &[u8]) -> Result<(), DmaError> {
        check_bounds(off, src.len(), self.len())?;
        self.pool.mem.write_bytes(self.base() + off, src)
    }

    fn addr(&self) -> Option<usize> {
        self.pool.mem.addr().map(|a| a + self.base())
    }

    fn read_u16(&self, off: usize) -> Result<u16, DmaError> {
        check_bounds(off, 2, self.len())?;
        self.pool.mem.read_u16(self.base() + off)
    }

    fn read_u32(&self, off: usize) -> Result<u32, DmaError> {
        check_bounds(off, 4, self.len())?;
        self.pool.mem.read_u32(self.base() + off)
    }

    fn write_u32(&self, off: usize, v: u32) -> Result<(), DmaError> {
        check_bounds(off, 4, self.len())?;
        self.pool.mem.write_u32(self.base() + off, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::dma::HeapDma;

    fn pool(pages: usize) -> PagePool<HeapDma> {
        PagePool::new(HeapDma::new(pages * 4096, 0x10_0000), 4096).unwrap()
    }

    #[test]
    fn spares_make_room_from_the_fullest_size_class() {
        let p = pool(32);
        let mut s = Spares::new(8);
        let (a, b) = (p.alloc(4 * 4096).unwrap(), p.alloc(4 * 4096).unwrap());
        s.give(a);
        s.give(b);
        assert_eq!((s.kept, p.free_pages()), (8, 24));
        // A page more than the budget: one 4-page buffer goes back to the pool.
        s.give(p.alloc(4096).unwrap());
        assert_eq!((s.kept, p.free_pages()), (5, 27));
        let before = p.allocations();
        let four = s.take(&p, 4 * 4096).unwrap();
        let one = s.take(&p, 100).unwrap();
        assert_eq!((four.pages(), one.pages(), s.kept), (4, 1, 0));
        assert_eq!(p.allocations(), before, "both came from the spares");
        // Larger than the budget (or than MAX_PAGES): not kept.
        s.give(p.alloc(9 * 4096).unwrap());
        assert_eq!(s.kept, 0);
        assert_eq!(p.free_pages(), 27);
    }

    #[test]
    fn allocations_are_page_aligned_disjoint_and_zeroed() {
        let p = pool(8);
        let a = p.alloc(1).unwrap();
        let b = p.alloc(4097).unwrap();
        assert_eq!(a.iova(), 0x10_0000);
        assert_eq!(a.len(), 4096);
        assert_eq!(b.iova(), 0x10_1000);
        assert_eq!(b.len(), 8192);
        b.write_bytes(8191, &[7]).unwrap();
        assert!(b.write_bytes(8192, &[7]).is_err());
        assert_eq!(p.free_pages(), 5);
        drop(b);
        let c = p.alloc(4096 * 3).unwrap();
        assert_eq!(c.iova(), 0x10_1000, "freed run is reused first-fit");
        let mut byte = [1u8];
        c.read_bytes(8191, &mut byte).unwrap();
        assert_eq!(byte, [0], "reallocated pages are zeroed");
        // A bounce buffer is not zeroed, but zeroing allocations after it still are.
        drop(c);
        let d = p.alloc_unzeroed(4096 * 3).unwrap();
        assert_eq!((d.iova(), d.len()), (0x10_1000, 4096 * 3));
        d.write_bytes(100, &[9]).unwrap();
        drop(d);
        let e = p.alloc(4096).unwrap();
        e.read_bytes(100, &mut byte).unwrap();
        assert_eq!(byte, [0]);
    }

    #[test]
    fn exhaustion_and_fragmentation_are_errors() {
        let p = pool(4);
        let _a = p.alloc(4096).unwrap();
        let b = p.alloc(4096).unwrap();
        let _c = p.alloc(4096).unwrap();
        drop(b);
        assert_eq!(
            p.alloc(8192).unwrap_err(),
            DmaError::Exhausted {
                pages: 2,
                page_size: 4096
            }
        );
        let d = p.alloc(4096).unwrap();
        let e = p.alloc(4096).unwrap();
        assert_eq!((d.iova(), e.iova()), (0x10_1000, 0x10_3000));
        assert!(p.alloc(1).is_err());
    }

    #[test]
    fn misaligned_iova_is_refused() {
        assert!(PagePool::new(HeapDma::new(8192, 0x800), 4096).is_err());
        assert!(PagePool::new(HeapDma::new(8192, 0), 3000).is_err());
    }
}
