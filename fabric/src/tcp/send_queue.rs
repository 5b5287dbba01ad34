//! The controller side's output: PDU pieces waiting for the socket, and the pool of data
//! buffers that reads fill. Nothing here allocates once the queue and the pool have grown to
//! the connection's working set: heads and digests are kept inline, shared data is
//! reference-counted, and pooled buffers go back to the pool as soon as they are sent. A
//! pooled buffer sent in several PDUs (reads larger than one C2HData PDU) is held in a slot
//! while its parts, interleaved with their PDU heads, go out.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::digest::DIGEST_LEN;
use super::pdu::InlineBytes;
pub use crate::buf_pool::BufPool;
use crate::queue::{DataBuf, Lent, Payload};
use crate::sys::{self, Chunk};

enum Piece {
    Inline {
        bytes: InlineBytes,
        sent: u8,
    },
    Shared(Bytes),
    /// Bytes `start..end` of the buffer held in `slot`; sending the `last` part returns the
    /// buffer to the pool.
    Part {
        slot: usize,
        start: usize,
        end: usize,
        last: bool,
    },
}

/// A buffer whose parts are queued: pooled memory, or a drive's lent DMA memory.
enum Held {
    Buf(DataBuf),
    Lent(Lent),
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Held::Buf(b) => b.len(),
            Held::Lent(l) => l.len(),
        }
    }
}

impl Piece {
    fn remaining<'a>(&'a self, held: &'a [Option<Held>]) -> Chunk<'a> {
        match self {
            Piece::Inline { bytes, sent } => Chunk::Bytes(&bytes.as_slice()[usize::from(*sent)..]),
            Piece::Shared(b) => Chunk::Bytes(b),
            Piece::Part {
                slot, start, end, ..
            } => match held.get(*slot).and_then(Option::as_ref) {
                Some(Held::Buf(b)) => Chunk::Bytes(&b.as_slice()[*start..*end]),
                Some(Held::Lent(lent)) => Chunk::Lent {
                    lent,
                    start: *start,
                    end: *end,
                },
                None => Chunk::Bytes(&[]),
            },
        }
    }
}

/// Bytes queued for the socket, in order, with the buffer pool they return to.
#[derive(Default)]
pub struct SendQueue {
    pieces: VecDeque<Piece>,
    bytes: usize,
    pool: BufPool,
    /// Buffers whose parts are queued ([`SendQueue::hold`]), by slot, and the free slots.
    held: Vec<Option<Held>>,
    free_slots: Vec<usize>,
    /// Bytes sent from lent memory since [`SendQueue::take_lent_sent`] last asked.
    lent_sent: u64,
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
            Payload::Buf(buf) => {
                let len = buf.len();
                let slot = self.hold(buf);
                self.push_part(slot, 0, len, true);
            }
            Payload::Lent(lent) => {
                let len = lent.len();
                let slot = self.hold_lent(lent);
                self.push_part(slot, 0, len, true);
            }
        }
    }

    /// Keep `buf` until its parts are sent; returns its slot for [`SendQueue::push_part`] and
    /// [`SendQueue::held_len`]. Slots are reused, so holding allocates nothing once the queue
    /// has held as many buffers at once before.
    pub fn hold(&mut self, buf: DataBuf) -> usize {
        self.hold_any(Held::Buf(buf))
    }

    /// Keep lent device memory until its parts are sent, as [`SendQueue::hold`]; it goes
    /// back to its home after the last part.
    pub fn hold_lent(&mut self, lent: Lent) -> usize {
        self.hold_any(Held::Lent(lent))
    }

    fn hold_any(&mut self, held: Held) -> usize {
        match self.free_slots.pop() {
            Some(slot) => {
                self.held[slot] = Some(held);
                slot
            }
            None => {
                self.held.push(Some(held));
                self.held.len() - 1
            }
        }
    }

    /// The valid length of the buffer held in `slot` (0 for a free slot).
    pub fn held_len(&self, slot: usize) -> usize {
        self.held
            .get(slot)
            .and_then(Option::as_ref)
            .map_or(0, Held::len)
    }

    /// The data digest (CRC32C, NVMe/TCP 1.0 §3.3.1.1) of `start..end` of the buffer held in
    /// `slot`, the range cut to the buffer.
    pub fn held_digest(&self, slot: usize, start: usize, end: usize) -> [u8; DIGEST_LEN] {
        let end = end.min(self.held_len(slot));
        let start = start.min(end);
        let crc = match self.held.get(slot).and_then(Option::as_ref) {
            Some(Held::Buf(b)) => crc32c::crc32c(&b.as_slice()[start..end]),
            Some(Held::Lent(l)) => sys::crc32c_lent(0, l, start, end),
            None => crc32c::crc32c(&[]),
        };
        crc.to_le_bytes()
    }

    /// Queue bytes `start..end` of the buffer held in `slot`; with `last`, the buffer goes
    /// back to the pool once they are sent. Ranges past the buffer's end are cut to it.
    pub fn push_part(&mut self, slot: usize, start: usize, end: usize, last: bool) {
        let len = self.held_len(slot);
        let (start, end) = (start.min(len), end.min(len));
        if start < end {
            self.bytes += end - start;
            self.pieces.push_back(Piece::Part {
                slot,
                start,
                end,
                last,
            });
        } else if last {
            self.release(slot);
        }
    }

    fn release(&mut self, slot: usize) {
        match self.held.get_mut(slot).and_then(Option::take) {
            Some(Held::Buf(buf)) => self.pool.give(buf),
            // Dropping it gives the memory back to its home.
            Some(Held::Lent(lent)) => drop(lent),
            None => return,
        }
        self.free_slots.push(slot);
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

    /// Fill `chunks` with the front of the queue; returns how many were filled.
    pub fn chunks<'a>(&'a self, chunks: &mut [Chunk<'a>]) -> usize {
        let mut n = 0;
        for (slot, piece) in chunks.iter_mut().zip(self.pieces.iter()) {
            *slot = piece.remaining(&self.held);
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
            let chunk = front.remaining(&self.held);
            let left = chunk.len();
            if let Chunk::Lent { .. } = chunk {
                self.lent_sent += left.min(n) as u64;
            }
            if left > n {
                match front {
                    Piece::Inline { sent, .. } => *sent += n as u8,
                    Piece::Shared(b) => b.advance(n),
                    Piece::Part { start, .. } => *start += n,
                }
                return;
            }
            n -= left;
            if let Some(Piece::Part {
                slot, last: true, ..
            }) = self.pieces.pop_front()
            {
                self.release(slot);
            }
        }
    }

    /// Bytes sent straight from lent device memory since the last call.
    pub fn take_lent_sent(&mut self) -> u64 {
        std::mem::take(&mut self.lent_sent)
    }

    /// Everything queued as one buffer (copies; for tests and simple drivers).
    pub fn take_all(&mut self) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        let mut out = BytesMut::with_capacity(self.bytes);
        for p in &self.pieces {
            match p.remaining(&self.held) {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::Lent { lent, start, end } => {
                    let at = out.len();
                    out.resize(at + (end - start), 0);
                    sys::copy_from_lent(lent, start, &mut out[at..]);
                }
            }
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
        for slot in 0..self.held.len() {
            self.release(slot);
        }
    }

    pub fn pool(&mut self) -> &mut BufPool {
        &mut self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk's bytes, copied.
    fn bytes_of(c: &Chunk<'_>) -> Vec<u8> {
        match *c {
            Chunk::Bytes(b) => b.to_vec(),
            Chunk::Lent { lent, start, end } => lent.to_vec()[start..end].to_vec(),
        }
    }

    fn drain(q: &mut SendQueue, step: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while !q.is_empty() {
            let mut chunks = [Chunk::Bytes(&[]); 4];
            let n = q.chunks(&mut chunks);
            let mut budget = step;
            let mut wrote = 0;
            for c in &chunks[..n] {
                let s = bytes_of(c);
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
    fn a_held_buffer_goes_out_in_parts_and_back_to_the_pool_after_the_last() {
        for step in [1, 5, 64] {
            let mut q = SendQueue::default();
            let mut buf = q.pool().take(10);
            buf.as_mut_slice().copy_from_slice(b"0123456789");
            let slot = q.hold(buf);
            assert_eq!(q.held_len(slot), 10);
            assert_eq!(
                q.held_digest(slot, 0, 10),
                crc32c::crc32c(b"0123456789").to_le_bytes()
            );
            for (start, end) in [(0, 4), (4, 8), (8, 10)] {
                q.push_inline(InlineBytes::from_slice(b"<"));
                q.push_part(slot, start, end, end == 10);
                q.push_inline(InlineBytes::from_slice(b">"));
            }
            assert_eq!(q.len(), 16);
            assert_eq!(drain(&mut q, step), b"<0123><4567><89>");
            assert_eq!(
                q.pool().pooled(),
                1,
                "back in the pool once the last part is sent"
            );
            assert_eq!(q.held_len(slot), 0);
            // The slot is reused.
            let again = q.hold(DataBuf::zeroed(2));
            assert_eq!(again, slot);
            q.push_part(again, 0, 9, true);
            assert_eq!(q.len(), 2, "a part is cut to its buffer");
            q.clear();
            assert_eq!(q.pool().pooled(), 2);
        }
    }

    #[test]
    fn clearing_returns_held_buffers_whose_last_part_was_never_queued() {
        let mut q = SendQueue::default();
        let slot = q.hold(DataBuf::zeroed(8));
        q.push_part(slot, 0, 4, false);
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.pool().pooled(), 1);
        // An empty last part releases at once.
        let slot = q.hold(DataBuf::zeroed(8));
        q.push_part(slot, 8, 8, true);
        assert_eq!(q.pool().pooled(), 2);
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
