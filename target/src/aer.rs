//! Asynchronous Event Requests (NVMe Base 2.0 §5.2): outstanding requests, queued events, and
//! the rule that an event type stays masked until the host reads its log page.

use std::collections::{BTreeSet, VecDeque};

use fabric::queue::Response;
use tokio::sync::oneshot;

/// An event as the AER completion's DW0 carries it (NVMe Base 2.0 Figure 146).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncEvent {
    pub event_type: u8,
    pub info: u8,
    pub log_page: u8,
}

/// Asynchronous event type "Notice" (NVMe Base 2.0 Figure 146).
pub const EVENT_TYPE_NOTICE: u8 = 0x2;
/// Notice: Namespace Attribute Changed -> Changed Namespace List log (04h).
pub const NOTICE_NAMESPACE_ATTRIBUTE_CHANGED: u8 = 0x00;
/// Notice: Discovery Log Page Change -> Discovery log (70h) (NVMe-oF 1.1 §5.3).
pub const NOTICE_DISCOVERY_LOG_CHANGE: u8 = 0xf0;
pub const LID_CHANGED_NAMESPACES: u8 = 0x04;
pub const LID_DISCOVERY: u8 = 0x70;

impl AsyncEvent {
    pub const NAMESPACE_CHANGED: AsyncEvent = AsyncEvent {
        event_type: EVENT_TYPE_NOTICE,
        info: NOTICE_NAMESPACE_ATTRIBUTE_CHANGED,
        log_page: LID_CHANGED_NAMESPACES,
    };
    pub const DISCOVERY_CHANGED: AsyncEvent = AsyncEvent {
        event_type: EVENT_TYPE_NOTICE,
        info: NOTICE_DISCOVERY_LOG_CHANGE,
        log_page: LID_DISCOVERY,
    };

    pub fn dw0(self) -> u32 {
        u32::from(self.event_type & 0x7)
            | (u32::from(self.info) << 8)
            | (u32::from(self.log_page) << 16)
    }
}

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
    outstanding: VecDeque<oneshot::Sender<Response>>,
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

    pub fn submit(&mut self) -> AerSubmit {
        self.outstanding.retain(|tx| !tx.is_closed());
        if let Some(ev) = self.queued.pop_front() {
            return AerSubmit::Now(Response::success().with_dw0(ev.dw0()));
        }
        if self.outstanding.len() >= self.limit {
            return AerSubmit::LimitExceeded;
        }
        let (tx, rx) = oneshot::channel();
        self.outstanding.push_back(tx);
        AerSubmit::Parked(rx)
    }

    /// Raise an event. It is dropped while an earlier event for the same log page awaits
    /// a read; otherwise it completes an outstanding AER or waits for the next one.
    pub fn raise(&mut self, ev: AsyncEvent) {
        if !self.awaiting_read.insert(ev.log_page) {
            return;
        }
        let mut ev = Some(ev);
        while let Some(tx) = self.outstanding.pop_front() {
            let Some(e) = ev.take() else { break };
            match tx.send(Response::success().with_dw0(e.dw0())) {
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
        self.outstanding.iter().filter(|tx| !tx.is_closed()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dw0_encoding() {
        // Namespace attribute notice: type 2, info 0, log page 04h.
        assert_eq!(AsyncEvent::NAMESPACE_CHANGED.dw0(), 0x0004_0002);
        assert_eq!(AsyncEvent::DISCOVERY_CHANGED.dw0(), 0x0070_f002);
    }

    #[test]
    fn parked_request_completes_and_event_masks_until_read() {
        let mut s = AerState::new(3);
        let AerSubmit::Parked(mut rx) = s.submit() else {
            panic!("expected a parked AER")
        };
        s.raise(AsyncEvent::NAMESPACE_CHANGED);
        assert_eq!(rx.try_recv().unwrap().dw0, 0x0004_0002);
        // Second event of the same log page is masked until the log is read.
        let AerSubmit::Parked(mut rx2) = s.submit() else {
            panic!("expected a parked AER")
        };
        s.raise(AsyncEvent::NAMESPACE_CHANGED);
        assert!(rx2.try_recv().is_err());
        s.log_read(LID_CHANGED_NAMESPACES);
        s.raise(AsyncEvent::NAMESPACE_CHANGED);
        assert_eq!(rx2.try_recv().unwrap().dw0, 0x0004_0002);
    }

    #[test]
    fn queued_event_completes_next_request_and_limit_holds() {
        let mut s = AerState::new(1);
        s.raise(AsyncEvent::DISCOVERY_CHANGED);
        match s.submit() {
            AerSubmit::Now(r) => assert_eq!(r.dw0, 0x0070_f002),
            _ => panic!("expected an immediate completion"),
        }
        let _a = s.submit();
        let _b = s.submit();
        assert!(matches!(s.submit(), AerSubmit::LimitExceeded));
        assert_eq!(s.outstanding(), 2);
    }
}
