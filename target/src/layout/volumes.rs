//! Creating, opening, deleting and listing a pool's volumes, and the pool's figures.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferrofab_sync::CountedRwLock as _;

use super::format::{self, VolumeDef};
use super::map::VolumeMap;
use super::pool::{Inner, PoolStats, VolumeRef, ZState};
use super::volume::VolumeBackend;
use super::zone_records::entries_per_page;
use super::{LayoutError, VolumeInfo};

impl Inner {
    /// Map entries a checkpoint's directory can hold (one per map page with a media copy).
    fn directory_capacity(&self) -> u64 {
        let blocks = self.geo.ckpt_zones * self.geo.zone_cap - 1;
        blocks * format::entries_per_block(self.geo.bs as usize) as u64
    }

    pub fn new_map(&self, id: u16, blocks: u64, counted: bool) -> Arc<VolumeMap> {
        let map = Arc::new(VolumeMap::new(
            id,
            blocks,
            entries_per_page(self.geo.bs as usize),
            counted,
        ));
        self.cache.maps.write_counted().push(map.clone());
        map
    }

    pub fn volume(
        self: &Arc<Self>,
        name: &str,
        block_size: u32,
        blocks: u64,
    ) -> Result<Arc<VolumeBackend>, LayoutError> {
        if name.is_empty() || name.len() > format::MAX_NAME {
            return Err(LayoutError::Invalid(format!(
                "volume name {name:?}: 1 to {} bytes",
                format::MAX_NAME
            )));
        }
        if block_size != self.geo.bs {
            return Err(LayoutError::Invalid(format!(
                "volume {name}: block size {block_size} differs from the pool's {} \
                 (its drives' logical block size)",
                self.geo.bs
            )));
        }
        if blocks == 0 || blocks > self.usable_blocks || blocks >= 1 << (format::LBA_BITS - 1) {
            return Err(LayoutError::Invalid(format!(
                "volume {name}: {blocks} blocks; a volume has 1 to {} blocks (the pool's \
                 capacity after over-provisioning)",
                self.usable_blocks
            )));
        }
        let mut meta = self.lock_meta();
        let mut st = self.lock();
        if let Some(v) = st.volumes.get(name) {
            if v.def.blocks != blocks || v.def.block_size != block_size {
                return Err(LayoutError::Invalid(format!(
                    "volume {name} exists with {} blocks of {} bytes, not {blocks} of \
                     {block_size}",
                    v.def.blocks, v.def.block_size
                )));
            }
            return Ok(Arc::new(VolumeBackend::new(
                self.clone(),
                VolumeRef {
                    def: v.def.clone(),
                    map: v.map.clone(),
                },
            )));
        }
        if st.next_volume_id == u16::MAX {
            return Err(LayoutError::Invalid(
                "the pool has used every volume id".into(),
            ));
        }
        let per = entries_per_page(self.geo.bs as usize);
        let pages: u64 = st.by_id.values().map(|m| m.pages()).sum::<u64>() + blocks.div_ceil(per);
        if pages > self.directory_capacity() {
            return Err(LayoutError::Invalid(format!(
                "volume {name}: the pool's volumes would have {pages} map pages, more than \
                 its checkpoint holds ({})",
                self.directory_capacity()
            )));
        }
        let def = VolumeDef {
            id: st.next_volume_id,
            name: name.to_string(),
            block_size,
            blocks,
        };
        st.next_volume_id += 1;
        let map = self.new_map(def.id, blocks, true);
        st.by_id.insert(def.id, map.clone());
        st.volumes.insert(
            name.to_string(),
            VolumeRef {
                def: def.clone(),
                map: map.clone(),
            },
        );
        drop(st);
        if let Err(e) = self.write_superblock(&mut meta) {
            let mut st = self.lock();
            st.volumes.remove(name);
            st.by_id.remove(&def.id);
            drop(st);
            self.cache
                .maps
                .write_counted()
                .retain(|m| !Arc::ptr_eq(m, &map));
            return Err(e.into());
        }
        tracing::info!(pool = %self.name, volume = name, blocks, "volume created");
        Ok(Arc::new(VolumeBackend::new(
            self.clone(),
            VolumeRef { def, map },
        )))
    }

    /// Delete a volume: gone from the superblock, its blocks and map pages free for GC.
    /// Runs under the meta lock, so no zone is reset before the volume is gone for good.
    pub fn delete_volume(&self, name: &str) -> Result<(), LayoutError> {
        let mut meta = self.lock_meta();
        let v = {
            let mut st = self.lock();
            let v = st
                .volumes
                .remove(name)
                .ok_or_else(|| LayoutError::NoVolume(name.to_string()))?;
            st.by_id.remove(&v.def.id);
            v.map.deleted.store(true, Ordering::Release);
            v
        };
        let map = v.map;
        self.cache
            .maps
            .write_counted()
            .retain(|m| !Arc::ptr_eq(m, &map));
        for p in 0..map.pages() {
            let on_media = map.media(p);
            if map.counted(p) && (on_media != 0 || map.resident(p).is_some()) {
                let page = self.page(&map, p, false)?;
                let mut st = self.lock();
                for v in page.values().filter(|&v| v != 0) {
                    st.invalidate(&self.geo, v);
                    st.mapped -= 1;
                }
                st.invalidate(&self.geo, on_media);
            }
            if map.forget(p) {
                self.cache.resident.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.cond.notify_all();
        // Its entries left in the journal or the checkpoint name an id no volume has now.
        self.write_superblock(&mut meta)?;
        tracing::info!(pool = %self.name, volume = name, "volume deleted");
        Ok(())
    }

    pub fn volumes(&self) -> Vec<VolumeInfo> {
        let st = self.lock();
        st.volumes
            .values()
            .map(|v| VolumeInfo {
                name: v.def.name.clone(),
                block_size: v.def.block_size,
                blocks: v.def.blocks,
                mapped_blocks: v.map.mapped_blocks(),
            })
            .collect()
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.lock();
        let mut hist = [0u64; 10];
        let data = self.geo.zone_data;
        for z in st
            .zones
            .iter()
            .filter(|z| matches!(z.state, ZState::Full(_)))
        {
            let tenth = (z.valid * 10 / data).min(9);
            hist[tenth as usize] += 1;
        }
        let directory: u64 = st.by_id.values().map(|m| m.directory_bytes()).sum();
        let per = entries_per_page(self.geo.bs as usize);
        let page_bytes = per * 8 + 64;
        let c = &self.counters;
        PoolStats {
            block_size: self.geo.bs,
            zone_cap_blocks: self.geo.zone_cap,
            zone_data_blocks: self.geo.zone_data,
            data_zones: st.zones.len() as u64,
            free_zones: st.free_zones() as u64,
            over_provisioning: self.op_percent,
            usable_blocks: self.usable_blocks,
            mapped_blocks: st.mapped,
            host_write_blocks: c.host_write_blocks.load(Ordering::Relaxed),
            host_read_blocks: c.host_read_blocks.load(Ordering::Relaxed),
            gc_write_blocks: c.gc_write_blocks.load(Ordering::Relaxed),
            meta_write_blocks: c.meta_write_blocks.load(Ordering::Relaxed),
            zone_resets: c.zone_resets.load(Ordering::Relaxed),
            gc_victims: c.gc_victims.load(Ordering::Relaxed),
            trimmed_blocks: c.trimmed_blocks.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            valid_histogram: hist,
            map_resident_bytes: self.cache.resident.load(Ordering::Relaxed) * page_bytes
                + directory,
            map_pages_resident: self.cache.resident.load(Ordering::Relaxed),
            map_pages_dirty: st.dirty.len() as u64,
            map_cache_pages: self.cache.budget,
            counted: st.counted,
            hot_cold_apart: st.lifetimes.separate(),
            lifetime_dispersion: st.lifetimes.dispersion(),
        }
    }
}
