//! Writing the pool's metadata on member 0: the journal ring, checkpoints and the superblock
//! ring. All of it runs under the meta lock, one writer at a time, with plain writes at the
//! write pointers it tracks.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use nvme::backend::BackendError;
use nvme::zns::{ReportOption, ZoneAction, ZoneDescriptor, ZoneState};
use zerocopy::FromBytes;

use super::cache::Which;
use super::format::{
    self, checkpoint_head, entry_block, CheckpointBody, Entry, Kind, Loc, SuperBody, Superblock,
};
use super::pool::Inner;

/// Where the metadata writers are.
pub struct Meta {
    pub generation: u64,
    /// Superblock ring zone (0 or 1) and blocks written in it.
    pub sb_zone: u64,
    pub sb_wp: u64,
    /// Journal ring zone, blocks written in it and the next block's sequence.
    pub journal_zone: u64,
    pub journal_wp: u64,
    pub journal_seq: u64,
    /// Highest sequence written in each journal zone (`None`: empty).
    pub journal_last: Vec<Option<u64>>,
    /// Lowest sequence each journal zone holds (`None`: empty): a checkpoint never names a
    /// replay start older than every block the ring still holds.
    pub journal_oldest: Vec<Option<u64>>,
    /// Journal positions and the sequence of the block each went to, oldest first: one at
    /// the start of every journal zone and at most every [`MARK_BLOCKS`] blocks after, since
    /// the pool opened (a recovery marks position 1 at the next sequence; position 0 is the
    /// replay's changes). An entry at or after a mark's position is in its block or a later
    /// one; marks of a journal zone go when it is reset.
    pub marks: VecDeque<(u64, u64)>,
    /// Where the journal replayed at the last recovery began: the changes the replay made
    /// (journal position 0) are no older than that.
    pub replay_from: u64,
    pub ckpt_slot: u64,
    pub ckpt_seq: u64,
    /// First journal sequence the latest checkpoint does not cover.
    pub ckpt_journal_seq: u64,
    /// A journal write failed part way: what the media holds past the last good block is
    /// unknown, so nothing more is journaled (every Flush fails, GC resets nothing) until
    /// the pool is opened again and recovers from what is there.
    pub failed: Option<String>,
}

impl Meta {
    /// Journal blocks written since the latest checkpoint.
    pub fn journal_since_checkpoint(&self) -> u64 {
        self.journal_seq - self.ckpt_journal_seq
    }

    /// The journal position of the latest mark at or before sequence `seq`.
    pub fn position_of(&self, seq: u64) -> Option<u64> {
        self.marks
            .iter()
            .rev()
            .find(|&&(_, s)| s <= seq)
            .map(|&(pos, _)| pos)
    }

    /// The sequence of a journal block at or before the one holding the entry at journal
    /// position `pos` (entries `drained` and later are not written yet), and still in the
    /// ring: the latest mark's at or before `pos`. Position 0 after a recovery is the
    /// replay's changes, from [`Meta::replay_from`] on; every later position has a mark at
    /// or before it until its zone is reset, which no checkpoint allows while a page is dirty
    /// since then.
    pub fn seq_of(&self, pos: u64, drained: u64) -> u64 {
        if pos >= drained {
            return self.journal_seq;
        }
        self.marks
            .iter()
            .rev()
            .find(|&&(first, _)| first <= pos)
            .map_or(self.replay_from, |&(_, seq)| seq)
            .min(self.journal_seq)
    }
}

/// Journal blocks between marks (bounds how far a checkpoint's replay start trails the
/// oldest change it must replay; a ring of 4 zones of 1 GiB keeps at most 16 Ki marks).
pub const MARK_BLOCKS: u64 = 64;

/// A zone's state and write pointer as its drive reports them (the write pointer of a Full
/// zone is its start plus its capacity).
#[derive(Clone, Copy, Debug)]
pub struct ZoneInfo {
    pub state: ZoneState,
    pub zslba: u64,
    pub wp: u64,
}

impl Inner {
    pub fn report_zones(&self, member: usize) -> Result<Vec<ZoneInfo>, BackendError> {
        let zones = self.geo.zones;
        let mut out = Vec::with_capacity(zones as usize);
        let per = 4096usize;
        while (out.len() as u64) < zones {
            let n = (zones - out.len() as u64).min(per as u64 - 1) as usize;
            let mut buf = vec![0u8; (n + 1) * 64];
            let slba = self.geo.zslba(out.len() as u64);
            self.members[member]
                .zoned()
                .report(slba, ReportOption::All, true, &mut buf)?;
            let before = out.len();
            for d in buf[64..].chunks_exact(64) {
                let d = ZoneDescriptor::read_from_bytes(d).expect("64 bytes");
                let zslba = d.zslba.get();
                if zslba != self.geo.zslba(out.len() as u64) {
                    break;
                }
                let state = d.state().unwrap_or(ZoneState::Offline);
                // A Read Only zone's write pointer is not valid (ZNS 1.1 §2.1.1.6): all of
                // it is read, and records past what was written fail their checks.
                let wp = match state {
                    ZoneState::Full | ZoneState::ReadOnly => zslba + self.geo.zone_cap,
                    ZoneState::Offline => zslba,
                    _ => d.wp.get(),
                };
                out.push(ZoneInfo { state, zslba, wp });
                if out.len() as u64 == zones {
                    break;
                }
            }
            if out.len() == before {
                return Err(BackendError::Io(std::io::Error::other(format!(
                    "member {member}: zone report at LBA {slba} listed no zone"
                ))));
            }
        }
        Ok(out)
    }

    pub fn zone_action(
        &self,
        member: usize,
        zone: u64,
        action: ZoneAction,
    ) -> Result<(), BackendError> {
        if action == ZoneAction::Reset {
            self.counters.zone_resets.fetch_add(1, Ordering::Relaxed);
        }
        self.members[member]
            .zoned()
            .send(self.geo.zslba(zone), action, false)
    }

    /// Read blocks `from..to` of `member`.
    pub fn read_blocks(&self, member: usize, from: u64, to: u64) -> Result<Vec<u8>, BackendError> {
        let mut buf = vec![0u8; ((to - from) * u64::from(self.geo.bs)) as usize];
        let chunk = (1usize << 20) / self.geo.bs as usize * self.geo.bs as usize;
        for (i, part) in buf.chunks_mut(chunk).enumerate() {
            let lba = from + (i * chunk / self.geo.bs as usize) as u64;
            self.members[member].backend.read(lba, part)?;
        }
        Ok(buf)
    }

    /// Write `data` (whole blocks) to member 0 at `lba`, in pieces of at most 1 MiB.
    fn write_meta(&self, lba: u64, data: &[u8]) -> Result<(), BackendError> {
        let bs = self.geo.bs as usize;
        let chunk = (1usize << 20) / bs * bs;
        for (i, part) in data.chunks(chunk).enumerate() {
            self.members[0]
                .backend
                .write(lba + (i * chunk / bs) as u64, part, false)?;
        }
        self.counters
            .meta_write_blocks
            .fetch_add((data.len() / bs) as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Write the journal: every waiting change (`all`, then flush member 0), or only whole
    /// blocks of them. The data they map is made durable first.
    pub fn write_journal(&self, meta: &mut Meta, all: bool) -> Result<(), BackendError> {
        if let Some(why) = &meta.failed {
            return Err(journal_failed(why));
        }
        let bs = self.geo.bs as usize;
        let per = format::entries_per_block(bs);
        let (entries, base): (Vec<Entry>, u64) = {
            let mut st = self.lock();
            let n = if all {
                st.journal.len()
            } else {
                st.journal.len() / per * per
            };
            let base = st.drained;
            st.drained += n as u64;
            (st.journal.drain(..n).collect(), base)
        };
        if entries.is_empty() && !all {
            return Ok(());
        }
        let mut done = 0u64;
        let written = self.write_entries(meta, &entries, base, &mut done);
        if let Err(e) = &written {
            // What was not written goes back in front of the changes made since, at the
            // same journal positions: the next write takes it (a failed Flush loses none).
            let from = (done as usize * per).min(entries.len());
            let mut st = self.lock();
            st.drained -= (entries.len() - from) as u64;
            st.journal.splice(0..0, entries[from..].iter().cloned());
            drop(st);
            tracing::debug!(pool = %self.name, error = %e, "journal write failed");
        }
        written?;
        if all && self.members[0].volatile {
            self.members[0].backend.flush()?;
        }
        Ok(())
    }

    /// Write `entries` (journal positions from `base`) as journal blocks; `done` counts the
    /// blocks written. A failed block write latches [`Meta::failed`].
    fn write_entries(
        &self,
        meta: &mut Meta,
        entries: &[Entry],
        base: u64,
        done: &mut u64,
    ) -> Result<(), BackendError> {
        let bs = self.geo.bs as usize;
        let per = format::entries_per_block(bs);
        self.flush_data()?;
        let mut blocks = entries.chunks(per).skip(*done as usize).peekable();
        while blocks.peek().is_some() {
            if meta.journal_wp == self.geo.zone_cap {
                self.next_journal_zone(meta)?;
            }
            let room = (self.geo.zone_cap - meta.journal_wp) as usize;
            let mut buf = Vec::with_capacity(room.min(256) * bs);
            let mut n = 0u64;
            if meta.journal_wp == 0 {
                meta.journal_oldest[meta.journal_zone as usize] = Some(meta.journal_seq);
            }
            let due = meta
                .marks
                .back()
                .is_none_or(|&(_, s)| meta.journal_seq >= s + MARK_BLOCKS);
            if meta.journal_wp == 0 || due {
                let pos = base + *done * per as u64;
                meta.marks.push_back((pos, meta.journal_seq));
            }
            while n < room as u64 && n < 256 {
                let Some(es) = blocks.next() else { break };
                let seq = meta.journal_seq + n;
                buf.extend(entry_block(Kind::Journal, self.pool_id, seq, es, bs));
                n += 1;
            }
            let lba = self.geo.zslba(self.geo.journal_zone(meta.journal_zone)) + meta.journal_wp;
            if let Err(e) = self.write_meta(lba, &buf) {
                // Part of it may be on the media, and the zone's write pointer is unknown.
                let why = format!("journal write at LBA {lba} of member 0 failed: {e}");
                tracing::error!(pool = %self.name, error = %e, lba,
                    "journal write failed: the pool journals nothing more until reopened");
                meta.failed = Some(why);
                return Err(e);
            }
            *done += n;
            meta.journal_wp += n;
            meta.journal_seq += n;
            meta.journal_last[meta.journal_zone as usize] = Some(meta.journal_seq - 1);
        }
        Ok(())
    }

    /// Move the journal to the next zone of its ring. When that zone still holds blocks the
    /// latest checkpoint needs, the pages dirty since then are written back and a
    /// checkpoint is taken first.
    fn next_journal_zone(&self, meta: &mut Meta) -> Result<(), BackendError> {
        let zones = self.geo.journal_zones;
        let next = (meta.journal_zone + 1) % zones;
        if meta.journal_last[next as usize].is_some_and(|last| last >= meta.ckpt_journal_seq) {
            // Entries before the zone after it (whose first mark is the first past this
            // zone's blocks) are in it or older.
            let last = meta.journal_last[next as usize].unwrap_or(0);
            let which = match meta.marks.iter().find(|&&(_, s)| s > last) {
                Some(&(first, _)) => Which::Before(first),
                None => Which::All,
            };
            self.write_back(meta, which)?;
            self.checkpoint_locked(meta)?;
            if meta.journal_last[next as usize].is_some_and(|l| l >= meta.ckpt_journal_seq) {
                return Err(BackendError::Io(std::io::Error::other(
                    "the journal ring is full of changes no checkpoint covers",
                )));
            }
        }
        if let Some(last) = meta.journal_last[next as usize] {
            self.zone_action(0, self.geo.journal_zone(next), ZoneAction::Reset)?;
            meta.journal_last[next as usize] = None;
            meta.journal_oldest[next as usize] = None;
            while meta.marks.front().is_some_and(|&(_, s)| s <= last) {
                meta.marks.pop_front();
            }
        }
        meta.journal_zone = next;
        meta.journal_wp = 0;
        Ok(())
    }

    /// Append a superblock record (volumes, checkpoint) to the superblock ring.
    pub fn write_superblock(&self, meta: &mut Meta) -> Result<(), BackendError> {
        let volumes = {
            let st = self.lock();
            let mut v: Vec<_> = st.volumes.values().map(|v| v.def.clone()).collect();
            v.sort_by_key(|d| d.id);
            (v, st.next_volume_id)
        };
        let sb = Superblock {
            generation: meta.generation + 1,
            body: SuperBody {
                block_size: self.geo.bs.into(),
                members: (self.geo.members as u32).into(),
                zone_size: self.geo.zone_size.into(),
                zone_cap: self.geo.zone_cap.into(),
                zones_per_member: self.geo.zones.into(),
                checkpoint_zones: (self.geo.ckpt_zones as u32).into(),
                journal_zones: (self.geo.journal_zones as u32).into(),
                op_percent: self.op_percent.into(),
                checkpoint_slot: (meta.ckpt_slot as u32).into(),
                checkpoint_seq: meta.ckpt_seq.into(),
                next_volume_id: volumes.1.into(),
                volumes: 0.into(),
                rsvd: [0; 4],
            },
            volumes: volumes.0,
        };
        let rec = sb.encode(self.pool_id, self.geo.bs as usize);
        let n = (rec.len() / self.geo.bs as usize) as u64;
        if n > self.geo.zone_cap {
            return Err(BackendError::Io(std::io::Error::other(
                "the volume table is larger than a superblock zone",
            )));
        }
        if meta.sb_wp + n > self.geo.zone_cap {
            let other = 1 - meta.sb_zone;
            self.zone_action(0, other, ZoneAction::Reset)?;
            meta.sb_zone = other;
            meta.sb_wp = 0;
        }
        self.write_meta(self.geo.zslba(meta.sb_zone) + meta.sb_wp, &rec)?;
        self.members[0].backend.flush()?;
        meta.sb_wp += n;
        meta.generation += 1;
        Ok(())
    }

    /// Write a checkpoint (the whole map) into the other slot and point the superblock at it.
    pub fn checkpoint(&self) -> Result<(), BackendError> {
        let mut meta = self.lock_meta();
        self.checkpoint_locked(&mut meta)
    }

    pub fn checkpoint_locked(&self, meta: &mut Meta) -> Result<(), BackendError> {
        if let Some(why) = &meta.failed {
            return Err(journal_failed(why));
        }
        // The directory's copies hold every change but those of dirty pages since they
        // turned dirty: replay starts at the journal block holding the oldest of those (or
        // at the next block, which the changes still in the buffer go to). Replaying a
        // change a copy already holds is harmless.
        let (entries, footerless, journal_seq) = {
            let mut st = self.lock();
            let journal_seq = st
                .oldest_dirty()
                .map_or(meta.journal_seq, |pos| meta.seq_of(pos, st.drained));
            let mut out = Vec::new();
            for (&vol, map) in &st.by_id {
                for page in 0..map.pages() {
                    if let Some(at) = Loc::unpack(map.media(page)) {
                        out.push(Entry::Page { vol, page, at });
                    }
                }
            }
            let footerless = st.footerless.iter().map(|&z| z as u32).collect::<Vec<_>>();
            (out, footerless, journal_seq)
        };
        if let Some(&oldest) = meta.journal_oldest.iter().flatten().min() {
            if journal_seq < oldest {
                // A replay from there would find nothing and lose every change since.
                let why = format!(
                    "a checkpoint would replay the journal from block {journal_seq}, but the \
                     oldest block the ring holds is {oldest}"
                );
                tracing::error!(pool = %self.name, journal_seq, oldest, "checkpoint refused");
                return Err(BackendError::Io(std::io::Error::other(why)));
            }
        }
        self.flush_data()?;
        let bs = self.geo.bs as usize;
        let per = format::entries_per_block(bs);
        let slot = 1 - meta.ckpt_slot;
        let seq = meta.ckpt_seq + 1;
        let data_blocks = entries.len().div_ceil(per);
        let mut buf = checkpoint_head(
            self.pool_id,
            seq,
            data_blocks as u32,
            CheckpointBody {
                journal_seq: journal_seq.into(),
                entries: (entries.len() as u64).into(),
            },
            &footerless,
            bs,
        )
        .map_err(|e| BackendError::Io(std::io::Error::other(e.to_string())))?;
        for es in entries.chunks(per) {
            buf.extend(entry_block(Kind::CheckpointData, self.pool_id, seq, es, bs));
        }
        let blocks = (buf.len() / bs) as u64;
        if blocks > self.geo.ckpt_zones * self.geo.zone_cap {
            return Err(BackendError::NoSpace);
        }
        let first = self.geo.ckpt_zone(slot);
        for z in first..first + self.geo.ckpt_zones {
            self.zone_action(0, z, ZoneAction::Reset)?;
        }
        let cap_bytes = self.geo.zone_cap as usize * bs;
        for (i, part) in buf.chunks(cap_bytes).enumerate() {
            self.write_meta(self.geo.zslba(first + i as u64), part)?;
            if part.len() < cap_bytes {
                // Give back the active zone: nothing more is written here until the slot's
                // next turn.
                self.zone_action(0, first + i as u64, ZoneAction::Finish)?;
            }
        }
        self.members[0].backend.flush()?;
        let before = (meta.ckpt_slot, meta.ckpt_seq, meta.ckpt_journal_seq);
        meta.ckpt_slot = slot;
        meta.ckpt_seq = seq;
        meta.ckpt_journal_seq = journal_seq;
        if let Err(e) = self.write_superblock(meta) {
            (meta.ckpt_slot, meta.ckpt_seq, meta.ckpt_journal_seq) = before;
            return Err(e);
        }
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn journal_failed(why: &str) -> BackendError {
    BackendError::Io(std::io::Error::other(format!(
        "the pool's journal failed ({why}); reopen the pool to recover"
    )))
}
