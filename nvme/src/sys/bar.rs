//! BAR0 of a VFIO device mapped into the process: the NVMe controller registers and doorbells
//! (NVMe Base 2.0 §3.1.4) accessed with volatile 32-bit loads and stores.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use crate::driver::regs::{Mmio, DOORBELL_BASE};

use super::vfio::{
    RegionInfo, VfioError, VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

/// Smallest usable BAR0: the registers plus the admin queue's two doorbells at the minimum
/// stride (NVMe Base 2.0 §3.1.4.21-22).
pub const BAR0_MIN_LEN: u64 = DOORBELL_BASE as u64 + 8;

/// A shared mapping of BAR0. Accesses outside the mapping or misaligned ones are driver bugs
/// that must not become wild pointers: writes are dropped and reads return all ones (what a
/// PCIe read of a vanished device returns), both with a debug log.
#[derive(Debug)]
pub struct BarMmio {
    base: NonNull<u8>,
    len: usize,
    /// The device file the mapping came from, kept open as long as the mapping.
    _device: Arc<File>,
}

// SAFETY: `base` points to device memory mapped MAP_SHARED for the life of the value; every
// access through it is a single volatile load or store of an aligned u32 with no Rust-level
// aliasing (no references are created), so using it from several threads is no different
// from several CPUs touching the registers, which the device arbitrates.
unsafe impl Send for BarMmio {}
// SAFETY: see `Send`: `&self` methods only do independent volatile register accesses.
unsafe impl Sync for BarMmio {}

impl BarMmio {
    pub(super) fn map(
        pci: &str,
        device: Arc<File>,
        info: RegionInfo,
    ) -> Result<BarMmio, VfioError> {
        let bad = |why: String| VfioError::Bar0 {
            pci: pci.to_string(),
            why,
        };
        let need =
            VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
        if info.flags & need != need {
            return Err(bad(format!(
                "region flags {:#x} lack read/write/mmap",
                info.flags
            )));
        }
        if info.size < BAR0_MIN_LEN {
            return Err(bad(format!(
                "{:#x} bytes, smaller than the registers and admin doorbells ({BAR0_MIN_LEN:#x})",
                info.size
            )));
        }
        let len = usize::try_from(info.size).map_err(|_| bad("too large".into()))?;
        let offset =
            libc::off_t::try_from(info.offset).map_err(|_| bad("offset too large".into()))?;
        // SAFETY: a fresh shared mapping chosen by the kernel (addr NULL) of a VFIO device
        // region whose size and file offset VFIO_DEVICE_GET_REGION_INFO reported; it overlaps
        // no Rust object and is unmapped only in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                device.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            let source = io::Error::last_os_error();
            if source.raw_os_error() == Some(libc::EINVAL)
                && info.flags & VFIO_REGION_INFO_FLAG_CAPS != 0
            {
                // vfio-pci refuses to map the MSI-X table inside BAR0 unless interrupts are
                // remapped; it then lists only the mappable parts (sparse mmap).
                return Err(bad(format!(
                    "mmap of the whole BAR refused ({source}): the MSI-X table in BAR0 is only \
                     mappable with interrupt remapping — enable it (intel_iommu=on with VT-d \
                     interrupt remapping, or AMD-Vi)"
                )));
            }
            return Err(VfioError::Mmap {
                what: "BAR0",
                source,
            });
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| bad("mapped at NULL".into()))?;
        Ok(BarMmio {
            base,
            len,
            _device: device,
        })
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A pointer to the aligned dword at `offset`, or `None` (logged) if out of range.
    fn dword(&self, offset: usize, what: &str) -> Option<*mut u32> {
        let ok = offset.is_multiple_of(4) && offset.checked_add(4).is_some_and(|e| e <= self.len);
        if !ok {
            tracing::debug!(
                offset,
                len = self.len,
                what,
                "BAR0 access out of range or misaligned"
            );
            return None;
        }
        // SAFETY: `offset + 4 <= len`, so the result stays inside the mapping.
        Some(unsafe { self.base.as_ptr().add(offset) }.cast::<u32>())
    }
}

impl Mmio for BarMmio {
    fn read32(&self, offset: usize) -> u32 {
        match self.dword(offset, "read32") {
            // SAFETY: `p` is an aligned dword inside the live mapping (checked by `dword`).
            Some(p) => u32::from_le(unsafe { p.read_volatile() }),
            None => u32::MAX,
        }
    }

    fn write32(&self, offset: usize, value: u32) {
        if let Some(p) = self.dword(offset, "write32") {
            // Earlier DMA-memory stores (an SQE) become visible before this doorbell store; see
            // the ordering contract in crate::driver::dma.
            fence(Ordering::Release);
            // SAFETY: `p` is an aligned dword inside the live mapping (checked by `dword`).
            unsafe { p.write_volatile(value.to_le()) };
        }
    }

    /// Two dword reads, low then high: NVMe Base 2.0 §3.1.4 allows 64-bit registers to be
    /// accessed as two 32-bit accesses.
    fn read64(&self, offset: usize) -> u64 {
        if !offset.is_multiple_of(8) {
            tracing::debug!(offset, "misaligned BAR0 read64");
            return u64::MAX;
        }
        let lo = self.read32(offset) as u64;
        let hi = self.read32(offset.wrapping_add(4)) as u64;
        lo | (hi << 32)
    }

    /// Two dword writes, low then high (see [`Self::read64`]).
    fn write64(&self, offset: usize, value: u64) {
        if !offset.is_multiple_of(8) || offset.checked_add(8).is_none_or(|e| e > self.len) {
            tracing::debug!(
                offset,
                len = self.len,
                "BAR0 write64 out of range or misaligned"
            );
            return;
        }
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }
}

impl Drop for BarMmio {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping created in `map`, and no pointer into it
        // outlives `self` (accessors never hand one out).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::regs::{CAP, CC, VS};

    const RWM: u32 =
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;

    /// A "BAR" backed by a shared mapping of /dev/zero, which needs no device.
    fn bar(flags: u32, size: u64) -> Result<BarMmio, VfioError> {
        let zero = File::options()
            .read(true)
            .write(true)
            .open("/dev/zero")
            .unwrap();
        let info = RegionInfo {
            flags,
            size,
            ..RegionInfo::default()
        };
        BarMmio::map("0000:00:04.0", Arc::new(zero), info)
    }

    #[test]
    fn dwords_and_qwords_round_trip() {
        let b = bar(RWM, 0x2000).unwrap();
        assert_eq!(b.len(), 0x2000);
        b.write32(VS as usize, 0x0001_0400);
        assert_eq!(b.read32(VS as usize), 0x0001_0400);
        b.write64(CAP as usize, 0x0000_0020_0f01_07ff);
        assert_eq!(b.read64(CAP as usize), 0x0000_0020_0f01_07ff);
        assert_eq!(b.read32(CAP as usize), 0x0f01_07ff);
        assert_eq!(b.read32(CAP as usize + 4), 0x20);
        b.write32(0x1ffc, 7);
        assert_eq!(b.read32(0x1ffc), 7);
    }

    #[test]
    fn bad_accesses_are_dropped_or_read_all_ones() {
        let b = bar(RWM, 0x2000).unwrap();
        b.write32(CC as usize, 0x46_0001);
        b.write32(0x2000, 1);
        b.write32(CC as usize + 1, 0xdead_beef);
        b.write64(0x1ffc, u64::MAX);
        b.write64(0x1ff8 + 8, u64::MAX);
        assert_eq!(b.read32(CC as usize), 0x46_0001);
        assert_eq!(b.read32(0x1ff8), 0);
        assert_eq!(b.read32(0x1ffc), 0);
        assert_eq!(b.read32(0x2000), u32::MAX);
        assert_eq!(b.read32(usize::MAX - 3), u32::MAX);
        assert_eq!(b.read32(2), u32::MAX);
        assert_eq!(b.read64(4), u64::MAX);
        assert_eq!(b.read64(0x1ff8), 0);
    }

    #[test]
    fn unusable_regions_are_refused() {
        let e = bar(
            VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
            0x4000,
        )
        .unwrap_err();
        assert!(e.to_string().contains("lack read/write/mmap"), "{e}");
        let e = bar(RWM, 0x1004).unwrap_err();
        assert!(e.to_string().contains("smaller than the registers"), "{e}");
        assert!(bar(RWM, BAR0_MIN_LEN).is_ok());
    }
}
