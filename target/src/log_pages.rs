//! Get Log Page (NVMe Base 2.0 §5.16) for NVM and discovery controllers.

use bytes::Bytes;
use fabric::queue::Response;
use ferrofab_sync::CountedLock as _;
use nvme::command::GetLogPage;
use nvme::identify::Csi;
use nvme::log_page::{
    log_page_slice, ChangedNamespaces, CommandEffects, CommandsSupportedAndEffects,
    ErrorInformationEntry, FirmwareSlot, LogPageId, SmartHealth,
};
use nvme::opcode::{AdminOpcode, IoOpcode};
use nvme::Status;
use zerocopy::IntoBytes;

use crate::controller::Controller;
use crate::error_log::ERROR_LOG_ENTRIES;

const NSID_ALL: u32 = 0xffff_ffff;
/// Composite temperature reported in SMART / Health: 35 °C in kelvin.
const COMPOSITE_TEMPERATURE_K: u16 = 308;

pub fn get_log_page(ctrl: &Controller, glp: &GetLogPage) -> Response {
    // Index offsets (OT = 1) are not supported (Identify Controller LPA bit 5 clear).
    if glp.ot {
        return Response::status(Status::INVALID_FIELD.with_dnr());
    }
    let len = glp.len_bytes();
    if len > u64::from(ctrl.params.max_transfer()) {
        return Response::status(Status::INVALID_FIELD.with_dnr());
    }
    let page = match page_for(ctrl, glp) {
        Ok(p) => p,
        Err(s) => return Response::status(s),
    };
    let data = match log_page_slice(&page, glp.lpo, len as usize) {
        Ok(d) => d,
        Err(e) => return Response::status(e.status()),
    };
    // Reading a log with RAE cleared re-arms its asynchronous event (NVMe Base 2.0 §5.2).
    if !glp.rae {
        ctrl.aer().log_read(glp.lid.to_u8());
    }
    Response::success().with_data(Bytes::from(data))
}

fn page_for(ctrl: &Controller, glp: &GetLogPage) -> Result<Vec<u8>, Status> {
    match (ctrl.is_discovery(), glp.lid) {
        (_, LogPageId::ErrorInformation) => Ok(error_information(ctrl)),
        (true, LogPageId::Discovery) => {
            let target = ctrl.target().ok_or(Status::INTERNAL_ERROR)?;
            crate::discovery::discovery_log(&target, &ctrl.hostnqn, ctrl.local)
                .encode()
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot encode the discovery log");
                    Status::INTERNAL_ERROR
                })
        }
        (false, LogPageId::SmartHealth) => {
            if glp.nsid != NSID_ALL && glp.nsid != 0 {
                // Per-namespace SMART data is not kept (Identify Controller LPA bit 0 clear).
                return Err(Status::INVALID_FIELD.with_dnr());
            }
            Ok(smart_health(ctrl))
        }
        (false, LogPageId::FirmwareSlot) => {
            let fw = ctrl
                .subsystem()
                .map(|s| s.identity().firmware)
                .unwrap_or_default();
            Ok(FirmwareSlot::single(&fw).as_bytes().to_vec())
        }
        (false, LogPageId::ChangedNamespaceList) => {
            let list = ctrl.changed_namespaces(!glp.rae);
            Ok(ChangedNamespaces::from_nsids(&list).encode())
        }
        // One log per I/O command set, selected by CSI (NVMe Base 2.0 §5.16.1.6).
        (false, LogPageId::CommandsSupportedAndEffects) => match glp.csi {
            Csi::Nvm => Ok(commands_supported(false).as_bytes().to_vec()),
            Csi::Zoned => Ok(commands_supported(true).as_bytes().to_vec()),
            _ => Err(Status::INVALID_FIELD.with_dnr()),
        },
        (false, LogPageId::ChangedZoneList) => changed_zone_list(ctrl, glp),
        _ => Err(Status::INVALID_LOG_PAGE.with_dnr()),
    }
}

fn error_information(ctrl: &Controller) -> Vec<u8> {
    let mut page = vec![0u8; ERROR_LOG_ENTRIES * core::mem::size_of::<ErrorInformationEntry>()];
    let errors = ctrl.errors.lock_counted();
    for (slot, rec) in page
        .chunks_exact_mut(core::mem::size_of::<ErrorInformationEntry>())
        .zip(errors.entries())
    {
        let mut e = ErrorInformationEntry::default();
        e.error_count.set(rec.error_count);
        e.sqid.set(rec.sqid);
        e.cid.set(rec.cid);
        e.set_status(rec.status);
        e.parameter_error_location.set(0xffff);
        e.lba.set(rec.lba);
        e.nsid.set(rec.nsid);
        // TRTYPE (NVMe Base 2.0 §5.16.1.2, codes of NVMe-oF 1.1 Figure 38): the transport
        // the controller's admin queue came over.
        e.trtype = crate::discovery::trtype(ctrl.transport).to_u8();
        slot.copy_from_slice(e.as_bytes());
    }
    page
}

fn smart_health(ctrl: &Controller) -> Vec<u8> {
    let c = ctrl.io_totals();
    let mut s = SmartHealth::zeroed();
    s.composite_temperature.set(COMPOSITE_TEMPERATURE_K);
    s.available_spare = 100;
    s.available_spare_threshold = 10;
    s.data_units_read
        .set(SmartHealth::data_units(u128::from(c.bytes_read)));
    s.data_units_written
        .set(SmartHealth::data_units(u128::from(c.bytes_written)));
    s.host_read_commands.set(u128::from(c.read_commands));
    s.host_write_commands.set(u128::from(c.write_commands));
    s.power_cycles.set(1);
    s.power_on_hours
        .set(u128::from(ctrl.created.elapsed().as_secs() / 3600));
    let errors = ctrl.errors.lock_counted().count();
    s.error_log_entries.set(u128::from(errors));
    s.as_bytes().to_vec()
}

/// Changed Zone List (NVMe ZNS 1.1 §4.4.1.1, Figure 42) of a zoned namespace: the zones the
/// device itself moved (to Read Only or Offline) since the list was last read with RAE
/// cleared. More than 511 zones are reported as FFFFh and no identifiers.
fn changed_zone_list(ctrl: &Controller, glp: &GetLogPage) -> Result<Vec<u8>, Status> {
    let ns = ctrl
        .subsystem()
        .and_then(|s| s.namespace(glp.nsid))
        .ok_or(Status::INVALID_NAMESPACE.with_dnr())?;
    let zoned = ns.backend.zoned().ok_or(Status::INVALID_FIELD.with_dnr())?;
    let zones = zoned.changed_zones(!glp.rae);
    let mut page = vec![0u8; CHANGED_ZONE_LIST_LEN];
    if zones.len() > CHANGED_ZONES_MAX {
        page[..2].copy_from_slice(&0xffffu16.to_le_bytes());
    } else {
        page[..2].copy_from_slice(&(zones.len() as u16).to_le_bytes());
        for (slot, zslba) in page[8..].chunks_exact_mut(8).zip(&zones) {
            slot.copy_from_slice(&zslba.to_le_bytes());
        }
    }
    Ok(page)
}

/// Size of the Changed Zone List log and the zone identifiers it can hold.
const CHANGED_ZONE_LIST_LEN: usize = 4096;
const CHANGED_ZONES_MAX: usize = 511;

/// Commands Supported and Effects (NVMe Base 2.0 §5.16.1.6) for the NVM command set or, with
/// `zoned`, the Zoned Namespace command set, which adds the zone commands (NVMe ZNS 1.1
/// §4.4.1.2; the Linux host makes a zoned namespace read-only unless Zone Append is listed).
pub fn commands_supported(zoned: bool) -> CommandsSupportedAndEffects {
    let mut c = CommandsSupportedAndEffects::zeroed();
    for op in [
        AdminOpcode::GetLogPage,
        AdminOpcode::Identify,
        AdminOpcode::Abort,
        AdminOpcode::SetFeatures,
        AdminOpcode::GetFeatures,
        AdminOpcode::AsyncEventRequest,
        AdminOpcode::KeepAlive,
    ] {
        c.set_admin(op.to_u8(), CommandEffects::SUPPORTED);
    }
    let changes_content = CommandEffects::SUPPORTED.with(CommandEffects::LBCC);
    for (op, effects) in [
        (IoOpcode::Read, CommandEffects::SUPPORTED),
        (IoOpcode::Compare, CommandEffects::SUPPORTED),
        (IoOpcode::Flush, changes_content),
        (IoOpcode::Write, changes_content),
        (IoOpcode::WriteZeroes, changes_content),
        (IoOpcode::DatasetManagement, changes_content),
    ] {
        c.set_io(op.to_u8(), effects);
    }
    if zoned {
        for (op, effects) in [
            (IoOpcode::ZoneManagementSend, changes_content),
            (IoOpcode::ZoneManagementReceive, CommandEffects::SUPPORTED),
            (IoOpcode::ZoneAppend, changes_content),
        ] {
            c.set_io(op.to_u8(), effects);
        }
    }
    c
}
