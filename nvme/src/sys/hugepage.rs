//! DMA memory for a VFIO device: anonymous 2 MiB hugepages, populated and locked, mapped into
//! the device's IOMMU domain at a caller-chosen I/O virtual address.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use crate::driver::dma::{check_bounds, DmaError, DmaRegion};
use crate::driver::vfio_setup::{hugepages_for, HUGEPAGE_2M};

use super::vfio::{
    Container, DmaMap, DmaUnmap, VfioError, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE,
};

/// Hugepage memory registered with the IOMMU. Never exposed as a slice: the device writes it
/// concurrently. Reads are volatile and followed by an acquire fence, writes are preceded by a
/// release fence and volatile (the contract in [`crate::driver::dma`]).
#[derive(Debug)]
pub struct HugeDma {
    mem: Volatile,
    iova: u64,
    /// The IOMMU domain the memory is mapped in; it must outlive the mapping.
    container: Arc<Container>,
}

impl HugeDma {
    pub(super) fn map(
        container: Arc<Container>,
        len: usize,
        iova: u64,
    ) -> Result<HugeDma, VfioError> {
        let pages = hugepages_for(len.max(1));
        let len = pages * HUGEPAGE_2M;
        // SAFETY: a fresh anonymous mapping chosen by the kernel (addr NULL, fd -1); it
        // overlaps no Rust object and is unmapped only in Drop (or below on failure).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_HUGETLB
                    | libc::MAP_HUGE_2MB
                    | libc::MAP_POPULATE
                    | libc::MAP_LOCKED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ENOMEM) {
                VfioError::Hugepages { bytes: len, pages }
            } else {
                VfioError::Mmap {
                    what: "hugepage DMA memory",
                    source: e,
                }
            });
        }
        let Some(base) = NonNull::new(p.cast::<u8>()) else {
            // Only possible with mmap_min_addr 0; a NULL base cannot be used as a pointer.
            // SAFETY: `p`/`len` is the mapping made above, shared with nothing.
            unsafe { libc::munmap(p, len) };
            return Err(VfioError::Mmap {
                what: "hugepage DMA memory (mapped at address 0)",
                source: io::Error::from(io::ErrorKind::AddrNotAvailable),
            });
        };
        // From here on, Drop of `mem` unmaps the memory.
        let mem = Volatile { base, len };
        let mut map = DmaMap {
            argsz: size_of::<DmaMap>() as u32,
            flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            vaddr: p as u64,
            iova,
            size: len as u64,
        };
        container
            .map_dma(&mut map)
            .map_err(|source| VfioError::MapDma {
                iova,
                size: len,
                source,
            })?;
        Ok(HugeDma {
            mem,
            iova,
            container,
        })
    }
}

impl DmaRegion for HugeDma {
    fn iova(&self) -> u64 {
        self.iova
    }
    fn len(&self) -> usize {
        self.mem.len
    }
    fn read_bytes(&self, off: usize, dst: &mut [u8]) -> Result<(), DmaError> {
        self.mem.read_bytes(off, dst)
    }
    fn write_bytes(&self, off: usize, src: &[u8]) -> Result<(), DmaError> {
        self.mem.write_bytes(off, src)
    }
    fn addr(&self) -> Option<usize> {
        // Mapped until drop, at a fixed address.
        Some(self.mem.base.as_ptr() as usize)
    }
    fn read_u16(&self, off: usize) -> Result<u16, DmaError> {
        self.mem.read_u16(off)
    }
    fn read_u32(&self, off: usize) -> Result<u32, DmaError> {
        self.mem.read_u32(off)
    }
    fn write_u32(&self, off: usize, v: u32) -> Result<(), DmaError> {
        self.mem.write_u32(off, v)
    }
}

impl Drop for HugeDma {
    fn drop(&mut self) {
        let mut unmap = DmaUnmap {
            argsz: size_of::<DmaUnmap>() as u32,
            flags: 0,
            iova: self.iova,
            size: self.mem.len as u64,
        };
        // The memory itself is unmapped when `mem` drops, after this.
        if let Err(e) = self.container.unmap_dma(&mut unmap) {
            tracing::warn!(iova = self.iova, error = %e, "VFIO_IOMMU_UNMAP_DMA failed");
        }
    }
}

/// A mmap'd region accessed only through volatile loads and stores with the fences of the DMA
/// ordering contract; munmapped on drop.
#[derive(Debug)]
struct Volatile {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value until Drop; all access goes through raw-pointer
// volatile loads/stores (no references into it), so concurrent use from several threads has the
// same meaning as concurrent device DMA, which the callers' queue protocol orders.
unsafe impl Send for Volatile {}
// SAFETY: see `Send`.
unsafe impl Sync for Volatile {}

impl Volatile {
    /// Address of byte `off`; the caller has bounds-checked `off..off + n`.
    fn at(&self, off: usize) -> *mut u8 {
        // SAFETY: callers pass offsets that check_bounds accepted, so the result lies within
        // (or one past the end of) the mapping.
        unsafe { self.base.as_ptr().add(off) }
    }

    fn read_bytes(&self, off: usize, dst: &mut [u8]) -> Result<(), DmaError> {
        check_bounds(off, dst.len(), self.len)?;
        let src = self.at(off);
        let mut i = 0;
        // Byte loads up to 8-byte alignment, then qword loads, then the tail.
        while i < dst.len() && !(src as usize + i).is_multiple_of(8) {
            // SAFETY: `off + i < off + dst.len() <= len`: inside the mapping.
            dst[i] = unsafe { src.add(i).read_volatile() };
            i += 1;
        }
        while i + 8 <= dst.len() {
            // SAFETY: 8-byte aligned (loop above) and `off + i + 8 <= len`.
            let q = unsafe { src.add(i).cast::<u64>().read_volatile() };
            dst[i..i + 8].copy_from_slice(&q.to_ne_bytes());
            i += 8;
        }
        while i < dst.len() {
            // SAFETY: `off + i < len`.
            dst[i] = unsafe { src.add(i).read_volatile() };
            i += 1;
        }
        fence(Ordering::Acquire);
        Ok(())
    }

    fn write_bytes(&self, off: usize, src: &[u8]) -> Result<(), DmaError> {
        check_bounds(off, src.len(), self.len)?;
        fence(Ordering::Release);
        let dst = self.at(off);
        let mut i = 0;
        while i < src.len() && !(dst as usize + i).is_multiple_of(8) {
            // SAFETY: `off + i < off + src.len() <= len`: inside the mapping.
            unsafe { dst.add(i).write_volatile(src[i]) };
            i += 1;
        }
        while i + 8 <= src.len() {
            let mut q = [0u8; 8];
            q.copy_from_slice(&src[i..i + 8]);
            // SAFETY: 8-byte aligned (loop above) and `off + i + 8 <= len`.
            unsafe {
                dst.add(i)
                    .cast::<u64>()
                    .write_volatile(u64::from_ne_bytes(q))
            };
            i += 8;
        }
        while i < src.len() {
            // SAFETY: `off + i < len`.
            unsafe { dst.add(i).write_volatile(src[i]) };
            i += 1;
        }
        Ok(())
    }

    /// One volatile load when aligned (a CQE's status/phase word must not tear), then acquire.
    fn read_u16(&self, off: usize) -> Result<u16, DmaError> {
        check_bounds(off, 2, self.len)?;
        if !off.is_multiple_of(2) {
            let mut b = [0u8; 2];
            self.read_bytes(off, &mut b)?;
            return Ok(u16::from_le_bytes(b));
        }
        // SAFETY: `off + 2 <= len` and the base is page aligned, so the u16 is aligned.
        let v = unsafe { self.at(off).cast::<u16>().read_volatile() };
        fence(Ordering::Acquire);
        Ok(u16::from_le(v))
    }

    fn read_u32(&self, off: usize) -> Result<u32, DmaError> {
        check_bounds(off, 4, self.len)?;
        if !off.is_multiple_of(4) {
            let mut b = [0u8; 4];
            self.read_bytes(off, &mut b)?;
            return Ok(u32::from_le_bytes(b));
        }
        // SAFETY: `off + 4 <= len` and the base is page aligned, so the u32 is aligned.
        let v = unsafe { self.at(off).cast::<u32>().read_volatile() };
        fence(Ordering::Acquire);
        Ok(u32::from_le(v))
    }

    fn write_u32(&self, off: usize, v: u32) -> Result<(), DmaError> {
        check_bounds(off, 4, self.len)?;
        if !off.is_multiple_of(4) {
            return self.write_bytes(off, &v.to_le_bytes());
        }
        fence(Ordering::Release);
        // SAFETY: `off + 4 <= len` and the base is page aligned, so the u32 is aligned.
        unsafe { self.at(off).cast::<u32>().write_volatile(v.to_le()) };
        Ok(())
    }
}

impl Drop for Volatile {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly one mapping made by mmap, and no pointer into it
        // outlives `self` (accessors never hand one out).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accessors over ordinary (not huge) anonymous memory, which needs no VFIO.
    fn anon(len: usize) -> Volatile {
        // SAFETY: a fresh private anonymous mapping chosen by the kernel; Volatile owns it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Volatile {
            base: NonNull::new(p.cast()).unwrap(),
            len,
        }
    }

    #[test]
    fn unaligned_copies_round_trip_at_every_offset_and_length() {
        let m = anon(4096);
        let pattern: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for off in 0..17 {
            for n in 0..40 {
                m.write_bytes(0, &[0u8; 64]).unwrap();
                m.write_bytes(off, &pattern[..n]).unwrap();
                let mut all = [0xffu8; 64];
                m.read_bytes(0, &mut all).unwrap();
                assert!(all[..off].iter().all(|&b| b == 0), "off {off} n {n}");
                assert_eq!(&all[off..off + n], &pattern[..n], "off {off} n {n}");
                assert!(all[off + n..].iter().all(|&b| b == 0), "off {off} n {n}");
                let mut part = vec![0u8; n];
                m.read_bytes(off, &mut part).unwrap();
                assert_eq!(part, &pattern[..n]);
            }
        }
    }

    #[test]
    fn words_are_little_endian_aligned_or_not() {
        let m = anon(4096);
        m.write_u32(8, 0x1122_3344).unwrap();
        m.write_u32(13, 0xa1b2_c3d4).unwrap();
        let mut b = [0u8; 10];
        m.read_bytes(8, &mut b).unwrap();
        assert_eq!(b, [0x44, 0x33, 0x22, 0x11, 0, 0xd4, 0xc3, 0xb2, 0xa1, 0]);
        assert_eq!(m.read_u32(8).unwrap(), 0x1122_3344);
        assert_eq!(m.read_u32(13).unwrap(), 0xa1b2_c3d4);
        assert_eq!(m.read_u16(10).unwrap(), 0x1122);
        assert_eq!(m.read_u16(15).unwrap(), 0xa1b2);
    }

    #[test]
    fn out_of_bounds_is_an_error() {
        let m = anon(4096);
        assert_eq!(
            m.write_u32(4094, 1),
            Err(DmaError::OutOfBounds {
                off: 4094,
                len: 4,
                region: 4096
            })
        );
        assert!(m.read_u16(4095).is_err());
        assert!(m.read_u32(usize::MAX - 1).is_err());
        assert!(m.read_bytes(4000, &mut [0u8; 97]).is_err());
        assert!(m.write_bytes(4097, &[]).is_err());
        m.write_bytes(4096, &[]).unwrap();
        assert_eq!(m.read_u16(4094).unwrap(), 0);
    }
}
