//! The Error Information log (NVMe Base 2.0 §5.16.1.2): a ring of the most recent failed
//! commands, newest first.

use std::collections::VecDeque;

use nvme::{Sqe, Status};

/// Entries kept (Identify Controller ELPE is this minus one).
pub const ERROR_LOG_ENTRIES: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorRecord {
    pub error_count: u64,
    pub sqid: u16,
    pub cid: u16,
    pub status: Status,
    pub lba: u64,
    pub nsid: u32,
}

#[derive(Default)]
pub struct ErrorLog {
    count: u64,
    entries: VecDeque<ErrorRecord>,
}

impl ErrorLog {
    pub fn record(&mut self, sqid: u16, sqe: &Sqe, status: Status) {
        self.count += 1;
        if self.entries.len() == ERROR_LOG_ENTRIES {
            self.entries.pop_back();
        }
        let is_io = sqid != 0;
        self.entries.push_front(ErrorRecord {
            error_count: self.count,
            sqid,
            cid: sqe.cid(),
            status,
            lba: if is_io { sqe.slba() } else { 0 },
            nsid: sqe.nsid(),
        });
    }

    /// Newest first.
    pub fn entries(&self) -> impl Iterator<Item = &ErrorRecord> {
        self.entries.iter()
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_newest_first_and_counts_everything() {
        let mut log = ErrorLog::default();
        for cid in 0..20u16 {
            let mut sqe = Sqe::default();
            sqe.cid.set(cid);
            log.record(1, &sqe, Status::LBA_OUT_OF_RANGE);
        }
        assert_eq!(log.count(), 20);
        let cids: Vec<u16> = log.entries().map(|e| e.cid).collect();
        assert_eq!(cids.len(), ERROR_LOG_ENTRIES);
        assert_eq!(cids[0], 19);
        assert_eq!(log.entries().next().unwrap().error_count, 20);
    }
}
