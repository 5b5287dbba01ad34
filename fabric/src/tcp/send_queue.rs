//! The controller side's output: PDU pieces waiting for the socket, and the pool of data
//! buffers that reads fill. Nothing here allocates once the queue and the pool have grown to
//! the connection's working set: heads and digests are kept inline, shared data is
//! reference-counted, and pooled buffers go back to the pool as soon as they are sent.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use super::pdu::InlineBytes;
use crate::queue::{DataBuf, Payload};

/// Pooled buffers up to this size are "small"; larger ones are kept in their own list so a
/// mix of 4 KiB and 128 KiB reads does not grow every buffer to the largest size.
pub const SMALL_BUF: usize = 16 * 1024;

/// Most small buffers a pool keeps; more are freed when returned.
pub const POOL_KEEP: usize = 128;

/// Most bytes of large buffers a pool keeps (enough for 32 reads of 128 KiB in flight).
pub const LARGE_POOL_BYTES: usize = 8 << 20;

enum Piece {
    Inline { bytes: InlineBytes, sent: u8 },
    Shared(Bytes),
    Pooled { buf: DataBuf, sent: usize },
}

impl Piece {
    fn remaining(&self) -> &[u8] {
        match self {
            Piece::Inline { bytes, sent } => &bytes.as_slice()[usize::from(*sent)..],
            Piece::Shared(b) => b,
            Piece::Pooled { buf, sent } => &buf.as_slice()[*sent..],
        }
    }
}

/// Free data buffers in two size classes.
#[derive(Default)]
pub struct BufPool {
    small: Vec<Vec<u8>>,
    large: Vec<Vec<u8>>,
    large_bytes: usize,
}

impl BufPool {
    /// A buffer of `len` bytes: a pooled one when there is one, else a new one.
    pub fn take(&mut self, len: usize) -> DataBuf {
        let list = if len <= SMALL_BUF {
            &mut self.small
        } else {
            &mut self.large
        };
        match list.pop() {
            Some(v) => {
                if len > SMALL_BUF {
                    self.large_bytes -= v.capacity();
                }
                DataBuf::reuse(v, len)
            }
            None if len <= SMALL_BUF => DataBuf::reuse(Vec::with_capacity(SMALL_BUF), len),
            None => DataBuf::zeroed(len),
        }
    }

    /// Return a buffer: kept while the pool is under [`POOL_KEEP`] small buffers or
    /// [`LARGE_POOL_BYTES`] of large ones, else freed.
    pub fn give(&mut self, buf: DataBuf) {
        let v = buf.into_vec();
        let cap = v.capacity();
        if cap <= SMALL_BUF {
            if self.small.len() < POOL_KEEP {
                self.small.push(v);
            }
        } else if self.large_bytes + cap <= LARGE_POOL_BYTES {
            self.large_bytes += cap;
            self.large.push(v);
        }
    }

    /// Buffers currently pooled.
    pub fn pooled(&self) -> usize {
        self.small.len() + self.large.len()
    }
}

/// Bytes queued for the socket, in order, with the buffer pool they return to.
#[derive(Default)]
pub struct SendQueue {
    pieces: VecDeque<Piece>,
    bytes: usize,
    pool: BufPool,
}

impl SendQueue {
    pub fn push_inline(&mut self, bytes: InlineBytes) {
        if !bytes.is_empty() {
            self.bytes += bytes.len();
            self.pieces.push_back(Piece::Inline { bytes, sent: 0 });
        }
    }

    pub fn push_shared(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.bytes += bytes.len();
            self.pieces.push_back(Piece::Shared(bytes));
        }
    }

    pub fn push_payload(&mut self, payload: Payload) {
        match payload {
            Payload::Shared(b) => self.push_shared(b),
            Payload::Buf(buf) if buf.is_empty() => self.pool.give(buf),
            Payload::Buf(buf) => {
                self.bytes += buf.len();
                self.pieces.push_back(Piece::Pooled { buf, sent: 0 });
            }
        }
    }

    /// Make room for `pieces` more queued pieces without growing later.
    pub fn reserve(&mut self, pieces: usize) {
        self.pieces.reserve(pieces);
    }

    /// Bytes waiting to be sent.
    pub fn len(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Fill `slices` with the front of the queue; returns how many were filled.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, piece) in slices.iter_mut().zip(self.pieces.iter()) {
            *slot = IoSlice::new(piece.remaining());
            n += 1;
        }
        n
    }

    /// Drop `n` sent bytes from the front; pooled buffers that are fully sent go back to the
    /// pool.
    pub fn consume(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(front) = self.pieces.front_mut() else {
                return;
            };
            let left = front.remaining().len();
            if left > n {
                match front {
                    Piece::Inline { sent, .. } => *sent += n as u8,
                    Piece::Shared(b) => b.advance(n),
                    Piece::Pooled { sent, .. } => *sent += n,
                }
                return;
            }
            n -= left;
            if let Some(Piece::Pooled { buf, .. }) = self.pieces.pop_front() {
                self.pool.give(buf);
            }
        }
    }

    /// Everything queued as one buffer (copies; for tests and simple drivers).
    pub fn take_all(&mut self) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        let mut out = BytesMut::with_capacity(self.bytes);
        for p in &self.pieces {
            out.extend_from_slice(p.remaining());
        }
        let n = self.bytes;
        self.consume(n);
        Some(out.freeze())
    }

    /// Drop everything queued (the connection is gone).
    pub fn clear(&mut self) {
        let n = self.bytes;
        self.consume(n);
        self.pieces.clear();
    }

    pub fn pool(&mut self) -> &mut BufPool {
        &mut self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut SendQueue, step: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while !q.is_empty() {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = q.io_slices(&mut slices);
            let mut budget = step;
            let mut wrote = 0;
            for s in &slices[..n] {
                let take = s.len().min(budget);
                got.extend_from_slice(&s[..take]);
                budget -= take;
                wrote += take;
                if budget == 0 {
                    break;
                }
            }
            q.consume(wrote);
        }
        got
    }

    #[test]
    fn pieces_come_out_in_order_across_partial_writes() {
        for step in [1, 3, 7, 100] {
            let mut q = SendQueue::default();
            q.push_inline(InlineBytes::from_slice(b"head"));
            q.push_shared(Bytes::from_static(b"shared-data"));
            let mut buf = q.pool().take(5);
            buf.as_mut_slice().copy_from_slice(b"12345");
            q.push_payload(Payload::Buf(buf));
            q.push_inline(InlineBytes::from_slice(b"!"));
            assert_eq!(q.len(), 4 + 11 + 5 + 1);
            assert_eq!(drain(&mut q, step), b"headshared-data12345!");
            assert_eq!(q.pool().pooled(), 1, "the sent buffer is back in the pool");
        }
    }

    #[test]
    fn pool_reuses_buffers_by_size_class() {
        let mut p = BufPool::default();
        let a = p.take(4096);
        let b = p.take(128 * 1024);
        assert_eq!((a.len(), b.len()), (4096, 128 * 1024));
        p.give(a);
        p.give(b);
        let c = p.take(512);
        assert_eq!(c.len(), 512);
        assert!(c.as_slice().len() == 512);
        let d = p.take(64 * 1024);
        assert_eq!(d.len(), 64 * 1024);
        assert_eq!(p.pooled(), 0);
        p.give(c);
        p.give(d);
        assert_eq!(p.pooled(), 2);
    }

    #[test]
    fn take_all_and_clear() {
        let mut q = SendQueue::default();
        assert!(q.take_all().is_none());
        q.push_shared(Bytes::from_static(b"ab"));
        q.push_inline(InlineBytes::from_slice(b"cd"));
        assert_eq!(&q.take_all().unwrap()[..], b"abcd");
        q.push_payload(Payload::Buf(DataBuf::zeroed(3)));
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.pool().pooled(), 1);
    }
}
