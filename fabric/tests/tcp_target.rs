//! The NVMe/TCP target driver over real sockets on 127.0.0.1, with a small RAM-backed mock
//! `Target`, driven by hand-built PDUs.

use ferrofab_sync::CountedLock as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fabric::queue::{
    Completion, Connected, ConnectionInfo, QueueHandler, Request, Response, Target, TransportKind,
};
use fabric::tcp::framer::{Framer, ReceivedPdu, Role};
use fabric::tcp::pdu::{
    Digests, EncodeOptions, Fes, H2CData, IcReq, Pdu, PduHeader, R2t, DGST_DDGST_ENABLE,
    DGST_HDGST_ENABLE, FLAG_LAST_PDU,
};
use fabric::tcp::reactor::{ReactorConfig, ReactorPool};
use fabric::tcp::{serve, TcpTargetConfig};
use nvme_spec::sgl::SUBTYPE_TRANSPORT_A;
use nvme_spec::{Cqe, Sgl, Sqe, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const BLOCK: usize = 512;
const WAIT: Duration = Duration::from_secs(10);

/// RAM block store: Write 01h, Read 02h, Flush 00h completes after CDW10 milliseconds with
/// DW0 = CDW10.
struct RamTarget {
    store: Arc<Mutex<Vec<u8>>>,
    teardown: CancellationToken,
    disconnects: Arc<AtomicU32>,
    connects: AtomicU32,
}

impl RamTarget {
    fn new() -> Arc<RamTarget> {
        Arc::new(RamTarget {
            store: Arc::new(Mutex::new(vec![0; 8 << 20])),
            teardown: CancellationToken::new(),
            disconnects: Arc::new(AtomicU32::new(0)),
            connects: AtomicU32::new(0),
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
        if conn.transport != TransportKind::Tcp || !conn.peer.ip().is_loopback() {
            return Err(Response::status(Status::INVALID_FIELD.with_dnr()));
        }
        if data.len() != 1024 || &data[256..260] != b"nqn." {
            return Err(Response::status(Status::INVALID_FIELD.with_dnr()));
        }
        self.connects.fetch_add(1, Ordering::SeqCst);
        let cdw11 = sqe.cdw11.get();
        Ok(Connected {
            handler: Box::new(RamQueue {
                store: self.store.clone(),
                teardown: self.teardown.clone(),
                disconnects: self.disconnects.clone(),
            }),
            response: Response::success().with_dw0(1),
            qid: (sqe.cdw10.get() >> 16) as u16,
            sqsize: (cdw11 & 0xffff) + 1,
            sq_flow_control_disabled: false,
        })
    }
}

struct RamQueue {
    store: Arc<Mutex<Vec<u8>>>,
    teardown: CancellationToken,
    disconnects: Arc<AtomicU32>,
}

impl QueueHandler for RamQueue {
    fn submit(&mut self, req: Request) -> Completion {
        let sqe = req.sqe;
        let off = sqe.slba() as usize * BLOCK;
        let len = sqe.nlb() as usize * BLOCK;
        match sqe.opcode {
            0x01 => {
                let data = req.host_data();
                if data.len() != len {
                    return Completion::Ready(Response::status(Status::DATA_SGL_LENGTH_INVALID));
                }
                self.store.lock_counted()[off..off + len].copy_from_slice(data);
                Completion::Ready(Response::success().returning(req.h2c_buf))
            }
            0x02 => {
                let data = Bytes::copy_from_slice(&self.store.lock_counted()[off..off + len]);
                Completion::Ready(Response::success().with_data(data))
            }
            0x00 => {
                let ms = sqe.cdw10.get();
                Completion::Pending(Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
                    Response::success().with_dw0(ms)
                }))
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

struct Server {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start(target: Arc<RamTarget>, config: TcpTargetConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve_then_stop(listener, target, config, shutdown.clone()));
    Server {
        addr,
        shutdown,
        task,
    }
}

/// Serve on two adaptive reactors until `shutdown`, then close every connection.
async fn serve_then_stop(
    listener: TcpListener,
    target: Arc<RamTarget>,
    config: TcpTargetConfig,
    shutdown: CancellationToken,
) {
    let reactors = ReactorConfig {
        count: 2,
        ..Default::default()
    };
    let pool = Arc::new(ReactorPool::start(reactors, tokio::runtime::Handle::current()).unwrap());
    serve(listener, target, config, pool.clone(), None, shutdown).await;
    tokio::task::spawn_blocking(move || pool.stop_and_join())
        .await
        .unwrap();
}

/// A raw NVMe/TCP host: hand-built PDUs out, framed PDUs in.
struct Client {
    sock: TcpStream,
    rx: Framer,
    opts: EncodeOptions,
}

impl Client {
    async fn open(addr: std::net::SocketAddr) -> Client {
        Client {
            sock: TcpStream::connect(addr).await.unwrap(),
            rx: Framer::new(Role::Host, 1 << 24),
            opts: EncodeOptions::default(),
        }
    }

    async fn send(&mut self, pdu: &Pdu) {
        let bytes = pdu.encode(self.opts).to_vec();
        self.sock.write_all(&bytes).await.unwrap();
    }

    /// The next PDU, or `None` at end of stream.
    async fn next(&mut self) -> Option<ReceivedPdu> {
        loop {
            if let Some(p) = self.rx.next_pdu().expect("bad PDU from the target") {
                return Some(p);
            }
            let n = tokio::time::timeout(WAIT, self.sock.read_buf(self.rx.buffer_mut()))
                .await
                .expect("target went silent")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    async fn recv(&mut self) -> ReceivedPdu {
        self.next().await.expect("connection closed")
    }

    async fn expect_eof(&mut self) {
        assert!(self.next().await.is_none(), "expected the target to close");
    }

    async fn handshake(&mut self, dgst: u8, maxr2t: u32) {
        self.send(&Pdu::new(PduHeader::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            dgst,
            maxr2t,
        })))
        .await;
        let PduHeader::IcResp(r) = self.recv().await.header else {
            panic!("expected ICResp")
        };
        assert_eq!(r.dgst, dgst);
        self.rx.set_digests(r.digests());
        self.opts = EncodeOptions {
            digests: r.digests(),
            pda: r.cpda,
        };
    }

    async fn connect(&mut self, qid: u16) {
        let mut sqe = Sqe {
            opcode: 0x7f,
            flags: 0x40,
            ..Default::default()
        };
        sqe.cid.set(0xfff0);
        sqe.nsid.set(0x01);
        sqe.cdw10.set(u32::from(qid) << 16);
        sqe.cdw11.set(127);
        sqe.dptr = Sgl::InCapsule {
            offset: 0,
            length: 1024,
        }
        .encode();
        let mut data = vec![0u8; 1024];
        data[256..260].copy_from_slice(b"nqn.");
        self.send(&Pdu::with_data(
            PduHeader::CapsuleCmd(sqe),
            0,
            Bytes::from(data),
        ))
        .await;
        let cqe = cqe_of(&self.recv().await);
        assert_eq!(cqe.status(), Status::SUCCESS);
        assert_eq!(cqe.sqid.get(), qid);
    }

    /// Write `data` at `slba` with a Transport SGL, answering every R2T.
    async fn write(&mut self, cid: u16, slba: u64, data: &[u8]) -> Cqe {
        let sqe = io_sqe(0x01, cid, slba, data.len(), transport(data.len()));
        self.send(&Pdu::new(PduHeader::CapsuleCmd(sqe))).await;
        loop {
            let p = self.recv().await;
            match p.header {
                PduHeader::R2t(r) => self.answer(r, data).await,
                PduHeader::CapsuleResp(c) => return c,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn answer(&mut self, r: R2t, data: &[u8]) {
        // Two H2CData PDUs per R2T.
        let start = r.r2to as usize;
        let end = start + r.r2tl as usize;
        let mid = start
            + (r.r2tl as usize / 2)
                .next_multiple_of(4)
                .min(r.r2tl as usize);
        for (a, b) in [(start, mid), (mid, end)] {
            if a == b {
                continue;
            }
            self.send(&Pdu::with_data(
                PduHeader::H2CData(H2CData {
                    cccid: r.cccid,
                    ttag: r.ttag,
                    datao: a as u32,
                    datal: (b - a) as u32,
                }),
                if b == end { FLAG_LAST_PDU } else { 0 },
                Bytes::copy_from_slice(&data[a..b]),
            ))
            .await;
        }
    }

    async fn read(&mut self, cid: u16, slba: u64, len: usize) -> (Vec<u8>, Cqe) {
        let sqe = io_sqe(0x02, cid, slba, len, transport(len));
        self.send(&Pdu::new(PduHeader::CapsuleCmd(sqe))).await;
        let mut data = Vec::new();
        loop {
            let p = self.recv().await;
            match p.header {
                PduHeader::C2HData(d) => {
                    assert_eq!(d.datao as usize, data.len());
                    assert!(p.data_digest_ok);
                    data.extend_from_slice(&p.data);
                }
                PduHeader::CapsuleResp(c) => return (data, c),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn cqe_of(p: &ReceivedPdu) -> Cqe {
    match p.header {
        PduHeader::CapsuleResp(c) => c,
        other => panic!("expected CapsuleResp, got {other:?}"),
    }
}

fn transport(len: usize) -> Sgl {
    Sgl::Transport {
        length: len as u32,
        subtype: SUBTYPE_TRANSPORT_A,
    }
}

fn io_sqe(opcode: u8, cid: u16, slba: u64, len: usize, sgl: Sgl) -> Sqe {
    let mut sqe = Sqe {
        opcode,
        flags: 0x40,
        ..Default::default()
    };
    sqe.cid.set(cid);
    sqe.nsid.set(1);
    sqe.cdw10.set(slba as u32);
    sqe.cdw11.set((slba >> 32) as u32);
    sqe.cdw12.set((len / BLOCK).max(1) as u32 - 1);
    sqe.dptr = sgl.encode();
    sqe
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8) ^ (i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_and_read_back_with_digests() {
    let target = RamTarget::new();
    let server = start(target.clone(), TcpTargetConfig::default()).await;
    let mut admin = Client::open(server.addr).await;
    admin
        .handshake(DGST_HDGST_ENABLE | DGST_DDGST_ENABLE, 1)
        .await;
    admin.connect(0).await;
    let mut io = Client::open(server.addr).await;
    io.handshake(DGST_HDGST_ENABLE | DGST_DDGST_ENABLE, 1).await;
    io.connect(1).await;

    // 640 KiB: five 128 KiB R2Ts, two outstanding at a time (MAXR2T 1).
    let data = pattern(640 * 1024, 3);
    let cqe = io.write(1, 100, &data).await;
    assert_eq!((cqe.cid(), cqe.status()), (1, Status::SUCCESS));
    assert_eq!(
        &target.store.lock_counted()[100 * BLOCK..100 * BLOCK + data.len()],
        &data[..]
    );
    let (back, cqe) = io.read(2, 100, data.len()).await;
    assert_eq!(cqe.status(), Status::SUCCESS);
    assert_eq!(back.len(), data.len());
    assert!(back == data, "read data differs from what was written");
    assert_eq!(target.connects.load(Ordering::SeqCst), 2);

    server.shutdown.cancel();
    admin.expect_eof().await;
    io.expect_eof().await;
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(target.disconnects.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_connection_does_not_disturb_another() {
    let target = RamTarget::new();
    let server = start(target.clone(), TcpTargetConfig::default()).await;
    let mut good = Client::open(server.addr).await;
    good.handshake(0, 0).await;
    good.connect(1).await;
    let data = pattern(8192, 9);
    assert_eq!(good.write(1, 0, &data).await.status(), Status::SUCCESS);

    // Garbage before ICReq: C2HTermReq (invalid PDU-type at offset 0), then close.
    let mut bad = Client::open(server.addr).await;
    bad.sock
        .write_all(&[0xee, 0, 8, 0, 8, 0, 0, 0])
        .await
        .unwrap();
    let p = bad.recv().await;
    let PduHeader::C2HTermReq(t) = p.header else {
        panic!("expected C2HTermReq, got {:?}", p.header)
    };
    assert_eq!((t.fes, t.fei), (Fes::InvalidHeaderField, 0));
    assert_eq!(&p.data[..], &[0xee, 0, 8, 0, 8, 0, 0, 0]);
    bad.expect_eof().await;

    // A command before ICReq is a sequence error.
    let mut early = Client::open(server.addr).await;
    early
        .send(&Pdu::new(PduHeader::CapsuleCmd(io_sqe(
            0x02,
            1,
            0,
            512,
            transport(512),
        ))))
        .await;
    let PduHeader::C2HTermReq(t) = early.recv().await.header else {
        panic!("expected C2HTermReq")
    };
    assert_eq!(t.fes, Fes::PduSequenceError);
    early.expect_eof().await;

    let (back, cqe) = good.read(2, 0, data.len()).await;
    assert_eq!(cqe.status(), Status::SUCCESS);
    assert_eq!(back, data);
    server.shutdown.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_arrive_out_of_order() {
    let server = start(RamTarget::new(), TcpTargetConfig::default()).await;
    let mut c = Client::open(server.addr).await;
    c.handshake(0, 0).await;
    c.connect(1).await;
    for (cid, ms) in [(10u16, 300u32), (11, 0)] {
        let mut sqe = io_sqe(0x00, cid, 0, 0, transport(0));
        sqe.cdw10.set(ms);
        c.send(&Pdu::new(PduHeader::CapsuleCmd(sqe))).await;
    }
    let first = cqe_of(&c.recv().await);
    let second = cqe_of(&c.recv().await);
    assert_eq!((first.cid(), first.dw0.get()), (11, 0));
    assert_eq!((second.cid(), second.dw0.get()), (10, 300));
    server.shutdown.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_closes_the_connection() {
    let target = RamTarget::new();
    let server = start(target.clone(), TcpTargetConfig::default()).await;
    let mut c = Client::open(server.addr).await;
    c.handshake(0, 0).await;
    c.connect(0).await;
    target.teardown.cancel();
    c.expect_eof().await;
    // disconnected() runs once the connection task ends.
    for _ in 0..100 {
        if target.disconnects.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(target.disconnects.load(Ordering::SeqCst), 1);
    server.shutdown.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(target.disconnects.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_host_is_dropped_after_ic_timeout() {
    let config = TcpTargetConfig {
        ic_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let server = start(RamTarget::new(), config).await;
    let mut c = Client::open(server.addr).await;
    let started = std::time::Instant::now();
    c.expect_eof().await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    // A host that completes ICReq in time is not affected.
    let mut ok = Client::open(server.addr).await;
    ok.handshake(0, 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ok.connect(0).await;
    assert_eq!(ok.rx.digests(), Digests::NONE);
    server.shutdown.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap();
}
