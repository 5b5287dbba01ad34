//! I/O queues: NVM command set commands (NVM Command Set 1.0 §3) against a subsystem's
//! namespaces, and the zone commands of zoned ones (`zones`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use fabric::queue::{Completion, DataBuf, Lent, QueueHandler, Request, Response};

use crate::auth::QueueAuth;
use nvme::command::{
    DatasetManagement, DsmRange, FabricsCommand, IoCommand, ReadWrite, WriteZeroes,
};
use nvme::opcode::IoOpcode;
use nvme::{Sgl, Sqe, Status};
use tokio_util::sync::CancellationToken;

use crate::controller::{run_backend, Controller, IoCounters};
use crate::metrics::IoOp;
use crate::namespace::Namespace;
use crate::status_map::{backend_status, Op};
use crate::subsystem::{NamespaceMap, Subsystem};

mod polled;
mod zones;

use polled::PolledIo;

const NSID_ALL: u32 = 0xffff_ffff;

/// One I/O queue. It lives on one reactor thread; its per-command path takes no lock and
/// touches no cache line another queue writes: namespaces come from a snapshot refreshed
/// only when the subsystem's namespace generation moves, and counters are the queue's own.
pub struct IoQueue {
    ctrl: Arc<Controller>,
    subsystem: Arc<Subsystem>,
    qid: u16,
    counters: Arc<IoCounters>,
    ns_generation: u64,
    namespaces: Arc<NamespaceMap>,
    /// Drive reads and writes in flight through the backends' polled interface.
    polled: PolledIo,
    /// In-band authentication when the host has a key (kept after success: the host may
    /// re-authenticate the queue).
    auth: Option<Box<QueueAuth>>,
}

impl IoQueue {
    pub fn new(
        ctrl: Arc<Controller>,
        subsystem: Arc<Subsystem>,
        qid: u16,
        auth: Option<Box<QueueAuth>>,
    ) -> IoQueue {
        let (ns_generation, namespaces) = subsystem.namespace_snapshot();
        IoQueue {
            counters: ctrl.queue_counters(qid),
            ctrl,
            subsystem,
            qid,
            ns_generation,
            namespaces,
            polled: PolledIo::new(),
            auth,
        }
    }

    fn execute(&mut self, req: Request, probe: Probe) -> Completion {
        if let Some(auth) = self.auth.as_mut() {
            if let Some(r) = auth.gate(&req) {
                return Completion::Ready(r);
            }
        }
        let sqe = &req.sqe;
        if sqe.is_fabrics() {
            return Completion::Ready(self.fabrics(&req));
        }
        // NVMe Base 2.0 §3.5.1: commands other than Fabrics need CC.EN = 1 and CSTS.RDY = 1.
        if !self.ctrl.is_ready() {
            return fail(Status::COMMAND_SEQUENCE_ERROR.with_dnr());
        }
        // Fused operations are not supported (Identify Controller FUSES = 0).
        if sqe.fuse() != 0 {
            return fail(Status::INVALID_FIELD.with_dnr());
        }
        let cmd = match IoCommand::decode(sqe) {
            Ok(c) => c,
            Err(e) => return fail(e.status()),
        };
        let sgl_len = Sgl::parse(&sqe.dptr).length();
        let mut req = req;
        if let Some(lent) = req.h2c_lent.take() {
            match cmd {
                IoCommand::Write(rw) => return self.write_lent(rw, lent, (req.sqe, probe)),
                // Only writes are lent memory (`lend_h2c`); anything else takes a copy.
                _ => req.h2c_buf = Some(copy_of(&lent)),
            }
        }
        match cmd {
            IoCommand::Read(rw) => self.read(rw, sgl_len, req.c2h_buf, (req.sqe, probe)),
            IoCommand::Write(rw) => {
                self.write(rw, HostData::of(req.data, req.h2c_buf), (req.sqe, probe))
            }
            IoCommand::Compare(rw) => self.compare(rw, HostData::of(req.data, req.h2c_buf)),
            IoCommand::Flush { nsid } => self.flush(nsid),
            IoCommand::WriteZeroes(wz) => self.write_zeroes(wz),
            IoCommand::DatasetManagement(dsm) => {
                self.dataset_management(dsm, HostData::of(req.data, req.h2c_buf))
            }
            IoCommand::ZoneManagementSend(zs) => self.zone_send(zs),
            IoCommand::ZoneManagementReceive(zr) => self.zone_receive(zr, sgl_len, req.c2h_buf),
            IoCommand::ZoneAppend(rw) => self.zone_append(rw, HostData::of(req.data, req.h2c_buf)),
            IoCommand::Unknown(_) => fail(Status::INVALID_OPCODE.with_dnr()),
        }
    }

    /// Take a new namespace snapshot if namespaces were added or removed (one atomic load
    /// per command otherwise).
    fn refresh_namespaces(&mut self) {
        if self.subsystem.ns_generation() != self.ns_generation {
            let (generation, map) = self.subsystem.namespace_snapshot();
            self.ns_generation = generation;
            self.namespaces = map;
        }
    }

    /// Only Disconnect is meaningful on an I/O queue (NVMe-oF 1.1 §3.6).
    fn fabrics(&self, req: &Request) -> Response {
        match FabricsCommand::decode(&req.sqe) {
            Ok(FabricsCommand::Disconnect { recfmt: 0 }) => {
                self.ctrl.release_io_queue(self.qid);
                Response::success()
            }
            Ok(FabricsCommand::Disconnect { .. }) => {
                Response::status(Status::CONNECT_INCOMPATIBLE_FORMAT.with_dnr())
            }
            Ok(FabricsCommand::Connect(_)) => {
                Response::status(Status::COMMAND_SEQUENCE_ERROR.with_dnr())
            }
            Ok(_) => Response::status(Status::INVALID_OPCODE.with_dnr()),
            Err(e) => Response::status(e.status()),
        }
    }

    fn namespace(&self, nsid: u32) -> Result<&Arc<Namespace>, Status> {
        self.namespaces
            .get(&nsid)
            .ok_or(Status::INVALID_NAMESPACE.with_dnr())
    }

    /// Namespace, range and transfer-size checks shared by Read, Write and Compare.
    fn check_rw(&self, rw: &ReadWrite, data_len: u64) -> Result<(&Arc<Namespace>, usize), Status> {
        check_rw(
            &self.namespaces,
            self.ctrl.params.max_transfer(),
            rw,
            data_len,
        )
    }

    /// Read into the transport's pooled buffer (or hand out shared backend memory when the
    /// backend has it), inline when the backend cannot block.
    fn read(
        &mut self,
        rw: ReadWrite,
        sgl_len: u32,
        c2h_buf: Option<DataBuf>,
        (sqe, probe): (Sqe, Probe),
    ) -> Completion {
        let max = self.ctrl.params.max_transfer();
        let (ns, len) = match check_rw(&self.namespaces, max, &rw, u64::from(sgl_len)) {
            Ok(v) => v,
            Err(s) => return Completion::Ready(Response::status(s).returning(c2h_buf)),
        };
        if let Some(shared) = ns.backend.read_shared(rw.slba, len) {
            self.counters.add_read(len as u64);
            return Completion::Ready(Response::success().with_data(shared).returning(c2h_buf));
        }
        let mut buf = reply_buffer(c2h_buf, len);
        if ns.backend.polled().is_some() {
            match self.polled.read(ns, sqe, probe, rw.slba, len, buf) {
                Ok(Some(r)) => return Completion::Ready(r),
                Ok(None) => return Completion::Queued,
                // Larger than the drive takes in one command: the futures path splits it.
                Err(b) => buf = b,
            }
        }
        if let Some(q) = ns.backend.queued() {
            // The buffer's RDMA registration waits here and goes back on the same vector.
            let (mut vec, reg) = buf.detach();
            vec.truncate(len);
            let io = q.read(rw.slba, vec);
            let counters = self.counters.clone();
            return deferred(async move {
                match io.await {
                    Ok(vec) => {
                        counters.add_read(len as u64);
                        Response::success().with_buf(reg.attach(vec, len))
                    }
                    Err(e) => Response::status(backend_status(&e, Op::Read)),
                }
            });
        }
        on_backend(ns, &self.counters, move |ns, counters| {
            let mut buf = buf;
            match ns.backend.read(rw.slba, buf.as_mut_slice()) {
                Ok(()) => {
                    counters.add_read(len as u64);
                    Response::success().with_buf(buf)
                }
                Err(e) => Response::status(backend_status(&e, Op::Read)).returning(Some(buf)),
            }
        })
    }

    fn write(
        &mut self,
        rw: ReadWrite,
        mut data: HostData,
        (sqe, probe): (Sqe, Probe),
    ) -> Completion {
        let max = self.ctrl.params.max_transfer();
        let (ns, len) = match check_rw(&self.namespaces, max, &rw, data.len() as u64) {
            Ok(v) => v,
            Err(s) => return data.fail(s),
        };
        data.truncate(len);
        // With the volatile write cache disabled every write is written through.
        let fua = rw.fua || !self.ctrl.write_cache();
        if ns.backend.polled().is_some() {
            match self.polled.write(ns, sqe, probe, rw.slba, fua, data) {
                Ok(Some(r)) => return Completion::Ready(r),
                Ok(None) => return Completion::Queued,
                // Larger than the drive takes in one command: the futures path splits it.
                Err(d) => data = d,
            }
        }
        if let Some(q) = ns.backend.queued() {
            let (bytes, pooled) = data.into_shared();
            let io = q.write(rw.slba, bytes, fua);
            let counters = self.counters.clone();
            return deferred(async move {
                let r = match io.await {
                    Ok(()) => {
                        counters.add_write(len as u64);
                        Response::success()
                    }
                    Err(e) => Response::status(backend_status(&e, Op::Write)),
                };
                r.returning(pooled)
            });
        }
        on_backend(ns, &self.counters, move |ns, counters| {
            let r = match ns.backend.write(rw.slba, data.as_slice(), fua) {
                Ok(()) => {
                    counters.add_write(len as u64);
                    Response::success()
                }
                Err(e) => Response::status(backend_status(&e, Op::Write)),
            };
            r.returning(data.into_pooled())
        })
    }

    /// A write whose data the transport received into the drive's DMA memory: the drive
    /// writes it from there. Where that cannot be (the namespace changed since the memory
    /// was lent, or the write is larger than one drive command) it takes a copy.
    fn write_lent(&mut self, rw: ReadWrite, lent: Lent, cmd: (Sqe, Probe)) -> Completion {
        let max = self.ctrl.params.max_transfer();
        let (ns, len) = match check_rw(&self.namespaces, max, &rw, lent.len() as u64) {
            Ok(v) => v,
            Err(s) => return fail(s),
        };
        let mut lent = lent;
        lent.truncate(len);
        let fua = rw.fua || !self.ctrl.write_cache();
        if let (Some(bridge), Some(_)) = (ns.lent.as_ref(), ns.backend.polled()) {
            let lease = bridge.reclaim(lent, len);
            match self
                .polled
                .write_lent(ns, cmd.0, cmd.1, rw.slba, fua, lease)
            {
                Ok(Some(r)) => return Completion::Ready(r),
                Ok(None) => return Completion::Queued,
                Err(lease) => {
                    let mut buf = DataBuf::zeroed(len);
                    if !lease.read(0, buf.as_mut_slice()) {
                        return fail(Status::INTERNAL_ERROR);
                    }
                    return self.write(rw, HostData::Pooled(buf), cmd);
                }
            }
        }
        self.write(rw, HostData::Pooled(copy_of(&lent)), cmd)
    }

    /// Compare (NVM Command Set 1.0 §3.2.1): Compare Failure when any byte differs.
    fn compare(&self, rw: ReadWrite, mut data: HostData) -> Completion {
        let (ns, len) = match self.check_rw(&rw, data.len() as u64) {
            Ok(v) => v,
            Err(s) => return data.fail(s),
        };
        data.truncate(len);
        if let Some(q) = ns.backend.queued() {
            let io = q.read(rw.slba, vec![0u8; len]);
            return deferred(async move {
                let r = match io.await {
                    Ok(buf) if buf[..] == *data.as_slice() => Response::success(),
                    Ok(_) => Response::status(Status::COMPARE_FAILURE.with_dnr()),
                    Err(e) => Response::status(backend_status(&e, Op::Read)),
                };
                r.returning(data.into_pooled())
            });
        }
        let ns = ns.clone();
        run_backend(ns.backend.may_block(), move || {
            let mut buf = vec![0u8; len];
            let r = match ns.backend.read(rw.slba, &mut buf) {
                Ok(()) if buf[..] == *data.as_slice() => Response::success(),
                Ok(()) => Response::status(Status::COMPARE_FAILURE.with_dnr()),
                Err(e) => Response::status(backend_status(&e, Op::Read)),
            };
            r.returning(data.into_pooled())
        })
    }

    /// Flush (NVMe Base 2.0 §7.1); NSID FFFFFFFFh flushes every namespace.
    fn flush(&self, nsid: u32) -> Completion {
        let targets: Vec<Arc<Namespace>> = if nsid == NSID_ALL {
            self.namespaces.values().cloned().collect()
        } else {
            match self.namespace(nsid) {
                Ok(ns) => vec![ns.clone()],
                Err(s) => return fail(s),
            }
        };
        if targets.iter().any(|n| n.backend.queued().is_some()) {
            return deferred(async move {
                for ns in &targets {
                    let r = match ns.backend.queued() {
                        Some(q) => q.flush().await,
                        None => ns.backend.flush(),
                    };
                    if let Err(e) = r {
                        return Response::status(backend_status(&e, Op::Flush));
                    }
                }
                Response::success()
            });
        }
        let may_block = targets.iter().any(|n| n.backend.may_block());
        run_backend(may_block, move || {
            for ns in &targets {
                if let Err(e) = ns.backend.flush() {
                    return Response::status(backend_status(&e, Op::Flush));
                }
            }
            Response::success()
        })
    }

    /// Write Zeroes (NVM Command Set 1.0 §3.2.8); with DEAC the range is deallocated when
    /// deallocated blocks read as zeroes.
    fn write_zeroes(&self, wz: WriteZeroes) -> Completion {
        let ns = match self.namespace(wz.nsid) {
            Ok(ns) => ns.clone(),
            Err(s) => return fail(s),
        };
        match wz.end_lba() {
            Some(end) if end <= ns.num_blocks() => {}
            _ => return fail(Status::LBA_OUT_OF_RANGE.with_dnr()),
        }
        let fua = wz.fua || !self.ctrl.write_cache();
        let deallocate = wz.deac && ns.info.deallocated_reads_zero;
        if ns.backend.queued().is_some() {
            return deferred(async move {
                let Some(q) = ns.backend.queued() else {
                    return Response::status(Status::INTERNAL_ERROR);
                };
                let blocks = u64::from(wz.nlb);
                let mut r = if deallocate {
                    q.deallocate(wz.slba, blocks).await
                } else {
                    q.write_zeroes(wz.slba, blocks).await
                };
                if r.is_ok() && fua {
                    r = q.flush().await;
                }
                match r {
                    Ok(()) => Response::success(),
                    Err(e) => Response::status(backend_status(&e, Op::Write)),
                }
            });
        }
        run_backend(ns.backend.may_block(), move || {
            let blocks = u64::from(wz.nlb);
            let r = if deallocate {
                ns.backend.deallocate(wz.slba, blocks)
            } else {
                ns.backend.write_zeroes(wz.slba, blocks)
            };
            let r = r.and_then(|()| if fua { ns.backend.flush() } else { Ok(()) });
            match r {
                Ok(()) => Response::success(),
                Err(e) => Response::status(backend_status(&e, Op::Write)),
            }
        })
    }

    /// Dataset Management (NVM Command Set 1.0 §3.2.3): Deallocate is honored, the
    /// integral-dataset hints are advisory.
    fn dataset_management(&self, dsm: DatasetManagement, data: HostData) -> Completion {
        let ns = match self.namespace(dsm.nsid) {
            Ok(ns) => ns.clone(),
            Err(s) => return data.fail(s),
        };
        // NVM Command Set 1.0 §3.2.3: the data is NR+1 16-byte ranges. A longer buffer is
        // accepted (SGLS bit 18): the Linux host always sends room for 256 ranges, 4096
        // bytes, whatever NR says.
        if data.len() < dsm.data_len() {
            return data.fail(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
        }
        let parsed = DsmRange::parse_list(data.as_slice(), usize::from(dsm.nr));
        // The ranges are copied out: a pooled buffer goes back with whatever answer follows.
        let spare = data.into_pooled();
        let ranges = match parsed {
            Ok(r) => r,
            Err(_) => return ready(Status::DATA_SGL_LENGTH_INVALID.with_dnr(), spare),
        };
        for r in &ranges {
            match r.slba().checked_add(u64::from(r.nlb())) {
                Some(end) if end <= ns.num_blocks() => {}
                _ => return ready(Status::LBA_OUT_OF_RANGE.with_dnr(), spare),
            }
        }
        if !dsm.ad {
            return ready(Status::SUCCESS, spare);
        }
        if ns.backend.queued().is_some() {
            return deferred(async move {
                let Some(q) = ns.backend.queued() else {
                    return Response::status(Status::INTERNAL_ERROR).returning(spare);
                };
                for r in ranges.iter().filter(|r| r.nlb() > 0) {
                    if let Err(e) = q.deallocate(r.slba(), u64::from(r.nlb())).await {
                        return Response::status(backend_status(&e, Op::Write)).returning(spare);
                    }
                }
                Response::success().returning(spare)
            });
        }
        run_backend(ns.backend.may_block(), move || {
            for r in ranges.iter().filter(|r| r.nlb() > 0) {
                if let Err(e) = ns.backend.deallocate(r.slba(), u64::from(r.nlb())) {
                    return Response::status(backend_status(&e, Op::Write)).returning(spare);
                }
            }
            Response::success().returning(spare)
        })
    }
}

/// What a command's completion is counted as in its namespace's metrics
/// (`crate::metrics`): taken before the command runs, recorded when it completes.
#[derive(Clone, Copy)]
struct Probe {
    nsid: u32,
    op: IoOp,
    /// Logical blocks moved, for Read and Write (CDW12 bits 15:0 are 0's based).
    blocks: u64,
    start: Instant,
}

impl Probe {
    fn new(sqe: &nvme::Sqe) -> Probe {
        let op = IoOp::of_opcode(sqe.opcode);
        let blocks = match op {
            IoOp::Read | IoOp::Write => u64::from(sqe.cdw12.get() & 0xffff) + 1,
            IoOp::Other => 0,
        };
        Probe {
            nsid: sqe.nsid.get(),
            op,
            blocks,
            start: Instant::now(),
        }
    }

    fn record(&self, ns: &Namespace, r: &Response) {
        let bytes = self.blocks << ns.lba_shift;
        ns.stats
            .record(self.op, r.status, bytes, self.start.elapsed());
    }
}

/// See [`IoQueue::check_rw`]; a function of the fields it reads, so that the namespace it
/// returns can be used beside the queue's other fields.
fn check_rw<'a>(
    namespaces: &'a NamespaceMap,
    max_transfer: u32,
    rw: &ReadWrite,
    data_len: u64,
) -> Result<(&'a Arc<Namespace>, usize), Status> {
    let ns = namespaces
        .get(&rw.nsid)
        .ok_or(Status::INVALID_NAMESPACE.with_dnr())?;
    match rw.end_lba() {
        Some(end) if end <= ns.num_blocks() => {}
        // NVM Command Set 1.0 §3.3.3.1.
        _ => return Err(Status::LBA_OUT_OF_RANGE.with_dnr()),
    }
    let len = u64::from(rw.nlb) << ns.lba_shift;
    // NVMe Base 2.0 §5.17.2.1 (MDTS): larger transfers fail with Invalid Field.
    if len > u64::from(max_transfer) {
        return Err(Status::INVALID_FIELD.with_dnr());
    }
    // NVMe Base 2.0 §4.3.2: an SGL shorter than the command's data is Data SGL Length
    // Invalid; a longer one is accepted (Identify SGLS bit 18) and its excess unused.
    if data_len < len {
        return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
    }
    Ok((ns, len as usize))
}

/// The buffer a command's `len` bytes of data for the host go in: the transport's pooled one
/// when it is large enough, else a new one.
fn reply_buffer(c2h_buf: Option<DataBuf>, len: usize) -> DataBuf {
    match c2h_buf {
        Some(mut b) if b.len() >= len => {
            b.truncate(len);
            b
        }
        _ => DataBuf::zeroed(len),
    }
}

/// A completion that arrives later, from a backend that completes on a polled device queue.
fn deferred(f: impl std::future::Future<Output = Response> + Send + 'static) -> Completion {
    Completion::Pending(Box::pin(f))
}

fn fail(status: Status) -> Completion {
    Completion::Ready(Response::status(status))
}

/// An answer now, handing `spare` (a pooled request buffer) back.
fn ready(status: Status, spare: Option<DataBuf>) -> Completion {
    Completion::Ready(Response::status(status).returning(spare))
}

/// A command's host data: the slice of the transport's receive buffer it arrived in, or the
/// pooled buffer the transport gathered it in (given back with the response).
enum HostData {
    Shared(Bytes),
    Pooled(DataBuf),
}

impl HostData {
    fn of(data: Option<Bytes>, gathered: Option<DataBuf>) -> HostData {
        match gathered {
            Some(buf) => HostData::Pooled(buf),
            None => HostData::Shared(data.unwrap_or_default()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            HostData::Shared(b) => b,
            HostData::Pooled(b) => b.as_slice(),
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn truncate(&mut self, len: usize) {
        match self {
            HostData::Shared(b) => b.truncate(len),
            HostData::Pooled(b) => b.truncate(len),
        }
    }

    /// The pooled buffer, to hand back in the response.
    fn into_pooled(self) -> Option<DataBuf> {
        match self {
            HostData::Shared(_) => None,
            HostData::Pooled(b) => Some(b),
        }
    }

    /// Owned bytes for a queued (drive) backend, which takes `Bytes`: a pooled buffer is
    /// copied, and comes back to be handed back with the response.
    fn into_shared(self) -> (Bytes, Option<DataBuf>) {
        match self {
            HostData::Shared(b) => (b, None),
            HostData::Pooled(b) => (Bytes::copy_from_slice(b.as_slice()), Some(b)),
        }
    }

    /// Fail the command, handing the pooled buffer back.
    fn fail(self, status: Status) -> Completion {
        Completion::Ready(Response::status(status).returning(self.into_pooled()))
    }
}

/// Lent memory's bytes in a buffer of their own (the rare paths that cannot use them where
/// they are).
fn copy_of(lent: &Lent) -> DataBuf {
    let mut buf = DataBuf::zeroed(lent.len());
    lent.read(0, buf.as_mut_slice());
    buf
}

/// Run `f` inline when the namespace's backend cannot block (no reference counts touched);
/// otherwise on the blocking pool with its own references.
fn on_backend<F>(ns: &Arc<Namespace>, counters: &Arc<IoCounters>, f: F) -> Completion
where
    F: FnOnce(&Namespace, &IoCounters) -> Response + Send + 'static,
{
    if ns.backend.may_block() {
        let (ns, counters) = (ns.clone(), counters.clone());
        run_backend(true, move || f(&ns, &counters))
    } else {
        Completion::Ready(f(ns, counters))
    }
}

impl QueueHandler for IoQueue {
    fn submit(&mut self, request: Request) -> Completion {
        // NVMe Base 2.0 §3.9 (Traffic Based Keep Alive): every I/O command restarts the Keep
        // Alive Timer. A count on the queue's own cache line, summed by the timer task: no
        // lock, no clock read (`crate::keep_alive`).
        self.counters.add_command();
        self.refresh_namespaces();
        let probe = Probe::new(&request.sqe);
        let sqe = request.sqe;
        match self.execute(request, probe) {
            Completion::Ready(r) => {
                if !r.status.is_success() {
                    self.ctrl.record_error(self.qid, &sqe, r.status);
                }
                if let Some(ns) = self.namespaces.get(&probe.nsid) {
                    probe.record(ns, &r);
                }
                Completion::Ready(r)
            }
            // `PolledIo` records these when they finish.
            Completion::Queued => Completion::Queued,
            Completion::Pending(fut) => {
                // The same bookkeeping as `controller::record_failures`, in the one future.
                let (ctrl, qid) = (self.ctrl.clone(), self.qid);
                let ns = self.namespaces.get(&probe.nsid).cloned();
                Completion::Pending(Box::pin(async move {
                    let r = fut.await;
                    if !r.status.is_success() {
                        ctrl.record_error(qid, &sqe, r.status);
                    }
                    if let Some(ns) = ns {
                        probe.record(&ns, &r);
                    }
                    r
                }))
            }
        }
    }

    fn lend_h2c(&mut self, sqe: &Sqe, len: u32) -> Option<Lent> {
        // Writes to a drive that lends its DMA memory, within one drive command.
        if sqe.opcode != IoOpcode::Write.to_u8() {
            return None;
        }
        self.refresh_namespaces();
        let ns = self.namespaces.get(&sqe.nsid.get())?;
        let bridge = ns.lent.as_ref()?;
        let lease = ns.backend.polled()?.lend(len as usize)?;
        bridge.lend(lease).ok()
    }

    fn has_queued(&self) -> bool {
        self.polled.outstanding() > 0
    }

    fn poll_queued(&mut self, done: &mut dyn FnMut(u16, Response)) -> usize {
        let cx = polled::Ctx {
            ctrl: &self.ctrl,
            qid: self.qid,
            counters: &self.counters,
        };
        self.polled.poll(&cx, done)
    }

    fn teardown(&self) -> CancellationToken {
        self.ctrl.teardown_token()
    }

    fn disconnected(&mut self) {
        self.ctrl.release_io_queue(self.qid);
        tracing::debug!(
            cntlid = self.ctrl.cntlid,
            qid = self.qid,
            "I/O queue disconnected"
        );
    }
}

impl Drop for IoQueue {
    fn drop(&mut self) {
        self.polled.forget();
    }
}
