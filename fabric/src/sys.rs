//! The syscall seam: the crate's only `unsafe`. Everything here wraps one system call whose
//! safe equivalent would cost a copy or a memset on the data path, or reaches lent device
//! memory ([`Lent`]), which is never made a slice.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use bytes::BytesMut;

use crate::lent::Lent;

pub mod rdma;
pub mod tls;

/// Most chunks one [`send_chunks`] hands the kernel.
pub const MAX_CHUNKS: usize = 64;

/// Bytes to send: borrowed memory, or `start..end` of lent device memory.
#[derive(Clone, Copy)]
pub enum Chunk<'a> {
    Bytes(&'a [u8]),
    Lent {
        lent: &'a Lent,
        start: usize,
        end: usize,
    },
}

impl Chunk<'_> {
    /// Bytes it sends (a lent range past the lent memory's end sends nothing).
    pub fn len(&self) -> usize {
        match *self {
            Chunk::Bytes(b) => b.len(),
            Chunk::Lent { lent, start, end } if start <= end && end <= lent.len() => end - start,
            Chunk::Lent { .. } => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One nonblocking vectored send of the first [`MAX_CHUNKS`] chunks; returns the bytes the
/// kernel took.
pub fn send_chunks(fd: BorrowedFd<'_>, chunks: &[Chunk<'_>]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_CHUNKS];
    let mut n = 0;
    for (slot, c) in iov.iter_mut().zip(chunks) {
        let base = match *c {
            Chunk::Bytes(b) => b.as_ptr() as usize,
            Chunk::Lent { lent, start, .. } => lent.addr() + start,
        };
        // A lent range past the end was cut to nothing by `len`.
        *slot = libc::iovec {
            iov_base: base as *mut libc::c_void,
            iov_len: c.len(),
        };
        n += 1;
    }
    // SAFETY: an all-zero msghdr is a valid empty message; the fields used are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n as _;
    // SAFETY: every iovec describes readable memory for the duration of the call: borrowed
    // slices (alive while `chunks` is borrowed), or bytes inside a lent region, which its
    // home keeps mapped, and no device writes, while the `Lent` lives (the `LentHome`
    // contract); ranges were cut to the lent length. sendmsg(2) only reads them.
    let sent = unsafe {
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Receive (nonblocking) into `len` bytes of lent memory at `off` and then into the spare
/// capacity of `buf`, in one system call: the data of a PDU lands in the lent memory, what
/// follows it in the buffer. Returns the bytes that went to each; `(0, 0)` means the peer
/// closed the stream.
pub fn recv_split(
    fd: BorrowedFd<'_>,
    lent: &Lent,
    off: usize,
    len: usize,
    buf: &mut BytesMut,
) -> io::Result<(usize, usize)> {
    if !inside(lent, off, len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "receive range outside the lent memory",
        ));
    }
    let spare = buf.spare_capacity_mut();
    let mut iov = [
        libc::iovec {
            iov_base: (lent.addr() + off) as *mut libc::c_void,
            iov_len: len,
        },
        libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is a valid empty message; the fields used are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: the first iovec lies inside the lent region (checked above), which stays mapped
    // while the `Lent` lives and which no device touches before the transport hands it on
    // (the `LentHome` contract); the second is `buf`'s spare capacity, owned by `buf` for the
    // call. recvmsg(2) writes at most their lengths into them and nothing else.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    let direct = n.min(len);
    // SAFETY: recvmsg(2) filled the iovecs in order, so the bytes past `len` (fewer than the
    // spare capacity) are initialized at the start of the spare capacity.
    unsafe { buf.set_len(buf.len() + (n - direct)) };
    Ok((direct, n - direct))
}

/// Whether `off..off + n` lies inside `lent`.
fn inside(lent: &Lent, off: usize, n: usize) -> bool {
    off.checked_add(n).is_some_and(|end| end <= lent.len())
}

/// Copy bytes out of lent memory at `off`; `false` (nothing copied) when out of range.
pub fn copy_from_lent(lent: &Lent, off: usize, dst: &mut [u8]) -> bool {
    if !inside(lent, off, dst.len()) {
        return false;
    }
    // SAFETY: the range is inside the lent region (checked above), which stays mapped and is
    // not written by a device while the `Lent` lives (the `LentHome` contract); `dst` is a
    // distinct Rust buffer, so the regions do not overlap. No reference into the lent memory
    // is made: the bytes are copied through raw pointers.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (lent.addr() + off) as *const u8,
            dst.as_mut_ptr(),
            dst.len(),
        );
    }
    true
}

/// Copy `src` into lent memory at `off`; `false` (nothing copied) when out of range.
pub fn copy_to_lent(lent: &Lent, off: usize, src: &[u8]) -> bool {
    if !inside(lent, off, src.len()) {
        return false;
    }
    // SAFETY: as in `copy_from_lent`; the lent memory is the transport's to fill until it
    // hands the `Lent` on (no device reads or writes it before the command is started).
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), (lent.addr() + off) as *mut u8, src.len());
    }
    true
}

/// CRC32C continued from `crc` over `start..end` of lent memory (a data digest), copied
/// through a stack buffer a page at a time.
pub fn crc32c_lent(mut crc: u32, lent: &Lent, start: usize, end: usize) -> u32 {
    let mut page = [0u8; 4096];
    let mut at = start;
    while at < end {
        let n = page.len().min(end - at);
        if !copy_from_lent(lent, at, &mut page[..n]) {
            break;
        }
        crc = crc32c::crc32c_append(crc, &page[..n]);
        at += n;
    }
    crc
}

/// Receive into the spare capacity of `buf` without initializing it first (a nonblocking
/// `recv(2)`), appending what arrived. `Ok(0)` means the peer closed the stream; callers
/// make sure `buf` has spare capacity before calling.
pub fn recv_into_spare(fd: BorrowedFd<'_>, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    if spare.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "receive buffer has no spare capacity",
        ));
    }
    // SAFETY: `spare` is writable memory owned by `buf`, valid for `spare.len()` bytes for the
    // duration of the call; recv(2) writes at most that many bytes into it and nothing else.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: recv(2) returned `n`, so it initialized the first `n` bytes of the spare
    // capacity (n <= spare.len()); extending the length over them exposes only written bytes.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn receives_appended_bytes_and_reports_would_block_and_eof() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut buf = BytesMut::with_capacity(8);
        buf.extend_from_slice(b"xy");
        a.write_all(b"hello").unwrap();
        assert_eq!(recv_into_spare(b.as_fd(), &mut buf).unwrap(), 5);
        assert_eq!(&buf[..], b"xyhello");
        let e = recv_into_spare(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(recv_into_spare(b.as_fd(), &mut buf).unwrap(), 0);
        let mut full = BytesMut::new();
        assert!(recv_into_spare(b.as_fd(), &mut full).is_err());
    }
}
