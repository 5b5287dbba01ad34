//! Helpers shared by the end-to-end test binaries: a daemon on 127.0.0.1, host options, data.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use fabric::initiator::HostOptions;
use rand::RngCore;
use target::{Config, Daemon, TargetParams};

/// A `[[listener]]` on an ephemeral loopback port, for test configurations.
pub const LOOPBACK_LISTENER: &str =
    "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n";

/// Parse a test configuration (it must be valid).
pub fn parse(text: &str) -> Config {
    Config::parse(text, "test").expect("test config is valid")
}

/// Start a daemon with `config`; returns it with its first listener's address.
pub async fn serve(config: Config) -> (Daemon, SocketAddr) {
    let d = Daemon::start(config, TargetParams::default())
        .await
        .expect("daemon starts");
    let addr = d.addresses()[0];
    (d, addr)
}

/// Host options with this host NQN and this many I/O queues, defaults otherwise.
pub fn host(hostnqn: &str, io_queues: u16) -> HostOptions {
    HostOptions {
        hostnqn: hostnqn.to_string(),
        io_queues,
        ..HostOptions::default()
    }
}

/// `len` random bytes.
pub fn random(len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    Bytes::from(v)
}
