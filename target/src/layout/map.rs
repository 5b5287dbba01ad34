//! A volume's L2P table: for every volume block, the packed media [`Loc`](super::format::Loc)
//! holding it, or 0 when unmapped. Pages of 512 entries are allocated on the first write into
//! them, so a thin volume's table grows with what is written, not with its size. Lookups are
//! lock-free; changes are made under the pool's state lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

const PAGE: u64 = 512;

pub struct VolumeMap {
    blocks: u64,
    pages: Box<[OnceLock<Box<[AtomicU64]>>]>,
    /// Set when the volume is deleted: its backend answers every command with an error.
    pub deleted: AtomicBool,
    /// Blocks mapped now, kept by [`VolumeMap::swap`].
    mapped: AtomicU64,
}

impl VolumeMap {
    pub fn new(blocks: u64) -> VolumeMap {
        let pages = blocks.div_ceil(PAGE) as usize;
        VolumeMap {
            blocks,
            pages: (0..pages).map(|_| OnceLock::new()).collect(),
            deleted: AtomicBool::new(false),
            mapped: AtomicU64::new(0),
        }
    }

    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The packed location of `lba` (0: unmapped).
    pub fn get(&self, lba: u64) -> u64 {
        self.pages[(lba / PAGE) as usize]
            .get()
            .map_or(0, |p| p[(lba % PAGE) as usize].load(Ordering::Acquire))
    }

    /// Map `lba` to `packed` (0 unmaps); returns what it was mapped to.
    pub fn swap(&self, lba: u64, packed: u64) -> u64 {
        let slot = &self.pages[(lba / PAGE) as usize];
        if packed == 0 && slot.get().is_none() {
            return 0;
        }
        let page = slot.get_or_init(|| (0..PAGE).map(|_| AtomicU64::new(0)).collect());
        let old = page[(lba % PAGE) as usize].swap(packed, Ordering::AcqRel);
        match (old == 0, packed == 0) {
            (true, false) => {
                self.mapped.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                self.mapped.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        old
    }

    /// Blocks mapped now.
    pub fn mapped_blocks(&self) -> u64 {
        self.mapped.load(Ordering::Relaxed)
    }

    /// Every mapped block as `(lba, packed)`, in LBA order.
    pub fn mapped(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.pages
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.get().map(|p| (i as u64 * PAGE, p)))
            .flat_map(|(base, p)| {
                p.iter()
                    .enumerate()
                    .map(move |(j, e)| (base + j as u64, e.load(Ordering::Acquire)))
                    .filter(|&(_, v)| v != 0)
            })
    }

    /// Bytes of DRAM the table holds now.
    pub fn resident_bytes(&self) -> u64 {
        let pages = self.pages.iter().filter(|p| p.get().is_some()).count() as u64;
        pages * PAGE * 8 + self.pages.len() as u64 * size_of::<OnceLock<Box<[AtomicU64]>>>() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_appear_on_first_write() {
        let m = VolumeMap::new(2000);
        assert_eq!(m.get(1999), 0);
        let empty = m.resident_bytes();
        assert_eq!(m.swap(1999, 5), 0);
        assert_eq!(m.swap(3, 0), 0);
        assert_eq!(m.resident_bytes(), empty + 4096);
        assert_eq!(m.swap(1999, 6), 5);
        assert_eq!(m.get(1999), 6);
        assert_eq!(m.mapped().collect::<Vec<_>>(), vec![(1999, 6)]);
        assert_eq!(m.mapped_blocks(), 1);
        m.swap(1999, 0);
        m.swap(1999, 0);
        assert_eq!(m.mapped_blocks(), 0);
    }
}
