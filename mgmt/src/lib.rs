//! The ferrofab management plane: a REST API (JSON, `/api/v1/`) over the engine API, with
//! bearer-token authentication and a generated OpenAPI 3.1 description, a read-only Redfish
//! view, and the web console (embedded static files at `/`, a client of that API). It runs
//! on the tokio runtime, never on the NVMe reactors; every change is an engine action.
#![forbid(unsafe_code)]

pub mod auth;
pub mod backend;
mod console;
pub mod controllers;
pub mod drives;
pub mod error;
pub mod events;
mod extract;
pub mod firmware;
pub mod host_auth;
pub mod hosts;
mod https;
pub mod live;
pub mod metrics;
pub mod namespaces;
pub mod openapi;
pub mod outcome;
pub mod pools;
mod redfish;
mod request_schema;
mod server;
mod state;
pub mod stats;
pub mod subsystems;
pub mod system;
pub mod tls;
pub mod tls_psk;
pub mod zones;

pub use auth::Tokens;
pub use openapi::openapi;
pub use server::{router, start, start_tls, start_with, MgmtServer};
pub use tls::{MgmtTls, TlsError};
