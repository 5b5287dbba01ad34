//! Device memory lent across the polled interface: a read's data left where the drive wrote
//! it, or a buffer a write's data is received into before the drive reads it, so a transport
//! moves the bytes between the socket and the drive's DMA memory without a CPU copy.
//!
//! DMA memory is reached by address (a system call's iovec) or by copy, never as a slice: the
//! device may write it. A lease is whole pages of its home's memory; dropping it gives them
//! back to the home, which keeps them for the calling thread's next commands when it can.

use std::sync::Arc;

/// Where leased pages come from and go back to (a drive's DMA page pool).
pub trait LeaseHome: Send + Sync {
    /// The process address of the pages from `first` on, `None` when the memory has none.
    /// Valid for as long as the pages are lent.
    fn addr(&self, first: usize) -> Option<usize>;
    /// Copy bytes out of the pages from `first` on, `off` bytes in; `false` when out of range.
    fn read(&self, first: usize, off: usize, dst: &mut [u8]) -> bool;
    /// Copy bytes into the pages from `first` on, `off` bytes in; `false` when out of range.
    fn write(&self, first: usize, off: usize, src: &[u8]) -> bool;
    /// Take `pages` pages from `first` on back.
    fn give_back(self: Arc<Self>, first: usize, pages: usize);
}

/// Pages of device memory lent to the caller, `len` bytes of them in use; given back when
/// dropped.
pub struct DmaLease {
    home: Option<Arc<dyn LeaseHome>>,
    first: usize,
    pages: usize,
    len: usize,
}

impl DmaLease {
    /// `pages` pages of `home` from `first` on, `len` bytes of them in use.
    pub fn new(home: Arc<dyn LeaseHome>, first: usize, pages: usize, len: usize) -> DmaLease {
        DmaLease {
            home: Some(home),
            first,
            pages,
            len,
        }
    }

    /// A lease of nothing: no pages, no bytes.
    pub fn empty() -> DmaLease {
        DmaLease {
            home: None,
            first: 0,
            pages: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Use only the first `len` bytes (never grows).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// What tells the home's leases from another home's (its address).
    pub fn home_id(&self) -> Option<usize> {
        self.home
            .as_ref()
            .map(|h| Arc::as_ptr(h).cast::<()>() as usize)
    }

    /// The process address of byte 0 (see [`LeaseHome::addr`]).
    pub fn addr(&self) -> Option<usize> {
        self.home.as_ref().and_then(|h| h.addr(self.first))
    }

    /// Copy `dst.len()` bytes from `off` out; `false` when that is past [`DmaLease::len`].
    pub fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        let fits = off
            .checked_add(dst.len())
            .is_some_and(|end| end <= self.len);
        fits && self
            .home
            .as_ref()
            .is_some_and(|h| h.read(self.first, off, dst))
    }

    /// Copy `src` in at `off`; `false` when that is past [`DmaLease::len`].
    pub fn write(&self, off: usize, src: &[u8]) -> bool {
        let fits = off
            .checked_add(src.len())
            .is_some_and(|end| end <= self.len);
        fits && self
            .home
            .as_ref()
            .is_some_and(|h| h.write(self.first, off, src))
    }

    /// The pages as a tag for a transport's own handle, which gives them back by turning the
    /// tag into a lease again ([`DmaLease::from_tag`]) with the same home.
    pub fn into_tag(mut self) -> u64 {
        self.home = None;
        ((self.first as u64) << 32) | self.pages as u64
    }

    /// The lease [`DmaLease::into_tag`] made `tag` of, `len` bytes in use. Only a tag of
    /// `home` is valid, and only once.
    pub fn from_tag(home: Arc<dyn LeaseHome>, tag: u64, len: usize) -> DmaLease {
        let first = (tag >> 32) as usize;
        let pages = (tag & u64::from(u32::MAX)) as usize;
        DmaLease::new(home, first, pages, len)
    }
}

impl Drop for DmaLease {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            home.give_back(self.first, self.pages);
        }
    }
}

impl core::fmt::Debug for DmaLease {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DmaLease")
            .field("first_page", &self.first)
            .field("pages", &self.pages)
            .field("len", &self.len)
            .finish()
    }
}
