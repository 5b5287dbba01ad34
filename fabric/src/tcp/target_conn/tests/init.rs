//! Connection initialization: ICReq/ICResp negotiation (NVMe/TCP 1.0 §3.1).

use super::*;

#[test]
fn icreq_negotiates_digests_and_maxh2cdata() {
    let target = RamTarget::new();
    let config = TcpTargetConfig {
        cpda: 3,
        ..Default::default()
    };
    let mut h = Host::new(target, config);
    h.send(&Pdu::new(PduHeader::IcReq(IcReq {
        pfv: 0,
        hpda: 0,
        dgst: DGST_HDGST_ENABLE | DGST_DDGST_ENABLE,
        maxr2t: 0,
    })));
    let raw: Vec<u8> = std::iter::from_fn(|| h.conn.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect();
    let mut want = vec![0u8; 128];
    want[..16].copy_from_slice(&[
        0x01, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, // ICResp, HLEN 128, PLEN 128
        0x00, 0x00, 0x03, 0x03, 0x00, 0x00, 0x02, 0x00, // PFV 0, CPDA 3, DGST 3, 128 KiB
    ]);
    assert_eq!(raw, want);
    assert_eq!(
        h.conn.digests(),
        Digests {
            header: true,
            data: true
        }
    );
    // Now every PDU carries both digests, and the command's data respects CPDA (16 bytes).
    h.rx.set_digests(h.conn.digests());
    h.opts = EncodeOptions {
        digests: h.conn.digests(),
        pda: 3,
    };
    let bytes = connect_pdu(0, 32, 0).encode(h.opts).to_vec();
    assert_eq!(bytes[3], 80, "PDO 72 + 4 rounded up to 16");
    h.send_raw(&bytes);
    let raw: Vec<u8> = std::iter::from_fn(|| h.conn.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect();
    assert_eq!(raw.len(), 28);
    assert_eq!(&raw[..8], &[0x05, FLAG_HDGSTF, 24, 0, 28, 0, 0, 0]);
    assert_eq!(&raw[24..], &digest::crc32c(&raw[..24]).to_le_bytes());
    let cqe = Cqe::from_slice(&raw[8..]).unwrap();
    assert_eq!(cqe.status(), Status::SUCCESS);
    assert_eq!(cqe.dw0.get(), 0x42);
    assert_eq!(cqe.sqid.get(), 0);
    assert_eq!(cqe.sqhd.get(), 1, "the Connect consumed one entry");
}

#[test]
fn digests_not_requested_are_not_granted() {
    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    let r = h.handshake(0, DGST_DDGST_ENABLE, 0);
    assert_eq!(r.dgst, DGST_DDGST_ENABLE);
    assert_eq!(r.maxh2cdata, 128 * 1024);
    assert_eq!(
        h.conn.digests(),
        Digests {
            header: false,
            data: true
        }
    );
}

#[test]
fn hpda_pads_c2h_data() {
    let target = RamTarget::new();
    target.store.lock_counted()[..512].copy_from_slice(&pattern(512, 7));
    let mut h = Host::new(target, TcpTargetConfig::default());
    h.handshake(3, 0, 0);
    h.connect(1, 16, 0);
    h.send(&read_cmd(5, 0, 512));
    let raw: Vec<u8> = std::iter::from_fn(|| h.conn.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect();
    // C2HData: HLEN 24, PDO 32 (16-byte alignment), PLEN 32 + 512, then the CapsuleResp.
    let ch = CommonHeader::parse(&raw).unwrap();
    assert_eq!(ch.pdu_type, 0x07);
    assert_eq!((ch.hlen, ch.pdo, ch.plen()), (24, 32, 544));
    assert!(raw[24..32].iter().all(|&b| b == 0));
    assert_eq!(&raw[32..544], &pattern(512, 7)[..]);
    assert_eq!(raw[544], 0x05);
}
