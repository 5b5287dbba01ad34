//! The zones of one zoned namespace: state, write pointer and the open/active resources, for
//! every zoned backend (NVMe ZNS 1.1 §2.1). Every state change goes through
//! [`ZoneState::apply`]; this module adds the write pointer, the resource limits (MOR/MAR) and
//! the implicit open and close rules around it.

use zerocopy::IntoBytes;

use super::{ReportOption, ZoneAction, ZoneDescriptor, ZoneEvent, ZoneReportHeader, ZoneState};
use crate::Status;

/// Resource limits of a zoned namespace; 0 means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneLimits {
    /// Maximum open zones (Identify MOR + 1).
    pub max_open: u32,
    /// Maximum active zones (Identify MAR + 1).
    pub max_active: u32,
}

/// Why a zone set cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZoneSetError {
    #[error("zone size is 0")]
    ZeroZoneSize,
    #[error("zone capacity {cap} not in 1..=zone size {size}")]
    BadCapacity { cap: u64, size: u64 },
    #[error("{zones} zones of {size} blocks do not fit in 64-bit LBAs")]
    TooLarge { zones: u64, size: u64 },
}

/// What survives a restart of one zone: its state (the ZS code, NVMe ZNS 1.1 Figure 37) and
/// write pointer. [`ZoneSet::restore`] checks records; [`Zone::record`] makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneRecord {
    /// Zone State code ([`ZoneState::code`]).
    pub state: u8,
    /// Write pointer (an LBA of the namespace).
    pub wp: u64,
}

/// Why persisted zone records cannot be taken back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Geometry(#[from] ZoneSetError),
    #[error("zone {zone} has unknown state code {code:#x}")]
    UnknownState { zone: u64, code: u8 },
    #[error("zone {zone} is {state:?} with write pointer {wp}, not in {first}..={last}")]
    WritePointer {
        zone: u64,
        state: ZoneState,
        wp: u64,
        first: u64,
        last: u64,
    },
    #[error("{active} zones are active, more than the {max_active} active zones allowed")]
    TooManyActive { active: u32, max_active: u32 },
}

/// One sequential-write-required zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    state: ZoneState,
    wp: u64,
    zslba: u64,
    /// When the zone last became Implicitly Opened (a counter, not a time); picks the zone an
    /// implicit close takes.
    opened_at: u64,
}

impl Zone {
    /// Zone State.
    pub fn state(&self) -> ZoneState {
        self.state
    }

    /// Write pointer.
    pub fn wp(&self) -> u64 {
        self.wp
    }

    /// Zone Start LBA.
    pub fn zslba(&self) -> u64 {
        self.zslba
    }

    /// What a restart must keep of this zone.
    pub fn record(&self) -> ZoneRecord {
        ZoneRecord {
            state: self.state.code(),
            wp: self.wp,
        }
    }
}

/// The zones of a namespace, equal in size and capacity, with their resource accounting.
#[derive(Clone, Debug)]
pub struct ZoneSet {
    zone_size: u64,
    zone_cap: u64,
    limits: ZoneLimits,
    zones: Vec<Zone>,
    open: u32,
    active: u32,
    next_open_stamp: u64,
}

/// Index of the zone holding `lba` among `count` zones of `zone_size` blocks, `None` past
/// the last one.
fn zone_index(zone_size: u64, count: usize, lba: u64) -> Option<usize> {
    let i = usize::try_from(lba / zone_size).ok()?;
    (i < count).then_some(i)
}

/// The zone a read of `blocks` blocks at `lba` falls in, among `count` zones of `zone_size`
/// blocks: LBA Out of Range past the last zone, Zone Boundary Error across two (OZCS bit 0,
/// read across zone boundaries, is 0; NVMe ZNS 1.1 §5.1). The geometry alone decides, so a
/// caller that knows the zone's state without the zone set (an Offline flag of its own) can
/// check a read without its lock; [`ZoneSet::check_read`] adds the state.
pub fn read_zone(zone_size: u64, count: usize, lba: u64, blocks: u64) -> Result<usize, Status> {
    let i = zone_index(zone_size, count, lba).ok_or(Status::LBA_OUT_OF_RANGE)?;
    let last = lba.checked_add(blocks.saturating_sub(1));
    if last.and_then(|l| zone_index(zone_size, count, l)) != Some(i) {
        return Err(Status::ZONE_BOUNDARY_ERROR);
    }
    Ok(i)
}

impl ZoneSet {
    /// `zone_count` Empty zones of `zone_size` blocks, `zone_cap` of them writable.
    pub fn new(
        zone_size: u64,
        zone_cap: u64,
        zone_count: u64,
        limits: ZoneLimits,
    ) -> Result<ZoneSet, ZoneSetError> {
        if zone_size == 0 {
            return Err(ZoneSetError::ZeroZoneSize);
        }
        if zone_cap == 0 || zone_cap > zone_size {
            return Err(ZoneSetError::BadCapacity {
                cap: zone_cap,
                size: zone_size,
            });
        }
        let too_large = ZoneSetError::TooLarge {
            zones: zone_count,
            size: zone_size,
        };
        if zone_count.checked_mul(zone_size).is_none() || usize::try_from(zone_count).is_err() {
            return Err(too_large);
        }
        let zones = (0..zone_count)
            .map(|i| Zone {
                state: ZoneState::Empty,
                wp: i * zone_size,
                zslba: i * zone_size,
                opened_at: 0,
            })
            .collect();
        Ok(ZoneSet {
            zone_size,
            zone_cap,
            limits,
            zones,
            open: 0,
            active: 0,
            next_open_stamp: 0,
        })
    }

    /// The zones as a restart finds them, from one record per zone (in zone order) as
    /// [`Zone::record`] made them before the restart. A power cycle or controller reset closes
    /// every opened zone (NVMe ZNS 1.1 §2.1.1.3), so opened records come back Closed; the
    /// other states stay. Each record is checked against its state (§2.1.1): an Empty
    /// zone's write pointer is its ZSLBA; an active zone's is below the end of the capacity,
    /// since the write that reaches it makes the zone Full; Full, Read Only and Offline zones
    /// keep theirs within ZSLBA..=ZSLBA + capacity. The active zones must fit MAR
    /// (§2.1.1.4), or the limits Identify reports would be broken from the start.
    pub fn restore(
        zone_size: u64,
        zone_cap: u64,
        limits: ZoneLimits,
        records: &[ZoneRecord],
    ) -> Result<ZoneSet, RestoreError> {
        let mut set = ZoneSet::new(zone_size, zone_cap, records.len() as u64, limits)?;
        for (i, r) in records.iter().enumerate() {
            let zone = i as u64;
            let state = ZoneState::from_code(r.state).ok_or(RestoreError::UnknownState {
                zone,
                code: r.state,
            })?;
            let zslba = set.zones[i].zslba;
            let cap_end = zslba + zone_cap;
            let last = match state {
                ZoneState::Empty => zslba,
                s if s.is_active() => cap_end - 1,
                _ => cap_end,
            };
            if r.wp < zslba || r.wp > last {
                return Err(RestoreError::WritePointer {
                    zone,
                    state,
                    wp: r.wp,
                    first: zslba,
                    last,
                });
            }
            let state = if state.is_open() {
                ZoneState::Closed
            } else {
                state
            };
            set.set_state(i, state);
            set.zones[i].wp = r.wp;
        }
        let max_active = set.limits.max_active;
        if max_active != 0 && set.active > max_active {
            return Err(RestoreError::TooManyActive {
                active: set.active,
                max_active,
            });
        }
        Ok(set)
    }

    /// Put the zone starting at `zslba` back as `record` says (what it was before a command
    /// whose effect could not be stored): the state through the resource accounting, the
    /// write pointer as recorded. Fails like [`ZoneSet::index_at_start`] for a zone that is
    /// not this set's, and with Invalid Field for an unknown state code.
    pub fn put_back(&mut self, zslba: u64, record: ZoneRecord) -> Result<(), Status> {
        let i = self.index_at_start(zslba)?;
        let state = ZoneState::from_code(record.state).ok_or(Status::INVALID_FIELD)?;
        self.set_state(i, state);
        self.zones[i].wp = record.wp;
        Ok(())
    }

    /// Blocks per zone.
    pub fn zone_size(&self) -> u64 {
        self.zone_size
    }

    /// Writable blocks per zone.
    pub fn zone_cap(&self) -> u64 {
        self.zone_cap
    }

    /// The resource limits.
    pub fn limits(&self) -> ZoneLimits {
        self.limits
    }

    /// Number of zones.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// True if the namespace has no zones.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Zones in an opened state (ZNS 1.1 §2.1.1.4: each holds an open resource).
    pub fn open_count(&self) -> u32 {
        self.open
    }

    /// Zones in an opened or the Closed state (each holds an active resource).
    pub fn active_count(&self) -> u32 {
        self.active
    }

    /// The zone at `index`.
    pub fn zone(&self, index: usize) -> Option<&Zone> {
        self.zones.get(index)
    }

    /// Index of the zone holding `lba`, `None` past the last zone.
    pub fn index_of(&self, lba: u64) -> Option<usize> {
        zone_index(self.zone_size, self.zones.len(), lba)
    }

    /// Index of the zone starting at `zslba`: Invalid Field for an LBA inside a zone, LBA Out
    /// of Range past the last zone (NVMe ZNS 1.1 §4.3, §4.4.3).
    pub fn index_at_start(&self, zslba: u64) -> Result<usize, Status> {
        let i = self.index_of(zslba).ok_or(Status::LBA_OUT_OF_RANGE)?;
        if zslba.is_multiple_of(self.zone_size) {
            Ok(i)
        } else {
            Err(Status::INVALID_FIELD)
        }
    }

    /// The only place a zone's state changes: keeps the open and active counts and the
    /// implicit-open stamp in step with it.
    fn set_state(&mut self, i: usize, next: ZoneState) {
        let prev = self.zones[i].state;
        self.open = self.open + u32::from(next.is_open()) - u32::from(prev.is_open());
        self.active = self.active + u32::from(next.is_active()) - u32::from(prev.is_active());
        if next == ZoneState::ImplicitlyOpened && prev != ZoneState::ImplicitlyOpened {
            self.next_open_stamp += 1;
            self.zones[i].opened_at = self.next_open_stamp;
        }
        self.zones[i].state = next;
    }

    /// Resources for zone `i` to move from a state that is not opened to `next`, an opened
    /// state (NVMe ZNS 1.1 §2.1.1.4): an Empty zone needs a free active resource (else Too Many
    /// Active Zones); every such zone needs a free open resource. With none free, the
    /// Implicitly Opened zone opened longest ago is closed to free one; Explicitly Opened
    /// zones are never closed implicitly, so with none implicitly opened the command fails
    /// with Too Many Open Zones.
    fn enter_open(&mut self, i: usize, next: ZoneState) -> Result<(), Status> {
        let state = self.zones[i].state;
        if state.is_open() {
            self.set_state(i, next);
            return Ok(());
        }
        let max_active = self.limits.max_active;
        if !state.is_active() && max_active != 0 && self.active >= max_active {
            return Err(Status::TOO_MANY_ACTIVE_ZONES);
        }
        let max_open = self.limits.max_open;
        if max_open != 0 && self.open >= max_open {
            let victim = self
                .zones
                .iter()
                .enumerate()
                .filter(|(_, z)| z.state == ZoneState::ImplicitlyOpened)
                .min_by_key(|(_, z)| z.opened_at)
                .map(|(v, _)| v)
                .ok_or(Status::TOO_MANY_OPEN_ZONES)?;
            let closed = self.zones[victim].state.apply(ZoneEvent::Close)?;
            self.set_state(victim, closed);
        }
        self.set_state(i, next);
        Ok(())
    }

    /// A write of `blocks` blocks at `lba` (Write, Write Zeroes): returns the new write
    /// pointer. Checks, in order (NVMe ZNS 1.1 §2.1.1, §5.2): the zone's state (Zone Is Full,
    /// Read Only, Offline), `lba` at the write pointer (Zone Invalid Write), the write within
    /// the zone capacity (Zone Boundary Error), then the resources of the implicit open. A
    /// write that reaches the capacity passes through Implicitly Opened to Full, so it needs
    /// the same resources.
    pub fn write(&mut self, lba: u64, blocks: u64) -> Result<u64, Status> {
        let i = self.index_of(lba).ok_or(Status::LBA_OUT_OF_RANGE)?;
        let zone = self.zones[i];
        let opened = zone.state.apply(ZoneEvent::Write)?;
        if lba != zone.wp {
            return Err(Status::ZONE_INVALID_WRITE);
        }
        if blocks == 0 {
            return Err(Status::INVALID_FIELD);
        }
        let cap_end = zone.zslba + self.zone_cap;
        let new_wp = lba.checked_add(blocks).filter(|&end| end <= cap_end);
        let new_wp = new_wp.ok_or(Status::ZONE_BOUNDARY_ERROR)?;
        self.enter_open(i, opened)?;
        if new_wp == cap_end {
            let full = opened.apply(ZoneEvent::WriteFills)?;
            self.set_state(i, full);
        }
        self.zones[i].wp = new_wp;
        Ok(new_wp)
    }

    /// Zone Append of `blocks` blocks to the zone starting at `zslba` (NVMe ZNS 1.1 §4.3):
    /// the data goes at the write pointer, whose old value is returned; otherwise the rules
    /// of [`ZoneSet::write`]. The zone's state is checked first: a Full zone's write pointer
    /// is the end of its capacity, which with a capacity of the whole zone is the next
    /// zone's start (or past the namespace), where the write must not go.
    pub fn append(&mut self, zslba: u64, blocks: u64) -> Result<u64, Status> {
        let i = self.index_at_start(zslba)?;
        let zone = self.zones[i];
        zone.state.apply(ZoneEvent::Write)?;
        self.write(zone.wp, blocks)?;
        Ok(zone.wp)
    }

    /// A read of `blocks` blocks at `lba`: within one zone (OZCS bit 0, read across zone
    /// boundaries, is 0) and not of an Offline zone (NVMe ZNS 1.1 §5.1).
    pub fn check_read(&self, lba: u64, blocks: u64) -> Result<(), Status> {
        let i = read_zone(self.zone_size, self.zones.len(), lba, blocks)?;
        if self.zones[i].state == ZoneState::Offline {
            return Err(Status::ZONE_IS_OFFLINE);
        }
        Ok(())
    }

    /// One Zone Send Action on zone `i` (NVMe ZNS 1.1 §4.4.3.2): Open takes resources, Reset
    /// moves the write pointer to the zone start, Finish to the end of the capacity. Returns
    /// true if the zone was reset (its data now reads as zeroes).
    fn action(&mut self, i: usize, event: ZoneEvent) -> Result<bool, Status> {
        let next = self.zones[i].state.apply(event)?;
        if next.is_open() {
            self.enter_open(i, next)?;
        } else {
            self.set_state(i, next);
        }
        let z = &mut self.zones[i];
        match event {
            // §4.4.3.2.4 Reset Zone: the write pointer goes to the ZSLBA.
            ZoneEvent::Reset => z.wp = z.zslba,
            // §4.4.3.2.2 Finish Zone: the write pointer goes to the end of the capacity.
            ZoneEvent::Finish => z.wp = z.zslba + self.zone_cap,
            _ => {}
        }
        Ok(event == ZoneEvent::Reset)
    }

    /// Zone Management Send (NVMe ZNS 1.1 §4.4.3): `action` on the zone starting at `slba`,
    /// or with `select_all` on every zone whose state the action applies to (`slba` is then
    /// ignored). `on_reset` gets the start LBA of each zone that was reset, whose data the
    /// caller must zero. Actions apply in zone order; the first failure ends the command, and
    /// the zones before it keep their new state.
    pub fn send(
        &mut self,
        slba: u64,
        action: ZoneAction,
        select_all: bool,
        mut on_reset: impl FnMut(u64),
    ) -> Result<(), Status> {
        let event = action.event().ok_or(Status::INVALID_FIELD)?;
        if !select_all {
            let i = self.index_at_start(slba)?;
            if self.action(i, event)? {
                on_reset(self.zones[i].zslba);
            }
            return Ok(());
        }
        for i in 0..self.zones.len() {
            if action.select_all_applies(self.zones[i].state) && self.action(i, event)? {
                on_reset(self.zones[i].zslba);
            }
        }
        Ok(())
    }

    /// Controller reset: opened zones become Closed (NVMe ZNS 1.1 §2.1.1.3).
    pub fn close_all_open(&mut self) {
        for i in 0..self.zones.len() {
            let state = self.zones[i].state;
            if let (true, Ok(closed)) = (state.is_open(), state.apply(ZoneEvent::Close)) {
                self.set_state(i, closed);
            }
        }
    }

    /// A media event puts the zone starting at `zslba` into `state` without the state
    /// machine's checks (ZNS 1.1 §2.1.1: the controller alone moves zones to Read Only and
    /// Offline); the write pointer stays. Fails like [`ZoneSet::index_at_start`].
    pub fn force_state(&mut self, zslba: u64, state: ZoneState) -> Result<(), Status> {
        let i = self.index_at_start(zslba)?;
        self.set_state(i, state);
        Ok(())
    }

    /// Report Zones (NVMe ZNS 1.1 §4.4.4) into `out`, the host's buffer: the header, then the
    /// descriptors of the zones from the one holding `slba` onwards whose state `option`
    /// lists, as many as fit; the rest of `out` is zeroed. The header counts every matching
    /// zone, or with `partial` only those in `out`. Unknown options give Invalid Field, an
    /// `slba` past the last zone LBA Out of Range.
    pub fn report(
        &self,
        slba: u64,
        option: ReportOption,
        partial: bool,
        out: &mut [u8],
    ) -> Result<(), Status> {
        if option.matches(ZoneState::Empty).is_none() {
            return Err(Status::INVALID_FIELD);
        }
        let start = self.index_of(slba).ok_or(Status::LBA_OUT_OF_RANGE)?;
        out.fill(0);
        let fit = out.len().saturating_sub(64) / 64;
        let matching = || {
            self.zones[start..]
                .iter()
                .filter(|z| option.matches(z.state) == Some(true))
        };
        let all = matching().count();
        let nr = if partial { all.min(fit) } else { all };
        let header = ZoneReportHeader::new(nr as u64);
        let head = out.len().min(64);
        out[..head].copy_from_slice(&header.as_bytes()[..head]);
        for (z, slot) in matching().zip(out.get_mut(64..).unwrap_or_default().chunks_exact_mut(64))
        {
            // The write pointer is not valid in the Full, Read Only and Offline states (NVMe
            // ZNS 1.1 §4.4.4.1, Figure 52); all ones there, as QEMU's ZNS drive reports it.
            let wp = match z.state {
                ZoneState::Full | ZoneState::ReadOnly | ZoneState::Offline => u64::MAX,
                ZoneState::Empty
                | ZoneState::ImplicitlyOpened
                | ZoneState::ExplicitlyOpened
                | ZoneState::Closed => z.wp,
            };
            let d = ZoneDescriptor::new(z.state, self.zone_cap, z.zslba, wp);
            slot.copy_from_slice(d.as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
