//! Free data buffers for host data and read data, reused so the data path allocates
//! nothing once a connection's working set is pooled. Transport-neutral: NVMe/TCP fills
//! them from the socket, NVMe/RDMA registers them with the NIC.

use crate::queue::DataBuf;

/// Pooled buffers up to this size are "small"; larger ones are kept in their own list so a
/// mix of 4 KiB and 128 KiB reads does not grow every buffer to the largest size.
pub const SMALL_BUF: usize = 16 * 1024;

/// Most small buffers a pool keeps; more are freed when returned.
pub const POOL_KEEP: usize = 128;

/// Most bytes of large buffers a pool keeps per size class (64 reads of 128 KiB or 8 of
/// 1 MiB in flight).
pub const LARGE_POOL_BYTES: usize = 8 << 20;

/// Large buffers are pooled by power-of-two size, from this size up (one class per power).
const LARGE_MIN_SHIFT: u32 = 15;
/// Large size classes: 32 KiB up to 1 GiB; larger buffers are never pooled.
const LARGE_CLASSES: usize = 16;

/// The size class of a large buffer of `len` bytes and the size it is allocated with.
fn large_class(len: usize) -> Option<(usize, usize)> {
    let size = len.next_power_of_two().max(1 << LARGE_MIN_SHIFT);
    let class = (size.trailing_zeros() - LARGE_MIN_SHIFT) as usize;
    (class < LARGE_CLASSES).then_some((class, size))
}

/// Where a transport's queue takes data buffers from and gives them back to: a plain
/// [`BufPool`], or one whose memory is registered with a NIC.
pub trait BufSource {
    /// A buffer of `len` bytes.
    fn take(&mut self, len: usize) -> DataBuf;
    /// A buffer back, once nothing uses it.
    fn give(&mut self, buf: DataBuf);
}

impl BufSource for BufPool {
    fn take(&mut self, len: usize) -> DataBuf {
        BufPool::take(self, len)
    }

    fn give(&mut self, buf: DataBuf) {
        BufPool::give(self, buf)
    }
}

/// Free data buffers: small ones, and large ones by power-of-two size class, so a mix of
/// 128 KiB and 1 MiB reads reuses buffers of its own sizes instead of growing them all to
/// the largest.
/// Buffers keep their RDMA registration while pooled.
pub struct BufPool {
    small: Vec<DataBuf>,
    large: [Vec<DataBuf>; LARGE_CLASSES],
    keep_small: usize,
    keep_large_bytes: usize,
}

impl Default for BufPool {
    fn default() -> Self {
        BufPool::with_limits(POOL_KEEP, LARGE_POOL_BYTES)
    }
}

impl BufPool {
    /// A pool that keeps up to `small` small buffers and `large_bytes` per large size class.
    pub fn with_limits(small: usize, large_bytes: usize) -> BufPool {
        BufPool {
            small: Vec::new(),
            large: Default::default(),
            keep_small: small,
            keep_large_bytes: large_bytes,
        }
    }

    /// A buffer of `len` bytes: a pooled one when there is one, else a new one.
    pub fn take(&mut self, len: usize) -> DataBuf {
        let pooled = if len <= SMALL_BUF {
            self.small.pop().ok_or(SMALL_BUF)
        } else {
            match large_class(len) {
                Some((class, size)) => self.large[class].pop().ok_or(size),
                None => return DataBuf::zeroed(len),
            }
        };
        match pooled {
            Ok(mut b) => {
                b.resize(len);
                b
            }
            Err(SMALL_BUF) => DataBuf::reuse(Vec::with_capacity(SMALL_BUF), len),
            Err(size) => DataBuf::reuse(vec![0; size], len),
        }
    }

    /// Return a buffer: kept while the pool is under its limit of small buffers or of bytes
    /// in the buffer's size class, else freed.
    pub fn give(&mut self, buf: DataBuf) {
        let cap = buf.capacity();
        if cap <= SMALL_BUF {
            if self.small.len() < self.keep_small {
                self.small.push(buf);
            }
            return;
        }
        // Only buffers of a class's exact size go back into it.
        if let Some((class, size)) = large_class(cap) {
            let list = &mut self.large[class];
            if size == cap && (list.len() + 1) * size <= self.keep_large_bytes {
                list.push(buf);
            }
        }
    }

    /// Buffers currently pooled.
    pub fn pooled(&self) -> usize {
        self.small.len() + self.large.iter().map(Vec::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // 64 KiB is another class than 128 KiB: a new buffer, the 128 KiB one stays.
        let d = p.take(64 * 1024);
        assert_eq!(d.len(), 64 * 1024);
        assert_eq!(p.pooled(), 1);
        // 100 KiB reuses the 128 KiB buffer.
        let e = p.take(100 * 1024);
        assert_eq!(
            (e.len(), e.clone().into_vec().len()),
            (100 * 1024, 128 * 1024)
        );
        assert_eq!(p.pooled(), 0);
        p.give(c);
        p.give(d);
        p.give(e);
        assert_eq!(p.pooled(), 3);
        // A buffer of no class's size (not from the pool) is not kept.
        p.give(DataBuf::zeroed(100 * 1024));
        assert_eq!(p.pooled(), 3);
    }

    #[test]
    fn large_pool_is_bounded() {
        let mut p = BufPool::default();
        let bufs: Vec<_> = (0..LARGE_POOL_BYTES / (1 << 20) + 2)
            .map(|_| p.take(1 << 20))
            .collect();
        for b in bufs {
            p.give(b);
        }
        assert_eq!(p.pooled(), LARGE_POOL_BYTES / (1 << 20));
        // Another class has its own bound.
        let small_class: Vec<_> = (0..3).map(|_| p.take(128 << 10)).collect();
        for b in small_class {
            p.give(b);
        }
        assert_eq!(p.pooled(), LARGE_POOL_BYTES / (1 << 20) + 3);
    }

    #[test]
    fn limits_bound_what_a_pool_keeps() {
        let mut p = BufPool::with_limits(2, 256 << 10);
        let small: Vec<_> = (0..3).map(|_| p.take(4096)).collect();
        let large: Vec<_> = (0..3).map(|_| p.take(128 << 10)).collect();
        for b in small.into_iter().chain(large) {
            p.give(b);
        }
        assert_eq!(p.pooled(), 2 + 2);
    }

    #[test]
    fn a_reused_buffer_keeps_its_allocation() {
        let mut p = BufPool::default();
        let mut a = p.take(4096);
        a.as_mut_slice().fill(7);
        let ptr = a.as_slice().as_ptr();
        p.give(a);
        // Smaller, then larger within the allocation: the same memory, valid length only.
        let b = p.take(512);
        assert_eq!((b.as_slice().as_ptr(), b.len()), (ptr, 512));
        p.give(b);
        let c = p.take(SMALL_BUF);
        assert_eq!((c.as_slice().as_ptr(), c.len()), (ptr, SMALL_BUF));
        assert_eq!(c.capacity(), SMALL_BUF);
    }

    #[test]
    fn detached_buffers_come_back_with_their_bytes() {
        let mut p = BufPool::default();
        let mut a = p.take(8192);
        a.as_mut_slice().fill(3);
        let ptr = a.as_slice().as_ptr();
        let (mut vec, reg) = a.detach();
        vec.truncate(4096);
        let b = reg.attach(vec, 4096);
        assert_eq!((b.as_slice().as_ptr(), b.len()), (ptr, 4096));
        assert!(b.as_slice().iter().all(|&x| x == 3));
        // A copy compares equal by its bytes.
        assert_eq!(b.clone(), b);
    }
}
