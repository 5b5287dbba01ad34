//! The sans-IO NVMe/TCP host connection against hand-built controller PDU byte streams
//! (layouts from NVMe/TCP 1.0 §3.6.2 and Linux include/linux/nvme-tcp.h).

use bytes::Bytes;
use fabric::tcp::host_conn::{
    CommandError, ConnError, HostConn, HostConnConfig, HostEvent, Negotiated, SubmitError,
};
use fabric::tcp::pdu::Digests;
use nvme_spec::{Sqe, Status};
use rand::{Rng, RngCore};

fn crc(data: &[u8]) -> [u8; 4] {
    crc32c::crc32c(data).to_le_bytes()
}

fn cfg(header: bool, data: bool) -> HostConnConfig {
    HostConnConfig {
        qid: 1,
        digests: Digests { header, data },
        maxr2t: 0,
        in_capsule_data: 8192,
        sq_flow_control_disabled: false,
    }
}

fn tx(conn: &mut HostConn) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = conn.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

fn events(conn: &mut HostConn) -> Vec<HostEvent> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// ICResp: type 01h, HLEN 128, PLEN 128, PFV, CPDA, DGST, MAXH2CDATA.
fn icresp(pfv: u16, cpda: u8, dgst: u8, maxh2cdata: u32) -> Vec<u8> {
    let mut b = vec![0x01, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00];
    b.extend_from_slice(&pfv.to_le_bytes());
    b.push(cpda);
    b.push(dgst);
    b.extend_from_slice(&maxh2cdata.to_le_bytes());
    b.resize(128, 0);
    b
}

/// A header of `hlen` bytes with the common header filled and an optional header digest.
fn finish_header(mut h: Vec<u8>, hd: bool) -> Vec<u8> {
    if hd {
        let d = crc(&h);
        h.extend_from_slice(&d);
    }
    h
}

/// CapsuleResp (type 05h, HLEN 24): CQE with DW0, SQHD 0, SQID, CID, status field.
fn capsule_resp(cid: u16, sqid: u16, status: Status, dw0: u32, hd: bool) -> Vec<u8> {
    let plen: u32 = 24 + if hd { 4 } else { 0 };
    let mut h = vec![0x05, if hd { 0x01 } else { 0x00 }, 24, 0];
    h.extend_from_slice(&plen.to_le_bytes());
    h.extend_from_slice(&dw0.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&sqid.to_le_bytes());
    h.extend_from_slice(&cid.to_le_bytes());
    h.extend_from_slice(&(status.to_field() << 1).to_le_bytes());
    finish_header(h, hd)
}

/// C2HData (type 07h, HLEN 24): CCCID, reserved TTAG, DATAO, DATAL, data at PDO.
fn c2h(cid: u16, datao: u32, data: &[u8], flags: u8, hd: bool, dd: bool) -> Vec<u8> {
    let pdo = 24 + if hd { 4 } else { 0 };
    let plen = pdo + data.len() + if dd { 4 } else { 0 };
    let f = flags | if hd { 0x01 } else { 0 } | if dd { 0x02 } else { 0 };
    let mut h = vec![0x07, f, 24, pdo as u8];
    h.extend_from_slice(&(plen as u32).to_le_bytes());
    h.extend_from_slice(&cid.to_le_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&datao.to_le_bytes());
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    let mut p = finish_header(h, hd);
    p.extend_from_slice(data);
    if dd {
        p.extend_from_slice(&crc(data));
    }
    p
}

/// R2T (type 09h, HLEN 24): CCCID, TTAG, R2TO, R2TL.
fn r2t(cid: u16, ttag: u16, r2to: u32, r2tl: u32, hd: bool) -> Vec<u8> {
    let plen: u32 = 24 + if hd { 4 } else { 0 };
    let mut h = vec![0x09, if hd { 0x01 } else { 0x00 }, 24, 0];
    h.extend_from_slice(&plen.to_le_bytes());
    h.extend_from_slice(&cid.to_le_bytes());
    h.extend_from_slice(&ttag.to_le_bytes());
    h.extend_from_slice(&r2to.to_le_bytes());
    h.extend_from_slice(&r2tl.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    finish_header(h, hd)
}

/// The H2CTermReq the host must send: type 02h, HLEN 24, PDO 0, FES, FEI, then the
/// offending header.
fn h2c_term(fes: u16, fei: u32, offending: &[u8]) -> Vec<u8> {
    let mut b = vec![0x02, 0x00, 24, 0x00];
    b.extend_from_slice(&((24 + offending.len()) as u32).to_le_bytes());
    b.extend_from_slice(&fes.to_le_bytes());
    b.extend_from_slice(&fei.to_le_bytes());
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(offending);
    b
}

fn established(c: HostConnConfig, cpda: u8, maxh2cdata: u32) -> HostConn {
    let dgst = c.digests.bits();
    let mut conn = HostConn::new(c);
    let _ = tx(&mut conn);
    conn.receive(&icresp(0, cpda, dgst, maxh2cdata));
    let ev = events(&mut conn);
    assert!(
        matches!(ev.as_slice(), [HostEvent::Established(_)]),
        "{ev:?}"
    );
    conn
}

fn read_sqe(nlb: u32) -> Sqe {
    fabric::initiator::command::read(1, 0, nlb)
}

fn write_sqe(nlb: u32) -> Sqe {
    fabric::initiator::command::write(1, 0, nlb, false)
}

fn pattern(len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i * 7 + i / 256) as u8)
            .collect::<Vec<_>>(),
    )
}

#[test]
fn golden_icreq_and_negotiation() {
    let mut c = cfg(true, true);
    c.maxr2t = 3;
    let mut conn = HostConn::new(c);
    let mut want = vec![
        0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, // ICReq, HLEN 128, PLEN 128
        0x00, 0x00, // PFV 0
        0x00, // HPDA 0
        0x03, // DGST: header and data
        0x03, 0x00, 0x00, 0x00, // MAXR2T 3
    ];
    want.resize(128, 0);
    assert_eq!(tx(&mut conn), want);
    assert_eq!(
        conn.submit(read_sqe(1), None, 512),
        Err(SubmitError::NotEstablished)
    );
    // ICResp split across reads.
    let resp = icresp(0, 1, 0x03, 65536);
    conn.receive(&resp[..50]);
    assert!(conn.poll_event().is_none());
    conn.receive(&resp[50..]);
    assert_eq!(
        conn.poll_event(),
        Some(HostEvent::Established(Negotiated {
            digests: Digests {
                header: true,
                data: true
            },
            cpda: 1,
            maxh2cdata: 65536,
        }))
    );
}

#[test]
fn golden_in_capsule_write() {
    let mut conn = established(cfg(false, false), 0, 131072);
    let data = pattern(512);
    let cid = conn.submit(write_sqe(1), Some(data.clone()), 0).unwrap();
    let bytes = tx(&mut conn);
    let mut want = vec![0x04, 0x00, 72, 72];
    want.extend_from_slice(&(72u32 + 512).to_le_bytes());
    let mut sqe = [0u8; 64];
    sqe[0] = 0x01; // Write
    sqe[1] = 0x40; // PSDT 01b: SGL
    sqe[2..4].copy_from_slice(&cid.to_le_bytes());
    sqe[4] = 1; // NSID
                // SGL Data Block, Offset subtype: offset 0, length 512, type/subtype byte 01h.
    sqe[32..36].copy_from_slice(&512u32.to_le_bytes());
    sqe[39] = 0x01;
    want.extend_from_slice(&sqe);
    want.extend_from_slice(&data);
    assert_eq!(bytes, want);
    conn.receive(&capsule_resp(cid, 1, Status::SUCCESS, 0, false));
    match conn.poll_event() {
        Some(HostEvent::Completed {
            cid: c,
            result: Ok(done),
        }) => {
            assert_eq!(c, cid);
            assert_eq!(done.cqe.status(), Status::SUCCESS);
            assert!(done.data.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(conn.outstanding(), 0);
}

#[test]
fn cpda_padding_and_digests_on_in_capsule_data() {
    // CPDA 3: data at a multiple of 16 bytes; 72-byte header + 4-byte digest -> PDO 80.
    let mut conn = established(cfg(true, true), 3, 131072);
    let data = pattern(1000);
    let cid = conn.submit(write_sqe(2), Some(data.clone()), 0).unwrap();
    let b = tx(&mut conn);
    assert_eq!(&b[..4], &[0x04, 0x03, 72, 80]);
    assert_eq!(&b[4..8], &(80u32 + 1000 + 4).to_le_bytes());
    assert_eq!(&b[72..76], &crc(&b[..72]));
    assert_eq!(&b[76..80], &[0, 0, 0, 0]);
    assert_eq!(&b[80..1080], &data[..]);
    assert_eq!(&b[1080..], &crc(&data));
    assert_eq!(b[8 + 2..8 + 4], cid.to_le_bytes());
}

#[test]
fn r2t_write_is_answered_with_h2cdata_of_at_most_maxh2cdata() {
    let mut conn = established(cfg(false, false), 0, 8192);
    let data = pattern(20000);
    let cid = conn.submit(write_sqe(40), Some(data.clone()), 0).unwrap();
    let capsule = tx(&mut conn);
    // No in-capsule data: PLEN 72, PDO 0, Transport SGL data block (5h/Ah) of 20000 bytes.
    assert_eq!(&capsule[..8], &[0x04, 0x00, 72, 0x00, 72, 0, 0, 0]);
    assert_eq!(&capsule[8 + 24..8 + 40], &{
        let mut d = [0u8; 16];
        d[8..12].copy_from_slice(&20000u32.to_le_bytes());
        d[15] = 0x5a;
        d
    });
    // Two R2Ts: the first 12000 bytes, then the rest.
    conn.receive(
        &[
            r2t(cid, 7, 0, 12000, false),
            r2t(cid, 8, 12000, 8000, false),
        ]
        .concat(),
    );
    let out = tx(&mut conn);
    let mut off = 0usize;
    let mut got = Vec::new();
    let mut pdus = Vec::new();
    while off < out.len() {
        let plen = u32::from_le_bytes(out[off + 4..off + 8].try_into().unwrap()) as usize;
        let p = &out[off..off + plen];
        assert_eq!((p[0], p[2], p[3]), (0x06, 24, 24));
        let cccid = u16::from_le_bytes([p[8], p[9]]);
        let ttag = u16::from_le_bytes([p[10], p[11]]);
        let datao = u32::from_le_bytes(p[12..16].try_into().unwrap());
        let datal = u32::from_le_bytes(p[16..20].try_into().unwrap());
        assert_eq!(cccid, cid);
        assert_eq!(datao as usize, got.len());
        assert_eq!(plen, 24 + datal as usize);
        got.extend_from_slice(&p[24..]);
        pdus.push((ttag, datao, datal, p[1] & 0x04 != 0));
        off += plen;
    }
    assert_eq!(
        pdus,
        vec![
            (7, 0, 8192, false),
            (7, 8192, 3808, true),
            (8, 12000, 8000, true)
        ]
    );
    assert_eq!(got, data);
    conn.receive(&capsule_resp(cid, 1, Status::SUCCESS, 0, false));
    assert!(matches!(
        conn.poll_event(),
        Some(HostEvent::Completed { result: Ok(_), .. })
    ));
}

#[test]
fn c2h_data_reassembles_byte_by_byte_with_digests() {
    let mut conn = established(cfg(true, true), 0, 131072);
    let cid = conn.submit(read_sqe(16), None, 8192).unwrap();
    let capsule = tx(&mut conn);
    assert_eq!(&capsule[8 + 32..8 + 40], &[0x00, 0x20, 0, 0, 0, 0, 0, 0x5a]);
    let data = pattern(8192);
    let stream = [
        c2h(cid, 0, &data[..3000], 0, true, true),
        c2h(cid, 3000, &data[3000..], 0x04, true, true),
        capsule_resp(cid, 1, Status::SUCCESS, 0, true),
    ]
    .concat();
    for b in &stream {
        conn.receive(std::slice::from_ref(b));
    }
    match events(&mut conn).as_slice() {
        [HostEvent::Completed {
            cid: c,
            result: Ok(done),
        }] => {
            assert_eq!(*c, cid);
            assert_eq!(done.data, data);
        }
        other => panic!("{other:?}"),
    }
    assert!(tx(&mut conn).is_empty());
}

#[test]
fn many_pdus_in_one_read_complete_many_commands() {
    let mut conn = established(cfg(false, false), 0, 131072);
    let a = conn.submit(read_sqe(1), None, 512).unwrap();
    let b = conn.submit(write_sqe(1), Some(pattern(512)), 0).unwrap();
    let c = conn.submit(read_sqe(1), None, 512).unwrap();
    assert_eq!(conn.outstanding(), 3);
    let _ = tx(&mut conn);
    let stream = [
        c2h(c, 0, &[0xcc; 512], 0x04, false, false),
        capsule_resp(b, 1, Status::LBA_OUT_OF_RANGE.with_dnr(), 0, false),
        c2h(a, 0, &[0xaa; 512], 0x04, false, false),
        capsule_resp(c, 1, Status::SUCCESS, 0, false),
        capsule_resp(a, 1, Status::SUCCESS, 0x1234, false),
    ]
    .concat();
    conn.receive(&stream);
    let ev = events(&mut conn);
    let done: Vec<(u16, Status, u32, Vec<u8>)> = ev
        .into_iter()
        .map(|e| match e {
            HostEvent::Completed { cid, result: Ok(d) } => {
                (cid, d.cqe.status(), d.cqe.dw0.get(), d.data.to_vec())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        done,
        vec![
            (b, Status::LBA_OUT_OF_RANGE.with_dnr(), 0, vec![]),
            (c, Status::SUCCESS, 0, vec![0xcc; 512]),
            (a, Status::SUCCESS, 0x1234, vec![0xaa; 512]),
        ]
    );
    assert_eq!(conn.outstanding(), 0);
}

#[test]
fn success_flag_is_an_implicit_completion_without_sq_flow_control() {
    let mut c = cfg(false, false);
    c.sq_flow_control_disabled = true;
    let mut conn = established(c, 0, 131072);
    let cid = conn.submit(read_sqe(1), None, 512).unwrap();
    let _ = tx(&mut conn);
    conn.receive(&c2h(cid, 0, &[5; 512], 0x04 | 0x08, false, false));
    match conn.poll_event() {
        Some(HostEvent::Completed {
            result: Ok(done), ..
        }) => {
            assert_eq!(done.cqe.cid(), cid);
            assert_eq!(done.cqe.sqid.get(), 1);
            assert_eq!(done.cqe.status(), Status::SUCCESS);
            assert_eq!(done.data, vec![5u8; 512]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(conn.outstanding(), 0);
}

/// The C2HData carries SUCCESS without LAST_PDU: an invalid FLAGS field (offset 1), fatal
/// whatever the SQ flow control setting (NVMe/TCP 1.0 §3.6.2.8).
#[test]
fn success_flag_without_last_pdu_is_fatal() {
    for sq_flow_control_disabled in [false, true] {
        let mut c = cfg(false, false);
        c.sq_flow_control_disabled = sq_flow_control_disabled;
        let mut conn = established(c, 0, 131072);
        let cid = conn.submit(read_sqe(1), None, 512).unwrap();
        let _ = tx(&mut conn);
        let bad = c2h(cid, 0, &[5; 256], 0x08, false, false);
        conn.receive(&bad);
        assert_eq!(tx(&mut conn), h2c_term(0x01, 1, &bad[..24]));
        let ev = events(&mut conn);
        assert!(
            matches!(
                ev.as_slice(),
                [
                    HostEvent::Completed {
                        result: Err(CommandError::Connection(ConnError::Protocol {
                            fes: 1,
                            fei: 1,
                            ..
                        })),
                        ..
                    },
                    HostEvent::Failed(ConnError::Protocol { .. })
                ]
            ),
            "flow control disabled {sq_flow_control_disabled}: {ev:?}"
        );
    }
}

/// SQ flow control on, and the controller still ends reads with LAST_PDU|SUCCESS (targets in
/// the field do; Linux accepts it): the read completes successfully with its data, its CID and
/// queue slot are free at once, and the queue keeps working with both completion styles.
#[test]
fn success_flag_with_sq_flow_control_on_is_an_implicit_completion() {
    let mut conn = established(cfg(false, false), 0, 131072);
    let a = conn.submit(read_sqe(2), None, 1024).unwrap();
    let b = conn.submit(read_sqe(1), None, 512).unwrap();
    let _ = tx(&mut conn);
    assert_eq!(conn.outstanding(), 2);
    conn.receive(
        &[
            c2h(a, 0, &[1; 512], 0, false, false),
            c2h(a, 512, &[2; 512], 0x04 | 0x08, false, false),
        ]
        .concat(),
    );
    assert!(tx(&mut conn).is_empty(), "no H2CTermReq");
    assert!(conn.error().is_none());
    let ev = events(&mut conn);
    let [HostEvent::Completed {
        cid,
        result: Ok(done),
    }] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*cid, a);
    assert_eq!(
        (done.cqe.cid(), done.cqe.sqid.get(), done.cqe.status()),
        (a, 1, Status::SUCCESS)
    );
    assert_eq!(done.data, [[1u8; 512], [2u8; 512]].concat());
    // Its slot is free: only `b` counts against the queue now.
    assert_eq!(conn.outstanding(), 1);

    // `b` completes the ordinary way (C2HData, then CapsuleResp).
    conn.receive(
        &[
            c2h(b, 0, &[3; 512], 0x04, false, false),
            capsule_resp(b, 1, Status::SUCCESS, 0, false),
        ]
        .concat(),
    );
    assert!(matches!(
        events(&mut conn).as_slice(),
        [HostEvent::Completed { cid, result: Ok(d) }] if *cid == b && d.data == vec![3u8; 512]
    ));
    assert_eq!(conn.outstanding(), 0);

    // Both CIDs are reusable and both completion styles keep working.
    let c = conn.submit(read_sqe(1), None, 512).unwrap();
    let d = conn.submit(read_sqe(1), None, 512).unwrap();
    assert_eq!((c, d), (a, b), "freed CIDs are reused oldest first");
    let _ = tx(&mut conn);
    conn.receive(
        &[
            c2h(d, 0, &[4; 512], 0x04, false, false),
            capsule_resp(d, 1, Status::LBA_OUT_OF_RANGE.with_dnr(), 0, false),
            c2h(c, 0, &[5; 512], 0x04 | 0x08, false, false),
        ]
        .concat(),
    );
    let done: Vec<_> = events(&mut conn)
        .into_iter()
        .map(|ev| match ev {
            HostEvent::Completed { cid, result: Ok(x) } => (cid, x.cqe.status(), x.data.to_vec()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        done,
        vec![
            (d, Status::LBA_OUT_OF_RANGE.with_dnr(), vec![4u8; 512]),
            (c, Status::SUCCESS, vec![5u8; 512]),
        ]
    );
    assert_eq!(conn.outstanding(), 0);
    assert!(tx(&mut conn).is_empty());
}

#[test]
fn data_digest_error_fails_only_that_command() {
    let mut conn = established(cfg(false, true), 0, 131072);
    let cid = conn.submit(read_sqe(1), None, 512).unwrap();
    let _ = tx(&mut conn);
    let mut pdu = c2h(cid, 0, &[9; 512], 0x04, false, true);
    let n = pdu.len();
    pdu[n - 1] ^= 0x55;
    conn.receive(&pdu);
    conn.receive(&capsule_resp(cid, 1, Status::SUCCESS, 0, false));
    assert_eq!(
        events(&mut conn),
        vec![HostEvent::Completed {
            cid,
            result: Err(CommandError::DataDigest { cid })
        }]
    );
    assert!(
        tx(&mut conn).is_empty(),
        "no TermReq for a data digest error"
    );
    // The queue still works.
    let cid = conn.submit(read_sqe(1), None, 512).unwrap();
    conn.receive(
        &[
            c2h(cid, 0, &[1; 512], 0x04, false, true),
            capsule_resp(cid, 1, Status::SUCCESS, 0, false),
        ]
        .concat(),
    );
    assert!(matches!(
        conn.poll_event(),
        Some(HostEvent::Completed { result: Ok(_), .. })
    ));
}

#[test]
fn header_digest_error_is_fatal() {
    let mut conn = established(cfg(true, false), 0, 131072);
    let cid = conn.submit(read_sqe(1), None, 512).unwrap();
    let _ = tx(&mut conn);
    let mut resp = capsule_resp(cid, 1, Status::SUCCESS, 0, true);
    resp[25] ^= 1;
    conn.receive(&resp);
    // NVMe/TCP 1.0 §3.5.2: FEI carries the header digest as received (the target's framer,
    // which the host shares, reports it the same way).
    let received = u32::from_le_bytes([resp[24], resp[25], resp[26], resp[27]]);
    assert_eq!(tx(&mut conn), h2c_term(0x03, received, &resp[..24]));
    let ev = events(&mut conn);
    assert_eq!(ev.len(), 2);
    assert!(matches!(
        ev[1],
        HostEvent::Failed(ConnError::Protocol { fes: 3, .. })
    ));
    assert!(matches!(
        conn.submit(read_sqe(1), None, 512),
        Err(SubmitError::Failed(_))
    ));
}

#[test]
fn c2h_term_req_surfaces_fes_and_fei() {
    let mut conn = established(cfg(false, false), 0, 131072);
    let cid = conn.submit(read_sqe(1), None, 512).unwrap();
    let _ = tx(&mut conn);
    // C2HTermReq: FES 04h (data transfer out of range), FEI 0x10, 8 bytes of header.
    let mut t = vec![0x03, 0x00, 24, 0x00, 32, 0, 0, 0, 0x04, 0x00, 0x10, 0, 0, 0];
    t.resize(24, 0);
    t.extend_from_slice(&[0x06, 0, 24, 0, 0, 0, 0, 0]);
    conn.receive(&t);
    assert_eq!(
        events(&mut conn),
        vec![
            HostEvent::Completed {
                cid,
                result: Err(CommandError::Connection(ConnError::TermReq {
                    fes: 4,
                    fei: 0x10
                }))
            },
            HostEvent::Failed(ConnError::TermReq { fes: 4, fei: 0x10 })
        ]
    );
    assert!(tx(&mut conn).is_empty(), "no TermReq answers a TermReq");
}

/// Feed `bad` to a fresh established connection with one read and one R2T-write
/// outstanding; return what the host transmitted.
fn bad_pdu(bad: impl FnOnce(u16, u16) -> Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let mut conn = established(cfg(false, false), 0, 131072);
    let read = conn.submit(read_sqe(8), None, 4096).unwrap();
    let write = conn.submit(write_sqe(40), Some(pattern(20480)), 0).unwrap();
    let _ = tx(&mut conn);
    let pdu = bad(read, write);
    conn.receive(&pdu);
    assert!(conn.error().is_some(), "connection must be dead");
    let ev = events(&mut conn);
    assert_eq!(ev.len(), 3, "{ev:?}");
    (tx(&mut conn), pdu)
}

#[test]
fn malformed_controller_pdus_get_h2c_term_req() {
    // Unknown PDU type: FES 01h at offset 0.
    let (out, pdu) = bad_pdu(|_, _| vec![0x0f, 0, 24, 0, 24, 0, 0, 0]);
    assert_eq!(out, h2c_term(0x01, 0, &pdu[..8]));
    // A controller must not send CapsuleCmd.
    let (out, _) = bad_pdu(|_, _| {
        let mut p = vec![0x04, 0, 72, 0, 72, 0, 0, 0];
        p.resize(72, 0);
        p
    });
    assert_eq!(&out[..4], &[0x02, 0x00, 24, 0x00]);
    assert_eq!(&out[4..8], &(24u32 + 72).to_le_bytes());
    assert_eq!(&out[8..14], &[0x01, 0x00, 0, 0, 0, 0]);
    // Wrong HLEN for a CapsuleResp: offset 2.
    let (out, _) = bad_pdu(|r, _| {
        let mut p = capsule_resp(r, 1, Status::SUCCESS, 0, false);
        p[2] = 28;
        p
    });
    assert_eq!(&out[8..14], &[0x01, 0x00, 0x02, 0, 0, 0]);
    // CapsuleResp for a CID nobody used: CID at offset 20.
    let (out, pdu) = bad_pdu(|_, _| capsule_resp(999, 1, Status::SUCCESS, 0, false));
    assert_eq!(out, h2c_term(0x01, 20, &pdu));
    // C2HData out of sequence: DATAO at offset 12.
    let (out, _) = bad_pdu(|r, _| c2h(r, 512, &[0; 512], 0, false, false));
    assert_eq!(&out[8..14], &[0x01, 0x00, 12, 0, 0, 0]);
    // C2HData beyond the read buffer: FES 04h.
    let (out, _) = bad_pdu(|r, _| c2h(r, 0, &[0; 8192], 0, false, false));
    assert_eq!(&out[8..10], &[0x04, 0x00]);
    // C2HData for the write: CCCID at offset 8.
    let (out, _) = bad_pdu(|_, w| c2h(w, 0, &[0; 512], 0, false, false));
    assert_eq!(&out[8..14], &[0x01, 0x00, 8, 0, 0, 0]);
    // C2HData whose PLEN disagrees with DATAL: PLEN at offset 4.
    let (out, _) = bad_pdu(|r, _| {
        let mut p = c2h(r, 0, &[0; 512], 0, false, false);
        p[4] = p[4].wrapping_add(4);
        p
    });
    assert_eq!(&out[8..14], &[0x01, 0x00, 4, 0, 0, 0]);
    // R2T beyond the write: FES 04h.
    let (out, _) = bad_pdu(|_, w| r2t(w, 1, 16384, 8192, false));
    assert_eq!(&out[8..10], &[0x04, 0x00]);
    // R2T for the read: CCCID.
    let (out, _) = bad_pdu(|r, _| r2t(r, 1, 0, 512, false));
    assert_eq!(&out[8..14], &[0x01, 0x00, 8, 0, 0, 0]);
    // Header digest flag although none was negotiated: FLAGS.
    let (out, _) = bad_pdu(|r, _| capsule_resp(r, 1, Status::SUCCESS, 0, true));
    assert_eq!(&out[8..14], &[0x01, 0x00, 1, 0, 0, 0]);
    // A second ICResp: PDU sequence error.
    let (out, _) = bad_pdu(|_, _| icresp(0, 0, 0, 131072));
    assert_eq!(&out[8..10], &[0x02, 0x00]);
}

#[test]
fn bad_icresp_is_refused() {
    for (resp, fes, fei) in [
        (icresp(1, 0, 0, 131072), 0x06u16, 8u32),
        (icresp(0, 32, 0, 131072), 0x01, 10),
        (icresp(0, 0, 0x01, 131072), 0x01, 11),
        (icresp(0, 0, 0, 1024), 0x01, 12),
        (icresp(0, 0, 0, 4098), 0x01, 12),
    ] {
        let mut conn = HostConn::new(cfg(false, false));
        let _ = tx(&mut conn);
        conn.receive(&resp);
        assert_eq!(tx(&mut conn), h2c_term(fes, fei, &resp[..128]));
        assert!(matches!(
            events(&mut conn).as_slice(),
            [HostEvent::Failed(ConnError::Protocol { .. })]
        ));
    }
    // Anything but ICResp first is a sequence error.
    let mut conn = HostConn::new(cfg(false, false));
    let _ = tx(&mut conn);
    conn.receive(&capsule_resp(0, 0, Status::SUCCESS, 0, false));
    assert_eq!(&tx(&mut conn)[8..10], &[0x02, 0x00]);
}

#[test]
fn corrupt_next_data_digest_hits_exactly_one_pdu() {
    let mut conn = established(cfg(false, true), 0, 4096);
    conn.corrupt_next_data_digest();
    let data = pattern(512);
    conn.submit(write_sqe(1), Some(data.clone()), 0).unwrap();
    let b = tx(&mut conn);
    assert_eq!(b.len(), 72 + 512 + 4);
    assert_ne!(&b[72 + 512..], &crc(&data));
    conn.submit(write_sqe(1), Some(data.clone()), 0).unwrap();
    let b = tx(&mut conn);
    assert_eq!(&b[72 + 512..], &crc(&data));
    // And on the R2T path: only the first H2CData is corrupted.
    let big = pattern(10000);
    let cid = conn.submit(write_sqe(20), Some(big.clone()), 0).unwrap();
    let capsule = tx(&mut conn);
    assert_eq!(
        capsule.len(),
        72,
        "no data digest on a capsule without data"
    );
    conn.corrupt_next_data_digest();
    conn.receive(&r2t(cid, 3, 0, 10000, false));
    let out = tx(&mut conn);
    let first = &out[..24 + 4096 + 4];
    assert_ne!(&first[24 + 4096..], &crc(&big[..4096]));
    let second = &out[first.len()..first.len() + 24 + 4096 + 4];
    assert_eq!(&second[24 + 4096..], &crc(&big[4096..8192]));
}

#[test]
fn bidirectional_and_invalid_submissions_are_refused() {
    let mut conn = established(cfg(false, false), 0, 131072);
    assert_eq!(
        conn.submit(write_sqe(1), Some(pattern(512)), 512),
        Err(SubmitError::Bidirectional)
    );
    assert!(tx(&mut conn).is_empty());
    assert_eq!(conn.outstanding(), 0);
}

#[test]
fn arbitrary_controller_bytes_never_panic() {
    let mut rng = rand::rng();
    for round in 0..3000 {
        let mut conn = established(cfg(round % 2 == 0, round % 3 == 0), 0, 8192);
        let r = conn.submit(read_sqe(8), None, 4096).unwrap();
        let w = conn.submit(write_sqe(20), Some(pattern(10240)), 0).unwrap();
        let _ = tx(&mut conn);
        // Start from a plausible PDU and flip bytes, or use pure noise.
        let mut buf = match round % 4 {
            0 => c2h(r, 0, &[1; 700], 0x04, round % 2 == 0, round % 3 == 0),
            1 => r2t(w, 1, 0, 10240, round % 2 == 0),
            2 => capsule_resp(r, 1, Status::SUCCESS, 0, round % 2 == 0),
            _ => {
                let mut v = vec![0u8; rng.random_range(0..300)];
                rng.fill_bytes(&mut v);
                v
            }
        };
        for _ in 0..rng.random_range(0..4) {
            if !buf.is_empty() {
                let i = rng.random_range(0..buf.len());
                buf[i] = rng.random();
            }
        }
        let mut off = 0;
        while off < buf.len() {
            let n = rng.random_range(1..=buf.len() - off);
            conn.receive(&buf[off..off + n]);
            off += n;
        }
        let _ = events(&mut conn);
        let _ = tx(&mut conn);
    }
}
