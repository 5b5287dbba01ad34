//! The firmware service: one update job at a time (verify the bundle's signed manifest while
//! the request waits, then fetch, stage and install in the background, and reboot when asked),
//! its progress, and the image state around it.

use std::sync::{Arc, Mutex};

use ferrofab_sync::CountedLock;
use tokio::sync::oneshot;

use super::bundle::{self, Fetcher, Limits, Source};
use super::error::FirmwareError;
use super::install;
use super::job::{now_unix_ms, Job, Progress, Stage, UpdateRequest};
use super::manifest::{Artifacts, SigningKey};
use super::slots::{ImageState, OsRelease};
use super::version::Version;
use super::FirmwareSettings;

/// Whether updates can be taken, and if not why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    Available,
    Unavailable(String),
}

/// The image, the updates' availability and the current or last job.
#[derive(Clone, Debug)]
pub struct FirmwareStatus {
    pub image: ImageState,
    pub updates: Availability,
    pub job: Option<Job>,
    /// A reboot was started.
    pub rebooting: bool,
}

/// The firmware service; cheap to clone.
#[derive(Clone)]
pub struct Firmware {
    inner: Arc<Inner>,
}

struct Inner {
    settings: FirmwareSettings,
    /// The key and the fetcher, or why updates are off.
    tools: Result<(SigningKey, Fetcher), String>,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    job: Option<Record>,
    last_id: u64,
    rebooting: bool,
}

#[derive(Clone)]
struct Record {
    job: Job,
    progress: Arc<Progress>,
}

impl Record {
    fn snapshot(&self) -> Job {
        let mut job = self.job.clone();
        job.bytes_done = self.progress.done();
        job.bytes_total = self.progress.total();
        job
    }
}

/// What the job task tells the request that started it once the manifest is checked.
type Verified = oneshot::Sender<Result<Job, FirmwareError>>;

impl Firmware {
    /// The service over `settings`: with a key, updates are on (a key that cannot be read
    /// turns them off, with the reason, and the daemon serves on); downloads a previous run
    /// left unfinished are removed.
    pub fn new(settings: FirmwareSettings) -> Firmware {
        let tools = match &settings.key {
            None => Err(
                "no --firmware-key was given: without the key that signs update \
                         bundles the daemon takes none"
                    .to_string(),
            ),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("the firmware key {}: {e}", path.display()))
                .and_then(|pem| {
                    SigningKey::from_pem(&pem)
                        .map_err(|e| format!("the firmware key {}: {e}", path.display()))
                })
                .and_then(|key| Fetcher::new().map(|f| (key, f))),
        };
        if tools.is_ok() {
            for stale in [bundle::INCOMING, "staging.old"] {
                let path = settings.dir.join(stale);
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e,
                            "firmware: unfinished downloads not removed");
                    }
                }
            }
        }
        let inner = Inner {
            settings,
            tools,
            slot: Mutex::new(Slot::default()),
        };
        match (&inner.settings.key, inner.ready(inner.running())) {
            (None, _) => tracing::debug!("firmware updates off: no --firmware-key"),
            (Some(_), Err(e)) => tracing::warn!(reason = %e, "firmware updates off"),
            (Some(key), Ok(_)) => tracing::info!(key = %key.display(),
                dir = %inner.settings.dir.display(),
                "firmware updates on: bundles signed with this key are taken"),
        }
        Firmware {
            inner: Arc::new(inner),
        }
    }

    pub fn settings(&self) -> &FirmwareSettings {
        &self.inner.settings
    }

    /// The image state, read now, and the job (reads a few small files).
    pub fn status(&self) -> FirmwareStatus {
        let image = self.inner.image();
        let updates = match self.inner.ready(image.running.clone()) {
            Ok(_) => Availability::Available,
            Err(FirmwareError::NotConfigured { reason }) => Availability::Unavailable(reason),
            Err(other) => Availability::Unavailable(other.to_string()),
        };
        let slot = self.inner.slot.lock_counted();
        FirmwareStatus {
            image,
            updates,
            job: slot.job.as_ref().map(Record::snapshot),
            rebooting: slot.rebooting,
        }
    }

    /// Start an update: the bundle's manifest is verified before this returns (a refusal
    /// starts nothing and leaves the last job as it was); fetching, staging and installing
    /// go on in the background. Needs a tokio runtime.
    pub async fn update(&self, req: UpdateRequest) -> Result<Job, FirmwareError> {
        let (key, fetcher, running) = self.inner.ready(self.inner.running())?;
        let source = Source::parse(&req.source)?;
        let (record, previous) = self.inner.claim(&req)?;
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        // Its own task: a client that goes away mid-check must not leave the slot taken.
        tokio::spawn(async move {
            let Record { job, progress } = record;
            let outcome = async {
                let artifacts = fetcher.manifest(&source, &key).await?;
                check_version(&artifacts.version, &running, req.allow_downgrade)?;
                Ok(artifacts)
            }
            .await;
            match outcome {
                Ok(artifacts) => {
                    inner
                        .run(job.id, progress, source, artifacts, req.reboot, tx)
                        .await
                }
                Err(e) => {
                    inner.release(job.id, previous);
                    log_refusal(&e, &job.source);
                    let _ = tx.send(Err(e));
                }
            }
        });
        rx.await.unwrap_or_else(|_| {
            Err(FirmwareError::io(
                "the firmware job",
                std::io::Error::other("the job task ended without an answer"),
            ))
        })
    }

    /// Reboot the box now (the installed version boots if it is the newest good entry).
    /// Refused while a job installs.
    pub async fn reboot(&self) -> Result<(), FirmwareError> {
        self.inner.ready(self.inner.running())?;
        {
            let mut slot = self.inner.slot.lock_counted();
            if slot.rebooting {
                return Err(FirmwareError::Rebooting);
            }
            if let Some(r) = slot
                .job
                .as_ref()
                .filter(|r| r.job.stage == Stage::Installing)
            {
                return Err(FirmwareError::JobRunning {
                    version: r.job.version.clone().unwrap_or_default(),
                    stage: r.job.stage,
                });
            }
            slot.rebooting = true;
        }
        self.inner.reboot_now().await
    }
}

impl Inner {
    fn image(&self) -> ImageState {
        let s = &self.settings;
        ImageState::read(&s.os_release, &s.sys_block, &s.esp, &s.efivars)
    }

    /// The running ferrofab version (os-release only).
    fn running(&self) -> Option<Version> {
        OsRelease::read(&self.settings.os_release).running()
    }

    /// The key, the fetcher and the running version, or why updates are off.
    fn ready(
        &self,
        running: Option<Version>,
    ) -> Result<(SigningKey, Fetcher, Version), FirmwareError> {
        let off = |reason: String| FirmwareError::NotConfigured { reason };
        let (key, fetcher) = self.tools.clone().map_err(off)?;
        let Some(running) = running else {
            let files: Vec<String> = self
                .settings
                .os_release
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(off(format!(
                "the running system is not a ferrofab image ({} has no IMAGE_ID=ferrofab with \
                 an IMAGE_VERSION)",
                files.join(" or ")
            )));
        };
        if !self.settings.sysupdate.is_file() {
            return Err(off(format!(
                "{} is missing: the image has no systemd-sysupdate",
                self.settings.sysupdate.display()
            )));
        }
        Ok((key, fetcher, running))
    }

    /// Take the one job slot with a new job, verifying; the job it replaces, to restore if
    /// the new one is refused.
    fn claim(&self, req: &UpdateRequest) -> Result<(Record, Option<Record>), FirmwareError> {
        let mut slot = self.slot.lock_counted();
        if slot.rebooting {
            return Err(FirmwareError::Rebooting);
        }
        if let Some(r) = slot.job.as_ref().filter(|r| r.job.stage.is_active()) {
            return Err(FirmwareError::JobRunning {
                version: r
                    .job
                    .version
                    .clone()
                    .unwrap_or_else(|| "a new version".into()),
                stage: r.job.stage,
            });
        }
        slot.last_id += 1;
        let now = now_unix_ms();
        let record = Record {
            job: Job {
                id: slot.last_id,
                stage: Stage::Verifying,
                version: None,
                source: req.source.clone(),
                reboot: req.reboot,
                allow_downgrade: req.allow_downgrade,
                bytes_done: 0,
                bytes_total: None,
                error: None,
                started_unix_ms: now,
                updated_unix_ms: now,
                finished_unix_ms: None,
            },
            progress: Progress::new(),
        };
        let previous = slot.job.replace(record.clone());
        Ok((record, previous))
    }

    /// A refused job gives the slot, and its ID, back to the job before it.
    fn release(&self, id: u64, previous: Option<Record>) {
        let mut slot = self.slot.lock_counted();
        if slot.job.as_ref().is_some_and(|r| r.job.id == id) {
            slot.job = previous;
            slot.last_id = id - 1;
        }
    }

    /// Move job `id` on to `stage` (with `error`); its snapshot.
    fn advance(&self, id: u64, stage: Stage, error: Option<String>) -> Option<Job> {
        let mut slot = self.slot.lock_counted();
        let record = slot.job.as_mut().filter(|r| r.job.id == id)?;
        let now = now_unix_ms();
        record.job.stage = stage;
        record.job.updated_unix_ms = now;
        if error.is_some() {
            record.job.error = error;
        }
        if !stage.is_active() && record.job.finished_unix_ms.is_none() {
            record.job.finished_unix_ms = Some(now);
        }
        Some(record.snapshot())
    }

    /// The verified job: answer the request, then fetch, stage, install and maybe reboot.
    async fn run(
        &self,
        id: u64,
        progress: Arc<Progress>,
        source: Source,
        artifacts: Artifacts,
        reboot: bool,
        verified: Verified,
    ) {
        let version = artifacts.version.clone();
        {
            let mut slot = self.slot.lock_counted();
            if let Some(r) = slot.job.as_mut().filter(|r| r.job.id == id) {
                r.job.version = Some(version.to_string());
            }
        }
        let Some(job) = self.advance(id, Stage::Fetching, None) else {
            return;
        };
        tracing::info!(version = %version, source = %job.source, "firmware update started");
        let _ = verified.send(Ok(job));
        let Ok((_, fetcher)) = self.tools.clone() else {
            return;
        };
        let s = &self.settings;
        let limits = Limits {
            uki_bytes: s.max_uki_bytes,
            root_bytes: s.max_root_bytes,
        };
        let result = async {
            fetcher
                .fetch(&source, &artifacts, &s.dir, limits, &progress)
                .await?;
            self.advance(id, Stage::Installing, None);
            install::sysupdate(&s.sysupdate, &version).await?;
            // Installed: the staged copies are no longer needed.
            let staging = s.staging();
            bundle::remove_dir(&staging).await?;
            tokio::fs::create_dir_all(&staging)
                .await
                .map_err(|e| FirmwareError::io(format!("creating {}", staging.display()), e))
        }
        .await;
        if let Err(e) = result {
            log_failure(&e, &version);
            self.advance(id, Stage::Failed, Some(e.to_string()));
            return;
        }
        tracing::info!(version = %version, "firmware update installed");
        let claimed = reboot && {
            let mut slot = self.slot.lock_counted();
            !std::mem::replace(&mut slot.rebooting, true)
        };
        if !claimed {
            // No reboot asked for, or one is already under way.
            self.advance(id, Stage::Installed, None);
            return;
        }
        // The job stays active until the reboot has started, so that whoever polls for its
        // end (`ferrofab ctl firmware update --reboot --wait`) sees it rebooting, not a
        // finished "installed" in between.
        match self.reboot_now().await {
            Ok(()) => self.advance(id, Stage::Rebooting, None),
            Err(e) => self.advance(
                id,
                Stage::Installed,
                Some(format!("installed, but the reboot failed: {e}")),
            ),
        };
    }

    /// Run the reboot command (the caller has set `rebooting`): an installed job becomes
    /// rebooting; on failure `rebooting` is cleared.
    async fn reboot_now(&self) -> Result<(), FirmwareError> {
        tracing::info!("firmware: rebooting");
        match install::reboot(&self.settings.reboot).await {
            Ok(()) => {
                let mut slot = self.slot.lock_counted();
                if let Some(r) = slot
                    .job
                    .as_mut()
                    .filter(|r| r.job.stage == Stage::Installed)
                {
                    r.job.stage = Stage::Rebooting;
                    r.job.updated_unix_ms = now_unix_ms();
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "firmware: reboot failed");
                self.slot.lock_counted().rebooting = false;
                Err(e)
            }
        }
    }
}

/// A version equal to the running one is refused; an older one needs `allow_downgrade`.
fn check_version(
    version: &Version,
    running: &Version,
    allow_downgrade: bool,
) -> Result<(), FirmwareError> {
    if version == running {
        return Err(FirmwareError::SameVersion {
            version: version.to_string(),
        });
    }
    if version < running && !allow_downgrade {
        return Err(FirmwareError::Downgrade {
            version: version.to_string(),
            running: running.to_string(),
        });
    }
    Ok(())
}

/// A refused bundle is the requester's business: info, not a warning.
fn log_refusal(e: &FirmwareError, source: &str) {
    if e.is_server_fault() {
        tracing::warn!(error = %e, source, "firmware update refused");
    } else {
        tracing::info!(error = %e, source, "firmware update refused");
    }
}

fn log_failure(e: &FirmwareError, version: &Version) {
    if e.is_server_fault() {
        tracing::warn!(error = %e, %version, "firmware update failed");
    } else {
        tracing::info!(error = %e, %version, "firmware update failed");
    }
}

#[cfg(test)]
mod tests;
