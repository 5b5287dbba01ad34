//! Tokio driver for the NVMe/TCP target: accepts connections and runs one
//! [`TargetConnection`] per socket in its own task.
//!
//! Received bytes are read straight into the connection's framer buffer, so PDU data reaches
//! the target as slices of the read buffer; output goes out with vectored writes of the
//! encoded pieces (headers, data `Bytes`, digests) without gathering them first.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::out_queue::{consume, write_some};
pub use super::target_conn::TcpTargetConfig;
use super::target_conn::{Event, TargetConnection};
use crate::queue::{ConnectionInfo, Target, TransportKind};

/// Reading pauses while more than this much output waits for a slow host.
const MAX_QUEUED_OUTPUT: usize = 8 << 20;
/// Free space kept in the receive buffer before each read.
const READ_RESERVE: usize = 64 * 1024;
/// Most buffers handed to one vectored write.
/// How long a closing connection may take to flush its last PDUs (e.g. a C2HTermReq).
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Accept NVMe/TCP connections on `listener` until `shutdown` is cancelled, then close every
/// connection and return once their tasks are done.
pub async fn serve(
    listener: TcpListener,
    target: Arc<dyn Target>,
    config: TcpTargetConfig,
    shutdown: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(run_connection(
                        stream,
                        peer,
                        target.clone(),
                        config.clone(),
                        shutdown.child_token(),
                    ));
                }
                Err(e) => {
                    // Typically EMFILE/ENFILE: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    warn!(error = %e, "NVMe/TCP connection task failed");
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Drive one connection until the host leaves, a fatal error closes it, its controller is
/// torn down, or the server shuts down.
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    target: Arc<dyn Target>,
    config: TcpTargetConfig,
    shutdown: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "TCP_NODELAY failed");
    }
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            debug!(%peer, error = %e, "connection gone before setup");
            return;
        }
    };
    let info = ConnectionInfo {
        transport: TransportKind::Tcp,
        local,
        peer,
    };
    let mut conn = TargetConnection::new(target, info, config, Instant::now());
    let (mut rd, mut wr) = stream.into_split();
    let mut out: VecDeque<Bytes> = VecDeque::new();
    let mut pending = FuturesUnordered::new();
    let mut teardown: Option<CancellationToken> = None;
    loop {
        let mut closing = false;
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Pending { cid, response } => {
                    pending.push(async move { (cid, response.await) });
                }
                Event::Close => closing = true,
            }
        }
        conn.drain_transmit(&mut out);
        if closing {
            let flush = async {
                while let Some(chunk) = out.pop_front() {
                    wr.write_all(&chunk).await?;
                }
                wr.flush().await
            };
            if let Ok(Err(e)) = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush).await {
                debug!(%peer, error = %e, "flush before close failed");
            }
            break;
        }
        if teardown.is_none() {
            teardown = conn.teardown_token();
        }
        let torn_down = teardown.clone();
        let timeout_at = conn
            .next_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let has_timeout = conn.next_timeout().is_some();
        let queued: usize = out.iter().map(Bytes::len).sum();
        let read_ok = queued <= MAX_QUEUED_OUTPUT;
        let buf = conn.recv_buffer();
        if buf.capacity() - buf.len() < READ_RESERVE / 4 {
            buf.reserve(READ_RESERVE);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = async {
                match &torn_down {
                    Some(t) => t.cancelled().await,
                    None => std::future::pending().await,
                }
            } => {
                debug!(%peer, "controller torn down, closing the connection");
                break;
            }
            Some((cid, response)) = pending.next(), if !pending.is_empty() => {
                conn.complete(cid, response);
            }
            written = write_some(&mut wr, &out), if !out.is_empty() => match written {
                Ok(n) => consume(&mut out, n),
                Err(e) => {
                    debug!(%peer, error = %e, "write failed");
                    break;
                }
            },
            read = rd.read_buf(conn.recv_buffer()), if read_ok => match read {
                Ok(0) => {
                    debug!(%peer, "host closed the connection");
                    break;
                }
                Ok(_) => conn.process(Instant::now()),
                Err(e) => {
                    debug!(%peer, error = %e, "read failed");
                    break;
                }
            },
            _ = tokio::time::sleep_until(timeout_at), if has_timeout => {
                conn.handle_timeout(Instant::now());
            }
        }
    }
    conn.close();
    let _ = wr.shutdown().await;
}
