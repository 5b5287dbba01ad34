//! Writing a queue of encoded PDU pieces to a socket: one vectored write at a time, no copies
//! and no allocation per write. Used by the host initiators (tokio and polled); the target's
//! reactors use the pooled [`super::send_queue::SendQueue`].

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Most pieces handed to one `writev`.
pub const MAX_IOVECS: usize = 64;

/// One vectored write of the front of `out`; returns the bytes written (never 0).
pub async fn write_some<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &VecDeque<Bytes>,
) -> std::io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
    let mut count = 0;
    for (slot, piece) in slices.iter_mut().zip(out.iter()) {
        *slot = IoSlice::new(piece);
        count += 1;
    }
    let n = w.write_vectored(&slices[..count]).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}

/// Drop `n` written bytes from the front of the queue.
pub fn consume(out: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = out.front_mut() else {
            return;
        };
        if front.len() <= n {
            n -= front.len();
            out.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

/// Write everything queued, then flush.
pub async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    while !out.is_empty() {
        let n = write_some(w, out).await?;
        consume(out, n);
    }
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_advances_across_chunks() {
        let mut q: VecDeque<Bytes> = [&b"abc"[..], b"defg", b"h"]
            .into_iter()
            .map(Bytes::from_static)
            .collect();
        consume(&mut q, 5);
        assert_eq!(q.len(), 2);
        assert_eq!(&q[0][..], b"fg");
        consume(&mut q, 3);
        assert!(q.is_empty());
        consume(&mut q, 1);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn write_all_sends_every_piece_in_order() {
        let mut q: VecDeque<Bytes> = (0..200u8).map(|i| Bytes::from(vec![i; 3])).collect();
        let mut sink = Vec::new();
        write_all(&mut sink, &mut q).await.unwrap();
        assert!(q.is_empty());
        let want: Vec<u8> = (0..200u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(sink, want);
    }
}
