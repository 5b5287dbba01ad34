//! The NVMe/RDMA listener and reactors. A listener's thread takes the RDMA connection
//! manager's events: it checks each connect request's private data (rejecting with the
//! spec's status), creates the queue pair on the least-loaded reactor's queues for that
//! device, and hands it over; the reactor accepts it and owns it from then on. Disconnect
//! events go to the owning reactor, which destroys the queue pair.

use ferrofab_sync::CountedLock as _;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::cm::{CmLimits, CmRequest, RejectStatus};
use super::queue::{RdmaQueue, RdmaTargetConfig};
use super::reactor::{Bell, Msg, NewQueue, Reactor};
use crate::queue::{ConnectionInfo, Target, TransportKind};
use crate::sys::rdma::{CmEventKind, CmId, DeviceConfig, DeviceRes, EventChannel};
use crate::tcp::reactor::{pin_to_core, ReactorConfig};
use crate::tcp::reactor_stats::ReactorCounters;

/// Receive buffers in each reactor's shared receive queue per device.
const RECV_BUFFERS: u32 = 1024;
/// Data slots per reactor and device, and their size: 32 MiB of registered memory.
const DATA_SLOTS: u32 = 512;
const SLOT_LEN: u32 = 64 * 1024;
/// Completion queue entries per reactor and device.
const CQ_ENTRIES: u32 = 16384;
/// How often the listener thread looks at its shutdown token.
const CM_POLL: Duration = Duration::from_millis(100);

struct ReactorHandle {
    tx: mpsc::Sender<Msg>,
    bell: Arc<Bell>,
    load: Arc<AtomicUsize>,
    counters: Arc<ReactorCounters>,
}

/// Per reactor and device: the resources and the completion budget in use.
type DeviceTable = HashMap<(usize, usize), (Arc<DeviceRes>, Arc<AtomicU32>)>;

/// The NVMe/RDMA reactors of a target.
pub struct RdmaTransport {
    reactors: Vec<ReactorHandle>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    devices: Mutex<DeviceTable>,
}

/// A bound RDMA CM listener, not serving yet.
pub struct RdmaBound {
    pub address: SocketAddr,
    channel: Arc<EventChannel>,
    id: CmId,
}

/// Send queue entries of a queue pair for `sq_entries` commands: a read, or a write and a
/// send, per command, and room for the odd extra (a response's SEND may still await its
/// completion when the host's next command is answered).
pub(super) fn send_depth(sq_entries: u32) -> u32 {
    3 * sq_entries + 8
}

impl RdmaTransport {
    /// Start the RDMA reactors (one per listed core, or `count` unpinned). rdma-core is not
    /// touched until a listener binds.
    pub fn start(
        config: ReactorConfig,
        runtime: tokio::runtime::Handle,
    ) -> io::Result<Arc<RdmaTransport>> {
        let placements: Vec<Option<usize>> = match &config.cores {
            Some(cores) => cores.iter().copied().map(Some).collect(),
            None => vec![None; config.count.max(1)],
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut reactors = Vec::new();
        let mut threads = Vec::new();
        for (id, core) in placements.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            let load = Arc::new(AtomicUsize::new(0));
            let counters = Arc::new(ReactorCounters::default());
            let (ready_tx, ready_rx) = mpsc::sync_channel(1);
            let (r_load, r_counters, r_stop) = (load.clone(), counters.clone(), stop.clone());
            let poll = config.poll;
            let rt = runtime.clone();
            let bell = Arc::new(Bell::new()?);
            let r_bell = bell.clone();
            let hook = config.on_thread_start.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ff-rdma-{id}"))
                .spawn(move || {
                    let reactor = core.map_or(Ok(()), pin_to_core).and_then(|()| {
                        Reactor::new(id, poll, rx, r_bell, r_stop, r_load, r_counters)
                    });
                    let mut reactor = match reactor {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let _guard = rt.enter();
                    if let Some(hook) = hook {
                        hook(id);
                    }
                    reactor.run();
                })?;
            let ready = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("RDMA reactor died during setup")));
            threads.push(thread);
            match ready {
                Ok(()) => reactors.push(ReactorHandle {
                    tx,
                    bell,
                    load,
                    counters,
                }),
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(io::Error::new(e.kind(), format!("RDMA reactor {id}: {e}")));
                }
            }
        }
        Ok(Arc::new(RdmaTransport {
            reactors,
            stop,
            threads: Mutex::new(threads),
            devices: Mutex::new(HashMap::new()),
        }))
    }

    /// Bind an RDMA CM listener on `address` (port 0 picks one).
    pub fn bind(&self, address: SocketAddr) -> io::Result<RdmaBound> {
        let channel = EventChannel::new()?;
        let id = channel.listen(address, 1024)?;
        let address = id.local_addr().unwrap_or(address);
        Ok(RdmaBound {
            address,
            channel,
            id,
        })
    }

    /// Accept NVMe/RDMA queues on `bound` until `shutdown` is cancelled, on a thread of its
    /// own. Queues live on the reactors; stopping the transport closes them.
    pub fn serve(
        self: &Arc<Self>,
        bound: RdmaBound,
        target: Arc<dyn Target>,
        config: RdmaTargetConfig,
        shutdown: CancellationToken,
    ) {
        let me = self.clone();
        let address = bound.address;
        let spawned = std::thread::Builder::new()
            .name(format!("ff-rdma-cm-{}", address.port()))
            .spawn(move || me.listen_loop(bound, target, config, shutdown));
        match spawned {
            Ok(t) => self.threads.lock_counted().push(t),
            Err(e) => warn!(addr = %address, error = %e, "cannot start the RDMA listener thread"),
        }
    }

    /// Close every queue and stop the threads (blocks until they are gone).
    pub fn stop_and_join(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for r in &self.reactors {
            r.bell.ring();
        }
        let threads: Vec<_> = self.threads.lock_counted().drain(..).collect();
        for t in threads {
            if t.join().is_err() {
                warn!("an RDMA thread panicked");
            }
        }
    }

    /// Each reactor's busy/idle and command counters, by reactor id.
    pub fn counters(&self) -> Vec<Arc<ReactorCounters>> {
        self.reactors.iter().map(|r| r.counters.clone()).collect()
    }

    /// Queue pairs currently owned by each reactor.
    pub fn loads(&self) -> Vec<usize> {
        self.reactors
            .iter()
            .map(|r| r.load.load(Ordering::Relaxed))
            .collect()
    }

    fn listen_loop(
        self: Arc<Self>,
        bound: RdmaBound,
        target: Arc<dyn Target>,
        config: RdmaTargetConfig,
        shutdown: CancellationToken,
    ) {
        info!(addr = %bound.address, transport = "rdma", "listening");
        // Which reactor owns each connection's id.
        let mut owners: HashMap<usize, usize> = HashMap::new();
        let RdmaBound {
            address,
            channel,
            id,
        } = bound;
        let mut listening = Some(id);
        // After shutdown the listening id goes (no new connections), and the thread stays
        // for the events of the connections it accepted.
        while !self.stop.load(Ordering::Relaxed) && (listening.is_some() || !owners.is_empty()) {
            if listening.is_some() && shutdown.is_cancelled() {
                listening = None;
                info!(addr = %address, "RDMA listener closed");
            }
            match channel.wait(CM_POLL) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    warn!(error = %e, "waiting for RDMA CM events failed");
                    std::thread::sleep(CM_POLL);
                    continue;
                }
            }
            loop {
                let ev = match channel.next_event() {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "reading RDMA CM events failed");
                        std::thread::sleep(CM_POLL);
                        break;
                    }
                };
                match ev.kind {
                    CmEventKind::ConnectRequest => {
                        let Some(id) = ev.new_id else { continue };
                        if listening.is_none() {
                            continue;
                        }
                        let key = id.key();
                        if let Some(r) = self.connect_request(
                            id,
                            &ev.private,
                            ev.initiator_depth,
                            ev.responder_resources,
                            &target,
                            &config,
                        ) {
                            owners.insert(key, r);
                        }
                    }
                    CmEventKind::Disconnected | CmEventKind::DeviceRemoval => {
                        if let Some(r) = owners.remove(&ev.id_key) {
                            let h = &self.reactors[r];
                            let _ = h.tx.send(Msg::Disconnected { key: ev.id_key });
                            h.bell.ring();
                        }
                    }
                    CmEventKind::Established | CmEventKind::TimewaitExit => {}
                    // Host-side events; a listener never sees them.
                    CmEventKind::AddrResolved
                    | CmEventKind::RouteResolved
                    | CmEventKind::Rejected => {}
                    CmEventKind::Other(kind) => {
                        debug!(kind, "RDMA CM event");
                        // A connection that failed to establish is gone too.
                        if let Some(r) = owners.remove(&ev.id_key) {
                            let h = &self.reactors[r];
                            let _ = h.tx.send(Msg::Disconnected { key: ev.id_key });
                            h.bell.ring();
                        }
                    }
                }
            }
        }
    }

    /// Check a connect request and hand its queue to a reactor; returns the reactor, or
    /// None when the request was rejected.
    fn connect_request(
        &self,
        mut id: CmId,
        private: &[u8],
        initiator_depth: u8,
        responder_resources: u8,
        target: &Arc<dyn Target>,
        config: &RdmaTargetConfig,
    ) -> Option<usize> {
        let limits = CmLimits {
            max_admin_entries: 4096,
            max_io_entries: 1024,
            max_qid: u16::MAX - 1,
        };
        // NVMe/RDMA 1.0 §3.2.1.3: a request the controller cannot take is rejected with
        // RDMA_CM_REJECT private data saying why.
        let reject = |id: &CmId, status: RejectStatus| {
            debug!(?status, peer = ?id.peer_addr(), "rejecting an NVMe/RDMA connect request");
            if let Err(e) = id.reject(&status.encode()) {
                debug!(error = %e, "rdma_reject failed");
            }
        };
        let req = match CmRequest::parse(private, &limits) {
            Ok(r) => r,
            Err(status) => {
                reject(&id, status);
                return None;
            }
        };
        let r = self
            .reactors
            .iter()
            .enumerate()
            .min_by_key(|(_, h)| h.load.load(Ordering::Relaxed))
            .map(|(i, _)| i)?;
        let (res, budget_used) = match self.device(r, &id, config) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot open the RDMA device for a connection");
                reject(&id, RejectStatus::NoResources);
                return None;
            }
        };
        // Each command may have one signaled work request in the completion queue.
        let budget = res
            .config
            .cq_entries
            .saturating_sub(res.config.recv_buffers);
        let used = budget_used.fetch_add(req.sq_entries, Ordering::Relaxed) + req.sq_entries;
        if used > budget {
            budget_used.fetch_sub(req.sq_entries, Ordering::Relaxed);
            reject(&id, RejectStatus::NoResources);
            return None;
        }
        let qp_num = match id.create_qp(&res, send_depth(req.sq_entries)) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "cannot create an RDMA queue pair");
                budget_used.fetch_sub(req.sq_entries, Ordering::Relaxed);
                reject(&id, RejectStatus::NoResources);
                return None;
            }
        };
        let info = ConnectionInfo {
            transport: TransportKind::Rdma,
            local: id.local_addr().unwrap_or(([0, 0, 0, 0], 0).into()),
            peer: id.peer_addr().unwrap_or(([0, 0, 0, 0], 0).into()),
            secure: None,
        };
        let queue = RdmaQueue::new(target.clone(), info, config);
        let h = &self.reactors[r];
        h.load.fetch_add(1, Ordering::Relaxed);
        let msg = Msg::NewQueue(Box::new(NewQueue {
            accept: req.accept(),
            // The CM reports a request's depths from our side already (the host's responder
            // resources are our initiator depth): we issue as many RDMA READs at once as the
            // host serves, up to what the device allows.
            initiator_depth: initiator_depth.min(res.limits.max_qp_init_rd_atom),
            responder_resources: responder_resources.min(res.limits.max_qp_rd_atom),
            id,
            dev_res: res,
            budget_used,
            qp_num,
            queue,
            sq_entries: req.sq_entries,
        }));
        if h.tx.send(msg).is_err() {
            h.load.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        h.bell.ring();
        Some(r)
    }

    /// Reactor `r`'s resources on `id`'s device, opened on first use.
    fn device(
        &self,
        r: usize,
        id: &CmId,
        config: &RdmaTargetConfig,
    ) -> io::Result<(Arc<DeviceRes>, Arc<AtomicU32>)> {
        let mut devices = self.devices.lock_counted();
        if let Some((res, used)) = devices.get(&(r, id.device_key())) {
            return Ok((res.clone(), used.clone()));
        }
        let res = id.open_device(DeviceConfig {
            recv_buffers: RECV_BUFFERS,
            recv_len: config.capsule_len() as u32,
            data_slots: DATA_SLOTS,
            slot_len: SLOT_LEN,
            cq_entries: CQ_ENTRIES,
            remote_access: false,
        })?;
        let used = Arc::new(AtomicU32::new(0));
        devices.insert((r, id.device_key()), (res.clone(), used.clone()));
        Ok((res, used))
    }
}

impl Drop for RdmaTransport {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
