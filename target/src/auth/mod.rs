//! In-band authentication of hosts: DH-HMAC-CHAP (NVMe Base 2.0 §8.13.5). The messages are
//! `nvme_spec::auth`; here are the keys ([`key`]), the computations ([`crypto`], [`dh`]) and
//! the controller side of one queue's transaction ([`dhchap`]), all sans-IO, and how a queue
//! uses them ([`queue`]).

pub mod crypto;
pub mod dh;
pub mod dhchap;
pub mod key;
pub mod queue;

pub use dhchap::{Dhchap, HostKeys, Policy, TooSmall};
pub use key::{DhchapKey, KeyError};
pub use queue::{AuthTable, HostAuth, QueueAuth, CONNECT_AUTHREQ_ATR};
