//! How the engine opens and closes transport listeners. The daemon owns the sockets and the
//! accept loops and implements [`ListenerControl`]; the engine decides when.

use std::net::SocketAddr;

/// A socket bound for a listener, not yet accepting connections.
#[derive(Debug)]
pub struct BoundSocket {
    /// The address it is bound to (a configured port 0 is the port the kernel chose).
    pub address: SocketAddr,
    /// Registered with the runtime already, so serving it cannot fail.
    pub socket: tokio::net::TcpListener,
}

pub trait ListenerControl: Send + Sync {
    /// Bind `address` without serving it yet (the engine's prepare step: a failure leaves
    /// everything as it was).
    fn bind(&self, address: SocketAddr) -> std::io::Result<BoundSocket>;
    /// Start accepting NVMe/TCP connections on a bound socket (commit step; cannot fail).
    fn serve(&self, socket: BoundSocket);
    /// Stop accepting on the bound `address`.
    fn close(&self, address: SocketAddr);
}
