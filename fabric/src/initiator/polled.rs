//! One NVMe/TCP I/O queue driven by busy polling instead of tokio: a nonblocking
//! `std::net::TcpStream` (TCP_NODELAY) around the sans-IO [`HostConn`]. The owner calls
//! [`PolledQueue::submit`] for as many commands as it likes, [`PolledQueue::flush`] to send
//! them all with one vectored write, [`PolledQueue::receive`] to read whatever arrived with
//! one recv, and [`PolledQueue::poll_event`] for the completions. Received bytes are read
//! straight into a buffer the connection then owns, so read data is not copied again. No locks, no tasks, and no
//! syscall per command: load generators put many queues on one pinned thread this way.
//!
//! Setup ([`PolledQueue::connect`]) and teardown ([`PolledQueue::disconnect`]) poll the same
//! way with short sleeps, bounded by a timeout.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nvme_spec::command::{ConnectData, CATTR_DISABLE_SQ_FLOW_CONTROL};
use nvme_spec::Sqe;
use zerocopy::IntoBytes;

use super::command;
use super::{HostCompletion, HostError};
use crate::tcp::host_conn::{HostConn, HostConnConfig, HostEvent, Negotiated, SubmitError};
use crate::tcp::out_queue::consume;
use crate::tcp::pdu::Digests;

/// Most pieces handed to one `writev` (Linux IOV_MAX is 1024).
const MAX_IOVECS: usize = 256;
/// Receive buffer: allocated (not zeroed: recv fills its spare capacity) this big,
/// replaced when less than [`RECV_MIN`] of it is left.
const RECV_BUFFER: usize = 256 * 1024;
const RECV_MIN: usize = 32 * 1024;
/// Sleep between polls while waiting for setup and teardown commands.
const SETUP_POLL: Duration = Duration::from_micros(50);

/// How to open a polled I/O queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolledQueueOptions {
    /// Queue ID (1.. for I/O queues).
    pub qid: u16,
    pub header_digest: bool,
    pub data_digest: bool,
    /// Writes up to this many bytes travel in-capsule (Identify Controller IOCCSZ).
    pub in_capsule_data: u32,
    /// Queue size in entries for Connect SQSIZE; keep at most `queue_size - 1` outstanding.
    pub queue_size: u16,
    /// Disable SQ flow control in Connect (CATTR bit 2): the controller may then finish
    /// reads with a C2HData SUCCESS flag and no CapsuleResp.
    pub disable_sqflow: bool,
    /// Bound for the connection setup and for [`PolledQueue::command`].
    pub timeout: Duration,
}

/// Who the queue belongs to, for Fabrics Connect (NVMe-oF 1.1 §3.3).
#[derive(Clone, Copy, Debug)]
pub struct ConnectIdentity<'a> {
    pub subnqn: &'a str,
    pub hostnqn: &'a str,
    pub hostid: [u8; 16],
    /// The CNTLID the admin queue's Connect returned.
    pub cntlid: u16,
}

/// A polled NVMe/TCP I/O queue.
#[derive(Debug)]
pub struct PolledQueue {
    stream: TcpStream,
    conn: HostConn,
    out: VecDeque<Bytes>,
    /// Receive buffer: each recv appends into its spare capacity (no zeroing), and what
    /// arrived is split off and handed to the connection.
    rx: BytesMut,
    negotiated: Negotiated,
    opts: PolledQueueOptions,
    eof: bool,
}

impl PolledQueue {
    /// Connect TCP (TCP_NODELAY, nonblocking), run ICReq/ICResp (NVMe/TCP 1.0 §3.3) and the
    /// Fabrics Connect for `opts.qid`.
    pub fn connect(
        addr: SocketAddr,
        opts: PolledQueueOptions,
        who: ConnectIdentity<'_>,
    ) -> Result<PolledQueue, HostError> {
        let deadline = Instant::now() + opts.timeout;
        let stream = TcpStream::connect_timeout(&addr, opts.timeout)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let conn = HostConn::new(HostConnConfig {
            qid: opts.qid,
            digests: Digests {
                header: opts.header_digest,
                data: opts.data_digest,
            },
            maxr2t: 0,
            in_capsule_data: opts.in_capsule_data,
            sq_flow_control_disabled: opts.disable_sqflow,
        });
        let mut q = PolledQueue {
            stream,
            conn,
            out: VecDeque::new(),
            rx: BytesMut::new(),
            negotiated: Negotiated {
                digests: Digests::NONE,
                cpda: 0,
                maxh2cdata: 0,
            },
            opts,
            eof: false,
        };
        q.negotiated = q.wait(deadline, |ev| match ev {
            HostEvent::Established(n) => Some(n),
            _ => None,
        })?;
        let cattr = if q.opts.disable_sqflow {
            CATTR_DISABLE_SQ_FLOW_CONTROL
        } else {
            0
        };
        let sqe = command::connect(q.opts.qid, q.opts.queue_size.max(2) - 1, cattr, 0);
        let data = ConnectData::new(who.hostid, who.cntlid, who.subnqn, who.hostnqn)
            .map_err(|e| HostError::Protocol(format!("Connect data: {e}")))?;
        let done = q.command(sqe, Some(Bytes::copy_from_slice(data.as_bytes())), 0)?;
        if !done.status().is_success() {
            return Err(HostError::Connect(done.status()));
        }
        Ok(q)
    }

    pub fn qid(&self) -> u16 {
        self.opts.qid
    }

    pub fn options(&self) -> &PolledQueueOptions {
        &self.opts
    }

    /// What ICResp granted.
    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// Commands submitted and not completed.
    pub fn outstanding(&self) -> usize {
        self.conn.outstanding()
    }

    /// Queue a command (see [`HostConn::submit`]); nothing is sent until [`Self::flush`].
    pub fn submit(
        &mut self,
        sqe: Sqe,
        data_out: Option<Bytes>,
        data_in_len: u32,
    ) -> Result<u16, SubmitError> {
        self.conn.submit(sqe, data_out, data_in_len)
    }

    /// Send as much of what is queued as one vectored write takes. Returns the bytes
    /// written (0 when nothing was queued or the socket buffer is full).
    pub fn flush(&mut self) -> io::Result<usize> {
        if self.conn.has_transmit() {
            self.conn.drain_transmit(&mut self.out);
        }
        if self.out.is_empty() {
            return Ok(0);
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slot, piece) in slices.iter_mut().zip(self.out.iter()) {
            *slot = IoSlice::new(piece);
            count += 1;
        }
        let n = match (&self.stream).write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        consume(&mut self.out, n);
        Ok(n)
    }

    /// Whether bytes are still waiting to be written.
    pub fn has_pending_output(&self) -> bool {
        !self.out.is_empty() || self.conn.has_transmit()
    }

    /// One recv, fed to the connection without copying. Returns the bytes read (0 when
    /// nothing was available). End of stream fails the connection: the outstanding
    /// commands and a [`HostEvent::Failed`] come out of [`Self::poll_event`].
    pub fn receive(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.rx.capacity() - self.rx.len() < RECV_MIN {
            // The old buffer lives on in the pieces the connection holds.
            self.rx = BytesMut::with_capacity(RECV_BUFFER);
        }
        match crate::sys::recv_into_spare(self.stream.as_fd(), &mut self.rx) {
            Ok(0) => {
                self.eof = true;
                self.conn.close();
                Ok(0)
            }
            Ok(n) => {
                // Consecutive pieces of one buffer: the connection joins a partial PDU
                // left from the previous piece with this one without copying.
                self.conn.receive_buf(self.rx.split_to(n));
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.conn.poll_event()
    }

    /// Submit one command and poll until it completes (setup and teardown, not the hot
    /// path: events of other commands that arrive meanwhile are dropped).
    pub fn command(
        &mut self,
        sqe: Sqe,
        data_out: Option<Bytes>,
        data_in_len: u32,
    ) -> Result<HostCompletion, HostError> {
        let deadline = Instant::now() + self.opts.timeout;
        let cid = self.conn.submit(sqe, data_out, data_in_len)?;
        let done = self.wait(deadline, |ev| match ev {
            HostEvent::Completed { cid: c, result } if c == cid => Some(result),
            _ => None,
        })?;
        let done = done?;
        Ok(HostCompletion {
            cqe: done.cqe,
            data: done.data,
        })
    }

    /// Fabrics Disconnect (NVMe-oF 1.1 §3.6) after the outstanding commands completed or
    /// `drain` passed, then close the connection. A controller that closes instead of
    /// answering is not an error.
    pub fn disconnect(mut self, drain: Duration) -> Result<(), HostError> {
        let deadline = Instant::now() + drain;
        while self.conn.outstanding() > 0 && self.conn.error().is_none() {
            self.pump()?;
            while self.conn.poll_event().is_some() {}
            if Instant::now() >= deadline {
                break;
            }
        }
        let result = match self.command(command::disconnect(), None, 0) {
            Ok(_) | Err(HostError::Closed) => Ok(()),
            Err(e) => Err(e),
        };
        let _ = self.stream.shutdown(Shutdown::Both);
        result
    }

    /// Flush and receive once, sleeping briefly when nothing moved.
    fn pump(&mut self) -> Result<(), HostError> {
        let sent = self.flush()?;
        let got = self.receive()?;
        if sent == 0 && got == 0 {
            std::thread::sleep(SETUP_POLL);
        }
        Ok(())
    }

    /// Poll until `pick` accepts an event, the connection fails or `deadline` passes.
    fn wait<T>(
        &mut self,
        deadline: Instant,
        mut pick: impl FnMut(HostEvent) -> Option<T>,
    ) -> Result<T, HostError> {
        loop {
            while let Some(ev) = self.conn.poll_event() {
                if let HostEvent::Failed(e) = ev {
                    // Send the H2CTermReq, if any, before giving up.
                    let _ = self.flush();
                    return Err(e.into());
                }
                if let Some(t) = pick(ev) {
                    return Ok(t);
                }
            }
            if Instant::now() >= deadline {
                return Err(HostError::Timeout);
            }
            self.pump()?;
        }
    }
}
