//! The polled interface ([`PolledBackend`]) of io_uring passthrough: a Read or Write of up to
//! one device command is pushed on the calling thread's polled ring (its own, in its local
//! storage: no lock) with the caller's token, sent to the kernel by the next
//! [`PolledBackend::reap`] (one `io_uring_enter` for every command started since), and handed
//! back from the ring's slot by tag; no future, no `Job`, no allocation once the ring's lists
//! and its spare write buffers have grown to the load.

use std::ops::{Deref, DerefMut};

use super::cmd::{self, rw_cmd};
use super::UringBackend;
use crate::backend::{token_owner, BackendError, Polled, PolledBackend, Refused};
use crate::opcode::IoOpcode;
use crate::sys::uring::{IoBuf, NvmeUringCmd, PassthruRing, Rejected, NVME_URING_CMD_IO};

/// Spare write buffers one ring keeps at most.
const MAX_SPARE: usize = 256;

/// A thread's ring and the polled commands on it.
pub struct PolledRing {
    ring: PassthruRing,
    /// (tag, token, whether it reads) of the polled commands on the ring.
    in_flight: Vec<(u32, u64, bool)>,
    /// Data buffers of finished polled writes, for the next ones.
    spare: Vec<Vec<u8>>,
}

impl Deref for PolledRing {
    type Target = PassthruRing;
    fn deref(&self) -> &PassthruRing {
        &self.ring
    }
}

impl DerefMut for PolledRing {
    fn deref_mut(&mut self) -> &mut PassthruRing {
        &mut self.ring
    }
}

fn into_vec(buf: IoBuf) -> Vec<u8> {
    match buf {
        IoBuf::In(v) => v,
        IoBuf::None | IoBuf::Out(_) => Vec::new(),
    }
}

impl PolledRing {
    pub fn new(ring: PassthruRing) -> PolledRing {
        PolledRing {
            ring,
            in_flight: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// `data` in a buffer the ring owns until the write completes (a spare one when there is
    /// one of the room).
    fn write_buf(&mut self, data: &[u8]) -> Vec<u8> {
        let mut buf = match self.spare.iter().position(|b| b.capacity() >= data.len()) {
            Some(i) => self.spare.swap_remove(i),
            None => Vec::with_capacity(data.len()),
        };
        buf.clear();
        buf.extend_from_slice(data);
        buf
    }

    /// No polled command on the ring.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    fn keep(&mut self, buf: Vec<u8>) {
        if self.spare.len() < MAX_SPARE && buf.capacity() > 0 {
            self.spare.push(buf);
        }
    }

    /// Push `cmd` with `buf` for `token`; nothing reaches the kernel before the next reap.
    fn start(
        &mut self,
        cmd: &NvmeUringCmd,
        buf: Vec<u8>,
        token: u64,
        read: bool,
    ) -> Result<(), (Refused, Vec<u8>)> {
        match self.ring.push(NVME_URING_CMD_IO, cmd, IoBuf::In(buf)) {
            Ok(tag) => {
                self.in_flight.push((tag, token, read));
                Ok(())
            }
            Err(Rejected::Full(b)) => Err((Refused::Busy, into_vec(b))),
            Err(Rejected::Direction(b)) => Err((
                Refused::Failed(BackendError::Io(std::io::Error::other(
                    "passthrough refused the data direction",
                ))),
                into_vec(b),
            )),
        }
    }

    /// Submit what was pushed, collect completions, and hand `owner`'s to `done`.
    fn reap(&mut self, owner: u32, done: &mut dyn FnMut(Polled)) -> usize {
        if let Err(e) = self.ring.submit() {
            // As a job's commands fail with its ring (`Job::poll`): the owner's fail now, and
            // the ring frees their buffers when (if) they complete.
            let mut n = 0;
            let ring = &mut self.ring;
            self.in_flight.retain(|&(tag, token, _)| {
                if token_owner(token) != owner {
                    return true;
                }
                ring.forget(tag);
                let err = std::io::Error::new(e.kind(), e.to_string());
                done(Polled::new(token, Err(BackendError::Io(err)), None));
                n += 1;
                false
            });
            return n;
        }
        let mut n = 0;
        let mut i = 0;
        while i < self.in_flight.len() {
            let (tag, token, read) = self.in_flight[i];
            let finished = token_owner(token) == owner;
            let Some(c) = finished.then(|| self.ring.take(tag)).flatten() else {
                i += 1;
                continue;
            };
            self.in_flight.swap_remove(i);
            let result = cmd::check(c.res).map(|()| c.result);
            let buf = into_vec(c.buf);
            let buf = if read {
                Some(buf)
            } else {
                self.keep(buf);
                None
            };
            done(Polled::new(token, result, buf));
            n += 1;
        }
        n
    }

    /// Drop `owner`'s commands: their buffers are freed when they complete.
    fn forget(&mut self, owner: u32) {
        let ring = &mut self.ring;
        self.in_flight.retain(|&(tag, token, _)| {
            let mine = token_owner(token) == owner;
            if mine {
                ring.forget(tag);
            }
            !mine
        });
    }
}

impl UringBackend {
    /// Blocks of a polled transfer of `len` bytes at `lba`; `Unsupported` above one command.
    fn polled_blocks(&self, lba: u64, len: usize) -> Result<u64, Refused> {
        self.check(lba, len).map_err(Refused::Failed)?;
        let blocks = (len / self.info.block_size as usize) as u64;
        if blocks > self.max_blocks {
            return Err(Refused::Unsupported);
        }
        Ok(blocks)
    }
}

impl PolledBackend for UringBackend {
    fn start_read(&self, lba: u64, buf: Vec<u8>, token: u64) -> Result<(), (Refused, Vec<u8>)> {
        let blocks = match self.polled_blocks(lba, buf.len()) {
            Ok(b) => b,
            Err(why) => return Err((why, buf)),
        };
        let cmd = rw_cmd(IoOpcode::Read, self.nsid, lba, blocks, false);
        // `buf` goes into the closure, which runs unless the ring could not be made.
        let mut buf = Some(buf);
        let started = self.rings.with_polled(|ring| {
            let buf = buf.take().unwrap_or_default();
            ring.start(&cmd, buf, token, true)
        });
        match started {
            Ok(r) => r,
            Err(e) => Err((Refused::Failed(e.into()), buf.unwrap_or_default())),
        }
    }

    fn start_write(&self, lba: u64, data: &[u8], fua: bool, token: u64) -> Result<(), Refused> {
        let blocks = self.polled_blocks(lba, data.len())?;
        let cmd = rw_cmd(IoOpcode::Write, self.nsid, lba, blocks, fua);
        self.rings
            .with_polled(|ring| {
                let buf = ring.write_buf(data);
                ring.start(&cmd, buf, token, false).map_err(|(why, buf)| {
                    ring.keep(buf);
                    why
                })
            })
            .map_err(|e| Refused::Failed(e.into()))?
    }

    fn reap(&self, owner: u32, done: &mut dyn FnMut(Polled)) -> usize {
        self.rings
            .with_polled(|ring| ring.reap(owner, done))
            .unwrap_or(0)
    }

    fn forget(&self, owner: u32) {
        // A polled owner lives on one thread: its commands are on this thread's ring.
        self.rings.if_polled(|ring| ring.forget(owner));
    }
}
