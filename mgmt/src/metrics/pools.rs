//! The pools' series: label `pool` (one per running pool), `volume` (one per volume on it),
//! `valid` (ten buckets, `0-10%` to `90-100%`).

use prometheus::proto::{MetricFamily, MetricType};
use target::engine::Engine;

use super::Family;
use crate::pools::bucket_label;

pub(super) fn pool_families(engine: &Engine, out: &mut Vec<MetricFamily>) {
    let counter = |name: &str, help: &str| Family::new(name, help, MetricType::COUNTER);
    let gauge = |name: &str, help: &str| Family::new(name, help, MetricType::GAUGE);
    let mut host = counter(
        "ferrofab_pool_host_written_bytes_total",
        "Bytes hosts wrote to the pool's volumes.",
    );
    let mut gc = counter(
        "ferrofab_pool_gc_written_bytes_total",
        "Bytes GC copied out of the zones it collected.",
    );
    let mut meta = counter(
        "ferrofab_pool_meta_written_bytes_total",
        "Bytes of metadata written: journal, checkpoints, superblocks, map pages and zone footers.",
    );
    let mut waf = gauge(
        "ferrofab_pool_write_amplification",
        "(host + GC + metadata bytes written) / host bytes written (1 before any write).",
    );
    let mut free = gauge(
        "ferrofab_pool_free_zones",
        "Data zones that are empty, over every member.",
    );
    let mut data = gauge(
        "ferrofab_pool_data_zones",
        "Zones that hold volume data (not the pool's metadata), over every member.",
    );
    let mut usable = gauge(
        "ferrofab_pool_usable_bytes",
        "Bytes volumes can hold in all (after over-provisioning and GC's reserve).",
    );
    let mut mapped = gauge(
        "ferrofab_pool_mapped_bytes",
        "Bytes of volume blocks written and not deallocated.",
    );
    let mut resets = counter(
        "ferrofab_pool_zone_resets_total",
        "Zone resets the pool issued (GC reclaiming zones).",
    );
    let mut victims = counter("ferrofab_pool_gc_victims_total", "Zones GC collected.");
    let mut resident = gauge(
        "ferrofab_pool_map_resident_bytes",
        "DRAM the map takes: pages in the cache and the page directory.",
    );
    let mut cache_pages = gauge(
        "ferrofab_pool_map_cache_pages",
        "The map cache's budget, in map pages (dirty pages may exceed it until written back).",
    );
    let mut pages_resident = gauge(
        "ferrofab_pool_map_pages_resident",
        "Map pages in the cache.",
    );
    let mut pages_dirty = gauge(
        "ferrofab_pool_map_pages_dirty",
        "Map pages in the cache waiting for write-back.",
    );
    let mut recount_done = gauge(
        "ferrofab_pool_recount_done",
        "1 when the pool's valid counts are complete, 0 while the recount after a recovery runs.",
    );
    let mut apart = gauge(
        "ferrofab_pool_hot_cold_apart",
        "1 while young and old data are written to zones of their own, 0 while one stream takes everything.",
    );
    let mut by_valid = gauge(
        "ferrofab_pool_zones_by_valid",
        "Full zones by the share of their capacity still valid.",
    );
    let mut volume_mapped = gauge(
        "ferrofab_volume_mapped_bytes",
        "Bytes of the volume written and not deallocated.",
    );
    for (pool, _) in engine.drives().pools().list() {
        let s = pool.stats();
        let bs = f64::from(s.block_size);
        let name = pool.name();
        let l = [("pool", name)];
        host.counter(&l, s.host_write_blocks as f64 * bs);
        gc.counter(&l, s.gc_write_blocks as f64 * bs);
        meta.counter(&l, s.meta_write_blocks as f64 * bs);
        waf.gauge(&l, s.waf());
        free.gauge(&l, s.free_zones as f64);
        data.gauge(&l, s.data_zones as f64);
        usable.gauge(&l, pool.capacity_bytes() as f64);
        mapped.gauge(&l, s.mapped_blocks as f64 * bs);
        resets.counter(&l, s.zone_resets as f64);
        victims.counter(&l, s.gc_victims as f64);
        resident.gauge(&l, s.map_resident_bytes as f64);
        cache_pages.gauge(&l, s.map_cache_pages as f64);
        pages_resident.gauge(&l, s.map_pages_resident as f64);
        pages_dirty.gauge(&l, s.map_pages_dirty as f64);
        recount_done.gauge(&l, if s.counted { 1.0 } else { 0.0 });
        apart.gauge(&l, if s.hot_cold_apart { 1.0 } else { 0.0 });
        for (i, zones) in s.valid_histogram.iter().enumerate() {
            let bucket = bucket_label(i);
            by_valid.gauge(&[("pool", name), ("valid", &bucket)], *zones as f64);
        }
        for v in pool.volumes() {
            volume_mapped.gauge(
                &[("pool", name), ("volume", &v.name)],
                v.mapped_blocks as f64 * f64::from(v.block_size),
            );
        }
    }
    for f in [
        host,
        gc,
        meta,
        waf,
        free,
        data,
        usable,
        mapped,
        resets,
        victims,
        resident,
        cache_pages,
        pages_resident,
        pages_dirty,
        recount_done,
        apart,
        by_valid,
        volume_mapped,
    ] {
        f.done(out);
    }
}
