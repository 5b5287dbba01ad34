//! A controller (dynamic model, NVMe-oF 1.1 §3.3): created by an admin-queue Connect, owns
//! the register state, features, keep-alive timer, async events, and its queues.

use ferrofab_sync::CountedLock as _;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use fabric::queue::{Completion, Request, Response};
use nvme::{Sqe, Status};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::aer::AerState;
use crate::ctrl_state::{transition, CtrlEvent, CtrlState};
use crate::error_log::ErrorLog;
use crate::keep_alive::{KeepAliveTimer, Verdict};
use crate::subsystem::Subsystem;
use crate::target::TargetInner;
use nvme::features::{AsyncEvent, AsyncEventConfig};

/// Limits the target advertises; shared by every controller.
#[derive(Clone, Debug)]
pub struct TargetParams {
    /// Maximum Data Transfer Size as a power of two of 4 KiB pages (CAP.MPSMIN = 4 KiB).
    pub mdts: u8,
    /// Bytes of in-capsule data accepted on I/O queues (IOCCSZ = (64 + this) / 16).
    pub io_in_capsule: u32,
    /// Most I/O queues one controller may have.
    pub max_io_queues: u16,
    /// Maximum queue entries, 0's based (CAP.MQES).
    pub mqes: u16,
    /// Async Event Request Limit, 0's based (Identify Controller AERL).
    pub aerl: u8,
}

impl Default for TargetParams {
    fn default() -> Self {
        TargetParams {
            mdts: 8,
            io_in_capsule: 8192,
            max_io_queues: 64,
            mqes: 1023,
            aerl: 3,
        }
    }
}

impl TargetParams {
    pub fn max_transfer(&self) -> u32 {
        4096u32 << self.mdts
    }
}

/// Who connected the admin queue, and where to.
pub struct HostIdentity {
    pub hostnqn: String,
    pub hostid: [u8; 16],
    /// The transport the admin queue arrived on.
    pub transport: crate::config::TransportKind,
    pub local: std::net::SocketAddr,
}

pub enum ControllerKind {
    Nvm(Arc<Subsystem>),
    Discovery,
}

/// Host-settable features (NVMe Base 2.0 §5.27.1).
#[derive(Clone, Debug)]
pub struct Features {
    /// Async Event Configuration (FID 0Bh) bits.
    pub async_event_config: u32,
    /// Number of Queues granted (FID 07h), 0's based; None until the host sets it.
    pub queues_granted: Option<u16>,
    /// Temperature threshold (FID 04h) raw DW11 per threshold select.
    pub temperature_threshold: u16,
    /// Power state (FID 02h).
    pub power_state: u8,
    /// Arbitration (FID 01h) raw DW11.
    pub arbitration: u32,
    /// Error Recovery (FID 05h) per namespace that has been set; others read the default.
    pub error_recovery: std::collections::BTreeMap<u32, nvme::features::ErrorRecovery>,
    /// Write Atomicity Normal (FID 0Ah) DN bit.
    pub write_atomicity_dn: bool,
}

/// Asynchronous Event Configuration (FID 0Bh) at creation: the notices this controller type
/// raises are enabled until the host says otherwise.
pub fn default_async_event_config(kind: &ControllerKind) -> u32 {
    match kind {
        ControllerKind::Nvm(_) => AsyncEventConfig::NAMESPACE_ATTRIBUTE,
        ControllerKind::Discovery => AsyncEventConfig::DISCOVERY_LOG_CHANGE,
    }
}

/// SMART / Health counters (NVMe Base 2.0 §5.16.1.3) of one I/O queue. Each queue has its
/// own (only its reactor writes them, so no cache line is shared on the data path); the
/// SMART log sums them.
#[derive(Default)]
pub struct IoCounters {
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub read_commands: AtomicU64,
    pub write_commands: AtomicU64,
    /// Commands submitted on the queue, whatever their outcome: the keep-alive timer's
    /// evidence of I/O traffic (Traffic Based Keep Alive, `crate::keep_alive`).
    pub commands: AtomicU64,
}

impl IoCounters {
    /// Count one completed read of `bytes` (single writer: a load and a store, no RMW).
    pub fn add_read(&self, bytes: u64) {
        bump(&self.read_commands, 1);
        bump(&self.bytes_read, bytes);
    }

    pub fn add_write(&self, bytes: u64) {
        bump(&self.write_commands, 1);
        bump(&self.bytes_written, bytes);
    }

    /// Count one submitted command (called by the queue's own reactor only).
    pub fn add_command(&self) {
        bump(&self.commands, 1);
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Totals over every I/O queue a controller has had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoTotals {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub read_commands: u64,
    pub write_commands: u64,
}

struct Registers {
    cc: u32,
    state: CtrlState,
}

pub struct Controller {
    pub cntlid: u16,
    pub kind: ControllerKind,
    pub hostnqn: String,
    pub hostid: [u8; 16],
    /// The transport the admin queue arrived on (the listener it came through is this
    /// transport's on `local`; the Error Information log's TRTYPE).
    pub transport: crate::config::TransportKind,
    /// Local address of the admin queue's connection (discovery reports it for wildcards).
    pub local: std::net::SocketAddr,
    pub params: Arc<TargetParams>,
    pub created: std::time::Instant,
    target: Weak<TargetInner>,
    regs: Mutex<Registers>,
    ready: AtomicBool,
    /// Volatile Write Cache enable (FID 06h); read on every write, so not behind the lock.
    write_cache: AtomicBool,
    features: Mutex<Features>,
    aer: Mutex<AerState>,
    kato_ms: AtomicU32,
    kato_changed: Notify,
    keep_alive: Mutex<KeepAliveTimer>,
    io_queues: Mutex<BTreeSet<u16>>,
    changed_namespaces: Mutex<BTreeSet<u32>>,
    pub errors: Mutex<ErrorLog>,
    /// Per-QID counters; a reconnected QID continues its predecessor's.
    queue_counters: Mutex<std::collections::BTreeMap<u16, Arc<IoCounters>>>,
    teardown: CancellationToken,
    destroyed: AtomicBool,
}

impl Controller {
    pub(crate) fn new(
        cntlid: u16,
        kind: ControllerKind,
        host: HostIdentity,
        kato_ms: u32,
        params: Arc<TargetParams>,
        target: Weak<TargetInner>,
    ) -> Arc<Controller> {
        let HostIdentity {
            hostnqn,
            hostid,
            transport,
            local,
        } = host;
        let aer_config = default_async_event_config(&kind);
        let aerl = params.aerl;
        Arc::new(Controller {
            cntlid,
            kind,
            hostnqn,
            hostid,
            transport,
            local,
            params,
            created: std::time::Instant::now(),
            target,
            regs: Mutex::new(Registers {
                cc: 0,
                state: CtrlState::Disabled,
            }),
            ready: AtomicBool::new(false),
            write_cache: AtomicBool::new(true),
            features: Mutex::new(Features {
                async_event_config: aer_config,
                queues_granted: None,
                temperature_threshold: crate::features::DEFAULT_TEMPERATURE_THRESHOLD,
                power_state: 0,
                arbitration: 0,
                error_recovery: std::collections::BTreeMap::new(),
                write_atomicity_dn: false,
            }),
            aer: Mutex::new(AerState::new(aerl)),
            kato_ms: AtomicU32::new(kato_ms),
            kato_changed: Notify::new(),
            keep_alive: Mutex::new(KeepAliveTimer::new(Instant::now())),
            io_queues: Mutex::new(BTreeSet::new()),
            changed_namespaces: Mutex::new(BTreeSet::new()),
            errors: Mutex::new(ErrorLog::default()),
            queue_counters: Mutex::new(std::collections::BTreeMap::new()),
            teardown: CancellationToken::new(),
            destroyed: AtomicBool::new(false),
        })
    }

    pub fn subsystem(&self) -> Option<&Arc<Subsystem>> {
        match &self.kind {
            ControllerKind::Nvm(s) => Some(s),
            ControllerKind::Discovery => None,
        }
    }

    pub fn is_discovery(&self) -> bool {
        matches!(self.kind, ControllerKind::Discovery)
    }

    pub fn subsystem_nqn(&self) -> &str {
        match &self.kind {
            ControllerKind::Nvm(s) => &s.nqn,
            ControllerKind::Discovery => crate::nqn::DISCOVERY_NQN,
        }
    }

    pub fn target(&self) -> Option<Arc<TargetInner>> {
        self.target.upgrade()
    }

    pub fn teardown_token(&self) -> CancellationToken {
        self.teardown.clone()
    }

    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }

    /// Fast check used per command: CC.EN = 1 and CSTS.RDY = 1.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn cc(&self) -> u32 {
        self.regs.lock_counted().cc
    }

    pub fn csts(&self) -> u32 {
        self.regs.lock_counted().state.csts()
    }

    /// Apply a host write of CC (NVMe Base 2.0 §3.1.3.5). Returns true when a shutdown
    /// started, so the caller flushes backends and then calls `shutdown_done`.
    pub fn write_cc(&self, new: u32) -> bool {
        let mut regs = self.regs.lock_counted();
        let old = regs.cc;
        regs.cc = new;
        let en_old = old & 1 != 0;
        let en_new = new & 1 != 0;
        let shn_old = (old >> 14) & 0x3;
        let shn_new = (new >> 14) & 0x3;
        let mut events = Vec::with_capacity(2);
        if en_new && !en_old {
            events.push(if self.cc_supported(new) {
                CtrlEvent::Enable
            } else {
                CtrlEvent::EnableInvalid
            });
        } else if !en_new && en_old {
            events.push(CtrlEvent::Disable);
        }
        let shutdown = shn_new != 0 && shn_old == 0;
        if shutdown {
            events.push(CtrlEvent::Shutdown);
        }
        let before = regs.state;
        for e in events {
            regs.state = transition(regs.state, e);
        }
        self.ready
            .store(regs.state.accepts_commands(), Ordering::Release);
        if before != regs.state {
            tracing::debug!(cntlid = self.cntlid, from = ?before, to = ?regs.state, "controller state");
        }
        if regs.state == CtrlState::Disabled && before != CtrlState::Disabled {
            drop(regs);
            self.reset();
        }
        shutdown
    }

    /// Flushing after a shutdown request finished.
    pub fn shutdown_done(&self) {
        let mut regs = self.regs.lock_counted();
        regs.state = transition(regs.state, CtrlEvent::ShutdownDone);
        self.ready
            .store(regs.state.accepts_commands(), Ordering::Release);
    }

    /// CC fields this controller can honor: CSS NVM (000b) or all I/O command sets (110b),
    /// MPS 4 KiB, IOSQES 64 bytes, IOCQES 16 bytes (NVMe Base 2.0 Figure 78).
    fn cc_supported(&self, cc: u32) -> bool {
        let css = (cc >> 4) & 0x7;
        let mps = (cc >> 7) & 0xf;
        let ams = (cc >> 11) & 0x7;
        let iosqes = (cc >> 16) & 0xf;
        let iocqes = (cc >> 20) & 0xf;
        let io_ok = match self.kind {
            ControllerKind::Nvm(_) => iosqes == 6 && iocqes == 4,
            // A discovery controller has no I/O queues; accept what hosts send.
            ControllerKind::Discovery => true,
        };
        (css == 0 || css == 6) && mps == 0 && ams == 0 && io_ok
    }

    /// Controller reset (CC.EN 1 -> 0): I/O queues are no longer usable and features return to
    /// their defaults (NVMe Base 2.0 §3.7.2).
    fn reset(&self) {
        self.features.lock_counted().queues_granted = None;
        self.set_write_cache(true);
        tracing::debug!(cntlid = self.cntlid, "controller reset");
    }

    pub fn write_cache(&self) -> bool {
        self.write_cache.load(Ordering::Relaxed)
    }

    pub fn set_write_cache(&self, enabled: bool) {
        self.write_cache.store(enabled, Ordering::Relaxed);
    }

    pub fn features(&self) -> MutexGuard<'_, Features> {
        self.features.lock_counted()
    }

    pub fn aer(&self) -> MutexGuard<'_, AerState> {
        self.aer.lock_counted()
    }

    /// Raise an async event if the host enabled that notice (Async Event Configuration).
    pub fn raise_event(&self, ev: AsyncEvent, config_bit: u32) {
        if self.features().async_event_config & config_bit != 0 {
            if let Some(target) = self.target.upgrade() {
                target
                    .metrics
                    .event_raised(crate::metrics::EventKind::of_log_page(ev.log_page));
            }
            self.aer().raise(ev);
        }
    }

    /// A namespace of this controller's subsystem was added, removed or changed.
    pub fn namespace_changed(&self, nsid: u32) {
        self.changed_namespaces.lock_counted().insert(nsid);
        self.raise_event(
            AsyncEvent::namespace_attribute_changed(),
            AsyncEventConfig::NAMESPACE_ATTRIBUTE,
        );
    }

    /// A zone of a zoned namespace of this controller's subsystem changed by itself (failed
    /// to Read Only or Offline): the Changed Zone List has news.
    pub fn zone_descriptor_changed(&self) {
        self.raise_event(
            AsyncEvent::zone_descriptor_changed(),
            AsyncEventConfig::ZONE_DESCRIPTOR_CHANGED,
        );
    }

    /// Take the Changed Namespace List (NVMe Base 2.0 §5.16.1.5); `clear` when RAE is 0.
    pub fn changed_namespaces(&self, clear: bool) -> Vec<u32> {
        let mut set = self.changed_namespaces.lock_counted();
        let list = set.iter().copied().collect();
        if clear {
            set.clear();
        }
        list
    }

    pub fn kato_ms(&self) -> u32 {
        self.kato_ms.load(Ordering::Acquire)
    }

    /// Set Features Keep Alive Timer (FID 0Fh): the new KATO runs from now (NVMe Base 2.0
    /// §3.9); 0 disables the timer.
    pub fn set_kato_ms(&self, ms: u32) {
        self.kato_ms.store(ms, Ordering::Release);
        self.restart_keep_alive();
        self.kato_changed.notify_one();
    }

    /// An admin command arrived: restart the Keep Alive Timer. Keep Alive does (NVMe Base 2.0
    /// §5.18), and with Traffic Based Keep Alive (CTRATT.TBKAS) so does every other admin
    /// command. I/O commands are counted per queue instead (`IoCounters::add_command`).
    pub fn restart_keep_alive(&self) {
        self.keep_alive.lock_counted().restart(Instant::now());
    }

    /// Commands submitted on all of this controller's I/O queues so far.
    fn io_commands(&self) -> u64 {
        self.queue_counters
            .lock_counted()
            .values()
            .fold(0u64, |n, c| {
                n.wrapping_add(c.commands.load(Ordering::Relaxed))
            })
    }

    /// Look at the Keep Alive Timer at `now` (the rule: `crate::keep_alive`).
    pub fn check_keep_alive(&self, now: Instant) -> Verdict {
        let io = self.io_commands();
        self.keep_alive
            .lock_counted()
            .check(now, self.kato_ms(), io)
    }

    /// Runs until the controller is destroyed; destroys it when the Keep Alive Timer expires.
    pub(crate) async fn keep_alive_timer(self: Arc<Self>) {
        loop {
            let next_check = match self.check_keep_alive(Instant::now()) {
                Verdict::Disabled => None,
                Verdict::Alive { next_check } => Some(next_check),
                Verdict::Expired { idle } => {
                    tracing::info!(cntlid = self.cntlid, hostnqn = %self.hostnqn,
                        kato_ms = self.kato_ms(), idle_ms = idle.as_millis() as u64,
                        "keep alive timeout expired");
                    if let Some(target) = self.target.upgrade() {
                        target.metrics.keep_alive_expired();
                    }
                    self.destroy("keep-alive timeout");
                    return;
                }
            };
            let sleep = async {
                match next_check {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.teardown.cancelled() => return,
                _ = self.kato_changed.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// I/O queue bookkeeping for Connect (NVMe-oF 1.1 §3.3: each QID connects once).
    pub fn claim_io_queue(&self, qid: u16) -> Result<(), Status> {
        let limit = match self.features().queues_granted {
            Some(n) => u32::from(n) + 1,
            None => u32::from(self.params.max_io_queues),
        };
        if qid == 0 || u32::from(qid) > limit {
            return Err(Status::CONNECT_INVALID_PARAMETERS);
        }
        if !self.io_queues.lock_counted().insert(qid) {
            return Err(Status::CONNECT_INVALID_PARAMETERS);
        }
        Ok(())
    }

    /// The counters an I/O queue with this QID updates.
    pub fn queue_counters(&self, qid: u16) -> Arc<IoCounters> {
        self.queue_counters
            .lock_counted()
            .entry(qid)
            .or_default()
            .clone()
    }

    /// SMART totals: the sum over every I/O queue.
    pub fn io_totals(&self) -> IoTotals {
        let mut t = IoTotals::default();
        for c in self.queue_counters.lock_counted().values() {
            t.bytes_read += c.bytes_read.load(Ordering::Relaxed);
            t.bytes_written += c.bytes_written.load(Ordering::Relaxed);
            t.read_commands += c.read_commands.load(Ordering::Relaxed);
            t.write_commands += c.write_commands.load(Ordering::Relaxed);
        }
        t
    }

    pub fn release_io_queue(&self, qid: u16) {
        self.io_queues.lock_counted().remove(&qid);
    }

    pub fn io_queue_count(&self) -> usize {
        self.io_queues.lock_counted().len()
    }

    /// Tear the controller down: its connections close and it leaves the target.
    pub fn destroy(&self, reason: &str) {
        if self.destroyed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.ready.store(false, Ordering::Release);
        self.teardown.cancel();
        let remaining = match self.target.upgrade() {
            Some(t) => t.remove_destroyed_controller(self.cntlid, reason),
            None => 0,
        };
        tracing::info!(
            cntlid = self.cntlid,
            subnqn = %self.subsystem_nqn(),
            hostnqn = %self.hostnqn,
            reason,
            active_controllers = remaining,
            "controller destroyed"
        );
    }

    /// Record a failed command in the Error Information log.
    pub fn record_error(&self, sqid: u16, sqe: &Sqe, status: Status) {
        self.errors.lock_counted().record(sqid, sqe, status);
    }
}

/// Run `execute` and put every failed completion in the controller's error log.
pub fn record_failures(
    ctrl: &Arc<Controller>,
    sqid: u16,
    request: Request,
    execute: impl FnOnce(Request) -> Completion,
) -> Completion {
    let sqe = request.sqe;
    match execute(request) {
        Completion::Ready(r) => {
            if !r.status.is_success() {
                ctrl.record_error(sqid, &sqe, r.status);
            }
            Completion::Ready(r)
        }
        // A handler that queues commands records their failures when they finish.
        Completion::Queued => Completion::Queued,
        Completion::Pending(fut) => {
            let ctrl = ctrl.clone();
            Completion::Pending(Box::pin(async move {
                let r = fut.await;
                if !r.status.is_success() {
                    ctrl.record_error(sqid, &sqe, r.status);
                }
                r
            }))
        }
    }
}

/// Run a backend call inline when it cannot block, or on the blocking pool when it can.
pub fn run_backend<F>(may_block: bool, f: F) -> Completion
where
    F: FnOnce() -> Response + Send + 'static,
{
    if may_block {
        Completion::Pending(Box::pin(async move {
            match tokio::task::spawn_blocking(f).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "backend task failed");
                    Response::status(Status::INTERNAL_ERROR)
                }
            }
        }))
    } else {
        Completion::Ready(f())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::AdminQueue;
    use crate::io::IoQueue;
    use fabric::queue::QueueHandler;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn controller(kind: ControllerKind, kato_ms: u32) -> Arc<Controller> {
        Controller::new(
            1,
            kind,
            HostIdentity {
                hostnqn: "nqn.2014-08.org.nvmexpress:uuid:0".into(),
                hostid: [0; 16],
                transport: crate::config::TransportKind::Tcp,
                local: "127.0.0.1:4420".parse().unwrap(),
            },
            kato_ms,
            Arc::new(TargetParams::default()),
            Weak::new(),
        )
    }

    fn nvm_controller(kato_ms: u32) -> (Arc<Controller>, Arc<Subsystem>) {
        let sub = Arc::new(Subsystem::new(
            "nqn.2026-01.io.ferrofab:ka".into(),
            "S".into(),
            "M".into(),
            "F".into(),
            None,
            None,
        ));
        (controller(ControllerKind::Nvm(sub.clone()), kato_ms), sub)
    }

    fn expired(v: Verdict) -> bool {
        matches!(v, Verdict::Expired { .. })
    }

    /// A raw command the (not yet enabled) controller fails: still a command it processed.
    fn request(opcode: u8) -> Request {
        Request::new(
            Sqe {
                opcode,
                ..Default::default()
            },
            None,
        )
    }

    #[test]
    fn io_on_any_queue_restarts_the_timer() {
        let (ctrl, sub) = nvm_controller(1000);
        let t = Instant::now(); // after the timer started
        assert!(!expired(ctrl.check_keep_alive(t + ms(500))));
        // A command on I/O queue 3 (a reactor's), through the queue's submit path.
        let mut q = IoQueue::new(ctrl.clone(), sub, 3, None);
        let done = q.submit(request(0x02));
        assert!(matches!(done, Completion::Ready(r) if !r.status.is_success()));
        assert_eq!(ctrl.queue_counters(3).commands.load(Ordering::Relaxed), 1);
        // Seen at the next look (1000 ms): the timer runs from there.
        assert!(!expired(ctrl.check_keep_alive(t + ms(1000))));
        assert!(!expired(ctrl.check_keep_alive(t + ms(2099))));
        // Traffic on another queue later keeps it going.
        ctrl.queue_counters(7).add_command();
        assert!(!expired(ctrl.check_keep_alive(t + ms(2099))));
        assert!(!expired(ctrl.check_keep_alive(t + ms(3198))));
        assert!(expired(ctrl.check_keep_alive(t + ms(3199))));
    }

    #[test]
    fn any_admin_command_restarts_the_timer() {
        let ctrl = controller(ControllerKind::Discovery, 1000);
        std::thread::sleep(ms(20));
        let before = Instant::now();
        // Not Keep Alive, and failed (the controller is not enabled): it still counts.
        let done = AdminQueue::new(ctrl.clone(), None).submit(request(0x06));
        assert!(matches!(done, Completion::Ready(r) if !r.status.is_success()));
        let after = Instant::now();
        // Restarted at or after `before`: without the restart, expired 20 ms earlier.
        assert!(!expired(ctrl.check_keep_alive(before + ms(1099))));
        assert!(expired(ctrl.check_keep_alive(after + ms(1100))));
    }

    #[test]
    fn set_features_kato_restarts_and_zero_disables() {
        let ctrl = controller(ControllerKind::Discovery, 1000);
        std::thread::sleep(ms(20));
        let before = Instant::now();
        ctrl.set_kato_ms(2000);
        let after = Instant::now();
        assert_eq!(ctrl.kato_ms(), 2000);
        // The new KATO runs from the Set Features, not from Connect.
        assert!(!expired(ctrl.check_keep_alive(before + ms(2099))));
        assert!(expired(ctrl.check_keep_alive(after + ms(2100))));
        ctrl.set_kato_ms(0);
        assert_eq!(
            ctrl.check_keep_alive(after + ms(3_600_000)),
            Verdict::Disabled
        );
    }
}
