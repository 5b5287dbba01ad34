//! A sans-IO NVMe/TCP controller connection fed a valid ICReq and then arbitrary bytes in
//! arbitrary chunks, with a trivial in-memory target behind it. It must never panic, and
//! everything it sends must be well-formed PDUs a host can frame.
//!
//! Writes whose CDW13 bit 1 is set get memory lent for their data (as a drive's DMA memory
//! would be), so H2CData is steered into it as it arrives.
//!
//! Input layout: byte 0 = ICReq DGST bits and HPDA (bits 1:0 DGST, bits 6:2 HPDA),
//! byte 1 = chunking seed, byte 2 = MAXR2T, the rest = the byte stream after ICReq.
#![no_main]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use std::sync::Mutex;

use fabric::queue::{
    Completion, Connected, ConnectionInfo, Lent, LentHome, QueueHandler, Request, Response, Target,
    TransportKind,
};
use fabric::tcp::framer::{Framer, Role};
use fabric::tcp::pdu::{EncodeOptions, IcReq, Pdu, PduHeader};
use fabric::tcp::target_conn::{Event, TargetConnection, TcpTargetConfig};
use libfuzzer_sys::fuzz_target;
use nvme::{Sqe, Status};
use tokio_util::sync::CancellationToken;

struct FuzzTarget;

impl Target for FuzzTarget {
    fn connect(&self, _: &ConnectionInfo, sqe: &Sqe, data: &[u8]) -> Result<Connected, Response> {
        // Refuse some Connects so both paths run.
        if data.first() == Some(&0xff) {
            return Err(Response::status(Status::INVALID_FIELD.with_dnr()));
        }
        let cdw11 = sqe.cdw11.get();
        Ok(Connected {
            handler: Box::new(FuzzQueue(CancellationToken::new(), Arc::default())),
            response: Response::success().with_dw0(1),
            qid: (sqe.cdw10.get() >> 16) as u16,
            sqsize: (cdw11 & 0xffff) + 1,
            sq_flow_control_disabled: (cdw11 >> 16) & 4 != 0,
        })
    }
}

struct FuzzQueue(CancellationToken, Arc<FuzzLender>);

/// Memory lent for writes' data: one heap region per lend, freed when given back.
#[derive(Default)]
struct FuzzLender(Mutex<Vec<Option<Vec<u8>>>>);

impl FuzzLender {
    fn lend(self: &Arc<Self>, len: usize) -> Option<Lent> {
        let mut regions = self.0.lock().ok()?;
        let mut region = vec![0u8; len];
        let addr = region.as_mut_ptr() as usize;
        regions.push(Some(region));
        let home: Arc<dyn LentHome> = self.clone();
        Some(Lent::new(addr, len, regions.len() as u64 - 1, home))
    }
}

impl LentHome for FuzzLender {
    fn release(&self, tag: u64) {
        if let Ok(mut regions) = self.0.lock() {
            if let Some(r) = regions.get_mut(tag as usize) {
                *r = None;
            }
        }
    }
}

impl QueueHandler for FuzzQueue {
    fn submit(&mut self, req: Request) -> Completion {
        // Reads fill the transport's buffer, or (CDW13 bit 0, or no buffer) return one sized
        // from CDW12 (possibly more or less than the SGL asks for);
        // opcode 00h completes later; odd opcodes fail.
        let len = ((req.sqe.cdw12.get() & 0xff) as usize + 1) * 512;
        match req.sqe.opcode {
            0x00 => Completion::Pending(Box::pin(async { Response::success() })),
            // Pooled transport buffer (the reactor's zero-allocation path) when there is one.
            0x02 => Completion::Ready(match req.c2h_buf {
                Some(mut b) if req.sqe.cdw13.get() & 1 == 0 => {
                    b.as_mut_slice().fill(0xa5);
                    Response::success().with_buf(b)
                }
                spare => Response::success()
                    .with_data(Bytes::from(vec![0xa5; len]))
                    .returning(spare),
            }),
            _ if req.h2c_lent.is_some() => {
                let got = req.h2c_lent.as_ref().map_or(0, |l| l.to_vec().len());
                Completion::Ready(Response::success().with_dw0(got as u32))
            }
            op if op & 1 == 1 && req.data.is_none() && req.h2c_buf.is_none() => {
                Completion::Ready(Response::status(Status::INVALID_FIELD))
            }
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

    fn lend_h2c(&mut self, sqe: &Sqe, len: u32) -> Option<Lent> {
        let wanted = sqe.opcode == 0x01 && sqe.cdw13.get() & 2 != 0 && len <= 1 << 20;
        if wanted {
            self.1.lend(len as usize)
        } else {
            None
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let (cfg, seed, maxr2t, stream) = match input {
        [a, b, c, rest @ ..] => (*a, *b, *c, rest),
        _ => return,
    };
    let info = ConnectionInfo {
        transport: TransportKind::Tcp,
        local: "127.0.0.1:4420".parse().expect("address"),
        peer: "127.0.0.1:40000".parse().expect("address"),
        secure: None,
    };
    let config = TcpTargetConfig {
        max_h2c_data: 8192,
        max_transfer: 64 * 1024,
        max_c2h_pdu: 4096,
        ..Default::default()
    };
    let now = Instant::now();
    let mut conn = TargetConnection::new(Arc::new(FuzzTarget), info, config, now);
    let icreq = IcReq {
        pfv: 0,
        hpda: (cfg >> 2) & 0x1f,
        dgst: cfg & 0x3,
        maxr2t: u32::from(maxr2t),
    };
    let bytes = Pdu::new(PduHeader::IcReq(icreq))
        .encode(EncodeOptions::default())
        .to_vec();
    conn.receive(&bytes, now);

    // Frame everything the controller sends, as a host would.
    let mut host = Framer::new(Role::Host, 1 << 20);
    let mut first = true;
    let mut drain = |conn: &mut TargetConnection, host: &mut Framer| {
        while let Some(b) = conn.poll_transmit() {
            host.feed(&b);
        }
        while let Some(p) = host.next_pdu().expect("controller output must frame") {
            if first {
                assert!(matches!(p.header, PduHeader::IcResp(_)));
                host.set_digests(icreq.digests());
                host.set_rx_pda(icreq.hpda);
                first = false;
            }
        }
    };
    drain(&mut conn, &mut host);

    let mut chunk = usize::from(seed % 32) + 1;
    let mut rest = stream;
    while !rest.is_empty() {
        let n = chunk.min(rest.len());
        conn.receive(&rest[..n], now);
        rest = &rest[n..];
        chunk = (chunk * 5 + usize::from(seed)) % 67 + 1;
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Pending { cid, tag, response } => {
                    conn.complete(cid, tag, futures::executor::block_on(response));
                }
                Event::Close => {}
            }
        }
        drain(&mut conn, &mut host);
    }
    conn.close();
});
