//! Feed arbitrary bytes to every parser of wire data in the `nvme` crate: the SQE decoder
//! (admin and I/O queues), Connect data, Dataset Management ranges, the Identify parsers, the
//! Discovery log and the other log pages. None of them may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nvme::command::{Command, ConnectData, DsmRange, FabricsCommand};
use nvme::identify::{
    parse_io_command_set_vectors, parse_namespace_list, IdentifyController, IdentifyNamespace,
    NsDescriptor,
};
use nvme::log_page::{
    log_page_slice, ChangedNamespaces, DiscoveryLog, ErrorInformationEntry, FirmwareSlot,
    SmartHealth,
};
use nvme::Sqe;

fuzz_target!(|data: &[u8]| {
    if let Some(sqe) = Sqe::from_slice(data) {
        for admin_queue in [true, false] {
            if let Ok(cmd) = Command::decode(&sqe, admin_queue) {
                check_round_trip(&cmd);
            }
        }
    }

    if let Ok(connect) = ConnectData::from_bytes(data) {
        let _ = connect.subnqn();
        let _ = connect.hostnqn();
        let _ = format!("{connect:?}");
    }

    let nr = data.first().map_or(0, |&b| usize::from(b) + 1);
    if let Ok(ranges) = DsmRange::parse_list(data.get(1..).unwrap_or(&[]), nr) {
        assert_eq!(ranges.len(), nr);
    }

    if let Some(ctrl) = IdentifyController::from_bytes(data) {
        let _ = (
            ctrl.serial_number(),
            ctrl.model_number(),
            ctrl.firmware_revision(),
        );
        let _ = ctrl.subnqn();
    }
    if let Some(ns) = IdentifyNamespace::from_bytes(data) {
        let _ = ns.block_size();
    }
    if let Ok(descs) = NsDescriptor::parse_list(data) {
        // Everything the parser accepts (bar unknown types) encodes back when it fits.
        let _ = NsDescriptor::encode_list(&descs);
    }
    let _ = parse_namespace_list(data);
    let _ = parse_io_command_set_vectors(data);

    if let Ok(log) = DiscoveryLog::parse(data) {
        let encoded = log.encode();
        if let Ok(bytes) = encoded {
            assert_eq!(DiscoveryLog::parse(&bytes).as_ref(), Ok(&log));
        }
    }
    let _ = ChangedNamespaces::parse(data);
    let _ = ErrorInformationEntry::from_bytes(data);
    let _ = SmartHealth::from_bytes(data);
    if let Some(fw) = FirmwareSlot::from_bytes(data) {
        let _ = fw.revision(fw.active_slot());
    }

    if data.len() >= 10 {
        let lpo = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
        let len = usize::from(u16::from_le_bytes([data[4], data[5]]));
        if let Ok(slice) = log_page_slice(&data[6..], lpo, len) {
            assert_eq!(slice.len(), len);
        }
    }
});

/// Host-side encoders must reproduce what the decoder read.
fn check_round_trip(cmd: &Command) {
    let Command::Fabrics(f) = cmd else {
        return;
    };
    let again = match f {
        FabricsCommand::Connect(c) => Command::decode(&c.to_sqe(1), true),
        FabricsCommand::PropertyGet(p) => Command::decode(&p.to_sqe(1), true),
        FabricsCommand::PropertySet(p) => Command::decode(&p.to_sqe(1), true),
        _ => return,
    };
    assert_eq!(again.as_ref(), Ok(cmd));
}
