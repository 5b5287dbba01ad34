//! Identify (NVMe Base 2.0 §5.17) for NVM and discovery controllers.

use bytes::Bytes;
use fabric::queue::Response;
use nvme::backend::ZonedGeometry;
use nvme::command::Identify;
use nvme::identify::{
    active_namespace_list, ctrl_bits, io_command_set_vectors, Cns, Csi, IdentifyController,
    IdentifyNamespace, LbaFormat, NsDescriptor, CNTRLTYPE_DISCOVERY, CNTRLTYPE_IO,
    DLFEAT_READ_ZEROES, DLFEAT_WRITE_ZEROES_DEALLOCATES, IDENTIFY_DATA_SIZE, IOCS_NVM, IOCS_ZONED,
    NMIC_SHARED,
};
use nvme::zns::{IdentifyZnsController, IdentifyZnsNamespace};
use nvme::Status;
use zerocopy::IntoBytes;

use crate::admin::VERSION;
use crate::config::MAX_NSID;
use crate::controller::Controller;
use crate::error_log::ERROR_LOG_ENTRIES;
use crate::namespace::Namespace;

const NSID_ALL: u32 = 0xffff_ffff;
/// Over-temperature warning and critical thresholds in kelvin (70 °C, 100 °C).
const WCTEMP_K: u16 = 343;
const CCTEMP_K: u16 = 373;

pub fn identify(ctrl: &Controller, id: &Identify) -> Response {
    let page = if ctrl.is_discovery() {
        // A discovery controller answers Identify Controller only (NVMe-oF 1.1 §5).
        match id.cns {
            Cns::Controller => Ok(controller(ctrl)),
            _ => Err(Status::INVALID_FIELD.with_dnr()),
        }
    } else {
        nvm(ctrl, id)
    };
    match page {
        Ok(p) => Response::success().with_data(Bytes::from(p)),
        Err(s) => Response::status(s),
    }
}

fn nvm(ctrl: &Controller, id: &Identify) -> Result<Vec<u8>, Status> {
    match id.cns {
        Cns::Controller => Ok(controller(ctrl)),
        Cns::Namespace => match lookup(ctrl, id.nsid)? {
            Some(ns) => Ok(namespace(&ns).as_bytes().to_vec()),
            // An inactive NSID in the valid range reads as zeroes (NVMe Base 2.0 §5.17.2.1).
            None => Ok(vec![0; IDENTIFY_DATA_SIZE]),
        },
        Cns::ActiveNamespaceList => active_list_of(ctrl, id.nsid, None),
        // NVMe Base 2.0 §5.17.2.7: the active namespaces of one I/O command set.
        Cns::IoCommandSetActiveNamespaceList => active_list_of(ctrl, id.nsid, Some(id.csi)),
        Cns::NamespaceIdDescriptors => {
            let ns = lookup(ctrl, id.nsid)?.ok_or(Status::INVALID_NAMESPACE.with_dnr())?;
            NsDescriptor::encode_list(&[
                NsDescriptor::Eui64(ns.ids.eui64),
                NsDescriptor::Nguid(ns.ids.nguid),
                NsDescriptor::Uuid(ns.ids.uuid),
                NsDescriptor::Csi(ns.csi().to_u8()),
            ])
            .map_err(|_| Status::INTERNAL_ERROR)
        }
        // NVM Command Set specific Identify Namespace (NVM Command Set 1.0 §4.1.5.1): no
        // storage tags, no protection information, no extended formats: all zero.
        Cns::IoCommandSetNamespace => match (id.csi, lookup(ctrl, id.nsid)?) {
            (Csi::Nvm, _) | (Csi::Zoned, None) => Ok(vec![0; IDENTIFY_DATA_SIZE]),
            (Csi::Zoned, Some(ns)) => match ns.zoned {
                Some(geometry) => Ok(zoned_namespace(&geometry).as_bytes().to_vec()),
                // The namespace is not of that command set (NVMe Base 2.0 §5.17.2.5).
                None => Err(Status::INVALID_FIELD.with_dnr()),
            },
            _ => Err(Status::INVALID_FIELD.with_dnr()),
        },
        // NVM Command Set specific Identify Controller (NVM Command Set 1.0 §4.1.5.2): zero
        // means no Verify, Write Zeroes, Write Uncorrectable or DSM size limits.
        Cns::IoCommandSetController => match id.csi {
            Csi::Nvm => Ok(vec![0; IDENTIFY_DATA_SIZE]),
            Csi::Zoned => Ok(zoned_controller(ctrl).as_bytes().to_vec()),
            _ => Err(Status::INVALID_FIELD.with_dnr()),
        },
        Cns::IoCommandSetIndependentNamespace => match lookup(ctrl, id.nsid)? {
            Some(ns) => Ok(cs_independent_namespace(&ns)),
            None => Ok(vec![0; IDENTIFY_DATA_SIZE]),
        },
        // I/O Command Set data structure: one combination, NVM and Zoned Namespace, which
        // CC.CSS 110b enables (NVMe Base 2.0 §5.17.2.18).
        Cns::IoCommandSet => Ok(io_command_set_vectors(&[IOCS_NVM | IOCS_ZONED])),
        _ => Err(Status::INVALID_FIELD.with_dnr()),
    }
}

/// Resolve an NSID for CNS 00h/03h/05h/08h: `Ok(None)` for an inactive NSID in range,
/// Invalid Namespace outside it (NVMe Base 2.0 §3.2.1.2).
fn lookup(ctrl: &Controller, nsid: u32) -> Result<Option<std::sync::Arc<Namespace>>, Status> {
    if nsid == 0 || nsid == NSID_ALL || nsid > MAX_NSID {
        return Err(Status::INVALID_NAMESPACE.with_dnr());
    }
    Ok(ctrl.subsystem().and_then(|s| s.namespace(nsid)))
}

/// Active NSIDs above `nsid`, of command set `csi` or of every set.
fn active_list_of(ctrl: &Controller, nsid: u32, csi: Option<Csi>) -> Result<Vec<u8>, Status> {
    // NVMe Base 2.0 §5.17.2.2: FFFFFFFEh and FFFFFFFFh are invalid here.
    if nsid >= 0xffff_fffe {
        return Err(Status::INVALID_NAMESPACE.with_dnr());
    }
    let ids: Vec<u32> = match ctrl.subsystem() {
        Some(s) => s
            .namespaces()
            .iter()
            .filter(|ns| csi.is_none_or(|c| ns.csi() == c))
            .map(|ns| ns.nsid)
            .collect(),
        None => Vec::new(),
    };
    Ok(active_namespace_list(&ids, nsid))
}

/// Identify Namespace for the Zoned Namespace Command Set (NVMe ZNS 1.1 §4.1.5.1): fixed
/// zone capacity and no zone active excursions (ZOC 0, which the Linux host requires), no
/// reads across zone boundaries, MOR/MAR 0's based, the zone size of LBA format 0.
pub fn zoned_namespace(g: &ZonedGeometry) -> IdentifyZnsNamespace {
    let mut z = IdentifyZnsNamespace::zeroed();
    z.mar.set(g.mar());
    z.mor.set(g.mor());
    z.lbafe[0].zsze.set(g.zone_size);
    z
}

/// Identify Controller for the Zoned Namespace Command Set (NVMe ZNS 1.1 §4.1.5.2): ZASL is
/// controller wide, so it is the smallest limit of the subsystem's zoned namespaces (0, MDTS,
/// when none has one); each namespace enforces its own.
pub fn zoned_controller(ctrl: &Controller) -> IdentifyZnsController {
    let mut z = IdentifyZnsController::zeroed();
    z.zasl = ctrl
        .subsystem()
        .map(|s| s.namespaces())
        .unwrap_or_default()
        .iter()
        .filter_map(|ns| ns.zoned.map(|g| g.zasl))
        .filter(|&zasl| zasl != 0)
        .min()
        .unwrap_or(0);
    z
}

pub fn controller(ctrl: &Controller) -> Vec<u8> {
    let mut c = IdentifyController::zeroed();
    match ctrl.subsystem() {
        Some(s) => {
            let id = s.identity();
            c.set_serial_number(&id.serial);
            c.set_model_number(&id.model);
            c.set_firmware_revision(&id.firmware);
        }
        None => {
            c.set_serial_number(&discovery_serial(ctrl.local.ip()));
            c.set_model_number("ferrofab discovery");
            c.set_firmware_revision(env!("CARGO_PKG_VERSION"));
        }
    }
    // VID, SSVID and IEEE stay 0 on purpose: ferrofab holds neither a PCI-SIG vendor ID nor
    // an IEEE OUI, and a fabrics controller has no PCI function they would describe (Linux
    // nvmet reports 0 too). Hosts identify this target by NQN, serial and model.
    c.rab = 6;
    c.cmic = ctrl_bits::CMIC_MULTI_CTRL;
    c.mdts = ctrl.params.mdts;
    c.cntlid.set(ctrl.cntlid);
    c.ver.set(VERSION.0);
    c.acl = 3;
    c.aerl = ctrl.params.aerl;
    // Traffic Based Keep Alive: every command restarts the timer (keep_alive.rs), on
    // NVM and discovery controllers alike.
    c.ctratt.set(ctrl_bits::CTRATT_TBKAS);
    // Log pages: the Error Information log on every controller; LPA bit 2 (NUMDU and LPO)
    // holds for every page served (log_pages.rs).
    c.elpe = (ERROR_LOG_ENTRIES - 1) as u8;
    c.lpa = ctrl_bits::LPA_EXTENDED_DATA;
    // Keep Alive granularity in 100 ms units.
    c.kas.set(crate::keep_alive::KAS);
    c.sqes = ctrl_bits::SQES_64;
    c.cqes = ctrl_bits::CQES_16;
    c.maxcmd.set(ctrl.params.mqes.saturating_add(1));
    // SGLs with the in-capsule offset form (NVMe-oF 1.1 §2.3), and data SGLs longer than
    // the command's data (NVMe Base 2.0 §4.3.2; the I/O queue uses what the command needs).
    let mut sgls =
        ctrl_bits::SGLS_SUPPORTED | ctrl_bits::SGLS_EXCESS_LENGTH | ctrl_bits::SGLS_OFFSET;
    // Over RDMA, data not in the capsule moves by RDMA READ/WRITE against the host's Keyed
    // SGL Data Block (NVMe/RDMA 1.0 §3.3); a Linux nvme-rdma host refuses a controller,
    // the discovery controller too, whose SGLS bit 2 is clear.
    if ctrl.transport == crate::config::TransportKind::Rdma {
        sgls |= ctrl_bits::SGLS_KEYED;
    }
    c.sgls.set(sgls);
    // NVMe-oF capsule sizes in 16-byte units; responses are bare CQEs.
    c.ioccsz.set((64 + ctrl.params.io_in_capsule) / 16);
    c.iorcsz.set(1);
    c.msdbd = 1;
    let subnqn = ctrl.subsystem_nqn();
    if c.set_subnqn(subnqn).is_err() {
        tracing::error!(subnqn, "subsystem NQN does not fit Identify Controller");
    }
    if ctrl.is_discovery() {
        // NVMe-oF 1.1 §5: Identify, Get Log Page (Discovery, Error Information), Keep Alive,
        // AERs and two features. No firmware slots, SMART log or host identifier feature.
        c.cntrltype = CNTRLTYPE_DISCOVERY;
        c.oaes.set(ctrl_bits::OAES_DISCOVERY_LOG_CHANGE);
    } else {
        c.cntrltype = CNTRLTYPE_IO;
        // Get Features 81h returns the 128-bit host identifier from Connect.
        c.ctratt.set(c.ctratt.get() | ctrl_bits::CTRATT_HOST_ID_128);
        // One read-only firmware slot (FRMW bits 3:1 = 1): the Firmware Slot log.
        c.frmw = ctrl_bits::FRMW_SLOT1_RO | (1 << 1);
        c.lpa |= ctrl_bits::LPA_CMD_EFFECTS;
        // Temperature thresholds: SMART / Health and Temperature Threshold (FID 04h).
        c.wctemp.set(WCTEMP_K);
        c.cctemp.set(CCTEMP_K);
        // Zone Descriptor Changed for zoned namespaces a zone of which fails (engine
        // `Action::FailZone`); namespaces come and go, so it is claimed on every I/O controller.
        c.oaes
            .set(ctrl_bits::OAES_NS_ATTRIBUTE | ctrl_bits::OAES_ZONE_DESCRIPTOR_CHANGED);
        c.nn.set(MAX_NSID);
        c.mnan.set(0);
        c.oncs.set(
            ctrl_bits::ONCS_COMPARE
                | ctrl_bits::ONCS_DSM
                | ctrl_bits::ONCS_WRITE_ZEROES
                | ctrl_bits::ONCS_SAVE_SELECT,
        );
        // A volatile write cache is reported so hosts send Flush; Flush with NSID FFFFFFFFh
        // flushes every namespace.
        c.vwc = ctrl_bits::VWC_PRESENT | ctrl_bits::VWC_FLUSH_BROADCAST;
    }
    c.as_bytes().to_vec()
}

/// The discovery controller's serial number: the same for every connection through one
/// local address of this box, different between boxes (their addresses differ).
fn discovery_serial(local: std::net::IpAddr) -> String {
    crate::ids::derive_serial(&format!("{} {local}", crate::nqn::DISCOVERY_NQN))
}

pub fn namespace(ns: &Namespace) -> IdentifyNamespace {
    let mut n = IdentifyNamespace::zeroed();
    n.nsze.set(ns.num_blocks());
    n.ncap.set(ns.num_blocks());
    n.nuse.set(ns.num_blocks());
    n.nlbaf = 0;
    n.flbas = 0;
    n.lbaf[0] = LbaFormat::for_block_size(ns.block_size());
    // Several controllers (hosts, paths) may attach: the namespace is shared.
    n.nmic = NMIC_SHARED;
    if ns.info.deallocated_reads_zero {
        n.dlfeat = DLFEAT_READ_ZEROES | DLFEAT_WRITE_ZEROES_DEALLOCATES;
    }
    n.nguid = ns.ids.nguid;
    n.eui64 = ns.ids.eui64;
    n
}

/// I/O Command Set Independent Identify Namespace (NVMe Base 2.0 §5.17.2.9, Figure 319):
/// NSFEAT @0, NMIC @1, RESCAP @2, FPI @3, ANAGRPID @4, NSATTR @8, NVMSETID @10, ENDGID @12,
/// NSTAT @14 (bit 0: namespace ready; hosts skip namespaces that are not).
fn cs_independent_namespace(_ns: &Namespace) -> Vec<u8> {
    let mut page = vec![0u8; IDENTIFY_DATA_SIZE];
    page[1] = NMIC_SHARED;
    page[14] = 1;
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvme::backend::RamBackend;
    use std::sync::Arc;

    #[test]
    fn namespace_fields() {
        let backend = Arc::new(RamBackend::new(1 << 20, 4096).unwrap());
        let ns = Namespace::new("nqn.2026-01.io.ferrofab:t", 3, backend);
        let id = namespace(&ns);
        assert_eq!(id.nsze.get(), 256);
        assert_eq!(id.lbaf[0].lbads, 12);
        assert_eq!(id.nguid, ns.ids.nguid);
        assert_eq!(id.dlfeat & DLFEAT_READ_ZEROES, DLFEAT_READ_ZEROES);
        let raw = id.as_bytes();
        // NGUID @104, EUI64 @120 (NVM Command Set 1.0 Figure 97).
        assert_eq!(&raw[104..120], &ns.ids.nguid);
        assert_eq!(&raw[120..128], &ns.ids.eui64);
        let indep = cs_independent_namespace(&ns);
        assert_eq!(indep[14] & 1, 1);
    }
}
