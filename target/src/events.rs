//! The target's event record: the last [`EVENT_CAPACITY`] things an operator wants to know
//! happened — hosts connecting, refused and disconnected, asynchronous events raised to them,
//! changes the engine applied or refused — each with its time. Bounded: the oldest record
//! makes room for the newest, and each text is capped at [`MAX_TEXT`] bytes.
//!
//! Recorded where those things happen (Fabrics Connect and controller removal in
//! `crate::target`, the engine's commit and refusals in `crate::engine`), read by the
//! management plane (`GET /api/v1/events`). Never on the I/O path: a record takes one lock
//! and allocates its texts.

use ferrofab_sync::CountedLock as _;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use nvme::features::AsyncEventConfig;

use crate::controller::Controller;

/// Records kept; older ones are dropped.
pub const EVENT_CAPACITY: usize = 256;
/// Longest message, subsystem or host text kept, in bytes (longer ones are cut at a
/// character boundary and end with "…").
pub const MAX_TEXT: usize = 512;

/// What kind of thing happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// A host's admin queue connected: a controller was created.
    Connected,
    /// A Fabrics Connect was refused (admin or I/O queue).
    ConnectRefused,
    /// A controller was torn down (the host left, keep-alive expiry, revoked, removed).
    Disconnected,
    /// An asynchronous event was raised to controllers that enabled its notice.
    AsyncEvent,
    /// The engine applied a change (REST, SIGHUP reload, boot restore).
    Change,
    /// The engine refused a change; nothing changed.
    ChangeRefused,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Connected,
        Category::ConnectRefused,
        Category::Disconnected,
        Category::AsyncEvent,
        Category::Change,
        Category::ChangeRefused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Category::Connected => "connected",
            Category::ConnectRefused => "connect_refused",
            Category::Disconnected => "disconnected",
            Category::AsyncEvent => "async_event",
            Category::Change => "change",
            Category::ChangeRefused => "change_refused",
        }
    }

    /// How much attention it asks for, unless the record says otherwise.
    pub fn default_severity(self) -> Severity {
        match self {
            Category::ConnectRefused | Category::ChangeRefused => Severity::Warning,
            Category::Connected
            | Category::Disconnected
            | Category::AsyncEvent
            | Category::Change => Severity::Info,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// 1 for the first record of the process, one more for each after (gaps never occur;
    /// a reader that last saw N and finds the oldest kept above N + 1 missed some).
    pub seq: u64,
    /// Milliseconds since the Unix epoch, when it was recorded.
    pub unix_ms: u64,
    pub category: Category,
    pub severity: Severity,
    /// The subsystem NQN it concerns, when one.
    pub subsystem: Option<String>,
    /// The host NQN it concerns, when one.
    pub host: Option<String>,
    /// The controller it concerns, when one.
    pub cntlid: Option<u16>,
    pub message: String,
}

/// A record to make ([`EventLog::record`] numbers and times it).
#[derive(Clone, Debug)]
pub struct NewEvent {
    category: Category,
    severity: Severity,
    subsystem: Option<String>,
    host: Option<String>,
    cntlid: Option<u16>,
    message: String,
}

impl NewEvent {
    pub fn new(category: Category, message: impl Into<String>) -> NewEvent {
        NewEvent {
            category,
            severity: category.default_severity(),
            subsystem: None,
            host: None,
            cntlid: None,
            message: message.into(),
        }
    }

    pub fn severity(mut self, severity: Severity) -> NewEvent {
        self.severity = severity;
        self
    }

    pub fn subsystem(mut self, nqn: impl Into<String>) -> NewEvent {
        self.subsystem = Some(nqn.into());
        self
    }

    /// The host NQN (an empty one, which some hosts send, is recorded as none).
    pub fn host(mut self, nqn: impl Into<String>) -> NewEvent {
        let nqn = nqn.into();
        self.host = (!nqn.is_empty()).then_some(nqn);
        self
    }

    pub fn cntlid(mut self, cntlid: u16) -> NewEvent {
        self.cntlid = Some(cntlid);
        self
    }
}

/// The bounded record.
pub struct EventLog {
    ring: Mutex<Ring>,
    capacity: usize,
}

struct Ring {
    events: VecDeque<Event>,
    next_seq: u64,
}

impl Default for EventLog {
    fn default() -> EventLog {
        EventLog::with_capacity(EVENT_CAPACITY)
    }
}

impl EventLog {
    fn with_capacity(capacity: usize) -> EventLog {
        EventLog {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity),
                next_seq: 1,
            }),
            capacity: capacity.max(1),
        }
    }

    /// Keep `event`, dropping the oldest record when full; returns its sequence number.
    pub fn record(&self, event: NewEvent) -> u64 {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut ring = self.ring.lock_counted();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.events.len() >= self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(Event {
            seq,
            unix_ms,
            category: event.category,
            severity: event.severity,
            subsystem: event.subsystem.map(capped),
            host: event.host.map(capped),
            cntlid: event.cntlid,
            message: capped(event.message),
        });
        seq
    }

    /// The records kept with a sequence number above `after` (0: all), oldest first.
    pub fn since(&self, after: u64) -> Vec<Event> {
        let ring = self.ring.lock_counted();
        let first = ring.events.partition_point(|e| e.seq <= after);
        ring.events.range(first..).cloned().collect()
    }

    /// The sequence number of the latest record (0 before the first).
    pub fn latest_seq(&self) -> u64 {
        self.ring.lock_counted().next_seq - 1
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// `text` cut to at most [`MAX_TEXT`] bytes at a character boundary.
fn capped(mut text: String) -> String {
    const ELLIPSIS: &str = "…";
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT - ELLIPSIS.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(ELLIPSIS);
    text
}

/// An asynchronous event notice the target raises (NVMe Base 2.0 Figure 150 and §5.27.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    pub name: &'static str,
    /// The log page the host reads to clear it.
    pub log_page: u8,
    /// Its Async Event Configuration bit: only controllers that set it get the event.
    pub config_bit: u32,
}

pub const NAMESPACE_ATTRIBUTE_CHANGED: Notice = Notice {
    name: "Namespace Attribute Changed",
    log_page: 0x04,
    config_bit: AsyncEventConfig::NAMESPACE_ATTRIBUTE,
};
pub const DISCOVERY_LOG_CHANGE: Notice = Notice {
    name: "Discovery Log Page Change",
    log_page: 0x70,
    config_bit: AsyncEventConfig::DISCOVERY_LOG_CHANGE,
};
pub const ZONE_DESCRIPTOR_CHANGED: Notice = Notice {
    name: "Zone Descriptor Changed",
    log_page: 0xbf,
    config_bit: AsyncEventConfig::ZONE_DESCRIPTOR_CHANGED,
};

/// Record that `notice` was raised on those of `controllers` that enabled it (as
/// `Controller::raise_event` decides); nothing when none did.
pub fn record_raised(
    log: &EventLog,
    subsystem: &str,
    notice: Notice,
    controllers: &[Arc<Controller>],
) {
    if let Some(event) = raised_on(subsystem, notice, controllers) {
        log.record(event);
    }
}

/// The record of `notice` raised on those of `controllers` that enabled it; `None` when none
/// did.
pub fn raised_on(
    subsystem: &str,
    notice: Notice,
    controllers: &[Arc<Controller>],
) -> Option<NewEvent> {
    let cntlids: Vec<u16> = controllers
        .iter()
        .filter(|c| c.features().async_event_config & notice.config_bit != 0)
        .map(|c| c.cntlid)
        .collect();
    raised(subsystem, notice, &cntlids)
}

fn raised(subsystem: &str, notice: Notice, cntlids: &[u16]) -> Option<NewEvent> {
    if cntlids.is_empty() {
        return None;
    }
    let list: Vec<String> = cntlids.iter().map(u16::to_string).collect();
    let noun = if cntlids.len() == 1 {
        "controller"
    } else {
        "controllers"
    };
    let message = format!(
        "{} (log page {:02X}h) raised on {noun} {}",
        notice.name,
        notice.log_page,
        list.join(", ")
    );
    Some(NewEvent::new(Category::AsyncEvent, message).subsystem(subsystem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_in_order_and_numbers_every_record() {
        let log = EventLog::with_capacity(3);
        assert_eq!(log.latest_seq(), 0);
        assert!(log.since(0).is_empty());
        for i in 0..5 {
            let seq = log.record(
                NewEvent::new(Category::Change, format!("change {i}"))
                    .subsystem("nqn.2026-01.io.ferrofab:a"),
            );
            assert_eq!(seq, i + 1);
        }
        let all = log.since(0);
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [3, 4, 5],
            "the two oldest made room"
        );
        assert_eq!(all[0].message, "change 2");
        assert_eq!(all[0].severity, Severity::Info);
        assert!(all[0].unix_ms > 1_600_000_000_000, "a wall-clock time");
        assert_eq!(log.since(4).len(), 1);
        assert!(log.since(5).is_empty());
        assert!(log.since(u64::MAX).is_empty());
        assert_eq!(log.latest_seq(), 5);
    }

    #[test]
    fn texts_are_capped_at_a_character_boundary() {
        let log = EventLog::with_capacity(2);
        let long = "é".repeat(MAX_TEXT);
        log.record(
            NewEvent::new(Category::ConnectRefused, long.clone())
                .host(long.clone())
                .cntlid(7),
        );
        let e = &log.since(0)[0];
        assert!(e.message.len() <= MAX_TEXT, "{}", e.message.len());
        assert!(e.message.ends_with('…'));
        assert!(e.message.starts_with("éé"));
        assert_eq!(e.host.as_deref(), Some(e.message.as_str()));
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.cntlid, Some(7));
        log.record(NewEvent::new(Category::Connected, "x").host(""));
        assert_eq!(
            log.since(1)[0].host,
            None,
            "an empty host NQN names no host"
        );
        assert_eq!(capped("short".into()), "short");
    }

    #[test]
    fn raised_events_name_their_controllers() {
        let sub = "nqn.2026-01.io.ferrofab:a";
        assert!(
            raised(sub, NAMESPACE_ATTRIBUTE_CHANGED, &[]).is_none(),
            "nobody enabled it: nothing raised"
        );
        let log = EventLog::default();
        log.record(raised(sub, NAMESPACE_ATTRIBUTE_CHANGED, &[3, 5]).unwrap());
        log.record(raised(sub, ZONE_DESCRIPTOR_CHANGED, &[9]).unwrap());
        let got = log.since(0);
        assert_eq!(got[0].category, Category::AsyncEvent);
        assert_eq!(
            got[0].message,
            "Namespace Attribute Changed (log page 04h) raised on controllers 3, 5"
        );
        assert_eq!(
            got[1].message,
            "Zone Descriptor Changed (log page BFh) raised on controller 9"
        );
        assert_eq!(got[0].subsystem.as_deref(), Some(sub));
        assert_eq!(log.capacity(), EVENT_CAPACITY);
        let labels: Vec<_> = Category::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(labels.len(), 6);
    }
}
