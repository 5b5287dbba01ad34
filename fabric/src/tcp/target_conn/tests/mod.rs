//! Tests of the sans-IO NVMe/TCP target connection.

use super::*;
use crate::queue::{Completion, Connected, LentHome, QueueHandler, Request, ResponseFuture};
use nvme_spec::sgl::SUBTYPE_TRANSPORT_A;
use nvme_spec::{Cqe, Sgl};

/// Fabrics command type of Connect (NVMe-oF 1.1 Figure 19).
const FCTYPE_CONNECT: u8 = 0x01;
use crate::tcp::digest;
use crate::tcp::pdu::{CommonHeader, Digests, FLAG_DDGSTF, FLAG_HDGSTF};
use ferrofab_sync::CountedLock as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

const BLOCK: usize = 512;

mod cid_reuse;
mod data;
mod errors;
mod init;
mod steer;

/// A RAM "namespace": Write (01h) and Read (02h) by LBA, Flush (00h) completes later with
/// DW0 = CDW10, anything else is an invalid opcode.
struct RamTarget {
    store: Arc<Mutex<Vec<u8>>>,
    refuse_connects: AtomicU32,
    disconnects: Arc<AtomicU32>,
    teardown: CancellationToken,
    /// Lend memory for writes' data ([`QueueHandler::lend_h2c`]) from here.
    lender: Option<Arc<TestLender>>,
}

impl RamTarget {
    fn new() -> Arc<RamTarget> {
        Arc::new(RamTarget {
            store: Arc::new(Mutex::new(vec![0; 4 << 20])),
            refuse_connects: AtomicU32::new(0),
            disconnects: Arc::new(AtomicU32::new(0)),
            teardown: CancellationToken::new(),
            lender: None,
        })
    }

    /// A target whose I/O queues lend memory for writes' data, as a drive's would.
    fn lending() -> (Arc<RamTarget>, Arc<TestLender>) {
        let lender = Arc::new(TestLender::default());
        let t = Arc::new(RamTarget {
            store: Arc::new(Mutex::new(vec![0; 4 << 20])),
            refuse_connects: AtomicU32::new(0),
            disconnects: Arc::new(AtomicU32::new(0)),
            teardown: CancellationToken::new(),
            lender: Some(lender.clone()),
        });
        (t, lender)
    }
}

/// Lent memory standing in for a drive's DMA memory: one region per lend, kept (never freed)
/// so an address stays valid, with a count of what was lent and given back.
#[derive(Default)]
struct TestLender {
    regions: Mutex<Vec<Box<[std::sync::atomic::AtomicU8]>>>,
    lent: AtomicU32,
    released: AtomicU32,
}

impl TestLender {
    fn lend(self: &Arc<Self>, len: usize) -> Lent {
        let region: Box<[std::sync::atomic::AtomicU8]> = (0..len)
            .map(|_| std::sync::atomic::AtomicU8::new(0))
            .collect();
        let addr = region.as_ptr() as usize;
        let mut regions = self.regions.lock_counted();
        regions.push(region);
        self.lent.fetch_add(1, Ordering::SeqCst);
        let home: Arc<dyn LentHome> = self.clone();
        Lent::new(addr, len, regions.len() as u64 - 1, home)
    }
}

impl LentHome for TestLender {
    fn release(&self, _tag: u64) {
        self.released.fetch_add(1, Ordering::SeqCst);
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
                lender: self.lender.clone(),
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
    lender: Option<Arc<TestLender>>,
}

impl QueueHandler for RamQueue {
    fn submit(&mut self, req: Request) -> Completion {
        let sqe = req.sqe;
        let off = sqe.slba() as usize * BLOCK;
        let len = sqe.nlb() as usize * BLOCK;
        let mut store = self.store.lock_counted();
        match sqe.opcode {
            0x01 => {
                let lent = req.h2c_lent.as_ref().map(Lent::to_vec);
                let data = lent.as_deref().unwrap_or(req.host_data());
                if data.len() != len {
                    return Completion::Ready(Response::status(Status::DATA_SGL_LENGTH_INVALID));
                }
                store[off..off + len].copy_from_slice(data);
                Completion::Ready(Response::success().returning(req.h2c_buf))
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

    fn lend_h2c(&mut self, sqe: &Sqe, len: u32) -> Option<Lent> {
        let lender = self.lender.as_ref()?;
        (sqe.opcode == 0x01).then(|| lender.lend(len as usize))
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
        secure: None,
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
        opcode: nvme_spec::sqe::FABRICS_OPCODE,
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
