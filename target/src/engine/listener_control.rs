//! How the engine opens and closes transport listeners. The daemon owns the sockets and the
//! accept loops and implements [`ListenerControl`], once per transport; the engine decides
//! when.

use std::net::SocketAddr;

use fabric::rdma::server::RdmaBound;

use crate::config::TransportKind;
use fabric::tcp::tls::TlsMode;

/// A listener bound for its transport, not yet accepting connections.
pub enum BoundSocket {
    /// An NVMe/TCP socket, registered with the runtime already, so serving it cannot fail.
    Tcp {
        /// The address it is bound to (a configured port 0 is the port the kernel chose).
        address: SocketAddr,
        socket: tokio::net::TcpListener,
    },
    /// An RDMA CM listener (NVMe/RDMA); its `address` is the bound one.
    Rdma(RdmaBound),
}

impl BoundSocket {
    pub fn transport(&self) -> TransportKind {
        match self {
            BoundSocket::Tcp { .. } => TransportKind::Tcp,
            BoundSocket::Rdma(_) => TransportKind::Rdma,
        }
    }

    /// The address it is bound to (a configured port 0 is the port chosen).
    pub fn address(&self) -> SocketAddr {
        match self {
            BoundSocket::Tcp { address, .. } => *address,
            BoundSocket::Rdma(bound) => bound.address,
        }
    }
}

impl std::fmt::Debug for BoundSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundSocket")
            .field("transport", &self.transport())
            .field("address", &self.address())
            .finish()
    }
}

/// Opens and closes the listeners of one transport.
pub trait ListenerControl: Send + Sync {
    /// The transport whose listeners this control opens.
    fn transport(&self) -> TransportKind;
    /// Bind `address` without serving it yet (the engine's prepare step: a failure leaves
    /// everything as it was).
    fn bind(&self, address: SocketAddr) -> std::io::Result<BoundSocket>;
    /// Start accepting connections on a socket this control bound (commit step; cannot fail),
    /// with `tls` (NVMe/TCP; configuration validation keeps it `None` elsewhere).
    fn serve(&self, socket: BoundSocket, tls: TlsMode);
    /// Stop accepting on the bound `address`.
    fn close(&self, address: SocketAddr);
}
