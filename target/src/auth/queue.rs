//! Authentication on a queue whose host has a key: the Connect response asks the host to
//! authenticate (AUTHREQ.ATR), Authentication Send and Receive carry the transaction, and
//! every other command but Connect and Disconnect is refused with Authentication Required
//! until it succeeds (NVMe Base 2.0 §8.13.5.1; the host authenticates each queue, admin and
//! I/O, on its own).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use fabric::queue::{Request, Response};
use nvme::auth::{SECP_INBAND_AUTH, SPSP_DHCHAP};
use nvme::command::FabricsCommand;
use nvme::Status;

use super::{Dhchap, HostKeys, Policy};
use crate::config::HostConfig;

/// Connect response DW0 bit: the host must authenticate before using the queue (AUTHREQ
/// ATR; Linux NVME_CONNECT_AUTHREQ_ATR).
pub const CONNECT_AUTHREQ_ATR: u32 = 1 << 17;

/// One host's keys and what the controller accepts from it.
#[derive(Debug)]
pub struct HostAuth {
    pub keys: HostKeys,
    pub policy: Policy,
}

/// The hosts that authenticate, by NQN; the engine swaps the table whole.
#[derive(Debug, Default)]
pub struct AuthTable {
    by_nqn: HashMap<String, Arc<HostAuth>>,
}

impl AuthTable {
    /// The table of a validated configuration's `[[host]]`s (a host whose keys do not
    /// parse, which validation refuses, is left out).
    pub fn from_config(hosts: &[HostConfig]) -> AuthTable {
        let by_nqn = hosts
            .iter()
            .filter_map(|h| {
                let keys = h.keys().ok()?;
                Some((
                    h.nqn.clone(),
                    Arc::new(HostAuth {
                        keys,
                        policy: h.policy(),
                    }),
                ))
            })
            .collect();
        AuthTable { by_nqn }
    }

    pub fn get(&self, hostnqn: &str) -> Option<Arc<HostAuth>> {
        self.by_nqn.get(hostnqn).cloned()
    }
}

/// One queue's authentication.
pub struct QueueAuth {
    dhchap: Dhchap,
}

impl QueueAuth {
    pub fn new(host: &HostAuth, hostnqn: &str, subnqn: &str) -> Box<QueueAuth> {
        Box::new(QueueAuth {
            dhchap: Dhchap::new(host.keys.clone(), host.policy.clone(), hostnqn, subnqn),
        })
    }

    /// The answer to `req` when authentication decides it: its own commands, and any other
    /// before the queue is authenticated. `None`: the queue handles the command.
    pub fn gate(&mut self, req: &Request) -> Option<Response> {
        if req.sqe.is_fabrics() {
            match FabricsCommand::decode(&req.sqe) {
                Ok(FabricsCommand::AuthenticationSend(s)) => {
                    return Some(self.send(s.secp, s.spsp0, s.spsp1, s.tl, req.host_data()))
                }
                Ok(FabricsCommand::AuthenticationReceive(r)) => {
                    return Some(self.receive(r.secp, r.spsp0, r.spsp1, r.al))
                }
                Ok(FabricsCommand::Connect(_) | FabricsCommand::Disconnect { .. }) => return None,
                Ok(_) | Err(_) => {}
            }
        }
        (!self.dhchap.authenticated()).then(|| Response::status(Status::AUTH_REQUIRED.with_dnr()))
    }

    fn send(&mut self, secp: u8, spsp0: u8, spsp1: u8, tl: u32, data: &[u8]) -> Response {
        // NVMe Base 2.0 §6.3: the protocol, and a transfer length that is the data's.
        if !dhchap_protocol(secp, spsp0, spsp1) || tl == 0 || data.len() != tl as usize {
            return Response::status(Status::INVALID_FIELD.with_dnr());
        }
        self.dhchap.send(data);
        Response::success()
    }

    fn receive(&mut self, secp: u8, spsp0: u8, spsp1: u8, al: u32) -> Response {
        if !dhchap_protocol(secp, spsp0, spsp1) || al == 0 {
            return Response::status(Status::INVALID_FIELD.with_dnr());
        }
        match self.dhchap.receive(al, &mut rand::rng()) {
            Ok(msg) => Response::success().with_data(Bytes::from(msg)),
            Err(e) => {
                tracing::debug!(error = %e, "Authentication Receive buffer too small");
                Response::status(Status::INVALID_FIELD.with_dnr())
            }
        }
    }
}

fn dhchap_protocol(secp: u8, spsp0: u8, spsp1: u8) -> bool {
    secp == SECP_INBAND_AUTH && spsp0 == SPSP_DHCHAP && spsp1 == SPSP_DHCHAP
}
