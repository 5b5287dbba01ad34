//! Shared by the management API tests: a daemon on 127.0.0.1:0, the API server beside it with
//! tokens in a temporary directory, and an HTTP client whose every response must be JSON.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use mgmt::{MgmtServer, Tokens};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use target::drives::Drives;
use target::firmware::Firmware;
use target::{Config, Daemon, TargetParams};

pub mod sysfs;

pub const SUB: &str = "nqn.2026-01.io.ferrofab:rest";
pub const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
pub const OTHER: &str = "nqn.2014-08.org.nvmexpress:uuid:22222222-2222-3333-4444-555555555555";

/// One NVMe/TCP listener on loopback, no subsystems.
pub fn listener_config() -> Config {
    Config::parse(
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n",
        "test",
    )
    .unwrap()
}

pub struct Api {
    pub daemon: Daemon,
    /// The NVMe/TCP listener.
    pub nvme: SocketAddr,
    pub base: String,
    pub tokens: Tokens,
    server: MgmtServer,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A response: status, headers and the parsed JSON body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Assert the status, showing the body when it is not the expected one.
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        self.body
    }

    /// Assert an error response: status, code and field.
    pub fn expect_error(self, status: u16, code: &str, field: Option<&str>) -> String {
        let body = self.expect(status);
        let e = &body["error"];
        assert_eq!(e["code"], code, "body: {body}");
        assert_eq!(e["field"].as_str(), field, "body: {body}");
        let message = e["message"].as_str().expect("error message").to_string();
        assert!(!message.is_empty());
        message
    }
}

pub enum Token<'a> {
    Admin,
    ReadOnly,
    None,
    Raw(&'a str),
}

impl Api {
    /// A daemon with one loopback listener and no subsystems, and the API server.
    pub async fn start() -> Api {
        Api::start_on(listener_config(), None, None).await
    }

    /// A daemon serving `config` with `drives` (the daemon's own when `None`), and the API
    /// server with `firmware` (updates off when `None`).
    pub async fn start_on(
        config: Config,
        drives: Option<Arc<Drives>>,
        firmware: Option<Firmware>,
    ) -> Api {
        let daemon = match drives {
            Some(drives) => {
                Daemon::start_with_drives(config, TargetParams::default(), None, drives).await
            }
            None => Daemon::start(config, TargetParams::default()).await,
        }
        .unwrap();
        let nvme = daemon.addresses()[0];
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::load_or_create(&dir.path().join("tokens")).unwrap();
        let server = match firmware {
            Some(firmware) => {
                mgmt::start_with(
                    daemon.engine().clone(),
                    "127.0.0.1:0".parse().unwrap(),
                    tokens.clone(),
                    None,
                    firmware,
                )
                .await
            }
            None => {
                mgmt::start(
                    daemon.engine().clone(),
                    "127.0.0.1:0".parse().unwrap(),
                    tokens.clone(),
                )
                .await
            }
        }
        .unwrap();
        Api {
            base: format!("http://{}", server.local_addr()),
            daemon,
            nvme,
            tokens,
            server,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
        self.daemon.shutdown().await;
    }

    /// `method path` with `token` and a raw body (sent as application/json).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Token<'_>,
        body: Option<&str>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        let bearer = match token {
            Token::Admin => Some(self.tokens.admin.clone()),
            Token::ReadOnly => Some(self.tokens.read_only.clone()),
            Token::Raw(t) => Some(t.to_string()),
            Token::None => None,
        };
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{status} {text}"
        );
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text}"));
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let text = body.map(|b| b.to_string());
        self.raw(method, path, Token::Admin, text.as_deref()).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }
}
