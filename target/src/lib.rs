//! The ferrofab NVMe-oF target: subsystems, controllers, namespaces, discovery, command
//! dispatch, configuration and the daemon.
#![forbid(unsafe_code)]

pub mod admin;
pub mod aer;
pub mod auth;
pub mod config;
pub mod controller;
pub mod ctrl_state;
pub mod daemon;
pub mod discovery;
pub mod drives;
pub mod engine;
pub mod error_log;
pub mod events;
pub mod features;
pub mod firmware;
pub mod housekeeping;
pub mod identify;
pub mod ids;
pub mod io;
pub mod keep_alive;
pub mod kernel_nvme;
pub mod layout;
pub mod lease;
pub mod listeners;
pub mod local_drives;
pub mod log_pages;
pub mod metrics;
pub mod namespace;
pub mod nqn;
pub mod perf;
pub mod pools;
pub mod rdma_listeners;
pub mod setup;
pub mod state;
pub mod status_map;
pub mod subsystem;
pub mod target;
pub mod tls_psks;

pub use config::Config;
pub use controller::TargetParams;
pub use daemon::Daemon;
pub use target::FabricTarget;
