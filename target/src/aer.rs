//! Asynchronous Event Requests (NVMe Base 2.0 §5.2): outstanding requests, queued events, and
//! the rule that an event type stays masked until the host reads its log page.

use std::collections::{BTreeSet, VecDeque};

use fabric::queue::Response;
use nvme::features::AsyncEvent;
use tokio::sync::oneshot;

/// Result of submitting an AER.
pub enum AerSubmit {
    /// An event was already waiting: complete now.
    Now(Response),
    /// Parked: the receiver resolves when an event arrives.
    Parked(oneshot::Receiver<Response>),
    /// More than AERL+1 outstanding (NVMe Base 2.0 §5.2).
    LimitExceeded,
}

pub struct AerState {
    limit: usize,
    /// Parked requests, oldest first, with their CIDs.
    outstanding: VecDeque<(u16, oneshot::Sender<Response>)>,
    queued: VecDeque<AsyncEvent>,
    /// Log pages whose event was reported and not yet read with RAE cleared.
    awaiting_read: BTreeSet<u8>,
}

impl AerState {
    /// `aerl` is the 0's based Identify Controller AERL.
    pub fn new(aerl: u8) -> AerState {
        AerState {
            limit: usize::from(aerl) + 1,
            outstanding: VecDeque::new(),
            queued: VecDeque::new(),
            awaiting_read: BTreeSet::new(),
        }
    }

    /// Submit the AER with command identifier `cid`.
    pub fn submit(&mut self, cid: u16) -> AerSubmit {
        self.outstanding.retain(|(_, tx)| !tx.is_closed());
        if let Some(ev) = self.queued.pop_front() {
            return AerSubmit::Now(Response::success().with_dw0(ev.to_dw0()));
        }
        if self.outstanding.len() >= self.limit {
            return AerSubmit::LimitExceeded;
        }
        let (tx, rx) = oneshot::channel();
        self.outstanding.push_back((cid, tx));
        AerSubmit::Parked(rx)
    }

    /// The host abandoned the parked AER `cid` (it reused the CID): forget it, so it no longer
    /// counts against the limit and no event is spent on it. Dropping the sender resolves the
    /// request's receiver with an error; the transport never sends that completion.
    pub fn abandon(&mut self, cid: u16) -> bool {
        let before = self.outstanding.len();
        self.outstanding.retain(|(c, _)| *c != cid);
        self.outstanding.len() != before
    }

    /// Raise an event. It is dropped while an earlier event for the same log page awaits
    /// a read; otherwise it completes an outstanding AER or waits for the next one.
    pub fn raise(&mut self, ev: AsyncEvent) {
        if !self.awaiting_read.insert(ev.log_page) {
            return;
        }
        let mut ev = Some(ev);
        while let Some((_, tx)) = self.outstanding.pop_front() {
            let Some(e) = ev.take() else { break };
            match tx.send(Response::success().with_dw0(e.to_dw0())) {
                Ok(()) => return,
                Err(_) => ev = Some(e),
            }
        }
        if let Some(e) = ev {
            self.queued.push_back(e);
        }
    }

    /// The host read `log_page` with Retain Asynchronous Event cleared: unmask its event.
    pub fn log_read(&mut self, log_page: u8) {
        self.awaiting_read.remove(&log_page);
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding
            .iter()
            .filter(|(_, tx)| !tx.is_closed())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_request_completes_and_event_masks_until_read() {
        let mut s = AerState::new(3);
        let AerSubmit::Parked(mut rx) = s.submit(0) else {
            panic!("expected a parked AER")
        };
        s.raise(AsyncEvent::namespace_attribute_changed());
        assert_eq!(rx.try_recv().unwrap().dw0, 0x0004_0002);
        // Second event of the same log page is masked until the log is read.
        let AerSubmit::Parked(mut rx2) = s.submit(1) else {
            panic!("expected a parked AER")
        };
        s.raise(AsyncEvent::namespace_attribute_changed());
        assert!(rx2.try_recv().is_err());
        s.log_read(0x04);
        s.raise(AsyncEvent::namespace_attribute_changed());
        assert_eq!(rx2.try_recv().unwrap().dw0, 0x0004_0002);
    }

    #[test]
    fn queued_event_completes_next_request_and_limit_holds() {
        let mut s = AerState::new(1);
        s.raise(AsyncEvent::discovery_log_change());
        match s.submit(0) {
            AerSubmit::Now(r) => assert_eq!(r.dw0, 0x0070_f002),
            _ => panic!("expected an immediate completion"),
        }
        let _a = s.submit(1);
        let _b = s.submit(2);
        assert!(matches!(s.submit(3), AerSubmit::LimitExceeded));
        assert_eq!(s.outstanding(), 2);
    }

    #[test]
    fn abandoned_request_frees_its_slot_and_gets_no_event() {
        let mut s = AerState::new(1);
        let AerSubmit::Parked(mut first) = s.submit(3) else {
            panic!("expected a parked AER")
        };
        let AerSubmit::Parked(mut second) = s.submit(4) else {
            panic!("expected a parked AER")
        };
        assert!(matches!(s.submit(5), AerSubmit::LimitExceeded));
        assert!(s.abandon(3));
        assert!(!s.abandon(3), "only once");
        assert_eq!(s.outstanding(), 1);
        // The abandoned request's receiver resolves (sender gone) and sees no event.
        assert!(matches!(
            first.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        s.raise(AsyncEvent::namespace_attribute_changed());
        assert_eq!(second.try_recv().unwrap().dw0, 0x0004_0002);
        // Its slot is free: a new request parks again instead of exceeding the limit.
        assert!(matches!(s.submit(3), AerSubmit::Parked(_)));
    }
}
