//! NVMe/TCP (NVMe/TCP Transport Specification 1.0): wire formats, the streaming PDU framer,
//! the sans-IO controller-side connection, the per-core reactors that drive it, the listener,
//! and the host side.

pub mod digest;
pub mod framer;
pub mod host_conn;
pub mod out_queue;
pub mod pdu;
pub mod reactor;
pub mod reactor_stats;
pub mod send_queue;
pub mod server;
pub mod target_conn;
pub mod tls;

pub use server::serve;
pub use target_conn::{TargetConnection, TcpTargetConfig};
