//! The discovery log a host sees (NVMe-oF 1.1 §5): every listener of every subsystem it may
//! connect to, plus one entry per listener for this discovery subsystem itself.

use std::net::{IpAddr, SocketAddr};

use nvme::log_page::{
    AddressFamily, DiscoveryLog, DiscoveryRecord, SubsystemType, TcpSecurityType, TransportType,
    EFLAGS_DUPRETINFO, EFLAGS_EPCSD, TREQ_DISABLE_SQ_FLOW_CONTROL,
    TREQ_SECURE_CHANNEL_NOT_REQUIRED,
};

use crate::nqn::DISCOVERY_NQN;
use crate::target::{Listener, TargetInner};

/// Admin submission queue size hosts may use (ASQSZ).
pub const ADMIN_SQ_SIZE: u16 = 32;

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
        trtype: TransportType::Tcp,
        adrfam: match ip {
            IpAddr::V4(_) => AddressFamily::Ipv4,
            IpAddr::V6(_) => AddressFamily::Ipv6,
        },
        subtype,
        // No secure channel required; hosts may disable SQ flow control.
        treq: TREQ_SECURE_CHANNEL_NOT_REQUIRED | TREQ_DISABLE_SQ_FLOW_CONTROL,
        portid: l.portid,
        cntlid: nvme::command::CNTLID_DYNAMIC,
        asqsz: ADMIN_SQ_SIZE,
        eflags,
        trsvcid: l.address.port().to_string(),
        traddr: ip.to_string(),
        subnqn: subnqn.to_string(),
        tsas: DiscoveryRecord::tcp_tsas(TcpSecurityType::None),
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
            .filter(|s| s.on_listener(&l.address) && s.host_allowed(hostnqn))
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
