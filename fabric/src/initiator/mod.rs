//! NVMe/TCP host-side initiator: tests, the `ferrofab` CLI verbs and benchmarks use it to talk
//! to a controller like a host would.
//!
//! - [`Queue`]: one NVMe/TCP connection (one NVMe-oF queue) driven by tokio over the sans-IO
//!   [`crate::tcp::host_conn::HostConn`]; many commands in flight, usable from many tasks.
//! - [`Controller`]: controller initialization (NVMe-oF 1.1 §3.5) on an admin queue plus I/O
//!   queues, keep-alive, and helpers for the common admin and NVM commands.
//! - [`polled::PolledQueue`]: an I/O queue driven by busy polling a nonblocking socket, for
//!   load generators.
//! - [`discover`] / [`DiscoveryController`]: the Discovery log page (NVMe-oF 1.1 §5.3).

pub mod command;
pub mod controller;
pub mod discovery;
pub mod error;
pub mod io_queue;
pub mod polled;
pub mod queue;
pub mod rdma;
pub mod zones;

use std::time::Duration;

use bytes::Bytes;
use nvme_spec::{Cqe, Sqe};

pub use controller::{parse_ns_descriptors, Controller, IdentifyInfo};
pub use discovery::{discover, DiscoveryController, DISCOVERY_NQN, LID_DISCOVERY};
pub use error::HostError;
/// What [`discover`] returns: the spec types of [`nvme_spec::log_page`].
pub use nvme_spec::log_page::{DiscoveryLog, DiscoveryRecord};
pub use queue::{Queue, QueueOptions};
pub use zones::{appended_lba, ZoneReport};

/// A command for [`Queue::submit`]: the SQE (its CID, PSDT and data pointer are filled in by
/// the transport), the host-to-controller data if any, and how many controller-to-host bytes
/// to accept (0 for none).
#[derive(Clone, Debug, Default)]
pub struct HostCommand {
    pub sqe: Sqe,
    pub data_out: Option<Bytes>,
    pub data_in_len: u32,
}

impl HostCommand {
    /// A command without data.
    pub fn new(sqe: Sqe) -> HostCommand {
        HostCommand {
            sqe,
            data_out: None,
            data_in_len: 0,
        }
    }

    /// A command that sends `data` to the controller.
    pub fn with_data_out(sqe: Sqe, data: Bytes) -> HostCommand {
        HostCommand {
            sqe,
            data_out: Some(data),
            data_in_len: 0,
        }
    }

    /// A command that reads up to `len` bytes from the controller.
    pub fn with_data_in(sqe: Sqe, len: u32) -> HostCommand {
        HostCommand {
            sqe,
            data_out: None,
            data_in_len: len,
        }
    }
}

/// A completed command: the CQE (whose status may be an NVMe error) and the
/// controller-to-host data received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCompletion {
    pub cqe: Cqe,
    pub data: Bytes,
}

impl HostCompletion {
    pub fn status(&self) -> nvme_spec::Status {
        self.cqe.status()
    }

    /// `Ok(self)` on success status, else [`HostError::Status`].
    pub fn ok(self) -> Result<HostCompletion, HostError> {
        let status = self.cqe.status();
        if status.is_success() {
            Ok(self)
        } else {
            Err(HostError::Status(status))
        }
    }
}

/// Host parameters for [`Controller::connect`] and [`discover`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOptions {
    pub hostnqn: String,
    pub hostid: [u8; 16],
    /// Request header digests (NVMe/TCP 1.0 §3.6.2.2).
    pub header_digest: bool,
    /// Request data digests.
    pub data_digest: bool,
    /// Keep Alive Timeout in milliseconds for the admin Connect; 0 disables keep-alive.
    pub kato_ms: u32,
    /// Number of I/O queues to connect.
    pub io_queues: u16,
    /// I/O queue size in entries (capped by CAP.MQES + 1).
    pub queue_size: u16,
    /// Disable SQ flow control in Connect (CATTR bit 2, NVMe-oF 1.1 §3.3).
    pub disable_sqflow: bool,
    /// Per-command timeout.
    pub timeout: Duration,
}

impl Default for HostOptions {
    fn default() -> Self {
        let hostid = random_uuid();
        HostOptions {
            hostnqn: format!("nqn.2014-08.org.nvmexpress:uuid:{}", format_uuid(&hostid)),
            hostid,
            header_digest: false,
            data_digest: false,
            kato_ms: 5000,
            io_queues: 1,
            queue_size: 128,
            disable_sqflow: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Canonical 8-4-4-4-12 lowercase form of a UUID (RFC 4122 §3).
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A version 4 (random) UUID (RFC 4122 §4.4), from the std hasher's per-process random keys
/// mixed with the clock and a counter.
pub fn random_uuid() -> [u8; 16] {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(n);
        h.write_usize(i);
        h.write_u32(std::process::id());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out[6] = (out[6] & 0x0f) | 0x40;
    out[8] = (out[8] & 0x3f) | 0x80;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_format_and_version() {
        let u = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(format_uuid(&u), "12345678-9abc-def0-0123-456789abcdef");
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        assert_eq!(a[6] >> 4, 4);
        assert_eq!(a[8] >> 6, 0b10);
        let opts = HostOptions::default();
        assert_eq!(
            opts.hostnqn,
            format!(
                "nqn.2014-08.org.nvmexpress:uuid:{}",
                format_uuid(&opts.hostid)
            )
        );
        assert_eq!(opts.hostnqn.len(), 32 + 36);
    }
}
