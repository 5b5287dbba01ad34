//! Submission/completion queue pair mechanics over DMA memory (NVMe Base 2.0 §3.3.1 memory-based
//! queue model, §4.6 completion queue entry and phase tag).
//!
//! The host produces SQEs at the SQ tail and consumes CQEs at the CQ head; the controller does the
//! opposite. Doorbell values are handed out once per batch ([`SubmissionQueue::pending_doorbell`],
//! [`CompletionQueue::pending_doorbell`]); writing them is the MMIO seam's job, after the release
//! fence described in [`super::dma`]. Nothing here panics on what the device writes: a bad CQE is
//! consumed and reported as a [`QueueError`].

use zerocopy::{FromZeros, IntoBytes};

use super::dma::{DmaError, DmaRegion};
use crate::{Cqe, Sqe};

/// Bytes per submission queue entry (NVMe Base 2.0 §4.2; CC.IOSQES = 6).
pub const SQE_SIZE: usize = 64;
/// Bytes per completion queue entry (NVMe Base 2.0 §4.6; CC.IOCQES = 4).
pub const CQE_SIZE: usize = 16;
/// Smallest queue: two entries, one of which always stays empty (NVMe Base 2.0 §3.3.1).
pub const MIN_ENTRIES: u32 = 2;
/// Largest queue: 64 Ki entries, the limit of the 0's based 16-bit queue size (NVMe Base 2.0 §3.3.1).
pub const MAX_ENTRIES: u32 = 65536;

/// Byte offset of the status field (phase tag in bit 0) inside a CQE (NVMe Base 2.0 §4.6, DW3 31:16).
const CQE_STATUS_OFFSET: usize = 14;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("queue size {0} outside {MIN_ENTRIES}..={MAX_ENTRIES} entries")]
    BadSize(u32),
    #[error("DMA region of {have} bytes is smaller than the {need} bytes the queue needs")]
    RegionTooSmall { need: usize, have: usize },
    /// The SQ has no free slot or every CID is in use.
    #[error("queue full")]
    Full,
    #[error("completion for CID {0}, which is not outstanding")]
    UnknownCid(u16),
    #[error("completion names SQ {got}, expected SQ {want}")]
    WrongSqid { got: u16, want: u16 },
    /// SQHD outside the queue or beyond the last tail the doorbell announced.
    #[error("completion reports SQ head {0}, outside the submitted range")]
    BadSqHead(u16),
    #[error(transparent)]
    Dma(#[from] DmaError),
}

fn check_geometry(entries: u32, entry_size: usize, have: usize) -> Result<(), QueueError> {
    if !(MIN_ENTRIES..=MAX_ENTRIES).contains(&entries) {
        return Err(QueueError::BadSize(entries));
    }
    let need = entries as usize * entry_size;
    if have < need {
        return Err(QueueError::RegionTooSmall { need, have });
    }
    Ok(())
}

/// Ring index arithmetic for a queue of `entries` (2..=65536) slots.
#[derive(Clone, Copy, Debug)]
struct Ring {
    entries: u32,
}

impl Ring {
    fn next(self, i: u16) -> u16 {
        ((u32::from(i) + 1) % self.entries) as u16
    }

    /// Slots from `from` forward to `to`.
    fn distance(self, from: u16, to: u16) -> u32 {
        (u32::from(to) + self.entries - u32::from(from)) % self.entries
    }
}

/// The host side of a submission queue of `entries * 64` bytes of DMA memory.
pub struct SubmissionQueue<M> {
    mem: M,
    ring: Ring,
    tail: u16,
    /// Last SQ head the controller reported (CQE SQHD).
    head: u16,
    /// Last tail handed out for the doorbell.
    rung: u16,
    /// Pushed since the last doorbell value was handed out.
    dirty: bool,
}

impl<M: DmaRegion> SubmissionQueue<M> {
    pub fn new(mem: M, entries: u32) -> Result<Self, QueueError> {
        check_geometry(entries, SQE_SIZE, mem.len())?;
        Ok(SubmissionQueue {
            mem,
            ring: Ring { entries },
            tail: 0,
            head: 0,
            rung: 0,
            dirty: false,
        })
    }

    pub fn entries(&self) -> u32 {
        self.ring.entries
    }

    /// Base address for Create I/O Submission Queue PRP1 or ASQ.
    pub fn iova(&self) -> u64 {
        self.mem.iova()
    }

    pub fn head(&self) -> u16 {
        self.head
    }

    pub fn tail(&self) -> u16 {
        self.tail
    }

    /// Full when advancing the tail would make it equal the head (NVMe Base 2.0 §3.3.1).
    pub fn is_full(&self) -> bool {
        self.ring.next(self.tail) == self.head
    }

    /// Empty when head equals tail (NVMe Base 2.0 §3.3.1).
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Slots that can be pushed before the queue is full.
    pub fn free_slots(&self) -> u32 {
        self.ring.entries - 1 - self.ring.distance(self.head, self.tail)
    }

    /// Write `sqe` at the tail and advance it; returns the slot written. The controller sees it
    /// only after the next doorbell.
    pub fn push(&mut self, sqe: &Sqe) -> Result<u16, QueueError> {
        if self.is_full() {
            return Err(QueueError::Full);
        }
        let slot = self.tail;
        self.mem
            .write_bytes(usize::from(slot) * SQE_SIZE, sqe.as_bytes())?;
        self.tail = self.ring.next(slot);
        self.dirty = true;
        Ok(slot)
    }

    /// The tail to write to the SQ tail doorbell, once per batch of pushes; `None` if the
    /// doorbell already holds the current tail.
    pub fn pending_doorbell(&mut self) -> Option<u16> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.rung = self.tail;
        Some(self.tail)
    }

    /// Record the SQ head reported in a CQE (NVMe Base 2.0 §4.6, SQHD). It may only move
    /// forward, and no further than the tail already announced by the doorbell.
    pub fn update_head(&mut self, sqhd: u16) -> Result<(), QueueError> {
        if u32::from(sqhd) >= self.ring.entries
            || self.ring.distance(self.head, sqhd) > self.ring.distance(self.head, self.rung)
        {
            return Err(QueueError::BadSqHead(sqhd));
        }
        self.head = sqhd;
        Ok(())
    }
}

/// The host side of a completion queue of `entries * 16` bytes of DMA memory, which must be
/// zeroed when the queue is created (so that no entry carries the initial phase tag 1).
pub struct CompletionQueue<M> {
    mem: M,
    ring: Ring,
    head: u16,
    /// Phase tag value that marks a new entry; starts at 1 and flips on every wrap
    /// (NVMe Base 2.0 §4.6, Phase Tag).
    phase: bool,
    /// Consumed since the last doorbell value was handed out (a whole lap may have passed if
    /// the device overran the queue, so the head alone cannot tell).
    dirty: bool,
}

impl<M: DmaRegion> CompletionQueue<M> {
    pub fn new(mem: M, entries: u32) -> Result<Self, QueueError> {
        check_geometry(entries, CQE_SIZE, mem.len())?;
        Ok(CompletionQueue {
            mem,
            ring: Ring { entries },
            head: 0,
            phase: true,
            dirty: false,
        })
    }

    pub fn entries(&self) -> u32 {
        self.ring.entries
    }

    /// Base address for Create I/O Completion Queue PRP1 or ACQ.
    pub fn iova(&self) -> u64 {
        self.mem.iova()
    }

    pub fn head(&self) -> u16 {
        self.head
    }

    /// The phase tag a new entry at the head must carry.
    pub fn phase(&self) -> bool {
        self.phase
    }

    /// Consume the entry at the head if the controller has posted it (its phase tag equals the
    /// expected phase). The status word is read first; the rest only after the tag matched.
    pub fn poll(&mut self) -> Result<Option<Cqe>, DmaError> {
        let off = usize::from(self.head) * CQE_SIZE;
        let status = self.mem.read_u16(off + CQE_STATUS_OFFSET)?;
        if (status & 1 == 1) != self.phase {
            return Ok(None);
        }
        let mut cqe = Cqe::new_zeroed();
        self.mem.read_bytes(off, cqe.as_mut_bytes())?;
        self.head = self.ring.next(self.head);
        self.dirty = true;
        if self.head == 0 {
            self.phase = !self.phase;
        }
        Ok(Some(cqe))
    }

    /// The head to write to the CQ head doorbell, once per batch of polls; `None` if nothing
    /// was consumed since the last one.
    pub fn pending_doorbell(&mut self) -> Option<u16> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some(self.head)
    }
}

/// A submission queue and its completion queue, with a command table that maps CIDs to the
/// caller's per-command context `T`. The CID is the index of the command's table slot.
pub struct QueuePair<M, T> {
    sqid: u16,
    sq: SubmissionQueue<M>,
    cq: CompletionQueue<M>,
    commands: Vec<Option<T>>,
    /// Free CIDs; popped from the end, so CID 0 is used first.
    free: Vec<u16>,
}

impl<M: DmaRegion, T> QueuePair<M, T> {
    /// A pair with queue ID `sqid` (0 for the admin queue) and `entries` slots in each queue.
    pub fn new(sqid: u16, sq_mem: M, cq_mem: M, entries: u32) -> Result<Self, QueueError> {
        let sq = SubmissionQueue::new(sq_mem, entries)?;
        let cq = CompletionQueue::new(cq_mem, entries)?;
        Ok(QueuePair {
            sqid,
            sq,
            cq,
            commands: (0..entries).map(|_| None).collect(),
            free: (0..entries).rev().map(|cid| cid as u16).collect(),
        })
    }

    pub fn sqid(&self) -> u16 {
        self.sqid
    }

    pub fn sq(&self) -> &SubmissionQueue<M> {
        &self.sq
    }

    pub fn cq(&self) -> &CompletionQueue<M> {
        &self.cq
    }

    /// Commands submitted and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.commands.len() - self.free.len()
    }

    /// Assign a CID to `sqe`, write it to the SQ and remember `ctx`; returns the CID. On failure
    /// (`Full`, or a DMA error) nothing changes and `ctx` is handed back.
    pub fn submit(&mut self, mut sqe: Sqe, ctx: T) -> Result<u16, (QueueError, T)> {
        if self.sq.is_full() {
            return Err((QueueError::Full, ctx));
        }
        let Some(cid) = self.free.pop() else {
            return Err((QueueError::Full, ctx));
        };
        sqe.cid.set(cid);
        if let Err(e) = self.sq.push(&sqe) {
            self.free.push(cid);
            return Err((e, ctx));
        }
        self.commands[usize::from(cid)] = Some(ctx);
        Ok(cid)
    }

    /// Take the next completion, if posted, and return it with its command's context. A CQE
    /// naming another SQ, a CID that is not outstanding, or an impossible SQHD is consumed and
    /// reported as an error without changing any command's state.
    pub fn poll(&mut self) -> Result<Option<(T, Cqe)>, QueueError> {
        let Some(cqe) = self.cq.poll()? else {
            return Ok(None);
        };
        let sqid = cqe.sqid.get();
        if sqid != self.sqid {
            return Err(QueueError::WrongSqid {
                got: sqid,
                want: self.sqid,
            });
        }
        let cid = cqe.cid();
        match self.commands.get(usize::from(cid)) {
            Some(Some(_)) => {}
            _ => return Err(QueueError::UnknownCid(cid)),
        }
        self.sq.update_head(cqe.sqhd.get())?;
        let ctx = self.commands[usize::from(cid)]
            .take()
            .ok_or(QueueError::UnknownCid(cid))?;
        self.free.push(cid);
        Ok(Some((ctx, cqe)))
    }

    /// Each outstanding command's CID and context, for deadline checks.
    pub fn outstanding_mut(&mut self) -> impl Iterator<Item = (u16, &mut T)> {
        self.commands
            .iter_mut()
            .enumerate()
            .filter_map(|(cid, slot)| slot.as_mut().map(|ctx| (cid as u16, ctx)))
    }

    /// Forget every outstanding command and hand back their contexts, for a controller reset
    /// after which the queue is deleted or recreated and no completion for them will come.
    pub fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        for (cid, slot) in self.commands.iter_mut().enumerate() {
            if let Some(ctx) = slot.take() {
                self.free.push(cid as u16);
                out.push(ctx);
            }
        }
        out
    }

    /// See [`SubmissionQueue::pending_doorbell`].
    pub fn sq_doorbell(&mut self) -> Option<u16> {
        self.sq.pending_doorbell()
    }

    /// See [`CompletionQueue::pending_doorbell`].
    pub fn cq_doorbell(&mut self) -> Option<u16> {
        self.cq.pending_doorbell()
    }
}

/// A queue pair of `entries` slots whose rings come from `pool` (zeroed, so the CQ starts
/// without valid phase tags).
pub fn alloc_queue_pair<M: DmaRegion, T>(
    pool: &super::pool::PagePool<M>,
    qid: u16,
    entries: u32,
) -> Result<QueuePair<super::pool::DmaBuf<M>, T>, QueueError> {
    let sq = pool.alloc(entries as usize * SQE_SIZE)?;
    let cq = pool.alloc(entries as usize * CQE_SIZE)?;
    QueuePair::new(qid, sq, cq, entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::dma::HeapDma;
    use crate::Status;
    use std::sync::Arc;

    /// A controller's view of one queue pair: it fetches SQEs between its head and the last SQ
    /// tail doorbell and posts CQEs at its CQ tail with the current phase tag.
    struct FakeDevice {
        sq: Arc<HeapDma>,
        cq: Arc<HeapDma>,
        ring: Ring,
        sqid: u16,
        sq_head: u16,
        sq_tail_db: u16,
        cq_tail: u16,
        cq_head_db: u16,
        phase: bool,
        sq_doorbells: usize,
        cq_doorbells: usize,
    }

    impl FakeDevice {
        fn ring_sq(&mut self, tail: u16) {
            assert!(u32::from(tail) < self.ring.entries);
            self.sq_tail_db = tail;
            self.sq_doorbells += 1;
        }

        fn ring_cq(&mut self, head: u16) {
            assert!(u32::from(head) < self.ring.entries);
            self.cq_head_db = head;
            self.cq_doorbells += 1;
        }

        /// Fetch every SQE the doorbell announced.
        fn fetch(&mut self) -> Vec<Sqe> {
            let mut out = Vec::new();
            while self.sq_head != self.sq_tail_db {
                let mut sqe = Sqe::new_zeroed();
                self.sq
                    .read_bytes(usize::from(self.sq_head) * SQE_SIZE, sqe.as_mut_bytes())
                    .unwrap();
                out.push(sqe);
                self.sq_head = self.ring.next(self.sq_head);
            }
            out
        }

        /// Post `cqe` with the current phase tag: everything but the status word first, then
        /// the status word, as a device's single DMA write would appear.
        fn post_raw(&mut self, mut cqe: Cqe) {
            assert_ne!(self.ring.next(self.cq_tail), self.cq_head_db, "CQ overflow");
            let status = (cqe.status.get() & !1) | u16::from(self.phase);
            cqe.status.set(status);
            let off = usize::from(self.cq_tail) * CQE_SIZE;
            let bytes = cqe.as_bytes();
            self.cq.write_bytes(off, &bytes[..14]).unwrap();
            self.cq.write_bytes(off + 14, &bytes[14..]).unwrap();
            self.cq_tail = self.ring.next(self.cq_tail);
            if self.cq_tail == 0 {
                self.phase = !self.phase;
            }
        }

        /// Complete `sqe` successfully, echoing its CDW10 in DW0.
        fn complete(&mut self, sqe: &Sqe) {
            let cqe = Cqe::new(
                sqe.cid(),
                self.sqid,
                self.sq_head,
                Status::SUCCESS,
                sqe.cdw10.get(),
                0,
            );
            self.post_raw(cqe);
        }
    }

    fn setup(entries: u32) -> (QueuePair<Arc<HeapDma>, u32>, FakeDevice) {
        let sq = Arc::new(HeapDma::new(entries as usize * SQE_SIZE, 0x10_0000));
        let cq = Arc::new(HeapDma::new(entries as usize * CQE_SIZE, 0x20_0000));
        let qp = QueuePair::new(1, Arc::clone(&sq), Arc::clone(&cq), entries).unwrap();
        let dev = FakeDevice {
            sq,
            cq,
            ring: Ring { entries },
            sqid: 1,
            sq_head: 0,
            sq_tail_db: 0,
            cq_tail: 0,
            cq_head_db: 0,
            phase: true,
            sq_doorbells: 0,
            cq_doorbells: 0,
        };
        (qp, dev)
    }

    fn cmd(tag: u32) -> Sqe {
        let mut sqe = Sqe {
            opcode: 0x02,
            ..Default::default()
        };
        sqe.cdw10.set(tag);
        sqe.cid.set(0xdead);
        sqe
    }

    /// Poll until empty; ring the CQ doorbell once if anything was consumed.
    fn drain(qp: &mut QueuePair<Arc<HeapDma>, u32>, dev: &mut FakeDevice) -> Vec<(u32, Cqe)> {
        let mut got = Vec::new();
        while let Some(c) = qp.poll().unwrap() {
            got.push(c);
        }
        if let Some(head) = qp.cq_doorbell() {
            dev.ring_cq(head);
        }
        assert_eq!(qp.cq_doorbell(), None);
        got
    }

    #[test]
    fn outstanding_contexts_are_listed_and_drained() {
        let (mut qp, mut dev) = setup(4);
        for tag in [10, 11, 12] {
            qp.submit(cmd(tag), tag).unwrap();
        }
        dev.ring_sq(qp.sq_doorbell().unwrap());
        let first = dev.fetch().remove(0);
        dev.complete(&first);
        assert_eq!(drain(&mut qp, &mut dev).len(), 1);
        for (_, ctx) in qp.outstanding_mut() {
            *ctx += 100;
        }
        let listed: Vec<(u16, u32)> = qp.outstanding_mut().map(|(c, t)| (c, *t)).collect();
        assert_eq!(listed, [(1, 111), (2, 112)]);
        assert_eq!(qp.drain(), [111, 112]);
        assert_eq!(qp.outstanding(), 0);
        assert_eq!(qp.outstanding_mut().count(), 0);
    }

    #[test]
    fn geometry_is_checked() {
        let m = HeapDma::new(65536 * SQE_SIZE, 0);
        assert_eq!(
            SubmissionQueue::new(&m, 1).err(),
            Some(QueueError::BadSize(1))
        );
        assert_eq!(
            SubmissionQueue::new(&m, 65537).err(),
            Some(QueueError::BadSize(65537))
        );
        assert!(SubmissionQueue::new(&m, 65536).is_ok());
        let small = HeapDma::new(63, 0);
        assert_eq!(
            CompletionQueue::new(&small, 4).err(),
            Some(QueueError::RegionTooSmall { need: 64, have: 63 })
        );
        assert!(QueuePair::<_, ()>::new(0, &m, &small, 3).is_ok());
        assert_eq!(
            QueuePair::<_, ()>::new(0, &m, &small, 4).err(),
            Some(QueueError::RegionTooSmall { need: 64, have: 63 })
        );
        assert_eq!(
            QueuePair::<_, ()>::new(0, &small, &m, 2).err(),
            Some(QueueError::RegionTooSmall {
                need: 128,
                have: 63
            })
        );
    }

    #[test]
    fn sq_push_writes_at_tail_until_full() {
        let m = HeapDma::new(4 * SQE_SIZE, 0);
        let mut sq = SubmissionQueue::new(&m, 4).unwrap();
        assert!(sq.is_empty());
        assert_eq!(sq.free_slots(), 3);
        for (i, tag) in [10u32, 11, 12].into_iter().enumerate() {
            assert_eq!(sq.push(&cmd(tag)).unwrap(), i as u16);
        }
        assert!(sq.is_full());
        assert_eq!(sq.free_slots(), 0);
        assert_eq!(sq.push(&cmd(13)), Err(QueueError::Full));
        assert_eq!(sq.tail(), 3);
        let mut raw = [0u8; SQE_SIZE];
        m.read_bytes(SQE_SIZE, &mut raw).unwrap();
        assert_eq!(&raw[..], cmd(11).as_bytes());
        // The slot the full queue keeps empty was not written.
        m.read_bytes(3 * SQE_SIZE, &mut raw).unwrap();
        assert_eq!(raw, [0u8; SQE_SIZE]);

        assert_eq!(sq.pending_doorbell(), Some(3));
        sq.update_head(2).unwrap();
        assert_eq!(sq.free_slots(), 2);
        assert_eq!(sq.push(&cmd(13)).unwrap(), 3);
        assert_eq!(sq.push(&cmd(14)).unwrap(), 0);
        assert!(sq.is_full());
        assert_eq!(sq.pending_doorbell(), Some(1));
        m.read_bytes(0, &mut raw).unwrap();
        assert_eq!(&raw[..], cmd(14).as_bytes());
    }

    #[test]
    fn sq_head_moves_only_within_the_announced_range() {
        let m = HeapDma::new(8 * SQE_SIZE, 0);
        let mut sq = SubmissionQueue::new(&m, 8).unwrap();
        for tag in 0..3 {
            sq.push(&cmd(tag)).unwrap();
        }
        // Pushed but not yet announced: the device cannot have consumed it.
        assert_eq!(sq.update_head(1), Err(QueueError::BadSqHead(1)));
        assert_eq!(sq.pending_doorbell(), Some(3));
        sq.update_head(0).unwrap();
        sq.update_head(2).unwrap();
        assert_eq!(sq.update_head(4), Err(QueueError::BadSqHead(4)));
        assert_eq!(sq.update_head(8), Err(QueueError::BadSqHead(8)));
        assert_eq!(
            sq.update_head(u16::MAX),
            Err(QueueError::BadSqHead(u16::MAX))
        );
        // Moving backwards looks like running past the tail and is refused.
        assert_eq!(sq.update_head(1), Err(QueueError::BadSqHead(1)));
        assert_eq!(sq.head(), 2);
        sq.update_head(3).unwrap();
        assert!(sq.is_empty());
    }

    #[test]
    fn doorbells_are_handed_out_once_per_batch() {
        let m = HeapDma::new(4 * SQE_SIZE, 0);
        let mut sq = SubmissionQueue::new(&m, 4).unwrap();
        assert_eq!(sq.pending_doorbell(), None);
        sq.push(&cmd(0)).unwrap();
        sq.push(&cmd(1)).unwrap();
        assert_eq!(sq.pending_doorbell(), Some(2));
        assert_eq!(sq.pending_doorbell(), None);
        sq.push(&cmd(2)).unwrap();
        assert_eq!(sq.pending_doorbell(), Some(3));
        assert_eq!(sq.pending_doorbell(), None);
    }

    #[test]
    fn cq_phase_tag_starts_at_one_and_flips_on_wrap() {
        let m = HeapDma::new(2 * CQE_SIZE, 0);
        let mut cq = CompletionQueue::new(&m, 2).unwrap();
        let post = |slot: usize, cid: u16, phase: u16| {
            let mut c = Cqe::new(cid, 0, 0, Status::SUCCESS, 0, 0);
            c.status.set(c.status.get() | phase);
            m.write_bytes(slot * CQE_SIZE, c.as_bytes()).unwrap();
        };
        assert!(cq.phase());
        assert_eq!(cq.poll().unwrap(), None, "zeroed memory has phase 0");
        assert_eq!(cq.pending_doorbell(), None);
        post(0, 7, 1);
        assert_eq!(cq.poll().unwrap().map(|c| c.cid()), Some(7));
        assert_eq!(cq.poll().unwrap(), None);
        post(1, 8, 1);
        assert_eq!(cq.poll().unwrap().map(|c| c.cid()), Some(8));
        assert_eq!(cq.head(), 0);
        assert!(!cq.phase());
        assert_eq!(cq.pending_doorbell(), Some(0));
        // Slot 0 still holds the previous lap's entry with phase 1.
        assert_eq!(cq.poll().unwrap(), None);
        post(0, 9, 0);
        let c = cq.poll().unwrap().unwrap();
        assert_eq!(c.cid(), 9);
        assert_eq!(c.status(), Status::SUCCESS);
        assert_eq!(cq.pending_doorbell(), Some(1));
        assert_eq!(cq.pending_doorbell(), None);
    }

    #[test]
    fn cq_returns_the_whole_entry() {
        let m = HeapDma::new(4 * CQE_SIZE, 0);
        let mut cq = CompletionQueue::new(&m, 4).unwrap();
        let mut c = Cqe::new(
            0x1234,
            5,
            3,
            Status::INVALID_FIELD.with_dnr(),
            0xaabb,
            0xccdd,
        );
        c.status.set(c.status.get() | 1);
        m.write_bytes(0, c.as_bytes()).unwrap();
        let got = cq.poll().unwrap().unwrap();
        assert_eq!(got, c);
        assert_eq!(got.status(), Status::INVALID_FIELD.with_dnr());
        assert_eq!(got.result64(), 0xccdd_0000_aabb);
    }

    /// Fill the queue, ring once, let the device complete everything in `order`, drain, ring
    /// once; repeat until the rings have wrapped several times.
    fn full_rounds(entries: u32, rounds: u32, reverse: bool) {
        let (mut qp, mut dev) = setup(entries);
        let mut next_tag = 0u32;
        for round in 0..rounds {
            let mut submitted = Vec::new();
            loop {
                match qp.submit(cmd(next_tag), next_tag) {
                    Ok(cid) => {
                        submitted.push((cid, next_tag));
                        next_tag += 1;
                    }
                    Err((e, ctx)) => {
                        assert_eq!(e, QueueError::Full);
                        assert_eq!(ctx, next_tag);
                        break;
                    }
                }
            }
            assert_eq!(submitted.len() as u32, entries - 1, "round {round}");
            dev.ring_sq(qp.sq_doorbell().unwrap());
            assert_eq!(qp.sq_doorbell(), None);
            let mut fetched = dev.fetch();
            assert_eq!(fetched.len(), submitted.len());
            for (sqe, (cid, tag)) in fetched.iter().zip(&submitted) {
                assert_eq!(sqe.cid(), *cid);
                assert_eq!(sqe.cdw10.get(), *tag);
            }
            if reverse {
                fetched.reverse();
            }
            for sqe in &fetched {
                dev.complete(sqe);
            }
            let got = drain(&mut qp, &mut dev);
            assert_eq!(got.len(), fetched.len());
            for ((tag, cqe), sqe) in got.iter().zip(&fetched) {
                assert_eq!(*tag, sqe.cdw10.get());
                assert_eq!(cqe.dw0.get(), *tag);
                assert_eq!(cqe.cid(), sqe.cid());
            }
            assert_eq!(qp.outstanding(), 0);
            assert!(qp.sq().is_empty());
            assert_eq!(qp.sq().head(), dev.sq_head);
            assert_eq!(qp.cq().head(), dev.cq_tail);
            assert_eq!(qp.cq().phase(), dev.phase);
        }
        assert_eq!(dev.sq_doorbells, rounds as usize);
        assert_eq!(dev.cq_doorbells, rounds as usize);
        assert_eq!(next_tag, rounds * (entries - 1));
    }

    #[test]
    fn size_two_wraps_many_times() {
        full_rounds(2, 9, false);
    }

    #[test]
    fn size_three_wraps_with_reversed_completions() {
        full_rounds(3, 10, true);
    }

    #[test]
    fn size_1024_wraps_several_times() {
        full_rounds(1024, 5, false);
        full_rounds(1024, 3, true);
    }

    #[test]
    fn out_of_order_completions_with_cid_reuse() {
        let (mut qp, mut dev) = setup(8);
        for tag in 0..5 {
            assert_eq!(qp.submit(cmd(tag), tag).unwrap(), tag as u16);
        }
        dev.ring_sq(qp.sq_doorbell().unwrap());
        let fetched = dev.fetch();
        for i in [3, 0, 4] {
            dev.complete(&fetched[i]);
        }
        let got: Vec<u32> = drain(&mut qp, &mut dev).into_iter().map(|c| c.0).collect();
        assert_eq!(got, [3, 0, 4]);
        assert_eq!(qp.outstanding(), 2);
        // Freed CIDs are reused, most recently freed first.
        assert_eq!(qp.submit(cmd(100), 100).unwrap(), 4);
        assert_eq!(qp.submit(cmd(101), 101).unwrap(), 0);
        dev.ring_sq(qp.sq_doorbell().unwrap());
        let more = dev.fetch();
        assert_eq!(more.len(), 2);
        for sqe in [&more[1], &fetched[2], &more[0], &fetched[1]] {
            dev.complete(sqe);
        }
        let got: Vec<(u32, u16)> = drain(&mut qp, &mut dev)
            .into_iter()
            .map(|(t, c)| (t, c.cid()))
            .collect();
        assert_eq!(got, [(101, 0), (2, 2), (100, 4), (1, 1)]);
        assert_eq!(qp.outstanding(), 0);
    }

    #[test]
    fn sq_stays_full_until_a_completion_reports_the_head() {
        let (mut qp, mut dev) = setup(4);
        for tag in 0..3 {
            qp.submit(cmd(tag), tag).unwrap();
        }
        assert_eq!(qp.submit(cmd(3), 3), Err((QueueError::Full, 3)));
        dev.ring_sq(qp.sq_doorbell().unwrap());
        let fetched = dev.fetch();
        // The device consumed the SQ, but the host learns that only from SQHD.
        assert!(qp.sq().is_full());
        assert_eq!(qp.submit(cmd(3), 3), Err((QueueError::Full, 3)));
        dev.complete(&fetched[1]);
        assert_eq!(qp.poll().unwrap().map(|c| c.0), Some(1));
        assert!(qp.sq().is_empty());
        // Now the command table is the limit: 2 outstanding + 2 new = 4 CIDs of 4.
        qp.submit(cmd(3), 3).unwrap();
        qp.submit(cmd(4), 4).unwrap();
        assert_eq!(qp.outstanding(), 4);
        assert_eq!(qp.sq().free_slots(), 1);
        assert_eq!(qp.submit(cmd(5), 5), Err((QueueError::Full, 5)));
        assert_eq!(qp.sq().tail(), 1, "a refused submit writes nothing");
    }

    #[test]
    fn bogus_completions_are_errors_and_consumed() {
        let (mut qp, mut dev) = setup(8);
        for tag in 0..2 {
            qp.submit(cmd(tag), tag).unwrap();
        }
        dev.ring_sq(qp.sq_doorbell().unwrap());
        let fetched = dev.fetch();
        let sqhd = dev.sq_head;
        // A CID never submitted, one beyond the table, another SQ's entry, an impossible head.
        dev.post_raw(Cqe::new(5, 1, sqhd, Status::SUCCESS, 0, 0));
        dev.post_raw(Cqe::new(0xffff, 1, sqhd, Status::SUCCESS, 0, 0));
        dev.post_raw(Cqe::new(0, 2, sqhd, Status::SUCCESS, 0, 0));
        dev.post_raw(Cqe::new(0, 1, 5, Status::SUCCESS, 0, 0));
        dev.complete(&fetched[0]);
        dev.complete(&fetched[0]);
        assert_eq!(qp.poll(), Err(QueueError::UnknownCid(5)));
        assert_eq!(qp.poll(), Err(QueueError::UnknownCid(0xffff)));
        assert_eq!(qp.poll(), Err(QueueError::WrongSqid { got: 2, want: 1 }));
        assert_eq!(qp.poll(), Err(QueueError::BadSqHead(5)));
        assert_eq!(qp.outstanding(), 2, "bad CQEs complete nothing");
        assert_eq!(qp.sq().head(), 0);
        assert_eq!(qp.poll().unwrap().map(|c| c.0), Some(0));
        // The duplicate completion of CID 0 names a CID that is free again.
        assert_eq!(qp.poll(), Err(QueueError::UnknownCid(0)));
        assert_eq!(qp.poll(), Ok(None));
        assert_eq!(qp.cq_doorbell(), Some(6));
        dev.complete(&fetched[1]);
        assert_eq!(qp.poll().unwrap().map(|c| c.0), Some(1));
        assert_eq!(qp.outstanding(), 0);
    }

    #[test]
    fn error_status_is_delivered_with_its_context() {
        let (mut qp, mut dev) = setup(2);
        qp.submit(cmd(9), 9).unwrap();
        dev.ring_sq(qp.sq_doorbell().unwrap());
        let sqe = dev.fetch().remove(0);
        let status = Status::INVALID_FIELD.with_dnr();
        dev.post_raw(Cqe::new(sqe.cid(), 1, dev.sq_head, status, 0, 0));
        let (ctx, cqe) = qp.poll().unwrap().unwrap();
        assert_eq!(ctx, 9);
        assert_eq!(cqe.status(), status);
    }
}
