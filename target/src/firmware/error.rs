//! Why a firmware update was refused or failed. Each refusal names what is at fault (the
//! manifest line, the file, the version), so the operator can fix the bundle.

use std::io;

use super::job::Stage;
use super::version::ArtifactKind;

#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// No key, a broken key, not a ferrofab image, or no systemd-sysupdate.
    #[error("firmware updates are not available: {reason}")]
    NotConfigured { reason: String },
    /// One update at a time; no reboot while one installs.
    #[error("a firmware update to {version} is {stage}: wait until it has ended")]
    JobRunning { version: String, stage: Stage },
    /// A reboot was asked for already.
    #[error("the appliance is rebooting")]
    Rebooting,
    /// The source is not an http(s) URL or an absolute directory path.
    #[error("source {given:?}: {reason}")]
    BadSource { given: String, reason: String },
    /// The source or one of its files cannot be read.
    #[error("cannot read {what}: {reason}")]
    Unreadable { what: String, reason: String },
    #[error("{file} is larger than the {limit} bytes taken")]
    TooLarge { file: String, limit: u64 },
    #[error("bad signature: {reason}")]
    BadSignature { reason: String },
    #[error("SHA256SUMS line {line}: {message}")]
    Manifest { line: usize, message: String },
    #[error(
        "the bundle lists {name:?}, which is no artifact of the image: a bundle holds one \
         ferrofab_<version>.efi and one ferrofab_<version>.root.raw, nothing else"
    )]
    UnexpectedFile { name: String },
    #[error("the bundle lists {} twice: {} and {}", kind.describe(), names[0], names[1])]
    DuplicateArtifact {
        kind: ArtifactKind,
        names: [String; 2],
    },
    #[error("the bundle lists no {}", kind.describe())]
    MissingArtifact { kind: ArtifactKind },
    #[error(
        "the bundle's UKI is version {uki} and its root image version {root}: both must be \
         one version"
    )]
    VersionMismatch { uki: String, root: String },
    #[error("{file} does not match its SHA-256 in SHA256SUMS")]
    Checksum { file: String },
    #[error("version {version} is the running version")]
    SameVersion { version: String },
    #[error(
        "version {version} is older than the running {running}: a downgrade needs \
         allow_downgrade"
    )]
    Downgrade { version: String, running: String },
    /// The box's own files (the firmware directory, a command to run).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("systemd-sysupdate failed ({status}): {stderr}")]
    Install { status: String, stderr: String },
    #[error("the reboot command failed ({status}): {output}")]
    Reboot { status: String, output: String },
}

impl FirmwareError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> FirmwareError {
        FirmwareError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether the box is at fault rather than the request or its bundle: those are logged
    /// as warnings, the rest (which any client can cause) at info at most.
    pub fn is_server_fault(&self) -> bool {
        match self {
            FirmwareError::Io { .. }
            | FirmwareError::Install { .. }
            | FirmwareError::Reboot { .. } => true,
            FirmwareError::NotConfigured { .. }
            | FirmwareError::JobRunning { .. }
            | FirmwareError::Rebooting
            | FirmwareError::BadSource { .. }
            | FirmwareError::Unreadable { .. }
            | FirmwareError::TooLarge { .. }
            | FirmwareError::BadSignature { .. }
            | FirmwareError::Manifest { .. }
            | FirmwareError::UnexpectedFile { .. }
            | FirmwareError::DuplicateArtifact { .. }
            | FirmwareError::MissingArtifact { .. }
            | FirmwareError::VersionMismatch { .. }
            | FirmwareError::Checksum { .. }
            | FirmwareError::SameVersion { .. }
            | FirmwareError::Downgrade { .. } => false,
        }
    }
}
