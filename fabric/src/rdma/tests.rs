//! Tests of the sans-IO NVMe/RDMA queue: a scripted host whose memory the "RDMA" work
//! requests read and write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use ferrofab_sync::CountedLock as _;
use nvme_spec::sgl::{SUBTYPE_ADDRESS, SUBTYPE_INVALIDATE_KEY};
use nvme_spec::{Cqe, Sgl, Sqe, Status};
use tokio_util::sync::CancellationToken;
use zerocopy::IntoBytes;

use super::*;
use crate::buf_pool::BufPool;
use crate::queue::{
    Completion, Connected, ConnectionInfo, Payload, QueueHandler, Request, Response, Target,
    TransportKind,
};

const BLOCK: usize = 512;

/// A RAM namespace: Write (01h) and Read (02h) by LBA.
struct RamTarget {
    store: Arc<Mutex<Vec<u8>>>,
    disconnects: Arc<AtomicU32>,
}

struct RamQueue {
    store: Arc<Mutex<Vec<u8>>>,
    disconnects: Arc<AtomicU32>,
}

impl Target for RamTarget {
    fn connect(&self, _: &ConnectionInfo, sqe: &Sqe, _: &[u8]) -> Result<Connected, Response> {
        Ok(Connected {
            handler: Box::new(RamQueue {
                store: self.store.clone(),
                disconnects: self.disconnects.clone(),
            }),
            response: Response::success().with_dw0(1),
            qid: (sqe.cdw10.get() >> 16) as u16,
            sqsize: (sqe.cdw11.get() & 0xffff) + 1,
            sq_flow_control_disabled: false,
        })
    }
}

impl QueueHandler for RamQueue {
    fn submit(&mut self, req: Request) -> Completion {
        let sqe = req.sqe;
        let off = sqe.slba() as usize * BLOCK;
        let len = sqe.nlb() as usize * BLOCK;
        let mut store = self.store.lock_counted();
        match sqe.opcode {
            0x01 => {
                if req.host_data().len() != len {
                    return Completion::Ready(Response::status(Status::DATA_SGL_LENGTH_INVALID));
                }
                store[off..off + len].copy_from_slice(req.host_data());
                Completion::Ready(Response::success().returning(req.h2c_buf))
            }
            0x02 => match req.c2h_buf {
                Some(mut buf) => {
                    buf.as_mut_slice().copy_from_slice(&store[off..off + len]);
                    Completion::Ready(Response::success().with_buf(buf))
                }
                None => Completion::Ready(Response::status(Status::INVALID_FIELD)),
            },
            _ => Completion::Ready(Response::status(Status::INVALID_OPCODE.with_dnr())),
        }
    }

    fn teardown(&self) -> CancellationToken {
        CancellationToken::new()
    }

    fn disconnected(&mut self) {
        self.disconnects.fetch_add(1, Ordering::SeqCst);
    }
}

/// The host: its registered memory by key, and what came back.
struct Host {
    queue: RdmaQueue,
    pool: BufPool,
    memory: HashMap<u32, (u64, Vec<u8>)>,
    completions: Vec<(Cqe, Option<u32>)>,
    /// Fetches to fail, by CID.
    fail_fetch: Vec<u16>,
}

fn info() -> ConnectionInfo {
    ConnectionInfo {
        transport: TransportKind::Rdma,
        local: "10.0.0.1:4420".parse().unwrap(),
        peer: "10.0.0.1:50000".parse().unwrap(),
        secure: None,
    }
}

impl Host {
    fn new() -> (Host, Arc<AtomicU32>) {
        let disconnects = Arc::new(AtomicU32::new(0));
        let target = Arc::new(RamTarget {
            store: Arc::new(Mutex::new(vec![0; 1 << 20])),
            disconnects: disconnects.clone(),
        });
        let host = Host {
            queue: RdmaQueue::new(target, info(), &RdmaTargetConfig::default()),
            pool: BufPool::default(),
            memory: HashMap::new(),
            completions: Vec::new(),
            fail_fetch: Vec::new(),
        };
        (host, disconnects)
    }

    /// Register `data` at `address` under `key`.
    fn register(&mut self, key: u32, address: u64, data: Vec<u8>) {
        self.memory.insert(key, (address, data));
    }

    /// Send a capsule and carry out the work it causes, as an RDMA NIC would.
    fn send(&mut self, sqe: &Sqe, data: &[u8]) {
        let mut capsule = sqe.as_bytes().to_vec();
        capsule.extend_from_slice(data);
        self.queue.capsule(&capsule, &mut self.pool).unwrap();
        self.run();
    }

    fn run(&mut self) {
        while let Some(w) = self.queue.next_work() {
            match w {
                Work::Fetch { cid, remote, len } => {
                    let fail = self.fail_fetch.contains(&cid);
                    let (base, mem) = &self.memory[&remote.key];
                    let at = (remote.address - base) as usize;
                    let buf = self.queue.fetch_buf(cid).expect("fetch buffer");
                    assert_eq!(buf.len(), len as usize);
                    buf.as_mut_slice()
                        .copy_from_slice(&mem[at..at + len as usize]);
                    self.queue.fetched(cid, !fail, &mut self.pool);
                }
                Work::Respond(a) => {
                    if let Some((remote, data)) = a.write {
                        let (base, mem) = self.memory.get_mut(&remote.key).expect("known key");
                        let at = (remote.address - *base) as usize;
                        let bytes = data.to_vec();
                        mem[at..at + bytes.len()].copy_from_slice(&bytes);
                        if let Payload::Buf(b) = data {
                            self.pool.give(b);
                        }
                    }
                    if let Some(b) = a.spare {
                        self.pool.give(b);
                    }
                    self.completions.push((a.cqe, a.invalidate));
                }
            }
        }
    }

    fn last(&mut self) -> (Cqe, Option<u32>) {
        self.completions.pop().expect("a completion")
    }

    fn connect(&mut self, qid: u16) -> Cqe {
        let mut sqe = Sqe {
            opcode: nvme_spec::sqe::FABRICS_OPCODE,
            flags: 0x40,
            ..Default::default()
        };
        sqe.cid.set(0x100);
        sqe.nsid.set(1); // FCTYPE Connect
        sqe.cdw10.set(u32::from(qid) << 16);
        sqe.cdw11.set(31);
        sqe.dptr = Sgl::InCapsule {
            offset: 0,
            length: 1024,
        }
        .encode();
        self.send(&sqe, &[0; 1024]);
        self.last().0
    }
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
    sqe.cdw12.set(blocks - 1);
    sqe.dptr = sgl.encode();
    sqe
}

fn keyed(address: u64, length: usize, key: u32, subtype: u8) -> Sgl {
    Sgl::Keyed {
        address,
        length: length as u32,
        key,
        subtype,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[test]
fn writes_by_rdma_read_and_reads_by_rdma_write_round_trip() {
    let (mut h, disconnects) = Host::new();
    assert_eq!(h.connect(1).status(), Status::SUCCESS);
    // 128 KiB written from host memory fetched with RDMA READ, invalidating its key.
    let data = pattern(128 << 10, 3);
    h.register(7, 0x10_0000, data.clone());
    h.send(
        &io_sqe(
            0x01,
            1,
            8,
            256,
            keyed(0x10_0000, 128 << 10, 7, SUBTYPE_INVALIDATE_KEY),
        ),
        &[],
    );
    let (cqe, inv) = h.last();
    assert_eq!(
        (cqe.cid(), cqe.status(), inv),
        (1, Status::SUCCESS, Some(7))
    );
    // Read it back into other host memory with RDMA WRITE; no invalidation asked.
    h.register(9, 0x40_0000, vec![0; 128 << 10]);
    h.send(
        &io_sqe(
            0x02,
            2,
            8,
            256,
            keyed(0x40_0000, 128 << 10, 9, SUBTYPE_ADDRESS),
        ),
        &[],
    );
    let (cqe, inv) = h.last();
    assert_eq!((cqe.cid(), cqe.status(), inv), (2, Status::SUCCESS, None));
    assert_eq!(h.memory[&9].1, data, "the data read back");
    // In-capsule write, then read back 4 KiB of it at an offset in the host's buffer.
    let small = pattern(4096, 99);
    let icd = Sgl::InCapsule {
        offset: 0,
        length: 4096,
    };
    h.send(&io_sqe(0x01, 3, 0, 8, icd), &small);
    assert_eq!(h.last().0.status(), Status::SUCCESS);
    h.send(
        &io_sqe(
            0x02,
            4,
            0,
            8,
            keyed(0x40_1000, 4096, 9, SUBTYPE_INVALIDATE_KEY),
        ),
        &[],
    );
    let (cqe, inv) = h.last();
    assert_eq!(
        (cqe.cid(), cqe.status(), inv),
        (4, Status::SUCCESS, Some(9))
    );
    assert_eq!(&h.memory[&9].1[0x1000..0x2000], &small[..]);
    h.queue.close();
    assert_eq!(disconnects.load(Ordering::SeqCst), 1);
}

#[test]
fn bad_capsules_and_keyed_sgls_get_the_specs_status() {
    let (mut h, _) = Host::new();
    // A capsule shorter than an SQE cannot be answered: the queue pair must go.
    assert_eq!(
        h.queue.capsule(&[0; 63], &mut h.pool),
        Err(queue::FatalCapsule { len: 63 })
    );
    // NVMe-oF 1.1 §3.3: Connect first.
    h.register(1, 0x1000, vec![0; 4096]);
    h.send(&io_sqe(0x02, 5, 0, 8, keyed(0x1000, 4096, 1, 0)), &[]);
    assert_eq!(
        h.last().0.status(),
        Status::COMMAND_SEQUENCE_ERROR.with_dnr()
    );
    assert_eq!(h.connect(1).status(), Status::SUCCESS);
    // A keyed sub type NVMe/RDMA does not define, a transport SGL (NVMe/TCP's), data longer
    // than the transport moves: refused without touching host memory, and the key the
    // host asked to invalidate is invalidated all the same.
    h.send(&io_sqe(0x02, 6, 0, 8, keyed(0x1000, 4096, 1, 0x3)), &[]);
    let (cqe, inv) = h.last();
    assert_eq!(
        (cqe.cid(), cqe.status(), inv),
        (6, Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr(), None)
    );
    let transport = Sgl::Transport {
        length: 4096,
        subtype: 0xa,
    };
    h.send(&io_sqe(0x02, 7, 0, 8, transport), &[]);
    assert_eq!(
        h.last().0.status(),
        Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr()
    );
    h.send(
        &io_sqe(
            0x01,
            8,
            0,
            8,
            keyed(0x1000, 2 << 20, 1, SUBTYPE_INVALIDATE_KEY),
        ),
        &[],
    );
    let (cqe, inv) = h.last();
    assert_eq!(
        (cqe.status(), inv),
        (Status::DATA_SGL_LENGTH_INVALID.with_dnr(), Some(1))
    );
    // In-capsule data together with a keyed SGL is a length error; in-capsule data above
    // the queue's limit too.
    h.send(&io_sqe(0x01, 9, 0, 8, keyed(0x1000, 4096, 1, 0)), &[0; 512]);
    assert_eq!(
        h.last().0.status(),
        Status::DATA_SGL_LENGTH_INVALID.with_dnr()
    );
    let big = Sgl::InCapsule {
        offset: 0,
        length: 16384,
    };
    h.send(&io_sqe(0x01, 10, 0, 32, big), &vec![0; 16384]);
    assert_eq!(
        h.last().0.status(),
        Status::DATA_SGL_LENGTH_INVALID.with_dnr()
    );
    // An RDMA READ that failed fails its command with a transient transport error.
    h.fail_fetch.push(11);
    h.send(
        &io_sqe(
            0x01,
            11,
            0,
            8,
            keyed(0x1000, 4096, 1, SUBTYPE_INVALIDATE_KEY),
        ),
        &[],
    );
    let (cqe, inv) = h.last();
    assert_eq!(
        (cqe.status(), inv),
        (Status::TRANSIENT_TRANSPORT_ERROR, Some(1))
    );
    // A CID in use is a conflict: hold command 12 in its fetch.
    let sqe = io_sqe(0x01, 12, 0, 8, keyed(0x1000, 4096, 1, 0));
    let mut capsule = sqe.as_bytes().to_vec();
    h.queue.capsule(&capsule, &mut h.pool).unwrap();
    let Some(Work::Fetch { cid: 12, .. }) = h.queue.next_work() else {
        panic!("a fetch for command 12")
    };
    capsule[0] = 0x02;
    h.queue.capsule(&capsule, &mut h.pool).unwrap();
    h.run();
    assert_eq!(h.last().0.status(), Status::CID_CONFLICT.with_dnr());
    h.queue.fetched(12, true, &mut h.pool);
    h.run();
    let (cqe, _) = h.last();
    assert_eq!((cqe.cid(), cqe.status()), (12, Status::SUCCESS));
    assert!(h.pool.pooled() > 0, "buffers went back to the pool");
}

#[test]
fn responses_carry_sqhd_and_the_queue_id() {
    let (mut h, _) = Host::new();
    let c = h.connect(2);
    assert_eq!((c.sqid.get(), c.sqhd.get(), c.dw0.get()), (2, 1, 1));
    h.register(1, 0, vec![0; 512]);
    for cid in 0..40u16 {
        h.send(&io_sqe(0x02, cid, 0, 1, keyed(0, 512, 1, 0)), &[]);
        let (cqe, _) = h.last();
        assert_eq!(cqe.sqhd.get(), (cid + 2) % 32, "SQHD of a 32-entry queue");
        assert_eq!(cqe.sqid.get(), 2);
    }
}
