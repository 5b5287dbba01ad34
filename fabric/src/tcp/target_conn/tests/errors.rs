//! Refusals: failed Connects, fatal PDU errors answered with C2HTermReq, digest errors,
//! timeouts, teardown and CID conflicts.

use super::*;

#[test]
fn connect_failure_keeps_the_connection() {
    let target = RamTarget::new();
    target.refuse_connects.store(1, Ordering::SeqCst);
    let mut h = Host::new(target.clone(), TcpTargetConfig::default());
    h.handshake(0, 0, 0);
    // A command before Connect is out of sequence.
    h.send(&read_cmd(1, 0, 512));
    assert_eq!(
        cqe_of(&h.recv()[0]).status(),
        Status::COMMAND_SEQUENCE_ERROR.with_dnr()
    );
    let cqe = h.connect(3, 8, 0);
    assert_eq!(cqe.status(), Status::INVALID_FIELD.with_dnr());
    assert_eq!(cqe.sqid.get(), 3);
    assert!(!h.conn.is_closing());
    assert!(h.conn.teardown_token().is_none());
    let cqe = h.connect(3, 8, 0);
    assert_eq!(cqe.status(), Status::SUCCESS);
    assert_eq!(
        cqe.sqhd.get(),
        1,
        "SQ head counts from the successful Connect"
    );
    assert_eq!(h.conn.qid(), Some(3));
    // A second Connect on the same queue is out of sequence.
    let cqe = h.connect(3, 8, 0);
    assert_eq!(cqe.status(), Status::COMMAND_SEQUENCE_ERROR.with_dnr());
}

#[test]
fn term_req_for_pdu_before_icreq() {
    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    let cmd = connect_pdu(0, 8, 0)
        .encode(EncodeOptions::default())
        .to_vec();
    h.send_raw(&cmd);
    let (t, quoted) = term_of(&mut h);
    assert_eq!(t.fes, Fes::PduSequenceError);
    assert_eq!(&quoted[..], &cmd[..72], "the offending header is quoted");
    // Input after the fatal error is ignored.
    h.send_raw(&cmd);
    assert!(!h.conn.has_transmit());
}

#[test]
fn term_req_for_second_icreq_and_bad_pfv_and_hpda() {
    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    h.handshake(0, 0, 0);
    h.send(&Pdu::new(PduHeader::IcReq(IcReq {
        pfv: 0,
        hpda: 0,
        dgst: 0,
        maxr2t: 0,
    })));
    assert_eq!(term_of(&mut h).0.fes, Fes::PduSequenceError);

    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    h.send(&Pdu::new(PduHeader::IcReq(IcReq {
        pfv: 1,
        hpda: 0,
        dgst: 0,
        maxr2t: 0,
    })));
    let (t, _) = term_of(&mut h);
    assert_eq!((t.fes, t.fei), (Fes::UnsupportedParameter, 8));

    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    h.send(&Pdu::new(PduHeader::IcReq(IcReq {
        pfv: 0,
        hpda: 32,
        dgst: 0,
        maxr2t: 0,
    })));
    let (t, _) = term_of(&mut h);
    assert_eq!((t.fes, t.fei), (Fes::InvalidHeaderField, 10));
}

#[test]
fn term_req_for_unknown_type_and_bad_hlen() {
    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    h.handshake(0, 0, 0);
    h.send_raw(&[0x0a, 0, 24, 0, 24, 0, 0, 0]);
    let (t, quoted) = term_of(&mut h);
    assert_eq!((t.fes, t.fei), (Fes::InvalidHeaderField, 0));
    assert_eq!(&quoted[..], &[0x0a, 0, 24, 0, 24, 0, 0, 0]);

    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    h.handshake(0, 0, 0);
    let mut bad = connect_pdu(0, 8, 0).encode(h.opts).to_vec();
    bad[2] = 64;
    h.send_raw(&bad);
    let (t, _) = term_of(&mut h);
    assert_eq!((t.fes, t.fei), (Fes::InvalidHeaderField, 2));
}

#[test]
fn term_req_for_header_digest_error() {
    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    h.handshake(0, DGST_HDGST_ENABLE, 0);
    let mut bytes = connect_pdu(0, 8, 0).encode(h.opts).to_vec();
    bytes[20] ^= 1; // corrupt the SQE: the header digest no longer matches
    let received = u32::from_le_bytes([bytes[72], bytes[73], bytes[74], bytes[75]]);
    h.send_raw(&bytes);
    let (t, _) = term_of(&mut h);
    assert_eq!((t.fes, t.fei), (Fes::HeaderDigestError, received));
}

#[test]
fn term_req_for_h2c_data_out_of_range() {
    let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
    let r2ts = start_r2t_write(&mut h, 4, 4096);
    assert_eq!(r2ts.len(), 1);
    let r = r2ts[0];
    h.send(&Pdu::with_data(
        PduHeader::H2CData(H2CData {
            cccid: 4,
            ttag: r.ttag,
            datao: 2048,
            datal: 4096,
        }),
        FLAG_LAST_PDU,
        Bytes::from(pattern(4096, 0)),
    ));
    let (t, quoted) = term_of(&mut h);
    assert_eq!(t.fes, Fes::DataOutOfRange);
    assert_eq!(quoted.len(), 24);
    assert_eq!(quoted[0], 0x06);
}

#[test]
fn term_req_for_unknown_ttag_and_out_of_order_data() {
    let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
    let r = start_r2t_write(&mut h, 4, 4096)[0];
    h.send(&Pdu::with_data(
        PduHeader::H2CData(H2CData {
            cccid: 4,
            ttag: r.ttag.wrapping_add(1),
            datao: 0,
            datal: 512,
        }),
        0,
        Bytes::from(pattern(512, 0)),
    ));
    assert_eq!(
        term_of(&mut h).0,
        TermReq {
            fes: Fes::InvalidHeaderField,
            fei: 10
        }
    );

    let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
    let r = start_r2t_write(&mut h, 4, 4096)[0];
    h.send(&Pdu::with_data(
        PduHeader::H2CData(H2CData {
            cccid: 4,
            ttag: r.ttag,
            datao: 512,
            datal: 512,
        }),
        0,
        Bytes::from(pattern(512, 0)),
    ));
    assert_eq!(term_of(&mut h).0.fes, Fes::PduSequenceError);
}

#[test]
fn h2c_data_above_maxh2cdata_is_limit_exceeded() {
    let config = TcpTargetConfig {
        max_h2c_data: 4096,
        ..Default::default()
    };
    let mut h = Host::ready(RamTarget::new(), config, 0);
    let r = start_r2t_write(&mut h, 4, 8192)[0];
    assert_eq!(r.r2tl, 4096);
    h.send(&Pdu::with_data(
        PduHeader::H2CData(H2CData {
            cccid: 4,
            ttag: r.ttag,
            datao: 0,
            datal: 6144,
        }),
        0,
        Bytes::from(pattern(6144, 0)),
    ));
    assert_eq!(term_of(&mut h).0.fes, Fes::DataLimitExceeded);
}

#[test]
fn data_digest_error_in_capsule_fails_the_command_only() {
    let target = RamTarget::new();
    let mut h = Host::new(target.clone(), TcpTargetConfig::default());
    h.handshake(0, DGST_DDGST_ENABLE, 0);
    h.connect(1, 32, 0);
    let mut bytes = in_capsule_write(5, 0, pattern(512, 5))
        .encode(h.opts)
        .to_vec();
    assert_eq!(bytes[1], FLAG_DDGSTF);
    bytes[100] ^= 0x80; // corrupt the data
    h.send_raw(&bytes);
    let got = h.recv();
    assert_eq!(got.len(), 1);
    // NVMe/TCP 1.0 §3.5.2: non-fatal, the command fails with Transient Transport Error.
    assert_eq!(cqe_of(&got[0]).status(), Status::TRANSIENT_TRANSPORT_ERROR);
    assert!(!h.conn.is_closing());
    assert!(target.store.lock_counted()[..512].iter().all(|&b| b == 0));
    // The connection carries on.
    h.send(&in_capsule_write(6, 0, pattern(512, 6)));
    assert_eq!(cqe_of(&h.recv()[0]).status(), Status::SUCCESS);
    assert_eq!(&target.store.lock_counted()[..512], &pattern(512, 6)[..]);
}

#[test]
fn data_digest_error_in_h2c_data_fails_after_all_data() {
    let target = RamTarget::new();
    let mut h = Host::new(target.clone(), TcpTargetConfig::default());
    h.handshake(0, DGST_DDGST_ENABLE, 1);
    h.connect(1, 32, 0);
    let r = start_r2t_write(&mut h, 8, 4096)[0];
    let data = pattern(4096, 8);
    for (i, off) in [0usize, 2048].into_iter().enumerate() {
        let mut bytes = Pdu::with_data(
            PduHeader::H2CData(H2CData {
                cccid: 8,
                ttag: r.ttag,
                datao: off as u32,
                datal: 2048,
            }),
            if i == 1 { FLAG_LAST_PDU } else { 0 },
            Bytes::copy_from_slice(&data[off..off + 2048]),
        )
        .encode(h.opts)
        .to_vec();
        if i == 0 {
            let n = bytes.len();
            bytes[n - 1] ^= 1; // bad DDGST on the first PDU
        }
        h.send_raw(&bytes);
        let got = h.recv();
        if i == 0 {
            assert!(got.is_empty(), "keeps receiving the command's data");
        } else {
            assert_eq!(got.len(), 1);
            assert_eq!(cqe_of(&got[0]).status(), Status::TRANSIENT_TRANSPORT_ERROR);
        }
    }
    assert!(!h.conn.is_closing());
    assert!(target.store.lock_counted()[..4096].iter().all(|&b| b == 0));
}

#[test]
fn h2c_term_req_closes_without_reply() {
    let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
    h.send(&Pdu::with_data(
        PduHeader::H2CTermReq(TermReq {
            fes: Fes::PduSequenceError,
            fei: 0,
        }),
        0,
        Bytes::from_static(&[0; 24]),
    ));
    assert!(h.recv().is_empty());
    assert!(matches!(h.conn.poll_event(), Some(Event::Close)));
}

#[test]
fn ic_timeout_closes() {
    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    let deadline = h.conn.next_timeout().unwrap();
    h.conn.handle_timeout(deadline - Duration::from_millis(1));
    assert!(h.conn.poll_event().is_none());
    h.conn.handle_timeout(deadline);
    assert!(matches!(h.conn.poll_event(), Some(Event::Close)));
    assert!(!h.conn.has_transmit());
}

#[test]
fn disconnected_is_called_once() {
    let target = RamTarget::new();
    let mut h = Host::ready(target.clone(), TcpTargetConfig::default(), 0);
    assert!(h.conn.teardown_token().is_some());
    h.conn.close();
    h.conn.close();
    drop(h);
    assert_eq!(target.disconnects.load(Ordering::SeqCst), 1);
    // Dropping an open connection also reports it.
    let h = Host::ready(target.clone(), TcpTargetConfig::default(), 0);
    drop(h);
    assert_eq!(target.disconnects.load(Ordering::SeqCst), 2);
}

#[test]
fn cid_conflict_with_outstanding_command() {
    let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
    let r2ts = start_r2t_write(&mut h, 4, 4096);
    assert_eq!(r2ts.len(), 1);
    h.send(&read_cmd(4, 0, 512));
    assert_eq!(
        cqe_of(&h.recv()[0]).status(),
        Status::CID_CONFLICT.with_dnr()
    );
}
