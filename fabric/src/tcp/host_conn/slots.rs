//! The in-flight command table, indexed by CID.

use std::collections::VecDeque;

use super::Inflight;

/// Outstanding commands indexed by CID. Freed CIDs are reused oldest first, so CIDs stay
/// below the largest number of commands ever outstanding and lookups are an index.
#[derive(Debug, Default)]
pub(super) struct Slots {
    slots: Vec<Option<Inflight>>,
    free: VecDeque<u16>,
    used: usize,
}

impl Slots {
    pub(super) fn alloc(&mut self) -> Option<u16> {
        if let Some(cid) = self.free.pop_front() {
            return Some(cid);
        }
        let cid = u16::try_from(self.slots.len()).ok()?;
        self.slots.push(None);
        Some(cid)
    }

    /// Fill a CID [`Slots::alloc`] returned.
    pub(super) fn insert(&mut self, cid: u16, cmd: Inflight) {
        if let Some(slot) = self.slots.get_mut(usize::from(cid)) {
            if slot.replace(cmd).is_none() {
                self.used += 1;
            }
        }
    }

    pub(super) fn get(&self, cid: u16) -> Option<&Inflight> {
        self.slots.get(usize::from(cid)).and_then(Option::as_ref)
    }

    pub(super) fn get_mut(&mut self, cid: u16) -> Option<&mut Inflight> {
        self.slots
            .get_mut(usize::from(cid))
            .and_then(Option::as_mut)
    }

    pub(super) fn remove(&mut self, cid: u16) -> Option<Inflight> {
        let cmd = self.slots.get_mut(usize::from(cid))?.take()?;
        self.used -= 1;
        self.free.push_back(cid);
        Some(cmd)
    }

    pub(super) fn len(&self) -> usize {
        self.used
    }

    /// CIDs in use, ascending.
    pub(super) fn cids(&self) -> Vec<u16> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .map(|i| i as u16)
            .collect()
    }
}
