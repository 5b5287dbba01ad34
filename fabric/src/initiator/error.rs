//! Host-side errors. An NVMe error status is not one of them for raw submissions: the
//! completion carries it. These are transport failures, plus [`HostError::Status`] for helpers
//! (identify, property get, ...) that cannot return anything useful without success.

use std::sync::Arc;

use nvme_spec::Status;

use crate::tcp::host_conn::{CommandError, ConnError, SubmitError};

#[derive(Clone, Debug, thiserror::Error)]
pub enum HostError {
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
    #[error("command timed out")]
    Timeout,
    /// The controller sent a C2HTermReq (NVMe/TCP 1.0 §3.6.2.4).
    #[error("controller terminated the connection: FES {fes:#x}, FEI {fei:#x}")]
    TermReq { fes: u16, fei: u32 },
    /// C2HData for this command failed its data digest check; the queue stays usable.
    #[error("data digest mismatch in data received from the controller")]
    DataDigest,
    /// The controller broke the protocol (the host sent an H2CTermReq and closed) or the
    /// host was asked to do something the transport cannot.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// Fabrics Connect failed with this status (NVMe-oF 1.1 §3.3).
    #[error("connect failed: {0}")]
    Connect(Status),
    /// A helper needed a successful completion and got this NVMe status.
    #[error("command failed: {0}")]
    Status(Status),
}

impl From<std::io::Error> for HostError {
    fn from(e: std::io::Error) -> Self {
        HostError::Io(Arc::new(e))
    }
}

impl From<ConnError> for HostError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::TermReq { fes, fei } => HostError::TermReq { fes, fei },
            ConnError::Protocol { .. } => HostError::Protocol(e.to_string()),
            ConnError::Closed => HostError::Closed,
        }
    }
}

impl From<CommandError> for HostError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::DataDigest { .. } => HostError::DataDigest,
            CommandError::Connection(c) => c.into(),
        }
    }
}

impl From<SubmitError> for HostError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Failed(c) => c.into(),
            SubmitError::NotEstablished
            | SubmitError::NoFreeCid
            | SubmitError::Bidirectional
            | SubmitError::TooLarge(_) => HostError::Protocol(e.to_string()),
        }
    }
}
