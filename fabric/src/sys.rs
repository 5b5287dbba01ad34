//! The syscall seam: the crate's only `unsafe`. Everything here wraps one system call whose
//! safe equivalent would cost a copy or a memset on the data path.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use bytes::BytesMut;

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
