//! Controller bring-up and identification (NVMe Base 2.0 §3.5.1 "Memory-based Controller
//! Initialization"), shutdown (§3.6.1), and I/O queue creation (§3.5.1 steps 12-13).

use std::time::Duration;

use super::admin::{self, AdminQueue};
use super::clock::{poll_until, Clock};
use super::dma::DmaRegion;
use super::error::DriverError;
use super::pool::PagePool;
use super::regs::{aqa, DoorbellLayout, Mmio, ACQ, AQA, ASQ, CAP, CC, CSTS};
use crate::features::{FeatureId, NumberOfQueues};
use crate::identify::{
    self, Cns, Csi, IdentifyController, IdentifyNamespace, NsDescriptor, IOCS_NVM, IOCS_ZONED,
};
use crate::properties::{Cap, Cc, Csts, ShutdownNotification, ShutdownStatus};
use crate::zns::{IdentifyZnsController, IdentifyZnsNamespace};
use zerocopy::FromBytes;

/// Admin queue entries (both queues), capped by CAP.MQES.
pub const ADMIN_ENTRIES: u32 = 32;
/// Largest transfer per command the driver uses when the controller reports no MDTS limit.
pub const MAX_TRANSFER_WITHOUT_MDTS: u64 = 2 << 20;
/// Shortest ready/shutdown wait, for controllers that report CAP.TO = 0.
const MIN_REGISTER_TIMEOUT: Duration = Duration::from_millis(500);

/// What the controller reported at bring-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerInfo {
    pub model: String,
    pub serial: String,
    pub firmware: String,
    /// MDTS in bytes; `None` when the controller has no limit.
    pub mdts_bytes: Option<u64>,
    /// Bytes the driver puts in one command: MDTS, or [`MAX_TRANSFER_WITHOUT_MDTS`].
    pub max_transfer: u64,
    /// SGL data block descriptors supported for NVM commands (Identify SGLS bits 1:0).
    pub sgl: bool,
    /// Identify NN: the largest namespace ID.
    pub namespace_count: u32,
    /// A volatile write cache is present (Identify VWC bit 0).
    pub volatile_write_cache: bool,
    /// The selected I/O command set combination (CNS 1Ch vector) when CC.CSS = 110b.
    pub io_command_sets: Option<u64>,
    /// Its index, which Set Features I/O Command Set Profile selected when not 0.
    pub command_set_index: Option<usize>,
    /// Zone append size limit in bytes (ZNS 1.1 §4.5.1 ZASL; 0 there means MDTS).
    pub zone_append_limit: Option<u64>,
    pub io_queues: u16,
    /// Entries per I/O queue.
    pub queue_entries: u32,
    pub namespaces: Vec<NamespaceInfo>,
}

/// An active namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub nsid: u32,
    pub block_size: u32,
    pub blocks: u64,
    pub zoned: Option<ZonedInfo>,
}

/// Limits of a zoned namespace (ZNS 1.1 §4.1.5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonedInfo {
    /// Blocks per zone (LBAFE ZSZE of the format in use).
    pub zone_size: u64,
    /// Maximum open resources (MOR + 1); `None` when unlimited.
    pub max_open: Option<u32>,
    /// Maximum active resources (MAR + 1); `None` when unlimited.
    pub max_active: Option<u32>,
}

/// Registers and admin queue of an enabled controller.
pub struct Enabled<M> {
    pub cap: Cap,
    pub cc: Cc,
    pub layout: DoorbellLayout,
    pub admin: AdminQueue<M>,
}

/// Everything a bring-up step needs.
pub struct Ctx<'a, M> {
    pub mmio: &'a dyn Mmio,
    pub clock: &'a dyn Clock,
    pub pool: &'a PagePool<M>,
    /// Admin command timeout.
    pub timeout: Duration,
}

fn read_csts(mmio: &dyn Mmio) -> Result<Csts, DriverError> {
    match mmio.read32(CSTS as usize) {
        u32::MAX => Err(DriverError::Gone("CSTS reads all ones".into())),
        v => Ok(Csts(v)),
    }
}

/// Whether the controller has failed: CSTS all ones (removed) or CFS set.
pub fn health(mmio: &dyn Mmio) -> Result<(), DriverError> {
    if read_csts(mmio)?.cfs() {
        return Err(DriverError::Fatal);
    }
    Ok(())
}

fn register_timeout(cap: Cap) -> Duration {
    cap.timeout().max(MIN_REGISTER_TIMEOUT)
}

/// Wait for CSTS.RDY to equal `ready` within CAP.TO. CFS while waiting for ready is a failure
/// (NVMe Base 2.0 §3.1.4.6); all-ones CSTS means the device is gone.
pub fn wait_ready(
    mmio: &dyn Mmio,
    clock: &dyn Clock,
    cap: Cap,
    ready: bool,
) -> Result<(), DriverError> {
    let after = register_timeout(cap);
    poll_until(clock, after, || match read_csts(mmio) {
        Err(e) => Some(Err(e)),
        Ok(c) if ready && c.cfs() => Some(Err(DriverError::Fatal)),
        Ok(c) if c.rdy() == ready => Some(Ok(())),
        Ok(_) => None,
    })
    .unwrap_or(Err(DriverError::Timeout {
        what: if ready {
            "CSTS.RDY = 1"
        } else {
            "CSTS.RDY = 0"
        },
        after,
    }))
}

/// Clear CC.EN and wait for CSTS.RDY = 0 (NVMe Base 2.0 §3.5.1 step 1, a Controller Reset).
pub fn disable(mmio: &dyn Mmio, clock: &dyn Clock, cap: Cap) -> Result<(), DriverError> {
    let cc = Cc(mmio.read32(CC as usize));
    if cc.0 == u32::MAX {
        return Err(DriverError::Gone("CC reads all ones".into()));
    }
    if cc.en() {
        mmio.write32(CC as usize, cc.with_en(false).0);
    }
    wait_ready(mmio, clock, cap, false)
}

/// The CC value the driver enables with: 4 KiB pages, round robin arbitration, 64-byte SQEs
/// and 16-byte CQEs, and CSS 110b (all I/O command sets) when CAP.CSS bit 6 says the
/// controller supports it, else 000b (NVM) (NVMe Base 2.0 §3.1.4.5).
pub fn controller_config(cap: Cap) -> Result<Cc, DriverError> {
    if cap.mpsmin() != 0 {
        return Err(DriverError::Unsupported(format!(
            "smallest memory page is {} bytes; the driver uses 4 KiB",
            cap.min_page_size()
        )));
    }
    let css = if cap.supports_io_command_sets() {
        Cc::CSS_ALL_IO
    } else if cap.supports_nvm() {
        Cc::CSS_NVM
    } else {
        return Err(DriverError::Unsupported(
            "no NVM I/O command set (CAP.CSS)".into(),
        ));
    };
    Ok(Cc(0)
        .with_css(css)
        .with_mps(0)
        .with_ams(0)
        .with_iosqes(6)
        .with_iocqes(4))
}

/// Reset the controller and enable it with a fresh admin queue (NVMe Base 2.0 §3.5.1 steps
/// 1-7): read CAP, disable, program AQA/ASQ/ACQ, write CC, set EN, wait for RDY.
pub fn enable<M: DmaRegion>(ctx: &Ctx<'_, M>, bar_len: usize) -> Result<Enabled<M>, DriverError> {
    let cap = Cap(ctx.mmio.read64(CAP as usize));
    if cap.0 == u64::MAX {
        return Err(DriverError::Gone("CAP reads all ones".into()));
    }
    let cc = controller_config(cap)?;
    let layout = DoorbellLayout::new(cap, bar_len);
    disable(ctx.mmio, ctx.clock, cap)?;
    let entries = ADMIN_ENTRIES.min(cap.max_queue_entries());
    let admin = AdminQueue::new(ctx.pool, entries, &layout)?;
    ctx.mmio.write32(AQA as usize, aqa(entries, entries)?);
    ctx.mmio.write64(ASQ as usize, admin.sq_iova());
    ctx.mmio.write64(ACQ as usize, admin.cq_iova());
    ctx.mmio.write32(CC as usize, cc.0);
    ctx.mmio.write32(CC as usize, cc.with_en(true).0);
    wait_ready(ctx.mmio, ctx.clock, cap, true)?;
    Ok(Enabled {
        cap,
        cc,
        layout,
        admin,
    })
}

/// Normal shutdown: CC.SHN = 01b, then wait for CSTS.SHST = 10b (NVMe Base 2.0 §3.6.1).
pub fn shutdown(mmio: &dyn Mmio, clock: &dyn Clock, cap: Cap) -> Result<(), DriverError> {
    let cc = Cc(mmio.read32(CC as usize));
    if cc.0 == u32::MAX {
        return Err(DriverError::Gone("CC reads all ones".into()));
    }
    mmio.write32(CC as usize, cc.with_shn(ShutdownNotification::Normal).0);
    let after = register_timeout(cap);
    poll_until(clock, after, || match read_csts(mmio) {
        Err(e) => Some(Err(e)),
        Ok(c) if c.shst() == ShutdownStatus::Complete => Some(Ok(())),
        Ok(_) => None,
    })
    .unwrap_or(Err(DriverError::Timeout {
        what: "CSTS.SHST = shutdown complete",
        after,
    }))
}

fn identify_page<M: DmaRegion>(
    ctx: &Ctx<'_, M>,
    admin: &mut AdminQueue<M>,
    cns: Cns,
    csi: Csi,
    nsid: u32,
) -> Result<Vec<u8>, DriverError> {
    let sqe = admin::identify(cns.to_u8(), csi.to_u8(), nsid, 0);
    let (_, page) = admin.run_read_page(ctx.mmio, ctx.clock, ctx.pool, sqe, ctx.timeout)?;
    Ok(page)
}

/// A 0's based resource limit where all ones means "no limit" (ZNS 1.1 §4.1.5.1 MAR/MOR).
fn resource_limit(raw: u32) -> Option<u32> {
    (raw != u32::MAX).then(|| raw + 1)
}

/// Zone limits from an Identify Namespace CNS 05h CSI 02h page (ZNS 1.1 §4.1.5.1): MAR, MOR
/// and the zone size (ZSZE) of LBA format `format`; `None` if that zone size is 0.
pub fn parse_zoned(page: &[u8], format: usize) -> Option<ZonedInfo> {
    let id = IdentifyZnsNamespace::read_from_prefix(page).ok()?.0;
    let zone_size = id.lbafe.get(format)?.zsze.get();
    (zone_size != 0).then(|| ZonedInfo {
        zone_size,
        max_active: resource_limit(id.mar.get()),
        max_open: resource_limit(id.mor.get()),
    })
}

/// The command set combination to select: the first vector with NVM and ZNS, else the first
/// with NVM (NVMe Base 2.0 §5.17.2.20). Returns its index and value.
pub fn choose_command_sets(vectors: &[u64]) -> Option<(usize, u64)> {
    let find = |want: u64| {
        vectors
            .iter()
            .position(|v| v & want == want)
            .map(|i| (i, vectors[i]))
    };
    find(IOCS_NVM | IOCS_ZONED).or_else(|| find(IOCS_NVM))
}

/// Identify the controller and its active namespaces, selecting an I/O command set profile
/// when CC.CSS = 110b. Queue fields are left 0 for [`create_io_queues`] to fill.
pub fn identify<M: DmaRegion>(
    ctx: &Ctx<'_, M>,
    en: &mut Enabled<M>,
) -> Result<ControllerInfo, DriverError> {
    let page = identify_page(ctx, &mut en.admin, Cns::Controller, Csi::Nvm, 0)?;
    let id = IdentifyController::from_bytes(&page)
        .ok_or_else(|| DriverError::Unsupported("short Identify Controller".into()))?;
    // MDTS is a power of two in units of CAP.MPSMIN (NVMe Base 2.0 §5.17.2.1).
    let mdts_bytes = (id.mdts != 0).then(|| en.cap.min_page_size() << id.mdts);
    let mut info = ControllerInfo {
        model: id.model_number(),
        serial: id.serial_number(),
        firmware: id.firmware_revision(),
        mdts_bytes,
        max_transfer: mdts_bytes.unwrap_or(MAX_TRANSFER_WITHOUT_MDTS),
        sgl: id.sgls.get() & 0b11 != 0,
        namespace_count: id.nn.get(),
        volatile_write_cache: id.vwc & identify::ctrl_bits::VWC_PRESENT != 0,
        io_command_sets: None,
        command_set_index: None,
        zone_append_limit: None,
        io_queues: 0,
        queue_entries: 0,
        namespaces: Vec::new(),
    };
    if en.cc.css() == Cc::CSS_ALL_IO {
        let page = identify_page(ctx, &mut en.admin, Cns::IoCommandSet, Csi::Nvm, 0)?;
        let vectors = identify::parse_io_command_set_vectors(&page);
        let (index, vector) = choose_command_sets(&vectors).ok_or_else(|| {
            DriverError::Unsupported("no I/O command set combination with NVM".into())
        })?;
        if index != 0 {
            // I/O Command Set Profile, CDW11 bits 8:0 the combination index (NVMe Base 2.0
            // §5.27.1.21); index 0 is the default.
            let sqe = admin::set_features(FeatureId::IoCommandSetProfile.to_u8(), index as u32);
            en.admin.run(ctx.mmio, ctx.clock, sqe, ctx.timeout)?;
        }
        info.io_command_sets = Some(vector);
        info.command_set_index = Some(index);
        if vector & IOCS_ZONED != 0 {
            let page = identify_page(
                ctx,
                &mut en.admin,
                Cns::IoCommandSetController,
                Csi::Zoned,
                0,
            )?;
            let zasl = IdentifyZnsController::read_from_prefix(&page)
                .map(|(id, _)| id.zasl)
                .unwrap_or(0);
            // ZASL in units of CAP.MPSMIN, 0 = MDTS (ZNS 1.1 §4.1.5.2).
            info.zone_append_limit = Some(match zasl {
                0 => info.max_transfer,
                zasl => en.cap.min_page_size() << zasl,
            });
        }
    }
    let zoned_possible = info.zone_append_limit.is_some();
    let list = identify_page(ctx, &mut en.admin, Cns::ActiveNamespaceList, Csi::Nvm, 0)?;
    for nsid in identify::parse_namespace_list(&list) {
        let page = identify_page(ctx, &mut en.admin, Cns::Namespace, Csi::Nvm, nsid)?;
        let ns = IdentifyNamespace::from_bytes(&page)
            .ok_or_else(|| DriverError::Unsupported("short Identify Namespace".into()))?;
        let block_size = ns
            .block_size()
            .filter(|b| (512..=65536).contains(b))
            .ok_or_else(|| {
                DriverError::Unsupported(format!("namespace {nsid}: LBA data size unusable"))
            })?;
        let zoned = if zoned_possible {
            identify_zoned(ctx, &mut en.admin, nsid, ns.lba_format_index())?
        } else {
            None
        };
        info.namespaces.push(NamespaceInfo {
            nsid,
            block_size,
            blocks: ns.nsze.get(),
            zoned,
        });
    }
    Ok(info)
}

/// Zone limits of namespace `nsid` if it is zoned. Its command set comes from its
/// identification descriptors (CNS 03h, NIDT 04h); a controller that does not report one is
/// asked for the ZNS namespace structure (CNS 05h CSI 02h) directly, and refusing it means
/// the namespace is not zoned.
fn identify_zoned<M: DmaRegion>(
    ctx: &Ctx<'_, M>,
    admin: &mut AdminQueue<M>,
    nsid: u32,
    format: usize,
) -> Result<Option<ZonedInfo>, DriverError> {
    let csi = match identify_page(ctx, admin, Cns::NamespaceIdDescriptors, Csi::Nvm, nsid) {
        Ok(page) => NsDescriptor::parse_list(&page)
            .unwrap_or_default()
            .iter()
            .find_map(|d| match d {
                NsDescriptor::Csi(csi) => Some(*csi),
                _ => None,
            }),
        Err(DriverError::Admin { .. }) => None,
        Err(e) => return Err(e),
    };
    match csi {
        Some(c) if c != Csi::Zoned.to_u8() => Ok(None),
        known => match identify_page(ctx, admin, Cns::IoCommandSetNamespace, Csi::Zoned, nsid) {
            Ok(page) => Ok(parse_zoned(&page, format)),
            Err(DriverError::Admin { .. }) if known.is_none() => Ok(None),
            Err(e) => Err(e),
        },
    }
}

/// Ask for `wanted` I/O queue pairs with Set Features Number of Queues (NVMe Base 2.0
/// §5.27.1.5); returns how many pairs the controller granted, at most `wanted`.
pub fn negotiate_queues<M: DmaRegion>(
    ctx: &Ctx<'_, M>,
    admin: &mut AdminQueue<M>,
    wanted: u16,
) -> Result<u16, DriverError> {
    let want = NumberOfQueues {
        nsq: u32::from(wanted),
        ncq: u32::from(wanted),
    };
    let sqe = admin::set_features(FeatureId::NumberOfQueues.to_u8(), want.to_dword());
    let cqe = admin.run(ctx.mmio, ctx.clock, sqe, ctx.timeout)?;
    let got = NumberOfQueues::from_dw0(cqe.dw0.get());
    Ok(got.nsq.min(got.ncq).min(u32::from(wanted)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::clock::FakeClock;
    use crate::driver::regs::FakeMmio;

    #[test]
    fn cc_selects_command_sets_from_cap_css() {
        let nvm = Cap(0).with_css(Cap::CSS_NVM);
        let cc = controller_config(nvm).unwrap();
        assert_eq!(
            (
                cc.css(),
                cc.mps(),
                cc.ams(),
                cc.iosqes(),
                cc.iocqes(),
                cc.en()
            ),
            (0b000, 0, 0, 6, 4, false)
        );
        assert_eq!(cc.0, 0x0046_0000);
        let all = Cap(0).with_css(Cap::CSS_NVM | Cap::CSS_IO_COMMAND_SETS);
        assert_eq!(controller_config(all).unwrap().css(), 0b110);
        assert!(controller_config(Cap(0).with_css(Cap::CSS_ADMIN_ONLY)).is_err());
        assert!(controller_config(nvm.with_mpsmin(1)).is_err());
    }

    #[test]
    fn disable_clears_en_and_waits_for_not_ready() {
        let bar = FakeMmio::new(0x2000);
        let clock = FakeClock::new(Duration::from_millis(1));
        let cap = Cap(0).with_to(1);
        bar.set32(CC as usize, 0x0046_0001);
        bar.script32(CSTS as usize, [1, 1, 1]);
        disable(&bar, &clock, cap).unwrap();
        assert_eq!(bar.value(CC as usize), 0x0046_0000);
        assert_eq!(clock.now(), Duration::from_millis(3));
        // RDY stuck at 1: CAP.TO (500 ms) passes.
        bar.set32(CSTS as usize, 1);
        assert!(matches!(
            disable(&bar, &clock, cap),
            Err(DriverError::Timeout {
                what: "CSTS.RDY = 0",
                ..
            })
        ));
        bar.set32(CSTS as usize, u32::MAX);
        assert!(matches!(health(&bar), Err(DriverError::Gone(_))));
        bar.set32(CSTS as usize, 0b10);
        assert!(matches!(health(&bar), Err(DriverError::Fatal)));
    }

    #[test]
    fn command_set_choice_prefers_nvm_with_zns() {
        assert_eq!(
            choose_command_sets(&[IOCS_NVM, IOCS_NVM | IOCS_ZONED]),
            Some((1, 5))
        );
        assert_eq!(choose_command_sets(&[0, IOCS_NVM]), Some((1, 1)));
        assert_eq!(choose_command_sets(&[IOCS_ZONED]), None);
    }

    #[test]
    fn zoned_limits_parse() {
        let mut id = IdentifyZnsNamespace::zeroed();
        id.mar.set(u32::MAX);
        id.mor.set(13);
        id.lbafe[2].zsze.set(0x8000);
        let page = zerocopy::IntoBytes::as_bytes(&id).to_vec();
        let z = parse_zoned(&page, 2).unwrap();
        assert_eq!(
            (z.zone_size, z.max_open, z.max_active),
            (0x8000, Some(14), None)
        );
        assert_eq!(parse_zoned(&page, 0), None);
    }
}
