use super::*;
use nvme_spec::{Sgl, Status};

fn enc(pdu: &Pdu, digests: Digests, pda: u8) -> Vec<u8> {
    pdu.encode(EncodeOptions { digests, pda }).to_vec()
}

#[test]
fn golden_icreq() {
    let pdu = Pdu::new(PduHeader::IcReq(IcReq {
        pfv: 0,
        hpda: 0,
        dgst: DGST_HDGST_ENABLE | DGST_DDGST_ENABLE,
        maxr2t: 3,
    }));
    let mut want = vec![0u8; 128];
    want[..16].copy_from_slice(&[
        0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, // type 0, hlen 128, plen 128
        0x00, 0x00, 0x00, 0x03, 0x03, 0x00, 0x00, 0x00, // pfv 0, hpda 0, dgst 3, maxr2t 3
    ]);
    // ICReq never carries a header digest, even when the caller asks for one.
    assert_eq!(
        enc(
            &pdu,
            Digests {
                header: true,
                data: true
            },
            0
        ),
        want
    );
    let back = PduHeader::parse(&want).unwrap();
    assert_eq!(back, pdu.header);
    let PduHeader::IcReq(r) = back else { panic!() };
    assert_eq!(
        r.digests(),
        Digests {
            header: true,
            data: true
        }
    );
}

#[test]
fn golden_icresp() {
    let pdu = Pdu::new(PduHeader::IcResp(IcResp {
        pfv: 0,
        cpda: 1,
        dgst: DGST_DDGST_ENABLE,
        maxh2cdata: 0x20000,
    }));
    let mut want = vec![0u8; 128];
    want[..16].copy_from_slice(&[
        0x01, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, // type 1, hlen 128, plen 128
        0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x02, 0x00, // cpda 1, dgst 2, maxh2cdata 128 KiB
    ]);
    assert_eq!(enc(&pdu, Digests::NONE, 0), want);
    assert_eq!(PduHeader::parse(&want).unwrap(), pdu.header);
}

#[test]
fn golden_c2h_term_req_with_offending_header() {
    let offending = [0x42u8, 0, 8, 0, 8, 0, 0, 0];
    let pdu = Pdu::with_data(
        PduHeader::C2HTermReq(TermReq {
            fes: Fes::InvalidHeaderField,
            fei: 0,
        }),
        0,
        Bytes::copy_from_slice(&offending),
    );
    let want = [
        0x03, 0x00, 0x18, 0x00, 0x20, 0x00, 0x00, 0x00, // type 3, hlen 24, pdo 0, plen 32
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // fes 1, fei 0
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // reserved
        0x42, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, // the offending header
    ];
    // no digests on TermReq (NVMe/TCP 1.0 §3.3.1.1)
    assert_eq!(
        enc(
            &pdu,
            Digests {
                header: true,
                data: true
            },
            3
        ),
        want
    );
    assert_eq!(
        PduHeader::parse(&want).unwrap(),
        PduHeader::C2HTermReq(TermReq {
            fes: Fes::InvalidHeaderField,
            fei: 0
        })
    );
}

#[test]
fn golden_h2c_term_req_fei_and_truncation() {
    let pdu = Pdu::with_data(
        PduHeader::H2CTermReq(TermReq {
            fes: Fes::DataOutOfRange,
            fei: 0x0102_0304,
        }),
        0,
        Bytes::from(vec![0xaa; 200]),
    );
    let bytes = enc(&pdu, Digests::NONE, 0);
    assert_eq!(bytes.len(), 152);
    assert_eq!(
        &bytes[..14],
        &[0x02, 0, 24, 0, 152, 0, 0, 0, 0x04, 0x00, 0x04, 0x03, 0x02, 0x01]
    );
    assert!(bytes[24..].iter().all(|&b| b == 0xaa));
}

fn write_sqe() -> Sqe {
    let mut sqe = Sqe {
        opcode: 0x01,
        flags: 0x40,
        ..Default::default()
    };
    sqe.cid.set(0x0a0b);
    sqe.nsid.set(1);
    sqe.dptr = Sgl::InCapsule {
        offset: 0,
        length: 8,
    }
    .encode();
    sqe
}

#[test]
fn golden_capsule_cmd_with_in_capsule_data() {
    let pdu = Pdu::with_data(
        PduHeader::CapsuleCmd(write_sqe()),
        0,
        Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
    );
    let mut want = vec![
        0x04, 0x00, 0x48, 0x48, 0x50, 0x00, 0x00, 0x00, // type 4, hlen 72, pdo 72, plen 80
        0x01, 0x40, 0x0b, 0x0a, 0x01, 0x00, 0x00, 0x00, // opcode, flags, cid, nsid
    ];
    want.extend_from_slice(&[0; 16]); // cdw2, cdw3, mptr
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x01]); // dptr
    want.extend_from_slice(&[0; 24]); // cdw10..15
    want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(enc(&pdu, Digests::NONE, 0), want);
    assert_eq!(PduHeader::parse(&want).unwrap(), pdu.header);
}

#[test]
fn capsule_cmd_with_digests_and_cpda_padding() {
    let data = Bytes::from_static(b"123456789");
    let pdu = Pdu::with_data(PduHeader::CapsuleCmd(write_sqe()), 0, data);
    // CPDA 7: data aligned to 32 bytes; header 72 + 4 digest = 76 -> PDO 96.
    let bytes = enc(
        &pdu,
        Digests {
            header: true,
            data: true,
        },
        7,
    );
    assert_eq!(bytes[1], FLAG_HDGSTF | FLAG_DDGSTF);
    assert_eq!(bytes[2], 72);
    assert_eq!(bytes[3], 96);
    assert_eq!(&bytes[4..8], &(96u32 + 9 + 4).to_le_bytes());
    let hd = digest::crc32c(&bytes[..72]).to_le_bytes();
    assert_eq!(&bytes[72..76], &hd);
    assert!(bytes[76..96].iter().all(|&b| b == 0));
    assert_eq!(&bytes[96..105], b"123456789");
    assert_eq!(&bytes[105..], &[0x83, 0x92, 0x06, 0xe3]);
}

#[test]
fn golden_capsule_resp() {
    let cqe = Cqe::new(0x0a0b, 1, 5, Status::SUCCESS, 0x1234_5678, 0);
    let pdu = Pdu::new(PduHeader::CapsuleResp(cqe));
    let want = [
        0x05, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00, // type 5, hlen 24, plen 24
        0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, // dw0, dw1
        0x05, 0x00, 0x01, 0x00, 0x0b, 0x0a, 0x00, 0x00, // sqhd, sqid, cid, status
    ];
    assert_eq!(enc(&pdu, Digests::NONE, 0), want);
    assert_eq!(PduHeader::parse(&want).unwrap(), pdu.header);
}

#[test]
fn capsule_resp_with_header_digest() {
    let cqe = Cqe::new(1, 0, 0, Status::SUCCESS, 0, 0);
    let bytes = enc(
        &Pdu::new(PduHeader::CapsuleResp(cqe)),
        Digests {
            header: true,
            data: true,
        },
        0,
    );
    // HDGSTF only (no data, so no DDGSTF), PDO 0, PLEN 28.
    assert_eq!(&bytes[..8], &[0x05, 0x01, 0x18, 0x00, 0x1c, 0, 0, 0]);
    assert_eq!(&bytes[24..], &digest::crc32c(&bytes[..24]).to_le_bytes());
}

#[test]
fn golden_h2c_data() {
    let pdu = Pdu::with_data(
        PduHeader::H2CData(H2CData {
            cccid: 0x0102,
            ttag: 0x0304,
            datao: 0x1000,
            datal: 4,
        }),
        FLAG_LAST_PDU,
        Bytes::from_static(&[9, 8, 7, 6]),
    );
    let want = [
        0x06, 0x04, 0x18, 0x18, 0x1c, 0x00, 0x00,
        0x00, // type 6, LAST, hlen 24, pdo 24, plen 28
        0x02, 0x01, 0x04, 0x03, 0x00, 0x10, 0x00, 0x00, // cccid, ttag, datao
        0x04, 0x00, 0x00, 0x00, 0, 0, 0, 0, // datal, reserved
        9, 8, 7, 6,
    ];
    assert_eq!(enc(&pdu, Digests::NONE, 0), want);
    assert_eq!(PduHeader::parse(&want).unwrap(), pdu.header);
}

#[test]
fn golden_c2h_data_success_with_hpda_padding() {
    let pdu = Pdu::with_data(
        PduHeader::C2HData(C2HData {
            cccid: 7,
            datao: 0,
            datal: 2,
        }),
        FLAG_LAST_PDU | FLAG_SUCCESS,
        Bytes::from_static(&[0xde, 0xad]),
    );
    // HPDA 1 -> 8-byte alignment: 24 is already aligned. HPDA 2 -> 12: PDO 24 too.
    // HPDA 3 -> 16: PDO 32.
    let want = [
        0x07, 0x0c, 0x18, 0x20, 0x22, 0x00, 0x00,
        0x00, // type 7, LAST|SUCCESS, pdo 32, plen 34
        0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cccid 7, ttag reserved, datao 0
        0x02, 0x00, 0x00, 0x00, 0, 0, 0, 0, // datal 2
        0, 0, 0, 0, 0, 0, 0, 0, // pad to PDO
        0xde, 0xad,
    ];
    assert_eq!(enc(&pdu, Digests::NONE, 3), want);
    assert_eq!(PduHeader::parse(&want).unwrap(), pdu.header);
}

#[test]
fn golden_r2t() {
    let pdu = Pdu::new(PduHeader::R2t(R2t {
        cccid: 0x0011,
        ttag: 0x0022,
        r2to: 0x0002_0000,
        r2tl: 0x0002_0000,
    }));
    let want = [
        0x09, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00, // type 9, hlen 24, plen 24
        0x11, 0x00, 0x22, 0x00, 0x00, 0x00, 0x02, 0x00, // cccid, ttag, r2to
        0x00, 0x00, 0x02, 0x00, 0, 0, 0, 0, // r2tl
    ];
    assert_eq!(enc(&pdu, Digests::NONE, 0), want);
    assert_eq!(PduHeader::parse(&want).unwrap(), pdu.header);
}

#[test]
fn parse_rejects_unknown_type_and_bad_hlen() {
    let mut raw = [0u8; 24];
    raw[0] = 0x08;
    raw[2] = 24;
    assert_eq!(PduType::from_code(8), PduType::Unknown(8));
    assert_eq!(PduHeader::parse(&raw), Err(FatalError::field(0)));
    raw[0] = 0x05;
    raw[2] = 23;
    assert_eq!(PduHeader::parse(&raw), Err(FatalError::field(2)));
    raw[2] = 72; // wrong for CapsuleResp, and longer than the buffer
    assert_eq!(PduHeader::parse(&raw), Err(FatalError::field(2)));
    raw[0] = 0x04; // CapsuleCmd wants 72, buffer too short
    assert_eq!(PduHeader::parse(&raw), Err(FatalError::field(2)));
    assert_eq!(PduHeader::parse(&raw[..4]), Err(FatalError::field(4)));
}

#[test]
fn codes_round_trip() {
    for c in 0..=255u8 {
        assert_eq!(PduType::from_code(c).code(), c);
    }
    for c in 0..=16u16 {
        assert_eq!(Fes::from_code(c).code(), c);
    }
    assert_eq!(Fes::from_code(5), Fes::DataLimitExceeded);
    assert_eq!(Digests::from_bits(3).bits(), 3);
    assert_eq!(pda_alignment(0), 4);
    assert_eq!(pda_alignment(31), 128);
}
