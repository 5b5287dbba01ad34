//! The recount after a recovery: a pool opens with its page directory and the journal
//! replayed, without reading the whole map. The zones' valid counts, the mapped totals and
//! the keys of zones a crash left without footer come from a pass over every map page, in
//! the background, a page at a time; GC waits for it. Changes made meanwhile to a page the
//! pass has not reached are left out of the counts (the pass counts the page as it then is).

use std::sync::atomic::Ordering;

use nvme::backend::BackendError;

use super::format::{Entry, Loc};
use super::pool::{key, map_key, Inner, State, ZState};

impl Inner {
    /// Start counting again from nothing (a footer could not be read: the zone's keys are
    /// to come from the map).
    pub fn restart_count(&self, st: &mut State) {
        for z in &mut st.zones {
            z.valid = 0;
        }
        st.mapped = 0;
        for map in st.by_id.values() {
            map.uncount();
        }
        st.counted = false;
        tracing::warn!(pool = %self.name, "recounting the map");
    }

    /// Count every page not counted yet; returns mapped blocks it dropped (pointing where
    /// no data was written).
    pub fn recount(&self) -> Result<u64, BackendError> {
        let maps: Vec<_> = self.lock().by_id.values().cloned().collect();
        let mut dropped = 0;
        for map in maps {
            for p in 0..map.pages() {
                if self.stopping.load(Ordering::SeqCst) {
                    return Ok(dropped);
                }
                if map.counted(p) {
                    continue;
                }
                let page = if map.media(p) == 0 && map.resident(p).is_none() {
                    None
                } else {
                    Some(self.page(&map, p, true)?)
                };
                let mut st = self.lock();
                if map.deleted.load(Ordering::Acquire) || map.counted(p) {
                    drop(st);
                    if let Some(pg) = page {
                        pg.unpin();
                    }
                    continue;
                }
                let media = map.media(p);
                if let Some(z) = Loc::unpack(media).and_then(|l| self.geo.zone_id(l)) {
                    st.zones[z].valid += 1;
                    let dz = &mut st.zones[z];
                    let off = (Loc::unpack(media).expect("mapped").lba - dz.zslba) as usize;
                    if let Some(k) = dz.p2l.get_mut(off) {
                        *k = map_key(map.id, p);
                    }
                }
                if let Some(page) = &page {
                    let first = map.page_range(p).start;
                    for (i, v) in page.values().enumerate() {
                        let lba = first + i as u64;
                        let Some(at) = Loc::unpack(v) else { continue };
                        let zone = self.geo.zone_id(at).filter(|&z| {
                            let dz = &st.zones[z];
                            dz.state != ZState::Free && at.lba - dz.zslba < dz.data_end
                                || matches!(dz.state, ZState::Open(_))
                        });
                        match zone {
                            Some(z) => {
                                let dz = &mut st.zones[z];
                                dz.valid += 1;
                                let off = (at.lba - dz.zslba) as usize;
                                if let Some(k) = dz.p2l.get_mut(off) {
                                    *k = key(map.id, lba);
                                }
                                st.mapped += 1;
                                map.add_mapped(1);
                            }
                            None => {
                                // Never written (or lost with its zone): it reads as
                                // deallocated, durably once the journal says so.
                                if map.swap(page, lba, 0).1 {
                                    st.note_dirty(map.id, p, page);
                                }
                                st.journal.push(Entry::Trim {
                                    vol: map.id,
                                    lba,
                                    len: 1,
                                });
                                dropped += 1;
                            }
                        }
                    }
                }
                map.set_counted(p);
                drop(st);
                if let Some(pg) = page {
                    pg.unpin();
                }
            }
        }
        let mut st = self.lock();
        st.counted = true;
        st.stuck = false;
        drop(st);
        if dropped > 0 {
            tracing::warn!(pool = %self.name, blocks = dropped,
                "mapped blocks where no data was written were unmapped");
        }
        self.cond.notify_all();
        Ok(dropped)
    }
}
