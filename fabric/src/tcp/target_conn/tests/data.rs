//! Command data both ways: in-capsule, R2T/H2CData, C2HData and the SUCCESS flag, pending
//! completions.

use super::*;

#[test]
fn in_capsule_write_then_read() {
    let target = RamTarget::new();
    let mut h = Host::ready(target.clone(), TcpTargetConfig::default(), 0);
    let data = pattern(4096, 1);
    h.send(&in_capsule_write(7, 8, data.clone()));
    let got = h.recv();
    assert_eq!(got.len(), 1);
    let cqe = cqe_of(&got[0]);
    assert_eq!(cqe.cid(), 7);
    assert_eq!(cqe.status(), Status::SUCCESS);
    assert_eq!(cqe.sqid.get(), 1);
    assert_eq!(cqe.sqhd.get(), 2, "Connect + write");
    assert_eq!(
        &target.store.lock_counted()[8 * 512..8 * 512 + 4096],
        &data[..]
    );
    let (back, flags, cqe) = read_back(&mut h, 8, 8, 4096);
    assert_eq!(back, data);
    assert_eq!(flags, FLAG_LAST_PDU, "no SUCCESS with SQ flow control on");
    let cqe = cqe.expect("CapsuleResp after the data");
    assert_eq!((cqe.cid(), cqe.sqhd.get()), (8, 3));
}

#[test]
fn in_capsule_sgl_errors() {
    let config = TcpTargetConfig {
        io_in_capsule: 4096,
        ..Default::default()
    };
    let mut h = Host::ready(RamTarget::new(), config, 0);
    // Above the I/O queue's in-capsule limit.
    h.send(&in_capsule_write(1, 0, pattern(8192, 0)));
    assert_eq!(
        cqe_of(&h.recv()[0]).status(),
        Status::DATA_SGL_LENGTH_INVALID.with_dnr()
    );
    // SGL length disagrees with the data present.
    let sqe = io_sqe(
        0x01,
        2,
        0,
        1,
        Sgl::InCapsule {
            offset: 0,
            length: 1024,
        },
    );
    h.send(&Pdu::with_data(
        PduHeader::CapsuleCmd(sqe),
        0,
        Bytes::from(pattern(512, 0)),
    ));
    assert_eq!(
        cqe_of(&h.recv()[0]).status(),
        Status::DATA_SGL_LENGTH_INVALID.with_dnr()
    );
    // Non-zero offset.
    let sqe = io_sqe(
        0x01,
        3,
        0,
        1,
        Sgl::InCapsule {
            offset: 16,
            length: 512,
        },
    );
    h.send(&Pdu::with_data(
        PduHeader::CapsuleCmd(sqe),
        0,
        Bytes::from(pattern(512, 0)),
    ));
    assert_eq!(
        cqe_of(&h.recv()[0]).status(),
        Status::SGL_OFFSET_INVALID.with_dnr()
    );
    // Keyed (RDMA) descriptor.
    let keyed = Sgl::Keyed {
        address: 0x1000,
        length: 512,
        key: 9,
        subtype: 0,
    };
    h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
        0x02, 4, 0, 1, keyed,
    ))));
    assert_eq!(
        cqe_of(&h.recv()[0]).status(),
        Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr()
    );
    // Transport SGL above max_transfer: refused at once, no R2T.
    h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
        0x01,
        5,
        0,
        1,
        transport(2 << 20),
    ))));
    let got = h.recv();
    assert_eq!(got.len(), 1);
    assert_eq!(
        cqe_of(&got[0]).status(),
        Status::DATA_SGL_LENGTH_INVALID.with_dnr()
    );
    // A read larger than max_transfer too.
    h.send(&read_cmd(6, 0, 2 << 20));
    assert_eq!(
        cqe_of(&h.recv()[0]).status(),
        Status::DATA_SGL_LENGTH_INVALID.with_dnr()
    );
}

#[test]
fn r2t_write_of_one_mib() {
    let target = RamTarget::new();
    let mut h = Host::new(target.clone(), TcpTargetConfig::default());
    // MAXR2T 0's based: 3 means four outstanding R2Ts per command.
    h.handshake(0, DGST_DDGST_ENABLE | DGST_HDGST_ENABLE, 3);
    h.connect(2, 64, 0);
    let len = 1 << 20;
    let data = pattern(len, 9);
    h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
        0x01,
        0x77,
        16,
        (len / BLOCK) as u32,
        transport(len),
    ))));
    let (mut r2ts, cqes) = split(h.recv());
    assert!(cqes.is_empty());
    assert_eq!(r2ts.len(), 4);
    let mut seen: Vec<u32> = r2ts.iter().map(|r| r.r2to).collect();
    while !r2ts.is_empty() {
        for r in &r2ts {
            assert_eq!(r.cccid, 0x77);
            assert_eq!(r.r2tl, 128 * 1024);
        }
        // Answer the oldest R2T only (two 64 KiB PDUs); the controller then sends one more.
        answer_r2ts(&mut h, &r2ts[..1], &data, 64 * 1024);
        let (more, cqes) = split(h.recv());
        r2ts.remove(0);
        if r2ts.is_empty() && more.is_empty() {
            assert_eq!(cqes.len(), 1);
            assert_eq!(cqes[0].cid(), 0x77);
            assert_eq!(cqes[0].status(), Status::SUCCESS);
            break;
        }
        assert!(cqes.is_empty());
        assert!(more.len() <= 1);
        seen.extend(more.iter().map(|r| r.r2to));
        r2ts.extend(more);
        assert!(r2ts.len() <= 4);
    }
    let want: Vec<u32> = (0..8).map(|i| i * 128 * 1024).collect();
    assert_eq!(seen, want);
    assert_eq!(
        &target.store.lock_counted()[16 * 512..16 * 512 + len],
        &data[..]
    );
    // The pieces were gathered in a pooled buffer, which the response handed back.
    assert_eq!(h.conn.send_queue().pool().pooled(), 1);
}

#[test]
fn c2h_data_without_success_sends_capsule_resp() {
    let config = TcpTargetConfig {
        max_c2h_pdu: 4096,
        ..Default::default()
    };
    let target = RamTarget::new();
    target.store.lock_counted()[..10240].copy_from_slice(&pattern(10240, 3));
    let mut h = Host::ready(target, config, 0);
    h.send(&read_cmd(3, 0, 10240));
    let got = h.recv();
    assert_eq!(got.len(), 4);
    let expect = [
        (0u32, 4096u32, 0u8),
        (4096, 4096, 0),
        (8192, 2048, FLAG_LAST_PDU),
    ];
    for (p, (o, l, f)) in got.iter().zip(expect) {
        let PduHeader::C2HData(d) = p.header else {
            panic!("{:?}", p.header)
        };
        assert_eq!((d.datao, d.datal, p.flags), (o, l, f));
    }
    assert_eq!(cqe_of(&got[3]).status(), Status::SUCCESS);
}

#[test]
fn c2h_data_with_success_when_flow_control_disabled() {
    let target = RamTarget::new();
    target.store.lock_counted()[..1024].copy_from_slice(&pattern(1024, 4));
    // CATTR bit 2: SQ flow control disabled.
    let mut h = Host::ready(target, TcpTargetConfig::default(), 0x04);
    let (data, flags, cqe) = read_back(&mut h, 9, 0, 1024);
    assert_eq!(data, pattern(1024, 4));
    assert_eq!(flags, FLAG_LAST_PDU | FLAG_SUCCESS);
    assert!(cqe.is_none(), "SUCCESS replaces the CapsuleResp");
    // A failed read still gets a CapsuleResp (no data, status carried).
    h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
        0x7e,
        10,
        0,
        1,
        transport(512),
    ))));
    let got = h.recv();
    assert_eq!(got.len(), 1);
    let cqe = cqe_of(&got[0]);
    assert_eq!(cqe.status(), Status::INVALID_OPCODE.with_dnr());
    assert_eq!(
        cqe.sqhd.get(),
        0,
        "SQHD is not reported without flow control"
    );
}

#[test]
fn c2h_never_exceeds_the_host_buffer() {
    let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
    // The read claims 2 blocks but the host buffer (SGL) is only 600 bytes.
    h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
        0x02,
        11,
        0,
        2,
        transport(600),
    ))));
    let got = h.recv();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].data.len(), 600);
    assert_eq!(cqe_of(&got[1]).cid(), 11);
}

#[test]
fn pending_completions_may_arrive_out_of_order() {
    let mut h = Host::ready(RamTarget::new(), TcpTargetConfig::default(), 0);
    for cid in [20u16, 21] {
        let mut sqe = io_sqe(0x00, cid, 0, 1, transport(0));
        sqe.cdw10.set(u32::from(cid) * 10);
        h.send(&Pdu::new(PduHeader::CapsuleCmd(sqe)));
    }
    assert!(h.recv().is_empty());
    let mut pending = Vec::new();
    while let Some(Event::Pending { cid, tag, response }) = h.conn.poll_event() {
        pending.push((cid, tag, response));
    }
    assert_eq!(pending.len(), 2);
    let (cid, tag, fut) = pending.pop().unwrap();
    h.conn.complete(cid, tag, futures::executor::block_on(fut));
    let (cid, tag, fut) = pending.pop().unwrap();
    h.conn.complete(cid, tag, futures::executor::block_on(fut));
    let got: Vec<Cqe> = h.recv().iter().map(cqe_of).collect();
    assert_eq!(
        got.iter().map(|c| c.cid()).collect::<Vec<_>>(),
        vec![21, 20]
    );
    assert_eq!(got[0].dw0.get(), 210);
    assert_eq!(got[1].dw0.get(), 200);
    // A completion for an unknown CID is ignored.
    h.conn.complete(99, 0, Response::success());
    assert!(h.recv().is_empty());
}

#[test]
fn sqhd_stays_in_step_past_four_billion_entries() {
    // NVMe Base 2.0 §4.6: the head advances one entry per command, modulo the queue size,
    // however many commands the queue has taken; a 32-bit count that wraps would jump for a
    // queue whose size is not a power of two.
    let mut h = Host::new(RamTarget::new(), TcpTargetConfig::default());
    h.handshake(0, 0, 3);
    assert_eq!(h.connect(1, 3, 0).status(), Status::SUCCESS);
    h.conn.core.set_sq_consumed(u64::from(u32::MAX));
    h.send(&in_capsule_write(7, 0, pattern(512, 1)));
    let cqe = cqe_of(&h.recv()[0]);
    assert_eq!(cqe.status(), Status::SUCCESS);
    assert_eq!(
        u64::from(cqe.sqhd.get()),
        (u64::from(u32::MAX) + 1) % 3,
        "the head after 2^32 entries of a 3-entry queue"
    );
}
