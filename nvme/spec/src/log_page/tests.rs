use super::*;
use core::mem::offset_of;

#[test]
fn log_page_ids() {
    assert_eq!(LogPageId::ErrorInformation.to_u8(), 0x01);
    assert_eq!(LogPageId::SmartHealth.to_u8(), 0x02);
    assert_eq!(LogPageId::FirmwareSlot.to_u8(), 0x03);
    assert_eq!(LogPageId::ChangedNamespaceList.to_u8(), 0x04);
    assert_eq!(LogPageId::CommandsSupportedAndEffects.to_u8(), 0x05);
    assert_eq!(LogPageId::Discovery.to_u8(), 0x70);
    assert_eq!(LogPageId::from_u8(0x71), LogPageId::Unknown(0x71));
    for code in 0..=255u8 {
        assert_eq!(LogPageId::from_u8(code).to_u8(), code);
    }
}

#[test]
fn slice_serves_offset_and_pads() {
    let page: Vec<u8> = (1..=16).collect();
    assert_eq!(log_page_slice(&page, 0, 4).unwrap(), vec![1, 2, 3, 4]);
    assert_eq!(
        log_page_slice(&page, 12, 8).unwrap(),
        vec![13, 14, 15, 16, 0, 0, 0, 0]
    );
    assert_eq!(log_page_slice(&page, 16, 4).unwrap(), vec![0, 0, 0, 0]);
    assert_eq!(log_page_slice(&page, 4, 0).unwrap(), Vec::<u8>::new());
    let err = log_page_slice(&page, 20, 4).unwrap_err();
    assert_eq!(err, LogPageError::OffsetBeyondPage { lpo: 20, size: 16 });
    assert_eq!(err.status(), Status::INVALID_FIELD.with_dnr());
    assert!(log_page_slice(&page, u64::MAX, 4).is_err());
}

#[test]
fn error_information_golden() {
    let mut e = ErrorInformationEntry::default();
    e.error_count.set(3);
    e.sqid.set(1);
    e.cid.set(0x0042);
    e.set_status(Status::INVALID_FIELD.with_dnr());
    e.set_parameter_error_location(40, 3);
    e.lba.set(0x1122_3344_5566_7788);
    e.nsid.set(9);
    e.trtype = 3;
    e.command_specific.set(0xaa);
    e.trtype_specific.set(0xbeef);
    let mut want = [0u8; 64];
    want[0] = 3;
    want[8] = 1;
    want[10] = 0x42;
    // status field 0x4002 shifted past the phase tag
    want[12..14].copy_from_slice(&[0x04, 0x80]);
    want[14..16].copy_from_slice(&[40, 3]);
    want[16..24].copy_from_slice(&[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    want[24] = 9;
    want[29] = 3;
    want[32] = 0xaa;
    want[40..42].copy_from_slice(&[0xef, 0xbe]);
    assert_eq!(e.as_bytes(), &want);
    let back = ErrorInformationEntry::from_bytes(&want).unwrap();
    assert_eq!(back.status(), Status::INVALID_FIELD.with_dnr());
    assert_eq!(back, e);
    assert!(ErrorInformationEntry::from_bytes(&want[..63]).is_none());
}

#[test]
fn smart_offsets_and_golden() {
    type S = SmartHealth;
    assert_eq!(offset_of!(S, composite_temperature), 1);
    assert_eq!(offset_of!(S, available_spare), 3);
    assert_eq!(offset_of!(S, percentage_used), 5);
    assert_eq!(offset_of!(S, data_units_read), 32);
    assert_eq!(offset_of!(S, data_units_written), 48);
    assert_eq!(offset_of!(S, host_read_commands), 64);
    assert_eq!(offset_of!(S, host_write_commands), 80);
    assert_eq!(offset_of!(S, controller_busy_time), 96);
    assert_eq!(offset_of!(S, power_cycles), 112);
    assert_eq!(offset_of!(S, power_on_hours), 128);
    assert_eq!(offset_of!(S, unsafe_shutdowns), 144);
    assert_eq!(offset_of!(S, media_errors), 160);
    assert_eq!(offset_of!(S, error_log_entries), 176);
    assert_eq!(offset_of!(S, warning_temperature_time), 192);
    assert_eq!(offset_of!(S, temperature_sensors), 200);
    assert_eq!(offset_of!(S, thermal_mgmt_temp1_transitions), 216);

    let mut s = SmartHealth::zeroed();
    s.critical_warning = SmartHealth::WARN_READ_ONLY;
    s.composite_temperature.set(313);
    s.available_spare = 100;
    s.available_spare_threshold = 10;
    s.data_units_read
        .set(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
    s.host_write_commands.set(7);
    s.power_on_hours.set(1000);
    let raw = s.as_bytes();
    assert_eq!(raw.len(), 512);
    assert_eq!(&raw[0..5], &[0x08, 0x39, 0x01, 100, 10]);
    assert_eq!(
        &raw[32..48],
        &[
            0x10, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0x09, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03,
            0x02, 0x01
        ]
    );
    assert_eq!(raw[80], 7);
    assert_eq!(&raw[128..130], &[0xe8, 0x03]);
    assert_eq!(SmartHealth::from_bytes(raw).unwrap(), s);
    assert_eq!(SmartHealth::data_units(0), 0);
    assert_eq!(SmartHealth::data_units(1), 1);
    assert_eq!(SmartHealth::data_units(512_000), 1);
    assert_eq!(SmartHealth::data_units(512_001), 2);
}

#[test]
fn firmware_slot_golden() {
    let fw = FirmwareSlot::single("1.2");
    let raw = fw.as_bytes();
    assert_eq!(raw.len(), 512);
    assert_eq!(raw[0], 0x01);
    assert_eq!(&raw[8..16], b"1.2     ");
    assert!(raw[16..].iter().all(|&b| b == 0));
    let mut raw = raw.to_vec();
    raw[0] = 0x21;
    let back = FirmwareSlot::from_bytes(&raw).unwrap();
    assert_eq!(back.active_slot(), 1);
    assert_eq!(back.next_reset_slot(), 2);
    assert_eq!(back.revision(1), Some(b"1.2     "));
    assert_eq!(back.revision(2), Some(&[0u8; 8]));
    assert_eq!(back.revision(0), None);
    assert_eq!(back.revision(8), None);
}

#[test]
fn changed_namespace_list() {
    let list = ChangedNamespaces::from_nsids(&[5, 0, 2, 5]);
    assert_eq!(list, ChangedNamespaces::List(vec![2, 5]));
    let page = list.encode();
    assert_eq!(page.len(), 4096);
    assert_eq!(&page[0..12], &[2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
    assert!(page[8..].iter().all(|&b| b == 0));
    assert_eq!(ChangedNamespaces::parse(&page), list);

    let many: Vec<u32> = (1..=1025).collect();
    let over = ChangedNamespaces::from_nsids(&many);
    assert_eq!(over, ChangedNamespaces::Overflow);
    let page = over.encode();
    assert_eq!(&page[0..4], &[0xff, 0xff, 0xff, 0xff]);
    assert!(page[4..].iter().all(|&b| b == 0));
    assert_eq!(ChangedNamespaces::parse(&page), ChangedNamespaces::Overflow);

    let exactly: Vec<u32> = (1..=1024).collect();
    let page = ChangedNamespaces::from_nsids(&exactly).encode();
    assert_eq!(&page[4092..4096], &[0x00, 0x04, 0, 0]);
    assert_eq!(
        ChangedNamespaces::parse(&page),
        ChangedNamespaces::List(exactly)
    );
    assert_eq!(
        ChangedNamespaces::parse(&[1, 0, 0]),
        ChangedNamespaces::List(vec![])
    );
}

#[test]
fn commands_supported_and_effects_golden() {
    let mut log = CommandsSupportedAndEffects::zeroed();
    log.set_admin(0x06, CommandEffects::SUPPORTED);
    log.set_io(0x01, CommandEffects::SUPPORTED.with(CommandEffects::LBCC));
    log.set_admin(
        0x80,
        CommandEffects::SUPPORTED
            .with(CommandEffects::LBCC)
            .with(CommandEffects::NCC)
            .with(CommandEffects::NIC)
            .with(CommandEffects::CCC)
            .with_cse(2),
    );
    let raw = log.as_bytes();
    assert_eq!(raw.len(), 4096);
    assert_eq!(&raw[0x06 * 4..0x06 * 4 + 4], &[1, 0, 0, 0]);
    assert_eq!(&raw[1024 + 4..1024 + 8], &[3, 0, 0, 0]);
    assert_eq!(&raw[0x80 * 4..0x80 * 4 + 4], &[0x1f, 0, 0x02, 0]);
    let back = CommandsSupportedAndEffects::from_bytes(raw).unwrap();
    assert_eq!(back.admin_effects(0x80).cse(), 2);
    assert!(back.io_effects(0x01).contains(CommandEffects::LBCC));
    assert!(!back.io_effects(0x02).contains(CommandEffects::CSUPP));
    assert_eq!(CommandEffects(0x000f_0000).with_cse(1).0, 0x0009_0000);
}

#[test]
fn discovery_entry_offsets_match_linux() {
    type E = DiscoveryLogEntry;
    assert_eq!(offset_of!(E, trtype), 0);
    assert_eq!(offset_of!(E, adrfam), 1);
    assert_eq!(offset_of!(E, subtype), 2);
    assert_eq!(offset_of!(E, treq), 3);
    assert_eq!(offset_of!(E, portid), 4);
    assert_eq!(offset_of!(E, cntlid), 6);
    assert_eq!(offset_of!(E, asqsz), 8);
    assert_eq!(offset_of!(E, eflags), 10);
    assert_eq!(offset_of!(E, trsvcid), 32);
    assert_eq!(offset_of!(E, subnqn), 256);
    assert_eq!(offset_of!(E, traddr), 512);
    assert_eq!(offset_of!(E, tsas), 768);
    assert_eq!(offset_of!(DiscoveryLogHeader, numrec), 8);
    assert_eq!(offset_of!(DiscoveryLogHeader, recfmt), 16);
}

fn sample_record() -> DiscoveryRecord {
    DiscoveryRecord {
        trtype: TransportType::Tcp,
        adrfam: AddressFamily::Ipv4,
        subtype: SubsystemType::Nvme,
        treq: TREQ_SECURE_CHANNEL_NOT_REQUIRED | TREQ_DISABLE_SQ_FLOW_CONTROL,
        portid: 1,
        cntlid: 0xffff,
        asqsz: 32,
        eflags: 0,
        trsvcid: "4420".into(),
        traddr: "192.168.1.10".into(),
        subnqn: "nqn.2024-01.io.ferrofab:disk1".into(),
        tsas: DiscoveryRecord::tcp_tsas(TcpSecurityType::None),
    }
}

#[test]
fn discovery_log_golden() {
    let log = DiscoveryLog {
        genctr: 5,
        recfmt: 0,
        records: vec![sample_record()],
    };
    let raw = log.encode().unwrap();
    assert_eq!(raw.len(), 2048);
    assert_eq!(&raw[0..8], &[5, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&raw[8..16], &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&raw[16..18], &[0, 0]);
    assert!(raw[18..1024].iter().all(|&b| b == 0));
    let e = &raw[1024..];
    assert_eq!(&e[0..12], &[3, 1, 2, 0x06, 1, 0, 0xff, 0xff, 32, 0, 0, 0]);
    assert!(e[12..32].iter().all(|&b| b == 0));
    assert_eq!(&e[32..36], b"4420");
    assert!(e[36..64].iter().all(|&b| b == b' '));
    assert!(e[64..256].iter().all(|&b| b == 0));
    assert_eq!(&e[256..286], b"nqn.2024-01.io.ferrofab:disk1\0");
    assert_eq!(&e[512..524], b"192.168.1.10");
    assert!(e[524..768].iter().all(|&b| b == b' '));
    assert!(e[768..1024].iter().all(|&b| b == 0));

    let back = DiscoveryLog::parse(&raw).unwrap();
    assert_eq!(back, log);
    assert_eq!(back.records[0].tcp_sectype(), TcpSecurityType::None);
    assert_eq!(
        DiscoveryLog::parse_header(&raw[..1024])
            .unwrap()
            .numrec
            .get(),
        1
    );
}

/// An NVMe/RDMA record as Linux nvmet writes one for an RDMA port: TRTYPE 1, and the RDMA
/// TSAS (NVMe/RDMA 1.0 Figure 3) of reliable connected QPs, no provider, RDMA_IP_CM.
#[test]
fn discovery_rdma_record_golden() {
    let rec = DiscoveryRecord {
        trtype: TransportType::Rdma,
        adrfam: AddressFamily::Ipv6,
        subtype: SubsystemType::CurrentDiscovery,
        treq: TREQ_SECURE_CHANNEL_NOT_REQUIRED | TREQ_DISABLE_SQ_FLOW_CONTROL,
        portid: 0x0102,
        cntlid: 0xffff,
        asqsz: 32,
        eflags: EFLAGS_DUPRETINFO | EFLAGS_EPCSD,
        trsvcid: "4420".into(),
        traddr: "fd00::10".into(),
        subnqn: "nqn.2014-08.org.nvmexpress.discovery".into(),
        tsas: DiscoveryRecord::rdma_tsas(RdmaTsas::RDMA_CM),
    };
    let log = DiscoveryLog {
        genctr: 2,
        recfmt: 0,
        records: vec![rec.clone()],
    };
    let raw = log.encode().unwrap();
    let e = &raw[1024..];
    assert_eq!(
        &e[0..12],
        &[1, 2, 3, 0x06, 0x02, 0x01, 0xff, 0xff, 32, 0, 0x03, 0]
    );
    assert_eq!(&e[32..36], b"4420");
    assert_eq!(&e[512..520], b"fd00::10");
    // RDMA_QPTYPE 1, RDMA_PRTYPE 1, RDMA_CMS 1, bytes 7:3 reserved, RDMA_PKEY 0.
    assert_eq!(&e[768..778], &[1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert!(e[778..1024].iter().all(|&b| b == 0));
    let back = DiscoveryLog::parse(&raw).unwrap();
    assert_eq!(back, log);
    assert_eq!(back.records[0].rdma(), RdmaTsas::RDMA_CM);
    // A partition key goes in bytes 9:8, little endian.
    let keyed = DiscoveryRecord::rdma_tsas(RdmaTsas {
        pkey: 0x8001,
        ..RdmaTsas::RDMA_CM
    });
    assert_eq!(&keyed[..10], &[1, 1, 1, 0, 0, 0, 0, 0, 0x01, 0x80]);
    assert_eq!(RdmaProviderType::RoCeV2.to_u8(), 4);
    assert_eq!(RdmaQpType::ReliableDatagram.to_u8(), 2);
}

#[test]
fn discovery_parse_accepts_nul_padding() {
    // Linux nvmet fills TRSVCID/TRADDR with strncpy, so NUL padded.
    let mut raw = DiscoveryLog {
        genctr: 1,
        recfmt: 0,
        records: vec![sample_record()],
    }
    .encode()
    .unwrap();
    raw[1024 + 36..1024 + 64].fill(0);
    raw[1024 + 524..1024 + 768].fill(0);
    let back = DiscoveryLog::parse(&raw).unwrap();
    assert_eq!(back.records[0].trsvcid, "4420");
    assert_eq!(back.records[0].traddr, "192.168.1.10");
}

#[test]
fn discovery_bad_input() {
    assert_eq!(
        DiscoveryLog::parse(&[0u8; 100]),
        Err(DiscoveryError::Truncated {
            len: 100,
            needed: 1024
        })
    );
    let mut raw = vec![0u8; 1024];
    raw[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        DiscoveryLog::parse(&raw),
        Err(DiscoveryError::Truncated {
            len: 1024,
            needed: u64::MAX
        })
    );
    raw[8..16].copy_from_slice(&1u64.to_le_bytes());
    raw.resize(2048, 0);
    // SUBNQN of the entry is empty.
    assert_eq!(
        DiscoveryLog::parse(&raw),
        Err(DiscoveryError::SubNqn {
            index: 0,
            error: NqnError::Empty
        })
    );
    raw[1024 + 256] = b'n';
    raw[1024 + 512] = 0xc3;
    assert_eq!(
        DiscoveryLog::parse(&raw),
        Err(DiscoveryError::BadString {
            index: 0,
            field: "TRADDR"
        })
    );
    let mut rec = sample_record();
    rec.trsvcid = "x".repeat(33);
    let log = DiscoveryLog {
        genctr: 0,
        recfmt: 0,
        records: vec![rec],
    };
    assert_eq!(
        log.encode(),
        Err(DiscoveryError::BadString {
            index: 0,
            field: "TRSVCID"
        })
    );
}

#[test]
fn discovery_value_codes() {
    assert_eq!(TransportType::Rdma.to_u8(), 1);
    assert_eq!(TransportType::Tcp.to_u8(), 3);
    assert_eq!(TransportType::from_u8(9), TransportType::Unknown(9));
    assert_eq!(AddressFamily::Ipv6.to_u8(), 2);
    assert_eq!(SubsystemType::Referral.to_u8(), 1);
    assert_eq!(SubsystemType::CurrentDiscovery.to_u8(), 3);
    assert_eq!(TcpSecurityType::Tls13.to_u8(), 2);
}
