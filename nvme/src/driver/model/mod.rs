//! A software PCIe NVMe controller: BAR0 registers behind [`Mmio`], queues and data in a shared
//! "host memory" [`HeapDma`]. Commands run synchronously when an SQ tail doorbell is written;
//! completions held back by a full CQ are posted when a CQ head doorbell frees room.
//! Deterministic: no threads, no sleeping. Faults ([`Fault`]) make it misbehave on purpose.
//!
//! Behaviour where the spec leaves a choice:
//! - An invalid doorbell write (NVMe Base 2.0 §3.3.1.4: a tail/head beyond the queue, or a
//!   doorbell of a queue that does not exist) is ignored and recorded; see
//!   [`SoftController::doorbell_errors`]. No asynchronous event is posted.
//! - CC.EN 0 -> 1 with CC.CSS other than 000b/110b, CC.MPS other than 0 (4 KiB, the only page
//!   size, CAP.MPSMIN = CAP.MPSMAX = 0) or an invalid AQA leaves CSTS.RDY at 0.
//! - CC.SHN set to normal or abrupt completes the shutdown at once (CSTS.SHST = 10b).
//! - An SQ entry the controller cannot fetch (the SQ lies outside host memory) makes it fail
//!   as with [`Fault::Fatal`]. While Fatal or Removed, doorbell writes are dropped entirely.
//! - I/O queue creation needs CC.IOSQES = 6 and CC.IOCQES = 4 (else Invalid Field), PC = 1
//!   (CAP.CQR = 1) and a page-aligned base (else Invalid PRP Offset).
//! - Dataset Management deallocation zeroes conventional namespaces only; on a zoned
//!   namespace it changes nothing.
//! - Get Log Page serves the SMART / Health log only (controller-wide): its data units and
//!   host commands count the successful Reads, Writes and Zone Appends (whether or not they
//!   moved data, see [`SoftController::set_moves_data`]); the rest is [`ModelHealth`]. Other
//!   log pages are Invalid Log Page.

mod admin;
mod dma_walk;
mod health;
mod nvm;
mod queues;
mod regs;
mod storage;
mod zoned;

#[cfg(test)]
mod tests;

use ferrofab_sync::CountedLock as _;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::driver::dma::HeapDma;
use crate::driver::regs::Mmio;
use crate::zns::ZoneState;
use crate::Status;

pub use health::ModelHealth;

use health::IoCounters;
use queues::Queues;
use regs::Registers;
use storage::Namespace;

/// Configuration of a [`SoftController`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// CAP.MQES (0's based maximum queue entries).
    pub mqes: u16,
    /// CAP.DSTRD.
    pub dstrd: u8,
    /// CAP.TO, in 500 ms units.
    pub timeout_500ms: u8,
    /// CSTS reads after a CC.EN change before CSTS.RDY follows (0 = at once).
    pub ready_delay_reads: u32,
    /// Identify Controller MDTS (2^n minimum pages; 0 = no limit).
    pub mdts: u8,
    /// What Set Features Number of Queues grants (both SQs and CQs).
    pub max_io_queues: u16,
    /// Identify SGLS: SGL Data Block descriptors supported for NVM I/O.
    pub sgls: bool,
    /// Identify Controller (CSI 02h) ZASL.
    pub zasl: u8,
    /// Namespaces; NSID = index + 1.
    pub namespaces: Vec<NsModel>,
}

impl Default for ModelConfig {
    fn default() -> ModelConfig {
        ModelConfig {
            mqes: 1023,
            dstrd: 0,
            timeout_500ms: 2,
            ready_delay_reads: 0,
            mdts: 5,
            max_io_queues: 8,
            sgls: false,
            zasl: 0,
            namespaces: vec![NsModel {
                block_size: 4096,
                blocks: 1024,
                zoned: None,
            }],
        }
    }
}

/// One namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsModel {
    /// Logical block size: 512 or 4096.
    pub block_size: u32,
    /// Size in logical blocks.
    pub blocks: u64,
    /// `Some` for a zoned namespace (CSI 02h).
    pub zoned: Option<ZonedModel>,
}

/// Zone geometry and resources of a zoned namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZonedModel {
    /// Blocks per zone; the namespace size must be a multiple of it.
    pub zone_size: u64,
    /// Writable blocks per zone (<= zone_size).
    pub zone_cap: u64,
    /// Maximum open zones, 0 = no limit (Identify MOR is this - 1, FFFFFFFFh when no limit).
    pub max_open: u32,
    /// Maximum active zones, 0 = no limit (MAR).
    pub max_active: u32,
}

/// A misbehaviour to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next command with `opcode` on queue `qid` is fetched but never completed (a timeout).
    Drop { qid: u16, opcode: u8 },
    /// The next command with `opcode` on queue `qid` completes with `status`.
    Fail {
        qid: u16,
        opcode: u8,
        status: Status,
    },
    /// Abort commands complete successfully but abort nothing (Dword 0 bit 0 = 1).
    AbortIgnored,
    /// CSTS.RDY never becomes 1 after CC.EN = 1.
    NeverReady,
    /// Controller Fatal Status: CSTS.CFS = 1 from now on; no command is processed.
    Fatal,
    /// Surprise removal: every register read returns all ones, writes are ignored, nothing is
    /// processed.
    Removed,
}

/// A doorbell write the model ignored (NVMe Base 2.0 §3.3.1.4, "Invalid Doorbell Write").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoorbellError {
    /// SQ tail doorbell of a queue that does not exist, or a tail >= the queue size.
    SqTail { qid: u16, value: u32 },
    /// CQ head doorbell of a queue that does not exist, a head >= the queue size, or a head
    /// that frees entries the controller has not posted.
    CqHead { qid: u16, value: u32 },
}

/// A command fetched and held without completion (`Fault::Drop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    sqid: u16,
    cid: u16,
}

/// Everything behind the lock.
struct State {
    cfg: ModelConfig,
    host: Arc<HeapDma>,
    regs: Registers,
    queues: Queues,
    namespaces: Vec<Namespace>,
    faults: Vec<Fault>,
    held: Vec<Held>,
    resets: u32,
    /// The last [`EXECUTED_KEPT`] commands fetched: (qid, opcode).
    executed: VecDeque<(u16, u8)>,
    /// Most I/O commands one SQ tail doorbell write brought (commands queued together).
    largest_io_fetch: usize,
    doorbell_errors: Vec<DoorbellError>,
    /// Reads and writes move data between host memory and the media (see
    /// [`SoftController::set_moves_data`]).
    moves_data: bool,
    /// The SMART / Health values set from outside, and what the I/O added.
    health: ModelHealth,
    io_counters: IoCounters,
}

/// Commands [`SoftController::executed`] remembers.
pub const EXECUTED_KEPT: usize = 1 << 16;

/// The software controller. Clones share one controller.
#[derive(Clone)]
pub struct SoftController {
    inner: Arc<Mutex<State>>,
}

impl core::fmt::Debug for SoftController {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SoftController").finish_non_exhaustive()
    }
}

impl SoftController {
    /// A controller in reset (CC.EN = 0) over `host` memory.
    ///
    /// # Panics
    /// If a zoned namespace's size is not a multiple of its zone size, its zone capacity is 0
    /// or larger than the zone size, or a block size is neither 512 nor 4096.
    pub fn new(cfg: ModelConfig, host: Arc<HeapDma>) -> SoftController {
        let namespaces = cfg.namespaces.iter().map(Namespace::new).collect();
        let regs = Registers::new(&cfg);
        SoftController {
            inner: Arc::new(Mutex::new(State {
                cfg,
                host,
                regs,
                queues: Queues::default(),
                namespaces,
                faults: Vec::new(),
                held: Vec::new(),
                resets: 0,
                executed: VecDeque::new(),
                largest_io_fetch: 0,
                doorbell_errors: Vec::new(),
                moves_data: true,
                health: ModelHealth::default(),
                io_counters: IoCounters::default(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock_counted()
    }

    /// With `false`, Read and Write complete without touching host memory or the media (the
    /// data pointer is not walked, nothing is stored): a device whose DMA engine costs the host
    /// CPU nothing, for measuring the driver's and its caller's own cost per command. Every
    /// other rule (ranges, MDTS, zones) still applies.
    pub fn set_moves_data(&self, on: bool) {
        self.state().moves_data = on;
    }

    /// The SMART / Health values the I/O does not drive.
    pub fn health(&self) -> ModelHealth {
        self.state().health
    }

    /// Report `health` in the SMART / Health log from now on (a drive warming up, wearing
    /// out, raising critical warnings).
    pub fn set_health(&self, health: ModelHealth) {
        self.state().health = health;
    }

    /// Inject a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        let mut s = self.state();
        if fault == Fault::Fatal {
            s.regs.set_fatal();
        }
        s.faults.push(fault);
    }

    /// Remove every fault, including Fatal, Removed and NeverReady.
    pub fn clear_faults(&self) {
        let mut s = self.state();
        s.faults.clear();
        s.regs.clear_fatal();
    }

    /// CC.EN 1 -> 0 transitions seen.
    pub fn resets(&self) -> u32 {
        self.state().resets
    }

    /// (qid, opcode) of the commands fetched, in order: every one, or the last
    /// [`EXECUTED_KEPT`] (a model serving a benchmark runs millions).
    pub fn executed(&self) -> Vec<(u16, u8)> {
        self.state().executed.iter().copied().collect()
    }

    /// The most I/O commands that were on an SQ together when its tail doorbell was written,
    /// since the last call (which resets it).
    pub fn take_largest_io_fetch(&self) -> usize {
        std::mem::take(&mut self.state().largest_io_fetch)
    }

    /// Doorbell writes that were ignored as invalid, in order.
    pub fn doorbell_errors(&self) -> Vec<DoorbellError> {
        self.state().doorbell_errors.clone()
    }

    /// Backdoor read of `blocks` blocks at `lba` of namespace `nsid` (panics if out of range).
    pub fn read_blocks(&self, nsid: u32, lba: u64, blocks: u64) -> Vec<u8> {
        let s = self.state();
        let ns = &s.namespaces[nsid as usize - 1];
        ns.read(lba, blocks)
    }

    /// State and write pointer of the zone starting at `zslba`, if `nsid` is zoned and `zslba`
    /// is a zone start.
    pub fn zone(&self, nsid: u32, zslba: u64) -> Option<(ZoneState, u64)> {
        let s = self.state();
        let ns = s.namespaces.get((nsid as usize).checked_sub(1)?)?;
        let zones = ns.zones.as_ref()?;
        let z = zones.zone_at_start(zslba)?;
        Some((z.state(), z.wp()))
    }

    /// Backdoor: put the zone starting at `zslba` into `state` (ReadOnly and Offline come only
    /// from media events on a real device). False if there is no such zone.
    pub fn set_zone_state(&self, nsid: u32, zslba: u64, state: ZoneState) -> bool {
        let mut s = self.state();
        let Some(ns) = (nsid as usize)
            .checked_sub(1)
            .and_then(|i| s.namespaces.get_mut(i))
        else {
            return false;
        };
        ns.zones
            .as_mut()
            .is_some_and(|zones| zones.force_state(zslba, state))
    }

    /// Size of BAR0: registers plus a doorbell pair for the admin queue and every I/O queue.
    pub fn bar_len(&self) -> usize {
        let s = self.state();
        regs::bar_len(s.cfg.dstrd, s.cfg.max_io_queues)
    }
}

impl State {
    fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    fn removed(&self) -> bool {
        self.has(Fault::Removed)
    }

    /// Whether commands may be processed now.
    fn running(&self) -> bool {
        self.regs.ready() && !self.has(Fault::Fatal) && !self.removed()
    }
}

impl Mmio for SoftController {
    fn read32(&self, offset: usize) -> u32 {
        let mut s = self.state();
        if s.removed() {
            return u32::MAX;
        }
        let never_ready = s.has(Fault::NeverReady);
        s.regs.read32(offset, never_ready)
    }

    fn write32(&self, offset: usize, value: u32) {
        let mut s = self.state();
        if s.removed() {
            return;
        }
        s.write32(offset, value);
    }

    fn read64(&self, offset: usize) -> u64 {
        let mut s = self.state();
        if s.removed() {
            return u64::MAX;
        }
        let never_ready = s.has(Fault::NeverReady);
        let lo = s.regs.read32(offset, never_ready);
        let hi = s.regs.read32(offset + 4, never_ready);
        u64::from(lo) | (u64::from(hi) << 32)
    }

    fn write64(&self, offset: usize, value: u64) {
        let mut s = self.state();
        if s.removed() {
            return;
        }
        s.write32(offset, value as u32);
        s.write32(offset + 4, (value >> 32) as u32);
    }
}
