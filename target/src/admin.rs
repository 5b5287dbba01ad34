//! The admin queue: Fabrics property access, and the admin commands of NVM and discovery
//! controllers (NVMe Base 2.0 §5; NVMe-oF 1.1 §3, §5).

use std::sync::Arc;

use fabric::queue::{Completion, QueueHandler, Request, Response};
use nvme::command::{AdminCommand, FabricsCommand, PropertyGet, PropertySet};
use nvme::opcode::AdminOpcode;
use nvme::properties::{Cap, Property, Version};
use nvme::Status;
use tokio_util::sync::CancellationToken;

use crate::aer::AerSubmit;
use crate::auth::QueueAuth;
use crate::controller::{record_failures, Controller};

/// NVMe version this target implements (VS property, Identify Controller VER).
pub const VERSION: Version = Version::V2_0;

pub struct AdminQueue {
    ctrl: Arc<Controller>,
    /// In-band authentication, when the host has a key.
    auth: Option<Box<QueueAuth>>,
}

impl AdminQueue {
    pub fn new(ctrl: Arc<Controller>, auth: Option<Box<QueueAuth>>) -> AdminQueue {
        AdminQueue { ctrl, auth }
    }

    fn execute(&self, req: Request) -> Completion {
        if req.sqe.is_fabrics() {
            return self.fabrics(&req);
        }
        // NVMe Base 2.0 §3.5.1: only Fabrics commands before CC.EN = 1 and CSTS.RDY = 1.
        if !self.ctrl.is_ready() {
            return ready(Response::status(Status::COMMAND_SEQUENCE_ERROR.with_dnr()));
        }
        if req.sqe.fuse() != 0 {
            return ready(Response::status(Status::INVALID_FIELD.with_dnr()));
        }
        let cmd = match AdminCommand::decode(&req.sqe) {
            Ok(c) => c,
            Err(e) => return ready(Response::status(e.status())),
        };
        let ctrl = &self.ctrl;
        match cmd {
            AdminCommand::Identify(id) => ready(crate::identify::identify(ctrl, &id)),
            AdminCommand::GetLogPage(glp) => ready(crate::log_pages::get_log_page(ctrl, &glp)),
            AdminCommand::GetFeatures(gf) => ready(crate::features::get_features(ctrl, &gf)),
            AdminCommand::SetFeatures(sf) => {
                ready(crate::features::set_features(ctrl, &sf, req.data.as_ref()))
            }
            // NVMe Base 2.0 §5.18: restarts the Keep Alive Timer (done in `submit`, for every
            // admin command).
            AdminCommand::KeepAlive => ready(Response::success()),
            AdminCommand::AsyncEventRequest => match ctrl.aer().submit(req.sqe.cid()) {
                AerSubmit::Now(r) => ready(r),
                AerSubmit::Parked(rx) => Completion::Pending(Box::pin(async move {
                    // The sender drops only when the controller goes away (the connection is
                    // closing then) or the host abandoned the request (the transport retired
                    // it): either way this completion is never sent.
                    rx.await
                        .unwrap_or_else(|_| Response::status(Status::ABORTED_SQ_DELETION))
                })),
                AerSubmit::LimitExceeded => ready(Response::status(
                    Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED.with_dnr(),
                )),
            },
            // NVMe Base 2.0 §5.1: commands complete too quickly here to be aborted; DW0 bit 0
            // set says the command was not aborted.
            AdminCommand::Abort(_) => ready(Response::success().with_dw0(1)),
            AdminCommand::Unknown(_) => ready(Response::status(Status::INVALID_OPCODE.with_dnr())),
        }
    }

    fn fabrics(&self, req: &Request) -> Completion {
        match FabricsCommand::decode(&req.sqe) {
            Ok(FabricsCommand::PropertyGet(pg)) => ready(property_get(&self.ctrl, &pg)),
            Ok(FabricsCommand::PropertySet(ps)) => property_set(&self.ctrl, &ps),
            // A second Connect on a connected queue (NVMe-oF 1.1 §3.3).
            Ok(FabricsCommand::Connect(_)) => {
                ready(Response::status(Status::COMMAND_SEQUENCE_ERROR.with_dnr()))
            }
            // Disconnect applies to I/O queues only (NVMe-oF 1.1 §3.6); authentication
            // commands reach here only when the host has no key (`QueueAuth` takes them
            // otherwise).
            Ok(FabricsCommand::Disconnect { .. })
            | Ok(FabricsCommand::AuthenticationSend(_))
            | Ok(FabricsCommand::AuthenticationReceive(_))
            | Ok(FabricsCommand::Unknown(_)) => {
                ready(Response::status(Status::INVALID_OPCODE.with_dnr()))
            }
            Err(e) => ready(Response::status(e.status())),
        }
    }
}

fn ready(r: Response) -> Completion {
    Completion::Ready(r)
}

/// CAP as this target reports it (NVMe Base 2.0 §3.1.4.1).
pub fn cap(ctrl: &Controller) -> Cap {
    Cap(0)
        .with_mqes(ctrl.params.mqes)
        .with_cqr(true)
        // Ready within 15 s (units of 500 ms).
        .with_to(30)
        .with_css(Cap::CSS_NVM | Cap::CSS_IO_COMMAND_SETS)
        .with_mpsmin(0)
        .with_mpsmax(0)
}

/// Property Get (NVMe-oF 1.1 §3.4): 8-byte values come back in DW0 (low) and DW1 (high).
fn property_get(ctrl: &Controller, pg: &PropertyGet) -> Response {
    let Some(prop) = Property::from_offset(pg.offset) else {
        return Response::status(Status::INVALID_FIELD.with_dnr());
    };
    if prop.size() != pg.size.bytes() {
        return Response::status(Status::INVALID_FIELD.with_dnr());
    }
    let value: u64 = match prop {
        Property::Cap => cap(ctrl).0,
        Property::Vs => u64::from(VERSION.0),
        Property::Cc => u64::from(ctrl.cc()),
        Property::Csts => u64::from(ctrl.csts()),
        // NVM Subsystem Reset is not supported (CAP.NSSRS = 0).
        Property::Nssr => return Response::status(Status::INVALID_FIELD.with_dnr()),
    };
    let mut r = Response::success().with_dw0(value as u32);
    r.dw1 = (value >> 32) as u32;
    r
}

/// Property Set (NVMe-oF 1.1 §3.5): only CC is writable here.
fn property_set(ctrl: &Arc<Controller>, ps: &PropertySet) -> Completion {
    match Property::from_offset(ps.offset) {
        Some(Property::Cc) if ps.size.bytes() == 4 => {}
        _ => return ready(Response::status(Status::INVALID_FIELD.with_dnr())),
    }
    if !ctrl.write_cc(ps.value as u32) {
        return ready(Response::success());
    }
    // Shutdown notification (NVMe Base 2.0 §3.6.1): make written data durable, then report
    // CSTS.SHST = complete. The Property Set completes when that is done.
    let ctrl = ctrl.clone();
    Completion::Pending(Box::pin(async move {
        let flushing = ctrl.clone();
        let result = tokio::task::spawn_blocking(move || match flushing.subsystem() {
            Some(s) => s.flush_all(),
            None => Ok(()),
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(failed)) => {
                for (nsid, e) in failed {
                    tracing::warn!(cntlid = ctrl.cntlid, nsid, error = %e, "flush at shutdown failed");
                }
            }
            Err(e) => tracing::error!(cntlid = ctrl.cntlid, error = %e, "flush task failed"),
        }
        ctrl.shutdown_done();
        Response::success()
    }))
}

impl QueueHandler for AdminQueue {
    fn submit(&mut self, request: Request) -> Completion {
        // NVMe Base 2.0 §3.9 (Traffic Based Keep Alive, CTRATT.TBKAS): processing any admin
        // command restarts the Keep Alive Timer, on NVM and discovery controllers alike.
        self.ctrl.restart_keep_alive();
        let sqe = request.sqe;
        if let Some(r) = self.auth.as_mut().and_then(|a| a.gate(&request)) {
            if !r.status.is_success() {
                self.ctrl.record_error(0, &sqe, r.status);
            }
            return Completion::Ready(r);
        }
        if !sqe.is_fabrics() && sqe.opcode == AdminOpcode::AsyncEventRequest.to_u8() {
            // A parked AER fails only by ending without a completion (see `execute`), which
            // is no error for the host to find in the log: record immediate failures only.
            return match self.execute(request) {
                Completion::Ready(r) => {
                    if !r.status.is_success() {
                        self.ctrl.record_error(0, &sqe, r.status);
                    }
                    Completion::Ready(r)
                }
                parked => parked,
            };
        }
        record_failures(&self.ctrl, 0, request, |r| self.execute(r))
    }

    fn abandon_async_event(&mut self, cid: u16) {
        if self.ctrl.aer().abandon(cid) {
            tracing::debug!(cntlid = self.ctrl.cntlid, cid, "AER abandoned by the host");
        }
    }

    fn teardown(&self) -> CancellationToken {
        self.ctrl.teardown_token()
    }

    fn disconnected(&mut self) {
        // Losing the admin queue ends the controller (NVMe-oF 1.1 §3.3).
        self.ctrl.destroy("admin queue disconnected");
    }
}
