//! The discovery log a host sees (NVMe-oF 1.1 §5): every listener of every subsystem it may
//! connect to, plus one entry per listener for this discovery subsystem itself.

use std::net::{IpAddr, SocketAddr};

use nvme::log_page::{
    AddressFamily, DiscoveryLog, DiscoveryRecord, RdmaTsas, SubsystemType, TcpSecurityType,
    TransportType, EFLAGS_DUPRETINFO, EFLAGS_EPCSD, TREQ_DISABLE_SQ_FLOW_CONTROL,
    TREQ_SECURE_CHANNEL_NOT_REQUIRED, TREQ_SECURE_CHANNEL_REQUIRED, TSAS_LEN,
};

use crate::config::TransportKind;
use crate::nqn::DISCOVERY_NQN;
use crate::target::{Listener, TargetInner};
use fabric::tcp::tls::TlsMode;

/// Admin submission queue size hosts may use (ASQSZ).
pub const ADMIN_SQ_SIZE: u16 = 32;

/// TRTYPE of a transport (NVMe-oF 1.1 Figure 38, Transport Type codes): RDMA 1, TCP 3.
pub fn trtype(transport: TransportKind) -> TransportType {
    match transport {
        TransportKind::Tcp => TransportType::Tcp,
        TransportKind::Rdma => TransportType::Rdma,
    }
}

/// The transport specific address subtype of a listener's records: for TCP the SECTYPE,
/// TLS 1.3 where the listener speaks TLS, else none (NVMe/TCP 1.1 §3.6.1, Figure 5); for
/// RDMA reliable connected QPs, no provider specified, RDMA_IP_CM, no partition key
/// (NVMe/RDMA 1.0 Figure 3), as Linux nvmet reports.
fn tsas(l: &Listener) -> [u8; TSAS_LEN] {
    match (l.transport, l.tls) {
        (TransportKind::Tcp, TlsMode::None) => DiscoveryRecord::tcp_tsas(TcpSecurityType::None),
        (TransportKind::Tcp, TlsMode::Optional | TlsMode::Required) => {
            DiscoveryRecord::tcp_tsas(TcpSecurityType::Tls13)
        }
        (TransportKind::Rdma, _) => DiscoveryRecord::rdma_tsas(RdmaTsas::RDMA_CM),
    }
}

/// TREQ (NVMe-oF 1.1 Figure 38): whether a secure channel is required, and that hosts may
/// disable SQ flow control (both transports).
fn treq(l: &Listener) -> u8 {
    let secure = match l.tls {
        TlsMode::Required => TREQ_SECURE_CHANNEL_REQUIRED,
        TlsMode::None | TlsMode::Optional => TREQ_SECURE_CHANNEL_NOT_REQUIRED,
    };
    secure | TREQ_DISABLE_SQ_FLOW_CONTROL
}

fn record(
    l: &Listener,
    local: SocketAddr,
    subtype: SubsystemType,
    subnqn: &str,
) -> DiscoveryRecord {
    // A wildcard listener is reported with the address the host reached us on.
    let ip: IpAddr = if l.address.ip().is_unspecified() {
        local.ip()
    } else {
        l.address.ip()
    };
    let eflags = match subtype {
        SubsystemType::CurrentDiscovery => EFLAGS_DUPRETINFO | EFLAGS_EPCSD,
        _ => 0,
    };
    DiscoveryRecord {
        trtype: trtype(l.transport),
        adrfam: match ip {
            IpAddr::V4(_) => AddressFamily::Ipv4,
            IpAddr::V6(_) => AddressFamily::Ipv6,
        },
        subtype,
        treq: treq(l),
        portid: l.portid,
        cntlid: nvme::command::CNTLID_DYNAMIC,
        asqsz: ADMIN_SQ_SIZE,
        eflags,
        trsvcid: l.address.port().to_string(),
        traddr: ip.to_string(),
        subnqn: subnqn.to_string(),
        tsas: tsas(l),
    }
}

pub fn discovery_log(target: &TargetInner, hostnqn: &str, local: SocketAddr) -> DiscoveryLog {
    let subsystems = target.subsystems();
    let mut records = Vec::new();
    for l in &target.listeners() {
        records.push(record(
            l,
            local,
            SubsystemType::CurrentDiscovery,
            DISCOVERY_NQN,
        ));
        for s in subsystems
            .iter()
            .filter(|s| s.on_listener(&l.id()) && s.host_allowed(hostnqn))
        {
            records.push(record(l, local, SubsystemType::Nvme, &s.nqn));
        }
    }
    DiscoveryLog {
        genctr: target.discovery_genctr(),
        recfmt: 0,
        records,
    }
}
