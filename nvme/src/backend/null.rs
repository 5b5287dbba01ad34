//! A backend that stores nothing: writes are discarded and reads return zeroes.
//!
//! It exists to measure the transport and command path without any storage cost, so it still
//! range-checks and length-checks every call exactly like a real backend would.
//!
//! This module also holds the geometry helpers the other backends share.

use super::{blocks_in, check_range, Backend, BackendError, BackendInfo};

/// Logical block sizes the backends accept (the LBA formats the target advertises).
pub const SUPPORTED_BLOCK_SIZES: [u32; 2] = [512, 4096];

/// Validate a backend's geometry and return its capacity in blocks.
///
/// `block_size` must be one of [`SUPPORTED_BLOCK_SIZES`]; `size_bytes` must be non-zero and a
/// whole number of blocks.
pub fn check_geometry(size_bytes: u64, block_size: u32) -> Result<u64, BackendError> {
    if !SUPPORTED_BLOCK_SIZES.contains(&block_size) {
        return Err(invalid_input(format!(
            "block size {block_size} is not one of {SUPPORTED_BLOCK_SIZES:?}"
        )));
    }
    if size_bytes == 0 {
        return Err(invalid_input("backend size must not be zero".to_string()));
    }
    // Supported block sizes are powers of two.
    if size_bytes & (u64::from(block_size) - 1) != 0 {
        return Err(BackendError::Misaligned {
            len: usize::try_from(size_bytes).unwrap_or(usize::MAX),
            block_size,
        });
    }
    Ok(size_bytes / u64::from(block_size))
}

/// An `InvalidInput` I/O error for bad backend configuration.
pub(crate) fn invalid_input(msg: String) -> BackendError {
    BackendError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg))
}

/// Byte offset and byte length of `blocks` blocks at `lba`, after checking the range against
/// `capacity` blocks. Never overflows: an unrepresentable span is `OutOfRange`.
pub(crate) fn byte_span(
    lba: u64,
    blocks: u64,
    block_size: u32,
    capacity: u64,
) -> Result<(u64, u64), BackendError> {
    check_range(lba, blocks, capacity)?;
    let bs = u64::from(block_size);
    match (lba.checked_mul(bs), blocks.checked_mul(bs)) {
        (Some(offset), Some(len)) if offset.checked_add(len).is_some() => Ok((offset, len)),
        _ => Err(BackendError::OutOfRange {
            lba,
            blocks,
            capacity,
        }),
    }
}

/// Byte span of a buffer-carrying call: length check first (`Misaligned`), then range check.
pub(crate) fn buf_span(
    lba: u64,
    buf_len: usize,
    block_size: u32,
    capacity: u64,
) -> Result<(u64, u64), BackendError> {
    let blocks = blocks_in(buf_len, block_size)?;
    byte_span(lba, blocks, block_size, capacity)
}

/// Discards writes, reads zeroes.
#[derive(Debug)]
pub struct NullBackend {
    block_size: u32,
    num_blocks: u64,
}

impl NullBackend {
    /// A null namespace of `size_bytes` (a non-zero whole number of `block_size` blocks).
    pub fn new(size_bytes: u64, block_size: u32) -> Result<Self, BackendError> {
        let num_blocks = check_geometry(size_bytes, block_size)?;
        Ok(NullBackend {
            block_size,
            num_blocks,
        })
    }
}

impl Backend for NullBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            block_size: self.block_size,
            num_blocks: self.num_blocks,
            deallocated_reads_zero: true,
            volatile_write_cache: false,
        }
    }

    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        buf_span(lba, buf.len(), self.block_size, self.num_blocks)?;
        buf.fill(0);
        Ok(())
    }

    fn write(&self, lba: u64, data: &[u8], _fua: bool) -> Result<(), BackendError> {
        buf_span(lba, data.len(), self.block_size, self.num_blocks)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        byte_span(lba, blocks, self.block_size, self.num_blocks)?;
        Ok(())
    }

    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        byte_span(lba, blocks, self.block_size, self.num_blocks)?;
        Ok(())
    }

    fn may_block(&self) -> bool {
        false
    }

    fn read_shared(&self, lba: u64, len: usize) -> Option<bytes::Bytes> {
        buf_span(lba, len, self.block_size, self.num_blocks).ok()?;
        zeroes(len)
    }

    fn grown(&self, size_bytes: u64) -> Result<super::SharedBackend, BackendError> {
        super::grown_blocks(size_bytes, self.block_size, self.num_blocks)?;
        Ok(std::sync::Arc::new(NullBackend::new(
            size_bytes,
            self.block_size,
        )?))
    }
}

/// Largest read served from the shared zero page.
const ZEROES_LEN: usize = 1 << 20;

/// `len` zero bytes from one process-wide, never-freed buffer: a static `Bytes` needs no
/// reference count, so every reactor can hand it out without touching shared cache lines.
fn zeroes(len: usize) -> Option<bytes::Bytes> {
    static ZEROES: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    let all = ZEROES.get_or_init(|| Box::leak(vec![0u8; ZEROES_LEN].into_boxed_slice()));
    all.get(..len).map(bytes::Bytes::from_static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_reads_are_zeroes_and_range_checked() {
        let b = NullBackend::new(1 << 20, 512).unwrap();
        let z = b.read_shared(8, 4096).unwrap();
        assert_eq!(z.len(), 4096);
        assert!(z.iter().all(|&x| x == 0));
        assert!(b.read_shared(2047, 1024).is_none(), "past the end");
        assert!(b.read_shared(0, 100).is_none(), "not whole blocks");
    }

    #[test]
    fn geometry_is_validated() {
        assert_eq!(check_geometry(1 << 20, 512).unwrap(), 2048);
        assert_eq!(check_geometry(1 << 20, 4096).unwrap(), 256);
        assert!(matches!(
            check_geometry(1 << 20, 1024),
            Err(BackendError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidInput
        ));
        assert!(matches!(
            check_geometry(0, 512),
            Err(BackendError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidInput
        ));
        assert!(matches!(
            check_geometry(4096 + 512, 4096),
            Err(BackendError::Misaligned {
                len: 4608,
                block_size: 4096
            })
        ));
        assert!(NullBackend::new(1000, 512).is_err());
    }

    #[test]
    fn byte_span_never_overflows() {
        let cap = u64::MAX / 512;
        assert_eq!(
            byte_span(cap - 1, 1, 512, cap).unwrap(),
            ((cap - 1) * 512, 512)
        );
        assert!(matches!(
            byte_span(u64::MAX, 1, 512, u64::MAX),
            Err(BackendError::OutOfRange { .. })
        ));
        // In range by block count but not representable in bytes.
        assert!(matches!(
            byte_span(u64::MAX - 1, 1, 4096, u64::MAX),
            Err(BackendError::OutOfRange {
                lba,
                blocks: 1,
                capacity: u64::MAX
            }) if lba == u64::MAX - 1
        ));
    }

    #[test]
    fn reads_zero_and_discards_writes() {
        let b = NullBackend::new(1 << 20, 512).unwrap();
        assert_eq!(
            b.info(),
            BackendInfo {
                block_size: 512,
                num_blocks: 2048,
                deallocated_reads_zero: true,
                volatile_write_cache: false,
            }
        );
        assert!(!b.may_block());
        b.write(10, &[0xa5; 1024], true).unwrap();
        let mut buf = vec![0xffu8; 1024];
        b.read(10, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 0));
        b.flush().unwrap();
        b.write_zeroes(0, 2048).unwrap();
        b.deallocate(2047, 1).unwrap();
        // Zero-length calls at the end of the namespace are in range.
        b.read(2048, &mut []).unwrap();
    }

    #[test]
    fn range_and_length_errors() {
        let b = NullBackend::new(1 << 20, 4096).unwrap();
        let mut buf = vec![0u8; 4096];
        assert!(matches!(
            b.read(256, &mut buf),
            Err(BackendError::OutOfRange {
                lba: 256,
                blocks: 1,
                capacity: 256
            })
        ));
        assert!(matches!(
            b.write(255, &[0u8; 8192], false),
            Err(BackendError::OutOfRange {
                lba: 255,
                blocks: 2,
                capacity: 256
            })
        ));
        assert!(matches!(
            b.write(0, &[0u8; 512], false),
            Err(BackendError::Misaligned {
                len: 512,
                block_size: 4096
            })
        ));
        // Length is checked before range: a misaligned buffer at a bad LBA is Misaligned.
        assert!(matches!(
            b.read(u64::MAX, &mut [0u8; 100]),
            Err(BackendError::Misaligned { len: 100, .. })
        ));
        assert!(matches!(
            b.write_zeroes(u64::MAX, 2),
            Err(BackendError::OutOfRange { .. })
        ));
        assert!(matches!(
            b.deallocate(1, u64::MAX),
            Err(BackendError::OutOfRange { .. })
        ));
    }
}
