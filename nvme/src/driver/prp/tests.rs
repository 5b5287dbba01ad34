use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const PS: PageSize = PageSize::MIN;
const P: u64 = 4096;
const MDTS: u64 = 8 << 20;
/// List pages come from here, far from the data buffers.
const LIST_BASE: u64 = 0x7000_0000;

#[test]
fn contiguous_layout_matches_the_general_builder() {
    let data = 0x10_0000u64;
    for pages in [1usize, 2, 3, 4, 511, 512, 513, 514, 1023, 1024, 1025, 2048] {
        for tail in [0usize, 1, 512] {
            let len = (pages - 1) * P as usize + if tail == 0 { P as usize } else { tail };
            let c = Contiguous::new(PS, data, len, MDTS).unwrap();
            let general = build_prps(PS, &[(data, len)], MDTS, &mut pool(8)).unwrap();
            assert_eq!(c.list_pages(), general.lists.len(), "{pages} pages");
            assert_eq!(c.prp1_prp2(LIST_BASE), (general.prp1, general.prp2));
            let mut out = [0u64; 512];
            for (k, (page, entries)) in general.lists.iter().enumerate() {
                assert_eq!(*page, LIST_BASE + k as u64 * P);
                let n = c.fill_list(LIST_BASE, k, &mut out);
                assert_eq!(&out[..n], &entries[..], "{pages} pages, list {k}");
            }
        }
    }
}

#[test]
fn contiguous_refusals() {
    assert_eq!(Contiguous::new(PS, 0, 0, MDTS), Err(PrpError::Empty));
    assert_eq!(
        Contiguous::new(PS, 0, MDTS as usize + 1, MDTS),
        Err(PrpError::TooLong {
            len: MDTS + 1,
            max: MDTS
        })
    );
    assert_eq!(
        Contiguous::new(PS, 0x1004, 8, MDTS),
        Err(PrpError::StartNotPageAligned {
            index: 0,
            iova: 0x1004
        })
    );
    assert!(Contiguous::new(PS, u64::MAX - P + 1, 2 * P as usize, MDTS).is_err());
}

/// Hands out `n` list pages at LIST_BASE, LIST_BASE + P, ...
fn pool(n: usize) -> impl FnMut() -> Option<u64> {
    let mut next = 0;
    move || {
        (next < n).then(|| {
            next += 1;
            LIST_BASE + (next as u64 - 1) * P
        })
    }
}

fn build(segments: &[(u64, usize)]) -> Result<Prps, PrpError> {
    build_prps(PS, segments, MDTS, &mut pool(64))
}

/// Reads the PRPs as a controller does for a transfer of `len` bytes and returns the byte
/// ranges it would access, in order, merged where contiguous. Asserts the structural rules
/// on the way.
fn walk(page_size: PageSize, prps: &Prps, len: u64) -> Vec<(u64, u64)> {
    let ps = page_size.bytes();
    let per_page = page_size.entries_per_list();
    let lists: HashMap<u64, &Vec<u64>> = prps.lists.iter().map(|(a, e)| (*a, e)).collect();
    assert_eq!(lists.len(), prps.lists.len(), "list page used twice");
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut push = |start: u64, n: u64| match ranges.last_mut() {
        Some((s, l)) if *s + *l == start => *l += n,
        _ => ranges.push((start, n)),
    };
    assert_eq!(prps.prp1 % 4, 0);
    let first = len.min(ps - prps.prp1 % ps);
    push(prps.prp1, first);
    let mut remaining = len - first;
    if remaining == 0 {
        assert_eq!(prps.prp2, 0);
        assert!(prps.lists.is_empty());
        return ranges;
    }
    if remaining <= ps {
        assert_eq!(prps.prp2 % ps, 0);
        push(prps.prp2, remaining);
        assert!(prps.lists.is_empty());
        return ranges;
    }
    let mut list_addr = prps.prp2;
    let mut visited = 0;
    loop {
        assert_eq!(list_addr % ps, 0);
        let list = lists
            .get(&list_addr)
            .expect("PRP list pointer to an unknown page");
        assert_eq!(prps.lists[visited].0, list_addr, "lists out of chain order");
        visited += 1;
        assert!(list.len() <= per_page);
        let mut next = None;
        for (i, &entry) in list.iter().enumerate() {
            assert!(remaining > 0, "list entry past the end of the transfer");
            if i == per_page - 1 && remaining > ps {
                next = Some(entry);
                break;
            }
            assert_eq!(entry % ps, 0, "data entry with an offset");
            let n = remaining.min(ps);
            push(entry, n);
            remaining -= n;
        }
        match next {
            Some(addr) => list_addr = addr,
            None => break,
        }
    }
    assert_eq!(remaining, 0, "PRP lists describe too little data");
    assert_eq!(visited, prps.lists.len(), "unreachable list pages");
    ranges
}

/// The segments with contiguous neighbours merged.
fn merged(segments: &[(u64, usize)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(a, l) in segments {
        match out.last_mut() {
            Some((s, n)) if *s + *n == a => *n += l as u64,
            _ => out.push((a, l as u64)),
        }
    }
    out
}

fn check(segments: &[(u64, usize)]) -> Prps {
    let prps = build(segments).unwrap();
    let len: u64 = segments.iter().map(|s| s.1 as u64).sum();
    assert_eq!(walk(PS, &prps, len), merged(segments), "{segments:x?}");
    prps
}

#[test]
fn page_size() {
    assert_eq!(PageSize::new(4096), Ok(PageSize::MIN));
    assert_eq!(PageSize::new(1 << 27), Ok(PageSize::MAX));
    for bad in [0, 512, 2048, 6144, 1 << 28] {
        assert_eq!(PageSize::new(bad), Err(PrpError::InvalidPageSize(bad)));
    }
    assert_eq!(PageSize::from_mps(0), Ok(PageSize::MIN));
    assert_eq!(PageSize::from_mps(4).unwrap().bytes(), 64 * 1024);
    assert_eq!(PageSize::from_mps(15), Ok(PageSize::MAX));
    assert_eq!(PageSize::from_mps(16), Err(PrpError::InvalidMps(16)));
    assert_eq!(PageSize::new(1 << 16).unwrap().mps(), 4);
    assert_eq!(PS.entries_per_list(), 512);
}

#[test]
fn one_page() {
    for len in [1, 4, 511, 4095, 4096] {
        let prps = check(&[(0x10_0000, len)]);
        assert_eq!((prps.prp1, prps.prp2), (0x10_0000, 0));
    }
    // Offset into the first page, still within it.
    let prps = check(&[(0x10_0ff0, 16)]);
    assert_eq!((prps.prp1, prps.prp2), (0x10_0ff0, 0));
    let prps = check(&[(0x10_0004, 4092)]);
    assert_eq!((prps.prp1, prps.prp2), (0x10_0004, 0));
}

#[test]
fn two_pages() {
    let prps = check(&[(0x10_0000, 4097)]);
    assert_eq!((prps.prp1, prps.prp2), (0x10_0000, 0x10_1000));
    let prps = check(&[(0x10_0000, 8192)]);
    assert_eq!((prps.prp1, prps.prp2), (0x10_0000, 0x10_1000));
    assert!(prps.lists.is_empty());
    // 8 bytes crossing a page boundary are two pages.
    let prps = check(&[(0x10_0ffc, 8)]);
    assert_eq!((prps.prp1, prps.prp2), (0x10_0ffc, 0x10_1000));
    // 4 KiB at an offset spans two pages.
    let prps = check(&[(0x10_0200, 4096)]);
    assert_eq!((prps.prp1, prps.prp2), (0x10_0200, 0x10_1000));
    // Two discontiguous pages: PRP2 is the second segment.
    let prps = check(&[(0x10_0800, 2048), (0x55_0000, 100)]);
    assert_eq!((prps.prp1, prps.prp2), (0x10_0800, 0x55_0000));
}

#[test]
fn three_pages_use_a_list() {
    let prps = check(&[(0x10_0000, 8193)]);
    assert_eq!(prps.prp1, 0x10_0000);
    assert_eq!(prps.prp2, LIST_BASE);
    assert_eq!(prps.lists, [(LIST_BASE, vec![0x10_1000, 0x10_2000])]);
    // 8 KiB at an offset: three pages.
    let prps = check(&[(0x10_0010, 8192)]);
    assert_eq!(prps.lists, [(LIST_BASE, vec![0x10_1000, 0x10_2000])]);
    let prps = check(&[(0x10_0000, 12288)]);
    assert_eq!(prps.lists[0].1.len(), 2);
}

#[test]
fn full_list_without_chaining() {
    // PRP1 + 512 list entries = 513 pages: one full list page, no chain.
    let prps = check(&[(0x100_0000, 513 * 4096)]);
    assert_eq!(prps.lists.len(), 1);
    assert_eq!(prps.lists[0].1.len(), 512);
    assert_eq!(prps.lists[0].1[511], 0x100_0000 + 512 * P);
    // 2 MiB at an offset also spans 513 pages.
    let prps = check(&[(0x100_0200, 2 << 20)]);
    assert_eq!(prps.lists.len(), 1);
    assert_eq!(prps.lists[0].1.len(), 512);
    // 2 MiB page aligned: 512 pages, 511 list entries.
    let prps = check(&[(0x100_0000, 2 << 20)]);
    assert_eq!(prps.lists.len(), 1);
    assert_eq!(prps.lists[0].1.len(), 511);
}

#[test]
fn one_more_entry_chains() {
    // 514 pages: 513 entries after PRP1 = 511 + pointer, then 2.
    let prps = check(&[(0x100_0000, 514 * 4096)]);
    assert_eq!(prps.prp2, LIST_BASE);
    assert_eq!(prps.lists.len(), 2);
    assert_eq!(prps.lists[0].0, LIST_BASE);
    assert_eq!(prps.lists[0].1.len(), 512);
    assert_eq!(prps.lists[0].1[510], 0x100_0000 + 511 * P);
    assert_eq!(prps.lists[0].1[511], LIST_BASE + P, "chain pointer");
    assert_eq!(
        prps.lists[1],
        (
            LIST_BASE + P,
            vec![0x100_0000 + 512 * P, 0x100_0000 + 513 * P]
        )
    );
}

#[test]
fn multi_list_chains() {
    // 4 MiB: 1024 pages, 1023 entries = 511 + pointer, then exactly 512 fill the second
    // page with no pointer.
    let prps = check(&[(0x100_0000, 4 << 20)]);
    let sizes: Vec<usize> = prps.lists.iter().map(|l| l.1.len()).collect();
    assert_eq!(sizes, [512, 512]);
    assert_eq!(prps.lists[1].1[511], 0x100_0000 + 1023 * P);
    // One page more: 1024 entries = 511 + pointer, 511 + pointer, 2.
    let prps = check(&[(0x100_0000, (4 << 20) + 1)]);
    let sizes: Vec<usize> = prps.lists.iter().map(|l| l.1.len()).collect();
    assert_eq!(sizes, [512, 512, 2]);
    // MDTS (8 MiB): 2047 entries = 4 * 511 + 3.
    let prps = check(&[(0x100_0000, MDTS as usize)]);
    let sizes: Vec<usize> = prps.lists.iter().map(|l| l.1.len()).collect();
    assert_eq!(sizes, [512, 512, 512, 512, 3]);
    for (i, (addr, entries)) in prps.lists.iter().enumerate() {
        assert_eq!(*addr, LIST_BASE + i as u64 * P);
        if i + 1 < prps.lists.len() {
            assert_eq!(entries[511], LIST_BASE + (i as u64 + 1) * P);
        }
    }
    // MDTS from a dword offset would exceed by one page but is still MDTS bytes.
    let prps = check(&[(0x100_0004, MDTS as usize)]);
    assert_eq!(
        prps.lists.iter().map(|l| l.1.len()).sum::<usize>(),
        2048 + 4
    );
}

#[test]
fn larger_page_size() {
    // 64 KiB pages: 8192 entries per list; 3 pages -> one list of two.
    let ps = PageSize::new(64 * 1024).unwrap();
    let prps = build_prps(ps, &[(0x100_0000, 3 * 65536)], MDTS, &mut || Some(0x9_0000)).unwrap();
    assert_eq!(prps.prp1, 0x100_0000);
    assert_eq!(prps.lists, [(0x9_0000, vec![0x101_0000, 0x102_0000])]);
    assert_eq!(walk(ps, &prps, 3 * 65536), [(0x100_0000, 3 * 65536)]);
    // A 4 KiB-aligned page is misaligned for 64 KiB pages.
    let err = build_prps(ps, &[(0x0, 65536), (0x1000, 10)], MDTS, &mut || None);
    assert_eq!(
        err,
        Err(PrpError::StartNotPageAligned {
            index: 1,
            iova: 0x1000
        })
    );
}

#[test]
fn sizes_one_byte_to_mdts() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut lens: Vec<usize> = vec![1, 2, 3, 4, 512, 4095, 4096, 4097, 8191, 8192, 8193];
    lens.extend((1..=64).map(|k| k * 4096));
    lens.extend([511 * 4096, 512 * 4096, 513 * 4096, 514 * 4096, 1023 * 4096]);
    lens.extend((0..200).map(|_| rng.random_range(1..=MDTS as usize)));
    lens.push(MDTS as usize);
    for len in lens {
        for offset in [0u64, 4, 0x200, 0xffc] {
            check(&[(0x4000_0000 + offset, len)]);
        }
    }
}

#[test]
fn scattered_segments_walk_in_order() {
    // Middle segments start and end on page boundaries, in descending address order.
    let segments = [
        (0x10_0f00, 0x100),
        (0x90_0000, 3 * 4096),
        (0x50_0000, 4096),
        (0x20_0000, 514 * 4096),
        (0x30_0000, 17),
    ];
    let prps = check(&segments);
    assert_eq!(prps.prp1, 0x10_0f00);
    assert_eq!(
        prps.lists[0].1[..4],
        [0x90_0000, 0x90_1000, 0x90_2000, 0x50_0000]
    );
}

#[test]
fn random_buffers_walk_exactly() {
    let mut rng = StdRng::seed_from_u64(0xf00d);
    for _ in 0..2000 {
        let n = rng.random_range(1..6);
        let mut segments = Vec::new();
        let mut total = 0u64;
        for i in 0..n {
            let page = rng.random_range(0x100u64..0x10_0000) * P;
            let start = if i == 0 {
                page + rng.random_range(0..1024) * 4
            } else {
                page
            };
            let mut len = rng.random_range(1..=300) * P as usize;
            if i == 0 {
                len -= (start - page) as usize;
            }
            if i == n - 1 {
                len = len.saturating_sub(rng.random_range(0..P as usize)).max(1);
            }
            total += len as u64;
            segments.push((start, len));
        }
        let prps = check(&segments);
        assert!(total <= MDTS);
        assert_eq!(prps.prp1, segments[0].0);
    }
}

#[test]
fn misaligned_segments() {
    // Middle segment starting off a page boundary.
    let err = build(&[(0x1000, 4096), (0x5010, 4096)]).unwrap_err();
    assert_eq!(
        err,
        PrpError::StartNotPageAligned {
            index: 1,
            iova: 0x5010
        }
    );
    assert!(err.needs_sgl());
    // First segment ending mid-page with another following.
    let err = build(&[(0x1000, 100), (0x5000, 4096)]).unwrap_err();
    assert_eq!(
        err,
        PrpError::EndNotPageAligned {
            index: 0,
            end: 0x1064
        }
    );
    assert!(err.needs_sgl());
    // Middle segment ending mid-page.
    let err = build(&[(0x1000, 4096), (0x5000, 4000), (0x9000, 4096)]).unwrap_err();
    assert_eq!(
        err,
        PrpError::EndNotPageAligned {
            index: 1,
            end: 0x5fa0
        }
    );
    // The last segment may end anywhere; the first may start at any dword.
    assert!(build(&[(0x1ffc, 4), (0x5000, 4096), (0x9000, 3)]).is_ok());
    let err = build(&[(0x1002, 16)]).unwrap_err();
    assert_eq!(err, PrpError::FirstNotDwordAligned(0x1002));
    assert!(err.needs_sgl());
}

#[test]
fn bad_lengths() {
    assert_eq!(build(&[]), Err(PrpError::Empty));
    assert_eq!(
        build(&[(0x1000, 0)]),
        Err(PrpError::EmptySegment { index: 0 })
    );
    assert_eq!(
        build(&[(0x1000, 4096), (0x3000, 0)]),
        Err(PrpError::EmptySegment { index: 1 })
    );
    let err = build(&[(0x1000, MDTS as usize + 1)]).unwrap_err();
    assert_eq!(
        err,
        PrpError::TooLong {
            len: MDTS + 1,
            max: MDTS
        }
    );
    assert!(!err.needs_sgl());
    let err = build(&[(0x1000, MDTS as usize), (0x100_0000, 1)]).unwrap_err();
    assert_eq!(
        err,
        PrpError::TooLong {
            len: MDTS + 1,
            max: MDTS
        }
    );
    assert!(build_prps(PS, &[(0x1000, 4096)], 4095, &mut pool(1)).is_err());
    assert!(build_prps(PS, &[(0x1000, 4096)], 4096, &mut pool(0)).is_ok());
    let err = build(&[(u64::MAX - 3, 8)]).unwrap_err();
    assert_eq!(
        err,
        PrpError::AddressOverflow {
            index: 0,
            iova: u64::MAX - 3,
            len: 8
        }
    );
}

#[test]
fn list_page_allocation_failures() {
    // Two pages need no list page.
    assert!(build_prps(PS, &[(0x1000, 8192)], MDTS, &mut pool(0)).is_ok());
    // Three pages need one.
    assert_eq!(
        build_prps(PS, &[(0x1000, 8193)], MDTS, &mut pool(0)),
        Err(PrpError::OutOfListPages { allocated: vec![] })
    );
    // 8 MiB needs five; with four the allocated ones come back in the error.
    let err = build_prps(PS, &[(0x100_0000, MDTS as usize)], MDTS, &mut pool(4));
    assert_eq!(
        err,
        Err(PrpError::OutOfListPages {
            allocated: (0..4).map(|i| LIST_BASE + i * P).collect()
        })
    );
    assert!(build_prps(PS, &[(0x100_0000, MDTS as usize)], MDTS, &mut pool(5)).is_ok());
    // An allocator handing out a misaligned page is caught.
    let mut pages = [0x8000u64, 0x9008].into_iter();
    let err = build_prps(PS, &[(0x100_0000, 514 * 4096)], MDTS, &mut || pages.next());
    assert_eq!(
        err,
        Err(PrpError::ListPageNotAligned {
            page: 0x9008,
            allocated: vec![0x8000, 0x9008]
        })
    );
}
