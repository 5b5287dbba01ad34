//! The controller side of one queue's DH-HMAC-CHAP transaction, sans-IO (NVMe Base 2.0
//! §8.13.5): the host's messages come in with Authentication Send ([`Dhchap::send`]), the
//! controller's go out with Authentication Receive ([`Dhchap::receive`]). A protocol failure
//! does not fail the command that carried it: the next Receive answers AUTH_Failure1 with
//! the reason (§8.13.5.8), and the queue stays unauthenticated. Randomness (challenges,
//! sequence numbers, DH exponents) comes from the caller's generator.
//!
//! States and what moves them (every other message in a state is an incorrect message):
//!
//! | state      | Send Negotiate | Send Reply | Send Success2 | Send Failure2 | Receive   |
//! |------------|----------------|------------|---------------|---------------|-----------|
//! | Idle       | Challenge      | Failure1   | Failure1      | Idle          | Failure1* |
//! | Challenge  | Challenge      | Failure1   | Failure1      | Idle          | Reply     |
//! | Reply      | Challenge      | Success1   | Failure1      | Idle          | Failure1* |
//! | Success1   | Challenge      | Failure1   | Failure1      | Idle          | Success2 / Idle (done) |
//! | Success2   | Challenge      | Failure1   | Idle (done)   | Idle          | Failure1* |
//! | Failure1   | Challenge      | Failure1   | Failure1      | Idle          | Idle      |
//!
//! (*: a Receive with nothing to answer is itself an incorrect message.) A Negotiate in any
//! state starts a new transaction: that is re-authentication (§8.13.5.1).

use nvme::auth::{
    encode_challenge, encode_failure, encode_success1, DhGroup, FailureReason, HashId, Message,
    MessageId, Offer,
};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::crypto::{augmented, response, Role};
use super::dh::DhKeyPair;
use super::key::DhchapKey;

/// What a host proves itself with, and what the controller proves itself with to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKeys {
    pub key: DhchapKey,
    /// For bidirectional authentication (the host sends a challenge of its own).
    pub ctrl_key: Option<DhchapKey>,
}

/// The hash functions and DH groups the controller accepts, in its order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub hashes: Vec<HashId>,
    pub dhgroups: Vec<DhGroup>,
}

impl Default for Policy {
    /// Every hash (SHA-256 first, what the Linux host's keys default to) and every DH group,
    /// the smallest exchange first and the null group last.
    fn default() -> Self {
        Policy {
            hashes: vec![HashId::Sha256, HashId::Sha384, HashId::Sha512],
            dhgroups: vec![
                DhGroup::Ffdhe2048,
                DhGroup::Ffdhe3072,
                DhGroup::Ffdhe4096,
                DhGroup::Ffdhe6144,
                DhGroup::Ffdhe8192,
                DhGroup::Null,
            ],
        }
    }
}

/// Why an Authentication Receive gets no message: its buffer is too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the message is {need} bytes; the allocation length is {al}")]
pub struct TooSmall {
    pub need: usize,
    pub al: u32,
}

enum State {
    Idle,
    /// Negotiated: the next Receive returns the challenge.
    Challenge {
        t_id: u16,
        hash: HashId,
        group: DhGroup,
    },
    /// Challenge sent: waiting for the host's reply.
    Reply {
        t_id: u16,
        hash: HashId,
        dh: Option<DhKeyPair>,
        c1: Vec<u8>,
        s1: u32,
    },
    /// Reply verified: the next Receive returns Success1 (with R2 when asked).
    Success1 {
        t_id: u16,
        hash: HashId,
        r2: Option<Zeroizing<Vec<u8>>>,
    },
    /// Success1 with R2 sent: waiting for the host's Success2.
    Success2 {
        t_id: u16,
    },
    /// The next Receive returns AUTH_Failure1.
    Failure1 {
        t_id: u16,
        reason: FailureReason,
    },
}

/// One queue's authentication.
pub struct Dhchap {
    keys: HostKeys,
    policy: Policy,
    hostnqn: String,
    subnqn: String,
    state: State,
    authenticated: bool,
}

impl Dhchap {
    pub fn new(keys: HostKeys, policy: Policy, hostnqn: &str, subnqn: &str) -> Dhchap {
        Dhchap {
            keys,
            policy,
            hostnqn: hostnqn.to_string(),
            subnqn: subnqn.to_string(),
            state: State::Idle,
            authenticated: false,
        }
    }

    /// Whether the host has proven itself on this queue (and has not failed since).
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    fn fail(&mut self, t_id: u16, reason: FailureReason) {
        self.authenticated = false;
        self.state = State::Failure1 { t_id, reason };
    }

    fn t_id(&self) -> u16 {
        match &self.state {
            State::Idle => 0,
            State::Challenge { t_id, .. }
            | State::Reply { t_id, .. }
            | State::Success1 { t_id, .. }
            | State::Success2 { t_id }
            | State::Failure1 { t_id, .. } => *t_id,
        }
    }

    /// The data of an Authentication Send.
    pub fn send(&mut self, data: &[u8]) {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                let t_id = self.t_id();
                return self.fail(t_id, FailureReason::IncorrectPayload);
            }
        };
        match msg {
            Message::Negotiate { t_id, sc_c, dhchap } => self.negotiate(t_id, sc_c, dhchap),
            Message::Reply {
                t_id,
                response,
                challenge,
                dh_value,
            } => self.reply(t_id, response, challenge, dh_value),
            Message::Success2 { t_id } => match self.state {
                State::Success2 { t_id: want } if want == t_id => {
                    self.authenticated = true;
                    self.state = State::Idle;
                }
                State::Success2 { .. } => self.fail(t_id, FailureReason::IncorrectPayload),
                _ => self.fail(t_id, FailureReason::IncorrectMessage),
            },
            // The host gave up (it could not verify us, or anything else): nothing to answer.
            Message::Failure {
                id: MessageId::Failure2,
                ..
            } => {
                self.authenticated = false;
                self.state = State::Idle;
            }
            // Controller-to-host messages sent by a host.
            Message::Failure { t_id, .. }
            | Message::Challenge { t_id, .. }
            | Message::Success1 { t_id, .. } => self.fail(t_id, FailureReason::IncorrectMessage),
        }
    }

    fn negotiate(&mut self, t_id: u16, sc_c: u8, offer: Option<Offer<'_>>) {
        // A new transaction (re-authentication keeps the queue authenticated until it
        // fails).
        let Some(offer) = offer else {
            return self.fail(t_id, FailureReason::ProtocolNotUsable);
        };
        // Secure channel concatenation needs TLS on the queue (§8.13.5.9); none here.
        if sc_c != 0 {
            return self.fail(t_id, FailureReason::ConcatMismatch);
        }
        let Some(hash) = self
            .policy
            .hashes
            .iter()
            .copied()
            .find(|h| offer.hashes.contains(&h.as_u8()))
        else {
            return self.fail(t_id, FailureReason::HashUnusable);
        };
        let Some(group) = self
            .policy
            .dhgroups
            .iter()
            .copied()
            .find(|g| offer.dhgroups.contains(&g.as_u8()))
        else {
            return self.fail(t_id, FailureReason::DhGroupUnusable);
        };
        self.state = State::Challenge { t_id, hash, group };
    }

    fn reply(&mut self, t_id: u16, r1: &[u8], c2: Option<(&[u8], u32)>, dh_value: &[u8]) {
        let state = std::mem::replace(&mut self.state, State::Idle);
        let State::Reply {
            t_id: want,
            hash,
            dh,
            c1,
            s1,
        } = state
        else {
            self.state = state;
            return self.fail(t_id, FailureReason::IncorrectMessage);
        };
        if t_id != want || r1.len() != hash.digest_len() {
            return self.fail(want, FailureReason::IncorrectPayload);
        }
        let shared = match &dh {
            Some(pair) => match pair.shared(dh_value) {
                Ok(s) => Some(s),
                Err(_) => return self.fail(t_id, FailureReason::IncorrectPayload),
            },
            None if !dh_value.is_empty() => {
                return self.fail(t_id, FailureReason::IncorrectPayload)
            }
            None => None,
        };
        let shared = shared.as_ref().map(|s| s.as_slice());
        let kh = self.keys.key.transformed(&self.hostnqn);
        let expect = response(
            Role::Host,
            hash,
            &kh,
            &augmented(hash, shared, &c1),
            s1,
            t_id,
            0,
            &self.hostnqn,
            &self.subnqn,
        );
        if !bool::from(expect.as_slice().ct_eq(r1)) {
            return self.fail(t_id, FailureReason::Failed);
        }
        let r2 = match c2 {
            None => None,
            Some((c2, s2)) => {
                let Some(ctrl_key) = &self.keys.ctrl_key else {
                    // The host asks us to authenticate, but we have no key to do it with.
                    return self.fail(t_id, FailureReason::Failed);
                };
                if c2.len() != hash.digest_len() {
                    return self.fail(t_id, FailureReason::IncorrectPayload);
                }
                let kc = ctrl_key.transformed(&self.subnqn);
                Some(response(
                    Role::Controller,
                    hash,
                    &kc,
                    &augmented(hash, shared, c2),
                    s2,
                    t_id,
                    0,
                    &self.hostnqn,
                    &self.subnqn,
                ))
            }
        };
        self.state = State::Success1 { t_id, hash, r2 };
    }

    /// Bytes of the message the next Receive returns.
    fn pending_len(&self) -> usize {
        match &self.state {
            State::Challenge { hash, group, .. } => 16 + hash.digest_len() + group.value_len(),
            State::Success1 { r2, .. } => 16 + r2.as_ref().map_or(0, |r| r.len()),
            State::Idle | State::Reply { .. } | State::Success2 { .. } | State::Failure1 { .. } => {
                8
            }
        }
    }

    /// The data of an Authentication Receive of `al` bytes: the message to return. A buffer
    /// too small for it changes nothing (the host may ask again with a larger one).
    pub fn receive(&mut self, al: u32, rng: &mut impl RngCore) -> Result<Vec<u8>, TooSmall> {
        let need = self.pending_len();
        if need > al as usize {
            return Err(TooSmall { need, al });
        }
        let mut out = Vec::with_capacity(need);
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.state = match state {
            State::Challenge { t_id, hash, group } => {
                let mut c1 = vec![0u8; hash.digest_len()];
                rng.fill_bytes(&mut c1);
                // S1 is never 0 (§8.13.5.4).
                let s1 = rng.next_u32().max(1);
                let dh = DhKeyPair::generate(group, rng);
                let public = dh.as_ref().map_or(&[][..], DhKeyPair::public);
                encode_challenge(&mut out, t_id, hash, group, s1, &c1, public);
                State::Reply {
                    t_id,
                    hash,
                    dh,
                    c1,
                    s1,
                }
            }
            State::Success1 { t_id, hash, r2 } => {
                let hl = hash.digest_len() as u8;
                encode_success1(&mut out, t_id, hl, r2.as_ref().map(|r| r.as_slice()));
                if r2.is_some() {
                    State::Success2 { t_id }
                } else {
                    self.authenticated = true;
                    State::Idle
                }
            }
            State::Failure1 { t_id, reason } => {
                encode_failure(&mut out, MessageId::Failure1, t_id, reason);
                State::Idle
            }
            // Nothing to answer: the Receive itself is out of sequence.
            State::Idle => {
                self.authenticated = false;
                encode_failure(
                    &mut out,
                    MessageId::Failure1,
                    0,
                    FailureReason::IncorrectMessage,
                );
                State::Idle
            }
            State::Reply { t_id, .. } | State::Success2 { t_id } => {
                self.authenticated = false;
                encode_failure(
                    &mut out,
                    MessageId::Failure1,
                    t_id,
                    FailureReason::IncorrectMessage,
                );
                State::Idle
            }
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
