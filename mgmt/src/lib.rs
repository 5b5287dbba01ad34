//! The ferrofab management plane: a REST API (JSON, `/api/v1/`) over the engine API, with
//! bearer-token authentication and a generated OpenAPI 3.1 description. It runs on the tokio
//! runtime, never on the NVMe reactors; every change is an engine action.
#![forbid(unsafe_code)]

pub mod auth;
pub mod backend;
pub mod controllers;
pub mod error;
mod extract;
pub mod hosts;
mod https;
pub mod metrics;
pub mod namespaces;
pub mod openapi;
pub mod outcome;
mod redfish;
mod request_schema;
mod server;
mod state;
pub mod subsystems;
pub mod system;
pub mod tls;
pub mod zones;

pub use auth::Tokens;
pub use openapi::openapi;
pub use server::{router, start, start_tls, MgmtServer};
pub use tls::{MgmtTls, TlsError};
