//! The daemon's NVMe/RDMA listeners. The RDMA reactors start the first time an RDMA listener
//! binds, so a box without rdma-core (or without RDMA listeners) runs no RDMA thread and
//! serves NVMe/TCP exactly as before; a bind that fails on reactors it just started stops them
//! again. Listeners are opened and closed by the engine ([`crate::engine::ListenerControl`]).

use ferrofab_sync::CountedLock as _;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use fabric::queue::Target;
use fabric::rdma::server::{RdmaBound, RdmaTransport};
use fabric::rdma::RdmaTargetConfig;
use fabric::tcp::reactor::ReactorConfig;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::TransportKind;
use crate::engine::{BoundSocket, ListenerControl};
use crate::target::FabricTarget;
use fabric::tcp::tls::TlsMode;

/// The NVMe/RDMA reactors, started on first use with the same `[reactor]` settings as the
/// TCP ones (one per listed core, or `count` unpinned).
pub struct RdmaReactors {
    config: ReactorConfig,
    runtime: Handle,
    transport: Mutex<Option<Arc<RdmaTransport>>>,
}

impl RdmaReactors {
    pub fn new(config: ReactorConfig, runtime: Handle) -> RdmaReactors {
        RdmaReactors {
            config,
            runtime,
            transport: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<RdmaTransport>>> {
        self.transport.lock_counted()
    }

    /// The running transport, once a listener bound.
    pub fn transport(&self) -> Option<Arc<RdmaTransport>> {
        self.lock().clone()
    }

    /// Bind an RDMA CM listener on `address` (port 0 picks one), starting the reactors if
    /// they are not running. Blocks (thread start and, on failure, join): call it off the
    /// async runtime's workers. The error says why: rdma-core missing, no RDMA device with
    /// that address, the port taken.
    pub fn bind(&self, address: SocketAddr) -> io::Result<RdmaBound> {
        let mut slot = self.lock();
        let (transport, started_now) = match &*slot {
            Some(t) => (t.clone(), false),
            None => {
                let t = RdmaTransport::start(self.config.clone(), self.runtime.clone()).map_err(
                    |e| io::Error::new(e.kind(), format!("starting the RDMA reactors: {e}")),
                )?;
                tracing::info!(reactors = t.counters().len(), "RDMA reactors started");
                (t, true)
            }
        };
        match transport.bind(address) {
            Ok(bound) => {
                *slot = Some(transport);
                Ok(bound)
            }
            Err(e) => {
                if started_now {
                    // Nothing uses them: a box where RDMA cannot bind runs no RDMA thread.
                    transport.stop_and_join();
                    tracing::info!("RDMA reactors stopped: no RDMA listener could bind");
                }
                Err(e)
            }
        }
    }

    /// Close every RDMA queue and stop the reactors, if they were started (blocks).
    pub fn stop_and_join(&self) {
        if let Some(t) = self.lock().take() {
            t.stop_and_join();
        }
    }
}

/// NVMe/RDMA listeners: each bound address is served by a listener thread of the transport,
/// its queues by the RDMA reactors.
pub struct RdmaListeners {
    target: FabricTarget,
    config: RdmaTargetConfig,
    reactors: Arc<RdmaReactors>,
    /// Cancelled at daemon shutdown; each listener has a child token of its own.
    shutdown: CancellationToken,
    serving: Mutex<HashMap<SocketAddr, CancellationToken>>,
}

impl RdmaListeners {
    pub fn new(
        target: FabricTarget,
        config: RdmaTargetConfig,
        reactors: Arc<RdmaReactors>,
        shutdown: CancellationToken,
    ) -> RdmaListeners {
        RdmaListeners {
            target,
            config,
            reactors,
            shutdown,
            serving: Mutex::new(HashMap::new()),
        }
    }

    /// Stop every listener, close every RDMA queue and stop the reactors (daemon shutdown;
    /// blocks).
    pub fn stop_all(&self) {
        self.shutdown.cancel();
        self.serving.lock_counted().clear();
        self.reactors.stop_and_join();
    }
}

impl ListenerControl for RdmaListeners {
    fn transport(&self) -> TransportKind {
        TransportKind::Rdma
    }

    fn bind(&self, address: SocketAddr) -> io::Result<BoundSocket> {
        self.reactors.bind(address).map(BoundSocket::Rdma)
    }

    fn serve(&self, bound: BoundSocket, _tls: TlsMode) {
        let BoundSocket::Rdma(bound) = bound else {
            // The engine hands each control the sockets it bound; never reached.
            tracing::error!(
                ?bound,
                "an RDMA listener was given another transport's socket"
            );
            return;
        };
        let Some(transport) = self.reactors.transport() else {
            // A bound listener implies running reactors (they stop only at shutdown).
            tracing::error!(addr = %bound.address, "RDMA reactors gone: listener not served");
            return;
        };
        // The first served listener registers the reactors with the metrics (once).
        self.target
            .metrics()
            .set_rdma_reactors(transport.counters());
        let stop = self.shutdown.child_token();
        let address = bound.address;
        let target: Arc<dyn Target> = Arc::new(self.target.clone());
        transport.serve(bound, target, self.config.clone(), stop.clone());
        self.serving.lock_counted().insert(address, stop);
    }

    fn close(&self, address: SocketAddr) {
        if let Some(stop) = self.serving.lock_counted().remove(&address) {
            stop.cancel();
            tracing::info!(addr = %address, transport = "rdma", "listener closed");
        }
    }
}
