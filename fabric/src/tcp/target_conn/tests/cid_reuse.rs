//! A host that cancelled its Asynchronous Event Requests on its own side reuses their CIDs
//! (NVMe Base 2.0 §4.2: a CID is unique among outstanding commands; §5.2: AERs). On the
//! admin queue the reuse retires the AER without a completion; every other reuse of an
//! outstanding CID is still a Command ID Conflict.

use super::*;
use crate::initiator::command::{property_get, PropertySize};
use futures::channel::oneshot;
use futures::executor::block_on;

/// What Property Get CC answers.
const CC: u32 = 0x0046_0001;
/// An event (Notice, Namespace Attribute Changed) as completion DW0.
const EVENT: u32 = 0x0004_0002;

/// What the queue handlers saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// Parked opcode-0Ch commands (AERs on the admin queue, Verify on I/O queues), by CID.
    parked: Vec<(u16, oneshot::Sender<Response>)>,
    /// Parked Keep Alives (any other command that completes later).
    held: Vec<oneshot::Sender<Response>>,
    abandoned: Vec<u16>,
}

struct EventTarget {
    seen: Arc<Mutex<Seen>>,
    teardown: CancellationToken,
}

impl Target for EventTarget {
    fn connect(&self, _: &ConnectionInfo, sqe: &Sqe, _: &[u8]) -> Result<Connected, Response> {
        let cdw11 = sqe.cdw11.get();
        Ok(Connected {
            handler: Box::new(EventQueue {
                seen: self.seen.clone(),
                teardown: self.teardown.clone(),
            }),
            response: Response::success(),
            qid: (sqe.cdw10.get() >> 16) as u16,
            sqsize: (cdw11 & 0xffff) + 1,
            sq_flow_control_disabled: false,
        })
    }
}

struct EventQueue {
    seen: Arc<Mutex<Seen>>,
    teardown: CancellationToken,
}

fn later(rx: oneshot::Receiver<Response>) -> Completion {
    Completion::Pending(Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| Response::status(Status::ABORTED_SQ_DELETION))
    }))
}

impl QueueHandler for EventQueue {
    fn submit(&mut self, req: Request) -> Completion {
        let sqe = req.sqe;
        let mut seen = self.seen.lock_counted();
        if sqe.is_fabrics() {
            // Property Get (FCTYPE 04h) of CC.
            return Completion::Ready(Response::success().with_dw0(CC));
        }
        let (tx, rx) = oneshot::channel();
        match sqe.opcode {
            0x0c => seen.parked.push((sqe.cid(), tx)),
            0x18 => seen.held.push(tx),
            _ => return Completion::Ready(Response::status(Status::INVALID_OPCODE.with_dnr())),
        }
        later(rx)
    }

    fn teardown(&self) -> CancellationToken {
        self.teardown.clone()
    }

    fn disconnected(&mut self) {}

    fn abandon_async_event(&mut self, cid: u16) {
        let mut seen = self.seen.lock_counted();
        seen.parked.retain(|(c, _)| *c != cid);
        seen.abandoned.push(cid);
    }
}

fn host(qid: u16) -> (Host, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let target = Arc::new(EventTarget {
        seen: seen.clone(),
        teardown: CancellationToken::new(),
    });
    let mut h = Host::new(target, TcpTargetConfig::default());
    h.handshake(0, 0, 0);
    assert_eq!(h.connect(qid, 32, 0).status(), Status::SUCCESS);
    (h, seen)
}

fn capsule(opcode: u8, cid: u16) -> Pdu {
    let mut sqe = Sqe {
        opcode,
        flags: 0x40,
        ..Default::default()
    };
    sqe.cid.set(cid);
    sqe.dptr = transport(0).encode();
    Pdu::new(PduHeader::CapsuleCmd(sqe))
}

fn property_get_cc(cid: u16) -> Pdu {
    let mut sqe = property_get(0x14, PropertySize::Four);
    sqe.cid.set(cid);
    sqe.flags = 0x40;
    sqe.dptr = transport(0).encode();
    Pdu::new(PduHeader::CapsuleCmd(sqe))
}

/// The one command the connection announced as pending.
fn pending(h: &mut Host) -> (u16, u64, ResponseFuture) {
    match h.conn.poll_event() {
        Some(Event::Pending { cid, tag, response }) => {
            assert!(h.conn.poll_event().is_none());
            (cid, tag, response)
        }
        other => panic!("expected one pending command, got {other:?}"),
    }
}

/// Complete the oldest parked opcode-0Ch command with `dw0`.
fn raise(seen: &Mutex<Seen>, dw0: u32) {
    let (_, tx) = seen.lock_counted().parked.remove(0);
    assert!(tx.send(Response::success().with_dw0(dw0)).is_ok());
}

fn one_cqe(h: &mut Host) -> Cqe {
    let got = h.recv();
    assert_eq!(got.len(), 1, "{got:?}");
    cqe_of(&got[0])
}

#[test]
fn admin_command_reusing_the_cid_of_an_outstanding_aer_retires_it() {
    let (mut h, seen) = host(0);
    h.send(&capsule(0x0c, 3));
    assert!(h.recv().is_empty(), "the AER parks");
    let (cid, old_tag, old) = pending(&mut h);
    assert_eq!(cid, 3);

    // The host dropped the AER locally and reads CC with its CID.
    h.send(&property_get_cc(3));
    let cqe = one_cqe(&mut h);
    assert_eq!(
        (cqe.cid(), cqe.status(), cqe.dw0.get()),
        (3, Status::SUCCESS, CC)
    );
    {
        let s = seen.lock_counted();
        assert_eq!(s.abandoned, vec![3], "the handler frees the AER");
        assert!(s.parked.is_empty());
    }
    assert!(h.conn.poll_event().is_none());

    // The retired AER's future resolves (its sender is gone); nothing is sent for it.
    h.conn.complete(3, old_tag, block_on(old));
    assert!(h.recv().is_empty(), "no completion for the retired AER");

    // CID 3 is outstanding again (a new AER): a late response of the retired one is still
    // never delivered as the new command's completion.
    h.send(&capsule(0x0c, 3));
    assert!(h.recv().is_empty());
    let (cid, tag, new) = pending(&mut h);
    assert_eq!(cid, 3);
    assert_ne!(tag, old_tag);
    h.conn
        .complete(3, old_tag, Response::success().with_dw0(0xdead));
    assert!(h.recv().is_empty(), "stale tag");
    raise(&seen, EVENT);
    h.conn.complete(3, tag, block_on(new));
    let cqe = one_cqe(&mut h);
    assert_eq!(
        (cqe.cid(), cqe.status(), cqe.dw0.get()),
        (3, Status::SUCCESS, EVENT)
    );
    h.conn.complete(3, tag, Response::success());
    assert!(h.recv().is_empty(), "one completion per command");
    assert_eq!(seen.lock_counted().abandoned, vec![3]);
}

#[test]
fn other_cid_reuse_is_still_a_conflict() {
    // Admin queue, the outstanding command is not an AER (a Keep Alive answered later).
    let (mut h, seen) = host(0);
    h.send(&capsule(0x18, 7));
    assert!(h.recv().is_empty());
    let (cid, tag, keep_alive) = pending(&mut h);
    assert_eq!(cid, 7);
    h.send(&property_get_cc(7));
    let cqe = one_cqe(&mut h);
    assert_eq!(
        (cqe.cid(), cqe.status()),
        (7, Status::CID_CONFLICT.with_dnr())
    );
    // The first command is untouched and completes normally.
    let tx = seen.lock_counted().held.remove(0);
    assert!(tx.send(Response::success()).is_ok());
    h.conn.complete(7, tag, block_on(keep_alive));
    let cqe = one_cqe(&mut h);
    assert_eq!((cqe.cid(), cqe.status()), (7, Status::SUCCESS));

    // I/O queue: opcode 0Ch is Verify there, never an AER.
    let (mut h, seen) = host(1);
    h.send(&capsule(0x0c, 3));
    assert!(h.recv().is_empty());
    let (_, tag, verify) = pending(&mut h);
    h.send(&capsule(0x0c, 3));
    let cqe = one_cqe(&mut h);
    assert_eq!(
        (cqe.cid(), cqe.status()),
        (3, Status::CID_CONFLICT.with_dnr())
    );
    assert!(seen.lock_counted().abandoned.is_empty());
    raise(&seen, 0);
    h.conn.complete(3, tag, block_on(verify));
    assert_eq!(one_cqe(&mut h).status(), Status::SUCCESS);
}
