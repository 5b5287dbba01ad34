//! End to end, with raw PDUs so the test picks the CIDs: a host that cancelled its
//! Asynchronous Event Requests on its own side (as hosts do on detach) reuses their CIDs for
//! Property Get CC and for the Property Set of CC.SHN, and the box still shuts down cleanly:
//! every namespace is flushed and CSTS.SHST reaches 10b.

use ferrofab_sync::CountedLock as _;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fabric::initiator::command::{self, PropertySize};
use fabric::tcp::framer::{Framer, Role};
use fabric::tcp::pdu::{EncodeOptions, IcReq, Pdu, PduHeader};
use nvme::backend::{Backend, BackendError, BackendInfo, RamBackend};
use nvme::command::ConnectData;
use nvme::sgl::SUBTYPE_TRANSPORT_A;
use nvme::{Cqe, Sgl, Sqe, Status};
use target::namespace::Namespace;
use target::{Config, Daemon, TargetParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zerocopy::IntoBytes;

mod common;
use common::LOOPBACK_LISTENER;

const SUB: &str = "nqn.2026-01.io.ferrofab:aer-reuse";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
/// CC: EN, IOSQES 6, IOCQES 4.
const CC_EN: u32 = 0x0046_0001;
/// CC.SHN = 01b (normal shutdown), bits 15:14.
const CC_SHN_NORMAL: u32 = 0b01 << 14;
const OFFSET_CC: u32 = 0x14;
const OFFSET_CSTS: u32 = 0x1c;
/// Notice, Namespace Attribute Changed, log page 04h (NVMe Base 2.0 Figure 146).
const NS_CHANGED_EVENT: u32 = 0x0004_0002;

/// A RAM namespace that counts flushes, and can fail them.
struct FlushCounter {
    ram: RamBackend,
    flushes: AtomicU32,
    fail: bool,
}

impl FlushCounter {
    fn new(fail: bool) -> Arc<FlushCounter> {
        Arc::new(FlushCounter {
            ram: RamBackend::new(1 << 20, 512).unwrap(),
            flushes: AtomicU32::new(0),
            fail,
        })
    }

    fn flushes(&self) -> u32 {
        self.flushes.load(Ordering::SeqCst)
    }
}

impl Backend for FlushCounter {
    fn info(&self) -> BackendInfo {
        self.ram.info()
    }
    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.ram.read(lba, buf)
    }
    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        self.ram.write(lba, data, fua)
    }
    fn flush(&self) -> Result<(), BackendError> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(BackendError::Io(std::io::Error::other("flush fails")));
        }
        self.ram.flush()
    }
    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        self.ram.write_zeroes(lba, blocks)
    }
    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        self.ram.deallocate(lba, blocks)
    }
    fn may_block(&self) -> bool {
        false
    }
}

/// A host speaking raw NVMe/TCP PDUs on the admin queue.
struct RawHost {
    stream: TcpStream,
    rx: Framer,
    cqes: VecDeque<Cqe>,
}

impl RawHost {
    async fn connect(addr: SocketAddr) -> RawHost {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut h = RawHost {
            stream,
            rx: Framer::new(Role::Host, 1 << 20),
            cqes: VecDeque::new(),
        };
        let icreq = Pdu::new(PduHeader::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            dgst: 0,
            maxr2t: 0,
        }));
        h.write(&icreq).await;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = h.stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "controller closed the connection");
            h.rx.feed(&buf[..n]);
            if let Some(p) = h.rx.next_pdu().unwrap() {
                assert!(matches!(p.header, PduHeader::IcResp(_)), "{:?}", p.header);
                return h;
            }
        }
    }

    async fn write(&mut self, pdu: &Pdu) {
        let bytes = pdu.encode(EncodeOptions::default()).to_vec();
        self.stream.write_all(&bytes).await.unwrap();
    }

    async fn read_some(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        let n = self.stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "controller closed the connection");
        self.rx.feed(&buf[..n]);
        while let Some(p) = self.rx.next_pdu().unwrap() {
            match p.header {
                PduHeader::CapsuleResp(c) => self.cqes.push_back(c),
                other => panic!("unexpected PDU {other:?}"),
            }
        }
    }

    /// Send a command without data; PSDT SGL with a zero-length Transport data block.
    async fn send(&mut self, mut sqe: Sqe, cid: u16) {
        sqe.cid.set(cid);
        sqe.flags = 0x40;
        sqe.dptr = Sgl::Transport {
            length: 0,
            subtype: SUBTYPE_TRANSPORT_A,
        }
        .encode();
        self.write(&Pdu::new(PduHeader::CapsuleCmd(sqe))).await;
    }

    /// The next completion, if one arrives within `wait`.
    async fn next_cqe(&mut self, wait: Duration) -> Option<Cqe> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.cqes.is_empty() {
            if tokio::time::timeout_at(deadline, self.read_some())
                .await
                .is_err()
            {
                return None;
            }
        }
        self.cqes.pop_front()
    }

    /// Send a command and return its completion, which must be the next one to arrive.
    async fn command(&mut self, sqe: Sqe, cid: u16) -> Cqe {
        self.send(sqe, cid).await;
        let cqe = self
            .next_cqe(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no completion for CID {cid}"));
        assert_eq!(cqe.cid(), cid, "completion of another command: {cqe:?}");
        cqe
    }

    async fn admin_connect(&mut self, cid: u16) {
        let mut sqe = command::connect(0, 31, 0, 0);
        sqe.cid.set(cid);
        sqe.flags = 0x40;
        sqe.dptr = Sgl::InCapsule {
            offset: 0,
            length: 1024,
        }
        .encode();
        let data = ConnectData::new([7; 16], 0xffff, SUB, HOST).unwrap();
        let pdu = Pdu::with_data(
            PduHeader::CapsuleCmd(sqe),
            0,
            Bytes::copy_from_slice(data.as_bytes()),
        );
        self.write(&pdu).await;
        let cqe = self.next_cqe(Duration::from_secs(5)).await.unwrap();
        assert_eq!((cqe.cid(), cqe.status()), (cid, Status::SUCCESS));
    }

    async fn property_get(&mut self, offset: u32, cid: u16) -> u32 {
        let cqe = self
            .command(command::property_get(offset, PropertySize::Four), cid)
            .await;
        assert_eq!(cqe.status(), Status::SUCCESS, "Property Get {offset:#x}");
        cqe.dw0.get()
    }

    async fn property_set_cc(&mut self, value: u32, cid: u16) -> Status {
        let sqe = command::property_set(OFFSET_CC, PropertySize::Four, u64::from(value));
        self.command(sqe, cid).await.status()
    }

    /// Poll CSTS with `cid` until `done` accepts it (bounded).
    async fn wait_csts(&mut self, cid: u16, done: impl Fn(u32) -> bool) -> u32 {
        for _ in 0..500 {
            let csts = self.property_get(OFFSET_CSTS, cid).await;
            if done(csts) {
                return csts;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("CSTS never reached the expected state");
    }
}

fn config() -> Config {
    let text = format!(
        r#"{LOOPBACK_LISTENER}
[[subsystem]]
nqn = "{SUB}"

[[subsystem.namespace]]
nsid = 1
backend = "ram"
size = "8MiB"
"#
    );
    common::parse(&text)
}

#[tokio::test]
async fn shutdown_after_the_host_abandoned_its_aers_and_reused_their_cids() {
    let d = Daemon::start(config(), TargetParams::default())
        .await
        .expect("daemon starts");
    let addr = d.addresses()[0];
    let sub = d.target().subsystem(SUB).unwrap();
    // Flushed in NSID order: 1, then 2 (fails), then 5. A failed flush must not stop the others.
    let failing = FlushCounter::new(true);
    let counted = FlushCounter::new(false);
    sub.add_namespace(Arc::new(Namespace::new(SUB, 2, failing.clone())))
        .unwrap();
    sub.add_namespace(Arc::new(Namespace::new(SUB, 5, counted.clone())))
        .unwrap();

    let mut h = RawHost::connect(addr).await;
    h.admin_connect(100).await;
    assert_eq!(h.property_set_cc(CC_EN, 101).await, Status::SUCCESS);
    h.wait_csts(102, |csts| csts & 1 == 1).await;

    // AERL = 3 (0's based): AERs with CIDs 0..=3 park, a fifth one is over the limit.
    let aer = command::async_event_request();
    for cid in 0..=3 {
        h.send(aer, cid).await;
    }
    let cqe = h.command(aer, 4).await;
    assert_eq!(
        cqe.status(),
        Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED.with_dnr()
    );

    // The host aborts its AERs locally (nothing on the wire) and reuses CID 0 to read CC.
    assert_eq!(h.property_get(OFFSET_CC, 0).await, CC_EN);

    // An event now goes to the oldest AER still outstanding (CID 1), not to the retired one.
    let added = FlushCounter::new(false);
    sub.add_namespace(Arc::new(Namespace::new(SUB, 7, added.clone())))
        .unwrap();
    let cqe = h
        .next_cqe(Duration::from_secs(5))
        .await
        .expect("the event completes an AER");
    assert_eq!(
        (cqe.cid(), cqe.status(), cqe.dw0.get()),
        (1, Status::SUCCESS, NS_CHANGED_EVENT)
    );

    // The retired AER's slot is free: two new AERs park (2, 3, 10, 11 outstanding), the
    // next one is over the limit.
    h.send(aer, 10).await;
    h.send(aer, 11).await;
    let cqe = h.command(aer, 12).await;
    assert_eq!(
        cqe.status(),
        Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED.with_dnr()
    );

    // Shutdown with the CIDs of the AERs still outstanding: CC.SHN = 01b, then CSTS polls.
    assert_eq!(
        h.property_set_cc(CC_EN | CC_SHN_NORMAL, 2).await,
        Status::SUCCESS
    );
    let csts = h.wait_csts(3, |csts| (csts >> 2) & 0b11 == 0b10).await;
    assert_eq!(csts & 0b1111, 0b1001, "RDY, SHST = 10b (shutdown complete)");
    assert_eq!(failing.flushes(), 1, "nsid 2 flush attempted");
    assert_eq!(counted.flushes(), 1, "nsid 5 flushed after nsid 2 failed");
    assert_eq!(added.flushes(), 1, "nsid 7 flushed");

    // No completion ever shows up for the retired AERs (nor for 10 and 11, still parked).
    assert_eq!(h.next_cqe(Duration::from_millis(300)).await, None);
    // The retired AERs are no command errors: the Error Information log holds only the two
    // refused AERs.
    let ctrl = d.target().controllers().pop().expect("the controller");
    let statuses: Vec<Status> = ctrl
        .errors
        .lock_counted()
        .entries()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        statuses,
        vec![Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED.with_dnr(); 2]
    );
    d.shutdown().await;
}
