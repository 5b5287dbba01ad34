//! Tests of the sans-IO NVMe/TCP target connection.

use super::*;
use crate::queue::{Connected, TransportKind};
use crate::tcp::digest;
use crate::tcp::pdu::{CommonHeader, Digests, FLAG_DDGSTF, FLAG_HDGSTF};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

const BLOCK: usize = 512;

mod cid_reuse;

/// A RAM "namespace": Write (01h) and Read (02h) by LBA, Flush (00h) completes later with
/// DW0 = CDW10, anything else is an invalid opcode.
struct RamTarget {
    store: Arc<Mutex<Vec<u8>>>,
    refuse_connects: AtomicU32,
    disconnects: Arc<AtomicU32>,
    teardown: CancellationToken,
}

impl RamTarget {
    fn new() -> Arc<RamTarget> {
        Arc::new(RamTarget {
            store: Arc::new(Mutex::new(vec![0; 4 << 20])),
            refuse_connects: AtomicU32::new(0),
            disconnects: Arc::new(AtomicU32::new(0)),
            teardown: CancellationToken::new(),
        })
    }
}

impl Target for RamTarget {
    fn connect(
        &self,
        conn: &ConnectionInfo,
        sqe: &Sqe,
        data: &[u8],
    ) -> Result<Connected, Response> {
        assert_eq!(conn.transport, TransportKind::Tcp);
        assert_eq!(data.len(), 1024, "Connect data must arrive whole");
        assert_eq!(&data[256..260], b"nqn.");
        if self
            .refuse_connects
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Response::status(Status::INVALID_FIELD.with_dnr()));
        }
        let cdw11 = sqe.cdw11.get();
        Ok(Connected {
            handler: Box::new(RamQueue {
                store: self.store.clone(),
                disconnects: self.disconnects.clone(),
                teardown: self.teardown.clone(),
            }),
            response: Response::success().with_dw0(0x42),
            qid: (sqe.cdw10.get() >> 16) as u16,
            sqsize: (cdw11 & 0xffff) + 1,
            sq_flow_control_disabled: (cdw11 >> 16) & 0x4 != 0,
        })
    }
}

struct RamQueue {
    store: Arc<Mutex<Vec<u8>>>,
    disconnects: Arc<AtomicU32>,
    teardown: CancellationToken,
}

impl QueueHandler for RamQueue {
    fn submit(&mut self, req: Request) -> Completion {
        let sqe = req.sqe;
        let off = sqe.slba() as usize * BLOCK;
        let len = sqe.nlb() as usize * BLOCK;
        let mut store = self.store.lock().unwrap();
        match sqe.opcode {
            0x01 => {
                let data = req.data.unwrap_or_default();
                if data.len() != len {
                    return Completion::Ready(Response::status(Status::DATA_SGL_LENGTH_INVALID));
                }
                store[off..off + len].copy_from_slice(&data);
                Completion::Ready(Response::success())
            }
            0x02 => Completion::Ready(
                Response::success().with_data(Bytes::copy_from_slice(&store[off..off + len])),
            ),
            0x00 => {
                let dw0 = sqe.cdw10.get();
                Completion::Pending(Box::pin(async move { Response::success().with_dw0(dw0) }))
            }
            _ => Completion::Ready(Response::status(Status::INVALID_OPCODE.with_dnr())),
        }
    }

    fn teardown(&self) -> CancellationToken {
        self.teardown.clone()
    }

    fn disconnected(&mut self) {
        self.disconnects.fetch_add(1, Ordering::SeqCst);
    }
}

/// A scripted host: encodes PDUs into the connection and frames what comes back.
struct Host {
    conn: TargetConnection,
    rx: Framer,
    opts: EncodeOptions,
    now: Instant,
}

fn info() -> ConnectionInfo {
    ConnectionInfo {
        transport: TransportKind::Tcp,
        local: "127.0.0.1:4420".parse().unwrap(),
        peer: "127.0.0.1:50000".parse().unwrap(),
    }
}

impl Host {
    fn new(target: Arc<dyn Target>, config: TcpTargetConfig) -> Host {
        let now = Instant::now();
        Host {
            conn: TargetConnection::new(target, info(), config, now),
            rx: Framer::new(Role::Host, 1 << 24),
            opts: EncodeOptions::default(),
            now,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.conn.receive(bytes, self.now);
    }

    fn send(&mut self, pdu: &Pdu) {
        let bytes = pdu.encode(self.opts).to_vec();
        self.send_raw(&bytes);
    }

    fn recv(&mut self) -> Vec<ReceivedPdu> {
        while let Some(b) = self.conn.poll_transmit() {
            self.rx.feed(&b);
        }
        let mut v = Vec::new();
        while let Some(p) = self.rx.next_pdu().expect("controller sent a bad PDU") {
            v.push(p);
        }
        v
    }

    fn handshake(&mut self, hpda: u8, dgst: u8, maxr2t: u32) -> IcResp {
        self.send(&Pdu::new(PduHeader::IcReq(IcReq {
            pfv: 0,
            hpda,
            dgst,
            maxr2t,
        })));
        let got = self.recv();
        assert_eq!(got.len(), 1);
        let PduHeader::IcResp(r) = got[0].header else {
            panic!("expected ICResp, got {:?}", got[0].header)
        };
        let d = r.digests();
        self.rx.set_digests(d);
        self.rx.set_rx_pda(hpda);
        self.opts = EncodeOptions {
            digests: d,
            pda: r.cpda,
        };
        r
    }

    fn connect(&mut self, qid: u16, sqsize: u32, cattr: u8) -> Cqe {
        self.send(&connect_pdu(qid, sqsize, cattr));
        let got = self.recv();
        assert_eq!(got.len(), 1);
        cqe_of(&got[0])
    }

    fn ready(target: Arc<RamTarget>, config: TcpTargetConfig, cattr: u8) -> Host {
        let mut h = Host::new(target, config);
        h.handshake(0, 0, 3);
        let cqe = h.connect(1, 32, cattr);
        assert_eq!(cqe.status(), Status::SUCCESS);
        h
    }
}

fn cqe_of(p: &ReceivedPdu) -> Cqe {
    match p.header {
        PduHeader::CapsuleResp(c) => c,
        other => panic!("expected CapsuleResp, got {other:?}"),
    }
}

fn connect_pdu(qid: u16, sqsize: u32, cattr: u8) -> Pdu {
    let mut sqe = Sqe {
        opcode: nvme::sqe::FABRICS_OPCODE,
        flags: 0x40,
        ..Default::default()
    };
    sqe.cid.set(0x100 + qid);
    sqe.nsid.set(u32::from(FCTYPE_CONNECT));
    sqe.cdw10.set(u32::from(qid) << 16);
    sqe.cdw11.set((sqsize - 1) | (u32::from(cattr) << 16));
    sqe.dptr = Sgl::InCapsule {
        offset: 0,
        length: 1024,
    }
    .encode();
    let mut data = vec![0u8; 1024];
    data[256..260].copy_from_slice(b"nqn.");
    Pdu::with_data(PduHeader::CapsuleCmd(sqe), 0, Bytes::from(data))
}

fn io_sqe(opcode: u8, cid: u16, slba: u64, blocks: u32, sgl: Sgl) -> Sqe {
    let mut sqe = Sqe {
        opcode,
        flags: 0x40,
        ..Default::default()
    };
    sqe.cid.set(cid);
    sqe.nsid.set(1);
    sqe.cdw10.set(slba as u32);
    sqe.cdw11.set((slba >> 32) as u32);
    sqe.cdw12.set(blocks - 1);
    sqe.dptr = sgl.encode();
    sqe
}

fn transport(len: usize) -> Sgl {
    Sgl::Transport {
        length: len as u32,
        subtype: SUBTYPE_TRANSPORT_A,
    }
}

fn in_capsule_write(cid: u16, slba: u64, data: Vec<u8>) -> Pdu {
    let sgl = Sgl::InCapsule {
        offset: 0,
        length: data.len() as u32,
    };
    let sqe = io_sqe(0x01, cid, slba, (data.len() / BLOCK) as u32, sgl);
    Pdu::with_data(PduHeader::CapsuleCmd(sqe), 0, Bytes::from(data))
}

fn read_cmd(cid: u16, slba: u64, len: usize) -> Pdu {
    Pdu::new(PduHeader::CapsuleCmd(io_sqe(
        0x02,
        cid,
        slba,
        (len / BLOCK) as u32,
        transport(len),
    )))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Read `len` bytes at `slba` and return (data, flags of the last C2HData, trailing CQE).
fn read_back(h: &mut Host, cid: u16, slba: u64, len: usize) -> (Vec<u8>, u8, Option<Cqe>) {
    h.send(&read_cmd(cid, slba, len));
    let mut data = Vec::new();
    let mut last_flags = 0;
    let mut cqe = None;
    for p in h.recv() {
        match p.header {
            PduHeader::C2HData(d) => {
                assert_eq!(d.cccid, cid);
                assert_eq!(
                    d.datao as usize,
                    data.len(),
                    "DATAO must increase contiguously"
                );
                data.extend_from_slice(&p.data);
                last_flags = p.flags;
            }
            PduHeader::CapsuleResp(c) => cqe = Some(c),
            other => panic!("unexpected {other:?}"),
        }
    }
    (data, last_flags, cqe)
}

fn term_of(h: &mut Host) -> (TermReq, Bytes) {
    let got = h.recv();
    assert_eq!(got.len(), 1, "expected exactly one C2HTermReq, got {got:?}");
    let PduHeader::C2HTermReq(t) = got[0].header else {
        panic!("expected C2HTermReq, got {:?}", got[0].header)
    };
    assert!(matches!(h.conn.poll_event(), Some(Event::Close)));
    assert!(h.conn.is_closing());
    (t, got[0].data.clone())
}

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
    target.store.lock().unwrap()[..512].copy_from_slice(&pattern(512, 7));
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
        &target.store.lock().unwrap()[8 * 512..8 * 512 + 4096],
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

/// Answer every R2T in `pdus` with H2CData PDUs of at most `piece` bytes from `data`.
fn answer_r2ts(h: &mut Host, r2ts: &[R2t], data: &[u8], piece: usize) {
    for r in r2ts {
        let end = (r.r2to + r.r2tl) as usize;
        let mut off = r.r2to as usize;
        while off < end {
            let n = piece.min(end - off);
            let flags = if off + n == end { FLAG_LAST_PDU } else { 0 };
            h.send(&Pdu::with_data(
                PduHeader::H2CData(H2CData {
                    cccid: r.cccid,
                    ttag: r.ttag,
                    datao: off as u32,
                    datal: n as u32,
                }),
                flags,
                Bytes::copy_from_slice(&data[off..off + n]),
            ));
            off += n;
        }
    }
}

fn split(got: Vec<ReceivedPdu>) -> (Vec<R2t>, Vec<Cqe>) {
    let mut r2ts = Vec::new();
    let mut cqes = Vec::new();
    for p in got {
        match p.header {
            PduHeader::R2t(r) => r2ts.push(r),
            PduHeader::CapsuleResp(c) => cqes.push(c),
            other => panic!("unexpected {other:?}"),
        }
    }
    (r2ts, cqes)
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
        &target.store.lock().unwrap()[16 * 512..16 * 512 + len],
        &data[..]
    );
}

#[test]
fn c2h_data_without_success_sends_capsule_resp() {
    let config = TcpTargetConfig {
        max_c2h_pdu: 4096,
        ..Default::default()
    };
    let target = RamTarget::new();
    target.store.lock().unwrap()[..10240].copy_from_slice(&pattern(10240, 3));
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
    target.store.lock().unwrap()[..1024].copy_from_slice(&pattern(1024, 4));
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

fn start_r2t_write(h: &mut Host, cid: u16, len: usize) -> Vec<R2t> {
    h.send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
        0x01,
        cid,
        0,
        (len / BLOCK) as u32,
        transport(len),
    ))));
    split(h.recv()).0
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
    assert!(target.store.lock().unwrap()[..512].iter().all(|&b| b == 0));
    // The connection carries on.
    h.send(&in_capsule_write(6, 0, pattern(512, 6)));
    assert_eq!(cqe_of(&h.recv()[0]).status(), Status::SUCCESS);
    assert_eq!(&target.store.lock().unwrap()[..512], &pattern(512, 6)[..]);
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
    assert!(target.store.lock().unwrap()[..4096].iter().all(|&b| b == 0));
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
