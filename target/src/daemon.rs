//! The daemon: bind the listeners, build the target, serve NVMe/TCP and NVMe/RDMA until told
//! to stop, then tear controllers down and flush every backend.

use std::net::SocketAddr;
use std::sync::Arc;

use fabric::queue::Target;
use fabric::rdma::RdmaTargetConfig;
use fabric::tcp::reactor::{PollMode, ReactorConfig, ReactorPool, ThreadHook};
use fabric::tcp::server::TcpTargetConfig;
use fabric::tcp::tls::TlsAcceptor;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ListenerConfig, TransportKind};
use crate::controller::TargetParams;
use crate::drives::{DriveSettings, Drives};
use crate::engine::{ActionError, BoundSocket, Engine, ListenerControl, Outcome};
use crate::listeners::{bind_tcp, TcpListeners};
use crate::rdma_listeners::{RdmaListeners, RdmaReactors};
use crate::setup::{build_target, SetupError};
use crate::state::{StateDir, StateError};
use crate::target::FabricTarget;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {address} ({transport}): {source}")]
    Bind {
        transport: TransportKind,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot start the reactors: {0}")]
    Reactors(std::io::Error),
    #[error("cannot set up TLS (OpenSSL): {0}")]
    Tls(fabric::tcp::tls::TlsSetupError),
    #[error(transparent)]
    State(StateError),
}

/// A running target with its listeners bound.
pub struct Daemon {
    engine: Arc<Engine>,
    target: FabricTarget,
    listeners: Arc<TcpListeners>,
    rdma: Arc<RdmaListeners>,
    reactors: Arc<ReactorPool>,
}

impl Daemon {
    /// Bind every listener (port 0 picks a free port), then build and serve the target.
    pub async fn start(config: Config, params: TargetParams) -> Result<Daemon, DaemonError> {
        Daemon::start_with(config, params, None).await
    }

    /// [`Daemon::start`], calling `hook` on each reactor thread as it starts.
    pub async fn start_with(
        config: Config,
        params: TargetParams,
        hook: Option<ThreadHook>,
    ) -> Result<Daemon, DaemonError> {
        Daemon::start_full(config, params, hook, None, None).await
    }

    /// [`Daemon::start_with`] on `drives`, a registry that may hold adopted controllers
    /// ([`Drives::adopt`]); its settings are used as they are.
    pub async fn start_with_drives(
        config: Config,
        params: TargetParams,
        hook: Option<ThreadHook>,
        drives: Arc<Drives>,
    ) -> Result<Daemon, DaemonError> {
        Daemon::start_full(config, params, hook, None, Some(drives)).await
    }

    /// [`Daemon::start`] with the running configuration persisted in `state` after every
    /// change (`config` is what to serve: the restored state, or the file for a new one).
    pub async fn start_persistent(
        config: Config,
        params: TargetParams,
        state: StateDir,
    ) -> Result<Daemon, DaemonError> {
        Daemon::start_full(config, params, None, Some(state), None).await
    }

    /// [`Daemon::start_persistent`] on `drives`, as [`Daemon::start_with_drives`].
    pub async fn start_persistent_with_drives(
        config: Config,
        params: TargetParams,
        state: StateDir,
        drives: Arc<Drives>,
    ) -> Result<Daemon, DaemonError> {
        Daemon::start_full(config, params, None, Some(state), Some(drives)).await
    }

    async fn start_full(
        config: Config,
        params: TargetParams,
        hook: Option<ThreadHook>,
        state: Option<StateDir>,
        drives: Option<Arc<Drives>>,
    ) -> Result<Daemon, DaemonError> {
        if let Some(dir) = &state {
            dir.save(&config).map_err(DaemonError::State)?;
        }
        let reactor_config = ReactorConfig {
            cores: config.reactor.cores.clone(),
            count: config.reactor.count.unwrap_or(1),
            poll: match config.reactor.poll {
                config::PollMode::Busy => PollMode::Busy,
                config::PollMode::Adaptive => PollMode::Adaptive,
            },
            on_thread_start: hook,
        };
        // Started by the first RDMA listener that binds, with the TCP reactors' settings.
        let rdma_reactors = Arc::new(RdmaReactors::new(reactor_config.clone(), Handle::current()));
        let started = Daemon::serve(
            config,
            params,
            reactor_config,
            rdma_reactors.clone(),
            state,
            drives,
        )
        .await;
        if started.is_err() {
            // An RDMA listener may have started the RDMA reactors before a later step failed.
            let stop = tokio::task::spawn_blocking(move || rdma_reactors.stop_and_join()).await;
            if let Err(e) = stop {
                tracing::error!(error = %e, "stopping the RDMA reactors failed");
            }
        }
        started
    }

    /// Bind every listener, build the target, start the TCP reactors and serve.
    async fn serve(
        config: Config,
        params: TargetParams,
        reactor_config: ReactorConfig,
        rdma_reactors: Arc<RdmaReactors>,
        state: Option<StateDir>,
        drives: Option<Arc<Drives>>,
    ) -> Result<Daemon, DaemonError> {
        // The engine keeps the configuration as written; the target serves bound addresses.
        let mut bound = Vec::with_capacity(config.listener.len());
        let mut sockets = Vec::with_capacity(config.listener.len());
        for l in &config.listener {
            let socket =
                bind_listener(l, &rdma_reactors)
                    .await
                    .map_err(|source| DaemonError::Bind {
                        transport: l.transport,
                        address: l.address,
                        source,
                    })?;
            bound.push((l.clone(), socket.address()));
            sockets.push((l.tls, socket));
        }
        let tcp = TcpTargetConfig {
            io_in_capsule: params.io_in_capsule,
            max_transfer: params.max_transfer(),
            ..TcpTargetConfig::default()
        };
        let rdma = RdmaTargetConfig {
            io_in_capsule: params.io_in_capsule,
            max_transfer: params.max_transfer(),
            ..RdmaTargetConfig::default()
        };
        let reactor_count = config.reactor.reactors();
        let drives = drives.unwrap_or_else(|| {
            Arc::new(Drives::new(DriveSettings::new(
                &config.drives,
                reactor_count,
            )))
        });
        let target = build_target(&config, &bound, params, &drives)?;
        let reactors = Arc::new(
            ReactorPool::start(reactor_config.clone(), tokio::runtime::Handle::current())
                .map_err(DaemonError::Reactors)?,
        );
        target.metrics().set_reactors(reactors.counters());
        tracing::info!(reactors = reactors.len(), cores = ?reactor_config.cores, poll = ?reactor_config.poll, "reactors started");
        let shared: Arc<dyn Target> = Arc::new(target.clone());
        let acceptor = TlsAcceptor::new(Arc::new(target.clone())).map_err(DaemonError::Tls)?;
        let listeners = Arc::new(TcpListeners::new(
            shared,
            Arc::new(acceptor),
            tcp,
            reactors.clone(),
            Handle::current(),
            CancellationToken::new(),
        ));
        let rdma_listeners = Arc::new(RdmaListeners::new(
            target.clone(),
            rdma,
            rdma_reactors,
            CancellationToken::new(),
        ));
        for (tls, socket) in sockets {
            match socket.transport() {
                TransportKind::Tcp => listeners.serve(socket, tls.into()),
                TransportKind::Rdma => rdma_listeners.serve(socket, tls.into()),
            }
        }
        let mut engine = Engine::new(target.clone(), config, bound, drives)
            .with_listener_control(listeners.clone())
            .with_listener_control(rdma_listeners.clone());
        if let Some(dir) = state {
            engine = engine.with_state_dir(dir);
        }
        Ok(Daemon {
            engine: Arc::new(engine),
            target,
            listeners,
            rdma: rdma_listeners,
            reactors,
        })
    }

    /// Connections each reactor currently owns.
    pub fn reactor_loads(&self) -> Vec<usize> {
        self.reactors.loads()
    }

    /// Each reactor's counters, by reactor id.
    pub fn reactor_samples(&self) -> Vec<fabric::tcp::reactor_stats::ReactorSample> {
        self.reactors
            .counters()
            .iter()
            .map(|c| c.sample())
            .collect()
    }

    pub fn target(&self) -> &FabricTarget {
        &self.target
    }

    /// The engine API: every change to the running target goes through it.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Apply a changed configuration without a restart, all of it or nothing
    /// ([`Engine::reload`]).
    pub fn reload(&self, config: &Config) -> Result<Vec<Outcome>, ActionError> {
        self.engine.reload(config)
    }

    /// The bound listener addresses, in configuration order (listeners added at run time
    /// last).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.engine
            .listeners()
            .into_iter()
            .map(|(_, b)| b)
            .collect()
    }

    /// Each configured listener (transport and address) with the address it is bound to.
    pub fn listeners(&self) -> Vec<(ListenerConfig, SocketAddr)> {
        self.engine.listeners()
    }

    /// Each NVMe/RDMA reactor's counters, by reactor id (empty until an RDMA listener
    /// started them).
    pub fn rdma_reactor_samples(&self) -> Vec<fabric::tcp::reactor_stats::ReactorSample> {
        let by_transport = self.target.metrics().reactors_by_transport();
        by_transport
            .iter()
            .filter(|(t, _)| *t == TransportKind::Rdma)
            .flat_map(|(_, reactors)| reactors.iter().map(|c| c.sample()))
            .collect()
    }

    /// Stop serving: close every connection, destroy controllers, flush backends, shut
    /// down the drives the daemon drives itself.
    pub async fn shutdown(self) {
        let Daemon {
            engine,
            target,
            listeners,
            rdma,
            reactors,
        } = self;
        listeners.stop_all().await;
        // Closes every RDMA queue and stops the RDMA reactors, if they were started.
        let rdma_stopped = {
            let rdma = rdma.clone();
            tokio::task::spawn_blocking(move || rdma.stop_all()).await
        };
        if let Err(e) = rdma_stopped {
            tracing::error!(error = %e, "stopping the RDMA reactors failed");
        }
        // Closes every connection on every reactor, then joins the threads.
        if let Err(e) = tokio::task::spawn_blocking(move || reactors.stop_and_join()).await {
            tracing::error!(error = %e, "stopping the reactors failed");
        }
        target.destroy_all("target shutting down");
        let flushed = tokio::task::spawn_blocking(move || {
            for s in target.subsystems() {
                if let Err(failed) = s.flush_all() {
                    for (nsid, e) in failed {
                        tracing::error!(subnqn = %s.nqn, nsid, error = %e, "flush at exit failed");
                    }
                }
            }
        })
        .await;
        if let Err(e) = flushed {
            tracing::error!(error = %e, "flush task failed");
        }
        // The namespaces hold their drives' drivers: let go of every holder (the engine, the
        // accept loops' target handles) so the controllers can shut down and go back to
        // their kernel driver. A management server must be stopped before this.
        let drives = engine.drives().clone();
        drop(engine);
        drop(listeners);
        drop(rdma);
        if let Err(e) = tokio::task::spawn_blocking(move || drives.shutdown_all()).await {
            tracing::error!(error = %e, "drive shutdown task failed");
        }
        tracing::info!("target stopped");
    }
}

/// Bind one configured listener: TCP in place (registered with the runtime), RDMA on a
/// blocking thread (the first one starts the RDMA reactors).
async fn bind_listener(
    l: &ListenerConfig,
    rdma: &Arc<RdmaReactors>,
) -> std::io::Result<BoundSocket> {
    match l.transport {
        TransportKind::Tcp => bind_tcp(l.address, &Handle::current()),
        TransportKind::Rdma => {
            let (rdma, address) = (rdma.clone(), l.address);
            tokio::task::spawn_blocking(move || rdma.bind(address))
                .await
                .map_err(std::io::Error::other)?
                .map(BoundSocket::Rdma)
        }
    }
}
