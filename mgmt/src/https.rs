//! The HTTPS accept loop: each accepted connection gets its own task that runs the TLS
//! handshake (bounded by [`HANDSHAKE_TIMEOUT`]) and then serves HTTP/1.1 on it, so a slow or
//! failing client never holds up the next accept. Stopping closes the listener, abandons
//! handshakes in progress and lets requests in flight finish.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a client may take to complete the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait before accepting again after an accept error (such as EMFILE) that is
/// not about one connection.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serve `app` over TLS on `listener` until `stop` is cancelled and every request in flight
/// has been answered.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    acceptor: TlsAcceptor,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                tokio::spawn(connection(
                    tcp,
                    peer,
                    acceptor.clone(),
                    app.clone(),
                    graceful.watcher(),
                    stop.clone(),
                ));
            }
            // The peer gave up between SYN and accept: nothing to do.
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "management API: accept: connection lost")
            }
            Err(e) => {
                tracing::warn!(error = %e, "management API: accept failed");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    drop(listener);
    // Idle connections close now; busy ones after their response.
    graceful.shutdown().await;
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// One client: the handshake, then HTTP/1.1 until the client or a shutdown closes it. What
/// goes wrong here is the client's doing and is logged at debug level.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    watcher: Watcher,
    stop: CancellationToken,
) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let tls = tokio::select! {
        _ = stop.cancelled() => return,
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "management API: TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "management API: TLS handshake timed out");
                return;
            }
        },
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "management API: connection failed");
    }
}
