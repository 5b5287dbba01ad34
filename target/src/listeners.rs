//! The daemon's NVMe/TCP listeners: one accept loop per bound address, opened and closed
//! at run time by the engine ([`crate::engine::ListenerControl`]). NVMe/RDMA's are in
//! [`crate::rdma_listeners`].

use ferrofab_sync::CountedLock as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use fabric::queue::Target;
use fabric::tcp::reactor::ReactorPool;
use fabric::tcp::server::{serve, ListenerTls, TcpTargetConfig};
use fabric::tcp::tls::{TlsAcceptor, TlsMode};
use tokio::net::TcpSocket;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::TransportKind;
use crate::engine::{BoundSocket, ListenerControl};

/// Longest a host may take for each read or write of the TLS handshake (the kernel host's
/// tlshd finishes in milliseconds; a silent peer holds one blocking thread until then).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest a host may take for the whole TLS handshake (see `fabric::tcp::tls::Watchdog`).
const TLS_HANDSHAKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);
/// TLS handshakes in progress per listener at most: each holds a thread of the runtime's
/// blocking pool (512, shared with the management plane's engine calls) for up to the
/// deadline; a connection past it is closed at once and recorded as refused.
const TLS_MAX_HANDSHAKES: usize = 64;

/// Bind a TCP listener socket on `address` (port 0 picks one), registered with `runtime`.
/// As `TcpListener::bind` does: SO_REUSEADDR (a restarted daemon rebinds its port while
/// old connections sit in TIME_WAIT) and a backlog of 1024 (connection bursts).
pub fn bind_tcp(address: SocketAddr, runtime: &Handle) -> std::io::Result<BoundSocket> {
    let _guard = runtime.enter();
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    let socket = socket.listen(1024)?;
    Ok(BoundSocket::Tcp {
        address: socket.local_addr()?,
        socket,
    })
}

/// NVMe/TCP accept loops on the daemon's runtime, handing connections to the reactors.
pub struct TcpListeners {
    target: Arc<dyn Target>,
    /// The TLS handshake's server (its PSKs are the target's `[[tls_psk]]`).
    acceptor: Arc<TlsAcceptor>,
    config: TcpTargetConfig,
    reactors: Arc<ReactorPool>,
    runtime: Handle,
    /// Cancelled at daemon shutdown; each accept loop has a child token of its own.
    shutdown: CancellationToken,
    serving: Mutex<HashMap<SocketAddr, (CancellationToken, JoinHandle<()>)>>,
}

impl TcpListeners {
    pub fn new(
        target: Arc<dyn Target>,
        acceptor: Arc<TlsAcceptor>,
        config: TcpTargetConfig,
        reactors: Arc<ReactorPool>,
        runtime: Handle,
        shutdown: CancellationToken,
    ) -> TcpListeners {
        TcpListeners {
            target,
            acceptor,
            config,
            reactors,
            runtime,
            shutdown,
            serving: Mutex::new(HashMap::new()),
        }
    }

    fn serving(&self) -> MutexGuard<'_, HashMap<SocketAddr, (CancellationToken, JoinHandle<()>)>> {
        self.serving.lock_counted()
    }

    /// Stop every accept loop and wait for them (daemon shutdown).
    pub async fn stop_all(&self) {
        self.shutdown.cancel();
        let tasks: Vec<_> = self.serving().drain().map(|(_, (_, t))| t).collect();
        for t in tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "listener task failed");
            }
        }
    }
}

impl ListenerControl for TcpListeners {
    fn transport(&self) -> TransportKind {
        TransportKind::Tcp
    }

    fn bind(&self, address: SocketAddr) -> std::io::Result<BoundSocket> {
        bind_tcp(address, &self.runtime)
    }

    fn serve(&self, bound: BoundSocket, tls: TlsMode) {
        let BoundSocket::Tcp { address, socket } = bound else {
            // The engine hands each control the sockets it bound; never reached.
            tracing::error!(
                ?bound,
                "a TCP listener was given another transport's socket"
            );
            return;
        };
        let stop = self.shutdown.child_token();
        tracing::info!(addr = %address, transport = "tcp", tls = tls.as_str(), "listening");
        let tls = (tls != TlsMode::None).then(|| ListenerTls {
            mode: tls,
            acceptor: self.acceptor.clone(),
            timeout: TLS_HANDSHAKE_TIMEOUT,
            deadline: TLS_HANDSHAKE_DEADLINE,
            max_handshakes: TLS_MAX_HANDSHAKES,
        });
        let task = self.runtime.spawn(serve(
            socket,
            self.target.clone(),
            self.config.clone(),
            self.reactors.clone(),
            tls,
            stop.clone(),
        ));
        self.serving().insert(address, (stop, task));
    }

    fn close(&self, address: SocketAddr) {
        if let Some((stop, _task)) = self.serving().remove(&address) {
            stop.cancel();
            tracing::info!(addr = %address, transport = "tcp", "listener closed");
        }
    }
}
