//! The initiator against the NVMe/TCP target transport (`fabric::tcp::serve`) over 127.0.0.1,
//! with a small in-test `Target`: RAM namespace, properties, Identify, Read/Write, discovery.

use ferrofab_sync::CountedLock as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fabric::initiator::command;
use fabric::initiator::{
    discover, Controller, DiscoveryController, HostCommand, HostError, HostOptions, Queue,
    QueueOptions, DISCOVERY_NQN,
};
use fabric::queue::{
    Completion, Connected, ConnectionInfo, QueueHandler, Request, Response, Target,
};
use fabric::tcp::reactor::{ReactorConfig, ReactorPool};
use fabric::tcp::{serve, TcpTargetConfig};
use nvme_spec::features::AsyncEvent;
use nvme_spec::identify::{IdentifyController, IdentifyNamespace, LbaFormat};
use nvme_spec::log_page::{
    AddressFamily, DiscoveryLog, DiscoveryRecord, SubsystemType, TransportType,
};
use nvme_spec::{Sqe, Status};
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use zerocopy::IntoBytes;

const SUBNQN: &str = "nqn.2026-01.io.ferrofab:test";
const BLOCK: usize = 512;
const BLOCKS: usize = 8192; // 4 MiB
const CNTLID: u16 = 0x21;

#[derive(Default)]
struct Regs {
    cc: u32,
}

struct State {
    store: Mutex<Vec<u8>>,
    regs: Mutex<Regs>,
    keep_alives: AtomicU32,
    genctr: AtomicU32,
    change: Notify,
}

struct MockTarget {
    state: Arc<State>,
}

struct Handler {
    state: Arc<State>,
    discovery: bool,
    teardown: CancellationToken,
}

impl Target for MockTarget {
    fn connect(&self, _: &ConnectionInfo, sqe: &Sqe, data: &[u8]) -> Result<Connected, Response> {
        let subnqn = data.get(256..512).unwrap_or_default();
        let end = subnqn.iter().position(|&b| b == 0).unwrap_or(subnqn.len());
        let subnqn = std::str::from_utf8(&subnqn[..end]).unwrap_or("");
        let discovery = subnqn == DISCOVERY_NQN;
        if subnqn != SUBNQN && !discovery {
            return Err(Response::status(
                Status::CONNECT_INVALID_PARAMETERS.with_dnr(),
            ));
        }
        let qid = (sqe.cdw10.get() >> 16) as u16;
        let sqsize = (sqe.cdw11.get() & 0xffff) + 1;
        let cattr = (sqe.cdw11.get() >> 16) as u8;
        Ok(Connected {
            handler: Box::new(Handler {
                state: self.state.clone(),
                discovery,
                teardown: CancellationToken::new(),
            }),
            response: Response::success().with_dw0(u32::from(CNTLID)),
            qid,
            sqsize,
            sq_flow_control_disabled: cattr & 0x04 != 0,
        })
    }
}

fn identify_controller(discovery: bool) -> Bytes {
    let mut c = IdentifyController::zeroed();
    c.set_serial_number("MOCK-1");
    c.set_model_number("mock target");
    c.cntlid.set(CNTLID);
    c.cntrltype = if discovery { 2 } else { 1 };
    c.nn.set(1);
    c.ioccsz.set((8192 + 64) / 16);
    c.iorcsz.set(1);
    let _ = c.set_subnqn(if discovery { DISCOVERY_NQN } else { SUBNQN });
    Bytes::copy_from_slice(c.as_bytes())
}

fn identify_namespace() -> Bytes {
    let mut n = IdentifyNamespace::zeroed();
    n.nsze.set(BLOCKS as u64);
    n.ncap.set(BLOCKS as u64);
    n.lbaf[0] = LbaFormat::for_block_size(BLOCK as u32);
    Bytes::copy_from_slice(n.as_bytes())
}

fn discovery_log(genctr: u64) -> Vec<u8> {
    let rec = |subnqn: &str, subtype| DiscoveryRecord {
        trtype: TransportType::Tcp,
        adrfam: AddressFamily::Ipv4,
        subtype,
        treq: 0,
        portid: 1,
        cntlid: 0xffff,
        asqsz: 32,
        eflags: 0,
        trsvcid: "4420".into(),
        traddr: "127.0.0.1".into(),
        subnqn: subnqn.into(),
        tsas: [0; 256],
    };
    DiscoveryLog {
        genctr,
        recfmt: 0,
        records: vec![
            rec(SUBNQN, SubsystemType::Nvme),
            rec(DISCOVERY_NQN, SubsystemType::CurrentDiscovery),
        ],
    }
    .encode()
    .unwrap()
}

impl Handler {
    fn admin(&mut self, sqe: &Sqe, data: Option<Bytes>) -> Completion {
        let st = &self.state;
        let r = match sqe.opcode {
            0x7f => match sqe.fctype() {
                // Property Get / Set (NVMe-oF 1.1 §3.4, §3.6).
                0x04 => {
                    let regs = st.regs.lock_counted();
                    let v: u64 = match sqe.cdw11.get() {
                        0x00 => 0x3f | (1 << 24) | (1 << 37), // MQES 63, TO 500 ms, CSS NVM
                        0x08 => 0x0002_0000,
                        0x14 => u64::from(regs.cc),
                        0x1c => {
                            let rdy = regs.cc & 1;
                            let shst = if regs.cc >> 14 & 3 != 0 { 0b10 << 2 } else { 0 };
                            u64::from(rdy | shst)
                        }
                        _ => return Completion::Ready(Response::status(Status::INVALID_FIELD)),
                    };
                    let mut resp = Response::success().with_dw0(v as u32);
                    resp.dw1 = (v >> 32) as u32;
                    resp
                }
                0x00 => {
                    if sqe.cdw11.get() == 0x14 {
                        st.regs.lock_counted().cc = sqe.cdw12.get();
                    }
                    Response::success()
                }
                _ => Response::status(Status::INVALID_OPCODE),
            },
            0x06 => match sqe.cdw10.get() & 0xff {
                0x01 => Response::success().with_data(identify_controller(self.discovery)),
                0x00 if sqe.nsid() == 1 => Response::success().with_data(identify_namespace()),
                0x02 => {
                    let mut page = vec![0u8; 4096];
                    if sqe.nsid() < 1 {
                        page[0] = 1;
                    }
                    Response::success().with_data(Bytes::from(page))
                }
                _ => Response::status(Status::INVALID_FIELD.with_dnr()),
            },
            // Set Features: Number of Queues grants 4 of each; AEN config accepted.
            0x09 => Response::success().with_dw0(0x0003_0003),
            0x18 => {
                st.keep_alives.fetch_add(1, Ordering::SeqCst);
                Response::success()
            }
            // Get Log Page 70h.
            0x02 if self.discovery && sqe.cdw10.get() & 0xff == 0x70 => {
                let numd = ((sqe.cdw10.get() >> 16) | (sqe.cdw11.get() << 16)) as usize + 1;
                let lpo = u64::from(sqe.cdw12.get()) | (u64::from(sqe.cdw13.get()) << 32);
                let page = discovery_log(u64::from(st.genctr.load(Ordering::SeqCst)));
                let slice = nvme_spec::log_page::log_page_slice(&page, lpo, numd * 4).unwrap();
                Response::success().with_data(Bytes::from(slice))
            }
            // Asynchronous Event Request: completes at the next discovery log change.
            0x0c => {
                let st = self.state.clone();
                return Completion::Pending(Box::pin(async move {
                    st.change.notified().await;
                    Response::success().with_dw0(AsyncEvent::discovery_log_change().to_dw0())
                }));
            }
            _ => Response::status(Status::INVALID_OPCODE.with_dnr()),
        };
        let _ = data;
        Completion::Ready(r)
    }

    fn io(&mut self, sqe: &Sqe, data: Option<Bytes>) -> Completion {
        let slba = sqe.slba() as usize;
        let nlb = sqe.nlb() as usize;
        if slba + nlb > BLOCKS {
            return Completion::Ready(Response::status(Status::LBA_OUT_OF_RANGE.with_dnr()));
        }
        let range = slba * BLOCK..(slba + nlb) * BLOCK;
        let r = match sqe.opcode {
            0x00 => Response::success(),
            0x01 => match data {
                Some(d) if d.len() == range.len() => {
                    self.state.store.lock_counted()[range].copy_from_slice(&d);
                    Response::success()
                }
                _ => Response::status(Status::DATA_SGL_LENGTH_INVALID.with_dnr()),
            },
            0x02 => {
                let d = Bytes::copy_from_slice(&self.state.store.lock_counted()[range]);
                Response::success().with_data(d)
            }
            // A command that never completes, for timeouts.
            0x80 => return Completion::Pending(Box::pin(std::future::pending())),
            _ => Response::status(Status::INVALID_OPCODE.with_dnr()),
        };
        Completion::Ready(r)
    }
}

impl QueueHandler for Handler {
    fn submit(&mut self, request: Request) -> Completion {
        let sqe = request.sqe;
        if sqe.is_fabrics() && sqe.fctype() == 0x08 {
            return Completion::Ready(Response::success());
        }
        // Admin and fabrics commands arrive on the admin queue; the mock tells I/O commands
        // apart by NSID + opcode, which is enough for these tests.
        let is_io =
            !sqe.is_fabrics() && sqe.nsid() == 1 && matches!(sqe.opcode, 0x00..=0x02 | 0x80);
        // Data gathered from several H2CData PDUs arrives in a pooled buffer.
        let data = match request.h2c_buf {
            Some(b) => Some(Bytes::copy_from_slice(b.as_slice())),
            None => request.data,
        };
        if is_io {
            self.io(&sqe, data)
        } else {
            self.admin(&sqe, data)
        }
    }

    fn teardown(&self) -> CancellationToken {
        self.teardown.clone()
    }

    fn disconnected(&mut self) {}
}

struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State {
        store: Mutex::new(vec![0u8; BLOCK * BLOCKS]),
        regs: Mutex::new(Regs::default()),
        keep_alives: AtomicU32::new(0),
        genctr: AtomicU32::new(1),
        change: Notify::new(),
    });
    let shutdown = CancellationToken::new();
    let pool = Arc::new(
        ReactorPool::start(ReactorConfig::default(), tokio::runtime::Handle::current()).unwrap(),
    );
    let target = Arc::new(MockTarget {
        state: state.clone(),
    });
    let stop = shutdown.clone();
    tokio::spawn(async move {
        serve(
            listener,
            target,
            TcpTargetConfig::default(),
            pool.clone(),
            None,
            stop,
        )
        .await;
        tokio::task::spawn_blocking(move || pool.stop_and_join())
            .await
            .unwrap();
    });
    Server {
        addr,
        state,
        shutdown,
    }
}

fn random(len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    Bytes::from(v)
}

fn opts(header_digest: bool, data_digest: bool, disable_sqflow: bool) -> HostOptions {
    HostOptions {
        header_digest,
        data_digest,
        disable_sqflow,
        io_queues: 2,
        kato_ms: 0,
        timeout: Duration::from_secs(10),
        ..HostOptions::default()
    }
}

async fn write_read_sizes(o: HostOptions) {
    let srv = start().await;
    let ctrl = Controller::connect(srv.addr, SUBNQN, o).await.unwrap();
    assert_eq!(ctrl.cntlid(), CNTLID);
    assert_eq!(ctrl.io_queue_count(), 2);
    let mut lba = 0u64;
    for (i, len) in [4096usize, 128 << 10, 1 << 20].into_iter().enumerate() {
        let qid = i as u16 % 2 + 1;
        let data = random(len);
        let w = ctrl.write(qid, 1, lba, data.clone(), false).await.unwrap();
        assert_eq!(w.status(), Status::SUCCESS, "write {len}");
        let stored = srv.state.store.lock_counted()
            [lba as usize * BLOCK..lba as usize * BLOCK + len]
            .to_vec();
        assert_eq!(stored, data, "target stored {len} bytes");
        let r = ctrl.read(qid, 1, lba, (len / BLOCK) as u32).await.unwrap();
        assert_eq!(r.status(), Status::SUCCESS, "read {len}");
        assert_eq!(r.data, data, "read back {len} bytes");
        lba += (len / BLOCK) as u64;
    }
    ctrl.shutdown().await.unwrap();
}

#[tokio::test]
async fn write_read_4k_128k_1m_without_digests() {
    write_read_sizes(opts(false, false, false)).await;
}

#[tokio::test]
async fn write_read_4k_128k_1m_with_header_and_data_digests() {
    write_read_sizes(opts(true, true, false)).await;
}

#[tokio::test]
async fn write_read_with_sq_flow_control_disabled_and_success_flag() {
    write_read_sizes(opts(false, true, true)).await;
}

#[tokio::test]
async fn controller_initialization_and_identify() {
    let srv = start().await;
    let ctrl = Controller::connect(srv.addr, SUBNQN, opts(false, false, false))
        .await
        .unwrap();
    let id = ctrl.identify();
    assert_eq!(id.serial_number(), "MOCK-1");
    assert_eq!(id.model_number(), "mock target");
    assert_eq!(id.0.subnqn().unwrap(), SUBNQN);
    assert_eq!(id.cntlid.get(), CNTLID);
    assert_eq!(id.cntlid(), CNTLID);
    assert_eq!(id.subnqn(), SUBNQN);
    assert_eq!(id.io_in_capsule_data(), 8192);
    assert_eq!(ctrl.version(), 0x0002_0000);
    assert_eq!(ctrl.cap() & 0xffff, 0x3f);
    // CC as the host wrote it: EN, IOSQES 6, IOCQES 4.
    assert_eq!(ctrl.property_get(0x14, 4).await.unwrap(), 0x0046_0001);
    assert_eq!(ctrl.property_get(0x1c, 4).await.unwrap() & 1, 1);
    assert_eq!(ctrl.active_namespaces().await.unwrap(), vec![1]);
    assert_eq!(ctrl.block_size(1).await.unwrap(), 512);
    let ns = ctrl.identify_namespace_parsed(1).await.unwrap();
    assert_eq!(ns.nsze.get(), BLOCKS as u64);
    let raw = ctrl.identify_namespace(1).await.unwrap();
    assert_eq!(&raw[0..8], &(BLOCKS as u64).to_le_bytes());
    let missing = ctrl.identify_raw(0x00, 7, 0).await.unwrap();
    assert_eq!(missing.status(), Status::INVALID_FIELD.with_dnr());
    // An NVMe error status is a completion, not a HostError.
    let bad = ctrl.read(1, 1, BLOCKS as u64, 1).await.unwrap();
    assert_eq!(bad.status(), Status::LBA_OUT_OF_RANGE.with_dnr());
    ctrl.shutdown().await.unwrap();
    // CC.SHN was set by shutdown.
    assert_eq!(srv.state.regs.lock_counted().cc >> 14 & 3, 0b01);
}

#[tokio::test]
async fn connect_failure_status_is_reported() {
    let srv = start().await;
    match Controller::connect(
        srv.addr,
        "nqn.2026-01.io.ferrofab:nope",
        opts(false, false, false),
    )
    .await
    {
        Err(HostError::Connect(s)) => assert_eq!(s, Status::CONNECT_INVALID_PARAMETERS.with_dnr()),
        other => panic!("expected a Connect failure, got {other:?}"),
    }
}

#[tokio::test]
async fn many_concurrent_commands_from_several_tasks() {
    let srv = start().await;
    let ctrl = Arc::new(
        Controller::connect(
            srv.addr,
            SUBNQN,
            HostOptions {
                queue_size: 8,
                ..opts(false, true, false)
            },
        )
        .await
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let ctrl = ctrl.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..16u64 {
                let lba = (t * 16 + i) * 8;
                let len = if i % 2 == 0 { 4096 } else { 32 << 10 };
                let data = random(len);
                let qid = (i % 2) as u16 + 1;
                let w = ctrl.write(qid, 1, lba, data.clone(), false).await.unwrap();
                assert!(w.status().is_success());
                let r = ctrl.read(qid, 1, lba, (len / BLOCK) as u32).await.unwrap();
                assert_eq!(r.data, data);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ctrl.io_queue(1).unwrap().outstanding(), 0);
}

#[tokio::test]
async fn timeout_leaves_the_queue_usable() {
    let srv = start().await;
    let ctrl = Controller::connect(srv.addr, SUBNQN, opts(false, false, false))
        .await
        .unwrap();
    let q = ctrl.io_queue(1).unwrap();
    let mut sqe = command::flush(1);
    sqe.opcode = 0x80;
    let r = q
        .submit_timeout(HostCommand::new(sqe), Some(Duration::from_millis(100)))
        .await;
    assert!(matches!(r, Err(HostError::Timeout)), "{r:?}");
    assert_eq!(q.outstanding(), 1, "the timed-out CID stays reserved");
    let f = ctrl.flush(1, 1).await.unwrap();
    assert!(f.status().is_success());
}

#[tokio::test]
async fn corrupted_data_digest_fails_the_write_with_transient_transport_error() {
    let srv = start().await;
    let ctrl = Controller::connect(srv.addr, SUBNQN, opts(false, true, false))
        .await
        .unwrap();
    for len in [4096usize, 64 << 10] {
        ctrl.io_queue(1).unwrap().corrupt_next_data_digest();
        let w = ctrl.write(1, 1, 0, random(len), false).await.unwrap();
        assert_eq!(w.status(), Status::TRANSIENT_TRANSPORT_ERROR, "{len} bytes");
        assert!(srv.state.store.lock_counted()[..len]
            .iter()
            .all(|&b| b == 0));
        // The next write goes through.
        let data = random(len);
        let w = ctrl.write(1, 1, 0, data.clone(), false).await.unwrap();
        assert!(w.status().is_success());
        assert_eq!(
            ctrl.read(1, 1, 0, (len / BLOCK) as u32).await.unwrap().data,
            data
        );
        srv.state.store.lock_counted()[..len].fill(0);
    }
}

#[tokio::test]
async fn keep_alive_runs_in_the_background() {
    let srv = start().await;
    let ctrl = Controller::connect(
        srv.addr,
        SUBNQN,
        HostOptions {
            kato_ms: 200,
            ..opts(false, false, false)
        },
    )
    .await
    .unwrap();
    // Every 100 ms; allow for a loaded machine.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let n = srv.state.keep_alives.load(Ordering::SeqCst);
    assert!(n >= 2, "only {n} keep alives in 700 ms at KATO 200 ms");
    ctrl.shutdown().await.unwrap();
}

#[tokio::test]
async fn raw_queue_and_malformed_pdu() {
    let srv = start().await;
    let q = Queue::connect(srv.addr, QueueOptions::default())
        .await
        .unwrap();
    let h = HostOptions::default();
    let cntlid = q
        .fabrics_connect_admin(SUBNQN, &h.hostnqn, &h.hostid, 0)
        .await
        .unwrap();
    assert_eq!(cntlid, CNTLID);
    // An unknown PDU type makes the controller terminate the connection.
    q.send_raw(Bytes::from_static(&[0x0f, 0, 24, 0, 24, 0, 0, 0]));
    q.send_raw(Bytes::from(vec![0u8; 16]));
    let r = q.submit(HostCommand::new(command::keep_alive())).await;
    match r {
        Err(HostError::TermReq { fes, fei }) => assert_eq!((fes, fei), (1, 0)),
        Err(HostError::Closed) => {}
        other => panic!("expected the connection to die, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), q.closed())
        .await
        .unwrap();
    assert!(q.error().is_some());
}

#[tokio::test]
async fn discovery_log_and_change_notice() {
    let srv = start().await;
    let log = discover(srv.addr, HostOptions::default()).await.unwrap();
    assert_eq!(log.genctr, 1);
    assert_eq!(log.records.len(), 2);
    assert_eq!(log.records[0].subnqn, SUBNQN);
    assert_eq!(log.records[0].trtype, TransportType::Tcp);
    assert_eq!(log.records[0].subtype, SubsystemType::Nvme);
    assert_eq!(log.records[0].traddr, "127.0.0.1");
    assert_eq!(log.records[0].trsvcid, "4420");
    assert_eq!(log.records[0].asqsz, 32);
    assert_eq!(log.records[1].subnqn, DISCOVERY_NQN);
    assert_eq!(log.records[1].subtype, SubsystemType::CurrentDiscovery);

    let mut dc = DiscoveryController::connect(
        srv.addr,
        HostOptions {
            kato_ms: 0,
            ..HostOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(dc.log().await.unwrap().genctr, 1);
    let state = srv.state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state.genctr.store(2, Ordering::SeqCst);
        state.change.notify_waiters();
    });
    let changed = tokio::time::timeout(Duration::from_secs(5), dc.wait_for_change())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.genctr, 2);
    dc.shutdown().await.unwrap();
}
