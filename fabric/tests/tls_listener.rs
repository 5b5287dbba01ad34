//! A TLS listener's admission, end to end through `serve`: a host that stalls in its
//! handshake is cut off at the deadline, handshakes past the listener's limit are closed at
//! once, plain TCP on a required listener is closed, and each refusal reaches the PSK store's
//! record. (Handshakes themselves: `fabric::tcp::tls` unit tests; the kernel host: hw-test 35.)

use ferrofab_sync::CountedLock as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fabric::queue::{Connected, ConnectionInfo, Response, Target};
use fabric::tcp::reactor::{ReactorConfig, ReactorPool};
use fabric::tcp::server::ListenerTls;
use fabric::tcp::tls::{Identity, PskStore, TlsAcceptor, TlsError, TlsMode};
use fabric::tcp::{serve, TcpTargetConfig};
use nvme_spec::{Sqe, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

/// No queue is ever connected here: every connection ends before NVMe/TCP begins.
struct NoTarget;

impl Target for NoTarget {
    fn connect(&self, _: &ConnectionInfo, _: &Sqe, _: &[u8]) -> Result<Connected, Response> {
        Err(Response::status(Status::INTERNAL_ERROR))
    }
}

/// Holds no key; remembers why connections were refused.
#[derive(Default)]
struct Refusals(Mutex<Vec<String>>);

impl PskStore for Refusals {
    fn tls_psk(&self, _: &Identity) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
    fn refused(&self, _: SocketAddr, why: &TlsError) {
        self.0.lock_counted().push(why.to_string());
    }
}

/// Time for the server to close a connection it refuses at once.
const PROMPT: Duration = Duration::from_secs(2);

async fn closed_within(sock: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut b = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, sock.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection is still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_end_at_the_deadline_and_the_limit_closes_the_rest() {
    let store = Arc::new(Refusals::default());
    let acceptor = Arc::new(TlsAcceptor::new(store.clone()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pool = Arc::new(
        ReactorPool::start(ReactorConfig::default(), tokio::runtime::Handle::current()).unwrap(),
    );
    let shutdown = CancellationToken::new();
    let tls = ListenerTls {
        mode: TlsMode::Required,
        acceptor,
        timeout: Duration::from_secs(30),
        deadline: Duration::from_millis(500),
        max_handshakes: 1,
    };
    let task = tokio::spawn(serve(
        listener,
        Arc::new(NoTarget),
        TcpTargetConfig::default(),
        pool.clone(),
        Some(tls),
        shutdown.clone(),
    ));

    // A host that starts a TLS record and stalls holds the one handshake slot...
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[22, 3, 1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so the next host is closed at once,
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(&[22, 3, 1]).await.unwrap();
    closed_within(&mut busy, PROMPT).await;
    // and the stalled one when the deadline passes, well before its 30 s read timeout.
    let took = closed_within(&mut stalled, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // The slot is free again: plain TCP on the required listener is refused, promptly.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(&[0, 0, 128, 0]).await.unwrap();
    closed_within(&mut plain, PROMPT).await;

    // The record is written just after the socket is dropped.
    let wants = ["already in progress", "within", "did not start a handshake"];
    let recorded = || {
        let seen = store.0.lock_counted().clone();
        wants.iter().all(|w| seen.iter().any(|r| r.contains(w)))
    };
    for _ in 0..200 {
        if recorded() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(recorded(), "{:?}", store.0.lock_counted());
    shutdown.cancel();
    task.await.unwrap();
    tokio::task::spawn_blocking(move || pool.stop_and_join())
        .await
        .unwrap();
}
