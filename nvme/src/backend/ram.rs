//! A sparse in-memory backend.
//!
//! The namespace is divided into fixed 64 KiB chunks that are allocated on first write; a chunk
//! that was never written (or was freed by Deallocate / Write Zeroes) reads as zeroes, so a
//! 1 TiB namespace costs nothing until it is used. Chunks live in sharded maps, each behind its
//! own `RwLock`, so I/O from many threads only contends when it hits the same shard.
//!
//! A chunk is a whole number of logical blocks (64 KiB is a multiple of 512 and 4096), so every
//! block is copied under one lock: a block is never observed half-written (atomic write unit of
//! one block, AWUN/AWUPF = 0's-based 0; NVM Command Set 1.0, "Atomic Operations").
//!
//! Chunks come from 2 MiB slabs backed by transparent huge pages where the kernel has them
//! ([`crate::sys::huge_chunks`]): random 4 KiB copies anywhere in a namespace then seldom miss
//! the TLB. So a namespace takes memory from the system 2 MiB at a time (chunks fill a slab in
//! the order they are allocated, wherever their blocks are, and freed ones are reused first),
//! and gives a slab back when all its chunks are freed (but for the last one with room).
//!
//! Locks are held for the copies only: a chunk that is missing is allocated (zero-filled, its
//! pages faulted in) before its shard's lock is taken, and chunks freed by Deallocate or Write
//! Zeroes are released after it, so readers of the shard's other chunks never wait for the
//! allocator. [`RamBackend::take`] hands freed chunks to a caller that holds a lock of its own,
//! to release them after that lock too.
//!
//! Growing ([`Backend::grown`]) copies nothing: the grown backend shares the chunk shards
//! with this one and only its capacity differs. A chunk is as long as the namespace was
//! when it was allocated, so the last chunk of a smaller namespace may be short: writes
//! lengthen a short chunk (zero-filled) under its shard lock, and reads, Write Zeroes and
//! Deallocate treat the bytes past a chunk's end as zeroes. Both backends stay correct for
//! whatever I/O each of them still carries.

use ferrofab_sync::CountedRwLock as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::sys::huge_chunks::{Chunk, ChunkArena};

use super::null::{buf_span, byte_span, check_geometry};
use super::{grown_blocks, Backend, BackendError, BackendInfo, SharedBackend};

/// log2 of the allocation chunk size.
const CHUNK_SHIFT: u32 = 16;
/// Allocation chunk size in bytes (64 KiB).
pub const CHUNK_SIZE: u64 = 1 << CHUNK_SHIFT;
/// Number of lock shards; a power of two.
const SHARDS: usize = 64;

type ChunkMap = HashMap<u64, Chunk>;

/// Sparse RAM namespace.
#[derive(Debug)]
pub struct RamBackend {
    block_size: u32,
    num_blocks: u64,
    size_bytes: u64,
    /// Shared with the backends grown from this one (and the one it was grown from).
    shards: Arc<[RwLock<ChunkMap>]>,
    /// Where chunks come from; shared like the shards.
    arena: Arc<ChunkArena>,
    allocated: Arc<AtomicU64>,
}

/// Chunks taken out of a namespace ([`RamBackend::take`]): their memory is freed when this is
/// dropped, which a caller holding a lock does after releasing it.
#[derive(Debug, Default)]
pub struct Freed(Vec<Chunk>);

impl Freed {
    /// Also hold the chunks of `other`.
    pub fn append(&mut self, mut other: Freed) {
        self.0.append(&mut other.0);
    }
}

/// One chunk-sized piece of a byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    /// Chunk index.
    chunk: u64,
    /// Offset of the piece inside the chunk.
    offset: usize,
    /// Length of the piece.
    len: usize,
}

/// Splits `offset .. offset + len` at chunk boundaries.
struct Pieces {
    offset: u64,
    end: u64,
}

impl Iterator for Pieces {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.offset >= self.end {
            return None;
        }
        let chunk = self.offset >> CHUNK_SHIFT;
        let in_chunk = self.offset & (CHUNK_SIZE - 1);
        let len = (CHUNK_SIZE - in_chunk).min(self.end - self.offset);
        self.offset += len;
        // Both values are below CHUNK_SIZE, which fits any usize this crate builds for.
        Some(Piece {
            chunk,
            offset: in_chunk as usize,
            len: len as usize,
        })
    }
}

fn pieces(offset: u64, len: u64) -> Pieces {
    Pieces {
        offset,
        end: offset.saturating_add(len),
    }
}

impl RamBackend {
    /// A RAM namespace of `size_bytes` (a non-zero whole number of `block_size` blocks, block
    /// size 512 or 4096). Nothing is allocated until blocks are written.
    pub fn new(size_bytes: u64, block_size: u32) -> Result<Self, BackendError> {
        let num_blocks = check_geometry(size_bytes, block_size)?;
        let shards = (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect();
        Ok(RamBackend {
            block_size,
            num_blocks,
            size_bytes,
            shards,
            arena: ChunkArena::new(CHUNK_SIZE as usize),
            allocated: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Bytes of chunk memory currently allocated (for metrics).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Length of chunk `chunk`: `CHUNK_SIZE` except for a short last chunk.
    fn chunk_len(&self, chunk: u64) -> usize {
        let start = chunk << CHUNK_SHIFT;
        // Callers only pass chunks that hold part of the namespace, so start < size_bytes.
        self.size_bytes.saturating_sub(start).min(CHUNK_SIZE) as usize
    }

    fn shard(&self, chunk: u64) -> &RwLock<ChunkMap> {
        // Fibonacci hashing spreads strided access patterns over the shards; the top
        // log2(SHARDS) bits of the product select one.
        let h = chunk.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARDS.trailing_zeros());
        &self.shards[h as usize % SHARDS]
    }

    fn read_shard(&self, chunk: u64) -> RwLockReadGuard<'_, ChunkMap> {
        // A poisoned lock only means another thread panicked mid-copy; the map itself is intact.
        self.shard(chunk).read_counted()
    }

    fn write_shard(&self, chunk: u64) -> RwLockWriteGuard<'_, ChunkMap> {
        self.shard(chunk).write_counted()
    }

    /// A zeroed chunk of `len` bytes, or `NoSpace` when memory is exhausted.
    fn alloc_chunk(&self, len: usize) -> Result<Chunk, BackendError> {
        let chunk = self.arena.alloc(len).map_err(|_| BackendError::NoSpace)?;
        self.allocated.fetch_add(len as u64, Ordering::Relaxed);
        Ok(chunk)
    }

    /// Lengthen a short chunk (of a smaller namespace) to `len` bytes, which read as zeroes.
    fn lengthen(&self, chunk: &mut Chunk, len: usize) {
        let grow = len.saturating_sub(chunk.len());
        if chunk.lengthen(len) {
            self.allocated.fetch_add(grow as u64, Ordering::Relaxed);
        }
    }

    /// Zero a byte range: chunks it covers to their end are taken out and returned, to be
    /// freed once no lock is held, others zeroed in place (bytes past a short chunk's end read
    /// as zeroes already).
    fn zero_range(&self, offset: u64, len: u64) -> Freed {
        let mut freed = Freed::default();
        for p in pieces(offset, len) {
            let mut shard = self.write_shard(p.chunk);
            let Some(data) = shard.get_mut(&p.chunk) else {
                continue;
            };
            if p.offset == 0 && p.len >= data.len() {
                if let Some(old) = shard.remove(&p.chunk) {
                    self.allocated
                        .fetch_sub(old.len() as u64, Ordering::Relaxed);
                    freed.0.push(old);
                }
            } else {
                let end = (p.offset + p.len).min(data.len());
                if let Some(dst) = data.get_mut(p.offset..end) {
                    dst.fill(0);
                }
            }
        }
        freed
    }

    /// Deallocate `blocks` blocks at `lba` as [`Backend::deallocate`] does, but return the
    /// chunks taken out instead of freeing them: a caller holding a lock of its own drops
    /// them after releasing it (freeing memory can take the allocator into the kernel).
    pub fn take(&self, lba: u64, blocks: u64) -> Result<Freed, BackendError> {
        let (offset, len) = byte_span(lba, blocks, self.block_size, self.num_blocks)?;
        Ok(self.zero_range(offset, len))
    }
}

impl Backend for RamBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            block_size: self.block_size,
            num_blocks: self.num_blocks,
            deallocated_reads_zero: true,
            volatile_write_cache: false,
        }
    }

    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let (offset, len) = buf_span(lba, buf.len(), self.block_size, self.num_blocks)?;
        let mut pos = 0usize;
        for p in pieces(offset, len) {
            let dst = &mut buf[pos..pos + p.len];
            pos += p.len;
            let shard = self.read_shard(p.chunk);
            // A short chunk (allocated before the namespace grew) holds a prefix of the piece;
            // the rest was never written.
            let src = shard
                .get(&p.chunk)
                .and_then(|data| data.get(p.offset.min(data.len())..))
                .map_or(&[][..], |rest| &rest[..rest.len().min(p.len)]);
            let (held, unwritten) = dst.split_at_mut(src.len());
            held.copy_from_slice(src);
            unwritten.fill(0);
        }
        Ok(())
    }

    fn write(&self, lba: u64, data: &[u8], _fua: bool) -> Result<(), BackendError> {
        let (offset, len) = buf_span(lba, data.len(), self.block_size, self.num_blocks)?;
        let mut pos = 0usize;
        for p in pieces(offset, len) {
            let src = &data[pos..pos + p.len];
            pos += p.len;
            let chunk_len = self.chunk_len(p.chunk);
            let mut shard = self.write_shard(p.chunk);
            // A missing chunk is allocated without the shard's lock, which readers of the
            // shard's other chunks would wait for; if another write allocated it meanwhile,
            // this one is spare and freed after the lock.
            let mut fresh = None;
            if !shard.contains_key(&p.chunk) {
                drop(shard);
                fresh = Some(self.alloc_chunk(chunk_len)?);
                shard = self.write_shard(p.chunk);
            }
            let chunk = match shard.entry(p.chunk) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    if let Some(spare) = &fresh {
                        self.allocated
                            .fetch_sub(spare.len() as u64, Ordering::Relaxed);
                    }
                    let chunk = e.into_mut();
                    if chunk.len() < p.offset + p.len {
                        self.lengthen(chunk, chunk_len);
                    }
                    chunk
                }
                std::collections::hash_map::Entry::Vacant(e) => match fresh.take() {
                    Some(f) => e.insert(f),
                    None => e.insert(self.alloc_chunk(chunk_len)?),
                },
            };
            if let Some(dst) = chunk.get_mut(p.offset..p.offset + p.len) {
                dst.copy_from_slice(src);
            }
            drop(shard);
            drop(fresh);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), BackendError> {
        // No volatile cache: every completed write is already as durable as RAM gets.
        Ok(())
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        let (offset, len) = byte_span(lba, blocks, self.block_size, self.num_blocks)?;
        drop(self.zero_range(offset, len));
        Ok(())
    }

    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        // Deallocated blocks read as zeroes (Identify Namespace DLFEAT read behavior 001b,
        // NVM Command Set 1.0, Identify Namespace data structure).
        drop(self.take(lba, blocks)?);
        Ok(())
    }

    fn may_block(&self) -> bool {
        false
    }

    fn grown(&self, size_bytes: u64) -> Result<SharedBackend, BackendError> {
        let num_blocks = grown_blocks(size_bytes, self.block_size, self.num_blocks)?;
        Ok(Arc::new(RamBackend {
            block_size: self.block_size,
            num_blocks,
            size_bytes,
            shards: Arc::clone(&self.shards),
            arena: Arc::clone(&self.arena),
            allocated: Arc::clone(&self.allocated),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};

    const MIB: u64 = 1 << 20;

    fn random(rng: &mut StdRng, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        v
    }

    fn read_vec(b: &RamBackend, lba: u64, blocks: u64) -> Vec<u8> {
        let mut v = vec![0xeeu8; (blocks * u64::from(b.block_size)) as usize];
        b.read(lba, &mut v).unwrap();
        v
    }

    #[test]
    fn pieces_split_at_chunk_boundaries() {
        let v: Vec<Piece> = pieces(CHUNK_SIZE - 512, CHUNK_SIZE + 1024).collect();
        assert_eq!(
            v,
            vec![
                Piece {
                    chunk: 0,
                    offset: 65024,
                    len: 512
                },
                Piece {
                    chunk: 1,
                    offset: 0,
                    len: 65536
                },
                Piece {
                    chunk: 2,
                    offset: 0,
                    len: 512
                },
            ]
        );
        assert_eq!(pieces(100, 0).count(), 0);
    }

    #[test]
    fn terabyte_namespace_allocates_nothing_up_front() {
        let b = RamBackend::new(1 << 40, 4096).unwrap();
        assert_eq!(b.info().num_blocks, 1 << 28);
        assert_eq!(b.allocated_bytes(), 0);
        // The last block is usable and costs one chunk.
        let last = b.info().num_blocks - 1;
        b.write(last, &[0x5a; 4096], false).unwrap();
        assert_eq!(b.allocated_bytes(), CHUNK_SIZE);
        assert_eq!(read_vec(&b, last, 1), vec![0x5a; 4096]);
        assert_eq!(read_vec(&b, last - 1, 1), vec![0; 4096]);
    }

    #[test]
    fn info_reports_capabilities() {
        let b = RamBackend::new(8 * MIB, 512).unwrap();
        assert_eq!(
            b.info(),
            BackendInfo {
                block_size: 512,
                num_blocks: 16384,
                deallocated_reads_zero: true,
                volatile_write_cache: false,
            }
        );
        assert!(!b.may_block());
        assert!(RamBackend::new(8 * MIB, 520).is_err());
        assert!(RamBackend::new(8 * MIB + 100, 512).is_err());
    }

    #[test]
    fn write_read_roundtrip_at_many_offsets() {
        for bs in [512u32, 4096] {
            let b = RamBackend::new(4 * MIB, bs).unwrap();
            let bsz = u64::from(bs);
            let cap = b.info().num_blocks;
            let mut rng = StdRng::seed_from_u64(u64::from(bs));
            let per_chunk = CHUNK_SIZE / bsz;
            // (lba, blocks): first block, last block, ranges straddling chunk boundaries,
            // a multi-chunk range starting mid-chunk.
            let cases = [
                (0, 1),
                (cap - 1, 1),
                (per_chunk - 1, 2),
                (per_chunk * 3 - 2, per_chunk + 5),
                (per_chunk * 10 + 3, 3 * per_chunk),
                (cap - per_chunk - 1, per_chunk + 1),
            ];
            let mut model = vec![0u8; (4 * MIB) as usize];
            for &(lba, blocks) in &cases {
                let data = random(&mut rng, (blocks * bsz) as usize);
                b.write(lba, &data, rng.random()).unwrap();
                let start = (lba * bsz) as usize;
                model[start..start + data.len()].copy_from_slice(&data);
                assert_eq!(read_vec(&b, lba, blocks), data);
            }
            // Whole namespace matches the model, including untouched regions reading zero.
            assert_eq!(read_vec(&b, 0, cap), model);
            assert!(b.allocated_bytes() <= 4 * MIB);
            assert!(b.allocated_bytes() >= 6 * CHUNK_SIZE);
        }
    }

    #[test]
    fn unwritten_reads_are_zero() {
        let b = RamBackend::new(2 * MIB, 4096).unwrap();
        assert_eq!(read_vec(&b, 0, 512), vec![0u8; (2 * MIB) as usize]);
        assert_eq!(b.allocated_bytes(), 0);
    }

    #[test]
    fn short_last_chunk_is_sized_exactly() {
        // 64 KiB + 4 KiB: the second chunk is only one block long.
        let b = RamBackend::new(CHUNK_SIZE + 4096, 4096).unwrap();
        b.write(16, &[7u8; 4096], false).unwrap();
        assert_eq!(b.allocated_bytes(), 4096);
        assert_eq!(read_vec(&b, 15, 2)[4096..], [7u8; 4096]);
        b.deallocate(16, 1).unwrap();
        assert_eq!(b.allocated_bytes(), 0);
    }

    fn zeroing_is_exact(zero: impl Fn(&RamBackend, u64, u64)) {
        let b = RamBackend::new(MIB, 512).unwrap();
        let cap = b.info().num_blocks;
        let mut rng = StdRng::seed_from_u64(7);
        let mut model = random(&mut rng, MIB as usize);
        b.write(0, &model, false).unwrap();
        assert_eq!(b.allocated_bytes(), MIB);
        // Partial chunk at the front, two whole chunks, partial chunk at the back.
        let per_chunk = CHUNK_SIZE / 512;
        let (lba, blocks) = (per_chunk - 3, 2 * per_chunk + 7);
        zero(&b, lba, blocks);
        let start = (lba * 512) as usize;
        model[start..start + (blocks * 512) as usize].fill(0);
        assert_eq!(read_vec(&b, 0, cap), model);
        // The two whole chunks were freed.
        assert_eq!(b.allocated_bytes(), MIB - 2 * CHUNK_SIZE);
        // A single block in the middle of a chunk.
        zero(&b, 1000, 1);
        model[1000 * 512..1001 * 512].fill(0);
        assert_eq!(read_vec(&b, 0, cap), model);
        // Everything.
        zero(&b, 0, cap);
        assert_eq!(read_vec(&b, 0, cap), vec![0u8; MIB as usize]);
        assert_eq!(b.allocated_bytes(), 0);
    }

    #[test]
    fn deallocate_zeroes_exactly_the_range() {
        zeroing_is_exact(|b, lba, n| b.deallocate(lba, n).unwrap());
    }

    #[test]
    fn write_zeroes_zeroes_exactly_the_range() {
        zeroing_is_exact(|b, lba, n| b.write_zeroes(lba, n).unwrap());
    }

    #[test]
    fn out_of_range_and_misaligned() {
        let b = RamBackend::new(MIB, 4096).unwrap();
        let cap = b.info().num_blocks;
        let mut buf = vec![0u8; 8192];
        assert!(matches!(
            b.read(cap - 1, &mut buf),
            Err(BackendError::OutOfRange { lba, blocks: 2, capacity }) if lba == cap - 1 && capacity == cap
        ));
        assert!(matches!(
            b.write(cap, &buf, false),
            Err(BackendError::OutOfRange { .. })
        ));
        assert!(matches!(
            b.write(u64::MAX, &buf, false),
            Err(BackendError::OutOfRange { .. })
        ));
        assert!(matches!(
            b.write(0, &buf[..4095], false),
            Err(BackendError::Misaligned {
                len: 4095,
                block_size: 4096
            })
        ));
        assert!(matches!(
            b.read(0, &mut buf[..512]),
            Err(BackendError::Misaligned { len: 512, .. })
        ));
        assert!(matches!(
            b.write_zeroes(1, u64::MAX),
            Err(BackendError::OutOfRange { .. })
        ));
        assert!(matches!(
            b.deallocate(cap, 1),
            Err(BackendError::OutOfRange { .. })
        ));
        // Nothing was touched by the failed calls.
        assert_eq!(b.allocated_bytes(), 0);
        b.deallocate(cap, 0).unwrap();
    }

    #[test]
    fn concurrent_disjoint_writers() {
        const THREADS: u64 = 4;
        // Stripes of 3 blocks (1.5 KiB) interleave the threads inside every chunk, so
        // chunk allocation races between threads on the same shard.
        const STRIPE: u64 = 3;
        let b = Arc::new(RamBackend::new(4 * MIB, 512).unwrap());
        let cap = b.info().num_blocks;
        let pattern = |lba: u64| -> Vec<u8> {
            let mut rng = StdRng::seed_from_u64(lba);
            random(&mut rng, (STRIPE * 512) as usize)
        };
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut lba = t * STRIPE;
                    while lba + STRIPE <= cap {
                        let data = pattern(lba);
                        b.write(lba, &data, false).unwrap();
                        // Read back our own stripe while others keep writing.
                        let mut back = vec![0u8; data.len()];
                        b.read(lba, &mut back).unwrap();
                        assert_eq!(back, data, "thread {t} lba {lba}");
                        lba += THREADS * STRIPE;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let all = read_vec(&b, 0, cap);
        let mut lba = 0;
        while lba + STRIPE <= cap {
            let off = (lba * 512) as usize;
            assert_eq!(all[off..off + (STRIPE * 512) as usize], pattern(lba)[..]);
            lba += STRIPE;
        }
        // The tail that no stripe covers stayed zero.
        assert!(all[(lba * 512) as usize..].iter().all(|&x| x == 0));
        assert_eq!(b.allocated_bytes(), 4 * MIB);
    }

    #[test]
    fn grown_backend_shares_the_data_and_zeroes_the_new_blocks() {
        // 64 KiB + 4 KiB: the second chunk is short until the namespace grows.
        let old = RamBackend::new(CHUNK_SIZE + 4096, 4096).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let first = random(&mut rng, 17 * 4096);
        old.write(0, &first, false).unwrap();
        assert_eq!(old.allocated_bytes(), CHUNK_SIZE + 4096);
        let new = old.grown(4 * CHUNK_SIZE).unwrap();
        assert_eq!(new.info().num_blocks, 64);
        assert_eq!(old.info().num_blocks, 17, "the old backend keeps its size");
        // What was written reads back; the new blocks (in the short chunk too) read zero.
        let mut back = vec![0xee; 64 * 4096];
        new.read(0, &mut back).unwrap();
        assert_eq!(back[..first.len()], first[..]);
        assert!(back[first.len()..].iter().all(|&b| b == 0));
        // Writing past the old end lengthens the short chunk, keeping its first block.
        let tail = random(&mut rng, 2 * 4096);
        new.write(17, &tail, false).unwrap();
        let mut two = vec![0; 3 * 4096];
        new.read(16, &mut two).unwrap();
        assert_eq!(two[..4096], first[16 * 4096..]);
        assert_eq!(two[4096..], tail[..]);
        assert_eq!(old.allocated_bytes(), 2 * CHUNK_SIZE, "shared accounting");
        // The old backend still serves its range, and sees writes made through the new one.
        let mut b16 = vec![0; 4096];
        old.read(16, &mut b16).unwrap();
        assert_eq!(b16, first[16 * 4096..]);
        assert!(old.read(17, &mut b16).is_err());
        old.write(16, &[3; 4096], false).unwrap();
        new.read(16, &mut b16).unwrap();
        assert_eq!(b16, vec![3; 4096]);
        // Deallocating the old end through the old backend keeps the blocks past it.
        old.deallocate(16, 1).unwrap();
        new.read(16, &mut two).unwrap();
        assert_eq!(two[..4096], [0; 4096]);
        assert_eq!(two[4096..], tail[..]);
        // Only growth, in whole blocks.
        assert!(new.grown(CHUNK_SIZE).is_err());
        assert!(new.grown(4 * CHUNK_SIZE + 512).is_err());
        assert_eq!(new.grown(4 * CHUNK_SIZE).unwrap().info().num_blocks, 64);
    }

    #[test]
    fn taken_chunks_leave_the_namespace_before_they_are_freed() {
        let b = RamBackend::new(4 * CHUNK_SIZE, 4096).unwrap();
        b.write(0, &vec![1; 4 * CHUNK_SIZE as usize], false)
            .unwrap();
        // Chunk 1 whole, the first block of chunk 2 zeroed in place.
        let taken = b.take(16, 17).unwrap();
        assert_eq!(taken.0.len(), 1);
        assert_eq!(b.allocated_bytes(), 3 * CHUNK_SIZE);
        assert_eq!(read_vec(&b, 16, 17), vec![0; 17 * 4096]);
        assert_eq!(read_vec(&b, 15, 1), vec![1; 4096]);
        assert_eq!(read_vec(&b, 33, 1), vec![1; 4096]);
        drop(taken);
        b.write(20, &[2; 4096], false).unwrap();
        assert_eq!(b.allocated_bytes(), 4 * CHUNK_SIZE);
        assert_eq!(read_vec(&b, 19, 2)[4096..], [2; 4096]);
        assert!(b.take(64, 1).is_err());
    }

    #[test]
    fn a_short_chunk_is_freed_when_zeroed_whole() {
        let old = RamBackend::new(CHUNK_SIZE + 4096, 4096).unwrap();
        old.write(16, &[1; 4096], false).unwrap();
        let new = old.grown(2 * CHUNK_SIZE).unwrap();
        new.write_zeroes(16, 16).unwrap();
        assert_eq!(old.allocated_bytes(), 0);
        let mut back = vec![9; 16 * 4096];
        new.read(16, &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 0));
    }
}
