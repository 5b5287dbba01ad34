//! Opening a pool: format empty members, or rebuild the running state of a formatted pool
//! from its superblock, checkpoint, journal and the drives' write pointers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Condvar, Mutex};

use nvme::backend::{Backend, BackendError};
use nvme::zns::{ZoneAction, ZoneState};

use super::cache::{Cache, Which};
use super::format::{
    self, parse_checkpoint_head, parse_entry_block, Entry, Kind, MetaHeader, Superblock,
};
use super::lifetimes::Lifetimes;
use super::map::VolumeMap;
use super::meta::{Meta, ZoneInfo};
use super::pool::{
    Counters, DataZone, Geometry, Inner, Member, State, Stream, VolumeRef, ZState, STREAMS,
};
use super::zone_records::{entries_per_page, zone_split};
use super::{LayoutError, PoolOptions, DEFAULT_OP_PERCENT, MAX_OP_PERCENT};

/// Free zones per member host writes leave: one to open for each of GC's two streams and
/// the map's, and one for the map pages a checkpoint may write back.
const RESERVE_ZONES: usize = 4;

/// Map pages with a media copy up to which a recovery counts the map before it returns.
const SYNC_RECOUNT_PAGES: u64 = 256;

/// Default map cache: this share of the pool's usable bytes (128 MiB per TiB), at least
/// 8 MiB.
const DEFAULT_CACHE_SHARE: u64 = 8192;

/// Largest transfer the metadata reader and GC use; also what Zone Append may carry when a
/// member sets no limit of its own.
const DEFAULT_APPEND_LIMIT: u64 = 128 << 10;

fn member_err(member: usize, message: impl Into<String>) -> LayoutError {
    LayoutError::Member {
        member,
        message: message.into(),
    }
}

/// The geometry `opts` gives members of this shape, checked.
fn geometry(members: &[Arc<dyn Backend>], opts: &PoolOptions) -> Result<Geometry, LayoutError> {
    let Some(first) = members.first() else {
        return Err(LayoutError::Invalid(
            "a pool needs at least one member".into(),
        ));
    };
    if members.len() > 255 {
        return Err(LayoutError::Invalid(
            "a pool has at most 255 members".into(),
        ));
    }
    let info = first.info();
    let z0 = first
        .zoned()
        .ok_or_else(|| member_err(0, "not a zoned namespace"))?
        .geometry();
    for (i, m) in members.iter().enumerate() {
        let z = m
            .zoned()
            .ok_or_else(|| member_err(i, "not a zoned namespace"))?
            .geometry();
        let mi = m.info();
        if mi.block_size != info.block_size
            || z.zone_size != z0.zone_size
            || z.zone_cap != z0.zone_cap
            || z.zone_count != z0.zone_count
        {
            return Err(member_err(
                i,
                format!(
                    "geometry ({} B blocks, {} zones of {} blocks, capacity {}) differs from \
                     member 0's ({} B, {} zones of {}, capacity {}): a pool's drives match",
                    mi.block_size,
                    z.zone_count,
                    z.zone_size,
                    z.zone_cap,
                    info.block_size,
                    z0.zone_count,
                    z0.zone_size,
                    z0.zone_cap
                ),
            ));
        }
        // Member 0 also keeps the superblock, checkpoint and journal zones active.
        let streams = if i == 0 { STREAMS + 3 } else { STREAMS };
        if z.limits.max_active != 0 && (z.limits.max_active as usize) < streams {
            return Err(member_err(
                i,
                format!(
                    "allows {} active zones; the pool keeps up to {streams} active on it",
                    z.limits.max_active
                ),
            ));
        }
    }
    if opts.journal_zones < 2 {
        return Err(LayoutError::Invalid(
            "the journal needs at least 2 zones".into(),
        ));
    }
    if let Some(op) = opts.op_percent.filter(|&op| op >= MAX_OP_PERCENT) {
        return Err(LayoutError::Invalid(format!(
            "over-provisioning of {op}% leaves too little for volumes"
        )));
    }
    let bs = info.block_size;
    let (zones, cap) = (z0.zone_count, z0.zone_cap);
    let (zone_data, _) = zone_split(cap, bs as usize);
    let data_blocks = zones * zone_data * members.len() as u64;
    // A checkpoint's directory holds one entry per map page (volumes hold at most the data
    // blocks, plus a partial page each of as many volumes as a superblock zone lists),
    // after its head block.
    let max_volumes = cap * u64::from(bs) / size_of::<format::VolumeRecord>() as u64;
    let pages = data_blocks.div_ceil(entries_per_page(bs as usize)) + max_volumes;
    let ckpt_blocks = 1 + pages.div_ceil(format::entries_per_block(bs as usize) as u64);
    let geo = Geometry {
        bs,
        zone_size: z0.zone_size,
        zone_cap: cap,
        zone_data,
        zones,
        members: members.len(),
        ckpt_zones: ckpt_blocks.div_ceil(cap),
        journal_zones: u64::from(opts.journal_zones),
    };
    if geo.meta_zones() + 4 > zones {
        return Err(member_err(
            0,
            format!(
                "{zones} zones: the pool's metadata takes {} and GC needs at least 4 more",
                geo.meta_zones()
            ),
        ));
    }
    Ok(geo)
}

/// The newest superblock record: where it ends and the pool it names.
struct Found {
    sb: Superblock,
    zone: u64,
    wp: u64,
    pool_id: [u8; 16],
}

/// Read the superblock ring: the newest intact record of any pool, if there is one.
fn read_superblock(inner: &Inner, zones: &[ZoneInfo]) -> Result<Option<Found>, BackendError> {
    let bs = inner.geo.bs as usize;
    let mut best: Option<Found> = None;
    for z in 0..2u64 {
        let info = zones[z as usize];
        let written = info.wp - info.zslba;
        if written == 0 {
            continue;
        }
        let data = inner.read_blocks(0, info.zslba, info.wp)?;
        let mut at = 0usize;
        while at < written as usize {
            let block = &data[at * bs..];
            let (n, pool_id) = match MetaHeader::peek(block, Kind::Superblock, None) {
                Ok(h) => ((h.count.get() as usize).max(1), h.pool_id),
                Err(_) => {
                    at += 1;
                    continue;
                }
            };
            if let Some(rec) = block.get(..n * bs) {
                if let Ok(sb) = Superblock::decode(rec, None) {
                    if best
                        .as_ref()
                        .is_none_or(|b| sb.generation > b.sb.generation)
                    {
                        best = Some(Found {
                            sb,
                            zone: z,
                            wp: written,
                            pool_id,
                        });
                    }
                }
            }
            at += n;
        }
    }
    Ok(best)
}

pub fn open(
    name: &str,
    backends: Vec<Arc<dyn Backend>>,
    opts: PoolOptions,
) -> Result<Inner, LayoutError> {
    let geo = geometry(&backends, &opts)?;
    let members: Vec<Member> = backends
        .into_iter()
        .map(|b| {
            let limit = b
                .zoned()
                .and_then(|z| z.geometry().append_limit())
                .unwrap_or(DEFAULT_APPEND_LIMIT);
            Member {
                volatile: b.info().volatile_write_cache,
                append_limit: limit,
                backend: b,
            }
        })
        .collect();
    let mut inner = Inner {
        name: name.to_string(),
        geo,
        members,
        pool_id: [0; 16],
        op_percent: opts.op_percent.unwrap_or(DEFAULT_OP_PERCENT),
        policy: opts.gc,
        usable_blocks: 0,
        cache: Cache::new(0, geo.zone_data),
        reserve: RESERVE_ZONES,
        gc_start: 4,
        state: Mutex::new(State {
            zones: Vec::new(),
            free: vec![Vec::new(); geo.members],
            open: std::array::from_fn(|_| vec![None; geo.members]),
            rr: [0; STREAMS],
            journal: Vec::new(),
            dirty: VecDeque::new(),
            drained: 0,
            map_zone: None,
            counted: true,
            footerless: BTreeSet::new(),
            volumes: BTreeMap::new(),
            by_id: BTreeMap::new(),
            next_volume_id: 1,
            mapped: 0,
            clock: 0,
            stuck: false,
            lifetimes: Lifetimes::default(),
        }),
        cond: Condvar::new(),
        meta: Mutex::new(Meta {
            generation: 0,
            sb_zone: 0,
            sb_wp: 0,
            journal_zone: 0,
            journal_wp: 0,
            journal_seq: 0,
            journal_last: vec![None; geo.journal_zones as usize],
            journal_oldest: vec![None; geo.journal_zones as usize],
            marks: VecDeque::new(),
            replay_from: 0,
            ckpt_slot: 1,
            ckpt_seq: 0,
            ckpt_journal_seq: 0,
            failed: None,
        }),
        readers: Box::new([]),
        counters: Counters::default(),
        stopping: AtomicBool::new(false),
    };
    let reports: Vec<Vec<ZoneInfo>> = (0..geo.members)
        .map(|m| {
            inner
                .report_zones(m)
                .map_err(|e| member_err(m, e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let found = read_superblock(&inner, &reports[0])?;
    if let Some(f) = &found {
        // An existing pool keeps the over-provisioning it was formatted with.
        check_superblock(&inner.geo, &f.sb, opts.op_percent)?;
        inner.op_percent = f.sb.body.op_percent.get();
    }
    let per_member_data = geo.data_zones(1.min(geo.members - 1));
    inner.gc_start = (per_member_data as usize / 64).max(inner.reserve + 4);
    let total_data: u64 = (0..geo.members).map(|m| geo.data_zones(m)).sum();
    let kept = (inner.reserve * geo.members) as u64;
    let per = entries_per_page(geo.bs as usize);
    // A map page takes a block for every `per` blocks mapped.
    inner.usable_blocks =
        (total_data.saturating_sub(kept) * geo.zone_data) * u64::from(100 - inner.op_percent) / 100
            * per
            / (per + 1);
    let budget = match opts.map_cache_bytes {
        // The map's whole DRAM (the page directory of volumes as large as the pool, and the
        // pages cached) within the share.
        0 => {
            let directory = inner.usable_blocks.div_ceil(per) * VolumeMap::SLOT_BYTES;
            (inner.usable_blocks * u64::from(geo.bs) / DEFAULT_CACHE_SHARE)
                .saturating_sub(directory)
                .max(8 << 20)
        }
        b => b,
    };
    // The reserve less a zone for each stream GC and the map keep open.
    let spare = (inner.reserve * geo.members).saturating_sub(STREAMS - 1) as u64 * geo.zone_data;
    inner.cache = Cache::new(budget / (per * 8 + 64), spare);
    inner.readers = (0..total_data).map(|_| AtomicU32::new(0)).collect();
    {
        let st = inner.state.get_mut().expect("fresh lock");
        for m in 0..geo.members {
            for z in geo.first_data_zone(m)..geo.zones {
                st.zones.push(DataZone {
                    member: m as u8,
                    zslba: geo.zslba(z),
                    state: ZState::Free,
                    valid: 0,
                    room: 0,
                    inflight: 0,
                    stamp: 0,
                    data_end: 0,
                    p2l: Vec::new(),
                    from_reserve: false,
                });
            }
        }
    }
    match found {
        None => format_pool(&mut inner, &reports)?,
        Some(found) => recover(&mut inner, &reports, found)?,
    }
    Ok(inner)
}

fn format_pool(inner: &mut Inner, reports: &[Vec<ZoneInfo>]) -> Result<(), LayoutError> {
    for (m, zones) in reports.iter().enumerate() {
        if let Some(z) = zones.iter().position(|z| z.state != ZoneState::Empty) {
            return Err(member_err(
                m,
                format!(
                    "zone {z} is {:?} but the drive holds no pool: refusing to format over \
                     data (reset its zones first)",
                    zones[z].state
                ),
            ));
        }
    }
    inner.pool_id = rand::random();
    let st = inner.state.get_mut().expect("fresh lock");
    for (id, z) in st.zones.iter().enumerate() {
        st.free[usize::from(z.member)].push(id);
    }
    for f in &mut st.free {
        f.reverse();
    }
    let mut meta = inner.lock_meta();
    inner.checkpoint_locked(&mut meta)?;
    drop(meta);
    tracing::info!(pool = %inner.name, members = inner.geo.members,
        usable_bytes = inner.usable_blocks * u64::from(inner.geo.bs), "pool formatted");
    Ok(())
}

fn check_superblock(
    geo: &Geometry,
    sb: &Superblock,
    opts_op: Option<u32>,
) -> Result<(), LayoutError> {
    let b = &sb.body;
    let want = (
        geo.bs,
        geo.members as u32,
        geo.zone_size,
        geo.zone_cap,
        geo.zones,
        geo.ckpt_zones as u32,
        geo.journal_zones as u32,
    );
    let got = (
        b.block_size.get(),
        b.members.get(),
        b.zone_size.get(),
        b.zone_cap.get(),
        b.zones_per_member.get(),
        b.checkpoint_zones.get(),
        b.journal_zones.get(),
    );
    if want != got {
        return Err(LayoutError::Corrupt(format!(
            "the pool on these drives was made for (block size, members, zone size, zone \
             capacity, zones, checkpoint zones, journal zones) {got:?}, not {want:?}"
        )));
    }
    let op = b.op_percent.get();
    if op >= MAX_OP_PERCENT {
        return Err(LayoutError::Corrupt(format!(
            "the superblock's over-provisioning of {op}% is out of range"
        )));
    }
    if let Some(want) = opts_op.filter(|&want| want != op) {
        return Err(LayoutError::Invalid(format!(
            "the pool was made with {op}% over-provisioning, not {want}%"
        )));
    }
    Ok(())
}

fn recover(inner: &mut Inner, reports: &[Vec<ZoneInfo>], found: Found) -> Result<(), LayoutError> {
    let Found {
        sb,
        zone: sb_zone,
        wp: sb_wp,
        pool_id,
    } = found;
    let started = std::time::Instant::now();
    let geo = inner.geo;
    let bs = geo.bs as usize;
    {
        let mut g = inner.lock_meta();
        let meta = &mut *g;
        meta.generation = sb.generation;
        meta.sb_zone = sb_zone;
        meta.sb_wp = sb_wp;
        meta.ckpt_slot = u64::from(sb.body.checkpoint_slot.get());
        meta.ckpt_seq = sb.body.checkpoint_seq.get();
    }
    // The pool's identity is the superblock's: every other record is checked against it.
    inner.pool_id = pool_id;
    let pool = inner.pool_id;
    let mut maps: BTreeMap<u16, Arc<VolumeMap>> = BTreeMap::new();
    for v in &sb.volumes {
        let map = inner.new_map(v.id, v.blocks, false);
        maps.insert(v.id, map.clone());
        let st = inner.state.get_mut().expect("fresh lock");
        st.volumes.insert(
            v.name.clone(),
            VolumeRef {
                def: v.clone(),
                map,
            },
        );
    }
    {
        let st = inner.state.get_mut().expect("fresh lock");
        st.next_volume_id = sb.body.next_volume_id.get();
        st.by_id = maps.clone();
    }
    // The checkpoint: the page directory.
    let (ckpt_slot, ckpt_seq) = {
        let m = inner.lock_meta();
        (m.ckpt_slot, m.ckpt_seq)
    };
    let first = geo.zslba(geo.ckpt_zone(ckpt_slot));
    let head = inner.read_blocks(0, first, first + 1)?;
    let (h, body, listed) = parse_checkpoint_head(&head, &pool).map_err(|e| {
        LayoutError::Corrupt(format!("checkpoint {ckpt_seq} in slot {ckpt_slot}: {e}"))
    })?;
    if h.seq.get() != ckpt_seq {
        return Err(LayoutError::Corrupt(format!(
            "checkpoint slot {ckpt_slot} holds checkpoint {}, the superblock names {ckpt_seq}",
            h.seq.get()
        )));
    }
    let data_blocks = u64::from(h.count.get());
    let cap = geo.zone_cap;
    let mut entries = 0u64;
    // Read in runs of up to 256 blocks, each within one zone of the slot.
    let mut b = 1u64;
    while b <= data_blocks {
        let n = (data_blocks + 1 - b).min(cap - b % cap).min(256);
        let lba = geo.zslba(geo.ckpt_zone(ckpt_slot) + b / cap) + b % cap;
        let run = inner.read_blocks(0, lba, lba + n)?;
        for (i, block) in run.chunks_exact(bs).enumerate() {
            let at = b + i as u64;
            let corrupt = |what: String| {
                LayoutError::Corrupt(format!("checkpoint {ckpt_seq} block {at}: {what}"))
            };
            let (bh, es) = parse_entry_block(block, Kind::CheckpointData, &pool)
                .map_err(|e| corrupt(e.to_string()))?;
            if bh.seq.get() != ckpt_seq {
                return Err(corrupt(format!("belongs to checkpoint {}", bh.seq.get())));
            }
            entries += es.len() as u64;
            for e in es {
                let Entry::Page { vol, page, at } = e else {
                    return Err(corrupt(format!("{e:?} in a page directory")));
                };
                if let Some(m) = maps.get(&vol).filter(|m| page < m.pages()) {
                    m.set_media(page, at.pack());
                }
            }
        }
        b += n;
    }
    if entries != body.entries.get() {
        return Err(LayoutError::Corrupt(format!(
            "checkpoint {ckpt_seq} holds {entries} entries, its head says {}",
            body.entries.get()
        )));
    }
    // The journal after it, in sequence order, up to the first block missing.
    let from = body.journal_seq.get();
    let mut blocks: BTreeMap<u64, (u64, Vec<Entry>)> = BTreeMap::new();
    let mut seen = from;
    for j in 0..geo.journal_zones {
        let info = reports[0][geo.journal_zone(j) as usize];
        if info.wp == info.zslba {
            continue;
        }
        let data = inner.read_blocks(0, info.zslba, info.wp)?;
        let (mut last, mut oldest) = (None, None);
        for block in data.chunks_exact(bs) {
            if let Ok((h, es)) = parse_entry_block(block, Kind::Journal, &pool) {
                let seq = h.seq.get();
                last = Some(last.map_or(seq, |l: u64| l.max(seq)));
                oldest = Some(oldest.map_or(seq, |o: u64| o.min(seq)));
                seen = seen.max(seq + 1);
                if seq >= from {
                    blocks.insert(seq, (j, es));
                }
            }
        }
        let mut meta = inner.lock_meta();
        meta.journal_last[j as usize] = last;
        meta.journal_oldest[j as usize] = oldest;
    }
    let mut next = from;
    let mut last_zone = None;
    let mut list = Vec::new();
    for (seq, (j, es)) in blocks {
        if seq != next {
            break;
        }
        list.extend(es);
        last_zone = Some(j);
        next += 1;
    }
    let replayed = next - from;
    let loaded = replay(inner, &maps, &list)?;
    // Pages the replay dirtied hold changes from `from` on (journal position 0); what is
    // journaled from now on comes after them.
    inner.state.get_mut().expect("lock").drained = 1;
    inner.lock_meta().replay_from = from;
    let opened = rebuild_zones(inner, reports, &listed)?;
    let mut meta = inner.lock_meta();
    meta.ckpt_journal_seq = from;
    if seen > next {
        // Blocks past a gap in the journal would read differently on the next replay of
        // this checkpoint: cut them off with a fresh one. New blocks take sequences no
        // block left on the media has.
        meta.journal_seq = seen;
        meta.journal_zone = last_zone.unwrap_or(geo.journal_zones - 1);
        meta.journal_wp = geo.zone_cap;
    } else {
        // The journal goes on where it ended: a replay of this checkpoint and journal finds
        // the state recovered here, and then what follows.
        meta.journal_seq = next;
        let at = last_zone
            .or_else(|| (0..geo.journal_zones).max_by_key(|&j| meta.journal_last[j as usize]));
        let j = at.unwrap_or(0);
        let info = reports[0][geo.journal_zone(j) as usize];
        meta.journal_zone = j;
        meta.journal_wp = info.wp - info.zslba;
        // What is journaled from now on (positions 1 on) goes to blocks from `next` on,
        // here or in the zones after: without this mark, a page dirty since then would take
        // the replay's start for its own, which a zone reset may since have taken away.
        meta.marks.push_back((1, next));
    }
    if seen > next {
        // The fresh checkpoint replays from past the gap: the pages the replay changed are
        // written back first.
        inner.write_back(&mut meta, Which::All)?;
    }
    if seen > next || opened > 0 {
        // Also lists the zones just finished without footer.
        inner.checkpoint_locked(&mut meta)?;
    }
    drop(meta);
    // A small map is counted now (its figures right from the start); a large one in the
    // background, so the time to the first I/O does not grow with it.
    if entries <= SYNC_RECOUNT_PAGES {
        inner.recount()?;
    }
    tracing::info!(pool = %inner.name, directory_entries = entries, journal_blocks = replayed,
        pages_read = loaded, zones_without_footer = inner.lock().footerless.len(),
        elapsed_ms = started.elapsed().as_millis() as u64, "pool recovered");
    Ok(())
}

/// Replay the journal `list` over the page directory: a page's latest `Page` entry (or a
/// trim of the whole page) names the copy that holds everything before it, so only what
/// follows is applied to it, on the page read into DRAM (where it stays, dirty, until
/// written back). Returns pages read.
fn replay(
    inner: &Inner,
    maps: &BTreeMap<u16, Arc<VolumeMap>>,
    list: &[Entry],
) -> Result<u64, LayoutError> {
    let mut base: HashMap<(u16, u64), usize> = HashMap::new();
    for (i, e) in list.iter().enumerate() {
        match *e {
            Entry::Page { vol, page, at } => {
                if let Some(m) = maps.get(&vol).filter(|m| page < m.pages()) {
                    m.set_media(page, at.pack());
                    base.insert((vol, page), i);
                }
            }
            Entry::Trim { vol, lba, len } => {
                let Some(m) = maps.get(&vol) else { continue };
                let end = lba.saturating_add(len);
                for p in whole(m, lba, len) {
                    let r = m.page_range(p);
                    if r.start >= lba && r.end <= end {
                        m.set_media(p, 0);
                        base.insert((vol, p), i);
                    }
                }
            }
            Entry::Map { .. } => {}
        }
    }
    let mut loaded = 0u64;
    let mut set = |m: &VolumeMap, lba: u64, packed: u64| -> Result<(), LayoutError> {
        let (p, _) = m.page_of(lba);
        // Pinned until changed: a clean page may be dropped from DRAM at any time.
        let page = inner.page(m, p, true)?;
        if m.swap(&page, lba, packed).1 {
            inner.lock().note_dirty(m.id, p, &page);
            loaded += 1;
        }
        page.unpin();
        Ok(())
    };
    for (i, e) in list.iter().enumerate() {
        let after = |vol: u16, p: u64| base.get(&(vol, p)).is_none_or(|&j| j < i);
        match *e {
            Entry::Map { vol, lba, len, at } => {
                let Some(m) = maps.get(&vol) else { continue };
                for k in 0..u64::from(len) {
                    let b = lba + k;
                    if b < m.blocks() && after(vol, m.page_of(b).0) {
                        set(m, b, at.offset(k).pack())?;
                    }
                }
            }
            Entry::Trim { vol, lba, len } => {
                let Some(m) = maps.get(&vol) else { continue };
                let end = lba.saturating_add(len).min(m.blocks());
                for p in whole(m, lba, len).filter(|&p| after(vol, p)) {
                    let r = m.page_range(p);
                    for b in r.start.max(lba)..r.end.min(end) {
                        set(m, b, 0)?;
                    }
                }
            }
            Entry::Page { .. } => {}
        }
    }
    Ok(loaded)
}

/// The pages blocks `lba..lba + len` of `m` touch.
fn whole(m: &VolumeMap, lba: u64, len: u64) -> impl Iterator<Item = u64> + '_ {
    let end = lba.saturating_add(len).min(m.blocks());
    let (first, _) = m.page_of(lba.min(m.blocks()));
    (first..m.pages()).take_while(move |&p| m.page_range(p).start < end)
}

/// Every data zone's state from the drives' write pointers. Zones a crash left open are
/// finished; they and the footerless zones the checkpoint `listed` take their keys from the
/// recount. Returns how many zones were finished now.
fn rebuild_zones(
    inner: &mut Inner,
    reports: &[Vec<ZoneInfo>],
    listed: &[u32],
) -> Result<u64, LayoutError> {
    let geo = inner.geo;
    let listed: BTreeSet<usize> = listed.iter().map(|&z| z as usize).collect();
    let mut zones = std::mem::take(&mut inner.state.get_mut().expect("lock").zones);
    let mut free = vec![Vec::new(); geo.members];
    let mut footerless = BTreeSet::new();
    let mut opened = 0;
    for (id, dz) in zones.iter_mut().enumerate() {
        let m = usize::from(dz.member);
        let z = dz.zslba / geo.zone_size;
        let info = reports[m][z as usize];
        dz.data_end = geo.zone_data;
        match info.state {
            ZoneState::Empty => {
                dz.state = ZState::Free;
                free[m].push(id);
                continue;
            }
            ZoneState::ReadOnly | ZoneState::Offline => {
                // Data on a failed zone stays readable where the drive allows; nothing new
                // is placed there.
                dz.state = ZState::Full(Stream::Cold);
                footerless.insert(id);
            }
            ZoneState::Full => {
                dz.state = ZState::Full(Stream::Gc);
                if listed.contains(&id) {
                    footerless.insert(id);
                }
            }
            _ => {
                inner.zone_action(m, z, ZoneAction::Finish)?;
                dz.state = ZState::Full(Stream::Gc);
                dz.data_end = (info.wp - info.zslba).min(geo.zone_data);
                footerless.insert(id);
                opened += 1;
            }
        }
        if footerless.contains(&id) {
            dz.p2l = vec![0; dz.data_end as usize];
        }
    }
    for f in &mut free {
        f.reverse();
    }
    let st = inner.state.get_mut().expect("lock");
    st.zones = zones;
    st.free = free;
    st.footerless = footerless;
    st.counted = false;
    Ok(opened)
}
