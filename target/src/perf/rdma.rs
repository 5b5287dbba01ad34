//! `ferrofab perf --transport rdma`: every queue over NVMe/RDMA. The admin queues are
//! polled NVMe/RDMA queues too, set up here without tokio: Connect, enable the controller
//! (Property Set CC.EN, wait for CSTS.RDY), Identify Namespace, Number of Queues. Keep-alive
//! is off (KATO 0 in Connect), so the admin queue needs no timer while the load runs.

use std::time::Instant;

use fabric::initiator::command::{self, PropertySize};
use fabric::initiator::controller::{enabled, enabling_cc};
use fabric::initiator::polled::{ConnectIdentity, PolledQueueOptions};
use fabric::initiator::rdma::RdmaPolledQueue;
use fabric::initiator::{HostError, HostOptions};
use nvme::identify::IdentifyNamespace;
use nvme::properties::{self, Csts};

use super::{
    enough_queues, geometry_of, host_err, run_blocking, PerfConfig, PerfError, PerfReport,
    QueuePlan, SETUP_TIMEOUT,
};

/// Admin queue entries (Linux NVME_AQ_DEPTH).
const ADMIN_QUEUE_SIZE: u16 = 32;
/// Identify data is 4 KiB (NVMe Base 2.0 §5.17).
const IDENTIFY_LEN: u32 = 4096;

struct Admin {
    q: RdmaPolledQueue,
    cap: u64,
}

/// Connect the admin queues, run the load over RDMA I/O queues, disconnect.
pub(super) fn run(cfg: &PerfConfig) -> Result<PerfReport, PerfError> {
    let mut host = HostOptions::default();
    if let Some(n) = &cfg.hostnqn {
        host.hostnqn = n.clone();
    }
    let mut admins = Vec::new();
    for c in 0..cfg.connections {
        match connect_admin(cfg, &host) {
            Ok(a) => admins.push(a),
            Err(e) => {
                disconnect_all(admins);
                return Err(match e {
                    PerfError::Host { context, source } => PerfError::Host {
                        context: format!("connection {c}: {context}"),
                        source,
                    },
                    other => other,
                });
            }
        }
    }
    let geometry = match geometry(cfg, &mut admins[0]) {
        Ok(g) => g,
        Err(e) => {
            disconnect_all(admins);
            return Err(e);
        }
    };
    let plan: Vec<QueuePlan> = admins
        .iter()
        .flat_map(|a| {
            let cntlid = a.q.cntlid();
            let host = &host;
            (1..=cfg.queues).map(move |qid| QueuePlan {
                qid,
                subnqn: cfg.nqn.clone(),
                hostnqn: host.hostnqn.clone(),
                hostid: host.hostid,
                cntlid,
            })
        })
        .collect();
    let result = run_blocking(cfg, &geometry, plan);
    disconnect_all(admins);
    result
}

fn disconnect_all(admins: Vec<Admin>) {
    for a in admins {
        if let Err(e) = a.q.disconnect(SETUP_TIMEOUT) {
            tracing::warn!(error = %e, "admin queue disconnect");
        }
    }
}

fn connect_admin(cfg: &PerfConfig, host: &HostOptions) -> Result<Admin, PerfError> {
    let context = format!("connecting to {} ({}) over RDMA", cfg.target, cfg.nqn);
    let q = RdmaPolledQueue::connect(
        cfg.target,
        PolledQueueOptions {
            qid: 0,
            header_digest: false,
            data_digest: false,
            in_capsule_data: 0,
            queue_size: ADMIN_QUEUE_SIZE,
            disable_sqflow: false,
            timeout: SETUP_TIMEOUT,
        },
        ConnectIdentity {
            subnqn: &cfg.nqn,
            hostnqn: &host.hostnqn,
            hostid: host.hostid,
            cntlid: 0xffff,
        },
    )
    .map_err(host_err(context))?;
    let mut admin = Admin { q, cap: 0 };
    enable(&mut admin).map_err(host_err("enabling the controller"))?;
    let done = admin
        .q
        .command(command::set_number_of_queues(cfg.queues), None, 0)
        .map_err(host_err("Set Features Number of Queues"))?;
    if !done.status().is_success() {
        return Err(host_err("Set Features Number of Queues")(
            HostError::Status(done.status()),
        ));
    }
    enough_queues(cfg, done.cqe.dw0.get())?;
    Ok(admin)
}

fn property_get(
    q: &mut RdmaPolledQueue,
    offset: u32,
    size: PropertySize,
) -> Result<u64, HostError> {
    let done = q.command(command::property_get(offset, size), None, 0)?;
    if !done.status().is_success() {
        return Err(HostError::Status(done.status()));
    }
    // NVMe-oF 1.1 §3.4: the value is in DW0 (and DW1 for 8 bytes).
    Ok(u64::from(done.cqe.dw0.get()) | u64::from(done.cqe.dw1.get()) << 32)
}

/// NVMe Base 2.0 §3.5.1: CC.EN = 1 with the queue entry sizes, then wait for CSTS.RDY.
fn enable(a: &mut Admin) -> Result<(), HostError> {
    a.cap = property_get(&mut a.q, properties::CAP, PropertySize::Eight)?;
    let cc = enabling_cc(a.cap);
    let done = a.q.command(
        command::property_set(properties::CC, PropertySize::Four, u64::from(cc.0)),
        None,
        0,
    )?;
    if !done.status().is_success() {
        return Err(HostError::Status(done.status()));
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let csts = Csts(property_get(&mut a.q, properties::CSTS, PropertySize::Four)? as u32);
        if enabled(csts)? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(HostError::Timeout);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn geometry(cfg: &PerfConfig, a: &mut Admin) -> Result<super::Geometry, PerfError> {
    let done =
        a.q.command(command::identify(0, cfg.nsid, 0, 0), None, IDENTIFY_LEN)
            .map_err(host_err("Identify Namespace"))?;
    if !done.status().is_success() {
        return Err(PerfError::Namespace {
            nsid: cfg.nsid,
            reason: format!("Identify Namespace failed: {}", done.status()),
        });
    }
    let ns = IdentifyNamespace::from_bytes(&done.data).ok_or_else(|| {
        host_err("Identify Namespace")(HostError::Protocol(format!(
            "Identify Namespace returned {} bytes",
            done.data.len()
        )))
    })?;
    // Writes travel by RDMA READ from the host's registered slots, never in-capsule.
    geometry_of(cfg, &ns, a.cap, 0)
}
