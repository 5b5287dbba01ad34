//! A host's view of one NVMe-oF controller: the admin queue, controller initialization
//! (NVMe-oF 1.1 §3.5: Connect, Property Get CAP/VS, Property Set CC.EN, wait for CSTS.RDY,
//! Identify), I/O queues and keep-alive.

use ferrofab_sync::CountedLock as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nvme_spec::command::DsmRange;
use nvme_spec::features::FeatureId;
use nvme_spec::identify::{
    parse_namespace_list, read_ascii_trimmed, Cns, IdentifyController, IdentifyNamespace,
};
use nvme_spec::properties::{
    self as property, Cap, Cc, Csts, ShutdownNotification, ShutdownStatus,
};
use tokio_util::sync::CancellationToken;

use super::command::{self, PropertySize};
use super::queue::{Queue, QueueOptions};
use super::{HostCommand, HostCompletion, HostError, HostOptions};
use crate::tcp::host_conn::ADMIN_IN_CAPSULE_DATA;

/// The CC that enables a controller with capabilities `cap` (NVMe Base 2.0 §3.5.1): EN=1,
/// every I/O command set it supports, IOSQES=6 (64 bytes), IOCQES=4 (16 bytes).
pub fn enabling_cc(cap: u64) -> Cc {
    let css = if Cap(cap).css() & Cap::CSS_IO_COMMAND_SETS != 0 {
        Cc::CSS_ALL_IO
    } else {
        Cc::CSS_NVM
    };
    Cc::default()
        .with_en(true)
        .with_css(css)
        .with_iosqes(CC_IOSQES)
        .with_iocqes(CC_IOCQES)
}

/// Whether CSTS says an enabling controller is ready; a fatal status is an error.
pub fn enabled(csts: Csts) -> Result<bool, HostError> {
    if csts.cfs() {
        return Err(HostError::Protocol(format!(
            "controller fatal status while enabling (CSTS {:#x})",
            csts.0
        )));
    }
    Ok(csts.rdy())
}

/// Admin queue size the host asks for (Linux NVME_AQ_DEPTH).
const ADMIN_QUEUE_SIZE: u16 = 32;
/// Identify and most log pages are read in 4 KiB.
const IDENTIFY_LEN: u32 = 4096;

/// CC.IOSQES and CC.IOCQES: log2 of the 64-byte SQE and 16-byte CQE (NVMe Base 2.0 §3.1.4.5).
const CC_IOSQES: u8 = 6;
const CC_IOCQES: u8 = 4;

/// An NVMe-oF controller as the host sees it.
pub struct Controller {
    admin: Queue,
    io: Vec<Queue>,
    cntlid: u16,
    cap: u64,
    vs: u32,
    identify: Box<IdentifyInfo>,
    block_sizes: Mutex<HashMap<u32, u32>>,
    opts: HostOptions,
    subnqn: String,
    keep_alive: CancellationToken,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("subnqn", &self.subnqn)
            .field("cntlid", &self.cntlid)
            .field("io_queues", &self.io.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.keep_alive.cancel();
    }
}

impl Controller {
    /// Connect and initialize a controller (NVMe-oF 1.1 §3.5), then connect
    /// `opts.io_queues` I/O queues after Set Features Number of Queues.
    pub async fn connect(
        addr: SocketAddr,
        subnqn: &str,
        opts: HostOptions,
    ) -> Result<Controller, HostError> {
        let mut ctrl = Controller::connect_admin_only(addr, subnqn, opts).await?;
        if ctrl.opts.io_queues > 0 {
            ctrl.connect_io_queues(addr).await?;
        }
        Ok(ctrl)
    }

    /// Connect the admin queue, enable the controller and read Identify Controller, without
    /// I/O queues or Set Features (discovery controllers, tests).
    pub async fn connect_admin_only(
        addr: SocketAddr,
        subnqn: &str,
        opts: HostOptions,
    ) -> Result<Controller, HostError> {
        let admin = Queue::connect(
            addr,
            QueueOptions {
                qid: 0,
                header_digest: opts.header_digest,
                data_digest: opts.data_digest,
                maxr2t: 0,
                in_capsule_data: ADMIN_IN_CAPSULE_DATA,
                queue_size: ADMIN_QUEUE_SIZE,
                disable_sqflow: opts.disable_sqflow,
                timeout: opts.timeout,
            },
        )
        .await?;
        let cntlid = admin
            .fabrics_connect_admin(subnqn, &opts.hostnqn, &opts.hostid, opts.kato_ms)
            .await?;
        let mut ctrl = Controller {
            admin,
            io: Vec::new(),
            cntlid,
            cap: 0,
            vs: 0,
            identify: Box::new(IdentifyInfo(IdentifyController::zeroed())),
            block_sizes: Mutex::new(HashMap::new()),
            opts,
            subnqn: subnqn.to_string(),
            keep_alive: CancellationToken::new(),
        };
        ctrl.start_keep_alive();
        ctrl.enable().await?;
        ctrl.identify = Box::new(IdentifyInfo(ctrl.identify_controller_uncached().await?));
        Ok(ctrl)
    }

    /// NVMe Base 2.0 §3.5.1 (as adapted by NVMe-oF 1.1 §3.5): read CAP and VS, write CC with
    /// EN=1, IOSQES=6 (64 bytes), IOCQES=4 (16 bytes), wait for CSTS.RDY within CAP.TO.
    async fn enable(&mut self) -> Result<(), HostError> {
        self.cap = self.property_get(property::CAP, 8).await?;
        self.vs = self.property_get(property::VS, 4).await? as u32;
        let cc = enabling_cc(self.cap);
        self.property_set(property::CC, 4, u64::from(cc.0)).await?;
        let deadline = Instant::now() + self.cap_timeout();
        loop {
            let csts = Csts(self.property_get(property::CSTS, 4).await? as u32);
            if enabled(csts)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HostError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// CAP.TO (bits 31:24, 500 ms units), at least 500 ms.
    fn cap_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(Cap(self.cap).timeout_ms().max(500)))
    }

    async fn connect_io_queues(&mut self, addr: SocketAddr) -> Result<(), HostError> {
        let want = self.opts.io_queues;
        let done = self
            .submit_admin(HostCommand::new(command::set_number_of_queues(want)))
            .await?
            .ok()?;
        // NVMe Base 2.0 §5.27.1.5: DW0 holds NSQA 15:0 and NCQA 31:16, 0's based.
        let dw0 = done.cqe.dw0.get();
        let granted = ((dw0 & 0xffff) + 1).min((dw0 >> 16) + 1);
        let count = u32::from(want).min(granted) as u16;
        // CAP.MQES is 0's based.
        let mqes = Cap(self.cap).max_queue_entries();
        let queue_size = u32::from(self.opts.queue_size.max(2)).min(mqes.max(2)) as u16;
        let in_capsule = self.identify.io_in_capsule_data();
        for qid in 1..=count {
            let q = Queue::connect(
                addr,
                QueueOptions {
                    qid,
                    header_digest: self.opts.header_digest,
                    data_digest: self.opts.data_digest,
                    maxr2t: 0,
                    in_capsule_data: in_capsule,
                    queue_size,
                    disable_sqflow: self.opts.disable_sqflow,
                    timeout: self.opts.timeout,
                },
            )
            .await?;
            // NVMe-oF 1.1 §3.3: I/O queues name the controller the admin Connect returned;
            // KATO applies to the admin queue only.
            q.fabrics_connect(
                &self.subnqn,
                &self.opts.hostnqn,
                &self.opts.hostid,
                self.cntlid,
                0,
            )
            .await?;
            self.io.push(q);
        }
        Ok(())
    }

    /// NVMe Base 2.0 §3.9: send Keep Alive at half the KATO so the timer never expires.
    fn start_keep_alive(&self) {
        if self.opts.kato_ms == 0 {
            return;
        }
        let admin = self.admin.clone();
        let cancel = self.keep_alive.clone();
        let period = Duration::from_millis(u64::from(self.opts.kato_ms / 2).max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = admin.closed() => return,
                    _ = tick.tick() => {}
                }
                match admin.submit(HostCommand::new(command::keep_alive())).await {
                    Ok(c) if !c.status().is_success() => {
                        tracing::debug!(status = %c.status(), "keep alive failed");
                    }
                    Ok(_) => {}
                    Err(HostError::Closed) => return,
                    Err(e) => tracing::debug!(error = %e, "keep alive failed"),
                }
            }
        });
    }

    pub fn cntlid(&self) -> u16 {
        self.cntlid
    }

    pub fn subnqn(&self) -> &str {
        &self.subnqn
    }

    pub fn options(&self) -> &HostOptions {
        &self.opts
    }

    /// CAP as read during initialization.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// VS as read during initialization.
    pub fn version(&self) -> u32 {
        self.vs
    }

    /// Identify Controller as read during initialization (derefs to
    /// [`nvme_spec::identify::IdentifyController`]).
    pub fn identify(&self) -> &IdentifyInfo {
        &self.identify
    }

    pub fn admin_queue(&self) -> &Queue {
        &self.admin
    }

    /// I/O queue `qid` (1-based).
    pub fn io_queue(&self, qid: u16) -> Option<&Queue> {
        usize::from(qid).checked_sub(1).and_then(|i| self.io.get(i))
    }

    /// Number of connected I/O queues.
    pub fn io_queue_count(&self) -> u16 {
        self.io.len() as u16
    }

    pub async fn submit_admin(&self, cmd: HostCommand) -> Result<HostCompletion, HostError> {
        self.admin.submit(cmd).await
    }

    pub async fn submit_io(&self, qid: u16, cmd: HostCommand) -> Result<HostCompletion, HostError> {
        let q = self
            .io_queue(qid)
            .ok_or_else(|| HostError::Protocol(format!("no I/O queue {qid}")))?;
        q.submit(cmd).await
    }

    /// Property Get (NVMe-oF 1.1 §3.4): `size` 4 or 8 bytes.
    pub async fn property_get(&self, offset: u32, size: u8) -> Result<u64, HostError> {
        let size = prop_size(size)?;
        let c = self
            .submit_admin(HostCommand::new(command::property_get(offset, size)))
            .await?
            .ok()?;
        Ok(match size {
            PropertySize::Four => u64::from(c.cqe.dw0.get()),
            PropertySize::Eight => c.cqe.result64(),
        })
    }

    /// Property Set (NVMe-oF 1.1 §3.6).
    pub async fn property_set(&self, offset: u32, size: u8, value: u64) -> Result<(), HostError> {
        let size = prop_size(size)?;
        self.submit_admin(HostCommand::new(command::property_set(offset, size, value)))
            .await?
            .ok()?;
        Ok(())
    }

    async fn identify_controller_uncached(&self) -> Result<IdentifyController, HostError> {
        let c = self
            .identify_raw(Cns::Controller.to_u8(), 0, 0)
            .await?
            .ok()?;
        IdentifyController::from_bytes(&c.data).ok_or_else(|| {
            HostError::Protocol(format!(
                "Identify Controller returned {} bytes",
                c.data.len()
            ))
        })
    }

    /// Identify with any CNS, NSID and CSI (CNTID 0); returns the completion (status
    /// unchecked) with its 4096 bytes of data.
    pub async fn identify_raw(
        &self,
        cns: u8,
        nsid: u32,
        csi: u8,
    ) -> Result<HostCompletion, HostError> {
        self.identify_full(cns, nsid, 0, csi).await
    }

    /// Identify with every selector (NVMe Base 2.0 Figure 273).
    pub async fn identify_full(
        &self,
        cns: u8,
        nsid: u32,
        cntid: u16,
        csi: u8,
    ) -> Result<HostCompletion, HostError> {
        self.submit_admin(HostCommand::with_data_in(
            command::identify(cns, nsid, cntid, csi),
            IDENTIFY_LEN,
        ))
        .await
    }

    /// Identify Namespace (CNS 00h): the 4096-byte page (parse it with
    /// [`IdentifyNamespace::from_bytes`]).
    pub async fn identify_namespace(&self, nsid: u32) -> Result<Bytes, HostError> {
        Ok(self
            .identify_raw(Cns::Namespace.to_u8(), nsid, 0)
            .await?
            .ok()?
            .data)
    }

    /// Identify Namespace (CNS 00h), parsed.
    pub async fn identify_namespace_parsed(
        &self,
        nsid: u32,
    ) -> Result<IdentifyNamespace, HostError> {
        let data = self.identify_namespace(nsid).await?;
        IdentifyNamespace::from_bytes(&data).ok_or_else(|| {
            HostError::Protocol(format!("Identify Namespace returned {} bytes", data.len()))
        })
    }

    /// Active Namespace ID list (CNS 02h), following it past 1024 entries.
    pub async fn active_namespaces(&self) -> Result<Vec<u32>, HostError> {
        let mut all = Vec::new();
        let mut after = 0u32;
        loop {
            let page = self
                .identify_raw(Cns::ActiveNamespaceList.to_u8(), after, 0)
                .await?
                .ok()?
                .data;
            let ids = parse_namespace_list(&page);
            let full = ids.len() == 1024;
            let last = ids.last().copied();
            all.extend(ids);
            match last {
                Some(l) if full && l < 0xffff_fffe => after = l,
                _ => return Ok(all),
            }
        }
    }

    /// Namespace Identification Descriptor list (CNS 03h, NVMe Base 2.0 §5.17.2.3) as
    /// (NIDT, NID) pairs, NID bytes as sent (unknown types included).
    pub async fn ns_descriptors(&self, nsid: u32) -> Result<Vec<(u8, Vec<u8>)>, HostError> {
        let page = self
            .identify_raw(Cns::NamespaceIdDescriptors.to_u8(), nsid, 0)
            .await?
            .ok()?
            .data;
        Ok(parse_ns_descriptors(&page))
    }

    /// Get Log Page (NVMe Base 2.0 §5.16): `len` bytes at byte `offset` (`len` rounded up
    /// to whole dwords), RAE 0. An error status is [`HostError::Status`]; use
    /// [`Controller::get_log_page_raw`] to assert on it.
    pub async fn get_log_page(
        &self,
        lid: u8,
        nsid: u32,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, HostError> {
        Ok(self
            .get_log_page_raw(lid, nsid, offset, len, false)
            .await?
            .ok()?
            .data)
    }

    /// Get Log Page with the Retain Asynchronous Event bit chosen by the caller; returns the
    /// completion whatever its status.
    pub async fn get_log_page_raw(
        &self,
        lid: u8,
        nsid: u32,
        offset: u64,
        len: u32,
        rae: bool,
    ) -> Result<HostCompletion, HostError> {
        let len = len.max(4).next_multiple_of(4);
        self.submit_admin(HostCommand::with_data_in(
            command::get_log_page(lid, nsid, offset, len, rae),
            len,
        ))
        .await
    }

    /// Get Features (NVMe Base 2.0 §5.15); `data_len` for features with a data buffer.
    pub async fn get_features(
        &self,
        fid: u8,
        sel: u8,
        nsid: u32,
        cdw11: u32,
        data_len: u32,
    ) -> Result<HostCompletion, HostError> {
        self.submit_admin(HostCommand::with_data_in(
            command::get_features(fid, sel, nsid, cdw11),
            data_len,
        ))
        .await
    }

    /// Set Features (NVMe Base 2.0 §5.27) with an optional data buffer.
    pub async fn set_features(
        &self,
        fid: u8,
        nsid: u32,
        cdw11: u32,
        data: Option<Bytes>,
    ) -> Result<HostCompletion, HostError> {
        self.submit_admin(HostCommand {
            sqe: command::set_features(fid, nsid, cdw11, false),
            data_out: data,
            data_in_len: 0,
        })
        .await
    }

    /// Enable asynchronous event notices (Set Features 0Bh, NVMe Base 2.0 §5.27.1.7).
    pub async fn set_async_event_config(&self, bits: u32) -> Result<HostCompletion, HostError> {
        self.set_features(FeatureId::AsyncEventConfiguration.to_u8(), 0, bits, None)
            .await
    }

    /// Keep Alive (NVMe Base 2.0 §5.25).
    pub async fn keep_alive(&self) -> Result<HostCompletion, HostError> {
        self.submit_admin(HostCommand::new(command::keep_alive()))
            .await
    }

    /// Asynchronous Event Request (NVMe Base 2.0 §5.2): resolves when the controller
    /// reports an event (no timeout), or when the connection dies.
    pub async fn async_event_request(&self) -> Result<HostCompletion, HostError> {
        self.admin
            .submit_timeout(HostCommand::new(command::async_event_request()), None)
            .await
    }

    /// Read `nlb` blocks at `slba`; the data length is taken from Identify Namespace
    /// (formatted LBA size), so the first call per namespace costs one Identify.
    pub async fn read(
        &self,
        qid: u16,
        nsid: u32,
        slba: u64,
        nlb: u32,
    ) -> Result<HostCompletion, HostError> {
        let bs = self.block_size(nsid).await?;
        self.read_with_block_size(qid, nsid, slba, nlb, bs).await
    }

    /// Read with a caller-known block size (no Identify Namespace).
    pub async fn read_with_block_size(
        &self,
        qid: u16,
        nsid: u32,
        slba: u64,
        nlb: u32,
        block_size: u32,
    ) -> Result<HostCompletion, HostError> {
        let len = nlb
            .checked_mul(block_size)
            .ok_or_else(|| HostError::Protocol("read length overflows 32 bits".into()))?;
        self.submit_io(
            qid,
            HostCommand::with_data_in(command::read(nsid, slba, nlb), len),
        )
        .await
    }

    /// Write `data` (whole blocks) at `slba`; NLB comes from the data length and the
    /// namespace block size.
    pub async fn write(
        &self,
        qid: u16,
        nsid: u32,
        slba: u64,
        data: Bytes,
        fua: bool,
    ) -> Result<HostCompletion, HostError> {
        let nlb = self.blocks_for(nsid, data.len()).await?;
        self.submit_io(
            qid,
            HostCommand::with_data_out(command::write(nsid, slba, nlb, fua), data),
        )
        .await
    }

    /// Compare `data` with the blocks at `slba` (NVM Command Set 1.0 §3.2.1).
    pub async fn compare(
        &self,
        qid: u16,
        nsid: u32,
        slba: u64,
        data: Bytes,
    ) -> Result<HostCompletion, HostError> {
        let nlb = self.blocks_for(nsid, data.len()).await?;
        self.submit_io(
            qid,
            HostCommand::with_data_out(command::compare(nsid, slba, nlb), data),
        )
        .await
    }

    pub async fn flush(&self, qid: u16, nsid: u32) -> Result<HostCompletion, HostError> {
        self.submit_io(qid, HostCommand::new(command::flush(nsid)))
            .await
    }

    pub async fn write_zeroes(
        &self,
        qid: u16,
        nsid: u32,
        slba: u64,
        nlb: u32,
    ) -> Result<HostCompletion, HostError> {
        self.submit_io(
            qid,
            HostCommand::new(command::write_zeroes(nsid, slba, nlb, false)),
        )
        .await
    }

    /// Dataset Management, Deallocate, for `(slba, nlb)` ranges (1..=256 of them).
    pub async fn dsm_deallocate(
        &self,
        qid: u16,
        nsid: u32,
        ranges: &[(u64, u32)],
    ) -> Result<HostCompletion, HostError> {
        if ranges.is_empty() || ranges.len() > DsmRange::MAX_RANGES {
            return Err(HostError::Protocol(format!(
                "{} DSM ranges (1..={} allowed)",
                ranges.len(),
                DsmRange::MAX_RANGES
            )));
        }
        let data = Bytes::from(command::dsm_ranges(ranges));
        self.submit_io(
            qid,
            HostCommand::with_data_out(command::dsm_deallocate(nsid, ranges.len()), data),
        )
        .await
    }

    /// Logical block size of `nsid`: the LBA format FLBAS selects in Identify Namespace
    /// (NVM Command Set 1.0 §4.1.5.1). Cached per namespace after the first call.
    pub async fn block_size(&self, nsid: u32) -> Result<u32, HostError> {
        if let Some(bs) = self.block_size_cache().get(&nsid) {
            return Ok(*bs);
        }
        let ns = self.identify_namespace_parsed(nsid).await?;
        let bs = ns
            .block_size()
            .filter(|bs| (512..=1 << 31).contains(bs))
            .ok_or_else(|| {
                HostError::Protocol(format!("namespace {nsid} has no usable LBA format"))
            })?;
        self.block_size_cache().insert(nsid, bs);
        Ok(bs)
    }

    /// Forget cached block sizes (after a Format or namespace change).
    pub fn forget_block_sizes(&self) {
        self.block_size_cache().clear();
    }

    fn block_size_cache(&self) -> std::sync::MutexGuard<'_, HashMap<u32, u32>> {
        self.block_sizes.lock_counted()
    }

    pub(crate) async fn blocks_for(&self, nsid: u32, len: usize) -> Result<u32, HostError> {
        let bs = self.block_size(nsid).await? as usize;
        if len == 0 || len.checked_rem(bs) != Some(0) || len / bs > 65536 {
            return Err(HostError::Protocol(format!(
                "{len} bytes is not 1..=65536 blocks of {bs}"
            )));
        }
        Ok((len / bs) as u32)
    }

    /// Orderly shutdown (NVMe Base 2.0 §3.6.2): CC.SHN = 01b, wait for CSTS.SHST = 10b,
    /// Disconnect each I/O queue (NVMe-oF 1.1 §3.4) and close all connections.
    pub async fn shutdown(self) -> Result<(), HostError> {
        self.keep_alive.cancel();
        let cc = Cc(self.property_get(property::CC, 4).await? as u32)
            .with_shn(ShutdownNotification::Normal);
        self.property_set(property::CC, 4, u64::from(cc.0)).await?;
        let deadline = Instant::now() + self.cap_timeout().max(Duration::from_secs(5));
        let mut result = Ok(());
        loop {
            let csts = Csts(self.property_get(property::CSTS, 4).await? as u32);
            if csts.shst() == ShutdownStatus::Complete {
                break;
            }
            if Instant::now() >= deadline {
                result = Err(HostError::Timeout);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for q in &self.io {
            // Best effort: a controller that already tore the queue down may just close.
            match q.submit(HostCommand::new(command::disconnect())).await {
                Ok(c) if !c.status().is_success() => {
                    tracing::debug!(qid = q.qid(), status = %c.status(), "disconnect failed");
                }
                Ok(_) | Err(_) => {}
            }
            q.close();
        }
        self.admin.close();
        result
    }

    /// Close every connection without the shutdown handshake (like a host crash).
    pub fn abort(self) {
        self.keep_alive.cancel();
        for q in &self.io {
            q.close();
        }
        self.admin.close();
    }
}

fn prop_size(size: u8) -> Result<PropertySize, HostError> {
    match size {
        4 => Ok(PropertySize::Four),
        8 => Ok(PropertySize::Eight),
        other => Err(HostError::Protocol(format!("property size {other}"))),
    }
}

/// Identify Controller data as read at initialization: derefs to
/// [`nvme_spec::identify::IdentifyController`] for every field, plus shortcuts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifyInfo(pub IdentifyController);

impl std::ops::Deref for IdentifyInfo {
    type Target = IdentifyController;

    fn deref(&self) -> &IdentifyController {
        &self.0
    }
}

impl IdentifyInfo {
    pub fn cntlid(&self) -> u16 {
        self.0.cntlid.get()
    }
    pub fn serial(&self) -> String {
        self.0.serial_number()
    }
    pub fn model(&self) -> String {
        self.0.model_number()
    }
    pub fn firmware(&self) -> String {
        self.0.firmware_revision()
    }
    pub fn ver(&self) -> u32 {
        self.0.ver.get()
    }
    pub fn mdts(&self) -> u8 {
        self.0.mdts
    }
    pub fn nn(&self) -> u32 {
        self.0.nn.get()
    }
    /// SUBNQN as text (lossy: whatever precedes the first NUL).
    pub fn subnqn(&self) -> String {
        read_ascii_trimmed(&self.0.subnqn)
    }
    pub fn ioccsz(&self) -> u32 {
        self.0.ioccsz.get()
    }
    /// Largest in-capsule write on an I/O queue: NVMe-oF 1.1 §4.1, IOCCSZ counts 16-byte
    /// units of the whole command capsule, the 64-byte SQE included.
    pub fn io_in_capsule_data(&self) -> u32 {
        self.ioccsz().saturating_mul(16).saturating_sub(64)
    }
}

/// Parse a Namespace Identification Descriptor list (NVMe Base 2.0 Figure 278: NIDT, NIDL,
/// 2 reserved bytes, NIDL bytes of NID); stops at NIDT 0, NIDL 0 or a truncated entry.
pub fn parse_ns_descriptors(page: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while let (Some(&nidt), Some(&nidl)) = (page.get(off), page.get(off + 1)) {
        if nidt == 0 || nidl == 0 {
            break;
        }
        let start = off + 4;
        let Some(nid) = page.get(start..start + usize::from(nidl)) else {
            break;
        };
        out.push((nidt, nid.to_vec()));
        off = start + usize::from(nidl);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_descriptor_list() {
        let mut page = vec![0u8; 4096];
        // NGUID (NIDT 2, NIDL 16) then CSI (NIDT 4, NIDL 1).
        page[0] = 2;
        page[1] = 16;
        page[4..20].copy_from_slice(&[0xab; 16]);
        page[20] = 4;
        page[21] = 1;
        page[24] = 0x02;
        let d = parse_ns_descriptors(&page);
        assert_eq!(d, vec![(2, vec![0xab; 16]), (4, vec![0x02])]);
        // A truncated descriptor stops the walk.
        assert_eq!(parse_ns_descriptors(&[3, 16, 0, 0, 1, 2]), vec![]);
    }

    #[test]
    fn identify_info_shortcuts() {
        let mut c = IdentifyController::zeroed();
        c.set_serial_number("SN1");
        c.cntlid.set(7);
        c.ioccsz.set(516);
        c.mdts = 5;
        let _ = c.set_subnqn("nqn.x");
        let i = IdentifyInfo(c);
        assert_eq!(
            (i.cntlid(), i.serial(), i.mdts()),
            (7, "SN1".to_string(), 5)
        );
        assert_eq!(i.subnqn(), "nqn.x");
        assert_eq!(i.io_in_capsule_data(), 8192);
        // Deref gives the spec struct's fields.
        assert_eq!(i.cntlid.get(), 7);
    }
}
