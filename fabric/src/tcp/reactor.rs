//! Run-to-completion reactors for the NVMe/TCP target: one thread per configured core, each
//! owning its connections end to end — socket reads, PDU parsing, the backend call, the
//! response and the socket write — with no locks, no allocation and no cross-thread hop in
//! steady state. A queue pair stays on the reactor it was given for its whole life.
//!
//! Each loop iteration asks epoll (edge-triggered) which sockets moved, reads every readable
//! socket into its connection's receive buffer with one `recv`, lets the sans-IO
//! [`TargetConnection`] handle every complete PDU, and writes all of a connection's queued
//! responses with one vectored write. Commands that complete later (blocking backends,
//! asynchronous events) are futures polled by the reactor when their waker fires; the waker
//! sets a flag and, if the reactor sleeps, kicks its eventfd.
//!
//! Polling: [`PollMode::Busy`] spins forever (epoll with a zero timeout); [`PollMode::Adaptive`]
//! spins while there was work in the last [`ADAPTIVE_SPIN`], then sleeps in `epoll_wait` until
//! a socket event, a wake-up or the next timer.

use ferrofab_sync::CountedLock as _;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{debug, warn};

use super::reactor_stats::{set_current_reactor, LoopClock, ReactorCounters};
use super::target_conn::{Event, TargetConnection, TcpTargetConfig};
use super::tls::SecureChannel;
use crate::queue::{ConnectionInfo, Target, TransportKind};
use crate::queue_core::PendingCommand;
use crate::sys::{recv_into_spare, recv_split, send_chunks, Chunk, MAX_CHUNKS};

/// How long an adaptive reactor keeps spinning after its last piece of work.
pub const ADAPTIVE_SPIN: Duration = Duration::from_micros(200);
/// Longest sleep of an idle reactor (timers are checked at least this often).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// How often connection timers (ICReq deadline, closing flush) are checked.
const TIMER_PERIOD: Duration = Duration::from_millis(10);
/// Reading pauses while more than this much output waits for a slow host.
const MAX_QUEUED_OUTPUT: usize = 8 << 20;
/// A receive buffer is topped up by this much when less than a quarter of it is free.
const RECV_CHUNK: usize = 64 * 1024;
/// PDU header, digests and padding on top of the largest data part.
const PDU_OVERHEAD: usize = 256;
/// How long a closing connection may take to flush its last PDUs (e.g. a C2HTermReq).
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Events taken from epoll per iteration.
const EVENTS_PER_WAIT: usize = 256;
/// epoll user data of the reactor's own eventfd.
const WAKE_TOKEN: u64 = u64::MAX;

/// How reactors wait for work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PollMode {
    /// Never sleep: lowest latency, one whole core per reactor.
    Busy,
    /// Spin while busy, sleep in epoll when idle.
    #[default]
    Adaptive,
}

/// Called on every reactor thread as it starts (e.g. to tag it for measurements).
pub type ThreadHook = Arc<dyn Fn(usize) + Send + Sync>;

/// Where reactors run and how they poll.
#[derive(Clone, Default)]
pub struct ReactorConfig {
    /// One reactor pinned to each listed CPU; `None`: `count` unpinned reactors.
    pub cores: Option<Vec<usize>>,
    /// Number of unpinned reactors when `cores` is `None` (at least 1).
    pub count: usize,
    pub poll: PollMode,
    pub on_thread_start: Option<ThreadHook>,
}

impl std::fmt::Debug for ReactorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorConfig")
            .field("cores", &self.cores)
            .field("count", &self.count)
            .field("poll", &self.poll)
            .finish()
    }
}

/// A socket the acceptor hands to a reactor.
struct NewConn {
    stream: TcpStream,
    info: ConnectionInfo,
    target: Arc<dyn Target>,
    config: TcpTargetConfig,
}

/// Wakes a reactor from another thread (or from a future's waker).
struct Doorbell {
    efd: EventFd,
    /// Set by every wake; the reactor swaps it back and polls futures / new connections.
    rung: AtomicBool,
    /// The reactor is (about to be) blocked in epoll_wait.
    sleeping: AtomicBool,
}

impl Doorbell {
    fn ring(&self) {
        self.rung.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            if let Err(e) = self.efd.write(1) {
                warn!(error = %e, "reactor wake-up failed");
            }
        }
    }
}

impl Wake for Doorbell {
    fn wake(self: Arc<Self>) {
        self.ring();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ring();
    }
}

struct ReactorHandle {
    tx: mpsc::Sender<NewConn>,
    doorbell: Arc<Doorbell>,
    /// Connections the reactor owns (for least-loaded placement).
    load: Arc<AtomicUsize>,
    counters: Arc<ReactorCounters>,
}

/// The reactor threads of a target.
pub struct ReactorPool {
    reactors: Vec<ReactorHandle>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl ReactorPool {
    /// Start the reactors. Futures of commands that complete later run with `runtime` entered
    /// (blocking backends use its blocking pool). Fails if a core cannot be used.
    pub fn start(
        config: ReactorConfig,
        runtime: tokio::runtime::Handle,
    ) -> io::Result<ReactorPool> {
        let placements: Vec<Option<usize>> = match &config.cores {
            Some(cores) => cores.iter().copied().map(Some).collect(),
            None => vec![None; config.count.max(1)],
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut pool = ReactorPool {
            reactors: Vec::new(),
            stop: stop.clone(),
            threads: Mutex::new(Vec::new()),
        };
        for (id, core) in placements.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            let doorbell = Arc::new(Doorbell {
                efd: EventFd::from_value_and_flags(
                    0,
                    EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
                )?,
                rung: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
            });
            let load = Arc::new(AtomicUsize::new(0));
            let counters = Arc::new(ReactorCounters::default());
            let reactor_counters = counters.clone();
            let (ready_tx, ready_rx) = mpsc::sync_channel(1);
            let reactor_doorbell = doorbell.clone();
            let reactor_load = load.clone();
            let reactor_stop = stop.clone();
            let poll = config.poll;
            let hook = config.on_thread_start.clone();
            let rt = runtime.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ff-reactor-{id}"))
                .spawn(move || {
                    let setup = core.map_or(Ok(()), pin_to_core).and_then(|()| {
                        Reactor::new(
                            id,
                            poll,
                            rx,
                            reactor_doorbell,
                            reactor_load,
                            reactor_stop,
                            reactor_counters,
                        )
                    });
                    match setup {
                        Ok(mut reactor) => {
                            if let Some(h) = hook {
                                h(id);
                            }
                            let _ = ready_tx.send(Ok(()));
                            let _guard = rt.enter();
                            reactor.run();
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?;
            let started = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("reactor thread died during setup")));
            pool.threads
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .push(thread);
            if let Err(e) = started {
                pool.stop_and_join();
                let msg = match core {
                    Some(c) => format!("reactor {id} on core {c}: {e}"),
                    None => format!("reactor {id}: {e}"),
                };
                return Err(io::Error::new(e.kind(), msg));
            }
            pool.reactors.push(ReactorHandle {
                tx,
                doorbell,
                load,
                counters,
            });
        }
        Ok(pool)
    }

    /// Number of reactors.
    pub fn len(&self) -> usize {
        self.reactors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reactors.is_empty()
    }

    /// Connections currently owned by each reactor.
    pub fn loads(&self) -> Vec<usize> {
        self.reactors
            .iter()
            .map(|r| r.load.load(Ordering::Relaxed))
            .collect()
    }

    /// Each reactor's busy/idle and command counters, by reactor id.
    pub fn counters(&self) -> Vec<Arc<ReactorCounters>> {
        self.reactors.iter().map(|r| r.counters.clone()).collect()
    }

    /// Give an accepted NVMe/TCP connection to the least-loaded reactor; `secure` is the
    /// TLS channel it came through (the kernel holds its record layer).
    pub fn assign(
        &self,
        stream: TcpStream,
        target: Arc<dyn Target>,
        config: TcpTargetConfig,
        secure: Option<Arc<SecureChannel>>,
    ) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let info = ConnectionInfo {
            transport: TransportKind::Tcp,
            local: stream.local_addr()?,
            peer: stream.peer_addr()?,
            secure,
        };
        let Some(r) = self
            .reactors
            .iter()
            .min_by_key(|r| r.load.load(Ordering::Relaxed))
        else {
            return Err(io::Error::other("no reactors"));
        };
        r.load.fetch_add(1, Ordering::Relaxed);
        let conn = NewConn {
            stream,
            info,
            target,
            config,
        };
        if r.tx.send(conn).is_err() {
            r.load.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::other("reactor stopped"));
        }
        r.doorbell.ring();
        Ok(())
    }

    /// Close every connection and stop the threads (blocks until they are gone).
    pub fn stop_and_join(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for r in &self.reactors {
            r.doorbell.ring();
            // A sleeping reactor sees the eventfd; a spinning one the flag.
            let _ = r.doorbell.efd.write(1);
        }
        let threads: Vec<_> = self.threads.lock_counted().drain(..).collect();
        for t in threads {
            if t.join().is_err() {
                warn!("a reactor thread panicked");
            }
        }
    }
}

impl Drop for ReactorPool {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Pin the calling thread to one CPU (reactors, and the load generator's threads).
pub fn pin_to_core(core: usize) -> io::Result<()> {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    set.set(core)
        .map_err(|e| io::Error::other(format!("core {core} is out of range: {e}")))?;
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| io::Error::other(format!("cannot pin to core {core}: {e}")))
}

enum Phase {
    Open,
    /// Flushing the last PDUs before closing, until the deadline.
    Closing(Instant),
}

struct Conn {
    stream: TcpStream,
    conn: TargetConnection,
    peer: SocketAddr,
    /// What the receive buffer is sized for (two of the largest PDUs plus a read's worth).
    recv_capacity: usize,
    readable: bool,
    writable: bool,
    phase: Phase,
    pending: FuturesUnordered<PendingCommand>,
    /// Commands the connection had received when the reactor last counted them.
    commands_counted: u64,
    /// Resolves when the controller behind the queue is torn down.
    teardown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

enum Verdict {
    Keep,
    Drop,
}

struct Reactor {
    id: usize,
    poll: PollMode,
    epoll: Epoll,
    rx: mpsc::Receiver<NewConn>,
    doorbell: Arc<Doorbell>,
    waker: Waker,
    load: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    counters: Arc<ReactorCounters>,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    events: Vec<EpollEvent>,
    /// Some connection has commands to poll for ([`TargetConnection::has_queued`]).
    queued: bool,
}

impl Reactor {
    fn new(
        id: usize,
        poll: PollMode,
        rx: mpsc::Receiver<NewConn>,
        doorbell: Arc<Doorbell>,
        load: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        counters: Arc<ReactorCounters>,
    ) -> io::Result<Reactor> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(
            doorbell.efd.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, WAKE_TOKEN),
        )?;
        Ok(Reactor {
            id,
            poll,
            epoll,
            rx,
            waker: Waker::from(doorbell.clone()),
            doorbell,
            load,
            stop,
            counters,
            conns: Vec::new(),
            free_slots: Vec::new(),
            events: vec![EpollEvent::empty(); EVENTS_PER_WAIT],
            queued: false,
        })
    }

    fn run(&mut self) {
        debug!(reactor = self.id, "reactor running");
        set_current_reactor(self.id);
        let mut clock = LoopClock::start();
        let mut last_work = Instant::now();
        let mut last_timers = last_work;
        // Poll everything once at start (futures, new connections).
        self.doorbell.rung.store(true, Ordering::SeqCst);
        while !self.stop.load(Ordering::Relaxed) {
            let mut worked = false;
            if self.doorbell.rung.swap(false, Ordering::SeqCst) {
                self.accept_new();
                self.poll_futures();
                worked = true;
            }
            let timeout = self.wait_timeout(last_work);
            let n = self.wait(timeout);
            for i in 0..n {
                let ev = self.events[i];
                let token = ev.data();
                if token == WAKE_TOKEN {
                    let _ = self.doorbell.efd.read();
                    continue;
                }
                let Some(Some(c)) = self.conns.get_mut(token as usize) else {
                    continue;
                };
                let flags = ev.events();
                if flags
                    .intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
                {
                    c.readable = true;
                }
                if flags
                    .intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
                {
                    c.writable = true;
                }
            }
            worked |= self.service_all();
            let now = clock.end_iteration(&self.counters, worked || n > 0);
            if worked || n > 0 {
                last_work = now;
            }
            if now.saturating_duration_since(last_timers) >= TIMER_PERIOD {
                last_timers = now;
                self.run_timers(now);
            }
        }
        for slot in 0..self.conns.len() {
            self.drop_conn(slot, "reactor stopping");
        }
        debug!(reactor = self.id, "reactor stopped");
    }

    /// Zero while there is (or just was) work, or drive commands to poll; otherwise how long
    /// to sleep.
    fn wait_timeout(&self, last_work: Instant) -> Duration {
        if self.queued {
            return Duration::ZERO;
        }
        match self.poll {
            PollMode::Busy => Duration::ZERO,
            PollMode::Adaptive => {
                if last_work.elapsed() < ADAPTIVE_SPIN {
                    Duration::ZERO
                } else {
                    MAX_SLEEP
                }
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> usize {
        let sleeping = !timeout.is_zero();
        if sleeping {
            self.doorbell.sleeping.store(true, Ordering::SeqCst);
            // A ring between our last check and now must not be slept through.
            if self.doorbell.rung.load(Ordering::SeqCst) || self.stop.load(Ordering::SeqCst) {
                self.doorbell.sleeping.store(false, Ordering::SeqCst);
                return 0;
            }
        }
        let t = EpollTimeout::try_from(timeout).unwrap_or(EpollTimeout::NONE);
        let r = self.epoll.wait(&mut self.events, t);
        if sleeping {
            self.doorbell.sleeping.store(false, Ordering::SeqCst);
        }
        match r {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => {
                warn!(reactor = self.id, error = %e, "epoll_wait failed");
                0
            }
        }
    }

    fn accept_new(&mut self) {
        while let Ok(nc) = self.rx.try_recv() {
            let slot = self.free_slots.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            let flags = EpollFlags::EPOLLIN
                | EpollFlags::EPOLLOUT
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLET;
            if let Err(e) = self
                .epoll
                .add(nc.stream.as_fd(), EpollEvent::new(flags, slot as u64))
            {
                debug!(peer = %nc.info.peer, error = %e, "cannot watch the connection");
                self.free_slots.push(slot);
                self.load.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let peer = nc.info.peer;
            let mut conn =
                TargetConnection::new(nc.target, nc.info, nc.config.clone(), Instant::now());
            // Room for two of the largest PDUs plus a read's worth, so the buffer is reused in
            // place once its PDUs are consumed (BytesMut reclaims a uniquely owned buffer).
            let max_pdu = nc
                .config
                .max_h2c_data
                .max(nc.config.io_in_capsule)
                .max(nc.config.admin_in_capsule) as usize
                + PDU_OVERHEAD;
            let recv_capacity = 2 * max_pdu + RECV_CHUNK;
            conn.recv_buffer().reserve(recv_capacity);
            self.conns[slot] = Some(Conn {
                stream: nc.stream,
                conn,
                peer,
                recv_capacity,
                readable: true,
                writable: true,
                phase: Phase::Open,
                pending: FuturesUnordered::new(),
                commands_counted: 0,
                teardown: None,
            });
        }
    }

    /// Read, process and write every connection that can make progress.
    fn service_all(&mut self) -> bool {
        let mut worked = false;
        self.queued = false;
        for slot in 0..self.conns.len() {
            let verdict = match self.conns[slot].as_mut() {
                Some(c) => {
                    let v = service(c, &mut worked, &self.waker, &self.counters);
                    self.queued |= c.conn.has_queued();
                    v
                }
                None => continue,
            };
            if let Verdict::Drop = verdict {
                self.drop_conn(slot, "");
            }
        }
        worked
    }

    /// Poll every pending command and teardown watch (after a wake-up).
    fn poll_futures(&mut self) {
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            let torn_down = c
                .teardown
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(&mut cx).is_ready());
            if torn_down {
                self.drop_conn(slot, "controller torn down");
                continue;
            }
            while let Poll::Ready(Some((cid, tag, response))) = c.pending.poll_next_unpin(&mut cx) {
                c.conn.complete(cid, tag, response);
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            if let Phase::Closing(deadline) = c.phase {
                if now >= deadline {
                    self.drop_conn(slot, "flush before close timed out");
                }
                continue;
            }
            if c.conn.next_timeout().is_some_and(|t| now >= t) {
                c.conn.handle_timeout(now);
                collect_events(c, &self.waker);
                c.writable = true;
            }
        }
    }

    fn drop_conn(&mut self, slot: usize, why: &str) {
        let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if !why.is_empty() {
            debug!(peer = %c.peer, why, "closing connection");
        }
        let _ = self.epoll.delete(c.stream.as_fd());
        c.conn.close();
        let _ = c.stream.shutdown(Shutdown::Both);
        self.free_slots.push(slot);
        self.load.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One pass over a connection: read what arrived, run the protocol, write what it produced.
fn service(c: &mut Conn, worked: &mut bool, waker: &Waker, counters: &ReactorCounters) -> Verdict {
    if matches!(c.phase, Phase::Open)
        && c.readable
        && c.conn.send_queue().len() <= MAX_QUEUED_OUTPUT
    {
        let buf = c.conn.recv_buffer();
        if buf.capacity() - buf.len() < RECV_CHUNK / 4 {
            // Back to the full size: a buffer that had to be replaced while slices of it were
            // still alive (a write's H2CData parts waiting for the rest) is made at least this
            // large again, so later reserves reclaim it in place instead of growing it.
            buf.reserve(RECV_CHUNK.max(c.recv_capacity.saturating_sub(buf.len())));
        }
        let spare = buf.capacity() - buf.len();
        // A write's data being steered into a drive's DMA memory is received straight there,
        // and what follows it into the buffer, in one call.
        let (target, buf) = c.conn.recv_targets();
        let offered = spare + target.map_or(0, |(_, _, len)| len);
        let received = match target {
            Some((lent, off, len)) => recv_split(c.stream.as_fd(), lent, off, len, buf),
            None => recv_into_spare(c.stream.as_fd(), buf).map(|n| (0, n)),
        };
        match received {
            Ok((0, 0)) => {
                debug!(peer = %c.peer, "host closed the connection");
                return Verdict::Drop;
            }
            Ok((direct, n)) => {
                *worked = true;
                if direct > 0 {
                    c.conn.steered(direct);
                    counters.add_zero_copy_received(direct as u64);
                }
                // A short read emptied the socket; the next arrival raises a new edge.
                c.readable = direct + n == offered;
                c.conn.process(Instant::now());
                let received = c.conn.commands_received();
                counters.add_commands(received.wrapping_sub(c.commands_counted));
                c.commands_counted = received;
                collect_events(c, waker);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(peer = %c.peer, error = %e, "read failed");
                return Verdict::Drop;
            }
        }
    }
    // Drive commands in the queue's own table complete by polling, not by a waker.
    if c.conn.poll_queued() > 0 {
        *worked = true;
    }
    while c.writable && !c.conn.send_queue().is_empty() {
        let q = c.conn.send_queue();
        let mut chunks = [Chunk::Bytes(&[]); MAX_CHUNKS];
        let count = q.chunks(&mut chunks);
        let offered: usize = chunks[..count].iter().map(Chunk::len).sum();
        match send_chunks(c.stream.as_fd(), &chunks[..count]) {
            Ok(0) => return Verdict::Drop,
            Ok(n) => {
                *worked = true;
                let q = c.conn.send_queue();
                q.consume(n);
                counters.add_zero_copy_sent(q.take_lent_sent());
                // A short write means the socket buffer is full: wait for EPOLLOUT.
                if n < offered {
                    c.writable = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(peer = %c.peer, error = %e, "write failed");
                return Verdict::Drop;
            }
        }
    }
    match c.phase {
        Phase::Closing(_) if c.conn.send_queue().is_empty() => Verdict::Drop,
        _ => Verdict::Keep,
    }
}

/// Take the connection's events: pending commands join the poll set, Close starts the flush.
fn collect_events(c: &mut Conn, waker: &Waker) {
    let mut cx = Context::from_waker(waker);
    while let Some(ev) = c.conn.poll_event() {
        match ev {
            Event::Pending { cid, tag, response } => {
                c.pending.push(PendingCommand { cid, tag, response });
                // First poll registers the waker (and may complete at once).
                while let Poll::Ready(Some((cid, tag, r))) = c.pending.poll_next_unpin(&mut cx) {
                    c.conn.complete(cid, tag, r);
                }
            }
            Event::Close => {
                if let Phase::Open = c.phase {
                    c.phase = Phase::Closing(Instant::now() + CLOSE_FLUSH_TIMEOUT);
                }
            }
        }
    }
    if c.teardown.is_none() {
        if let Some(token) = c.conn.teardown_token() {
            let mut fut = Box::pin(token.cancelled_owned());
            if fut.as_mut().poll(&mut cx).is_ready() {
                c.phase = Phase::Closing(Instant::now());
            }
            c.teardown = Some(fut);
        }
    }
}
