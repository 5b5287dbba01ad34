//! Device memory lent to a transport: a drive's DMA buffer that a read's data was written to,
//! or that a write's data is received into, so the bytes move between the socket and the drive
//! without a CPU copy.
//!
//! The memory is reached only through system calls' iovecs and copies in [`crate::sys`],
//! never as a slice: a device writes it. Dropping a [`Lent`] gives it back to its home.

use std::sync::Arc;

/// Where lent memory goes back to. Whoever makes a [`Lent`] of a home promises that its bytes
/// stay mapped at that address, and that no device writes them, until the home has it back.
pub trait LentHome: Send + Sync {
    /// The memory `tag` named is no longer used: take it back.
    fn release(&self, tag: u64);
}

/// `len` bytes of device memory at a process address, lent until dropped.
pub struct Lent {
    addr: usize,
    len: usize,
    tag: u64,
    home: Option<Arc<dyn LentHome>>,
}

impl Lent {
    /// `len` bytes at `addr`, which `home` takes back as `tag` (see [`LentHome`]).
    pub fn new(addr: usize, len: usize, tag: u64, home: Arc<dyn LentHome>) -> Lent {
        Lent {
            addr,
            len,
            tag,
            home: Some(home),
        }
    }

    pub fn addr(&self) -> usize {
        self.addr
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

    /// Keep the memory lent past this handle: its tag, for the home's owner to take it back
    /// another way.
    pub fn into_tag(mut self) -> u64 {
        self.home = None;
        self.tag
    }

    /// Copy `dst.len()` bytes from `off` out; `false` (nothing copied) when past the end.
    pub fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        crate::sys::copy_from_lent(self, off, dst)
    }

    /// Copy `src` in at `off`; `false` (nothing copied) when past the end.
    pub fn write(&self, off: usize, src: &[u8]) -> bool {
        crate::sys::copy_to_lent(self, off, src)
    }

    /// The bytes, copied (for tests and rare paths).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        self.read(0, &mut v);
        v
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            home.release(self.tag);
        }
    }
}

impl core::fmt::Debug for Lent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Lent({} bytes, tag {:#x})", self.len, self.tag)
    }
}
