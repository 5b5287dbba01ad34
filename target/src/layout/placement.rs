//! Placement: the write streams, the open zone of each stream on each member, handing out
//! their room to host writes and GC copies, and sealing a zone with its footer once its data
//! is complete.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::Duration;

use nvme::backend::BackendError;

use super::cache::Pins;
use super::format::{Loc, MAX_RUN};
use super::map::VolumeMap;
use super::pool::{Inner, State, ZState};
use super::zone_records::encode_footer;

/// Largest piece of a host write placed at once (one Zone Append).
const MAX_CHUNK_BYTES: u64 = 128 << 10;

/// The write streams, hottest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Host writes of blocks rewritten soon after their last write (or new); with the
    /// streams merged (`Lifetimes`), host writes and GC's copies alike.
    Host = 0,
    /// What GC moved out of host zones (data that outlived its zone's collection, mostly
    /// hot blocks not rewritten yet), and out of its own zones collected young.
    Gc = 1,
    /// Host writes of blocks whose copy lasted long, and what GC moved out of warm and cold
    /// zones collected old.
    Cold = 2,
    /// Map pages, written back from the cache (plain writes, one zone at a time).
    Map = 3,
}
pub const STREAMS: usize = 4;

impl Stream {
    /// Where GC puts data it moves out of a zone of this stream (a warm zone collected
    /// young keeps its data warm).
    pub fn colder(self) -> Stream {
        match self {
            Stream::Host => Stream::Gc,
            Stream::Gc | Stream::Cold | Stream::Map => Stream::Cold,
        }
    }
}

/// Blocks an append placed, with the state lock still held to map them.
pub struct Placed<'a> {
    pub st: MutexGuard<'a, State>,
    pub zone: usize,
    pub at: Loc,
    pub blocks: u64,
    /// The zone's data is complete: [`Inner::seal`] it once these blocks are mapped.
    pub seal: bool,
}

impl Inner {
    /// Pool writes (blocks placed) after which a block not rewritten counts as cold (host
    /// writes of it go to the cold stream, GC moves it a stream colder): half the usable
    /// blocks.
    pub fn cold_age(&self) -> u64 {
        (self.usable_blocks / 2).max(1)
    }

    pub(super) fn chunk_blocks(&self) -> u64 {
        let limit = self
            .members
            .iter()
            .map(|m| m.append_limit)
            .min()
            .unwrap_or(MAX_CHUNK_BYTES)
            .min(MAX_CHUNK_BYTES);
        (limit / u64::from(self.geo.bs)).clamp(1, MAX_RUN)
    }

    /// Hand out up to `want` blocks of an open zone of `stream`: the zone, how many, and the
    /// zone's member and start LBA.
    /// Host writes (`by_host`, whatever their stream) wait for GC when only the reserve is
    /// left; GC may use the reserve.
    pub fn reserve(
        &self,
        stream: Stream,
        by_host: bool,
        want: u64,
    ) -> Result<(usize, u64, u8, u64), BackendError> {
        let mut st = self.lock();
        let s = stream as usize;
        let floor = if by_host { self.reserve } else { 0 };
        let started = std::time::Instant::now();
        loop {
            // The next member in turn that has room in its open zone or a zone to open; a
            // member short of free zones is passed over while another has room. Host writes
            // do not take the room of a zone GC opened from the reserve while the member is
            // still down to it: what GC takes from the reserve stays GC's.
            // Streams merged (everything written to the host stream), the zones the other
            // data streams still have open fill up first.
            let merged = stream == Stream::Host && !st.lifetimes.separate();
            let streams: &[Stream] = if merged {
                &[Stream::Host, Stream::Gc, Stream::Cold]
            } else {
                std::slice::from_ref(&stream)
            };
            let members = self.geo.members;
            let first = st.rr[s];
            // The member's open zone to write (a slot naming one no longer open for its
            // stream is passed over: `State::open_with_room`), or None to open one.
            let room = |st: &State, m: usize| {
                let above = st.free[m].len() > floor;
                let found = streams.iter().find_map(|&t| {
                    st.open_with_room(st.open[t as usize][m], t)
                        .filter(|&z| above || !(by_host && st.zones[z].from_reserve))
                });
                (above || found.is_some()).then_some(found)
            };
            let pick = (0..members)
                .map(|k| (first + k) % members)
                .find_map(|m| room(&st, m).map(|found| (m, found)));
            if let Some((m, found)) = pick {
                st.rr[s] = m + 1;
                let z = match found {
                    Some(z) => z,
                    None => {
                        let from_reserve = st.free[m].len() <= self.reserve;
                        let z = st.free[m].pop().expect("checked above");
                        self.open_zone(&mut st, z, stream);
                        st.zones[z].from_reserve = from_reserve;
                        st.open[s][m] = Some(z);
                        z
                    }
                };
                let clock = st.clock;
                let dz = &mut st.zones[z];
                let n = want.min(dz.room);
                dz.room -= n;
                dz.inflight += 1;
                dz.stamp = clock;
                let (member, zslba) = (dz.member, dz.zslba);
                st.clock += n;
                return Ok((z, n, member, zslba));
            }
            // Host writes wait for GC; after a second with GC finding nothing to collect,
            // the pool is full.
            let give_up = st.stuck && started.elapsed() >= Duration::from_secs(1);
            if !by_host || give_up || self.stopping.load(Ordering::SeqCst) {
                return Err(BackendError::NoSpace);
            }
            self.cond.notify_all();
            st = self
                .cond
                .wait_timeout(st, Duration::from_millis(50))
                .expect("state lock")
                .0;
        }
    }

    /// Make free zone `z` an open zone of `stream`.
    pub fn open_zone(&self, st: &mut State, z: usize, stream: Stream) {
        let d = self.geo.zone_data;
        let dz = &mut st.zones[z];
        dz.state = ZState::Open(stream);
        dz.from_reserve = false;
        dz.room = d;
        dz.valid = 0;
        dz.data_end = 0;
        dz.p2l = vec![0; d as usize];
    }

    /// An append placed in zone `z` is over (done or failed): true when the zone's data is
    /// complete now, so its footer is to be written ([`Inner::seal`]) once this append's
    /// blocks are mapped.
    fn complete(&self, st: &mut State, z: usize) -> bool {
        let dz = &mut st.zones[z];
        dz.inflight -= 1;
        if dz.room == 0 && dz.inflight == 0 {
            if let ZState::Open(s) = dz.state {
                dz.state = ZState::Sealing(s);
                dz.data_end = self.geo.zone_data;
                return true;
            }
        }
        false
    }

    /// Append the first blocks of `data` (as many as an open zone of `stream` gives) and
    /// return, with the state lock held, the zone, where they landed, how many, and whether
    /// the zone is to be sealed after they are mapped: for host writes (`by_host`) and GC
    /// copies alike.
    pub fn place(
        &self,
        stream: Stream,
        by_host: bool,
        data: &[u8],
    ) -> Result<Placed<'_>, BackendError> {
        let bs = self.geo.bs as usize;
        let (z, n, member, zslba) = self.reserve(stream, by_host, (data.len() / bs) as u64)?;
        let placed = self.members[usize::from(member)].zoned().append(
            zslba,
            &data[..n as usize * bs],
            false,
        );
        let mut st = self.lock();
        let seal = self.complete(&mut st, z);
        if seal && placed.is_err() {
            drop(st);
            self.seal(z);
            return Err(placed.expect_err("checked"));
        }
        let first = placed?;
        Ok(Placed {
            st,
            zone: z,
            at: Loc { member, lba: first },
            blocks: n,
            seal,
        })
    }

    /// Write the footer of zone `z`, whose data is complete, and make it full. Without a
    /// footer (a failed write) its keys stay in DRAM.
    pub fn seal(&self, z: usize) {
        let (member, zslba, keys) = {
            let st = self.lock();
            let dz = &st.zones[z];
            (dz.member, dz.zslba, dz.p2l.clone())
        };
        let bs = self.geo.bs as usize;
        let blocks = (self.geo.zone_cap - self.geo.zone_data) as usize;
        let footer = encode_footer(self.pool_id, zslba, &keys, bs, blocks);
        let written = self.members[usize::from(member)].backend.write(
            zslba + self.geo.zone_data,
            &footer,
            false,
        );
        let mut st = self.lock();
        let dz = &mut st.zones[z];
        if let ZState::Sealing(s) = dz.state {
            dz.state = ZState::Full(s);
        }
        match written {
            Ok(()) => {
                dz.p2l = Vec::new();
                self.counters
                    .meta_write_blocks
                    .fetch_add((footer.len() / bs) as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(pool = %self.name, zone = zslba, error = %e,
                    "zone footer not written: its keys stay in DRAM");
            }
        }
        // A new full zone may be worth collecting.
        st.stuck = false;
    }

    /// The stream a host write of blocks `lba..lba + blocks` goes to: most of them rewritten
    /// after their copies lasted [`Inner::cold_age`] of the pool's writes or longer, the
    /// cold stream, else the host stream. Not the warm stream: what GC moves out of host
    /// zones there is mostly hot data about to be rewritten, which would leave holes all
    /// over the cold data's zones (`layout_bench`, 90:10 at 80% of raw: WAF 1.77 rather
    /// than 1.84). Separating data by how long it lives leaves the host stream's zones
    /// mostly invalid by the time GC looks at them,
    /// where age tells how long data lives ([`Lifetimes`], which the ages replaced here
    /// feed); where it does not, everything goes to the host stream.
    /// A copy's age is taken from its zone's last write, which the copy is no younger than.
    pub(super) fn temperature(
        &self,
        st: &mut State,
        map: &VolumeMap,
        pins: &Pins,
        lba: u64,
        blocks: u64,
    ) -> Stream {
        let epoch = self.lifetimes_epoch();
        let mut old = 0;
        for b in lba..lba + blocks {
            if let Some(z) = Loc::unpack(pins.entry(map, b)).and_then(|at| self.geo.zone_id(at)) {
                let age = st.clock.saturating_sub(st.zones[z].stamp);
                st.lifetimes.died(age, epoch);
                old += u64::from(age >= self.cold_age());
            }
        }
        if st.lifetimes.separate() && old * 2 > blocks {
            Stream::Cold
        } else {
            Stream::Host
        }
    }

    /// Deaths per verdict of [`Lifetimes`]: a sixteenth of the usable blocks.
    fn lifetimes_epoch(&self) -> u64 {
        self.usable_blocks / 16
    }
}

#[cfg(test)]
mod tests {
    use nvme::backend::{Backend, BackendError};

    use super::super::tests::ram;
    use super::super::{Pool, PoolOptions};
    use super::*;

    /// Host writes share the cold stream with GC: a zone GC opened from a member's reserve is
    /// GC's while the member is down to its reserve (host writes wait), and anyone's once the
    /// member is above it again.
    #[test]
    fn host_writes_leave_a_zone_gc_opened_from_the_reserve_to_gc() {
        let pool = Pool::open("t", vec![ram(40, 64)], PoolOptions::default()).unwrap();
        let inner = &pool.inner;
        let spare: Vec<usize> = {
            let mut st = inner.lock();
            let keep = st.free[0].len() - inner.reserve;
            st.free[0].drain(..keep).collect()
        };
        let (z, n, _, _) = inner.reserve(Stream::Cold, false, 8).unwrap();
        assert_eq!(n, 8);
        assert!(inner.lock().zones[z].from_reserve);
        // Down to the reserve, with room in GC's zone: a host write waits, then (GC finding
        // nothing) gives up.
        inner.lock().stuck = true;
        assert!(matches!(
            inner.reserve(Stream::Cold, true, 8),
            Err(BackendError::NoSpace)
        ));
        assert_eq!(inner.lock().free[0].len(), inner.reserve - 1);
        // Above the reserve again: the host write takes the open zone's room.
        inner.lock().free[0].extend(spare);
        let (hz, _, _, _) = inner.reserve(Stream::Cold, true, 8).unwrap();
        assert_eq!(hz, z);
        let mut st = inner.lock();
        st.zones[z].inflight -= 2;
    }

    /// With the streams apart (a new pool's verdict), a host write of a block whose copy
    /// lasted the cold age goes to the cold stream; one of a block written lately to the
    /// host stream.
    #[test]
    fn a_block_rewritten_after_the_cold_age_goes_to_the_cold_stream() {
        let pool = Pool::open("t", vec![ram(40, 64)], PoolOptions::default()).unwrap();
        let inner = &pool.inner;
        let bs = inner.geo.bs as usize;
        let v = pool.volume("v", inner.geo.bs, inner.usable_blocks).unwrap();
        // A copy's age runs from its zone's last write: block 0's zone filled one zone on.
        let young = inner.cold_age() + inner.geo.zone_data + 1;
        // New blocks replace nothing: the clock moves on, no age is recorded.
        for lba in 0..=young {
            v.write(lba, &vec![lba as u8; bs], false).unwrap();
        }
        let open = |stream: Stream| {
            let st = inner.lock();
            (st.zones.iter())
                .filter(|z| z.state == ZState::Open(stream))
                .map(|z| inner.geo.zone_data - z.room)
                .collect::<Vec<_>>()
        };
        assert!(open(Stream::Cold).is_empty() && open(Stream::Gc).is_empty());
        v.write(0, &vec![9; bs], false).unwrap();
        assert_eq!(open(Stream::Cold), vec![1], "the old block's new copy");
        let before = open(Stream::Host);
        v.write(young, &vec![8; bs], false).unwrap();
        assert_eq!(open(Stream::Cold), vec![1]);
        assert_ne!(open(Stream::Host), before, "the young block's new copy");
        assert!(inner.lock().lifetimes.separate());
        assert!(open(Stream::Gc).is_empty());
    }

    /// A stream's slot still names the zone it last opened on a member after that zone filled;
    /// once the zone is collected and opened again (here as the map zone), the stream opens a
    /// zone of its own rather than appending to it. The same for the map's slot, once its
    /// zone is opened again for a data stream.
    #[test]
    fn a_stream_never_writes_a_zone_opened_again_for_another() {
        let pool = Pool::open("t", vec![ram(40, 64)], PoolOptions::default()).unwrap();
        let inner = &pool.inner;
        let d = inner.geo.zone_data;
        let (z, n, _, _) = inner.reserve(Stream::Cold, false, d).unwrap();
        assert_eq!(n, d);
        {
            // Filled, collected and freed (what GC does), then taken for the map.
            let mut st = inner.lock();
            st.zones[z].inflight -= 1;
            st.zones[z].state = ZState::Free;
            inner.open_zone(&mut st, z, Stream::Map);
            st.map_zone = Some(z);
            assert_eq!(st.open[Stream::Cold as usize][0], Some(z));
        }
        let (cz, _, _, _) = inner.reserve(Stream::Cold, false, 8).unwrap();
        assert_ne!(cz, z);
        let mut st = inner.lock();
        assert_eq!(st.zones[z].room, d, "the map zone's room is the map's");
        assert_eq!(st.zones[cz].state, ZState::Open(Stream::Cold));
        st.zones[cz].inflight -= 1;

        // The map zone filled, collected and freed, then opened for host writes.
        st.zones[z].room = 0;
        st.zones[z].state = ZState::Free;
        inner.open_zone(&mut st, z, Stream::Host);
        let (mz, at) = inner.map_block(&mut st, 0).unwrap();
        assert_ne!(mz, z);
        assert_eq!(st.map_zone, Some(mz));
        assert_eq!(at.lba, st.zones[mz].zslba, "the new map zone's first block");
        assert_eq!(st.zones[z].room, d, "the host zone's room is the host's");
    }
}
