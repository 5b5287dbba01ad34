//! Discovery (NVMe-oF 1.1 §5): connect to the discovery subsystem, read the Discovery log
//! page (LID 70h) consistently, and optionally stay connected waiting for Discovery Log Page
//! Change notices.

use std::net::SocketAddr;

use bytes::BytesMut;
use nvme::features::{AsyncEvent, AsyncEventConfig, NoticeInfo};
use nvme::identify::read_ascii_trimmed;
use nvme::log_page::{DiscoveryLogEntry, DiscoveryLogHeader};
use tokio::task::JoinHandle;
use zerocopy::FromBytes;

use super::command::admin_opcode;
use super::controller::Controller;
use super::{HostCommand, HostCompletion, HostError, HostOptions};

/// The well-known discovery subsystem NQN (NVMe Base 2.0 §4.5.2).
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";

/// Discovery log page identifier (NVMe-oF 1.1 §5.3).
pub const LID_DISCOVERY: u8 = 0x70;
/// Header and each entry are 1024 bytes (NVMe-oF 1.1 Figures 39 and 40).
pub const DISCOVERY_HEADER_LEN: u32 = 1024;
pub const DISCOVERY_ENTRY_LEN: u32 = 1024;

/// How often the log is re-read when GENCTR keeps changing underneath.
const MAX_LOG_ATTEMPTS: usize = 10;
/// Entries fetched per Get Log Page.
const ENTRIES_PER_READ: u64 = 64;

/// One Discovery Log Page Entry (NVMe-oF 1.1 Figure 40) with raw codes, so unknown values
/// survive (compare with [`nvme::log_page::TransportType`] etc.).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryEntry {
    /// Transport type (1 RDMA, 2 FC, 3 TCP).
    pub trtype: u8,
    /// Address family (1 IPv4, 2 IPv6).
    pub adrfam: u8,
    /// Subsystem type (1 referral, 2 NVM subsystem, 3 current discovery subsystem).
    pub subtype: u8,
    pub treq: u8,
    pub portid: u16,
    pub cntlid: u16,
    pub asqsz: u16,
    pub eflags: u16,
    /// Transport service identifier (for TCP the port number).
    pub trsvcid: String,
    pub subnqn: String,
    /// Transport address (for TCP the IP address).
    pub traddr: String,
    /// Transport specific address subtype.
    pub tsas: Vec<u8>,
}

impl DiscoveryEntry {
    fn from_wire(e: &DiscoveryLogEntry) -> DiscoveryEntry {
        DiscoveryEntry {
            trtype: e.trtype,
            adrfam: e.adrfam,
            subtype: e.subtype,
            treq: e.treq,
            portid: e.portid.get(),
            cntlid: e.cntlid.get(),
            asqsz: e.asqsz.get(),
            eflags: e.eflags.get(),
            trsvcid: read_ascii_trimmed(&e.trsvcid),
            subnqn: read_ascii_trimmed(&e.subnqn),
            traddr: read_ascii_trimmed(&e.traddr),
            tsas: e.tsas.to_vec(),
        }
    }
}

/// The Discovery log page (NVMe-oF 1.1 §5.3, Figure 39).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryLog {
    /// Generation counter.
    pub genctr: u64,
    /// Record format.
    pub recfmt: u16,
    pub entries: Vec<DiscoveryEntry>,
}

impl DiscoveryLog {
    /// Parse a header and its NUMREC entries; entries missing from `page` are left out, so a
    /// NUMREC larger than the data never over-reads.
    pub fn parse(page: &[u8]) -> Option<DiscoveryLog> {
        let (header, body) = DiscoveryLogHeader::read_from_prefix(page).ok()?;
        let numrec = usize::try_from(header.numrec.get()).unwrap_or(usize::MAX);
        let entries = body
            .chunks_exact(DISCOVERY_ENTRY_LEN as usize)
            .take(numrec)
            .filter_map(|c| DiscoveryLogEntry::read_from_bytes(c).ok())
            .map(|e| DiscoveryEntry::from_wire(&e))
            .collect();
        Some(DiscoveryLog {
            genctr: header.genctr.get(),
            recfmt: header.recfmt.get(),
            entries,
        })
    }
}

fn parse_header(page: &[u8]) -> Option<(u64, u64)> {
    let (h, _) = DiscoveryLogHeader::read_from_prefix(page).ok()?;
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
                    .ok_or_else(|| HostError::Protocol("short discovery log".into()));
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
        let sqe = nvme::Sqe {
            opcode: admin_opcode::ASYNC_EVENT_REQUEST,
            ..Default::default()
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_discovery_log() {
        let mut page = vec![0u8; 3 * 1024];
        page[0] = 9; // GENCTR 9
        page[8] = 2; // NUMREC 2
        let e = &mut page[1024..2048];
        e[..12].copy_from_slice(&[3, 1, 2, 0x02, 1, 0, 0xff, 0xff, 0x20, 0, 0, 0]);
        e[32..36].copy_from_slice(b"4420");
        e[256..263].copy_from_slice(b"nqn.sub");
        e[512..521].copy_from_slice(b"127.0.0.1");
        e[768] = 0x01;
        page[2048] = 3;
        page[2050] = 3;
        let log = DiscoveryLog::parse(&page).unwrap();
        assert_eq!((log.genctr, log.recfmt, log.entries.len()), (9, 0, 2));
        let a = &log.entries[0];
        assert_eq!((a.trtype, a.adrfam, a.subtype, a.treq), (3, 1, 2, 2));
        assert_eq!((a.portid, a.cntlid, a.asqsz, a.eflags), (1, 0xffff, 32, 0));
        assert_eq!(a.trsvcid, "4420");
        assert_eq!(a.subnqn, "nqn.sub");
        assert_eq!(a.traddr, "127.0.0.1");
        assert_eq!(a.tsas[0], 1);
        assert_eq!(log.entries[1].subtype, 3);
        // NUMREC beyond the data is bounded by the data.
        page[8] = 0xff;
        assert_eq!(DiscoveryLog::parse(&page).unwrap().entries.len(), 2);
        assert!(DiscoveryLog::parse(&page[..1000]).is_none());
    }
}
