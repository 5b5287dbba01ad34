//! A volume's L2P table, paged: for every volume block, the packed media
//! [`Loc`](super::format::Loc) holding it, or 0 when unmapped. The table is cut into pages of
//! one media block each ([`entries_per_page`](super::zone_records::entries_per_page) entries);
//! a page is in DRAM only while it is used (the pool's cache decides which), and its latest
//! copy on the media is named by the page's slot (the page directory, 8 bytes per page).
//!
//! A page changed since its media copy is *dirty* and stays in DRAM until the pool writes it
//! back; a clean, unpinned page may be dropped at any time and is read again when needed.
//! Entries change only under the pool's state lock, on pages pinned in DRAM beforehand.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferrofab_sync::CountedLock as _;
use nvme::backend::BackendError;

/// A page of the table in DRAM.
pub struct Page {
    entries: Box<[AtomicU64]>,
    /// Changed since the copy its slot names (or it has none).
    pub dirty: AtomicBool,
    /// The pool's journal position (entries made before) when it last turned dirty.
    pub since: AtomicU64,
    /// Used since the cache's clock hand last passed.
    referenced: AtomicBool,
    /// Holders that need it to stay in DRAM (writers, GC, write-back in flight).
    pins: AtomicU32,
}

impl Page {
    fn new(entries: Vec<u64>) -> Page {
        Page {
            entries: entries.into_iter().map(AtomicU64::new).collect(),
            dirty: AtomicBool::new(false),
            since: AtomicU64::new(0),
            referenced: AtomicBool::new(true),
            pins: AtomicU32::new(0),
        }
    }

    pub fn get(&self, i: usize) -> u64 {
        self.entries[i].load(Ordering::Acquire)
    }

    /// The entries as they are now.
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.iter().map(|e| e.load(Ordering::Acquire))
    }

    /// Keep it in DRAM; only for a page that cannot be dropped meanwhile (dirty, or already
    /// pinned).
    pub fn pin(&self) {
        self.pins.fetch_add(1, Ordering::AcqRel);
    }

    pub fn unpin(&self) {
        self.pins.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Slot {
    /// Packed location of the page's latest media copy (0: none, so every entry is 0 unless
    /// the page is in DRAM).
    at: AtomicU64,
    mem: Mutex<Option<Arc<Page>>>,
    /// Counted in the pool's valid counts and mapped totals (false after a recovery until
    /// the pool's recount has visited the page).
    counted: AtomicBool,
}

const _: () = assert!(size_of::<Slot>() == 32);

/// What [`VolumeMap::try_evict`] did with a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evict {
    /// Dropped from DRAM.
    Dropped,
    /// Not in DRAM, or kept (dirty, pinned, or used since the hand last passed).
    Kept,
}

pub struct VolumeMap {
    pub id: u16,
    blocks: u64,
    per: u64,
    slots: Box<[Slot]>,
    /// Set when the volume is deleted: its backend answers every command with an error.
    pub deleted: AtomicBool,
    /// Blocks mapped now, as far as they are counted.
    mapped: AtomicU64,
}

impl VolumeMap {
    /// DRAM a page's slot in the directory takes.
    pub const SLOT_BYTES: u64 = size_of::<Slot>() as u64;

    /// The table of a volume of `blocks` blocks, `per` entries a page; `counted` when
    /// nothing needs recounting (a new volume, or a pool that was just formatted).
    pub fn new(id: u16, blocks: u64, per: u64, counted: bool) -> VolumeMap {
        let pages = blocks.div_ceil(per) as usize;
        VolumeMap {
            id,
            blocks,
            per,
            slots: (0..pages)
                .map(|_| Slot {
                    at: AtomicU64::new(0),
                    mem: Mutex::new(None),
                    counted: AtomicBool::new(counted),
                })
                .collect(),
            deleted: AtomicBool::new(false),
            mapped: AtomicU64::new(0),
        }
    }

    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    pub fn pages(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The page holding `lba` and the entry's index in it.
    pub fn page_of(&self, lba: u64) -> (u64, usize) {
        (lba / self.per, (lba % self.per) as usize)
    }

    /// Volume blocks `page` covers.
    pub fn page_range(&self, page: u64) -> std::ops::Range<u64> {
        page * self.per..((page + 1) * self.per).min(self.blocks)
    }

    /// The packed location of `page`'s latest media copy (0: none).
    pub fn media(&self, page: u64) -> u64 {
        self.slots[page as usize].at.load(Ordering::Acquire)
    }

    /// Name `packed` as `page`'s media copy; returns the copy it named before.
    pub fn set_media(&self, page: u64, packed: u64) -> u64 {
        self.slots[page as usize].at.swap(packed, Ordering::AcqRel)
    }

    pub fn counted(&self, page: u64) -> bool {
        self.slots[page as usize].counted.load(Ordering::Acquire)
    }

    pub fn set_counted(&self, page: u64) {
        self.slots[page as usize]
            .counted
            .store(true, Ordering::Release);
    }

    /// `page` in DRAM, read with `load` (given the packed media location) when it is not
    /// and it has a media copy; `pin` keeps it there until [`Page::unpin`]. Also says
    /// whether it was brought in now.
    pub fn page(
        &self,
        page: u64,
        pin: bool,
        load: impl FnOnce(u64) -> Result<Vec<u64>, BackendError>,
    ) -> Result<(Arc<Page>, bool), BackendError> {
        let slot = &self.slots[page as usize];
        let mut mem = slot.mem.lock_counted();
        let (p, loaded) = match &*mem {
            Some(p) => {
                p.referenced.store(true, Ordering::Relaxed);
                (p.clone(), false)
            }
            None => {
                let n = self.page_range(page).count();
                let at = slot.at.load(Ordering::Acquire);
                let entries = if at == 0 { vec![0; n] } else { load(at)? };
                let p = Arc::new(Page::new(entries));
                *mem = Some(p.clone());
                (p, true)
            }
        };
        if pin {
            p.pins.fetch_add(1, Ordering::AcqRel);
        }
        Ok((p, loaded))
    }

    /// `page` if it is in DRAM.
    pub fn resident(&self, page: u64) -> Option<Arc<Page>> {
        self.slots[page as usize].mem.lock_counted().clone()
    }

    /// Drop `page` from DRAM when it is clean, unpinned and was not used since the last
    /// call (which clears the mark).
    pub fn try_evict(&self, page: u64) -> Evict {
        let Some(mut mem) = self.slots[page as usize].mem.try_lock_counted() else {
            return Evict::Kept;
        };
        let drop = mem.as_ref().is_some_and(|p| {
            !p.dirty.load(Ordering::Acquire)
                && p.pins.load(Ordering::Acquire) == 0
                && !p.referenced.swap(false, Ordering::Relaxed)
        });
        if drop {
            *mem = None;
            Evict::Dropped
        } else {
            Evict::Kept
        }
    }

    /// Drop `page` from DRAM whatever it holds (a page every entry of which is now 0, and
    /// whose media copy is forgotten with it); true when it was in DRAM.
    pub fn forget(&self, page: u64) -> bool {
        self.slots[page as usize]
            .mem
            .lock_counted()
            .take()
            .is_some()
    }

    /// The entry of `lba` on its page, which must be in DRAM (pinned by the caller).
    pub fn get_pinned(&self, lba: u64) -> u64 {
        let (p, i) = self.page_of(lba);
        self.resident(p).map_or(0, |page| page.get(i))
    }

    /// Map `lba` to `packed` (0 unmaps) on its page, which must be in DRAM (pinned by the
    /// caller): the old value, and whether the page turned dirty now.
    pub fn swap(&self, page: &Page, lba: u64, packed: u64) -> (u64, bool) {
        let i = (lba % self.per) as usize;
        let old = page.entries[i].swap(packed, Ordering::AcqRel);
        let dirtied = old != packed && !page.dirty.swap(true, Ordering::AcqRel);
        (old, dirtied)
    }

    /// Forget every count: the pages are to be counted again.
    pub fn uncount(&self) {
        for s in self.slots.iter() {
            s.counted.store(false, Ordering::Release);
        }
        self.mapped.store(0, Ordering::Relaxed);
    }

    /// Count `n` more (or fewer) mapped blocks.
    pub fn add_mapped(&self, n: i64) {
        if n >= 0 {
            self.mapped.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            self.mapped.fetch_sub(n.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Blocks mapped now (as counted: after a recovery, those on pages the recount has
    /// visited).
    pub fn mapped_blocks(&self) -> u64 {
        self.mapped.load(Ordering::Relaxed)
    }

    /// Bytes of DRAM the directory takes (pages in DRAM are the cache's).
    pub fn directory_bytes(&self) -> u64 {
        self.slots.len() as u64 * Self::SLOT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_dirty_pin_and_evict() {
        let m = VolumeMap::new(1, 130, 64, true);
        assert_eq!(m.pages(), 3);
        assert_eq!(m.page_range(2), 128..130);
        // No media copy: an empty page, no load.
        let (p, loaded) = m.page(2, true, |_| panic!("nothing to load")).unwrap();
        assert!(loaded);
        assert_eq!(p.values().count(), 2);
        assert_eq!(m.swap(&p, 129, 5), (0, true));
        assert_eq!(m.swap(&p, 129, 6), (5, false), "already dirty");
        assert_eq!(m.get_pinned(129), 6);
        p.unpin();
        assert_eq!(m.try_evict(2), Evict::Kept, "dirty");
        p.dirty.store(false, Ordering::Release);
        m.set_media(2, 77);
        assert_eq!(m.try_evict(2), Evict::Kept, "used since the hand passed");
        assert_eq!(m.try_evict(2), Evict::Dropped);
        assert!(m.resident(2).is_none());
        let (p, loaded) = m
            .page(2, false, |at| {
                assert_eq!(at, 77);
                Ok(vec![9, 6])
            })
            .unwrap();
        assert!(loaded);
        assert_eq!(p.get(1), 6);
        let e = m.page(1, false, |_| Err(BackendError::NoSpace));
        assert!(e.is_ok(), "page 1 has no media copy, so nothing is read");
        m.set_media(0, 1);
        assert!(m.page(0, false, |_| Err(BackendError::NoSpace)).is_err());
        assert!(
            m.resident(0).is_none(),
            "a failed load leaves nothing behind"
        );
    }
}
