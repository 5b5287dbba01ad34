//! Discovery (NVMe-oF 1.1 §5): connect to the discovery subsystem, read the Discovery log
//! page (LID 70h) consistently, and optionally stay connected waiting for Discovery Log Page
//! Change notices.

use std::net::SocketAddr;

use bytes::BytesMut;
use nvme_spec::features::{AsyncEvent, AsyncEventConfig, NoticeInfo};
use nvme_spec::log_page::{DiscoveryLog, DiscoveryLogEntry, DiscoveryLogHeader, LogPageId};
use tokio::task::JoinHandle;

use super::command;
use super::controller::Controller;
use super::{HostCommand, HostCompletion, HostError, HostOptions};

/// The well-known discovery subsystem NQN (NVMe Base 2.0 §4.5.2).
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";

/// Discovery log page identifier (NVMe-oF 1.1 §5.3).
pub const LID_DISCOVERY: u8 = LogPageId::Discovery.to_u8();
/// Header and each entry are 1024 bytes (NVMe-oF 1.1 Figures 39 and 40).
pub const DISCOVERY_HEADER_LEN: u32 = core::mem::size_of::<DiscoveryLogHeader>() as u32;
pub const DISCOVERY_ENTRY_LEN: u32 = core::mem::size_of::<DiscoveryLogEntry>() as u32;

/// How often the log is re-read when GENCTR keeps changing underneath.
const MAX_LOG_ATTEMPTS: usize = 10;
/// Entries fetched per Get Log Page.
const ENTRIES_PER_READ: u64 = 64;

fn parse_header(page: &[u8]) -> Option<(u64, u64)> {
    let h = DiscoveryLog::parse_header(page).ok()?;
    Some((h.genctr.get(), h.numrec.get()))
}

/// Read the whole Discovery log consistently (NVMe-oF 1.1 §5.3): header, then the entries,
/// then the header again; start over if GENCTR moved. `rae` keeps a pending discovery
/// change event until the final read.
async fn read_discovery_log(ctrl: &Controller) -> Result<DiscoveryLog, HostError> {
    for _ in 0..MAX_LOG_ATTEMPTS {
        let head = ctrl
            .get_log_page_raw(LID_DISCOVERY, 0, 0, DISCOVERY_HEADER_LEN, true)
            .await?
            .ok()?;
        let (genctr, numrec) = parse_header(&head.data)
            .ok_or_else(|| HostError::Protocol("short discovery log header".into()))?;
        let mut page = BytesMut::from(&head.data[..]);
        page.truncate(DISCOVERY_HEADER_LEN as usize);
        page.resize(DISCOVERY_HEADER_LEN as usize, 0);
        let mut done = 0u64;
        while done < numrec {
            let n = (numrec - done).min(ENTRIES_PER_READ);
            let offset = u64::from(DISCOVERY_HEADER_LEN) + done * u64::from(DISCOVERY_ENTRY_LEN);
            let len = (n * u64::from(DISCOVERY_ENTRY_LEN)) as u32;
            let part = ctrl
                .get_log_page_raw(LID_DISCOVERY, 0, offset, len, true)
                .await?
                .ok()?;
            if part.data.len() < len as usize {
                return Err(HostError::Protocol(format!(
                    "discovery log read returned {} of {len} bytes",
                    part.data.len()
                )));
            }
            page.extend_from_slice(&part.data[..len as usize]);
            done += n;
        }
        // The last read clears the event (RAE 0), so a new change raises a new notice.
        let again = ctrl
            .get_log_page_raw(LID_DISCOVERY, 0, 0, DISCOVERY_HEADER_LEN, false)
            .await?
            .ok()?;
        match parse_header(&again.data) {
            Some((g, _)) if g == genctr => {
                return DiscoveryLog::parse(&page)
                    .map_err(|e| HostError::Protocol(format!("discovery log: {e}")));
            }
            Some(_) => continue,
            None => return Err(HostError::Protocol("short discovery log header".into())),
        }
    }
    Err(HostError::Protocol(format!(
        "discovery log kept changing over {MAX_LOG_ATTEMPTS} reads"
    )))
}

/// One-shot discovery: connect to the discovery controller at `addr`, read the log, shut
/// down. Keep-alive and I/O queues in `opts` are ignored.
pub async fn discover(addr: SocketAddr, opts: HostOptions) -> Result<DiscoveryLog, HostError> {
    let opts = HostOptions {
        kato_ms: 0,
        io_queues: 0,
        ..opts
    };
    let ctrl = Controller::connect_admin_only(addr, DISCOVERY_NQN, opts).await?;
    let log = read_discovery_log(&ctrl).await;
    if let Err(e) = ctrl.shutdown().await {
        tracing::debug!(error = %e, "discovery controller shutdown failed");
    }
    log
}

/// The task that waits for the outstanding AER; aborted when dropped, so a dropped
/// [`DiscoveryController`] does not keep its connection open.
struct AerTask(JoinHandle<Result<HostCompletion, HostError>>);

impl Drop for AerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A persistent discovery controller connection that can wait for log changes.
pub struct DiscoveryController {
    ctrl: Controller,
    aer: Option<AerTask>,
}

impl std::fmt::Debug for DiscoveryController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryController")
            .field("ctrl", &self.ctrl)
            .finish_non_exhaustive()
    }
}

impl DiscoveryController {
    /// Connect (with `opts.kato_ms` as keep-alive), enable Discovery Log Page Change
    /// notices and post an Asynchronous Event Request.
    pub async fn connect(
        addr: SocketAddr,
        opts: HostOptions,
    ) -> Result<DiscoveryController, HostError> {
        let opts = HostOptions {
            io_queues: 0,
            ..opts
        };
        let ctrl = Controller::connect_admin_only(addr, DISCOVERY_NQN, opts).await?;
        ctrl.set_async_event_config(AsyncEventConfig::DISCOVERY_LOG_CHANGE)
            .await?
            .ok()?;
        let mut dc = DiscoveryController { ctrl, aer: None };
        dc.arm();
        Ok(dc)
    }

    fn arm(&mut self) {
        let admin = self.ctrl.admin_queue().clone();
        let sqe = command::async_event_request();
        self.aer = Some(AerTask(tokio::spawn(async move {
            admin.submit_timeout(HostCommand::new(sqe), None).await
        })));
    }

    pub fn controller(&self) -> &Controller {
        &self.ctrl
    }

    /// Read the current Discovery log.
    pub async fn log(&self) -> Result<DiscoveryLog, HostError> {
        read_discovery_log(&self.ctrl).await
    }

    /// Wait for a Discovery Log Page Change notice, then re-read the log (clearing the
    /// event), post a new AER and return the new log. Other events are skipped. Cancel
    /// safe: dropping the future keeps the outstanding AER for the next call.
    pub async fn wait_for_change(&mut self) -> Result<DiscoveryLog, HostError> {
        loop {
            let Some(task) = self.aer.as_mut() else {
                self.arm();
                continue;
            };
            let joined = (&mut task.0).await;
            self.aer = None;
            let done =
                joined.map_err(|e| HostError::Protocol(format!("AER task failed: {e}")))??;
            if !done.status().is_success() {
                return Err(HostError::Status(done.status()));
            }
            // NVMe-oF 1.1 §5.3: a Notice with information F0h says the log changed.
            let dw0 = done.cqe.dw0.get();
            let event = AsyncEvent::from_dw0(dw0);
            if event.notice_info() != Some(NoticeInfo::DiscoveryLogPageChange) {
                tracing::debug!(dw0, "ignoring asynchronous event");
                self.arm();
                continue;
            }
            let log = read_discovery_log(&self.ctrl).await;
            self.arm();
            return log;
        }
    }

    /// Shut the discovery controller down.
    pub async fn shutdown(mut self) -> Result<(), HostError> {
        self.aer = None;
        self.ctrl.shutdown().await
    }
}
