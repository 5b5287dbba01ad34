//! The DMA-memory seam: a region of device-visible memory with an I/O virtual address.
//!
//! The device reads and writes this memory concurrently with the CPU, so it is never exposed as a
//! `&[u8]`/`&mut [u8]` (that would promise Rust it does not change underneath). Access is by
//! copy-in/copy-out and by little-endian word reads/writes, all through `&self`. Every access is
//! bounds-checked and returns [`DmaError::OutOfBounds`] instead of panicking.
//!
//! # Memory-ordering contract of real implementations
//!
//! The queue logic relies on two orderings, which a hugepage/VFIO implementation must provide:
//!
//! - **Completion (acquire).** The driver reads a CQE's status word with [`DmaRegion::read_u16`]
//!   and reads the rest of the entry only after it has seen the expected phase tag (NVMe Base 2.0
//!   §4.6). Word reads must therefore be volatile loads followed by an acquire fence
//!   (`fence(Acquire)`, `rmb` on weakly ordered CPUs), so that no later read of the entry is
//!   satisfied before the phase bit was observed.
//! - **Submission (release).** An SQE is written completely with [`DmaRegion::write_bytes`] before
//!   the new tail is written to the SQ tail doorbell (NVMe Base 2.0 §3.3.1). Writes must be
//!   volatile stores, and the MMIO seam must issue a release fence (`fence(Release)`, `wmb`)
//!   before its doorbell store, so that the device never fetches a partially written entry. The
//!   same fence orders the driver's CQE reads before a CQ head doorbell write that lets the
//!   device reuse those slots.
//!
//! [`HeapDma`] is a safe test double: atomic bytes on the heap with a fake IOVA, shared between the
//! driver under test and a fake device.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An access outside the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DmaError {
    #[error("DMA access of {len} bytes at offset {off} outside a region of {region} bytes")]
    OutOfBounds {
        off: usize,
        len: usize,
        region: usize,
    },
    /// A [`super::pool::PagePool`] has no run of free pages long enough.
    #[error("DMA pool exhausted: no {pages} contiguous free pages of {page_size} bytes")]
    Exhausted { pages: usize, page_size: usize },
    /// A pool's region must start on a page boundary and pages must be a power of two.
    #[error("DMA region at IOVA {iova:#x} cannot be split into {page_size}-byte pages")]
    Misaligned { iova: u64, page_size: usize },
}

/// A region of device-visible memory. Offsets are relative to the start of the region.
pub trait DmaRegion {
    /// The address the device uses for byte 0 of the region.
    fn iova(&self) -> u64;

    /// Size of the region in bytes.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy `dst.len()` bytes starting at `off` out of the region.
    fn read_bytes(&self, off: usize, dst: &mut [u8]) -> Result<(), DmaError>;

    /// Copy `src` into the region starting at `off`.
    fn write_bytes(&self, off: usize, src: &[u8]) -> Result<(), DmaError>;

    /// The process address of byte 0, for a system call that moves the bytes without a CPU
    /// copy (a socket's `writev`/`readv`), or `None` when the memory has none. It stays valid
    /// for as long as the region exists; the caller must not touch bytes the device may be
    /// writing.
    fn addr(&self) -> Option<usize> {
        None
    }

    /// Little-endian 16-bit read with acquire semantics (see the module doc).
    fn read_u16(&self, off: usize) -> Result<u16, DmaError> {
        let mut b = [0u8; 2];
        self.read_bytes(off, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Little-endian 32-bit read with acquire semantics (see the module doc).
    fn read_u32(&self, off: usize) -> Result<u32, DmaError> {
        let mut b = [0u8; 4];
        self.read_bytes(off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Little-endian 32-bit write.
    fn write_u32(&self, off: usize, v: u32) -> Result<(), DmaError> {
        self.write_bytes(off, &v.to_le_bytes())
    }
}

/// Check that `off..off + len` lies within a region of `region` bytes.
pub fn check_bounds(off: usize, len: usize, region: usize) -> Result<(), DmaError> {
    match off.checked_add(len) {
        Some(end) if end <= region => Ok(()),
        _ => Err(DmaError::OutOfBounds { off, len, region }),
    }
}

/// Shared handles to a region are regions too (the driver and a device model can share one).
macro_rules! forward_dma_region {
    ($($head:tt)*) => {
        $($head)* {
            fn iova(&self) -> u64 {
                (**self).iova()
            }
            fn len(&self) -> usize {
                (**self).len()
            }
            fn read_bytes(&self, off: usize, dst: &mut [u8]) -> Result<(), DmaError> {
                (**self).read_bytes(off, dst)
            }
            fn write_bytes(&self, off: usize, src: &[u8]) -> Result<(), DmaError> {
                (**self).write_bytes(off, src)
            }
            fn addr(&self) -> Option<usize> {
                (**self).addr()
            }
            fn read_u16(&self, off: usize) -> Result<u16, DmaError> {
                (**self).read_u16(off)
            }
            fn read_u32(&self, off: usize) -> Result<u32, DmaError> {
                (**self).read_u32(off)
            }
            fn write_u32(&self, off: usize, v: u32) -> Result<(), DmaError> {
                (**self).write_u32(off, v)
            }
        }
    };
}

forward_dma_region!(impl<D: DmaRegion + ?Sized> DmaRegion for &D);
forward_dma_region!(impl<D: DmaRegion + ?Sized> DmaRegion for Arc<D>);

/// Heap memory posing as DMA memory: zero-initialised atomic words with a caller-chosen fake
/// IOVA. Stores are `Release` and loads `Acquire`, so a fake device on another thread sees the
/// same ordering the real seam promises. Copies move whole 64-bit words where they can (a byte
/// at a time, a 4 KiB transfer cost the model drive and the driver's bounce copies a few µs each).
pub struct HeapDma {
    iova: u64,
    len: usize,
    words: Box<[AtomicU64]>,
}

const WORD: usize = 8;

impl HeapDma {
    pub fn new(len: usize, iova: u64) -> HeapDma {
        HeapDma {
            iova,
            len,
            words: (0..len.div_ceil(WORD)).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The bytes of `off..off + len` as runs within one word each: (word index, byte in the word,
/// byte count).
fn word_runs(off: usize, len: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let end = off + len;
    let mut pos = off;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let within = pos % WORD;
        let n = (WORD - within).min(end - pos);
        let run = (pos / WORD, within, n);
        pos += n;
        Some(run)
    })
}

impl core::fmt::Debug for HeapDma {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapDma")
            .field("iova", &format_args!("{:#x}", self.iova))
            .field("len", &self.len)
            .finish()
    }
}

impl DmaRegion for HeapDma {
    fn iova(&self) -> u64 {
        self.iova
    }

    fn addr(&self) -> Option<usize> {
        // The words never move: the boxed slice lives as long as the region.
        Some(self.words.as_ptr() as usize)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn read_bytes(&self, off: usize, dst: &mut [u8]) -> Result<(), DmaError> {
        check_bounds(off, dst.len(), self.len)?;
        let mut at = 0;
        for (word, within, n) in word_runs(off, dst.len()) {
            let bytes = self.words[word].load(Ordering::Acquire).to_le_bytes();
            if n == WORD {
                // A constant-size copy, so the whole-word case compiles to one store.
                let whole: &mut [u8; WORD] =
                    (&mut dst[at..at + WORD]).try_into().expect("a whole word");
                *whole = bytes;
            } else {
                dst[at..at + n].copy_from_slice(&bytes[within..within + n]);
            }
            at += n;
        }
        Ok(())
    }

    fn write_bytes(&self, off: usize, src: &[u8]) -> Result<(), DmaError> {
        check_bounds(off, src.len(), self.len)?;
        let mut at = 0;
        for (word, within, n) in word_runs(off, src.len()) {
            let part = &src[at..at + n];
            at += n;
            if n == WORD {
                let v = u64::from_le_bytes(part.try_into().expect("a whole word"));
                self.words[word].store(v, Ordering::Release);
                continue;
            }
            // Part of a word: the other bytes keep what they hold.
            let merge = |old: u64| {
                let mut bytes = old.to_le_bytes();
                bytes[within..within + n].copy_from_slice(part);
                Some(u64::from_le_bytes(bytes))
            };
            // `merge` always answers Some, so the update cannot fail.
            let _ = self.words[word].fetch_update(Ordering::Release, Ordering::Acquire, merge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_region_is_zeroed_and_reports_iova_and_len() {
        let m = HeapDma::new(32, 0x1000_0000);
        assert_eq!(m.iova(), 0x1000_0000);
        assert_eq!(m.len(), 32);
        assert!(!m.is_empty());
        let mut buf = [0xffu8; 32];
        m.read_bytes(0, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 32]);
        assert!(HeapDma::new(0, 0).is_empty());
    }

    #[test]
    fn bytes_round_trip_at_an_offset() {
        let m = HeapDma::new(16, 0);
        m.write_bytes(5, &[1, 2, 3]).unwrap();
        let mut buf = [0u8; 8];
        m.read_bytes(4, &mut buf).unwrap();
        assert_eq!(buf, [0, 1, 2, 3, 0, 0, 0, 0]);
    }

    #[test]
    fn unaligned_copies_across_words_keep_their_neighbours() {
        let m = HeapDma::new(37, 0);
        m.write_bytes(0, &[0xee; 37]).unwrap();
        let src: Vec<u8> = (1..=21).collect();
        m.write_bytes(3, &src).unwrap();
        let mut all = [0u8; 37];
        m.read_bytes(0, &mut all).unwrap();
        assert_eq!(all[..3], [0xee; 3]);
        assert_eq!(all[3..24], src[..]);
        assert_eq!(all[24..], [0xee; 13]);
        // A read starting and ending inside words, and one of the region's last odd bytes.
        let mut part = [0u8; 10];
        m.read_bytes(5, &mut part).unwrap();
        assert_eq!(part[..], src[2..12]);
        let mut tail = [0u8; 2];
        m.read_bytes(35, &mut tail).unwrap();
        assert_eq!(tail, [0xee; 2]);
        assert!(m.read_bytes(36, &mut tail).is_err());
    }

    #[test]
    fn words_are_little_endian() {
        let m = HeapDma::new(8, 0);
        m.write_u32(4, 0x1122_3344).unwrap();
        let mut buf = [0u8; 8];
        m.read_bytes(0, &mut buf).unwrap();
        assert_eq!(buf, [0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]);
        assert_eq!(m.read_u32(4).unwrap(), 0x1122_3344);
        assert_eq!(m.read_u16(4).unwrap(), 0x3344);
        assert_eq!(m.read_u16(6).unwrap(), 0x1122);
    }

    #[test]
    fn out_of_bounds_is_an_error_and_writes_nothing() {
        let m = HeapDma::new(8, 0);
        let oob = DmaError::OutOfBounds {
            off: 6,
            len: 4,
            region: 8,
        };
        assert_eq!(m.write_u32(6, 0xffff_ffff), Err(oob));
        assert_eq!(m.read_u32(6), Err(oob));
        assert_eq!(
            m.read_u16(7),
            Err(DmaError::OutOfBounds {
                off: 7,
                len: 2,
                region: 8
            })
        );
        assert!(m.read_bytes(usize::MAX, &mut [0u8; 1]).is_err());
        assert!(m.write_bytes(9, &[]).is_err());
        // An empty access at the end is in bounds; the failed write above changed nothing.
        m.write_bytes(8, &[]).unwrap();
        let mut buf = [0xffu8; 8];
        m.read_bytes(0, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 8]);
    }

    #[test]
    fn references_and_arcs_forward_to_the_region() {
        let m = Arc::new(HeapDma::new(8, 0x2000));
        let shared = Arc::clone(&m);
        shared.write_u32(0, 7).unwrap();
        assert_eq!(DmaRegion::read_u32(&&*m, 0).unwrap(), 7);
        assert_eq!(DmaRegion::iova(&shared), 0x2000);
        assert_eq!(DmaRegion::len(&&*m), 8);
    }
}
