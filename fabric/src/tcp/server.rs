//! The NVMe/TCP listener: accepts connections (on tokio, off the data path) and hands each
//! to the least-loaded reactor of a [`ReactorPool`], which owns it from then on.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::reactor::ReactorPool;
pub use super::target_conn::TcpTargetConfig;
use crate::queue::Target;

/// Accept NVMe/TCP connections on `listener` until `shutdown` is cancelled. The connections
/// live on `reactors`; stopping the pool closes them.
pub async fn serve(
    listener: TcpListener,
    target: Arc<dyn Target>,
    config: TcpTargetConfig,
    reactors: Arc<ReactorPool>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let assigned = stream
                        .into_std()
                        .and_then(|s| reactors.assign(s, target.clone(), config.clone()));
                    if let Err(e) = assigned {
                        debug!(%peer, error = %e, "cannot hand the connection to a reactor");
                    }
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
