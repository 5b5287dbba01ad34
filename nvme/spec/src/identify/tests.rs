use super::*;
use core::mem::offset_of;

#[test]
fn controller_offsets_match_linux() {
    type C = IdentifyController;
    let expect = [
        (offset_of!(C, vid), 0),
        (offset_of!(C, ssvid), 2),
        (offset_of!(C, sn), 4),
        (offset_of!(C, mn), 24),
        (offset_of!(C, fr), 64),
        (offset_of!(C, rab), 72),
        (offset_of!(C, ieee), 73),
        (offset_of!(C, cmic), 76),
        (offset_of!(C, mdts), 77),
        (offset_of!(C, cntlid), 78),
        (offset_of!(C, ver), 80),
        (offset_of!(C, rtd3r), 84),
        (offset_of!(C, rtd3e), 88),
        (offset_of!(C, oaes), 92),
        (offset_of!(C, ctratt), 96),
        (offset_of!(C, cntrltype), 111),
        (offset_of!(C, fguid), 112),
        (offset_of!(C, oacs), 256),
        (offset_of!(C, acl), 258),
        (offset_of!(C, aerl), 259),
        (offset_of!(C, frmw), 260),
        (offset_of!(C, lpa), 261),
        (offset_of!(C, elpe), 262),
        (offset_of!(C, npss), 263),
        (offset_of!(C, avscc), 264),
        (offset_of!(C, apsta), 265),
        (offset_of!(C, wctemp), 266),
        (offset_of!(C, cctemp), 268),
        (offset_of!(C, tnvmcap), 280),
        (offset_of!(C, kas), 320),
        (offset_of!(C, anatt), 342),
        (offset_of!(C, anagrpmax), 344),
        (offset_of!(C, sqes), 512),
        (offset_of!(C, cqes), 513),
        (offset_of!(C, maxcmd), 514),
        (offset_of!(C, nn), 516),
        (offset_of!(C, oncs), 520),
        (offset_of!(C, fuses), 522),
        (offset_of!(C, fna), 524),
        (offset_of!(C, vwc), 525),
        (offset_of!(C, awun), 526),
        (offset_of!(C, awupf), 528),
        (offset_of!(C, icsvscc), 530),
        (offset_of!(C, nwpc), 531),
        (offset_of!(C, acwu), 532),
        (offset_of!(C, ocfs), 534),
        (offset_of!(C, sgls), 536),
        (offset_of!(C, mnan), 540),
        (offset_of!(C, subnqn), 768),
        (offset_of!(C, ioccsz), 1792),
        (offset_of!(C, iorcsz), 1796),
        (offset_of!(C, icdoff), 1800),
        (offset_of!(C, fcatt), 1802),
        (offset_of!(C, msdbd), 1803),
        (offset_of!(C, ofcs), 1804),
        (offset_of!(C, psd), 2048),
        (offset_of!(C, vs), 3072),
    ];
    for (i, (got, want)) in expect.iter().enumerate() {
        assert_eq!(got, want, "entry {i}");
    }
}

#[test]
fn controller_golden_bytes() {
    let mut c = IdentifyController::zeroed();
    c.vid.set(0x1b36);
    c.set_serial_number("SN01");
    c.set_model_number("ferrofab");
    c.set_firmware_revision("0.1");
    c.ieee = [0x00, 0x54, 0x52];
    c.mdts = 5;
    c.cntlid.set(0x0102);
    c.ver.set(0x0002_0000);
    c.oaes.set(ctrl_bits::OAES_NS_ATTRIBUTE);
    c.cntrltype = CNTRLTYPE_IO;
    c.aerl = 3;
    c.lpa = ctrl_bits::LPA_CMD_EFFECTS | ctrl_bits::LPA_EXTENDED_DATA;
    c.kas.set(50);
    c.sqes = ctrl_bits::SQES_64;
    c.cqes = ctrl_bits::CQES_16;
    c.maxcmd.set(128);
    c.nn.set(32);
    c.oncs
        .set(ctrl_bits::ONCS_DSM | ctrl_bits::ONCS_WRITE_ZEROES);
    c.vwc = ctrl_bits::VWC_PRESENT;
    c.sgls
        .set(ctrl_bits::SGLS_SUPPORTED | ctrl_bits::SGLS_OFFSET | ctrl_bits::SGLS_TRANSPORT);
    c.set_subnqn("nqn.2024-01.io.ferrofab:a").unwrap();
    c.ioccsz.set(260);
    c.iorcsz.set(1);
    c.msdbd = 1;
    c.psd[0].mp.set(2500);
    let raw = c.as_bytes();
    assert_eq!(raw.len(), 4096);
    assert_eq!(&raw[0..2], &[0x36, 0x1b]);
    assert_eq!(&raw[4..24], b"SN01                ");
    assert_eq!(&raw[24..32], b"ferrofab");
    assert!(raw[32..64].iter().all(|&b| b == b' '));
    assert_eq!(&raw[64..72], b"0.1     ");
    assert_eq!(&raw[73..76], &[0x00, 0x54, 0x52]);
    assert_eq!(raw[77], 5);
    assert_eq!(&raw[78..80], &[0x02, 0x01]);
    assert_eq!(&raw[80..84], &[0x00, 0x00, 0x02, 0x00]);
    assert_eq!(&raw[92..96], &[0x00, 0x01, 0x00, 0x00]);
    assert_eq!(raw[111], 1);
    assert_eq!(raw[259], 3);
    assert_eq!(raw[261], 0x06);
    assert_eq!(&raw[320..322], &[50, 0]);
    assert_eq!(&raw[512..514], &[0x66, 0x44]);
    assert_eq!(&raw[514..516], &[128, 0]);
    assert_eq!(&raw[516..520], &[32, 0, 0, 0]);
    assert_eq!(&raw[520..522], &[0x0c, 0x00]);
    assert_eq!(raw[525], 1);
    assert_eq!(&raw[536..540], &[0x01, 0x00, 0x30, 0x00]);
    assert_eq!(&raw[768..794], b"nqn.2024-01.io.ferrofab:a\0");
    assert_eq!(&raw[1792..1796], &[0x04, 0x01, 0, 0]);
    assert_eq!(&raw[1796..1800], &[1, 0, 0, 0]);
    assert_eq!(raw[1803], 1);
    assert_eq!(&raw[2048..2050], &[0xc4, 0x09]);

    let back = IdentifyController::from_bytes(raw).unwrap();
    assert_eq!(back, c);
    assert_eq!(back.serial_number(), "SN01");
    assert_eq!(back.model_number(), "ferrofab");
    assert_eq!(back.firmware_revision(), "0.1");
    assert_eq!(back.subnqn(), Ok("nqn.2024-01.io.ferrofab:a"));
    assert!(IdentifyController::from_bytes(&raw[..4095]).is_none());
}

#[test]
fn ascii_helpers() {
    let mut f = [0u8; 8];
    write_ascii_padded(&mut f, "abcdefghij");
    assert_eq!(&f, b"abcdefgh");
    write_ascii_padded(&mut f, "é\tx");
    assert_eq!(&f, b"??x     ");
    assert_eq!(read_ascii_trimmed(b"ab  \0zz"), "ab");
    assert_eq!(read_ascii_trimmed(b"a\x01b   "), "a?b");
    assert_eq!(read_ascii_trimmed(b""), "");
}

#[test]
fn namespace_offsets_match_linux() {
    type N = IdentifyNamespace;
    let expect = [
        (offset_of!(N, nsze), 0),
        (offset_of!(N, ncap), 8),
        (offset_of!(N, nuse), 16),
        (offset_of!(N, nsfeat), 24),
        (offset_of!(N, nlbaf), 25),
        (offset_of!(N, flbas), 26),
        (offset_of!(N, mc), 27),
        (offset_of!(N, dpc), 28),
        (offset_of!(N, dps), 29),
        (offset_of!(N, nmic), 30),
        (offset_of!(N, rescap), 31),
        (offset_of!(N, fpi), 32),
        (offset_of!(N, dlfeat), 33),
        (offset_of!(N, nawun), 34),
        (offset_of!(N, nawupf), 36),
        (offset_of!(N, nacwu), 38),
        (offset_of!(N, nabsn), 40),
        (offset_of!(N, noiob), 46),
        (offset_of!(N, nvmcap), 48),
        (offset_of!(N, npwg), 64),
        (offset_of!(N, npwa), 66),
        (offset_of!(N, npdg), 68),
        (offset_of!(N, npda), 70),
        (offset_of!(N, nows), 72),
        (offset_of!(N, mssrl), 74),
        (offset_of!(N, mcl), 76),
        (offset_of!(N, msrc), 80),
        (offset_of!(N, nulbaf), 82),
        (offset_of!(N, anagrpid), 92),
        (offset_of!(N, nsattr), 99),
        (offset_of!(N, nvmsetid), 100),
        (offset_of!(N, endgid), 102),
        (offset_of!(N, nguid), 104),
        (offset_of!(N, eui64), 120),
        (offset_of!(N, lbaf), 128),
        (offset_of!(N, vs), 3840),
    ];
    for (i, (got, want)) in expect.iter().enumerate() {
        assert_eq!(got, want, "entry {i}");
    }
}

#[test]
fn namespace_golden_bytes() {
    let mut ns = IdentifyNamespace::zeroed();
    ns.nsze.set(0x0000_0001_0000_0000);
    ns.ncap.set(0x0000_0001_0000_0000);
    ns.nuse.set(0x1000);
    ns.nsfeat = NSFEAT_THIN_PROVISIONING;
    ns.nlbaf = 1;
    ns.flbas = 1;
    ns.dlfeat = DLFEAT_READ_ZEROES | DLFEAT_WRITE_ZEROES_DEALLOCATES;
    ns.anagrpid.set(1);
    ns.nguid = [0xaa; 16];
    ns.eui64 = [1, 2, 3, 4, 5, 6, 7, 8];
    ns.lbaf[0] = LbaFormat::for_block_size(512);
    ns.lbaf[1] = LbaFormat::for_block_size(4096);
    ns.lbaf[1].ms.set(8);
    let raw = ns.as_bytes();
    assert_eq!(&raw[0..8], &[0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(&raw[16..24], &[0, 0x10, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&raw[24..27], &[1, 1, 1]);
    assert_eq!(raw[33], 0x09);
    assert_eq!(&raw[92..96], &[1, 0, 0, 0]);
    assert_eq!(&raw[104..120], &[0xaa; 16]);
    assert_eq!(&raw[120..128], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&raw[128..132], &[0, 0, 9, 0]);
    assert_eq!(&raw[132..136], &[8, 0, 12, 0]);
    let back = IdentifyNamespace::from_bytes(raw).unwrap();
    assert_eq!(back.lba_format_index(), 1);
    assert_eq!(back.block_size(), Some(4096));
    assert_eq!(back, ns);
    // FLBAS bits 6:5 extend the index past 15.
    ns.flbas = 0x62;
    assert_eq!(ns.lba_format_index(), 0x32);
    ns.lbaf[0x32].lbads = 40;
    assert_eq!(ns.block_size(), None);
}

#[test]
fn cns_and_csi_codes() {
    assert_eq!(Cns::from_u8(0x00), Cns::Namespace);
    assert_eq!(Cns::from_u8(0x01), Cns::Controller);
    assert_eq!(Cns::from_u8(0x02), Cns::ActiveNamespaceList);
    assert_eq!(Cns::from_u8(0x03), Cns::NamespaceIdDescriptors);
    assert_eq!(Cns::from_u8(0x05), Cns::IoCommandSetNamespace);
    assert_eq!(Cns::from_u8(0x06), Cns::IoCommandSetController);
    assert_eq!(Cns::from_u8(0x1c), Cns::IoCommandSet);
    assert_eq!(Cns::from_u8(0x1d), Cns::Unknown(0x1d));
    assert_eq!(Csi::from_u8(2), Csi::Zoned);
    assert_eq!(Csi::Nvm.to_u8(), 0);
}

#[test]
fn active_namespace_list_golden() {
    let page = active_namespace_list(&[7, 1, 3, 3, 2], 1);
    assert_eq!(page.len(), 4096);
    assert_eq!(
        &page[0..16],
        &[2, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]
    );
    assert!(page[12..].iter().all(|&b| b == 0));
    assert_eq!(parse_namespace_list(&page), vec![2, 3, 7]);
    let many: Vec<u32> = (1..=2000).collect();
    let page = active_namespace_list(&many, 0);
    let ids = parse_namespace_list(&page);
    assert_eq!(ids.len(), 1024);
    assert_eq!(ids[1023], 1024);
    assert_eq!(&page[4092..4096], &[0x00, 0x04, 0, 0]);
    assert!(parse_namespace_list(&active_namespace_list(&[5], 5)).is_empty());
}

#[test]
fn ns_descriptor_golden_and_round_trip() {
    let descs = [
        NsDescriptor::Eui64([1, 2, 3, 4, 5, 6, 7, 8]),
        NsDescriptor::Nguid([0x11; 16]),
        NsDescriptor::Uuid([0x22; 16]),
        NsDescriptor::Csi(0),
    ];
    let page = NsDescriptor::encode_list(&descs).unwrap();
    assert_eq!(page.len(), 4096);
    assert_eq!(&page[0..12], &[1, 8, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&page[12..16], &[2, 16, 0, 0]);
    assert_eq!(&page[16..32], &[0x11; 16]);
    assert_eq!(&page[32..36], &[3, 16, 0, 0]);
    assert_eq!(&page[36..52], &[0x22; 16]);
    assert_eq!(&page[52..57], &[4, 1, 0, 0, 0]);
    assert!(page[57..].iter().all(|&b| b == 0));
    assert_eq!(NsDescriptor::parse_list(&page).unwrap(), descs.to_vec());
}

#[test]
fn ns_descriptor_bad_input() {
    assert_eq!(
        NsDescriptor::parse_list(&[1, 8, 0, 0, 1, 2]),
        Err(DescriptorError::Truncated { offset: 0 })
    );
    assert_eq!(
        NsDescriptor::parse_list(&[1]),
        Err(DescriptorError::Truncated { offset: 0 })
    );
    assert_eq!(
        NsDescriptor::parse_list(&[2, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(DescriptorError::BadLength {
            nidt: 2,
            nidl: 8,
            expected: 16
        })
    );
    assert_eq!(
        NsDescriptor::parse_list(&[9, 2, 0, 0, 0xff, 0xff, 4, 1, 0, 0, 2]).unwrap(),
        vec![
            NsDescriptor::Unknown { nidt: 9, nidl: 2 },
            NsDescriptor::Csi(2)
        ]
    );
    assert!(NsDescriptor::parse_list(&[]).unwrap().is_empty());
    // 200 UUID descriptors are 4000 bytes and fit; 205 are 4100 and do not.
    assert_eq!(
        NsDescriptor::encode_list(&[NsDescriptor::Uuid([0; 16]); 200])
            .unwrap()
            .len(),
        4096
    );
    assert_eq!(
        NsDescriptor::encode_list(&[NsDescriptor::Uuid([0; 16]); 205]),
        Err(DescriptorError::TooLarge { needed: 4100 })
    );
}

#[test]
fn io_command_set_vectors_golden() {
    let page = io_command_set_vectors(&[IOCS_NVM | IOCS_ZONED, IOCS_NVM]);
    assert_eq!(page.len(), 4096);
    assert_eq!(
        &page[0..16],
        &[5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    assert!(page[16..].iter().all(|&b| b == 0));
    let v = parse_io_command_set_vectors(&page);
    assert_eq!(v.len(), 512);
    assert_eq!(&v[..3], &[5, 1, 0]);
}
