//! TLS 1.3 for NVMe/TCP (NVMe/TCP 1.1 §3.6.1, TP 8011): a listener may require TLS, offer
//! it, or not use it. The handshake (external PSK, no certificates) runs off the data path
//! with OpenSSL; then the kernel takes over the record layer (kTLS), so the reactors read
//! and write the same plaintext PDUs on the same socket as without TLS.
//!
//! Why OpenSSL and kTLS: docs/design.md "TLS for NVMe/TCP".

mod handshake;
mod ktls;
pub mod psk;

use ferrofab_sync::CountedLock as _;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use handshake::{TlsAcceptor, TlsError};
/// Why OpenSSL could not set up the TLS server.
pub use openssl::error::ErrorStack as TlsSetupError;
pub use psk::{ConfiguredPsk, Identity, IdentityError, PskHash, PskKeyError};
use zeroize::Zeroizing;

/// What a listener does about TLS; the discovery log announces it (TREQ, TSAS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plain NVMe/TCP only.
    #[default]
    None,
    /// TLS when the host starts a handshake, plain NVMe/TCP otherwise.
    Optional,
    /// TLS only: a host that does not start a handshake is disconnected.
    Required,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Optional => "optional",
            TlsMode::Required => "required",
        }
    }
}

/// Where the handshake finds the PSK for an identity a host offers.
pub trait PskStore: Send + Sync {
    /// The TLS PSK of `identity`, or `None` when no configured key matches it.
    fn tls_psk(&self, identity: &Identity) -> Option<Zeroizing<Vec<u8>>>;
    /// A connection was refused before NVMe/TCP began (for the operator's event record).
    fn refused(&self, _peer: std::net::SocketAddr, _why: &TlsError) {}
}

/// What a TLS handshake established: who the PSK says the host is, for the Connect check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecureChannel {
    pub hostnqn: String,
    pub subnqn: String,
    pub cipher: &'static str,
}

/// The first byte of a TLS record carrying a handshake message (RFC 8446 §5.1); an
/// NVMe/TCP ICReq starts with PDU type 00h.
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// How a new connection proceeds on a listener in `mode`.
#[derive(Debug)]
pub enum Admitted {
    Plain(TcpStream),
    Secure(TcpStream, SecureChannel),
}

/// Decide, from the connection's first byte, whether the host starts TLS, and run the
/// handshake if so. Blocking (with `timeout` on each read and write): call it off the
/// reactors. A host that sends nothing within `timeout` is refused.
pub fn admit(
    stream: TcpStream,
    mode: TlsMode,
    acceptor: &TlsAcceptor,
    timeout: Duration,
) -> Result<Admitted, TlsError> {
    if mode == TlsMode::None {
        return Ok(Admitted::Plain(stream));
    }
    stream.set_nonblocking(false).map_err(TlsError::Io)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(TlsError::Io)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(TlsError::Io)?;
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).map_err(TlsError::Io)?;
    if n == 0 {
        return Err(TlsError::Closed);
    }
    // NVMe/TCP 1.1 §3.6.1.1: a listener that requires TLS accepts no plain connection.
    match (first[0] == TLS_HANDSHAKE_RECORD, mode) {
        (true, _) => {
            let (stream, channel) = acceptor.accept(stream)?;
            stream.set_read_timeout(None).map_err(TlsError::Io)?;
            stream.set_write_timeout(None).map_err(TlsError::Io)?;
            Ok(Admitted::Secure(stream, channel))
        }
        (false, TlsMode::Required) => Err(TlsError::PlainRefused),
        (false, _) => {
            stream.set_read_timeout(None).map_err(TlsError::Io)?;
            stream.set_write_timeout(None).map_err(TlsError::Io)?;
            Ok(Admitted::Plain(stream))
        }
    }
}

/// Bounds the whole admission of one connection: the read and write timeouts bound each step,
/// but a host trickling handshake bytes would hold a blocking thread for as long as it likes.
/// When the limit passes first, [`Watchdog::fire`] shuts the socket down and the handshake's
/// next read fails; whoever comes first, the admission ([`Watchdog::disarm`]) or the watchdog,
/// decides, so a connection already handed to a reactor is never shut down by it.
#[derive(Clone)]
pub struct Watchdog {
    socket: Arc<Mutex<Option<TcpStream>>>,
}

impl Watchdog {
    pub fn new(stream: &TcpStream) -> std::io::Result<Watchdog> {
        Ok(Watchdog {
            socket: Arc::new(Mutex::new(Some(stream.try_clone()?))),
        })
    }

    /// The admission finished: the watchdog stands down. `false` when it fired first (the
    /// socket is shut down: refuse the connection).
    pub fn disarm(&self) -> bool {
        self.socket.lock_counted().take().is_some()
    }

    /// The limit passed: shut the socket down unless the admission finished.
    pub fn fire(&self) {
        if let Some(s) = self.socket.lock_counted().take() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests;
