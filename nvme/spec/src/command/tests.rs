use super::*;
use zerocopy::IntoBytes;

/// A raw SQE: opcode, CID 0x0042, `b4` as bytes 7:4 (NSID or FCTYPE), then CDW10..15.
fn raw(opcode: u8, b4: u32, cdw: [u32; 6]) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[0] = opcode;
    r[1] = 0x40; // PSDT 01b: SGL
    r[2..4].copy_from_slice(&0x0042u16.to_le_bytes());
    r[4..8].copy_from_slice(&b4.to_le_bytes());
    for (i, v) in cdw.iter().enumerate() {
        let at = 40 + 4 * i;
        r[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    r
}

fn sqe(r: &[u8; 64]) -> Sqe {
    Sqe::from_slice(r).unwrap()
}

fn admin(r: &[u8; 64]) -> AdminCommand {
    match Command::decode(&sqe(r), true).unwrap() {
        Command::Admin(a) => a,
        other => panic!("not admin: {other:?}"),
    }
}

fn io(r: &[u8; 64]) -> IoCommand {
    match Command::decode(&sqe(r), false).unwrap() {
        Command::Io(c) => c,
        other => panic!("not I/O: {other:?}"),
    }
}

fn fabrics(r: &[u8; 64]) -> FabricsCommand {
    match Command::decode(&sqe(r), true).unwrap() {
        Command::Fabrics(f) => f,
        other => panic!("not fabrics: {other:?}"),
    }
}

#[test]
fn identify_controller() {
    // nvme-cli id-ctrl: opcode 06h, NSID 0, CDW10 CNS 01h.
    let r = raw(0x06, 0, [0x0000_0001, 0, 0, 0, 0, 0]);
    assert_eq!(
        admin(&r),
        AdminCommand::Identify(Identify {
            nsid: 0,
            cns: Cns::Controller,
            cntid: 0,
            cns_specific_id: 0,
            csi: Csi::Nvm,
            uuid_index: 0,
        })
    );
}

#[test]
fn identify_all_fields() {
    // CNS 05h, CNTID 0x1234, CNSSID 0xbeef, CSI 02h (zoned), UUID index 0x7f (bit 7 masked).
    let r = raw(0x06, 7, [0x1234_0005, 0x0200_beef, 0, 0, 0xff, 0]);
    let AdminCommand::Identify(id) = admin(&r) else {
        panic!("not identify")
    };
    assert_eq!(id.nsid, 7);
    assert_eq!(id.cns, Cns::IoCommandSetNamespace);
    assert_eq!(id.cntid, 0x1234);
    assert_eq!(id.cns_specific_id, 0xbeef);
    assert_eq!(id.csi, Csi::Zoned);
    assert_eq!(id.uuid_index, 0x7f);
    // An unknown CNS stays unknown for the target to reject.
    let r = raw(0x06, 0, [0x0000_00ee, 0, 0, 0, 0, 0]);
    let AdminCommand::Identify(id) = admin(&r) else {
        panic!("not identify")
    };
    assert_eq!(id.cns, Cns::Unknown(0xee));
}

#[test]
fn get_log_page() {
    // Linux nvme_get_log: LID 70h (discovery), LSP 0, RAE 1, NUMDL 0x03ff (1024 dwords),
    // NUMDU 0, LSI 0, LPO 0x1000, CSI 0.
    let r = raw(0x02, 0, [0x03ff_8070, 0, 0x1000, 0, 0, 0]);
    assert_eq!(
        admin(&r),
        AdminCommand::GetLogPage(GetLogPage {
            nsid: 0,
            lid: LogPageId::Discovery,
            lsp: 0,
            rae: true,
            numd: 1024,
            lsi: 0,
            lpo: 0x1000,
            uuid_index: 0,
            ot: false,
            csi: Csi::Nvm,
        })
    );
    // NUMDU:NUMDL = 0x0001_0000 -> 65537 dwords; LSP 0x7f; LSI 0xabcd; LPO 2^32 + 4;
    // OT set; CSI 2; NSID FFFFFFFFh.
    let r = raw(
        0x02,
        u32::MAX,
        [0x0000_7f02, 0xabcd_0001, 4, 1, 0x0280_0003, 0],
    );
    let AdminCommand::GetLogPage(g) = admin(&r) else {
        panic!("not get log page")
    };
    assert_eq!(g.lid, LogPageId::SmartHealth);
    assert_eq!(g.lsp, 0x7f);
    assert!(!g.rae);
    assert_eq!(g.numd, 0x1_0001);
    assert_eq!(g.len_bytes(), 0x4_0004);
    assert_eq!(g.lsi, 0xabcd);
    assert_eq!(g.lpo, 0x1_0000_0004);
    assert!(g.ot);
    assert_eq!(g.uuid_index, 3);
    assert_eq!(g.csi, Csi::Zoned);
    assert_eq!(g.nsid, u32::MAX);
    // The largest request: 2^32 dwords.
    let r = raw(0x02, 0, [0xffff_0001, 0x0000_ffff, 0, 0, 0, 0]);
    let AdminCommand::GetLogPage(g) = admin(&r) else {
        panic!("not get log page")
    };
    assert_eq!(g.numd, 1 << 32);
}

#[test]
fn get_log_page_unaligned_offset_is_invalid() {
    let r = raw(0x02, 0, [0x0000_0002, 0, 2, 0, 0, 0]);
    let err = Command::decode(&sqe(&r), true).unwrap_err();
    assert_eq!(
        err,
        DecodeError::InvalidField {
            field: "LPO",
            value: 2
        }
    );
    assert_eq!(err.status(), Status::INVALID_FIELD.with_dnr());
    // With OT set the offset is an index and need not be aligned.
    let r = raw(0x02, 0, [0x0000_0002, 0, 3, 0, 1 << 23, 0]);
    assert!(Command::decode(&sqe(&r), true).is_ok());
}

#[test]
fn abort() {
    // SQID 1, CID 0x0123.
    let r = raw(0x08, 0, [0x0123_0001, 0, 0, 0, 0, 0]);
    assert_eq!(
        admin(&r),
        AdminCommand::Abort(Abort {
            sqid: 1,
            cid: 0x0123
        })
    );
}

#[test]
fn get_and_set_features() {
    // Get Features, FID 07h (number of queues), SEL 011b (supported capabilities).
    let r = raw(0x0a, 0, [0x0000_0307, 0x11, 0x12, 0x13, 0x05, 0x15]);
    assert_eq!(
        admin(&r),
        AdminCommand::GetFeatures(GetFeatures {
            nsid: 0,
            fid: FeatureId::NumberOfQueues,
            sel: Select::SupportedCapabilities,
            cdw11: 0x11,
            cdw12: 0x12,
            cdw13: 0x13,
            cdw15: 0x15,
            uuid_index: 5,
        })
    );
    // Set Features, FID 0Bh, SV set, CDW11 = AEN config.
    let r = raw(0x09, 1, [0x8000_000b, 0x8000_0100, 0, 0, 0, 0]);
    assert_eq!(
        admin(&r),
        AdminCommand::SetFeatures(SetFeatures {
            nsid: 1,
            fid: FeatureId::AsyncEventConfiguration,
            sv: true,
            cdw11: 0x8000_0100,
            cdw12: 0,
            cdw13: 0,
            cdw15: 0,
            uuid_index: 0,
        })
    );
    // Unknown FID is kept.
    let r = raw(0x09, 0, [0x0000_00c5, 0, 0, 0, 0, 0]);
    let AdminCommand::SetFeatures(s) = admin(&r) else {
        panic!("not set features")
    };
    assert_eq!(s.fid, FeatureId::Unknown(0xc5));
    assert!(!s.sv);
}

#[test]
fn get_features_reserved_select_is_invalid() {
    for sel in 4..8u32 {
        let r = raw(0x0a, 0, [(sel << 8) | 0x06, 0, 0, 0, 0, 0]);
        assert_eq!(
            Command::decode(&sqe(&r), true),
            Err(DecodeError::InvalidField {
                field: "SEL",
                value: u64::from(sel)
            })
        );
    }
}

#[test]
fn no_field_admin_commands_and_unknown() {
    assert_eq!(
        admin(&raw(0x0c, 0, [0; 6])),
        AdminCommand::AsyncEventRequest
    );
    assert_eq!(admin(&raw(0x18, 0, [0; 6])), AdminCommand::KeepAlive);
    // Create I/O SQ is not used over fabrics and is not decoded.
    assert_eq!(admin(&raw(0x01, 0, [0; 6])), AdminCommand::Unknown(0x01));
    assert_eq!(admin(&raw(0xc1, 0, [0; 6])), AdminCommand::Unknown(0xc1));
    // An I/O opcode on the admin queue is decoded as admin: 02h is Get Log Page there.
    assert!(matches!(
        admin(&raw(0x02, 0, [0; 6])),
        AdminCommand::GetLogPage(_)
    ));
}

#[test]
fn read_write_compare() {
    // Read: NSID 1, SLBA 0x1_0000_0002, NLB 0's based 7 -> 8, FUA, LR, PRINFO 0xf, DSM 0x5,
    // EILBRT 0xdeadbeef, ELBAT 0x1111, ELBATM 0x2222.
    let cdw12 = 7 | (0xf << 26) | (1 << 30) | (1 << 31);
    let r = raw(
        0x02,
        1,
        [2, 1, cdw12, 0x0000_0005, 0xdead_beef, 0x2222_1111],
    );
    let want = ReadWrite {
        nsid: 1,
        slba: 0x1_0000_0002,
        nlb: 8,
        dtype: 0,
        stc: false,
        prinfo: 0xf,
        fua: true,
        lr: true,
        dsm: 5,
        dspec: 0,
        eilbrt: 0xdead_beef,
        elbat: 0x1111,
        elbatm: 0x2222,
    };
    assert_eq!(io(&r), IoCommand::Read(want));
    assert_eq!(want.end_lba(), Some(0x1_0000_000a));

    // Write: NLB 0xffff -> 65536, DTYPE 2, STC, DSPEC 0xabcd.
    let r = raw(
        0x01,
        3,
        [0, 0, 0xffff | (2 << 20) | (1 << 24), 0xabcd_0000, 0, 0],
    );
    let IoCommand::Write(w) = io(&r) else {
        panic!("not write")
    };
    assert_eq!(w.nsid, 3);
    assert_eq!(w.nlb, 65536);
    assert_eq!(w.dtype, 2);
    assert!(w.stc);
    assert!(!w.fua);
    assert_eq!(w.dspec, 0xabcd);

    // Compare at the very end of the LBA space overflows end_lba.
    let r = raw(0x05, 1, [u32::MAX, u32::MAX, 1, 0, 0, 0]);
    let IoCommand::Compare(c) = io(&r) else {
        panic!("not compare")
    };
    assert_eq!(c.slba, u64::MAX);
    assert_eq!(c.nlb, 2);
    assert_eq!(c.end_lba(), None);
}

#[test]
fn write_zeroes_dsm_flush() {
    // Write Zeroes: NLB 0's based 15 -> 16, DEAC, FUA.
    let r = raw(0x08, 2, [0x100, 0, 15 | (1 << 25) | (1 << 30), 0, 0, 0]);
    assert_eq!(
        io(&r),
        IoCommand::WriteZeroes(WriteZeroes {
            nsid: 2,
            slba: 0x100,
            nlb: 16,
            stc: false,
            deac: true,
            prinfo: 0,
            fua: true,
            lr: false,
        })
    );
    // DSM: NR 0's based 0xff -> 256 ranges, AD only.
    let r = raw(0x09, 1, [0xff, 0x4, 0, 0, 0, 0]);
    let want = DatasetManagement {
        nsid: 1,
        nr: 256,
        idr: false,
        idw: false,
        ad: true,
    };
    assert_eq!(io(&r), IoCommand::DatasetManagement(want));
    assert_eq!(want.data_len(), 4096);
    let r = raw(0x09, 1, [0x00, 0x3, 0, 0, 0, 0]);
    let IoCommand::DatasetManagement(d) = io(&r) else {
        panic!("not dsm")
    };
    assert_eq!(d.nr, 1);
    assert!(d.idr && d.idw && !d.ad);
    // Flush to all namespaces.
    assert_eq!(
        io(&raw(0x00, u32::MAX, [0; 6])),
        IoCommand::Flush { nsid: u32::MAX }
    );
    assert_eq!(io(&raw(0x0c, 1, [0; 6])), IoCommand::Unknown(0x0c));
    assert_eq!(io(&raw(0x80, 1, [0; 6])), IoCommand::Unknown(0x80));
}

#[test]
fn connect_golden() {
    // Linux nvmf_connect_admin_queue: recfmt 0, qid 0, sqsize 31 (32 entries), cattr with
    // NVME_CONNECT_DISABLE_SQFLOW, kato 5000 ms.
    let mut r = [0u8; 64];
    r[0] = 0x7f;
    r[1] = 0x40;
    r[2..4].copy_from_slice(&7u16.to_le_bytes());
    r[4] = 0x01; // FCTYPE Connect
    r[40..42].copy_from_slice(&0u16.to_le_bytes()); // RECFMT
    r[42..44].copy_from_slice(&0u16.to_le_bytes()); // QID
    r[44..46].copy_from_slice(&31u16.to_le_bytes()); // SQSIZE
    r[46] = 0x04; // CATTR
    r[48..52].copy_from_slice(&5000u32.to_le_bytes()); // KATO
    let want = Connect {
        recfmt: 0,
        qid: 0,
        sqsize: 31,
        cattr: 0x04,
        kato: 5000,
    };
    assert_eq!(fabrics(&r), FabricsCommand::Connect(want));
    assert_eq!(want.sq_entries(), 32);
    assert!(want.sq_flow_control_disabled());
    assert_eq!(want.priority_class(), 0);
    // The host side encoder writes the same bytes.
    assert_eq!(want.to_sqe(7).as_bytes()[..4], r[..4][..]);
    assert_eq!(want.to_sqe(7).as_bytes()[4..8], r[4..8][..]);
    assert_eq!(want.to_sqe(7).as_bytes()[40..64], r[40..64][..]);

    // An I/O queue Connect: QID 3, SQSIZE 127, no CATTR; decoded on an I/O queue too.
    let r = raw(0x7f, 0x01, [0x0003_0000, 0x0000_007f, 0, 0, 0, 0]);
    let Command::Fabrics(FabricsCommand::Connect(c)) = Command::decode(&sqe(&r), false).unwrap()
    else {
        panic!("not connect")
    };
    assert_eq!(c.qid, 3);
    assert_eq!(c.sq_entries(), 128);
    assert!(!c.sq_flow_control_disabled());
}

#[test]
fn property_get_and_set() {
    // Property Get CAP, 8 bytes: ATTRIB 1, OFST 0.
    let r = raw(0x7f, 0x04, [0x01, 0x00, 0, 0, 0, 0]);
    let pg = PropertyGet {
        size: PropertySize::Eight,
        offset: 0,
    };
    assert_eq!(fabrics(&r), FabricsCommand::PropertyGet(pg));
    assert_eq!(pg.to_sqe(0x42).as_bytes()[4..64], r[4..64][..]);
    // Property Get CSTS, 4 bytes.
    let r = raw(0x7f, 0x04, [0x00, 0x1c, 0, 0, 0, 0]);
    assert_eq!(
        fabrics(&r),
        FabricsCommand::PropertyGet(PropertyGet {
            size: PropertySize::Four,
            offset: 0x1c
        })
    );
    // Property Set CC = 0x00460001, 4 bytes; upper VALUE dword is reserved and dropped.
    let r = raw(0x7f, 0x00, [0x00, 0x14, 0x0046_0001, 0xffff_ffff, 0, 0]);
    assert_eq!(
        fabrics(&r),
        FabricsCommand::PropertySet(PropertySet {
            size: PropertySize::Four,
            offset: 0x14,
            value: 0x0046_0001
        })
    );
    // 8-byte Property Set keeps both dwords.
    let r = raw(0x7f, 0x00, [0x01, 0x00, 0x1111_2222, 0x3333_4444, 0, 0]);
    let ps = PropertySet {
        size: PropertySize::Eight,
        offset: 0,
        value: 0x3333_4444_1111_2222,
    };
    assert_eq!(fabrics(&r), FabricsCommand::PropertySet(ps));
    assert_eq!(ps.to_sqe(0x42).as_bytes()[4..64], r[4..64][..]);
}

#[test]
fn property_reserved_size_is_invalid() {
    for attrib in 2..8u32 {
        for fctype in [0x00, 0x04] {
            let r = raw(0x7f, fctype, [attrib, 0, 0, 0, 0, 0]);
            assert_eq!(
                Command::decode(&sqe(&r), true),
                Err(DecodeError::InvalidField {
                    field: "ATTRIB",
                    value: u64::from(attrib)
                })
            );
        }
    }
}

#[test]
fn auth_disconnect_and_unknown_fctype() {
    // Authentication Send: SECP E9h (NVMe in-band auth), SPSP0 1, SPSP1 2, TL 0x200.
    let r = raw(0x7f, 0x05, [0xe902_0100, 0x200, 0, 0, 0, 0]);
    assert_eq!(
        fabrics(&r),
        FabricsCommand::AuthenticationSend(AuthenticationSend {
            spsp0: 1,
            spsp1: 2,
            secp: 0xe9,
            tl: 0x200
        })
    );
    let r = raw(0x7f, 0x06, [0xe900_0000, 0x1000, 0, 0, 0, 0]);
    assert_eq!(
        fabrics(&r),
        FabricsCommand::AuthenticationReceive(AuthenticationReceive {
            spsp0: 0,
            spsp1: 0,
            secp: 0xe9,
            al: 0x1000
        })
    );
    let r = raw(0x7f, 0x08, [0, 0, 0, 0, 0, 0]);
    assert_eq!(fabrics(&r), FabricsCommand::Disconnect { recfmt: 0 });
    let r = raw(0x7f, 0x02, [0; 6]);
    assert_eq!(fabrics(&r), FabricsCommand::Unknown(0x02));
    // FCTYPE is byte 4 only; bytes 5..7 are reserved and ignored.
    let r = raw(0x7f, 0xffff_ff08, [0; 6]);
    assert_eq!(fabrics(&r), FabricsCommand::Disconnect { recfmt: 0 });
    // FabricsCommand::decode on a non-fabrics opcode.
    assert_eq!(
        FabricsCommand::decode(&sqe(&raw(0x06, 0, [0; 6]))),
        Ok(FabricsCommand::Unknown(0x06))
    );
}

#[test]
fn short_input_is_rejected_before_decoding() {
    assert!(Sqe::from_slice(&[0x06; 63]).is_none());
    assert!(Sqe::from_slice(&[]).is_none());
}

#[test]
fn decoding_any_sqe_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut buf = [0u8; 64];
    for i in 0..20_000u32 {
        rng.fill(&mut buf[..]);
        // Bias the opcode and FCTYPE towards codes that decode.
        buf[0] = [0x00, 0x01, 0x02, 0x05, 0x06, 0x08, 0x09, 0x0a, 0x7f][(i % 9) as usize];
        buf[4] = (i % 10) as u8;
        let s = sqe(&buf);
        let _ = Command::decode(&s, true);
        let _ = Command::decode(&s, false);
    }
}

#[test]
fn zone_management_send() {
    // Linux reset-all: opcode 79h, NSID 1, SLBA 0x1_0000_0020, ZSA 04h, Select All.
    let r = raw(0x79, 1, [0x20, 0x1, 0, 0x0000_0104, 0, 0]);
    assert_eq!(
        io(&r),
        IoCommand::ZoneManagementSend(ZoneSend {
            nsid: 1,
            slba: 0x1_0000_0020,
            action: crate::zns::ZoneAction::Reset,
            select_all: true,
            zsaso: false,
        })
    );
    // Unknown action 0x10 with ZSASO (bit 9).
    let r = raw(0x79, 2, [0, 0, 0, 0x0000_0210, 0, 0]);
    let IoCommand::ZoneManagementSend(z) = io(&r) else {
        panic!("not a zone send");
    };
    assert_eq!(z.action, crate::zns::ZoneAction::Unknown(0x10));
    assert!(!z.select_all && z.zsaso);
}

#[test]
fn zone_management_receive() {
    // Linux report: NUMD 0x3ff (1024 dwords), ZRA 00h, ZRASF 00h (all), partial report.
    let r = raw(0x7a, 1, [0x8000, 0, 0x3ff, 0x0001_0000, 0, 0]);
    let want = ZoneReceive {
        nsid: 1,
        slba: 0x8000,
        numd: 1024,
        action: 0,
        option: crate::zns::ReportOption::All,
        partial: true,
    };
    assert_eq!(io(&r), IoCommand::ZoneManagementReceive(want));
    assert_eq!(want.len_bytes(), 4096);
    // Extended report of Full zones, not partial, NUMD at its largest.
    let r = raw(0x7a, 1, [0, 0, u32::MAX, 0x0000_0501, 0, 0]);
    let IoCommand::ZoneManagementReceive(z) = io(&r) else {
        panic!("not a zone receive");
    };
    assert_eq!(
        (z.action, z.option, z.partial),
        (1, crate::zns::ReportOption::Full, false)
    );
    assert_eq!(z.numd, 1 << 32);
}

#[test]
fn zone_append() {
    // ZSLBA 0x40000, NLB 7 (8 blocks), FUA.
    let r = raw(0x7d, 3, [0x40000, 0, 0x4000_0007, 0, 0, 0]);
    let IoCommand::ZoneAppend(a) = io(&r) else {
        panic!("not a zone append");
    };
    assert_eq!((a.nsid, a.slba, a.nlb, a.fua), (3, 0x40000, 8, true));
}

#[test]
fn zone_commands_encode_as_they_decode() {
    let send = ZoneSend {
        nsid: 7,
        slba: 0x1234_5678_9abc,
        action: crate::zns::ZoneAction::Finish,
        select_all: false,
        zsaso: true,
    };
    let sqe = send.to_sqe();
    assert_eq!(sqe.as_bytes()[0], 0x79);
    assert_eq!(
        IoCommand::decode(&sqe),
        Ok(IoCommand::ZoneManagementSend(send))
    );
    let recv = ZoneReceive {
        nsid: 7,
        slba: 0x40,
        numd: 1 << 32,
        action: 1,
        option: crate::zns::ReportOption::Closed,
        partial: true,
    };
    let sqe = recv.to_sqe();
    assert_eq!(
        &sqe.as_bytes()[48..56],
        &[0xff, 0xff, 0xff, 0xff, 0x01, 0x04, 0x01, 0x00]
    );
    assert_eq!(
        IoCommand::decode(&sqe),
        Ok(IoCommand::ZoneManagementReceive(recv))
    );
}
