//! Zoned Namespace Command Set I/O commands (NVMe ZNS 1.1 §4.3, §4.4): Zone Management Send,
//! Zone Management Receive and Zone Append, against namespaces whose backend is zoned. Reads
//! and writes of zoned namespaces take the NVM path; their backends apply the zone rules.

use std::sync::Arc;

use fabric::queue::{Completion, DataBuf, Response};
use nvme::command::{ReadWrite, ZoneReceive, ZoneSend};
use nvme::zns::{ZoneAction, ZRA_REPORT_ZONES};
use nvme::Status;

use super::{deferred, fail, on_backend, HostData, IoQueue};
use crate::namespace::Namespace;
use crate::status_map::{backend_status, Op};

/// Zone Receive Action 01h: Extended Report Zones (NVMe ZNS 1.1 §4.4.4, Figure 49).
const ZRA_EXTENDED_REPORT_ZONES: u8 = 0x01;

impl IoQueue {
    /// The zoned namespace `nsid`: Invalid Namespace if there is none, Invalid Command Opcode
    /// for a namespace of the NVM command set, which has no zone commands (NVMe Base 2.0
    /// §3.3.1: an opcode the namespace's command set lacks).
    fn zoned_namespace(&self, nsid: u32) -> Result<&Arc<Namespace>, Status> {
        let ns = self.namespace(nsid)?;
        // `Namespace::zoned` is taken from `Backend::zoned` when the namespace is made.
        if ns.zoned.is_none() {
            return Err(Status::INVALID_OPCODE.with_dnr());
        }
        Ok(ns)
    }

    /// Zone Management Send (NVMe ZNS 1.1 §4.4.3). No zone random write area and no zone
    /// descriptor extensions: ZSASO and the Set Zone Descriptor Extension action are Invalid
    /// Field, as is any unknown action.
    pub(super) fn zone_send(&self, zs: ZoneSend) -> Completion {
        let ns = match self.zoned_namespace(zs.nsid) {
            Ok(ns) => ns,
            Err(s) => return fail(s),
        };
        if zs.zsaso || matches!(zs.action, ZoneAction::Unknown(_)) {
            return fail(Status::INVALID_FIELD.with_dnr());
        }
        if let Some(q) = ns.backend.zoned().and_then(|z| z.queued()) {
            let io = q.send(zs.slba, zs.action, zs.select_all);
            return deferred(async move {
                match io.await {
                    Ok(()) => Response::success(),
                    Err(e) => Response::status(backend_status(&e, Op::Write)),
                }
            });
        }
        on_backend(ns, &self.counters, move |ns, _| {
            let Some(z) = ns.backend.zoned() else {
                return Response::status(Status::INTERNAL_ERROR);
            };
            match z.send(zs.slba, zs.action, zs.select_all) {
                Ok(()) => Response::success(),
                Err(e) => Response::status(backend_status(&e, Op::Write)),
            }
        })
    }

    /// Zone Management Receive (NVMe ZNS 1.1 §4.4.4): Report Zones into the host's buffer.
    /// Zone descriptor extensions are not supported (LBAFE ZDES = 0), so the Extended
    /// Report Zones action is Invalid Field, as are unknown actions and report options.
    pub(super) fn zone_receive(
        &self,
        zr: ZoneReceive,
        sgl_len: u32,
        c2h_buf: Option<DataBuf>,
    ) -> Completion {
        let (ns, len) = match self.check_report(&zr, sgl_len) {
            Ok(v) => v,
            Err(s) => return Completion::Ready(Response::status(s).returning(c2h_buf)),
        };
        let buf = super::reply_buffer(c2h_buf, len);
        if let Some(q) = ns.backend.zoned().and_then(|z| z.queued()) {
            let (mut vec, reg) = buf.detach();
            vec.truncate(len);
            let io = q.report(zr.slba, zr.option, zr.partial, vec);
            return deferred(async move {
                match io.await {
                    Ok(vec) => Response::success().with_buf(reg.attach(vec, len)),
                    Err(e) => Response::status(backend_status(&e, Op::Read)),
                }
            });
        }
        on_backend(ns, &self.counters, move |ns, _| {
            let mut buf = buf;
            let Some(z) = ns.backend.zoned() else {
                return Response::status(Status::INTERNAL_ERROR).returning(Some(buf));
            };
            match z.report(zr.slba, zr.option, zr.partial, buf.as_mut_slice()) {
                Ok(()) => Response::success().with_buf(buf),
                Err(e) => Response::status(backend_status(&e, Op::Read)).returning(Some(buf)),
            }
        })
    }

    /// The namespace and data length of a Report Zones, or the status refusing it.
    fn check_report(
        &self,
        zr: &ZoneReceive,
        sgl_len: u32,
    ) -> Result<(&Arc<Namespace>, usize), Status> {
        let ns = self.zoned_namespace(zr.nsid)?;
        match zr.action {
            ZRA_REPORT_ZONES => {}
            ZRA_EXTENDED_REPORT_ZONES => return Err(Status::INVALID_FIELD.with_dnr()),
            _ => return Err(Status::INVALID_FIELD.with_dnr()),
        }
        let len = zr.len_bytes();
        // NVMe Base 2.0 §5.17.2.1 (MDTS) and §4.3.2 (an SGL shorter than the data).
        if len > u64::from(self.ctrl.params.max_transfer()) {
            return Err(Status::INVALID_FIELD.with_dnr());
        }
        if u64::from(sgl_len) < len {
            return Err(Status::DATA_SGL_LENGTH_INVALID.with_dnr());
        }
        Ok((ns, len as usize))
    }

    /// Zone Append (NVMe ZNS 1.1 §4.3): the data goes at the zone's write pointer; the LBA
    /// it landed at is CQE DW1:DW0 (Figure 33).
    pub(super) fn zone_append(&self, rw: ReadWrite, mut data: HostData) -> Completion {
        let geometry = match self.zoned_namespace(rw.nsid) {
            Ok(ns) => ns.zoned,
            Err(s) => return data.fail(s),
        };
        let (ns, len) = match self.check_rw(&rw, data.len() as u64) {
            Ok(v) => v,
            Err(s) => return data.fail(s),
        };
        // NVMe ZNS 1.1 §4.1.5.2: ZASL bounds the data of one Zone Append (Invalid Field).
        if let Some(limit) = geometry.and_then(|g| g.append_limit()) {
            if len as u64 > limit {
                return data.fail(Status::INVALID_FIELD.with_dnr());
            }
        }
        data.truncate(len);
        let fua = rw.fua || !self.ctrl.write_cache();
        if let Some(q) = ns.backend.zoned().and_then(|z| z.queued()) {
            let (bytes, pooled) = data.into_shared();
            let io = q.append(rw.slba, bytes, fua);
            let counters = self.counters.clone();
            return deferred(async move {
                let r = match io.await {
                    Ok(lba) => {
                        counters.add_write(len as u64);
                        appended(lba)
                    }
                    Err(e) => Response::status(backend_status(&e, Op::Write)),
                };
                r.returning(pooled)
            });
        }
        on_backend(ns, &self.counters, move |ns, counters| {
            let r = match ns.backend.zoned() {
                None => Response::status(Status::INTERNAL_ERROR),
                Some(z) => match z.append(rw.slba, data.as_slice(), fua) {
                    Ok(lba) => {
                        counters.add_write(len as u64);
                        appended(lba)
                    }
                    Err(e) => Response::status(backend_status(&e, Op::Write)),
                },
            };
            r.returning(data.into_pooled())
        })
    }
}

/// A Zone Append's completion: the LBA written in DW1:DW0 (NVMe ZNS 1.1 §4.3, Figure 33).
fn appended(lba: u64) -> Response {
    let mut r = Response::success().with_dw0(lba as u32);
    r.dw1 = (lba >> 32) as u32;
    r
}
