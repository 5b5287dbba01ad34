//! The private data of the RDMA connection manager exchange that opens an NVMe/RDMA queue
//! (NVMe/RDMA Transport 1.0 §3.2.1: RDMA_CM_REQUEST, RDMA_CM_ACCEPT and RDMA_CM_REJECT
//! records), and the controller's checks of a request.

use zerocopy::little_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Record format 0, the only one defined (§3.2.1, RECFMT).
pub const RECFMT_1_0: u16 = 0;

/// The host's RDMA_CM_REQUEST private data (§3.2.1.1).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CmRequestWire {
    pub recfmt: U16,
    /// Queue ID: 0 for the admin queue.
    pub qid: U16,
    /// Host receive queue size: the completions the host can take at once.
    pub hrqsize: U16,
    /// Host send queue size, 0's based: the submission queue size minus one.
    pub hsqsize: U16,
    /// Controller ID the I/O queue is for (Linux fills it in; 0FFFFh or 0 when unknown).
    pub cntlid: U16,
    pub rsvd: [u8; 22],
}
pub const CM_REQUEST_LEN: usize = 32;
const _: () = assert!(core::mem::size_of::<CmRequestWire>() == CM_REQUEST_LEN);

/// The controller's RDMA_CM_ACCEPT private data (§3.2.1.2).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CmAcceptWire {
    pub recfmt: U16,
    /// Controller receive queue size: the command capsules the host may have outstanding.
    pub crqsize: U16,
    pub rsvd: [u8; 28],
}
pub const CM_ACCEPT_LEN: usize = 32;
const _: () = assert!(core::mem::size_of::<CmAcceptWire>() == CM_ACCEPT_LEN);

/// The controller's RDMA_CM_REJECT private data (§3.2.1.3).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CmRejectWire {
    pub recfmt: U16,
    pub sts: U16,
}
pub const CM_REJECT_LEN: usize = 4;
const _: () = assert!(core::mem::size_of::<CmRejectWire>() == CM_REJECT_LEN);

/// Why a controller rejects a connection request (§3.2.1.3, Figure 7: STS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectStatus {
    InvalidLength,
    InvalidRecfmt,
    InvalidQid,
    InvalidHsqsize,
    InvalidHrqsize,
    NoResources,
    InvalidIrd,
    InvalidOrd,
    InvalidCntlid,
    Unknown(u16),
}

impl RejectStatus {
    pub fn to_u16(self) -> u16 {
        match self {
            RejectStatus::InvalidLength => 0x01,
            RejectStatus::InvalidRecfmt => 0x02,
            RejectStatus::InvalidQid => 0x03,
            RejectStatus::InvalidHsqsize => 0x04,
            RejectStatus::InvalidHrqsize => 0x05,
            RejectStatus::NoResources => 0x06,
            RejectStatus::InvalidIrd => 0x07,
            RejectStatus::InvalidOrd => 0x08,
            RejectStatus::InvalidCntlid => 0x09,
            RejectStatus::Unknown(v) => v,
        }
    }

    pub fn from_u16(v: u16) -> RejectStatus {
        match v {
            0x01 => RejectStatus::InvalidLength,
            0x02 => RejectStatus::InvalidRecfmt,
            0x03 => RejectStatus::InvalidQid,
            0x04 => RejectStatus::InvalidHsqsize,
            0x05 => RejectStatus::InvalidHrqsize,
            0x06 => RejectStatus::NoResources,
            0x07 => RejectStatus::InvalidIrd,
            0x08 => RejectStatus::InvalidOrd,
            0x09 => RejectStatus::InvalidCntlid,
            other => RejectStatus::Unknown(other),
        }
    }

    /// The RDMA_CM_REJECT private data carrying this status.
    pub fn encode(self) -> [u8; CM_REJECT_LEN] {
        let wire = CmRejectWire {
            recfmt: U16::new(RECFMT_1_0),
            sts: U16::new(self.to_u16()),
        };
        let mut out = [0u8; CM_REJECT_LEN];
        out.copy_from_slice(wire.as_bytes());
        out
    }
}

/// What a controller allows on the queues it accepts.
#[derive(Clone, Copy, Debug)]
pub struct CmLimits {
    /// Entries of the admin submission queue at most (NVMe Base 2.0: 4096; Linux hosts ask
    /// for 32).
    pub max_admin_entries: u32,
    /// Entries of an I/O submission queue at most (CAP.MQES + 1).
    pub max_io_entries: u32,
    /// Highest I/O queue ID.
    pub max_qid: u16,
}

/// A checked connection request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmRequest {
    pub qid: u16,
    /// Submission queue entries (HSQSIZE + 1): the command capsules the host may send
    /// before it sees a completion, so the receive buffers the queue needs.
    pub sq_entries: u32,
    /// Completions the host can receive at once (HRQSIZE).
    pub hrqsize: u32,
    pub cntlid: u16,
}

impl CmRequest {
    /// Check the private data of an RDMA_CM_REQUEST; the error is the status to reject
    /// it with.
    pub fn parse(private: &[u8], limits: &CmLimits) -> Result<CmRequest, RejectStatus> {
        // RDMA CM pads private data to its transport's size (56 bytes on RoCE), so a request
        // is at least, not exactly, 32 bytes.
        let Some(head) = private.get(..CM_REQUEST_LEN) else {
            return Err(RejectStatus::InvalidLength);
        };
        let Ok(req) = CmRequestWire::read_from_bytes(head) else {
            return Err(RejectStatus::InvalidLength);
        };
        if req.recfmt.get() != RECFMT_1_0 {
            return Err(RejectStatus::InvalidRecfmt);
        }
        let qid = req.qid.get();
        if qid > limits.max_qid {
            return Err(RejectStatus::InvalidQid);
        }
        let sq_entries = u32::from(req.hsqsize.get()) + 1;
        let max_entries = if qid == 0 {
            limits.max_admin_entries
        } else {
            limits.max_io_entries
        };
        // NVMe Base 2.0 §3.3.3.2.1: a queue has at least two entries, at most what CAP.MQES
        // (or the admin queue's limit) allows.
        if sq_entries < 2 || sq_entries > max_entries {
            return Err(RejectStatus::InvalidHsqsize);
        }
        let hrqsize = u32::from(req.hrqsize.get());
        // The host must be able to receive a completion for every command it may have
        // outstanding.
        if hrqsize < sq_entries {
            return Err(RejectStatus::InvalidHrqsize);
        }
        Ok(CmRequest {
            qid,
            sq_entries,
            hrqsize,
            cntlid: req.cntlid.get(),
        })
    }

    /// The RDMA_CM_ACCEPT private data: the controller receives as many capsules as the
    /// host's submission queue holds.
    pub fn accept(&self) -> [u8; CM_ACCEPT_LEN] {
        let wire = CmAcceptWire {
            recfmt: U16::new(RECFMT_1_0),
            crqsize: U16::new(u16::try_from(self.sq_entries).unwrap_or(u16::MAX)),
            rsvd: [0; 28],
        };
        let mut out = [0u8; CM_ACCEPT_LEN];
        out.copy_from_slice(wire.as_bytes());
        out
    }
}

/// The host side: the RDMA_CM_REQUEST private data for queue `qid` of `sq_entries` entries.
pub fn request(qid: u16, sq_entries: u16, cntlid: u16) -> [u8; CM_REQUEST_LEN] {
    let wire = CmRequestWire {
        recfmt: U16::new(RECFMT_1_0),
        qid: U16::new(qid),
        hrqsize: U16::new(sq_entries),
        hsqsize: U16::new(sq_entries.saturating_sub(1)),
        cntlid: U16::new(cntlid),
        rsvd: [0; 22],
    };
    let mut out = [0u8; CM_REQUEST_LEN];
    out.copy_from_slice(wire.as_bytes());
    out
}

/// The host side: the controller's receive queue size from RDMA_CM_ACCEPT private data.
pub fn parse_accept(private: &[u8]) -> Option<u16> {
    let wire = CmAcceptWire::read_from_bytes(private.get(..CM_ACCEPT_LEN)?).ok()?;
    (wire.recfmt.get() == RECFMT_1_0).then(|| wire.crqsize.get())
}

/// The host side: the status of an RDMA_CM_REJECT's private data.
pub fn parse_reject(private: &[u8]) -> Option<RejectStatus> {
    let wire = CmRejectWire::read_from_bytes(private.get(..CM_REJECT_LEN)?).ok()?;
    Some(RejectStatus::from_u16(wire.sts.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CmLimits = CmLimits {
        max_admin_entries: 32,
        max_io_entries: 1024,
        max_qid: 8,
    };

    /// Linux nvme-rdma's request for I/O queue 3 of 128 entries on controller 1, as the CM
    /// delivers it on RoCE (padded to 56 bytes).
    fn linux_request() -> Vec<u8> {
        let mut v = vec![0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x7f, 0x00, 0x01, 0x00];
        v.resize(56, 0);
        v
    }

    #[test]
    fn golden_request_accept_reject() {
        let req = CmRequest::parse(&linux_request(), &LIMITS).unwrap();
        assert_eq!(
            req,
            CmRequest {
                qid: 3,
                sq_entries: 128,
                hrqsize: 128,
                cntlid: 1
            }
        );
        let mut accept = [0u8; 32];
        accept[2] = 0x80;
        assert_eq!(req.accept(), accept);
        assert_eq!(parse_accept(&accept), Some(128));
        assert_eq!(RejectStatus::InvalidHsqsize.encode(), [0, 0, 4, 0]);
        assert_eq!(
            parse_reject(&[0, 0, 9, 0]),
            Some(RejectStatus::InvalidCntlid)
        );
        assert_eq!(request(3, 128, 1)[..], linux_request()[..32]);
        let offset = core::mem::offset_of!(CmRequestWire, hsqsize);
        assert_eq!(offset, 6);
    }

    #[test]
    fn bad_requests_get_the_specs_reject_status() {
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = linux_request();
            f(&mut v);
            CmRequest::parse(&v, &LIMITS)
        };
        assert_eq!(
            CmRequest::parse(&[0; 31], &LIMITS),
            Err(RejectStatus::InvalidLength)
        );
        assert_eq!(
            CmRequest::parse(&[], &LIMITS),
            Err(RejectStatus::InvalidLength)
        );
        assert_eq!(with(&|v| v[0] = 1), Err(RejectStatus::InvalidRecfmt));
        assert_eq!(with(&|v| v[2] = 9), Err(RejectStatus::InvalidQid));
        // HSQSIZE 0 (one entry), above the I/O limit, above the admin limit.
        assert_eq!(with(&|v| v[6] = 0), Err(RejectStatus::InvalidHsqsize));
        assert_eq!(
            with(&|v| v[6..8].copy_from_slice(&1024u16.to_le_bytes())),
            Err(RejectStatus::InvalidHsqsize)
        );
        assert_eq!(
            with(&|v| {
                v[2] = 0;
                v[4] = 64;
                v[6] = 63;
            }),
            Err(RejectStatus::InvalidHsqsize)
        );
        // The host cannot receive a completion for each command it may send.
        assert_eq!(with(&|v| v[4] = 100), Err(RejectStatus::InvalidHrqsize));
        // The admin queue of 32 entries Linux asks for is fine.
        assert_eq!(
            with(&|v| {
                v[2] = 0;
                v[4] = 32;
                v[6] = 31;
            })
            .map(|r| r.sq_entries),
            Ok(32)
        );
    }

    #[test]
    fn reject_status_codes_round_trip() {
        for v in 0..=20u16 {
            assert_eq!(RejectStatus::from_u16(v).to_u16(), v);
        }
    }
}
