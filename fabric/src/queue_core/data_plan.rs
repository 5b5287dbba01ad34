//! How a command's data moves, decided from its SQE and the transport's rules (NVMe-oF 1.1
//! §2.3: the SGL forms a fabric carries; NVMe/TCP 1.0 §3.2 and §3.4; NVMe/RDMA 1.0 §3.2 and
//! §3.3). Every transport answers a descriptor it does not carry, an offset or a length out
//! of bounds, with the same statuses.

use nvme_spec::sgl::{SUBTYPE_ADDRESS, SUBTYPE_INVALIDATE_KEY, SUBTYPE_TRANSPORT_A};
use nvme_spec::sqe::DataDirection;
use nvme_spec::{Sgl, Sqe, Status};

use crate::queue::TransportKind;

/// The data rules of one queue's transport.
#[derive(Clone, Copy, Debug)]
pub struct DataRules {
    pub transport: TransportKind,
    /// Most in-capsule data on the admin queue, in bytes.
    pub admin_in_capsule: u32,
    /// Most in-capsule data on an I/O queue, in bytes.
    pub io_in_capsule: u32,
    /// Most data of one command moved by the transport (R2T/H2CData, C2HData, RDMA
    /// READ/WRITE).
    pub max_transfer: u32,
}

/// Where a host's memory for a command's data lies (NVMe/RDMA: a Keyed SGL Data Block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteBuf {
    pub address: u64,
    pub key: u32,
    /// The host asked the controller to invalidate `key` with the completion (Keyed SGL
    /// sub type Invalidate Key; NVMe/RDMA: Send with Invalidate).
    pub invalidate: bool,
}

/// How a command's data moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPlan {
    /// No data.
    None,
    /// Host data in the capsule, exactly as long as the capsule carries.
    InCapsule,
    /// Controller-to-host data: `len` bytes, to `remote` on RDMA (TCP sends C2HData).
    ToHost { len: u32, remote: Option<RemoteBuf> },
    /// Host-to-controller data the transport fetches: `len` bytes, from `remote` on RDMA
    /// (TCP solicits it with R2T).
    FromHost { len: u32, remote: Option<RemoteBuf> },
}

impl DataRules {
    /// The queue's in-capsule data limit; `qid` is the queue's ID (a Connect's own QID,
    /// NVMe-oF 1.1 Figure 20, before the queue exists).
    pub fn in_capsule_limit(&self, qid: u16) -> u32 {
        if qid == 0 {
            self.admin_in_capsule
        } else {
            self.io_in_capsule
        }
    }

    /// Decide how the command's data moves, or the status that refuses it. `in_capsule` is
    /// the length of the data that came in the capsule, `digest_ok` whether a transport
    /// checksum over it held.
    pub fn plan(
        &self,
        sqe: &Sqe,
        qid: u16,
        in_capsule: u32,
        digest_ok: bool,
    ) -> Result<DataPlan, Status> {
        let sgl = Sgl::parse(&sqe.dptr);
        match sqe.data_direction() {
            DataDirection::None => {
                if in_capsule != 0 {
                    return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
                }
                Ok(DataPlan::None)
            }
            DataDirection::Bidirectional => Err(Status::INVALID_FIELD.with_dnr()),
            DataDirection::HostToController => match sgl {
                // NVMe/TCP 1.0 §3.2, NVMe/RDMA 1.0 §3.2: in-capsule data starts right at the
                // capsule data (our ICDOFF is 0), is at most the queue's limit, and is exactly
                // what the SGL describes (nothing undefined follows it).
                Sgl::InCapsule { offset, length } => {
                    if offset != 0 {
                        return Err(Status::SGL_OFFSET_INVALID.with_dnr());
                    }
                    if length > self.in_capsule_limit(qid) || length != in_capsule {
                        return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
                    }
                    // NVMe/TCP 1.0 §3.5.2: a data digest error in a CapsuleCmd fails the
                    // command with a non-fatal transport error.
                    if !digest_ok {
                        return Err(Status::TRANSIENT_TRANSPORT_ERROR);
                    }
                    Ok(if length == 0 {
                        DataPlan::None
                    } else {
                        DataPlan::InCapsule
                    })
                }
                other => {
                    let (len, remote) = self.transported(other, in_capsule)?;
                    Ok(if len == 0 {
                        DataPlan::None
                    } else {
                        DataPlan::FromHost { len, remote }
                    })
                }
            },
            DataDirection::ControllerToHost => match sgl {
                // Response data is never in-capsule (NVMe/TCP 1.0 Figure 11; NVMe/RDMA 1.0
                // §3.3).
                Sgl::InCapsule { .. } => Err(Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr()),
                other => {
                    let (len, remote) = self.transported(other, in_capsule)?;
                    Ok(DataPlan::ToHost { len, remote })
                }
            },
        }
    }

    /// A descriptor for data the transport moves: its length and, on RDMA, the host's
    /// buffer. NVMe/TCP carries Transport SGL Data Blocks of sub type A (§3.4); NVMe/RDMA
    /// carries Keyed SGL Data Blocks of sub type Address or Invalidate Key (§3.3).
    fn transported(&self, sgl: Sgl, in_capsule: u32) -> Result<(u32, Option<RemoteBuf>), Status> {
        let (length, remote) = match (self.transport, sgl) {
            (TransportKind::Tcp, Sgl::Transport { length, subtype })
                if subtype == SUBTYPE_TRANSPORT_A =>
            {
                (length, None)
            }
            (
                TransportKind::Rdma,
                Sgl::Keyed {
                    address,
                    length,
                    key,
                    subtype,
                },
            ) if subtype == SUBTYPE_ADDRESS || subtype == SUBTYPE_INVALIDATE_KEY => (
                length,
                Some(RemoteBuf {
                    address,
                    key,
                    invalidate: subtype == SUBTYPE_INVALIDATE_KEY,
                }),
            ),
            _ => return Err(Status::SGL_DESCRIPTOR_TYPE_INVALID.with_dnr()),
        };
        if in_capsule != 0 || length > self.max_transfer {
            return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
        }
        Ok((length, remote))
    }
}
