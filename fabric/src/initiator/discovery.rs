//! Discovery (NVMe-oF 1.1 §5): connect to the discovery subsystem, read the Discovery log
//! page (LID 70h) consistently, and optionally stay connected waiting for Discovery Log Page
//! Change notices.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

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

/// Asynchronous Event Configuration bit 31: Discovery Log Page Change notices
/// (NVMe Base 2.0 Figure 329).
const AEC_DISCOVERY_LOG_CHANGE: u32 = 1 << 31;
/// AER completion DW0: type Notice (2) in bits 2:0, information F0h (Discovery Log Page
/// Change) in bits 15:8 (NVMe Base 2.0 Figures 147/150).
const AER_TYPE_NOTICE: u32 = 2;
const AER_INFO_DISCOVERY_CHANGE: u32 = 0xf0;

/// How often the log is re-read when GENCTR keeps changing underneath.
const MAX_LOG_ATTEMPTS: usize = 10;
/// Entries fetched per Get Log Page.
const ENTRIES_PER_READ: u64 = 64;

/// One Discovery Log Page Entry (NVMe-oF 1.1 Figure 40).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryEntry {
    /// Transport type @0 (1 RDMA, 2 FC, 3 TCP).
    pub trtype: u8,
    /// Address family @1 (1 IPv4, 2 IPv6).
    pub adrfam: u8,
    /// Subsystem type @2 (1 referral, 2 NVM subsystem, 3 current discovery subsystem).
    pub subtype: u8,
    /// Transport requirements @3.
    pub treq: u8,
    pub portid: u16,
    pub cntlid: u16,
    /// Admin max SQ size @8.
    pub asqsz: u16,
    /// Entry flags @10.
    pub eflags: u16,
    /// Transport service identifier @32 (the TCP port as text).
    pub trsvcid: String,
    pub subnqn: String,
    /// Transport address @512.
    pub traddr: String,
    /// Transport specific address subtype @768 (raw 256 bytes).
    pub tsas: Vec<u8>,
}

impl DiscoveryEntry {
    /// Parse one 1024-byte entry; `None` when too short.
    pub fn parse(raw: &[u8]) -> Option<DiscoveryEntry> {
        let raw = raw.get(..DISCOVERY_ENTRY_LEN as usize)?;
        let u16_at = |o: usize| u16::from_le_bytes([raw[o], raw[o + 1]]);
        Some(DiscoveryEntry {
            trtype: raw[0],
            adrfam: raw[1],
            subtype: raw[2],
            treq: raw[3],
            portid: u16_at(4),
            cntlid: u16_at(6),
            asqsz: u16_at(8),
            eflags: u16_at(10),
            trsvcid: text(&raw[32..64]),
            subnqn: text(&raw[256..512]),
            traddr: text(&raw[512..768]),
            tsas: raw[768..1024].to_vec(),
        })
    }
}

/// The Discovery log page (NVMe-oF 1.1 Figure 39).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryLog {
    /// Generation counter @0.
    pub genctr: u64,
    /// Record format @16.
    pub recfmt: u16,
    pub entries: Vec<DiscoveryEntry>,
}

impl DiscoveryLog {
    /// Parse header + entries from a whole page; NUMREC is trusted only as far as the bytes go.
    pub fn parse(page: &[u8]) -> Option<DiscoveryLog> {
        let (genctr, numrec, recfmt) = parse_header(page)?;
        let body = page
            .get(DISCOVERY_HEADER_LEN as usize..)
            .unwrap_or_default();
        let entries = body
            .chunks_exact(DISCOVERY_ENTRY_LEN as usize)
            .take(usize::try_from(numrec).unwrap_or(usize::MAX))
            .filter_map(DiscoveryEntry::parse)
            .collect();
        Some(DiscoveryLog {
            genctr,
            recfmt,
            entries,
        })
    }
}

fn parse_header(page: &[u8]) -> Option<(u64, u64, u16)> {
    let h = page.get(..18)?;
    let genctr = u64::from_le_bytes(h[0..8].try_into().ok()?);
    let numrec = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let recfmt = u16::from_le_bytes([h[16], h[17]]);
    Some((genctr, numrec, recfmt))
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end])
        .trim_end()
        .to_string()
}

/// Read the whole Discovery log consistently (NVMe-oF 1.1 §5.3): header, then the entries,
/// then the header again; start over if GENCTR moved. `rae` keeps a pending discovery
/// change event until the final read.
async fn read_discovery_log(ctrl: &Controller) -> Result<DiscoveryLog, HostError> {
    for _ in 0..MAX_LOG_ATTEMPTS {
        let head = ctrl
            .get_log_page_rae(LID_DISCOVERY, 0, 0, DISCOVERY_HEADER_LEN, true)
            .await?
            .ok()?;
        let (genctr, numrec, _) = parse_header(&head.data)
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
                .get_log_page_rae(LID_DISCOVERY, 0, offset, len, true)
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
            .get_log_page_rae(LID_DISCOVERY, 0, 0, DISCOVERY_HEADER_LEN, false)
            .await?
            .ok()?;
        match parse_header(&again.data) {
            Some((g, _, _)) if g == genctr => {
                return DiscoveryLog::parse(&page)
                    .ok_or_else(|| HostError::Protocol("bad discovery log".into()));
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

/// A persistent discovery controller connection that can wait for log changes.
pub struct DiscoveryController {
    ctrl: Controller,
    aer: Option<JoinHandle<Result<HostCompletion, HostError>>>,
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
        ctrl.set_async_event_config(AEC_DISCOVERY_LOG_CHANGE)
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
        self.aer = Some(tokio::spawn(async move {
            admin.submit_timeout(HostCommand::new(sqe), None).await
        }));
    }

    pub fn controller(&self) -> &Controller {
        &self.ctrl
    }

    /// Read the current Discovery log.
    pub async fn log(&self) -> Result<DiscoveryLog, HostError> {
        read_discovery_log(&self.ctrl).await
    }

    /// Wait for a Discovery Log Page Change notice, then re-read the log (clearing the
    /// event), post a new AER and return the new log. Other events are skipped.
    pub async fn wait_for_change(&mut self) -> Result<DiscoveryLog, HostError> {
        loop {
            let handle = match self.aer.take() {
                Some(h) => h,
                None => {
                    self.arm();
                    continue;
                }
            };
            let done = handle
                .await
                .map_err(|e| HostError::Protocol(format!("AER task failed: {e}")))??;
            if !done.status().is_success() {
                return Err(HostError::Status(done.status()));
            }
            let dw0 = done.cqe.dw0.get();
            let is_change =
                dw0 & 0x7 == AER_TYPE_NOTICE && (dw0 >> 8) & 0xff == AER_INFO_DISCOVERY_CHANGE;
            if !is_change {
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
        if let Some(h) = self.aer.take() {
            h.abort();
        }
        self.ctrl.shutdown().await
    }
}

/// Build a whole Discovery log page (header + entries) in memory; handy for tests and
/// mock controllers.
pub fn encode_discovery_log(genctr: u64, entries: &[DiscoveryEntry]) -> Bytes {
    let mut page =
        vec![0u8; (DISCOVERY_HEADER_LEN + DISCOVERY_ENTRY_LEN * entries.len() as u32) as usize];
    page[0..8].copy_from_slice(&genctr.to_le_bytes());
    page[8..16].copy_from_slice(&(entries.len() as u64).to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        let o = (DISCOVERY_HEADER_LEN + DISCOVERY_ENTRY_LEN * i as u32) as usize;
        let raw = &mut page[o..o + DISCOVERY_ENTRY_LEN as usize];
        raw[0] = e.trtype;
        raw[1] = e.adrfam;
        raw[2] = e.subtype;
        raw[3] = e.treq;
        raw[4..6].copy_from_slice(&e.portid.to_le_bytes());
        raw[6..8].copy_from_slice(&e.cntlid.to_le_bytes());
        raw[8..10].copy_from_slice(&e.asqsz.to_le_bytes());
        raw[10..12].copy_from_slice(&e.eflags.to_le_bytes());
        put_text(&mut raw[32..64], &e.trsvcid);
        put_text(&mut raw[256..512], &e.subnqn);
        put_text(&mut raw[512..768], &e.traddr);
        let n = e.tsas.len().min(256);
        raw[768..768 + n].copy_from_slice(&e.tsas[..n]);
    }
    Bytes::from(page)
}

fn put_text(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_discovery_entry() {
        let mut raw = vec![0u8; 1024];
        raw[0] = 3; // TCP
        raw[1] = 1; // IPv4
        raw[2] = 2; // NVM subsystem
        raw[3] = 0x02; // TREQ: secure channel not required
        raw[4..6].copy_from_slice(&[0x01, 0x00]);
        raw[6..8].copy_from_slice(&[0xff, 0xff]);
        raw[8..10].copy_from_slice(&[0x20, 0x00]);
        raw[32..36].copy_from_slice(b"4420");
        raw[256..263].copy_from_slice(b"nqn.sub");
        raw[512..521].copy_from_slice(b"127.0.0.1");
        let e = DiscoveryEntry::parse(&raw).unwrap();
        assert_eq!((e.trtype, e.adrfam, e.subtype, e.treq), (3, 1, 2, 2));
        assert_eq!((e.portid, e.cntlid, e.asqsz), (1, 0xffff, 32));
        assert_eq!(e.trsvcid, "4420");
        assert_eq!(e.subnqn, "nqn.sub");
        assert_eq!(e.traddr, "127.0.0.1");
        assert!(DiscoveryEntry::parse(&raw[..1023]).is_none());

        let page = encode_discovery_log(9, &[e.clone(), e.clone()]);
        assert_eq!(page.len(), 3072);
        assert_eq!(
            &page[0..16],
            &[9, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&page[1024..2048], &raw[..]);
        let log = DiscoveryLog::parse(&page).unwrap();
        assert_eq!(log.genctr, 9);
        assert_eq!(log.entries, vec![e.clone(), e]);
    }

    #[test]
    fn numrec_larger_than_page_is_bounded() {
        let mut page = vec![0u8; 1024 + 1024];
        page[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let log = DiscoveryLog::parse(&page).unwrap();
        assert_eq!(log.entries.len(), 1);
        assert!(DiscoveryLog::parse(&[0u8; 10]).is_none());
    }
}
