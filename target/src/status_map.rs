//! The one place internal errors become NVMe status (SCT/SC/DNR).

use nvme::backend::BackendError;
use nvme::Status;

/// What the failing backend call was doing; media errors differ for reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Flush,
}

/// Map a backend failure to the status the host sees. No `_` arm: a new error kind must be
/// mapped here before it compiles.
pub fn backend_status(err: &BackendError, op: Op) -> Status {
    match err {
        // NVM Command Set 1.0 §3.3.3.1: LBA Out of Range.
        BackendError::OutOfRange { .. } => Status::LBA_OUT_OF_RANGE.with_dnr(),
        BackendError::Misaligned { .. } => Status::INVALID_FIELD.with_dnr(),
        // Capacity Exceeded: the backing store is full.
        BackendError::NoSpace => Status::CAPACITY_EXCEEDED.with_dnr(),
        // A drive behind the driver answered for itself: pass its status through.
        BackendError::Device(status) => *status,
        // Timed out and aborted by us: Command Abort Requested (generic 07h), retryable (no DNR).
        BackendError::Timeout => Status::ABORT_REQUESTED,
        // The drive is gone: the namespace will not become ready again by itself.
        BackendError::Gone(_) => Status::NAMESPACE_NOT_READY.with_dnr(),
        BackendError::Io(_) => match op {
            Op::Read => Status::UNRECOVERED_READ_ERROR,
            Op::Write => Status::WRITE_FAULT,
            Op::Flush => Status::INTERNAL_ERROR,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let oor = BackendError::OutOfRange {
            lba: 10,
            blocks: 1,
            capacity: 10,
        };
        assert_eq!(
            backend_status(&oor, Op::Read),
            Status::LBA_OUT_OF_RANGE.with_dnr()
        );
        let io = BackendError::Io(std::io::Error::other("boom"));
        assert_eq!(
            backend_status(&io, Op::Read),
            Status::UNRECOVERED_READ_ERROR
        );
        assert_eq!(backend_status(&io, Op::Write), Status::WRITE_FAULT);
        assert_eq!(backend_status(&io, Op::Flush), Status::INTERNAL_ERROR);
        assert_eq!(
            backend_status(&BackendError::NoSpace, Op::Write),
            Status::CAPACITY_EXCEEDED.with_dnr()
        );
        // Drives: their own status passes through; our timeout is retryable; a gone drive
        // is a namespace that will not come back by itself.
        let zone_full = Status::ZONE_IS_FULL.with_dnr();
        assert_eq!(
            backend_status(&BackendError::Device(zone_full), Op::Write),
            zone_full
        );
        let t = backend_status(&BackendError::Timeout, Op::Read);
        assert_eq!((t, t.dnr), (Status::ABORT_REQUESTED, false));
        assert_eq!(
            backend_status(&BackendError::Gone("removed".into()), Op::Read),
            Status::NAMESPACE_NOT_READY.with_dnr()
        );
    }
}
