//! The PCIe controller register map in BAR0 (NVMe Base 2.0 §3.1.4), the [`Mmio`] seam a driver
//! reads and writes it through, a [`FakeMmio`] test double, and value helpers (AQA, doorbells).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use crate::properties::Cap;

pub use crate::properties::{CAP, CC, CSTS, NSSR, VS};

/// Interrupt Mask Set, 4 bytes (NVMe Base 2.0 §3.1.4.3).
pub const INTMS: u32 = 0x0c;
/// Interrupt Mask Clear, 4 bytes (NVMe Base 2.0 §3.1.4.4).
pub const INTMC: u32 = 0x10;
/// Admin Queue Attributes, 4 bytes (NVMe Base 2.0 §3.1.4.8).
pub const AQA: u32 = 0x24;
/// Admin Submission Queue Base Address, 8 bytes (NVMe Base 2.0 §3.1.4.9).
pub const ASQ: u32 = 0x28;
/// Admin Completion Queue Base Address, 8 bytes (NVMe Base 2.0 §3.1.4.10).
pub const ACQ: u32 = 0x30;
/// First doorbell: Submission Queue 0 (admin) Tail (NVMe Base 2.0 §3.1.4.21).
pub const DOORBELL_BASE: u32 = 0x1000;

/// Smallest admin queue, in entries (NVMe Base 2.0 §3.1.4.8: ASQS/ACQS minimum is 2 entries).
pub const ADMIN_QUEUE_MIN_ENTRIES: u32 = 2;
/// Largest admin queue, in entries (12-bit 0's based ASQS/ACQS fields: 4096 entries).
pub const ADMIN_QUEUE_MAX_ENTRIES: u32 = 4096;

/// Access to a mapped BAR0. Offsets are byte offsets into the BAR; 32-bit accesses are
/// dword-aligned and 64-bit accesses qword-aligned. The real implementation does volatile
/// accesses on the mapping; [`FakeMmio`] stands in for it in tests.
pub trait Mmio {
    fn read32(&self, offset: usize) -> u32;
    fn write32(&self, offset: usize, value: u32);
    fn read64(&self, offset: usize) -> u64;
    fn write64(&self, offset: usize, value: u64);
}

impl<T: Mmio + ?Sized> Mmio for &T {
    fn read32(&self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
    fn read64(&self, offset: usize) -> u64 {
        (**self).read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        (**self).write64(offset, value)
    }
}

/// One write seen by [`FakeMmio`], in program order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioWrite {
    W32 { offset: usize, value: u32 },
    W64 { offset: usize, value: u64 },
}

/// A safe BAR0 double: registers are plain values (unset ones read as 0), writes are recorded
/// in order and stored, and reads of an offset can be scripted to return a sequence of values
/// (e.g. CSTS.RDY turning on after a few polls) before falling back to the stored value.
/// Out-of-range or misaligned accesses panic: they are driver bugs.
#[derive(Debug)]
pub struct FakeMmio {
    len: usize,
    state: RefCell<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    regs: HashMap<usize, u64>,
    scripted32: HashMap<usize, VecDeque<u32>>,
    scripted64: HashMap<usize, VecDeque<u64>>,
    writes: Vec<MmioWrite>,
}

impl FakeMmio {
    /// A BAR of `len` bytes with every register 0.
    pub fn new(len: usize) -> FakeMmio {
        FakeMmio {
            len,
            state: RefCell::new(FakeState::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets a 32-bit register's stored value without recording a write.
    pub fn set32(&self, offset: usize, value: u32) {
        self.check(offset, 4);
        self.state.borrow_mut().regs.insert(offset, value as u64);
    }

    /// Sets a 64-bit register's stored value without recording a write.
    pub fn set64(&self, offset: usize, value: u64) {
        self.check(offset, 8);
        self.state.borrow_mut().regs.insert(offset, value);
    }

    /// Queues values that the next `read32(offset)` calls return, one per read.
    pub fn script32(&self, offset: usize, values: impl IntoIterator<Item = u32>) {
        self.check(offset, 4);
        let mut s = self.state.borrow_mut();
        s.scripted32.entry(offset).or_default().extend(values);
    }

    /// Queues values that the next `read64(offset)` calls return, one per read.
    pub fn script64(&self, offset: usize, values: impl IntoIterator<Item = u64>) {
        self.check(offset, 8);
        let mut s = self.state.borrow_mut();
        s.scripted64.entry(offset).or_default().extend(values);
    }

    /// The stored value at `offset` (the last write or `set`), ignoring scripts.
    pub fn value(&self, offset: usize) -> u64 {
        self.state.borrow().regs.get(&offset).copied().unwrap_or(0)
    }

    /// Every write so far, in order.
    pub fn writes(&self) -> Vec<MmioWrite> {
        self.state.borrow().writes.clone()
    }

    /// Returns the writes so far and forgets them.
    pub fn take_writes(&self) -> Vec<MmioWrite> {
        std::mem::take(&mut self.state.borrow_mut().writes)
    }

    fn check(&self, offset: usize, size: usize) {
        assert!(
            offset.is_multiple_of(size),
            "misaligned {size}-byte MMIO access at {offset:#x}"
        );
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len),
            "{size}-byte MMIO access at {offset:#x} beyond BAR of {:#x} bytes",
            self.len
        );
    }
}

impl Mmio for FakeMmio {
    fn read32(&self, offset: usize) -> u32 {
        self.check(offset, 4);
        let mut s = self.state.borrow_mut();
        if let Some(v) = s.scripted32.get_mut(&offset).and_then(VecDeque::pop_front) {
            return v;
        }
        s.regs.get(&offset).copied().unwrap_or(0) as u32
    }

    fn write32(&self, offset: usize, value: u32) {
        self.check(offset, 4);
        let mut s = self.state.borrow_mut();
        s.regs.insert(offset, value as u64);
        s.writes.push(MmioWrite::W32 { offset, value });
    }

    fn read64(&self, offset: usize) -> u64 {
        self.check(offset, 8);
        let mut s = self.state.borrow_mut();
        if let Some(v) = s.scripted64.get_mut(&offset).and_then(VecDeque::pop_front) {
            return v;
        }
        s.regs.get(&offset).copied().unwrap_or(0)
    }

    fn write64(&self, offset: usize, value: u64) {
        self.check(offset, 8);
        let mut s = self.state.borrow_mut();
        s.regs.insert(offset, value);
        s.writes.push(MmioWrite::W64 { offset, value });
    }
}

/// Register value errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegsError {
    #[error("admin queue of {0} entries outside 2..=4096")]
    AdminQueueSize(u32),
    #[error("doorbell for queue {qid} at {offset:#x} lies beyond the BAR ({bar_len:#x} bytes)")]
    DoorbellBeyondBar {
        qid: u16,
        offset: u64,
        bar_len: usize,
    },
}

/// The AQA value for admin queues of the given sizes in entries: ASQS in bits 11:0 and ACQS in
/// bits 27:16, both 0's based (NVMe Base 2.0 §3.1.4.8).
pub fn aqa(asq_entries: u32, acq_entries: u32) -> Result<u32, RegsError> {
    let field = |entries: u32| {
        if (ADMIN_QUEUE_MIN_ENTRIES..=ADMIN_QUEUE_MAX_ENTRIES).contains(&entries) {
            Ok(entries - 1)
        } else {
            Err(RegsError::AdminQueueSize(entries))
        }
    };
    Ok(field(asq_entries)? | (field(acq_entries)? << 16))
}

/// Doorbell offsets in a BAR of known size (NVMe Base 2.0 §3.1.4.21-22): queue `y`'s SQ tail
/// doorbell is at `0x1000 + 2y * stride`, its CQ head doorbell at `0x1000 + (2y + 1) * stride`,
/// with `stride = 4 << CAP.DSTRD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoorbellLayout {
    /// Bytes between consecutive doorbells.
    pub stride: u32,
    /// Size of the mapped BAR0, bounding every doorbell.
    pub bar_len: usize,
}

impl DoorbellLayout {
    pub fn new(cap: Cap, bar_len: usize) -> DoorbellLayout {
        DoorbellLayout {
            stride: cap.doorbell_stride(),
            bar_len,
        }
    }

    /// Offset of Submission Queue `qid`'s Tail Doorbell.
    pub fn sq_tail(&self, qid: u16) -> Result<usize, RegsError> {
        self.doorbell(qid, 2 * qid as u64)
    }

    /// Offset of Completion Queue `qid`'s Head Doorbell.
    pub fn cq_head(&self, qid: u16) -> Result<usize, RegsError> {
        self.doorbell(qid, 2 * qid as u64 + 1)
    }

    /// The largest queue id whose two doorbells both fit in the BAR, or `None` if not even the
    /// admin queue's do.
    pub fn max_qid(&self) -> Option<u16> {
        let room = (self.bar_len as u64).checked_sub(DOORBELL_BASE as u64 + 4)?;
        // CQ head of queue y ends at 0x1000 + (2y + 1) * stride + 4 <= bar_len.
        let slots = room / self.stride as u64; // largest index 2y + 1 that fits
        let y = slots.checked_sub(1)? / 2;
        Some(y.min(u16::MAX as u64) as u16)
    }

    fn doorbell(&self, qid: u16, index: u64) -> Result<usize, RegsError> {
        let offset = DOORBELL_BASE as u64 + index * self.stride as u64;
        if offset + 4 <= self.bar_len as u64 {
            Ok(offset as usize)
        } else {
            Err(RegsError::DoorbellBeyondBar {
                qid,
                offset,
                bar_len: self.bar_len,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_linux() {
        // Linux enum nvme_regs: INTMS 0x0c, INTMC 0x10, AQA 0x24, ASQ 0x28, ACQ 0x30, and
        // NVME_REG_DBS 0x1000.
        assert_eq!(
            [
                CAP,
                VS,
                INTMS,
                INTMC,
                CC,
                CSTS,
                NSSR,
                AQA,
                ASQ,
                ACQ,
                DOORBELL_BASE
            ],
            [0x00, 0x08, 0x0c, 0x10, 0x14, 0x1c, 0x20, 0x24, 0x28, 0x30, 0x1000]
        );
    }

    #[test]
    fn aqa_values() {
        // Linux writes aqa = depth - 1 | (depth - 1) << 16; depth 32 -> 0x001f001f.
        assert_eq!(aqa(32, 32), Ok(0x001f_001f));
        assert_eq!(aqa(2, 2), Ok(0x0001_0001));
        assert_eq!(aqa(4096, 4096), Ok(0x0fff_0fff));
        assert_eq!(aqa(64, 2), Ok(0x0001_003f));
        assert_eq!(aqa(2, 64), Ok(0x003f_0001));
        for bad in [0, 1, 4097, u32::MAX] {
            assert_eq!(aqa(bad, 32), Err(RegsError::AdminQueueSize(bad)));
            assert_eq!(aqa(32, bad), Err(RegsError::AdminQueueSize(bad)));
        }
    }

    #[test]
    fn doorbells_default_stride() {
        let db = DoorbellLayout::new(Cap(0), 0x4000);
        assert_eq!(db.stride, 4);
        assert_eq!(db.sq_tail(0), Ok(0x1000));
        assert_eq!(db.cq_head(0), Ok(0x1004));
        assert_eq!(db.sq_tail(1), Ok(0x1008));
        assert_eq!(db.cq_head(1), Ok(0x100c));
        assert_eq!(db.sq_tail(5), Ok(0x1028));
        // 0x3000 bytes of doorbells / 8 per queue = 1536 queues: qid 1535 is the last.
        assert_eq!(db.cq_head(1535), Ok(0x3ffc));
        assert_eq!(db.max_qid(), Some(1535));
        assert_eq!(
            db.sq_tail(1536),
            Err(RegsError::DoorbellBeyondBar {
                qid: 1536,
                offset: 0x4000,
                bar_len: 0x4000
            })
        );
    }

    #[test]
    fn doorbells_wide_stride() {
        // DSTRD 2 -> 16-byte stride.
        let db = DoorbellLayout::new(Cap(0).with_dstrd(2), 0x2000);
        assert_eq!(db.stride, 16);
        assert_eq!(db.sq_tail(3), Ok(0x1060));
        assert_eq!(db.cq_head(3), Ok(0x1070));
        // 0x1000 / 32 per queue = 128 queues.
        assert_eq!(db.max_qid(), Some(127));
        assert_eq!(db.cq_head(127), Ok(0x1ff0));
        assert!(db.sq_tail(128).is_err());
        // Largest stride with the largest qid does not overflow.
        let db = DoorbellLayout::new(Cap(0).with_dstrd(0xf), usize::MAX);
        assert_eq!(
            db.cq_head(u16::MAX),
            Ok(0x1000 + (2 * 65535 + 1) * (4usize << 15))
        );
        assert_eq!(db.max_qid(), Some(u16::MAX));
    }

    #[test]
    fn doorbells_tiny_bar() {
        assert_eq!(DoorbellLayout::new(Cap(0), 0x1000).max_qid(), None);
        assert_eq!(DoorbellLayout::new(Cap(0), 0x1007).max_qid(), None);
        let db = DoorbellLayout::new(Cap(0), 0x1008);
        assert_eq!(db.max_qid(), Some(0));
        assert_eq!(db.cq_head(0), Ok(0x1004));
        assert!(DoorbellLayout::new(Cap(0), 0x1004).sq_tail(0).is_ok());
        assert!(DoorbellLayout::new(Cap(0), 0x1004).cq_head(0).is_err());
    }

    #[test]
    fn fake_records_and_scripts() {
        let bar = FakeMmio::new(0x2000);
        bar.set64(CAP as usize, 0x0000_0020_0f01_007f);
        assert_eq!(Cap(bar.read64(CAP as usize)).mqes(), 127);
        // Unset registers read 0; scripted reads come first, then the stored value.
        assert_eq!(bar.read32(CSTS as usize), 0);
        bar.script32(CSTS as usize, [0, 0, 1]);
        let polls: Vec<u32> = (0..5).map(|_| bar.read32(CSTS as usize)).collect();
        assert_eq!(polls, [0, 0, 1, 0, 0]);
        bar.script64(ASQ as usize, [7]);
        assert_eq!(bar.read64(ASQ as usize), 7);
        assert_eq!(bar.read64(ASQ as usize), 0);

        // Through the trait object, as a driver would hold it.
        let mmio: &dyn Mmio = &bar;
        mmio.write32(AQA as usize, 0x001f_001f);
        mmio.write64(ASQ as usize, 0x1_0000);
        mmio.write64(ACQ as usize, 0x2_0000);
        mmio.write32(CC as usize, 0x0046_0001);
        assert_eq!(
            bar.writes(),
            [
                MmioWrite::W32 {
                    offset: 0x24,
                    value: 0x001f_001f
                },
                MmioWrite::W64 {
                    offset: 0x28,
                    value: 0x1_0000
                },
                MmioWrite::W64 {
                    offset: 0x30,
                    value: 0x2_0000
                },
                MmioWrite::W32 {
                    offset: 0x14,
                    value: 0x0046_0001
                },
            ]
        );
        assert_eq!(bar.value(CC as usize), 0x0046_0001);
        assert_eq!(bar.read32(CC as usize), 0x0046_0001);
        assert_eq!(bar.read64(ACQ as usize), 0x2_0000);
        assert_eq!(bar.take_writes().len(), 4);
        assert!(bar.writes().is_empty());
        assert_eq!(bar.len(), 0x2000);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn fake_rejects_misaligned() {
        FakeMmio::new(0x2000).read64(0x24);
    }

    #[test]
    #[should_panic(expected = "beyond BAR")]
    fn fake_rejects_out_of_range() {
        FakeMmio::new(0x1000).write32(0x1000, 1);
    }
}
