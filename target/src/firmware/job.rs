//! An update job as the service reports it: what it installs, from where, how far it got.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a job is. A job moves verifying → fetching → installing → installed (→ rebooting),
/// or ends failed from any stage before installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The manifest's signature, the artifacts it names and their version are checked
    /// (while the request that started the job waits).
    Verifying,
    /// The artifacts are downloaded into the firmware directory, each hashed as it comes.
    Fetching,
    /// systemd-sysupdate writes the staged artifacts into the free slot and the ESP.
    Installing,
    /// Installed: the next boot boots it.
    Installed,
    Failed,
    /// Installed, and a reboot was started.
    Rebooting,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Verifying => "verifying",
            Stage::Fetching => "fetching",
            Stage::Installing => "installing",
            Stage::Installed => "installed",
            Stage::Failed => "failed",
            Stage::Rebooting => "rebooting",
        }
    }

    /// Whether the job still holds the one job slot.
    pub fn is_active(self) -> bool {
        match self {
            Stage::Verifying | Stage::Fetching | Stage::Installing => true,
            Stage::Installed | Stage::Failed | Stage::Rebooting => false,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateRequest {
    /// An http:// or https:// URL of the bundle's directory, or its absolute path on the box.
    pub source: String,
    /// Reboot into the new version once it is installed.
    pub reboot: bool,
    /// Take a version older than the running one.
    pub allow_downgrade: bool,
}

/// A job at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Counts from 1 each time the daemon starts.
    pub id: u64,
    pub stage: Stage,
    /// The version being installed; `None` until the manifest is verified.
    pub version: Option<String>,
    pub source: String,
    pub reboot: bool,
    pub allow_downgrade: bool,
    /// Bytes of the artifacts downloaded and hashed so far.
    pub bytes_done: u64,
    /// The artifacts' total size, once the source has told it.
    pub bytes_total: Option<u64>,
    /// Why it failed (or, when installed, why the reboot asked for did not happen).
    pub error: Option<String>,
    pub started_unix_ms: u64,
    /// When the stage last changed.
    pub updated_unix_ms: u64,
    pub finished_unix_ms: Option<u64>,
}

/// Bytes downloaded, updated by the fetcher without the service's lock.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    /// `u64::MAX`: not known.
    total: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            done: AtomicU64::new(0),
            total: AtomicU64::new(u64::MAX),
        })
    }

    pub fn add(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_total(&self, bytes: u64) {
        self.total.store(bytes, Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn total(&self) -> Option<u64> {
        match self.total.load(Ordering::Relaxed) {
            u64::MAX => None,
            t => Some(t),
        }
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
