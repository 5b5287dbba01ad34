//! `GET /api/v1/drives`: the local NVMe drives namespaces are opened on — nvme-vfio
//! controllers our driver runs, nvme-uring devices the kernel keeps — with what their
//! drivers report: identity, health (with an nvme-vfio drive's SMART / Health log, read from
//! the drive for the answer), queues, and their namespaces with where each is exported; then
//! every other NVMe drive of the PCI bus, unexported, with what the kernel shows of it (its
//! identity and namespaces when the kernel's nvme driver holds it) and the driver bound to
//! it, which is what an operator needs to export it. The drives are the Redfish view's (its
//! snapshot groups them the same way, and its Drive resource is made from [`drive_view`]).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::config::BackendKind;
use target::drives::{SmartLog, SmartSeverity, SmartWarning};
use target::engine::Engine;
use target::kernel_nvme::{kernel_controller, KernelController};
use target::local_drives::LocalDrive;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::redfish::snapshot::{Drive, DriveKind, Snapshot};
use crate::state::AppState;

/// How the daemon drives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriveDriver {
    /// ferrofab's userspace driver, through VFIO.
    NvmeVfio,
    /// The kernel's driver, through io_uring passthrough.
    NvmeUring,
}

/// Whether it works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriveState {
    /// The driver runs it (nvme-vfio), or the kernel reports it live (nvme-uring).
    Ok,
    /// Being reset or reconnected by the kernel.
    Degraded,
    /// Gone: removed, failed (CSTS.CFS) or shut down; `detail` says why.
    Failed,
    /// The driver reports nothing (a controller without our driver, or no sysfs entry; an
    /// unexported drive the kernel's driver does not hold).
    Unknown,
}

/// What the drivers report of its condition.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DriveHealth {
    pub state: DriveState,
    /// Why it failed (nvme-vfio), or the kernel driver's state word (nvme-uring).
    pub detail: Option<String>,
    /// Controller resets after commands timed out (nvme-vfio).
    pub controller_resets: Option<u32>,
    /// Composite Temperature of its SMART / Health log in °C: from `smart_log` (nvme-vfio),
    /// or as the kernel's hwmon sensor reads it (nvme-uring, with kernel hwmon support).
    pub temperature_celsius: Option<f64>,
    /// Its SMART / Health Information log (NVMe Base 2.0 §5.16.1.3), read from the drive for
    /// this answer; null when there is none to show, and `smart_log_unavailable` says why.
    pub smart_log: Option<SmartLogView>,
    /// Why `smart_log` is null: the read failed (the error), the drive is the kernel's
    /// (nvme-uring, or unexported on the kernel's driver), or no driver of ferrofab's runs it.
    pub smart_log_unavailable: Option<String>,
    /// I/O queue pairs the controller granted (nvme-vfio).
    pub io_queues: Option<u16>,
    /// Entries per I/O queue (nvme-vfio).
    pub queue_entries: Option<u32>,
    /// Largest transfer per command in bytes (nvme-vfio: MDTS or the driver's default).
    pub max_transfer_bytes: Option<u64>,
}

/// A Critical Warning bit of the SMART / Health log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmartWarningView {
    /// Bit 0: available spare below its threshold.
    AvailableSpare,
    /// Bit 1: a temperature out of its thresholds.
    Temperature,
    /// Bit 2: reliability degraded (media or internal errors).
    Reliability,
    /// Bit 3: the media is read only.
    ReadOnly,
    /// Bit 4: the volatile memory backup device failed.
    VolatileMemoryBackup,
    /// Bit 5: the Persistent Memory Region is read only or unreliable.
    PersistentMemoryRegion,
}

/// The worst critical warning: `critical` when data is at risk (reliability, read only,
/// backup or persistent memory failed), `warning` for spare or temperature, else `ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmartSeverityView {
    Ok,
    Warning,
    Critical,
}

/// A drive's SMART / Health Information log (NVMe Base 2.0 §5.16.1.3). Counters larger than
/// 2^64 - 1 are shown as 2^64 - 1.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SmartLogView {
    /// The Critical Warning byte as read.
    pub critical_warning: u8,
    /// Its bits that are set.
    pub warnings: Vec<SmartWarningView>,
    pub severity: SmartSeverityView,
    /// The drive predicts its own failure: spare below its threshold, reliability degraded or
    /// media read only (bits 0, 2 or 3).
    pub failure_predicted: bool,
    /// Composite Temperature in kelvin, as the drive reports it.
    pub temperature_kelvin: u16,
    /// The same in °C (kelvin - 273.15).
    pub temperature_celsius: f64,
    /// Spare capacity left, percent.
    pub available_spare_percent: u8,
    /// Below this spare the drive warns (critical warning bit 0), percent.
    pub available_spare_threshold_percent: u8,
    /// The drive's estimate of its life used, percent (may exceed 100).
    pub percentage_used: u8,
    /// In data units: 1000 units of 512 bytes, rounded up.
    pub data_units_read: u64,
    pub data_units_written: u64,
    /// `data_units_read` in bytes (512,000 a unit).
    pub data_read_bytes: u64,
    /// `data_units_written` in bytes (512,000 a unit).
    pub data_written_bytes: u64,
    pub host_read_commands: u64,
    pub host_write_commands: u64,
    pub power_cycles: u64,
    pub power_on_hours: u64,
    pub unsafe_shutdowns: u64,
    /// Unrecovered data integrity errors.
    pub media_errors: u64,
    /// Error Information log entries over the drive's life.
    pub error_log_entries: u64,
}

impl SmartLogView {
    pub(crate) fn new(log: &SmartLog) -> SmartLogView {
        let n = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        SmartLogView {
            critical_warning: log.critical_warning,
            warnings: log.warnings().map(warning).collect(),
            severity: match log.severity() {
                SmartSeverity::Ok => SmartSeverityView::Ok,
                SmartSeverity::Warning => SmartSeverityView::Warning,
                SmartSeverity::Critical => SmartSeverityView::Critical,
            },
            failure_predicted: log.predicts_failure(),
            temperature_kelvin: log.temperature_kelvin,
            temperature_celsius: log.temperature_celsius(),
            available_spare_percent: log.available_spare_percent,
            available_spare_threshold_percent: log.available_spare_threshold_percent,
            percentage_used: log.percentage_used,
            data_units_read: n(log.data_units_read),
            data_units_written: n(log.data_units_written),
            data_read_bytes: n(SmartLog::data_unit_bytes(log.data_units_read)),
            data_written_bytes: n(SmartLog::data_unit_bytes(log.data_units_written)),
            host_read_commands: n(log.host_read_commands),
            host_write_commands: n(log.host_write_commands),
            power_cycles: n(log.power_cycles),
            power_on_hours: n(log.power_on_hours),
            unsafe_shutdowns: n(log.unsafe_shutdowns),
            media_errors: n(log.media_errors),
            error_log_entries: n(log.error_log_entries),
        }
    }
}

fn warning(w: SmartWarning) -> SmartWarningView {
    match w {
        SmartWarning::AvailableSpare => SmartWarningView::AvailableSpare,
        SmartWarning::Temperature => SmartWarningView::Temperature,
        SmartWarning::Reliability => SmartWarningView::Reliability,
        SmartWarning::ReadOnly => SmartWarningView::ReadOnly,
        SmartWarning::VolatileMemoryBackup => SmartWarningView::VolatileMemoryBackup,
        SmartWarning::PersistentMemoryRegion => SmartWarningView::PersistentMemoryRegion,
    }
}

/// Where a drive namespace is exported.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportView {
    pub subsystem: String,
    pub nsid: u32,
}

/// A namespace of the drive.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DriveNamespaceView {
    /// Its NSID on the drive (null for an nvme-uring device, which names it by `device`; for
    /// an unexported drive's, what sysfs shows).
    pub nsid: Option<u32>,
    /// nvme-uring: the generic character device it is opened through; unexported drive on the
    /// kernel's driver: the one an nvme-uring namespace would open (`/dev/ng0n1`).
    pub device: Option<String>,
    pub block_size: u32,
    pub blocks: u64,
    pub size_bytes: u64,
    /// A zoned namespace (NVMe ZNS).
    pub zoned: bool,
    /// Where hosts reach it; empty when no subsystem exports it.
    pub exported_as: Vec<ExportView>,
}

/// A local NVMe drive.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DriveView {
    /// The PCI address (nvme-vfio, and a drive not exported), or the kernel's controller
    /// (`nvme0`) or device name (nvme-uring).
    pub id: String,
    /// Whether a namespace of it is exported: false for a drive the PCI bus shows that no
    /// namespace is opened on (creating one on it exports it).
    pub exported: bool,
    /// How the daemon drives it; null when it is not exported.
    pub driver: Option<DriveDriver>,
    /// The PCI address of its controller, when known (an nvme-uring drive's from sysfs).
    pub pci: Option<String>,
    /// The kernel driver bound to its PCI function (`nvme`, `vfio-pci`, or another's name),
    /// `none` when no driver is; null when sysfs lists no such NVMe PCI function.
    pub driver_bound: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub health: DriveHealth,
    /// Sum of its namespaces' sizes below.
    pub capacity_bytes: u64,
    /// nvme-vfio: every active namespace the driver found; nvme-uring: the ones opened;
    /// unexported: those the kernel's driver shows (none when it does not hold the drive).
    pub namespaces: Vec<DriveNamespaceView>,
}

/// The local NVMe drives, by id: the ones namespaces are opened on (exported), then every
/// other NVMe drive on the PCI bus (not exported).
#[utoipa::path(get, path = "/api/v1/drives", tag = "system",
    responses(
        (status = 200, description = "The drives, exported or not", body = [DriveView]),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<DriveView>>, ApiError> {
    state.blocking(|engine| Json(drives(engine))).await
}

fn drives(engine: &Engine) -> Vec<DriveView> {
    let snap = Snapshot::read(engine);
    snap.drives.iter().map(|d| drive_view(engine, d)).collect()
}

/// What the drive's driver reports of drive `d` of a snapshot, read now (an nvme-vfio
/// drive's SMART / Health log is an admin command: call it on the blocking pool).
pub(crate) fn drive_view(engine: &Engine, d: &Drive) -> DriveView {
    let config = engine.config();
    let backend = |nqn: &str, nsid: u32| {
        config
            .subsystem
            .iter()
            .find(|s| s.nqn == nqn)?
            .namespace
            .iter()
            .find(|n| n.nsid == Some(nsid))
            .map(|n| n.backend.clone())
    };
    let volumes: Vec<(String, u32, Option<BackendKind>)> = d
        .volumes
        .iter()
        .map(|(nqn, nsid)| (nqn.clone(), *nsid, backend(nqn, *nsid)))
        .collect();
    let found = d.found.as_ref();
    let mut view = match &d.kind {
        DriveKind::Vfio { pci } => vfio(engine, &d.id, pci, &volumes),
        DriveKind::Uring { paths } => {
            let kernel = found
                .and_then(|f| f.controller.clone())
                .or_else(|| kernel_controller(engine.drives().sysfs(), &d.id));
            uring(engine, &d.id, paths, &volumes, kernel)
        }
        DriveKind::Unexported => unexported(&d.id, found),
    };
    view.exported = d.exported();
    view.pci = match &d.kind {
        DriveKind::Vfio { pci } => Some(pci.clone()),
        DriveKind::Uring { .. } | DriveKind::Unexported => found.map(|f| f.pci.clone()),
    };
    view.driver_bound = found.map(|f| f.driver.clone().unwrap_or_else(|| "none".into()));
    view
}

/// A drive no namespace is opened on: what the kernel shows of it, when its driver holds it.
fn unexported(id: &str, found: Option<&LocalDrive>) -> DriveView {
    let Some((found, kernel)) = found.and_then(|f| Some((f, f.controller.as_ref()?))) else {
        let mut health = health(DriveState::Unknown, None);
        health.smart_log_unavailable = Some(format!(
            "not exported and {}: no driver of ferrofab's or the kernel's runs it, so nothing \
             reads its log",
            match found.and_then(|f| f.driver.as_deref()) {
                Some(d) => format!("bound to {d}"),
                None => "bound to no driver".into(),
            }
        ));
        return drive(id, None, [None, None, None], health, Vec::new());
    };
    let namespaces = found
        .namespaces
        .iter()
        .map(|n| DriveNamespaceView {
            nsid: n.nsid,
            device: n.generic.clone(),
            block_size: n.block_size,
            blocks: n.blocks,
            size_bytes: n.size_bytes(),
            zoned: n.zoned,
            exported_as: Vec::new(),
        })
        .collect();
    drive(
        id,
        None,
        [
            kernel.model.clone(),
            kernel.serial.clone(),
            kernel.firmware.clone(),
        ],
        kernel_health(kernel, UNEXPORTED_NO_SMART),
        namespaces,
    )
}

fn vfio(
    engine: &Engine,
    id: &str,
    pci: &str,
    volumes: &[(String, u32, Option<BackendKind>)],
) -> DriveView {
    let exports = |drive_nsid: u32| -> Vec<ExportView> {
        volumes
            .iter()
            .filter(|(_, _, b)| {
                matches!(b, Some(BackendKind::NvmeVfio { nsid, .. }) if *nsid == drive_nsid)
            })
            .map(|(nqn, nsid, _)| ExportView {
                subsystem: nqn.clone(),
                nsid: *nsid,
            })
            .collect()
    };
    let Some(status) = engine.drives().vfio_status(pci) else {
        // No driver of ours: the namespaces as served.
        let namespaces = volumes
            .iter()
            .filter_map(|(nqn, nsid, b)| {
                let Some(BackendKind::NvmeVfio { nsid: on_drive, .. }) = b else {
                    return None;
                };
                served(engine, nqn, *nsid, Some(*on_drive), None)
            })
            .collect();
        let mut health = health(DriveState::Unknown, None);
        health.smart_log_unavailable =
            Some("no driver of ferrofab's runs this controller: nothing reads its log".into());
        return drive(
            id,
            Some(DriveDriver::NvmeVfio),
            [None, None, None],
            health,
            namespaces,
        );
    };
    let info = &status.info;
    let namespaces = info
        .namespaces
        .iter()
        .map(|n| DriveNamespaceView {
            nsid: Some(n.nsid),
            device: None,
            block_size: n.block_size,
            blocks: n.blocks,
            size_bytes: n.blocks.saturating_mul(u64::from(n.block_size)),
            zoned: n.zoned.is_some(),
            exported_as: exports(n.nsid),
        })
        .collect();
    let (state, detail) = match &status.gone {
        None => (DriveState::Ok, None),
        Some(why) => (DriveState::Failed, Some(why.clone())),
    };
    let mut health = health(state, detail);
    health.controller_resets = Some(status.resets);
    health.io_queues = Some(info.io_queues);
    health.queue_entries = Some(info.queue_entries);
    health.max_transfer_bytes = Some(info.max_transfer);
    match &status.smart {
        Ok(log) => {
            health.temperature_celsius = Some(log.temperature_celsius());
            health.smart_log = Some(SmartLogView::new(log));
        }
        Err(why) => health.smart_log_unavailable = Some(why.clone()),
    }
    drive(
        id,
        Some(DriveDriver::NvmeVfio),
        [
            Some(info.model.clone()),
            Some(info.serial.clone()),
            Some(info.firmware.clone()),
        ],
        health,
        namespaces,
    )
}

fn uring(
    engine: &Engine,
    id: &str,
    paths: &[String],
    volumes: &[(String, u32, Option<BackendKind>)],
    kernel: Option<KernelController>,
) -> DriveView {
    let namespaces = paths
        .iter()
        .filter_map(|path| {
            let on_path: Vec<&(String, u32, Option<BackendKind>)> = volumes
                .iter()
                .filter(|(_, _, b)| {
                    matches!(b, Some(BackendKind::NvmeUring { path: p, .. })
                        if p.display().to_string() == *path)
                })
                .collect();
            let (nqn, nsid, _) = on_path.first()?;
            let mut view = served(engine, nqn, *nsid, None, Some(path.clone()))?;
            view.exported_as = on_path
                .iter()
                .map(|(nqn, nsid, _)| ExportView {
                    subsystem: nqn.clone(),
                    nsid: *nsid,
                })
                .collect();
            Some(view)
        })
        .collect();
    let Some(kernel) = kernel else {
        let mut health = health(DriveState::Unknown, None);
        health.smart_log_unavailable = Some(URING_NO_SMART.into());
        return drive(
            id,
            Some(DriveDriver::NvmeUring),
            [None, None, None],
            health,
            namespaces,
        );
    };
    let health = kernel_health(&kernel, URING_NO_SMART);
    drive(
        id,
        Some(DriveDriver::NvmeUring),
        [kernel.model, kernel.serial, kernel.firmware],
        health,
        namespaces,
    )
}

/// The health of a drive the kernel's driver holds, as its controller state and hwmon show.
fn kernel_health(kernel: &KernelController, no_smart: &str) -> DriveHealth {
    let state = match kernel.state.as_deref() {
        Some("live") => DriveState::Ok,
        Some("resetting" | "connecting" | "new") => DriveState::Degraded,
        Some("dead" | "deleting" | "deleting (no IO)") => DriveState::Failed,
        Some(_) | None => DriveState::Unknown,
    };
    let mut health = health(state, kernel.state.clone());
    health.temperature_celsius = kernel.temperature_celsius;
    health.smart_log_unavailable = Some(no_smart.into());
    health
}

/// A drive namespace as the subsystem `nqn` serves it as `nsid`.
fn served(
    engine: &Engine,
    nqn: &str,
    nsid: u32,
    drive_nsid: Option<u32>,
    device: Option<String>,
) -> Option<DriveNamespaceView> {
    let ns = engine.target().subsystem(nqn)?.namespace(nsid)?;
    Some(DriveNamespaceView {
        nsid: drive_nsid,
        device,
        block_size: ns.block_size(),
        blocks: ns.num_blocks(),
        size_bytes: ns.num_blocks().saturating_mul(u64::from(ns.block_size())),
        zoned: ns.zoned.is_some(),
        exported_as: vec![ExportView {
            subsystem: nqn.to_string(),
            nsid,
        }],
    })
}

/// Why an nvme-uring drive shows no SMART / Health log.
const URING_NO_SMART: &str = "the kernel's driver runs this drive (nvme-uring): ferrofab sends \
     it no admin commands, so it reads no SMART / Health log (the temperature is the kernel's \
     hwmon reading, when there is one)";

/// Why an unexported drive on the kernel's driver shows no SMART / Health log.
const UNEXPORTED_NO_SMART: &str = "not exported: the kernel's driver holds this drive and \
     ferrofab sends it no admin commands, so it reads no SMART / Health log (the temperature \
     is the kernel's hwmon reading, when there is one)";

fn health(state: DriveState, detail: Option<String>) -> DriveHealth {
    DriveHealth {
        state,
        detail,
        controller_resets: None,
        temperature_celsius: None,
        smart_log: None,
        smart_log_unavailable: None,
        io_queues: None,
        queue_entries: None,
        max_transfer_bytes: None,
    }
}

/// The view of drive `id`; [`drive_view`] fills in whether it is exported, its PCI address
/// and bound driver.
fn drive(
    id: &str,
    driver: Option<DriveDriver>,
    [model, serial, firmware]: [Option<String>; 3],
    health: DriveHealth,
    namespaces: Vec<DriveNamespaceView>,
) -> DriveView {
    DriveView {
        id: id.to_string(),
        exported: false,
        driver,
        pci: None,
        driver_bound: None,
        model,
        serial,
        firmware,
        health,
        capacity_bytes: namespaces.iter().map(|n| n.size_bytes).sum(),
        namespaces,
    }
}
