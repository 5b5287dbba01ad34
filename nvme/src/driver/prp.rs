//! Building a command's PRP1/PRP2 and PRP lists for a data buffer (NVMe Base 2.0 §4.3.1).
//!
//! The buffer is a list of physically contiguous IOVA segments. PRPs describe it page by page:
//! PRP1 may start at a dword-aligned offset into its page, every later entry names a whole page
//! from offset 0. One page needs PRP1 only, two pages PRP1 and PRP2, more pages make PRP2 point
//! to a PRP list; when a list page is full and more entries follow, its last entry points to the
//! next list page.

/// A memory page size as CC.MPS selects it: a power of two from 4 KiB to 128 MiB
/// (`2 ^ (12 + MPS)`, NVMe Base 2.0 §3.1.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageSize(u64);

impl PageSize {
    pub const MIN: PageSize = PageSize(4096);
    pub const MAX: PageSize = PageSize(1 << 27);

    pub const fn new(bytes: u64) -> Result<PageSize, PrpError> {
        if bytes.is_power_of_two() && bytes >= Self::MIN.0 && bytes <= Self::MAX.0 {
            Ok(PageSize(bytes))
        } else {
            Err(PrpError::InvalidPageSize(bytes))
        }
    }

    /// The page size for a CC.MPS value (0..=15).
    pub const fn from_mps(mps: u8) -> Result<PageSize, PrpError> {
        if mps <= 15 {
            Ok(PageSize(1 << (12 + mps as u32)))
        } else {
            Err(PrpError::InvalidMps(mps))
        }
    }

    /// The CC.MPS value selecting this size.
    pub const fn mps(self) -> u8 {
        (self.0.trailing_zeros() - 12) as u8
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// PRP entries that fit in one list page (8 bytes each).
    pub const fn entries_per_list(self) -> usize {
        (self.0 / 8) as usize
    }

    /// How many chained list pages `entries` PRP entries take: a page holds
    /// `entries_per_list` entries, or one fewer and the next page's address when more follow
    /// (NVMe Base 2.0 §4.3.1).
    pub const fn list_pages(self, entries: usize) -> usize {
        let per = self.entries_per_list();
        if entries == 0 {
            0
        } else if entries <= per {
            1
        } else {
            (entries - 1).div_ceil(per - 1)
        }
    }

    /// The entries list page `k` of [`PageSize::list_pages`]`(entries)` holds, and whether it
    /// ends with the next page's address.
    fn list_span(self, entries: usize, k: usize) -> (std::ops::Range<usize>, bool) {
        let per = self.entries_per_list();
        let first = k * (per - 1);
        if k + 1 >= self.list_pages(entries) {
            (first..entries, false)
        } else {
            (first..first + per - 1, true)
        }
    }

    const fn offset(self, addr: u64) -> u64 {
        addr & (self.0 - 1)
    }
}

/// Why a buffer cannot be given to a command as PRPs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrpError {
    #[error("memory page size {0:#x} is not a power of two in 4 KiB..=128 MiB")]
    InvalidPageSize(u64),
    #[error("CC.MPS value {0} is above 15")]
    InvalidMps(u8),
    #[error("empty transfer")]
    Empty,
    #[error("transfer of {len} bytes exceeds the limit of {max} bytes")]
    TooLong { len: u64, max: u64 },
    #[error("segment {index} is empty")]
    EmptySegment { index: usize },
    #[error("segment {index} ({iova:#x} + {len:#x}) wraps the address space")]
    AddressOverflow { index: usize, iova: u64, len: usize },
    #[error("first segment starts at {0:#x}, not dword aligned")]
    FirstNotDwordAligned(u64),
    #[error("segment {index} starts at {iova:#x}, not on a page boundary")]
    StartNotPageAligned { index: usize, iova: u64 },
    #[error("segment {index} ends at {end:#x}, not on a page boundary")]
    EndNotPageAligned { index: usize, end: u64 },
    /// The allocator returned a page that is not page aligned; `allocated` are the list pages
    /// it handed out for this build (that one included), which the caller takes back.
    #[error("list page {page:#x} from the allocator is not page aligned")]
    ListPageNotAligned { page: u64, allocated: Vec<u64> },
    /// The allocator ran dry; `allocated` are the list pages it handed out for this build,
    /// which the caller takes back.
    #[error("out of PRP list pages after {} pages", allocated.len())]
    OutOfListPages { allocated: Vec<u64> },
}

impl PrpError {
    /// Whether the buffer's layout is the problem (PRPs cannot describe it but an SGL could),
    /// as opposed to its size, the page size, or list page allocation.
    pub fn needs_sgl(&self) -> bool {
        matches!(
            self,
            PrpError::FirstNotDwordAligned(_)
                | PrpError::StartNotPageAligned { .. }
                | PrpError::EndNotPageAligned { .. }
        )
    }
}

/// PRP1/PRP2 for a command, and the PRP list pages the caller writes before submitting it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prps {
    /// The first data page, possibly at an offset.
    pub prp1: u64,
    /// 0 (one page), the second data page (two pages), or the first PRP list page.
    pub prp2: u64,
    /// Each list page's IOVA and the little-endian `u64` entries to write from its start, in
    /// chain order. Empty unless more than two pages are transferred.
    pub lists: Vec<(u64, Vec<u64>)>,
}

/// Builds the PRPs for `segments` (`(iova, len)` pairs in transfer order) with memory pages of
/// `page_size` and a transfer limit of `max_transfer` bytes (MDTS in bytes; `u64::MAX` when the
/// controller reports no limit). `alloc_list_page` returns a free page-aligned, page-sized list
/// page per call, or `None` when there is none.
pub fn build_prps(
    page_size: PageSize,
    segments: &[(u64, usize)],
    max_transfer: u64,
    alloc_list_page: &mut dyn FnMut() -> Option<u64>,
) -> Result<Prps, PrpError> {
    let pages = data_pages(page_size, segments, max_transfer)?;
    match pages.as_slice() {
        [] => Err(PrpError::Empty),
        [first] => Ok(Prps {
            prp1: *first,
            ..Prps::default()
        }),
        [first, second] => Ok(Prps {
            prp1: *first,
            prp2: *second,
            lists: Vec::new(),
        }),
        [first, rest @ ..] => {
            let lists = build_lists(page_size, rest, alloc_list_page)?;
            Ok(Prps {
                prp1: *first,
                prp2: lists[0].0,
                lists,
            })
        }
    }
}

/// The PRP entry for every data page, validating the segments (NVMe Base 2.0 §4.3.1).
fn data_pages(
    page_size: PageSize,
    segments: &[(u64, usize)],
    max_transfer: u64,
) -> Result<Vec<u64>, PrpError> {
    let mut total: u64 = 0;
    for (index, &(iova, len)) in segments.iter().enumerate() {
        if len == 0 {
            return Err(PrpError::EmptySegment { index });
        }
        let end = iova
            .checked_add(len as u64)
            .ok_or(PrpError::AddressOverflow { index, iova, len })?;
        if index == 0 && !iova.is_multiple_of(4) {
            // PRP1's offset must be dword aligned (bits 1:0 cleared).
            return Err(PrpError::FirstNotDwordAligned(iova));
        }
        if index > 0 && page_size.offset(iova) != 0 {
            // Every entry after PRP1 has offset 0.
            return Err(PrpError::StartNotPageAligned { index, iova });
        }
        if index + 1 < segments.len() && page_size.offset(end) != 0 {
            // A segment that ends mid-page would leave a hole before the next entry's page.
            return Err(PrpError::EndNotPageAligned { index, end });
        }
        total = total.saturating_add(len as u64);
    }
    if total == 0 {
        return Err(PrpError::Empty);
    }
    if total > max_transfer {
        return Err(PrpError::TooLong {
            len: total,
            max: max_transfer,
        });
    }
    let ps = page_size.bytes();
    let mut pages = Vec::with_capacity((total / ps + 2) as usize);
    for &(iova, len) in segments {
        let end = iova + len as u64;
        if pages.is_empty() {
            pages.push(iova);
        } else {
            pages.push(iova - page_size.offset(iova));
        }
        let mut page = iova - page_size.offset(iova) + ps;
        while page < end {
            pages.push(page);
            page += ps;
        }
    }
    Ok(pages)
}

/// Lays `entries` out over chained list pages ([`PageSize::list_span`]).
fn build_lists(
    page_size: PageSize,
    entries: &[u64],
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<Vec<(u64, Vec<u64>)>, PrpError> {
    let mut allocated = Vec::new();
    let mut take_page = |allocated: &mut Vec<u64>| -> Result<u64, PrpError> {
        match alloc() {
            Some(page) => {
                allocated.push(page);
                if page_size.offset(page) != 0 {
                    return Err(PrpError::ListPageNotAligned {
                        page,
                        allocated: std::mem::take(allocated),
                    });
                }
                Ok(page)
            }
            None => Err(PrpError::OutOfListPages {
                allocated: std::mem::take(allocated),
            }),
        }
    };
    let n = page_size.list_pages(entries.len());
    let mut pages = Vec::with_capacity(n);
    for _ in 0..n {
        pages.push(take_page(&mut allocated)?);
    }
    let lists = (0..n)
        .map(|k| {
            let (span, next) = page_size.list_span(entries.len(), k);
            let mut list = entries[span].to_vec();
            if next {
                list.push(pages[k + 1]);
            }
            (pages[k], list)
        })
        .collect();
    Ok(lists)
}

/// The PRPs of one contiguous buffer at a page-aligned IOVA (the driver's bounce buffers),
/// described without allocating: data page `j` is `iova + j × page size`, and the list pages,
/// when more than two data pages are transferred, are one contiguous run the caller provides,
/// laid out by the same rule as [`build_prps`]'s ([`PageSize::list_span`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contiguous {
    page_size: PageSize,
    iova: u64,
    pages: usize,
}

impl Contiguous {
    /// `len` bytes at `iova`, within `max_transfer`.
    pub fn new(
        page_size: PageSize,
        iova: u64,
        len: usize,
        max_transfer: u64,
    ) -> Result<Contiguous, PrpError> {
        if len == 0 {
            return Err(PrpError::Empty);
        }
        if len as u64 > max_transfer {
            return Err(PrpError::TooLong {
                len: len as u64,
                max: max_transfer,
            });
        }
        if page_size.offset(iova) != 0 {
            return Err(PrpError::StartNotPageAligned { index: 0, iova });
        }
        iova.checked_add(len as u64)
            .ok_or(PrpError::AddressOverflow {
                index: 0,
                iova,
                len,
            })?;
        Ok(Contiguous {
            page_size,
            iova,
            pages: (len as u64).div_ceil(page_size.bytes()) as usize,
        })
    }

    /// Entries in list pages: every data page after the first, when there are more than two.
    fn list_entries(&self) -> usize {
        if self.pages > 2 {
            self.pages - 1
        } else {
            0
        }
    }

    /// How many list pages the run must hold (0 for one or two data pages).
    pub fn list_pages(&self) -> usize {
        self.page_size.list_pages(self.list_entries())
    }

    /// PRP1 and PRP2, with the list run at `lists` (ignored without lists).
    pub fn prp1_prp2(&self, lists: u64) -> (u64, u64) {
        let second = match self.pages {
            1 => 0,
            2 => self.iova + self.page_size.bytes(),
            _ => lists,
        };
        (self.iova, second)
    }

    /// Fill `out` with the entries of list page `k` of the run at `lists`; returns how many.
    /// `out` holds at least `entries_per_list` entries.
    pub fn fill_list(&self, lists: u64, k: usize, out: &mut [u64]) -> usize {
        let ps = self.page_size.bytes();
        let (span, next) = self.page_size.list_span(self.list_entries(), k);
        let data = span.len();
        for (slot, entry) in out[..data].iter_mut().zip(span) {
            // List entry `entry` names data page entry + 1 (PRP1 has page 0).
            *slot = self.iova + (entry + 1) as u64 * ps;
        }
        if !next {
            return data;
        }
        out[data] = lists + (k as u64 + 1) * ps;
        data + 1
    }
}

#[cfg(test)]
mod tests;
