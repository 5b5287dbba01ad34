//! The NVMe/TCP listener: accepts connections (on tokio, off the data path) and hands each
//! to the least-loaded reactor of a [`ReactorPool`], which owns it from then on. On a
//! listener with TLS, each connection first goes through [`tls::admit`] on a blocking
//! thread (the handshake), and reaches its reactor with the kernel holding the records.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::reactor::ReactorPool;
pub use super::target_conn::TcpTargetConfig;
use super::tls::{self, Admitted, TlsAcceptor, TlsError, TlsMode, Watchdog};
use crate::queue::Target;

/// A listener's TLS: its mode and the handshake's server.
#[derive(Clone, Debug)]
pub struct ListenerTls {
    pub mode: TlsMode,
    pub acceptor: Arc<TlsAcceptor>,
    /// Longest a host may take for each step of the handshake.
    pub timeout: Duration,
    /// Longest a host may take for the whole handshake.
    pub deadline: Duration,
    /// Handshakes in progress on this listener at most (each holds a blocking thread, a pool
    /// the management plane shares); a connection past it is closed at once.
    pub max_handshakes: usize,
}

/// Accept NVMe/TCP connections on `listener` until `shutdown` is cancelled. The connections
/// live on `reactors`; stopping the pool closes them.
pub async fn serve(
    listener: TcpListener,
    target: Arc<dyn Target>,
    config: TcpTargetConfig,
    reactors: Arc<ReactorPool>,
    tls: Option<ListenerTls>,
    shutdown: CancellationToken,
) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(
        tls.as_ref().map_or(0, |t| t.max_handshakes),
    ));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            debug!(%peer, error = %e, "cannot take the accepted connection");
                            continue;
                        }
                    };
                    let Some(tls) = tls.clone().filter(|t| t.mode != TlsMode::None) else {
                        if let Err(e) = reactors.assign(stream, target.clone(), config.clone(), None) {
                            debug!(%peer, error = %e, "cannot hand the connection to a reactor");
                        }
                        continue;
                    };
                    let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                        let e = TlsError::Busy(tls.max_handshakes);
                        debug!(%peer, error = %e, "TLS connection refused");
                        tls.acceptor.store().refused(peer, &e);
                        continue;
                    };
                    let (target, config, reactors) = (target.clone(), config.clone(), reactors.clone());
                    let watchdog = match Watchdog::new(&stream) {
                        Ok(w) => w,
                        Err(e) => {
                            debug!(%peer, error = %e, "cannot watch the TLS handshake");
                            continue;
                        }
                    };
                    let fire = watchdog.clone();
                    let deadline = tls.deadline;
                    // The handshake blocks on the socket: off the runtime's workers.
                    let handshake = tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        let mut admitted = tls::admit(stream, tls.mode, &tls.acceptor, tls.timeout);
                        if !watchdog.disarm() {
                            admitted = Err(TlsError::Deadline(tls.deadline));
                        }
                        let assigned = match admitted {
                            Ok(Admitted::Plain(s)) => reactors.assign(s, target, config, None),
                            Ok(Admitted::Secure(s, channel)) => {
                                debug!(%peer, host = %channel.hostnqn, sub = %channel.subnqn,
                                    cipher = channel.cipher, "TLS connection");
                                reactors.assign(s, target, config, Some(Arc::new(channel)))
                            }
                            Err(e) => {
                                // Host-triggered: debug level.
                                debug!(%peer, error = %e, "TLS connection refused");
                                tls.acceptor.store().refused(peer, &e);
                                return;
                            }
                        };
                        if let Err(e) = assigned {
                            debug!(%peer, error = %e, "cannot hand the connection to a reactor");
                        }
                    });
                    tokio::spawn(async move {
                        if tokio::time::timeout(deadline, handshake).await.is_err() {
                            fire.fire();
                        }
                    });
                }
                Err(e) => {
                    // Typically EMFILE/ENFILE: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
