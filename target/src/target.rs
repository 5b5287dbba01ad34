//! The target: subsystems, listeners and the controller table; Fabrics Connect
//! (NVMe-oF 1.1 §3.3) turns a new transport queue into an admin or I/O queue.

use ferrofab_sync::{CountedLock as _, CountedRwLock as _};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fabric::queue::{Connected, ConnectionInfo, Response, Target};
use nvme::command::{
    Connect, ConnectData, ConnectDataError, FabricsCommand, NqnError, CNTLID_DYNAMIC,
};
use nvme::{Sqe, Status};

use crate::admin::AdminQueue;
use crate::auth::{AuthTable, HostAuth, QueueAuth, CONNECT_AUTHREQ_ATR};
use crate::config::TransportKind;
use crate::controller::{Controller, ControllerKind, HostIdentity, TargetParams};
use crate::events::{self, Category, EventLog, NewEvent};
use crate::io::IoQueue;
use crate::metrics::{QueueKind, RefusedConnect, TargetMetrics};
use crate::nqn::DISCOVERY_NQN;
use crate::subsystem::Subsystem;
use crate::tls_psks::PskTable;
use fabric::tcp::tls::TlsMode;
use nvme::features::{AsyncEvent, AsyncEventConfig};

/// Dynamic controllers get IDs in 1..=FFEFh (NVMe Base 2.0 §3.1.1: FFF0h and above reserved).
const MAX_CNTLID: u16 = 0xffef;

/// Byte offsets used in Connect's Invalid Parameter response (NVMe-oF 1.1 Figure 21/22).
const SQE_OFFSET_QID: u16 = 42;
const SQE_OFFSET_SQSIZE: u16 = 44;
const DATA_OFFSET_HOSTID: u16 = 0;
pub(crate) const DATA_OFFSET_CNTLID: u16 = 16;
pub(crate) const DATA_OFFSET_SUBNQN: u16 = 256;
const DATA_OFFSET_HOSTNQN: u16 = 512;

/// A transport listener (a "port" in discovery terms: each PORTID of the Discovery log has
/// one TRTYPE, NVMe-oF 1.1 Figure 38, so a TCP and an RDMA listener on one address are two).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub portid: u16,
    pub transport: TransportKind,
    pub address: SocketAddr,
    /// NVMe/TCP TLS: announced in the discovery log (TREQ, TSAS).
    pub tls: TlsMode,
}

/// A bound listener's identity: its transport and the address it is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId {
    pub transport: TransportKind,
    pub address: SocketAddr,
}

impl ListenerId {
    pub fn new(transport: TransportKind, address: SocketAddr) -> ListenerId {
        ListenerId { transport, address }
    }
}

impl Listener {
    pub fn id(&self) -> ListenerId {
        ListenerId::new(self.transport, self.address)
    }
}

pub struct TargetInner {
    pub params: Arc<TargetParams>,
    /// Changed only by the engine (listeners open and close at run time); read at Connect
    /// and for the discovery log.
    listeners: RwLock<Vec<Listener>>,
    subsystems: RwLock<BTreeMap<String, Arc<Subsystem>>>,
    controllers: Mutex<ControllerTable>,
    discovery_genctr: AtomicU64,
    pub metrics: TargetMetrics,
    /// What happened lately (connects, refusals, disconnects, events, changes).
    pub events: EventLog,
    /// Hosts that authenticate (DH-HMAC-CHAP); swapped whole by the engine, read at
    /// Connect.
    auth: RwLock<Arc<AuthTable>>,
    /// NVMe/TCP TLS PSKs; swapped whole by the engine, read at each TLS handshake.
    tls_psks: RwLock<Arc<PskTable>>,
}

#[derive(Default)]
struct ControllerTable {
    by_id: BTreeMap<u16, Arc<Controller>>,
    next: u16,
}

impl ControllerTable {
    fn allocate(&mut self) -> Option<u16> {
        for _ in 0..MAX_CNTLID {
            self.next = if self.next >= MAX_CNTLID {
                1
            } else {
                self.next + 1
            };
            if !self.by_id.contains_key(&self.next) {
                return Some(self.next);
            }
        }
        None
    }
}

/// The target as transports and the daemon hold it.
#[derive(Clone)]
pub struct FabricTarget {
    inner: Arc<TargetInner>,
}

impl FabricTarget {
    pub fn new(params: TargetParams, listeners: Vec<Listener>) -> FabricTarget {
        FabricTarget {
            inner: Arc::new(TargetInner {
                params: Arc::new(params),
                listeners: RwLock::new(listeners),
                subsystems: RwLock::new(BTreeMap::new()),
                controllers: Mutex::new(ControllerTable::default()),
                discovery_genctr: AtomicU64::new(1),
                metrics: TargetMetrics::default(),
                events: EventLog::default(),
                auth: RwLock::new(Arc::new(AuthTable::default())),
                tls_psks: RwLock::new(Arc::new(PskTable::default())),
            }),
        }
    }

    pub fn inner(&self) -> &Arc<TargetInner> {
        &self.inner
    }

    /// The hosts that authenticate from now on (queues connected before keep theirs).
    pub fn set_auth(&self, table: AuthTable) {
        *self.inner.auth.write_counted() = Arc::new(table);
    }

    pub(crate) fn tls_psk_table(&self) -> Arc<PskTable> {
        self.inner.tls_psks.read_counted().clone()
    }

    /// The TLS PSKs handshakes use from now on (connections already up keep theirs).
    pub fn set_tls_psks(&self, table: PskTable) {
        *self.inner.tls_psks.write_counted() = Arc::new(table);
    }

    /// Target-wide counters (connects, refusals, events, reactors).
    pub fn metrics(&self) -> &TargetMetrics {
        &self.inner.metrics
    }

    /// The record of recent connects, refusals, disconnects, events and changes.
    pub fn events(&self) -> &EventLog {
        &self.inner.events
    }

    pub fn add_subsystem(&self, subsystem: Arc<Subsystem>) -> Result<(), String> {
        {
            let mut map = self.inner.subsystems.write_counted();
            if map.contains_key(&subsystem.nqn) {
                return Err(format!("subsystem {} already exists", subsystem.nqn));
            }
            map.insert(subsystem.nqn.clone(), subsystem);
        }
        self.inner.discovery_changed();
        Ok(())
    }

    /// Remove a subsystem: its controllers are destroyed, hosts lose it from the discovery
    /// log (and persistent discovery controllers get a log change event).
    pub fn remove_subsystem(&self, nqn: &str, reason: &str) -> Option<Arc<Subsystem>> {
        let removed = self.inner.subsystems.write_counted().remove(nqn)?;
        for c in removed.controllers() {
            c.destroy(reason);
        }
        self.inner.discovery_changed();
        Some(removed)
    }

    pub fn subsystem(&self, nqn: &str) -> Option<Arc<Subsystem>> {
        self.inner.subsystem(nqn)
    }

    /// Controllers whose admin queue came through the bound listener `id`.
    pub fn controllers_through(&self, id: ListenerId) -> usize {
        self.controllers()
            .iter()
            .filter(|c| through_listener(c, id))
            .count()
    }

    /// A live controller by CNTLID.
    pub fn controller(&self, cntlid: u16) -> Option<Arc<Controller>> {
        self.inner.controller(cntlid)
    }

    pub fn subsystems(&self) -> Vec<Arc<Subsystem>> {
        self.inner.subsystems()
    }

    pub fn controller_count(&self) -> usize {
        self.inner.controllers.lock_counted().by_id.len()
    }

    pub fn controllers(&self) -> Vec<Arc<Controller>> {
        self.inner
            .controllers
            .lock_counted()
            .by_id
            .values()
            .cloned()
            .collect()
    }

    /// Tear every controller down (daemon shutdown).
    pub fn destroy_all(&self, reason: &str) {
        for c in self.controllers() {
            c.destroy(reason);
        }
    }
}

impl TargetInner {
    pub fn listeners(&self) -> Vec<Listener> {
        self.listeners.read_counted().clone()
    }

    /// Serve on one more (bound) listener: it gets the lowest free port ID and appears in
    /// the discovery log (persistent discovery controllers get a log change event).
    pub fn add_listener(&self, id: ListenerId, tls: TlsMode) -> Listener {
        let listener = {
            let mut list = self.listeners.write_counted();
            let portid = (1..=u16::MAX)
                .find(|id| !list.iter().any(|l| l.portid == *id))
                .unwrap_or(u16::MAX);
            let l = Listener {
                portid,
                transport: id.transport,
                address: id.address,
                tls,
            };
            list.push(l.clone());
            l
        };
        self.discovery_changed();
        listener
    }

    /// Stop serving on listener `id`: it leaves the discovery log, and the controllers whose
    /// admin queue came through it are destroyed; returns how many.
    pub fn remove_listener(&self, id: ListenerId, reason: &str) -> usize {
        self.listeners.write_counted().retain(|l| l.id() != id);
        let through: Vec<Arc<Controller>> = self
            .controllers
            .lock_counted()
            .by_id
            .values()
            .filter(|c| through_listener(c, id))
            .cloned()
            .collect();
        for c in &through {
            c.destroy(reason);
        }
        self.discovery_changed();
        through.len()
    }

    pub fn subsystem(&self, nqn: &str) -> Option<Arc<Subsystem>> {
        self.subsystems.read_counted().get(nqn).cloned()
    }

    /// The keys of `hostnqn` if it authenticates.
    pub fn host_auth(&self, hostnqn: &str) -> Option<Arc<HostAuth>> {
        self.auth.read_counted().get(hostnqn)
    }

    pub fn subsystems(&self) -> Vec<Arc<Subsystem>> {
        self.subsystems.read_counted().values().cloned().collect()
    }

    pub fn discovery_genctr(&self) -> u64 {
        self.discovery_genctr.load(Ordering::Acquire)
    }

    /// The discovery information changed: bump GENCTR and tell persistent discovery
    /// controllers (NVMe-oF 1.1 §5.3, Discovery Log Page Change notice).
    pub fn discovery_changed(&self) {
        self.discovery_genctr.fetch_add(1, Ordering::AcqRel);
        let discovery: Vec<Arc<Controller>> = self
            .controllers
            .lock_counted()
            .by_id
            .values()
            .filter(|c| c.is_discovery())
            .cloned()
            .collect();
        events::record_raised(
            &self.events,
            DISCOVERY_NQN,
            events::DISCOVERY_LOG_CHANGE,
            &discovery,
        );
        for c in discovery {
            c.raise_event(
                AsyncEvent::discovery_log_change(),
                AsyncEventConfig::DISCOVERY_LOG_CHANGE,
            );
        }
    }

    /// The listener a connection of `transport` arrived on: exact address, or a wildcard on
    /// that port.
    pub fn listener_for(&self, transport: TransportKind, local: &SocketAddr) -> Option<Listener> {
        let list = self.listeners.read_counted();
        let mut of_transport = list.iter().filter(|l| l.transport == transport);
        of_transport
            .clone()
            .find(|l| l.address == *local)
            .or_else(|| {
                of_transport
                    .find(|l| l.address.ip().is_unspecified() && l.address.port() == local.port())
            })
            .cloned()
    }

    /// Remove a destroyed controller, recording why it was destroyed in the event log;
    /// returns how many remain.
    pub fn remove_destroyed_controller(&self, cntlid: u16, reason: &str) -> usize {
        let (removed, remaining) = {
            let mut table = self.controllers.lock_counted();
            let removed = table.by_id.remove(&cntlid);
            (removed, table.by_id.len())
        };
        if let Some(c) = removed {
            let subnqn = c.subsystem_nqn();
            self.events.record(
                NewEvent::new(
                    Category::Disconnected,
                    format!("controller {cntlid} of {subnqn} torn down: {reason}"),
                )
                .subsystem(subnqn)
                .host(c.hostnqn.as_str())
                .cntlid(cntlid),
            );
        }
        remaining
    }

    fn controller(&self, cntlid: u16) -> Option<Arc<Controller>> {
        self.controllers.lock_counted().by_id.get(&cntlid).cloned()
    }
}

/// Whether `ctrl`'s admin queue arrived through listener `id`: its transport, and its bound
/// address exactly or its port for a wildcard address.
fn through_listener(ctrl: &Controller, id: ListenerId) -> bool {
    let address = id.address;
    ctrl.transport == id.transport
        && (ctrl.local == address
            || (address.ip().is_unspecified() && ctrl.local.port() == address.port()))
}

/// Connect failure with the Invalid Parameter location in DW0: IPO in bits 15:0 and IATTR
/// (1 = in the Connect data, 0 = in the SQE) in bit 16 (NVMe-oF 1.1 §3.3, Figure 22).
fn invalid_param(in_data: bool, offset: u16) -> Response {
    Response::status(Status::CONNECT_INVALID_PARAMETERS.with_dnr())
        .with_dw0(u32::from(offset) | (u32::from(in_data) << 16))
}

impl Target for FabricTarget {
    fn connect(
        &self,
        conn: &ConnectionInfo,
        sqe: &Sqe,
        data: &[u8],
    ) -> Result<Connected, Response> {
        let result = self.checked_connect(conn, sqe, data);
        let metrics = &self.inner.metrics;
        match &result {
            Ok(c) if c.qid == 0 => metrics.connected(QueueKind::Admin),
            Ok(_) => metrics.connected(QueueKind::Io),
            Err(r) => {
                let why = RefusedConnect::of(r);
                metrics.refused(why);
                self.inner.events.record(refusal(conn, sqe, data, why, r));
            }
        }
        result
    }
}

/// The event record of a refused Connect: what the command and its data name, as far as
/// they could be read.
fn refusal(
    conn: &ConnectionInfo,
    sqe: &Sqe,
    data: &[u8],
    why: RefusedConnect,
    response: &Response,
) -> NewEvent {
    let queue = match FabricsCommand::decode(sqe) {
        Ok(FabricsCommand::Connect(c)) if c.qid == 0 => "admin queue".to_string(),
        Ok(FabricsCommand::Connect(c)) => format!("I/O queue {}", c.qid),
        _ => "queue".to_string(),
    };
    let cd = ConnectData::from_bytes(data).ok();
    let subnqn = cd
        .as_ref()
        .and_then(|d| d.subnqn().ok().map(str::to_string));
    let hostnqn = cd
        .as_ref()
        .and_then(|d| d.hostnqn().ok().map(str::to_string));
    let mut event = NewEvent::new(
        Category::ConnectRefused,
        format!(
            "{queue} connect from {} refused ({}): {}",
            conn.peer,
            why.label().replace('_', " "),
            response.status
        ),
    );
    if let Some(s) = subnqn {
        event = event.subsystem(s);
    }
    if let Some(h) = hostnqn {
        event = event.host(h);
    }
    event
}

impl FabricTarget {
    fn checked_connect(
        &self,
        conn: &ConnectionInfo,
        sqe: &Sqe,
        data: &[u8],
    ) -> Result<Connected, Response> {
        let cmd = match FabricsCommand::decode(sqe) {
            Ok(FabricsCommand::Connect(c)) => c,
            // The first command on a queue must be a Connect (NVMe-oF 1.1 §3.3).
            Ok(_) => return Err(Response::status(Status::COMMAND_SEQUENCE_ERROR.with_dnr())),
            Err(e) => return Err(Response::status(e.status())),
        };
        if cmd.recfmt != 0 {
            return Err(Response::status(
                Status::CONNECT_INCOMPATIBLE_FORMAT.with_dnr(),
            ));
        }
        let cd = ConnectData::from_bytes(data).map_err(|_| invalid_param(true, 0))?;
        let subnqn = cd
            .subnqn()
            .map_err(|_| invalid_param(true, DATA_OFFSET_SUBNQN))?;
        // Some hosts send an empty HOSTNQN unless their user configures one. It names no
        // host, so only a subsystem open to any host (and the discovery controller) accepts
        // it; an allow-list refuses it below like any host not on the list.
        let hostnqn = match cd.hostnqn() {
            Err(ConnectDataError::HostNqn(NqnError::Empty)) => "",
            Ok(nqn) if crate::nqn::validate(nqn).is_ok() => nqn,
            _ => return Err(invalid_param(true, DATA_OFFSET_HOSTNQN)),
        };
        // NVMe/TCP 1.1 §3.6.1.4: the TLS PSK identity names the host and the subsystem the
        // key is for; a Connect through that channel may name only those.
        if let Some(ch) = &conn.secure {
            if ch.hostnqn != hostnqn || ch.subnqn != subnqn {
                tracing::debug!(peer = %conn.peer, tls_host = %ch.hostnqn, tls_sub = %ch.subnqn,
                    hostnqn, subnqn, "connect names another host or subsystem than its TLS PSK");
                return Err(Response::status(Status::CONNECT_INVALID_HOST.with_dnr()));
            }
        }
        // SQSIZE is 0's based; a 1-entry queue cannot work (NVMe Base 2.0 §4.1.3).
        if cmd.sqsize == 0 || cmd.sqsize > self.inner.params.mqes {
            return Err(invalid_param(false, SQE_OFFSET_SQSIZE));
        }
        let result = if cmd.qid == 0 {
            self.connect_admin(conn, &cmd, &cd, subnqn, hostnqn)
        } else {
            self.connect_io(&cmd, &cd, subnqn, hostnqn)
        };
        if let Err(r) = &result {
            tracing::debug!(qid = cmd.qid, subnqn, ?hostnqn, status = %r.status, peer = %conn.peer,
                "connect refused");
        }
        result
    }

    fn connect_admin(
        &self,
        conn: &ConnectionInfo,
        cmd: &Connect,
        cd: &ConnectData,
        subnqn: &str,
        hostnqn: &str,
    ) -> Result<Connected, Response> {
        // Dynamic controller model: the host asks for "any" controller.
        if cd.cntlid() != CNTLID_DYNAMIC {
            return Err(invalid_param(true, DATA_OFFSET_CNTLID));
        }
        let kind = if subnqn == DISCOVERY_NQN {
            ControllerKind::Discovery
        } else {
            let sub = self
                .inner
                .subsystem(subnqn)
                .filter(|s| {
                    let transport = TransportKind::from_fabric(conn.transport);
                    match self.inner.listener_for(transport, &conn.local) {
                        Some(l) => s.on_listener(&l.id()),
                        None => false,
                    }
                })
                .ok_or_else(|| invalid_param(true, DATA_OFFSET_SUBNQN))?;
            if sub.has_allow_list() && hostnqn.is_empty() {
                // NVMe-oF 1.1 §3.3: an allow-list cannot match an empty HOSTNQN: Connect
                // Invalid Parameters with IATTR = 1, IPO = the HOSTNQN offset in the data.
                return Err(invalid_param(true, DATA_OFFSET_HOSTNQN));
            }
            if !sub.host_allowed(hostnqn) {
                // NVMe-oF 1.1 §3.3: Connect Invalid Host.
                return Err(Response::status(Status::CONNECT_INVALID_HOST.with_dnr()));
            }
            ControllerKind::Nvm(sub)
        };
        // NVMe Base 2.0 §8.13.5.1: a host with a key authenticates on every queue of an NVM
        // subsystem (the discovery controller asks for none, as Linux nvmet).
        let auth = match &kind {
            ControllerKind::Nvm(_) => self.inner.host_auth(hostnqn),
            ControllerKind::Discovery => None,
        };
        let (ctrl, active) = {
            let mut table = self.inner.controllers.lock_counted();
            let Some(cntlid) = table.allocate() else {
                return Err(Response::status(Status::CONNECT_CONTROLLER_BUSY));
            };
            let ctrl = Controller::new(
                cntlid,
                kind,
                HostIdentity {
                    hostnqn: hostnqn.to_string(),
                    hostid: cd.hostid(),
                    transport: TransportKind::from_fabric(conn.transport),
                    local: conn.local,
                },
                cmd.kato,
                self.inner.params.clone(),
                Arc::downgrade(&self.inner),
            );
            table.by_id.insert(cntlid, ctrl.clone());
            (ctrl, table.by_id.len())
        };
        if let Some(sub) = ctrl.subsystem() {
            sub.register_controller(&ctrl);
        }
        tokio::spawn(ctrl.clone().keep_alive_timer());
        tracing::info!(
            cntlid = ctrl.cntlid,
            subnqn,
            ?hostnqn,
            kato_ms = cmd.kato,
            peer = %conn.peer,
            active_controllers = active,
            "controller created"
        );
        self.inner.events.record(
            NewEvent::new(
                Category::Connected,
                format!(
                    "controller {} of {subnqn} created for a host at {} (keep-alive {}){}",
                    ctrl.cntlid,
                    conn.peer,
                    match cmd.kato {
                        0 => "off".to_string(),
                        ms => format!("{ms} ms"),
                    },
                    conn.secure
                        .as_ref()
                        .map(|ch| format!(", over TLS ({})", ch.cipher))
                        .unwrap_or_default()
                ),
            )
            .subsystem(subnqn)
            .host(hostnqn)
            .cntlid(ctrl.cntlid),
        );
        Ok(Connected {
            response: Response::success().with_dw0(connect_dw0(ctrl.cntlid, auth.is_some())),
            handler: Box::new(AdminQueue::new(
                ctrl,
                auth.map(|a| QueueAuth::new(&a, hostnqn, subnqn)),
            )),
            qid: 0,
            sqsize: cmd.sq_entries(),
            sq_flow_control_disabled: cmd.sq_flow_control_disabled(),
        })
    }

    fn connect_io(
        &self,
        cmd: &Connect,
        cd: &ConnectData,
        subnqn: &str,
        hostnqn: &str,
    ) -> Result<Connected, Response> {
        let ctrl = self
            .inner
            .controller(cd.cntlid())
            .filter(|c| !c.is_destroyed())
            .ok_or_else(|| invalid_param(true, DATA_OFFSET_CNTLID))?;
        // The I/O queue must come from the same host for the same subsystem (NVMe-oF 1.1 §3.3).
        if ctrl.subsystem_nqn() != subnqn {
            return Err(invalid_param(true, DATA_OFFSET_SUBNQN));
        }
        if ctrl.hostnqn != hostnqn {
            return Err(invalid_param(true, DATA_OFFSET_HOSTNQN));
        }
        if ctrl.hostid != cd.hostid() {
            return Err(invalid_param(true, DATA_OFFSET_HOSTID));
        }
        let Some(sub) = ctrl.subsystem().cloned() else {
            // A discovery controller has no I/O queues.
            return Err(invalid_param(false, SQE_OFFSET_QID));
        };
        if !ctrl.is_ready() {
            return Err(Response::status(Status::COMMAND_SEQUENCE_ERROR.with_dnr()));
        }
        ctrl.claim_io_queue(cmd.qid)
            .map_err(|_| invalid_param(false, SQE_OFFSET_QID))?;
        tracing::debug!(cntlid = ctrl.cntlid, qid = cmd.qid, "I/O queue connected");
        let auth = self.inner.host_auth(hostnqn);
        Ok(Connected {
            response: Response::success().with_dw0(connect_dw0(ctrl.cntlid, auth.is_some())),
            handler: Box::new(IoQueue::new(
                ctrl,
                sub,
                cmd.qid,
                auth.map(|a| QueueAuth::new(&a, hostnqn, subnqn)),
            )),
            qid: cmd.qid,
            sqsize: cmd.sq_entries(),
            sq_flow_control_disabled: cmd.sq_flow_control_disabled(),
        })
    }
}

/// A Connect response's DW0: the controller ID, and AUTHREQ.ATR when the host must
/// authenticate the queue (NVMe-oF 1.1 §3.3, NVMe Base 2.0 §8.13.5.1).
fn connect_dw0(cntlid: u16, authenticate: bool) -> u32 {
    u32::from(cntlid) | if authenticate { CONNECT_AUTHREQ_ATR } else { 0 }
}
