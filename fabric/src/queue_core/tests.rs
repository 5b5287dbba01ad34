//! Tests of the transport-neutral queue core: the rules every transport shares, driven
//! without any transport, and the SGL rules of each transport.

use super::*;
use crate::buf_pool::BufPool;
use crate::queue::{Connected, TransportKind};
use nvme_spec::sgl::{SUBTYPE_ADDRESS, SUBTYPE_INVALIDATE_KEY, SUBTYPE_TRANSPORT_A};
use nvme_spec::Sgl;
use std::sync::atomic::{AtomicU32, Ordering};

/// A queue whose Read (02h) answers with `len` bytes of 0xab, Flush (00h) later through a
/// future, Write (01h) at once, and which counts its disconnects.
struct Queue {
    disconnects: Arc<AtomicU32>,
}

impl QueueHandler for Queue {
    fn submit(&mut self, req: Request) -> Completion {
        match req.sqe.opcode {
            0x01 => Completion::Ready(Response::success().with_dw0(req.host_data().len() as u32)),
            0x02 => {
                let mut buf = req.c2h_buf.expect("a read gets a pooled buffer");
                buf.as_mut_slice().fill(0xab);
                Completion::Ready(Response::success().with_buf(buf))
            }
            0x00 => Completion::Pending(Box::pin(async { Response::success() })),
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

struct OneTarget {
    disconnects: Arc<AtomicU32>,
}

impl Target for OneTarget {
    fn connect(&self, _: &ConnectionInfo, sqe: &Sqe, _: &[u8]) -> Result<Connected, Response> {
        let qid = (sqe.cdw10.get() >> 16) as u16;
        if qid > 4 {
            return Err(Response::status(Status::INVALID_FIELD.with_dnr()));
        }
        Ok(Connected {
            handler: Box::new(Queue {
                disconnects: self.disconnects.clone(),
            }),
            response: Response::success().with_dw0(7),
            qid,
            sqsize: (sqe.cdw11.get() & 0xffff) + 1,
            sq_flow_control_disabled: sqe.cdw11.get() >> 16 & 0x4 != 0,
        })
    }
}

fn info(transport: TransportKind) -> ConnectionInfo {
    ConnectionInfo {
        transport,
        local: "127.0.0.1:4420".parse().unwrap(),
        peer: "127.0.0.1:50000".parse().unwrap(),
        secure: None,
    }
}

fn core() -> (QueueCore<u32>, Arc<AtomicU32>) {
    let disconnects = Arc::new(AtomicU32::new(0));
    let target = Arc::new(OneTarget {
        disconnects: disconnects.clone(),
    });
    (
        QueueCore::new(target, info(TransportKind::Rdma)),
        disconnects,
    )
}

fn connect_sqe(cid: u16, qid: u16, sqsize: u32) -> Sqe {
    let mut sqe = Sqe {
        opcode: nvme_spec::sqe::FABRICS_OPCODE,
        flags: 0x40,
        ..Default::default()
    };
    sqe.cid.set(cid);
    sqe.nsid.set(u32::from(FCTYPE_CONNECT));
    sqe.cdw10.set(u32::from(qid) << 16);
    sqe.cdw11.set(sqsize - 1);
    sqe
}

fn io_sqe(opcode: u8, cid: u16, sgl: Sgl) -> Sqe {
    let mut sqe = Sqe {
        opcode,
        flags: 0x40,
        ..Default::default()
    };
    sqe.cid.set(cid);
    sqe.nsid.set(1);
    sqe.dptr = sgl.encode();
    sqe
}

fn keyed(length: u32, subtype: u8) -> Sgl {
    Sgl::Keyed {
        address: 0x7f00_0000_1000,
        length,
        key: 0x1234,
        subtype,
    }
}

/// Admit and dispatch a command with no host data.
fn run(core: &mut QueueCore<u32>, pool: &mut BufPool, sqe: Sqe, c2h: u32) -> Option<Reply> {
    if let Err(status) = core.admit(&sqe) {
        return Some(core.status_reply(&sqe, status));
    }
    core.dispatch(sqe, HostData::None, c2h, pool)
}

#[test]
fn connect_comes_first_and_only_once() {
    let (mut core, _) = core();
    let mut pool = BufPool::default();
    // NVMe-oF 1.1 §3.3: anything before Connect is a Command Sequence Error.
    let r = run(&mut core, &mut pool, io_sqe(0x02, 1, keyed(512, 0)), 512).unwrap();
    assert_eq!(r.cqe.status(), Status::COMMAND_SEQUENCE_ERROR.with_dnr());
    // A refused Connect leaves the queue unconnected, reporting the QID it named.
    let r = run(&mut core, &mut pool, connect_sqe(2, 9, 32), 0).unwrap();
    assert_eq!(r.cqe.status(), Status::INVALID_FIELD.with_dnr());
    assert_eq!((r.cqe.sqid.get(), core.qid()), (9, None));
    let r = run(&mut core, &mut pool, connect_sqe(3, 2, 32), 0).unwrap();
    assert_eq!((r.cqe.status(), r.cqe.dw0.get()), (Status::SUCCESS, 7));
    assert_eq!((r.cqe.sqid.get(), r.cqe.sqhd.get()), (2, 1));
    assert_eq!(
        (core.qid(), core.sqsize(), core.is_io()),
        (Some(2), Some(32), true)
    );
    // A second Connect on the same queue is out of sequence too.
    let r = run(&mut core, &mut pool, connect_sqe(4, 2, 32), 0).unwrap();
    assert_eq!(r.cqe.status(), Status::COMMAND_SEQUENCE_ERROR.with_dnr());
    assert_eq!(core.commands_received(), 4);
    // NVMe-oF 1.1 §2.2: PSDT other than 01b (PRPs, or SGL with a segment metadata pointer).
    for flags in [0x00, 0x80, 0xc0] {
        let mut sqe = io_sqe(0x02, 9, keyed(512, 0));
        sqe.flags = flags;
        let r = run(&mut core, &mut pool, sqe, 512).unwrap();
        assert_eq!(
            r.cqe.status(),
            Status::INVALID_FIELD.with_dnr(),
            "flags {flags:#x}"
        );
    }
}

#[test]
fn sqhd_counts_entries_modulo_the_queue_size_unless_flow_control_is_off() {
    let (mut core, _) = core();
    let mut pool = BufPool::default();
    run(&mut core, &mut pool, connect_sqe(1, 1, 3), 0).unwrap();
    let heads: Vec<u16> = (0..5)
        .map(|i| {
            let r = run(&mut core, &mut pool, io_sqe(0x01, 10 + i, keyed(0, 0)), 0).unwrap();
            r.cqe.sqhd.get()
        })
        .collect();
    // Connect was entry 0; entries 1..=5 leave the head at 2, 0, 1, 2, 0.
    assert_eq!(heads, vec![2, 0, 1, 2, 0]);

    let (mut core, _) = self::core();
    let mut sqe = connect_sqe(1, 1, 3);
    sqe.cdw11.set(sqe.cdw11.get() | 0x4 << 16);
    run(&mut core, &mut pool, sqe, 0).unwrap();
    assert!(core.flow_control_disabled());
    let r = run(&mut core, &mut pool, io_sqe(0x01, 5, keyed(0, 0)), 0).unwrap();
    assert_eq!(r.cqe.sqhd.get(), 0);
}

#[test]
fn a_cid_in_use_is_a_conflict_and_a_stale_completion_is_dropped() {
    let (mut core, _) = core();
    let mut pool = BufPool::default();
    run(&mut core, &mut pool, connect_sqe(1, 1, 32), 0).unwrap();
    // A Flush completes later: its CID is outstanding meanwhile.
    assert!(run(&mut core, &mut pool, io_sqe(0x00, 9, keyed(0, 0)), 0).is_none());
    let Some(Event::Pending { cid, tag, .. }) = core.pop_event() else {
        panic!("the flush is pending")
    };
    assert_eq!(cid, 9);
    let r = run(&mut core, &mut pool, io_sqe(0x01, 9, keyed(0, 0)), 0).unwrap();
    assert_eq!(r.cqe.status(), Status::CID_CONFLICT.with_dnr());
    // A completion with another tag belongs to no outstanding command.
    assert!(core.complete(9, tag + 1, Response::success()).is_none());
    let r = core.complete(9, tag, Response::success()).unwrap();
    assert_eq!((r.cqe.cid(), r.cqe.status()), (9, Status::SUCCESS));
    // Delivered once: the CID is free again.
    assert!(core.complete(9, tag, Response::success()).is_none());
    assert!(run(&mut core, &mut pool, io_sqe(0x01, 9, keyed(0, 0)), 0).is_some());
}

#[test]
fn receiving_commands_hold_their_cid_and_their_transport_state() {
    let (mut core, _) = core();
    let mut pool = BufPool::default();
    run(&mut core, &mut pool, connect_sqe(1, 1, 32), 0).unwrap();
    let sqe = io_sqe(0x01, 4, keyed(4096, 0));
    core.admit(&sqe).unwrap();
    core.start_receiving(sqe, 17);
    *core.receiving_mut(4).unwrap() += 1;
    assert_eq!(core.receiving(4), Some(&18));
    assert!(core.admit(&io_sqe(0x02, 4, keyed(512, 0))).is_err());
    let (sqe, x) = core.finish_receiving(4).unwrap();
    assert_eq!(x, 18);
    assert!(core.finish_receiving(4).is_none());
    let data = HostData::Bytes(Bytes::from(vec![1u8; 4096]));
    let r = core.dispatch(sqe, data, 0, &mut pool).unwrap();
    assert_eq!((r.cqe.status(), r.cqe.dw0.get()), (Status::SUCCESS, 4096));
}

#[test]
fn reads_get_a_pooled_buffer_and_replies_keep_the_host_buffer_size() {
    let (mut core, disconnects) = core();
    let mut pool = BufPool::default();
    run(&mut core, &mut pool, connect_sqe(1, 1, 32), 0).unwrap();
    let sqe = io_sqe(0x02, 3, keyed(8192, SUBTYPE_INVALIDATE_KEY));
    let r = run(&mut core, &mut pool, sqe, 8192).unwrap();
    assert_eq!(r.c2h_len, 8192);
    assert_eq!(r.data.unwrap().to_vec(), vec![0xab; 8192]);
    assert_eq!(Sgl::parse(&r.sqe.dptr), keyed(8192, SUBTYPE_INVALIDATE_KEY));
    core.close();
    core.close();
    assert_eq!(disconnects.load(Ordering::SeqCst), 1, "told once");
    assert!(!core.has_queued());
}

fn rules(transport: TransportKind) -> DataRules {
    DataRules {
        transport,
        admin_in_capsule: 8192,
        io_in_capsule: 4096,
        max_transfer: 1 << 20,
    }
}

#[test]
fn rdma_carries_keyed_sgls_and_tcp_transport_sgls() {
    let rdma = rules(TransportKind::Rdma);
    let tcp = rules(TransportKind::Tcp);
    let remote = |invalidate| RemoteBuf {
        address: 0x7f00_0000_1000,
        key: 0x1234,
        invalidate,
    };
    // NVMe/RDMA 1.0 §3.3: Keyed SGL Data Block, sub type Address or Invalidate Key.
    assert_eq!(
        rdma.plan(&io_sqe(0x02, 1, keyed(4096, SUBTYPE_ADDRESS)), 1, 0, true),
        Ok(DataPlan::ToHost {
            len: 4096,
            remote: Some(remote(false))
        })
    );
    assert_eq!(
        rdma.plan(
            &io_sqe(0x01, 1, keyed(4096, SUBTYPE_INVALIDATE_KEY)),
            1,
            0,
            true
        ),
        Ok(DataPlan::FromHost {
            len: 4096,
            remote: Some(remote(true))
        })
    );
    // Another keyed sub type, or a keyed SGL on TCP, or a transport SGL on RDMA.
    let bad_type = Err(Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr());
    assert_eq!(
        rdma.plan(&io_sqe(0x02, 1, keyed(4096, 0x3)), 1, 0, true),
        bad_type
    );
    assert_eq!(
        tcp.plan(&io_sqe(0x02, 1, keyed(4096, 0)), 1, 0, true),
        bad_type
    );
    let transport = Sgl::Transport {
        length: 4096,
        subtype: SUBTYPE_TRANSPORT_A,
    };
    assert_eq!(rdma.plan(&io_sqe(0x02, 1, transport), 1, 0, true), bad_type);
    assert_eq!(
        tcp.plan(&io_sqe(0x02, 1, transport), 1, 0, true),
        Ok(DataPlan::ToHost {
            len: 4096,
            remote: None
        })
    );
    // Longer than the transport moves for one command, or with data in the capsule too.
    let bad_len = Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
    assert_eq!(
        rdma.plan(&io_sqe(0x01, 1, keyed(2 << 20, 0)), 1, 0, true),
        bad_len
    );
    assert_eq!(
        rdma.plan(&io_sqe(0x01, 1, keyed(4096, 0)), 1, 512, true),
        bad_len
    );
    // A keyed SGL of no bytes moves nothing.
    assert_eq!(
        rdma.plan(&io_sqe(0x01, 1, keyed(0, 0)), 1, 0, true),
        Ok(DataPlan::None)
    );
}

#[test]
fn in_capsule_data_rules_are_the_same_on_every_transport() {
    for transport in [TransportKind::Tcp, TransportKind::Rdma] {
        let r = rules(transport);
        let icd = |offset, length| Sgl::InCapsule { offset, length };
        let w = |sgl| io_sqe(0x01, 1, sgl);
        assert_eq!(
            r.plan(&w(icd(0, 4096)), 1, 4096, true),
            Ok(DataPlan::InCapsule)
        );
        assert_eq!(r.plan(&w(icd(0, 0)), 1, 0, true), Ok(DataPlan::None));
        assert_eq!(
            r.plan(&w(icd(16, 512)), 1, 512, true),
            Err(Status::SGL_OFFSET_INVALID.with_dnr())
        );
        let bad_len = Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
        // Above the I/O queue's limit, though within the admin queue's.
        assert_eq!(r.plan(&w(icd(0, 8192)), 1, 8192, true), bad_len);
        assert_eq!(
            r.plan(&w(icd(0, 8192)), 0, 8192, true),
            Ok(DataPlan::InCapsule)
        );
        // The SGL and the capsule disagree.
        assert_eq!(r.plan(&w(icd(0, 512)), 1, 1024, true), bad_len);
        assert_eq!(
            r.plan(&w(icd(0, 512)), 1, 512, false),
            Err(Status::TRANSIENT_TRANSPORT_ERROR)
        );
        // Read data never travels in the capsule; no-data commands carry none.
        assert_eq!(
            r.plan(&io_sqe(0x02, 1, icd(0, 512)), 1, 0, true),
            Err(Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr())
        );
        assert_eq!(r.plan(&io_sqe(0x00, 1, icd(0, 0)), 1, 16, true), bad_len);
        assert_eq!(
            r.plan(&io_sqe(0x03, 1, icd(0, 0)), 1, 0, true),
            Err(Status::INVALID_FIELD.with_dnr()),
            "bidirectional"
        );
    }
}
