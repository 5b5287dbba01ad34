//! `/api/v1/firmware`: the appliance image — the running and previous version, the A/B root
//! slots, the boot entries and their boot counters — and its updates: a signed bundle is
//! verified while the request waits, then fetched, staged and installed in the background
//! (`target::firmware`), and the box reboots when asked. Not an engine action: it changes the
//! image, not the target's configuration.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::firmware::{
    Availability, EntryState, Firmware, FirmwareError, FirmwareStatus, Job, Stage, UpdateRequest,
};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::{location, AppState};

/// Whether the box takes updates.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpdatesView {
    pub available: bool,
    /// Why not (no `--firmware-key`, not a ferrofab image, no systemd-sysupdate).
    pub reason: Option<String>,
}

/// A root partition of the image (its GPT label).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RootSlotView {
    #[schema(example = "/dev/nvme0n1p3")]
    pub device: String,
    #[schema(example = "ferrofab_0.1.0.2")]
    pub label: String,
    /// `null`: the slot is empty (`_empty`).
    pub version: Option<String>,
    /// It holds the running version.
    pub running: bool,
}

/// What systemd-boot's boot counting says of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BootEntryState {
    /// No counter: booted successfully (blessed).
    Good,
    /// Tries left, not yet blessed.
    Indeterminate,
    /// No tries left: booted only when nothing else is left.
    Bad,
}

impl From<EntryState> for BootEntryState {
    fn from(s: EntryState) -> BootEntryState {
        match s {
            EntryState::Good => BootEntryState::Good,
            EntryState::Indeterminate => BootEntryState::Indeterminate,
            EntryState::Bad => BootEntryState::Bad,
        }
    }
}

/// A UKI on the ESP (`EFI/Linux/`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BootEntryView {
    #[schema(example = "ferrofab_0.1.0.3+2-1.efi")]
    pub file: String,
    pub version: String,
    pub state: BootEntryState,
    /// Boots left before it is bad (`null`: not counted).
    pub tries_left: Option<u32>,
    /// Boots tried so far (`null`: not counted).
    pub tries_done: Option<u32>,
    /// It is the version systemd-boot booted.
    pub booted: bool,
}

/// Where an update job is: verifying → fetching → installing → installed (→ rebooting), or
/// failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FirmwareStage {
    Verifying,
    Fetching,
    Installing,
    Installed,
    Failed,
    Rebooting,
}

impl From<Stage> for FirmwareStage {
    fn from(s: Stage) -> FirmwareStage {
        match s {
            Stage::Verifying => FirmwareStage::Verifying,
            Stage::Fetching => FirmwareStage::Fetching,
            Stage::Installing => FirmwareStage::Installing,
            Stage::Installed => FirmwareStage::Installed,
            Stage::Failed => FirmwareStage::Failed,
            Stage::Rebooting => FirmwareStage::Rebooting,
        }
    }
}

/// An update job: the current one, or the last since the daemon started.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FirmwareJobView {
    pub id: u64,
    pub stage: FirmwareStage,
    /// The version it installs (`null` until the manifest is verified).
    pub version: Option<String>,
    pub source: String,
    pub reboot: bool,
    pub allow_downgrade: bool,
    /// Bytes of the artifacts downloaded and checked.
    pub bytes_done: u64,
    /// The artifacts' size (`null` until the source has told it).
    pub bytes_total: Option<u64>,
    /// Why it failed (or why the reboot it asked for did not happen).
    pub error: Option<String>,
    pub started_unix_ms: u64,
    pub updated_unix_ms: u64,
    pub finished_unix_ms: Option<u64>,
}

impl From<Job> for FirmwareJobView {
    fn from(j: Job) -> FirmwareJobView {
        FirmwareJobView {
            id: j.id,
            stage: j.stage.into(),
            version: j.version,
            source: j.source,
            reboot: j.reboot,
            allow_downgrade: j.allow_downgrade,
            bytes_done: j.bytes_done,
            bytes_total: j.bytes_total,
            error: j.error,
            started_unix_ms: j.started_unix_ms,
            updated_unix_ms: j.updated_unix_ms,
            finished_unix_ms: j.finished_unix_ms,
        }
    }
}

/// The ferrofab image the box runs (os-release).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunningView {
    /// IMAGE_ID: `ferrofab`.
    pub image_id: String,
    /// IMAGE_VERSION.
    #[schema(example = "0.1.0.2")]
    pub version: String,
}

/// The version the box could go back to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreviousView {
    #[schema(example = "0.1.0.1")]
    pub version: String,
    /// Its root slot.
    pub device: Option<String>,
    /// Its boot entry (the newest that is not bad).
    pub boot_entry: Option<String>,
}

/// The image the box runs and could boot, and its updates.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FirmwareView {
    /// The running ferrofab image; `null` when the system is not one (no IMAGE_ID=ferrofab
    /// with an IMAGE_VERSION in os-release).
    pub running: Option<RunningView>,
    /// The newest other version with a root slot and a boot entry that is not bad.
    pub previous: Option<PreviousView>,
    /// The entry systemd-boot booted (its LoaderEntrySelected variable).
    pub booted_entry: Option<String>,
    pub slots: Vec<RootSlotView>,
    /// Newest version first.
    pub boot_entries: Vec<BootEntryView>,
    pub updates: UpdatesView,
    /// A reboot was started.
    pub rebooting: bool,
    pub job: Option<FirmwareJobView>,
}

impl From<FirmwareStatus> for FirmwareView {
    fn from(s: FirmwareStatus) -> FirmwareView {
        let image = s.image;
        let booted = image.booted_version();
        let running = image.running.clone();
        let previous = image.previous.as_ref().map(|v| PreviousView {
            version: v.to_string(),
            device: image
                .slots
                .iter()
                .find(|s| s.version.as_ref() == Some(v))
                .map(|s| s.device.clone()),
            boot_entry: image
                .entries
                .iter()
                .find(|e| e.name.version == *v && e.state() != EntryState::Bad)
                .map(|e| e.file.clone()),
        });
        FirmwareView {
            running: running.as_ref().map(|v| RunningView {
                image_id: image.os_release.image_id.clone().unwrap_or_default(),
                version: v.to_string(),
            }),
            previous,
            booted_entry: image.booted.clone(),
            slots: image
                .slots
                .iter()
                .map(|slot| RootSlotView {
                    device: slot.device.clone(),
                    label: slot.label.clone(),
                    version: slot.version.as_ref().map(ToString::to_string),
                    running: slot.version.is_some() && slot.version == running,
                })
                .collect(),
            boot_entries: image
                .entries
                .iter()
                .map(|e| BootEntryView {
                    file: e.file.clone(),
                    version: e.name.version.to_string(),
                    state: e.state().into(),
                    tries_left: e.name.tries_left,
                    tries_done: e.name.tries_done,
                    booted: booted.as_ref() == Some(&e.name.version),
                })
                .collect(),
            updates: match s.updates {
                Availability::Available => UpdatesView {
                    available: true,
                    reason: None,
                },
                Availability::Unavailable(reason) => UpdatesView {
                    available: false,
                    reason: Some(reason),
                },
            },
            rebooting: s.rebooting,
            job: s.job.map(FirmwareJobView::from),
        }
    }
}

/// An update to install.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmwareUpdateRequest {
    /// The bundle's directory: an http:// or https:// URL, or an absolute path on the box.
    /// It holds SHA256SUMS, SHA256SUMS.sig, ferrofab_<version>.efi and
    /// ferrofab_<version>.root.raw.
    #[schema(example = "https://updates.example.com/ferrofab/0.1.0.3/")]
    pub source: String,
    /// Reboot into the new version once it is installed.
    #[serde(default)]
    pub reboot: bool,
    /// Install a version older than the running one.
    #[serde(default)]
    pub allow_downgrade: bool,
}

/// The image, its slots and boot entries, whether updates are taken, and the current or last
/// update job with its progress.
#[utoipa::path(get, path = "/api/v1/firmware", tag = "firmware", operation_id = "get_firmware",
    responses(
        (status = 200, description = "The image", body = FirmwareView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn get(State(state): State<AppState>) -> Result<Json<FirmwareView>, ApiError> {
    status(&state.firmware).await.map(Json)
}

/// Start an update from a signed bundle. The bundle's SHA256SUMS and its signature are
/// fetched and verified (and the version checked against the running one) before this
/// answers; the artifacts are then downloaded, checked, staged and installed in the
/// background: follow the job at `GET /api/v1/firmware`.
#[utoipa::path(post, path = "/api/v1/firmware/update", tag = "firmware", operation_id = "update_firmware",
    request_body = FirmwareUpdateRequest,
    responses(
        (status = 202, description = "Verified; fetching and installing in the background",
            body = FirmwareJobView,
            headers(("Location" = String, description = "/api/v1/firmware, where the job is followed"))),
        (status = 400, description = "A malformed body or source", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 409, description = "Updates are not available (no firmware key, not a ferrofab image), a job is running, the box is rebooting, the version runs already, or it is older without allow_downgrade", body = ErrorBody),
        (status = 422, description = "The bundle is refused: unreadable, a bad signature, a broken SHA256SUMS, artifacts missing, extra or of two versions; nothing was downloaded", body = ErrorBody),
        (status = 500, description = "The box cannot keep the bundle (its firmware directory)", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<FirmwareUpdateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let job = state
        .firmware
        .update(UpdateRequest {
            source: req.source,
            reboot: req.reboot,
            allow_downgrade: req.allow_downgrade,
        })
        .await
        .map_err(refusal)?;
    Ok((
        StatusCode::ACCEPTED,
        location("/api/v1/firmware"),
        Json(FirmwareJobView::from(job)),
    ))
}

/// Reboot the appliance now: systemd-boot boots the newest entry that is not bad (a version
/// just installed, until it fails its boot tries). Refused while an update installs.
#[utoipa::path(post, path = "/api/v1/firmware/reboot", tag = "firmware", operation_id = "reboot_firmware",
    responses(
        (status = 202, description = "The reboot is under way", body = FirmwareView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 409, description = "Updates are not available (the daemon reboots nothing then), an update is installing, or the box is rebooting already", body = ErrorBody),
        (status = 500, description = "The reboot command failed", body = ErrorBody),
    ))]
pub(crate) async fn reboot(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.firmware.reboot().await.map_err(refusal)?;
    let view = status(&state.firmware).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The status, read off the async workers (it reads sysfs, the ESP and efivars).
async fn status(firmware: &Firmware) -> Result<FirmwareView, ApiError> {
    let firmware = firmware.clone();
    tokio::task::spawn_blocking(move || FirmwareView::from(firmware.status()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "firmware status failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed inside the server; see its log",
            )
        })
}

/// A refused or failed firmware request as the API's error.
fn refusal(e: FirmwareError) -> ApiError {
    let message = e.to_string();
    let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, message.clone());
    let bundle = |code| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.clone());
    let server = |code| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message.clone());
    match e {
        FirmwareError::NotConfigured { .. } => conflict("updates_unavailable"),
        FirmwareError::JobRunning { .. } => conflict("job_running"),
        FirmwareError::Rebooting => conflict("rebooting"),
        FirmwareError::SameVersion { .. } => conflict("version_running"),
        FirmwareError::Downgrade { .. } => {
            conflict("downgrade_refused").with_field("allow_downgrade")
        }
        FirmwareError::BadSource { .. } => ApiError::invalid("source", message.clone()),
        FirmwareError::Unreadable { .. } => bundle("source_unreadable").with_field("source"),
        FirmwareError::TooLarge { .. } => bundle("too_large"),
        FirmwareError::BadSignature { .. } => bundle("bad_signature"),
        FirmwareError::Manifest { .. } => bundle("bad_manifest"),
        FirmwareError::UnexpectedFile { .. } => bundle("unexpected_file"),
        FirmwareError::DuplicateArtifact { .. } => bundle("duplicate_artifact"),
        FirmwareError::MissingArtifact { .. } => bundle("missing_artifact"),
        FirmwareError::VersionMismatch { .. } => bundle("version_mismatch"),
        FirmwareError::Checksum { .. } => bundle("checksum_mismatch"),
        FirmwareError::Io { .. } => server("firmware_io"),
        FirmwareError::Install { .. } => server("install_failed"),
        FirmwareError::Reboot { .. } => server("reboot_failed"),
    }
}
