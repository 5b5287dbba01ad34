//! Memory for the RAM backend's chunks: 2 MiB slabs of anonymous memory, aligned to 2 MiB and
//! advised for transparent huge pages (`MADV_HUGEPAGE`), each carved into equal chunks.
//!
//! A RAM namespace's 4 KiB reads and writes copy to and from anywhere in its chunks, so with
//! ordinary 4 KiB pages nearly every copy first walks the page tables for a TLB miss. A slab
//! the kernel backs with one huge page needs one TLB entry for 2 MiB, which made random 4 KiB
//! reads and writes of a RAM namespace 6–12% cheaper per busy reactor second over loopback
//! NVMe/TCP (docs/design.md, "Work per busy core"). Where the kernel has no huge page to give (THP off,
//! or memory fragmented) the slab is ordinary pages and works the same.
//!
//! Chunks are plain memory that only their owner reaches (no device writes them), so a
//! [`Chunk`] derefs to a byte slice as a `Box<[u8]>` does.

use std::collections::HashMap;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use ferrofab_sync::CountedLock as _;

/// Slab size and alignment: one x86-64 / arm64 (4 KiB granule) huge page.
pub const SLAB: usize = 2 << 20;

/// Hands out zeroed chunks of one size from huge-page slabs. A slab whose chunks are all given
/// back is unmapped, unless it is the only one with free chunks: kept, it spares a namespace
/// that frees and writes around one slab's worth (a zone reset and refill) an unmap, a map and
/// a huge page's fault each time.
#[derive(Debug)]
pub struct ChunkArena {
    chunk: usize,
    slabs: Mutex<Slabs>,
}

#[derive(Debug, Default)]
struct Slabs {
    /// By base address.
    by_base: HashMap<usize, Slab>,
    /// Bases of the slabs with at least one free chunk, each once.
    with_free: Vec<usize>,
}

#[derive(Debug)]
struct Slab {
    _map: Mapping,
    /// Bit `i` set: chunk `i` is free.
    free: u64,
    /// Bit `i` set: chunk `i` was handed out before (its bytes need zeroing when it is again).
    used: u64,
}

impl ChunkArena {
    /// An arena of `chunk`-byte chunks: a power of two from 4 KiB (a page) to 2 MiB, at most 64
    /// per slab. Maps nothing until the first [`ChunkArena::alloc`].
    pub fn new(chunk: usize) -> Arc<ChunkArena> {
        assert!(
            chunk.is_power_of_two() && (4096..=SLAB).contains(&chunk) && SLAB / chunk <= 64,
            "chunk size {chunk} does not carve a 2 MiB slab into 1 to 64 pages-aligned chunks"
        );
        Arc::new(ChunkArena {
            chunk,
            slabs: Mutex::new(Slabs::default()),
        })
    }

    /// Slabs mapped now.
    #[cfg(test)]
    fn slabs(&self) -> usize {
        self.slabs.lock_counted().by_base.len()
    }

    fn all_free(&self) -> u64 {
        u64::MAX >> (64 - SLAB / self.chunk)
    }

    /// A chunk of which the first `len` bytes are in use (at most the chunk size), all of it
    /// zeroed (its pages faulted in); an error when a new slab cannot be mapped.
    pub fn alloc(self: &Arc<Self>, len: usize) -> io::Result<Chunk> {
        if len > self.chunk {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let (addr, fresh) = {
            let mut s = self.slabs.lock_counted();
            let base = match s.with_free.last() {
                Some(&base) => base,
                None => {
                    // Mapping with the lock held keeps two threads from both mapping a slab
                    // for one chunk; a new slab is needed once per 2 MiB allocated.
                    let map = Mapping::new()?;
                    let base = map.base.as_ptr() as usize;
                    s.by_base.insert(
                        base,
                        Slab {
                            _map: map,
                            free: self.all_free(),
                            used: 0,
                        },
                    );
                    s.with_free.push(base);
                    base
                }
            };
            let Some(slab) = s.by_base.get_mut(&base) else {
                unreachable!("a slab listed with free chunks is mapped");
            };
            let i = slab.free.trailing_zeros() as usize;
            slab.free &= !(1 << i);
            let fresh = slab.used & (1 << i) == 0;
            slab.used |= 1 << i;
            if slab.free == 0 {
                s.with_free.pop();
            }
            (base + i * self.chunk, fresh)
        };
        let Some(base) = NonNull::new(addr as *mut u8) else {
            unreachable!("slabs are never mapped at address 0");
        };
        let mut chunk = Chunk {
            base,
            len: self.chunk,
            arena: Arc::clone(self),
        };
        if fresh {
            // Zero already (a new anonymous mapping): one store per page faults the pages in
            // here rather than in the first copy into the chunk.
            for b in chunk.iter_mut().step_by(4096) {
                *b = 0;
            }
        } else {
            // A chunk given back keeps its bytes.
            chunk.fill(0);
        }
        chunk.len = len;
        Ok(chunk)
    }

    /// Take the chunk at `addr` back; its slab is unmapped (after the lock) when all are back
    /// and another slab has free chunks.
    fn give_back(&self, addr: usize) {
        let base = addr & !(SLAB - 1);
        let i = (addr - base) / self.chunk;
        let all = self.all_free();
        let unmapped = {
            let mut guard = self.slabs.lock_counted();
            let s = &mut *guard;
            let Some(slab) = s.by_base.get_mut(&base) else {
                unreachable!("a chunk's slab stays mapped until the chunk is back");
            };
            let had_free = slab.free != 0;
            slab.free |= 1 << i;
            if !had_free {
                s.with_free.push(base);
            }
            if slab.free == all && s.with_free.len() > 1 {
                s.with_free.retain(|&b| b != base);
                s.by_base.remove(&base)
            } else {
                None
            }
        };
        drop(unmapped);
    }
}

/// One chunk of a [`ChunkArena`]: its first `len` bytes as a slice, the rest zero. Given back
/// to the arena when dropped.
#[derive(Debug)]
pub struct Chunk {
    base: NonNull<u8>,
    len: usize,
    arena: Arc<ChunkArena>,
}

// SAFETY: a chunk's bytes belong to it alone (the arena hands each out once until it is given
// back in Drop), as a Box<[u8]>'s do, so moving it to or sharing it with another thread is as
// sound as for a Box<[u8]>.
unsafe impl Send for Chunk {}
// SAFETY: see `Send`; `&Chunk` gives only shared access to the bytes.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// Use the first `len` bytes, `len` not less than now and at most the chunk size (`false`,
    /// unchanged, otherwise). The bytes this adds are zero: nothing writes past the length.
    pub fn lengthen(&mut self, len: usize) -> bool {
        if len < self.len || len > self.arena.chunk {
            return false;
        }
        self.len = len;
        true
    }
}

impl Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `base..base + len` lies in one mapped slab (len <= chunk size, the chunk is
        // whole within its slab), the slab stays mapped while the chunk exists (give_back
        // unmaps only when every chunk is back), and no other Chunk covers these bytes.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only access to the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.arena.give_back(self.base.as_ptr() as usize);
    }
}

/// One 2 MiB-aligned anonymous mapping of [`SLAB`] bytes; unmapped on drop.
#[derive(Debug)]
struct Mapping {
    base: NonNull<u8>,
}

// SAFETY: a Mapping is only an address to unmap once, in Drop; it gives no access to the bytes
// (the Chunks carved from it do, under their own rules), so any thread may own or share it.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new() -> io::Result<Mapping> {
        // Twice the size, so that an aligned slab lies inside; the rest is unmapped below.
        let span = 2 * SLAB;
        // SAFETY: a fresh private anonymous mapping chosen by the kernel (addr NULL, fd -1);
        // it overlaps no Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = p as usize;
        let base = (start + SLAB - 1) & !(SLAB - 1);
        let head = base - start;
        let tail = span - head - SLAB;
        // SAFETY: both ranges are inside the mapping just made and outside the slab kept,
        // and nothing refers to them; munmap of a zero length is skipped.
        unsafe {
            if head > 0 {
                libc::munmap(p, head);
            }
            if tail > 0 {
                libc::munmap((base + SLAB) as *mut libc::c_void, tail);
            }
        }
        // SAFETY: the slab is a mapping of ours. The advice only asks for huge pages and
        // changes no contents; when the kernel lacks THP it fails (EINVAL) and the slab stays
        // ordinary pages, which is why the result is not an error.
        unsafe { libc::madvise(base as *mut libc::c_void, SLAB, libc::MADV_HUGEPAGE) };
        let Some(base) = NonNull::new(base as *mut u8) else {
            unreachable!("a mapping above address 0 aligned up is not 0");
        };
        Ok(Mapping { base })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base..base + SLAB` is exactly the slab mapped in `new`, and no Chunk into
        // it outlives it (the arena drops a slab only when all its chunks are back).
        unsafe { libc::munmap(self.base.as_ptr().cast(), SLAB) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 64 << 10;

    #[test]
    fn chunks_are_zeroed_disjoint_and_within_aligned_slabs() {
        let arena = ChunkArena::new(CHUNK);
        assert_eq!(arena.slabs(), 0, "nothing is mapped before the first chunk");
        let per_slab = SLAB / CHUNK;
        let mut chunks: Vec<Chunk> = (0..per_slab + 3)
            .map(|_| arena.alloc(CHUNK).unwrap())
            .collect();
        assert_eq!(arena.slabs(), 2);
        for (i, c) in chunks.iter_mut().enumerate() {
            assert_eq!(c.len(), CHUNK);
            assert!(c.iter().all(|&b| b == 0), "chunk {i} is zeroed");
            assert_eq!(c.as_ptr() as usize % CHUNK, 0, "chunk {i} is aligned");
            c.fill(i as u8 + 1);
        }
        for (i, c) in chunks.iter().enumerate() {
            assert!(
                c.iter().all(|&b| b == i as u8 + 1),
                "chunk {i} kept its bytes"
            );
        }
        let mut bases: Vec<usize> = chunks
            .iter()
            .map(|c| c.as_ptr() as usize & !(SLAB - 1))
            .collect();
        bases.dedup();
        assert_eq!(bases.len(), 2, "chunks fill one slab before the next");
    }

    #[test]
    fn a_chunk_given_back_comes_out_again_zeroed() {
        let arena = ChunkArena::new(CHUNK);
        let mut a = arena.alloc(CHUNK).unwrap();
        let keep = arena.alloc(CHUNK).unwrap();
        a.fill(0xa5);
        let addr = a.as_ptr() as usize;
        drop(a);
        let b = arena.alloc(CHUNK).unwrap();
        assert_eq!(b.as_ptr() as usize, addr, "the free chunk is reused");
        assert!(b.iter().all(|&x| x == 0));
        assert_eq!(arena.slabs(), 1);
        drop((b, keep));
    }

    #[test]
    fn a_slab_is_unmapped_when_all_its_chunks_are_back() {
        let arena = ChunkArena::new(CHUNK);
        let per_slab = SLAB / CHUNK;
        let mut chunks: Vec<Chunk> = (0..2 * per_slab)
            .map(|_| arena.alloc(CHUNK).unwrap())
            .collect();
        assert_eq!(arena.slabs(), 2);
        // Give back every chunk of the second slab, and all but one of the first.
        let rest = chunks.split_off(1);
        drop(rest);
        assert_eq!(arena.slabs(), 1);
        // The first slab's free chunks are used before a slab is mapped again.
        let more: Vec<Chunk> = (1..per_slab).map(|_| arena.alloc(CHUNK).unwrap()).collect();
        assert_eq!(arena.slabs(), 1);
        drop(more);
        assert_eq!(arena.slabs(), 1);
        // The last slab with free chunks stays mapped, even once all of them are free.
        chunks[0].fill(0x3c);
        drop(chunks);
        assert_eq!(arena.slabs(), 1);
        let again = arena.alloc(CHUNK).unwrap();
        assert!(again.iter().all(|&b| b == 0));
        assert_eq!(arena.slabs(), 1);
    }

    #[test]
    fn a_short_chunk_lengthens_with_zeroes_up_to_its_size_only() {
        let arena = ChunkArena::new(CHUNK);
        let mut c = arena.alloc(100).unwrap();
        assert_eq!(c.len(), 100);
        c.fill(7);
        assert!(!c.lengthen(99), "never shrinks");
        assert!(!c.lengthen(CHUNK + 1), "never past the chunk");
        assert!(c.lengthen(CHUNK));
        assert!(c[..100].iter().all(|&b| b == 7));
        assert!(c[100..].iter().all(|&b| b == 0));
        assert!(arena.alloc(CHUNK + 1).is_err());
    }

    /// The slab carries the huge-page advice: where the kernel offers THP at all, smaps says
    /// its mapping is eligible for huge pages.
    #[test]
    fn slabs_are_advised_for_huge_pages() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if thp.is_empty() || thp.contains("[never]") {
            eprintln!("transparent huge pages are off here; nothing to check");
            return;
        }
        let arena = ChunkArena::new(CHUNK);
        let c = arena.alloc(CHUNK).unwrap();
        let base = c.as_ptr() as usize & !(SLAB - 1);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // The slab's mapping (the kernel may have merged it with a neighbour of the same kind):
        // the lines from its header on.
        let mut lines = smaps.lines().skip_while(|l| {
            let range = l.split(' ').next().unwrap_or("");
            let Some((start, end)) = range.split_once('-') else {
                return true;
            };
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                return true;
            };
            !(start <= base && base + SLAB <= end)
        });
        assert!(lines.next().is_some(), "no mapping of {base:x} in smaps");
        let eligible = lines
            .find(|l| l.starts_with("THPeligible:"))
            .unwrap_or("THPeligible: ?");
        assert!(eligible.ends_with('1'), "{eligible}");
    }
}
