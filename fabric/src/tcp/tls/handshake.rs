//! The TLS 1.3 handshake with an external PSK (RFC 8446 §2.2, §4.2.11), by OpenSSL over the
//! blocking socket, ending where the kernel takes the records over ([`super::ktls`]).
//!
//! Cipher suites: the two NVMe/TCP 1.1 §3.6.1.2 names, TLS_AES_128_GCM_SHA256 and
//! TLS_AES_256_GCM_SHA384. No session tickets (NVMe/TCP does not resume; a ticket sent
//! after the handshake would also move the record sequence the kernel starts from).

use ferrofab_sync::CountedLock as _;
use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{
    ErrorCode, HandshakeError, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions,
    SslVersion,
};
use zeroize::Zeroizing;

use super::ktls::{install, TrafficSecrets};
use super::psk::Identity;
use super::{PskStore, SecureChannel};
use crate::sys::tls::set_psk_find_session;

/// Why a TLS connection was not established; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the host closed the connection before the handshake")]
    Closed,
    #[error("the listener requires TLS and the host did not start a handshake")]
    PlainRefused,
    #[error("the host did not finish the TLS handshake within {0:?}")]
    Deadline(std::time::Duration),
    #[error("{0} TLS handshakes are already in progress on this listener")]
    Busy(usize),
    #[error("the host offered no PSK identity we hold a key for{}", .0.as_deref().map(|i| format!(" ({i})")).unwrap_or_default())]
    UnknownIdentity(Option<String>),
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    #[error("kernel TLS: {0}")]
    Kernel(String),
    #[error(transparent)]
    Io(io::Error),
    #[error("TLS setup: {0}")]
    Setup(#[from] ErrorStack),
}

/// What the callbacks learn during one handshake.
#[derive(Default)]
struct Learned {
    identity: Option<Identity>,
    offered: Option<String>,
    client_secret: Option<Zeroizing<Vec<u8>>>,
    server_secret: Option<Zeroizing<Vec<u8>>>,
}

type Shared = Arc<Mutex<Learned>>;

/// One listener's TLS server: the OpenSSL context and where PSKs come from.
pub struct TlsAcceptor {
    ctx: SslContext,
    learned: Index<Ssl, Shared>,
    store: Arc<dyn PskStore>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

fn learned(ssl: &openssl::ssl::SslRef, idx: Index<Ssl, Shared>) -> Option<Shared> {
    ssl.ex_data(idx).cloned()
}

impl TlsAcceptor {
    pub fn new(store: Arc<dyn PskStore>) -> Result<TlsAcceptor, ErrorStack> {
        let idx = Ssl::new_ex_index::<Shared>()?;
        let keys = store.clone();
        let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
        b.set_min_proto_version(Some(SslVersion::TLS1_3))?;
        b.set_max_proto_version(Some(SslVersion::TLS1_3))?;
        b.set_ciphersuites("TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384")?;
        b.set_num_tickets(0)?;
        b.set_options(SslOptions::NO_TICKET);
        // OpenSSL asks for the PSK of each identity the host offers; the session it gets
        // carries the cipher suite of the PSK's hash.
        set_psk_find_session(
            &mut b,
            Box::new(move |ssl, offered| {
                let shared = learned(ssl, idx);
                let id = Identity::parse(offered).ok();
                let key = id.as_ref().and_then(|id| store.tls_psk(id));
                if let Some(s) = &shared {
                    let mut l = lock(s);
                    l.offered = Some(String::from_utf8_lossy(offered).into_owned());
                    if key.is_some() {
                        l.identity = id.clone();
                    }
                }
                Some((key?, id?.hash))
            }),
        )?;
        b.set_keylog_callback(move |ssl, line| {
            let Some(shared) = learned(ssl, idx) else {
                return;
            };
            let mut l = lock(&shared);
            let mut parts = line.split(' ');
            let (Some(label), Some(_random), Some(secret)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return;
            };
            let slot = match label {
                "CLIENT_TRAFFIC_SECRET_0" => &mut l.client_secret,
                "SERVER_TRAFFIC_SECRET_0" => &mut l.server_secret,
                _ => return,
            };
            *slot = decode_hex(secret);
        });
        Ok(TlsAcceptor {
            ctx: b.build(),
            learned: idx,
            store: keys,
        })
    }

    /// Where this acceptor's PSKs come from.
    pub fn store(&self) -> &dyn PskStore {
        &*self.store
    }

    /// Run the handshake on `stream` (blocking, with the socket's timeouts), then hand the
    /// record layer to the kernel and give the socket back.
    pub fn accept(&self, stream: TcpStream) -> Result<(TcpStream, SecureChannel), TlsError> {
        let done = self.handshake(stream)?;
        install(&done.stream, done.channel.cipher, &done.secrets).map_err(TlsError::Kernel)?;
        Ok((done.stream, done.channel))
    }

    /// The handshake alone: the socket, who the host is, and the traffic secrets.
    pub(super) fn handshake(&self, stream: TcpStream) -> Result<Handshaken, TlsError> {
        let shared: Shared = Arc::default();
        let mut ssl = Ssl::new(&self.ctx)?;
        ssl.set_ex_data(self.learned, shared.clone());
        let tls = match ssl.accept(stream) {
            Ok(s) => s,
            Err(HandshakeError::Failure(mid)) | Err(HandshakeError::WouldBlock(mid)) => {
                let l = lock(&shared);
                if l.identity.is_none() {
                    return Err(TlsError::UnknownIdentity(l.offered.clone()));
                }
                let e = mid.error();
                return Err(match e.code() {
                    ErrorCode::SYSCALL => TlsError::Handshake(format!("socket: {e}")),
                    _ => TlsError::Handshake(e.to_string()),
                });
            }
            Err(HandshakeError::SetupFailure(e)) => return Err(TlsError::Setup(e)),
        };
        let cipher = match tls.ssl().current_cipher().map(|c| c.standard_name()) {
            Some(Some("TLS_AES_128_GCM_SHA256")) => "TLS_AES_128_GCM_SHA256",
            Some(Some("TLS_AES_256_GCM_SHA384")) => "TLS_AES_256_GCM_SHA384",
            other => return Err(TlsError::Handshake(format!("unexpected cipher {other:?}"))),
        };
        // Anything OpenSSL read past the handshake would be lost to the kernel.
        if tls.ssl().pending() != 0 {
            return Err(TlsError::Handshake(
                "data buffered past the handshake".into(),
            ));
        }
        let mut l = lock(&shared);
        let Some(identity) = l.identity.take() else {
            return Err(TlsError::UnknownIdentity(None));
        };
        let (Some(rx), Some(tx)) = (l.client_secret.take(), l.server_secret.take()) else {
            return Err(TlsError::Handshake("no traffic secrets".into()));
        };
        drop(l);
        let stream = tls.get_ref().try_clone().map_err(TlsError::Io)?;
        // Dropping the OpenSSL stream closes its descriptor (the socket stays open through
        // the clone) and sends nothing: no close_notify on a socket the kernel now owns.
        drop(tls);
        Ok(Handshaken {
            stream,
            channel: SecureChannel {
                hostnqn: identity.hostnqn,
                subnqn: identity.subnqn,
                cipher,
            },
            secrets: TrafficSecrets { rx, tx },
        })
    }
}

/// A finished handshake, before the kernel takes the records.
pub(super) struct Handshaken {
    pub stream: TcpStream,
    pub channel: SecureChannel,
    pub secrets: TrafficSecrets,
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Learned> {
    s.lock_counted()
}

fn decode_hex(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
    for pair in text.as_bytes().chunks(2) {
        let s = core::str::from_utf8(pair).ok()?;
        out.push(u8::from_str_radix(s, 16).ok()?);
    }
    Some(out)
}
