//! The NVMe/RDMA side of the transport-neutral queue core: RDMA CM private data, then a
//! sans-IO NVMe/RDMA queue fed arbitrary command capsules, with a trivial in-memory target
//! behind it; the RDMA READs and WRITEs it asks for are carried out against host memory
//! made up on the spot. It must never panic, must answer every command it admits exactly
//! once, and must never write more controller-to-host data than the host's Keyed SGL
//! describes.
//!
//! Input layout: 40 bytes of RDMA_CM_REQUEST private data, then records of
//! [length low, length high, flags] + that many capsule bytes; flags bit 0 fails the RDMA
//! READs of that capsule, bit 1 completes pending commands before the next capsule.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use fabric::buf_pool::BufPool;
use fabric::queue::{
    Completion, Connected, ConnectionInfo, Payload, QueueHandler, Request, Response, Target,
    TransportKind,
};
use fabric::queue_core::Event;
use fabric::rdma::cm::{self, CmLimits, CmRequest};
use fabric::rdma::{RdmaQueue, RdmaTargetConfig, Work, SQE_LEN};
use libfuzzer_sys::fuzz_target;
use nvme::{Sgl, Sqe, Status};
use tokio_util::sync::CancellationToken;

struct FuzzTarget;

impl Target for FuzzTarget {
    fn connect(&self, _: &ConnectionInfo, sqe: &Sqe, data: &[u8]) -> Result<Connected, Response> {
        if data.first() == Some(&0xff) {
            return Err(Response::status(Status::INVALID_FIELD.with_dnr()));
        }
        let cdw11 = sqe.cdw11.get();
        Ok(Connected {
            handler: Box::new(FuzzQueue(CancellationToken::new())),
            response: Response::success().with_dw0(1),
            qid: (sqe.cdw10.get() >> 16) as u16,
            sqsize: (cdw11 & 0xffff) + 1,
            sq_flow_control_disabled: (cdw11 >> 16) & 4 != 0,
        })
    }
}

struct FuzzQueue(CancellationToken);

impl QueueHandler for FuzzQueue {
    fn submit(&mut self, req: Request) -> Completion {
        // Reads fill the transport's buffer, or return bytes sized from CDW12 (more or less
        // than the SGL asks for); opcode 00h completes later.
        let len = ((req.sqe.cdw12.get() & 0xff) as usize + 1) * 512;
        match req.sqe.opcode {
            0x00 => Completion::Pending(Box::pin(async { Response::success() })),
            0x02 => Completion::Ready(match req.c2h_buf {
                Some(mut b) if req.sqe.cdw13.get() & 1 == 0 => {
                    b.as_mut_slice().fill(0xa5);
                    Response::success().with_buf(b)
                }
                spare => Response::success()
                    .with_data(Bytes::from(vec![0xa5; len]))
                    .returning(spare),
            }),
            _ => Completion::Ready(
                Response::success()
                    .with_dw0(req.host_data().len() as u32)
                    .returning(req.h2c_buf),
            ),
        }
    }

    fn teardown(&self) -> CancellationToken {
        self.0.clone()
    }

    fn disconnected(&mut self) {}
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 40 {
        return;
    }
    let (private, mut rest) = input.split_at(40);
    let limits = CmLimits {
        max_admin_entries: 32,
        max_io_entries: 1024,
        max_qid: 64,
    };
    if let Ok(req) = CmRequest::parse(private, &limits) {
        assert_eq!(
            cm::parse_accept(&req.accept()).map(u32::from),
            Some(req.sq_entries)
        );
    }
    let info = ConnectionInfo {
        transport: TransportKind::Rdma,
        local: "10.0.0.1:4420".parse().expect("address"),
        peer: "10.0.0.1:40000".parse().expect("address"),
        secure: None,
    };
    let config = RdmaTargetConfig {
        admin_in_capsule: 8192,
        io_in_capsule: 4096,
        max_transfer: 256 * 1024,
    };
    let mut queue = RdmaQueue::new(Arc::new(FuzzTarget), info, &config);
    let mut pool = BufPool::default();
    // Commands admitted and not answered yet: CID -> the Keyed SGL length.
    let mut outstanding: HashMap<u16, u32> = HashMap::new();
    let mut pending = Vec::new();
    while let [lo, hi, flags, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (capsule, next) = tail.split_at(len);
        rest = next;
        let sqe = (capsule.len() >= SQE_LEN).then(|| {
            let mut raw = [0u8; SQE_LEN];
            raw.copy_from_slice(&capsule[..SQE_LEN]);
            raw
        });
        if queue.capsule(capsule, &mut pool).is_err() {
            assert!(capsule.len() < SQE_LEN);
            continue;
        }
        if let Some(raw) = sqe {
            let cid = u16::from_le_bytes([raw[2], raw[3]]);
            let mut dptr = [0u8; 16];
            dptr.copy_from_slice(&raw[24..40]);
            let host_len = match Sgl::parse(&dptr) {
                Sgl::Keyed { length, .. } => length,
                _ => 0,
            };
            outstanding.entry(cid).or_insert(host_len);
        }
        while let Some(ev) = queue.poll_event() {
            if let Event::Pending { cid, tag, response } = ev {
                pending.push((cid, tag, response));
            }
        }
        if flags & 2 != 0 {
            for (cid, tag, response) in pending.drain(..) {
                let r = futures::executor::block_on(response);
                queue.complete(cid, tag, r, &mut pool);
            }
        }
        while let Some(work) = queue.next_work() {
            match work {
                Work::Fetch { cid, len, .. } => {
                    let buf = queue.fetch_buf(cid).expect("a fetch has its buffer");
                    assert_eq!(buf.len(), len as usize);
                    buf.as_mut_slice().fill(0x5a);
                    queue.fetched(cid, flags & 1 == 0, &mut pool);
                }
                Work::Respond(a) => {
                    let cid = a.cqe.cid();
                    let host_len = outstanding.remove(&cid).unwrap_or(0);
                    if let Some((_, data)) = &a.write {
                        assert!(
                            data.len() as u64 <= u64::from(host_len),
                            "write past the SGL"
                        );
                    }
                    if let Some((_, Payload::Buf(b))) = a.write {
                        pool.give(b);
                    }
                    if let Some(b) = a.spare {
                        pool.give(b);
                    }
                }
            }
        }
    }
    queue.close();
});
