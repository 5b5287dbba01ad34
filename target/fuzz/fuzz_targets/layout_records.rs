//! The layout engine's metadata records fed arbitrary bytes: a record header of each kind,
//! journal and checkpoint-data entry blocks, superblocks, checkpoint heads and single
//! entries, and the records it keeps on data zones: map pages and zone footers. A pool reads
//! these back from its drives after a crash, so none may panic on what a torn or foreign
//! block holds; what parses must keep its promises (an entry block holds no more entries
//! than fit, an entry encodes back to the bytes it came from, a map page or a footer is read
//! only under its own key, and what is read writes back to the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use target::layout::format::{
    checkpoint_head, entries_per_block, head_zones, parse_checkpoint_head, parse_entry_block,
    CheckpointBody, Entry, Kind, MetaHeader, RawEntry, Superblock, ENTRY, HEADER,
};
use target::layout::zone_records::{
    decode_footer, decode_page, encode_footer, encode_page, entries_per_page,
    keys_per_footer_block, zone_split, FooterBody,
};
use zerocopy::{FromBytes, IntoBytes};

const KINDS: [Kind; 7] = [
    Kind::Superblock,
    Kind::Journal,
    Kind::CheckpointHead,
    Kind::CheckpointData,
    Kind::MapPage,
    Kind::Footer,
    Kind::Unknown(0),
];

/// Media block sizes the records of data zones are read in.
const BLOCK_SIZES: [usize; 2] = [512, 4096];
/// Where a checkpoint head's zone list starts (its count, then the ids).
const ZONES_AT: usize = HEADER + size_of::<CheckpointBody>();
/// Where a footer block's keys start.
const KEYS_AT: usize = HEADER + size_of::<FooterBody>();

fuzz_target!(|data: &[u8]| {
    records(data);
    // The same bytes with a CRC that matches, so that the body parsers see every mutation
    // (the fuzzer rarely gets a CRC-32C right by itself).
    if let Ok((h, _)) = MetaHeader::read_from_prefix(data) {
        let mut sealed = data.to_vec();
        h.seal(&mut sealed);
        records(&sealed);
    }
    // The records of data zones are read a media block at a time: the input laid over one
    // block (a map page, a checkpoint head) or the 1 to 3 blocks of a zone's footer, each
    // block sealed; and records the encoders make of the input's words.
    for bs in BLOCK_SIZES {
        let block = sealed_block(data, bs, 0);
        records(&block);
        for n in 1..=3 {
            footer(data, bs, n);
        }
        encoded(data, bs);
    }
});

fn records(data: &[u8]) {
    // The pool a record claims (when it is long enough to claim one), so that records of the
    // right pool reach the body parsers; and another pool, which must always be refused.
    let (own, other) = pools(data);
    for kind in KINDS {
        let _ = MetaHeader::peek(data, kind, None);
        if let Ok(h) = MetaHeader::check(data, kind, None) {
            assert_eq!(h.pool_id, own);
            assert!(MetaHeader::check(data, kind, Some(&other)).is_err());
        }
        if let Ok((h, entries)) = parse_entry_block(data, kind, &own) {
            assert_eq!(h.count.get() as usize, entries.len());
            assert!(entries.len() <= entries_per_block(data.len()));
            assert!(parse_entry_block(data, kind, &other).is_err());
        }
    }
    if let Ok(sb) = Superblock::decode(data, None) {
        assert_eq!(usize::from(sb.body.volumes.get()), sb.volumes.len());
        assert!(sb.volumes.iter().all(|v| v.name.len() <= 64));
        assert!(Superblock::decode(data, Some(&other)).is_err());
    }
    let _ = Superblock::decode(data, Some(&own));
    if let Ok((h, body, zones)) = parse_checkpoint_head(data, &own) {
        assert!(data.len() >= HEADER);
        assert!(zones.len() <= head_zones(data.len()));
        assert!(parse_checkpoint_head(data, &other).is_err());
        // The head written back (a block of the same size) lists the same zones, and is the
        // same bytes when nothing but the record was in the block.
        let again = checkpoint_head(own, h.seq.get(), h.count.get(), body, &zones, data.len())
            .expect("a zone list that was read fits its block");
        let (h2, body2, zones2) = parse_checkpoint_head(&again, &own).expect("written head");
        assert_eq!((h2.seq, h2.count, body2), (h.seq, h.count, body));
        assert_eq!(zones2, zones);
        if bare(data, ZONES_AT + 4 + 4 * zones.len()) {
            assert_eq!(again, data);
        }
        let mut long = zones;
        long.resize(head_zones(data.len()) + 1, u32::MAX);
        assert!(checkpoint_head(own, h.seq.get(), h.count.get(), body, &long, data.len()).is_err());
    }
    map_page(data, &own, &other);
    // Every 16-byte window of the input as an entry: what decodes encodes back to it.
    for chunk in data.chunks_exact(ENTRY) {
        let raw = RawEntry::read_from_bytes(chunk).expect("16 bytes");
        if let Ok(e) = Entry::decode(raw) {
            assert_eq!(e.encode().as_bytes(), chunk, "{e:?}");
        }
    }
}

/// `block` as a map page, under the key its header names (so that its entries are read) and
/// under another key, which must be refused.
fn map_page(block: &[u8], own: &[u8; 16], other: &[u8; 16]) {
    let key = seq_of(block);
    let per = block.len().saturating_sub(HEADER) / 8;
    let count = block.get(32..36).map_or(0, |c| {
        u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize
    });
    let mut out = vec![0u64; count.min(per + 1)];
    let read = decode_page(block, own, key, &mut out).is_ok();
    assert!(decode_page(block, own, key ^ 1, &mut out).is_err());
    assert!(decode_page(block, other, key, &mut out).is_err());
    if !read {
        return;
    }
    assert!(out.len() <= per && out.len() as u64 <= entries_per_page(block.len()));
    let mut more = vec![0u64; out.len() + 1];
    assert!(
        decode_page(block, own, key, &mut more).is_err(),
        "entry count"
    );
    let mut again = vec![0u8; block.len()];
    encode_page(&mut again, *own, key, out.iter().copied());
    let mut back = vec![0u64; out.len()];
    decode_page(&again, own, key, &mut back).expect("a written page reads");
    assert_eq!(back, out);
    if bare(block, HEADER + 8 * out.len()) {
        assert_eq!(again, block);
    }
}

/// Blocks `0..n` of the input as the footer of a zone whose split gives `n` footer blocks,
/// at the zone start LBA the first header names.
fn footer(data: &[u8], bs: usize, n: u64) {
    let (own, other) = pools(data);
    let blocks: Vec<u8> = (0..n as usize)
        .flat_map(|i| sealed_block(data, bs, i))
        .collect();
    let zslba = seq_of(data);
    let per = keys_per_footer_block(bs);
    // The capacities whose footer is `n` blocks, and one of them from the data block count
    // the first block claims.
    let (lo, hi) = ((n - 1) * (per + 1) + 1, n * (per + 1));
    let claimed = data.get(HEADER..HEADER + 4).map_or(0, |c| {
        u64::from(u32::from_le_bytes(c.try_into().expect("4 bytes")))
    });
    let cap = (claimed + n).clamp(lo, hi);
    split_holds(cap, bs);
    split_holds(seq_of(data), bs);
    let (d, f) = zone_split(cap, bs);
    assert_eq!(f, n);
    // A zone of one more footer block has more data blocks than `n` blocks of keys hold.
    let (d_more, f_more) = zone_split(hi + 2, bs);
    assert!(f_more == n + 1 && d_more > n * per);
    assert!(decode_footer(&blocks, &own, zslba, d_more, bs).is_err());
    let Ok(keys) = decode_footer(&blocks, &own, zslba, d, bs) else {
        return;
    };
    assert_eq!(keys.len() as u64, d);
    if d > 0 {
        // The blocks were read: they are this zone's, of this split, of this pool.
        assert!(decode_footer(&blocks, &own, zslba ^ 1, d, bs).is_err());
        assert!(decode_footer(&blocks, &own, zslba, d + 1, bs).is_err());
        assert!(decode_footer(&blocks, &other, zslba, d, bs).is_err());
    }
    // Written back, the footer fits the zone's footer blocks and reads the same keys, with
    // what follows it in those blocks (unwritten) or without.
    let mut again = encode_footer(own, zslba, &keys, bs, n as usize);
    let written = again.len() / bs;
    assert_eq!(again.len(), written * bs);
    assert!(written as u64 <= n);
    assert_eq!(decode_footer(&again, &own, zslba, d, bs), Ok(keys.clone()));
    // Blocks the encoder would have made of these keys come back as they were.
    let as_written = (0..written).all(|i| {
        let b = &blocks[i * bs..(i + 1) * bs];
        let count = (d as usize).saturating_sub(i * per as usize).min(per as usize);
        b[32..36] == (count as u32).to_le_bytes() && bare(b, KEYS_AT + 8 * count)
    });
    if d > 0 && as_written {
        assert_eq!(again, blocks[..written * bs]);
    }
    again.resize(n as usize * bs, 0);
    assert_eq!(decode_footer(&again, &own, zslba, d, bs), Ok(keys));
}

/// Records the encoders make of the input's words read back as those words: a map page of
/// its first 8-byte words, a footer of all of them, a checkpoint head of its 4-byte words.
fn encoded(data: &[u8], bs: usize) {
    let (own, other) = pools(data);
    let key = seq_of(data);
    let words: Vec<u64> = data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();

    let mut page = vec![0u8; bs];
    encode_page(&mut page, own, key, words.iter().copied());
    let n = words.len().min(entries_per_page(bs) as usize);
    let mut out = vec![0u64; n];
    decode_page(&page, &own, key, &mut out).expect("a written page reads");
    assert_eq!(out, words[..n]);
    map_page(&page, &own, &other);

    let per = keys_per_footer_block(bs) as usize;
    let f = encode_footer(own, key, &words, bs, words.len().div_ceil(per));
    assert_eq!(f.len(), words.len().div_ceil(per).max(1) * bs);
    let d = words.len() as u64;
    assert_eq!(decode_footer(&f, &own, key, d, bs), Ok(words.clone()));
    if d > 0 {
        assert!(decode_footer(&f, &own, key.wrapping_add(1), d, bs).is_err());
        assert!(decode_footer(&f, &own, key, d + 1, bs).is_err());
        assert!(decode_footer(&f[..f.len() - bs], &own, key, d, bs).is_err());
    }

    let zones: Vec<u32> = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let body = CheckpointBody {
        journal_seq: key.into(),
        entries: (words.len() as u64).into(),
    };
    match checkpoint_head(own, key, zones.len() as u32, body, &zones, bs) {
        Ok(head) => {
            assert!(zones.len() <= head_zones(bs));
            assert_eq!(head.len(), bs);
            let (h, got, back) = parse_checkpoint_head(&head, &own).expect("a written head reads");
            assert_eq!(
                (h.seq.get(), h.count.get(), got),
                (key, zones.len() as u32, body)
            );
            assert_eq!(back, zones);
        }
        Err(_) => assert!(zones.len() > head_zones(bs)),
    }
}

/// A zone of `cap` blocks splits into data and the fewest footer blocks that key it.
fn split_holds(cap: u64, bs: usize) {
    let per = keys_per_footer_block(bs);
    let (d, f) = zone_split(cap, bs);
    assert_eq!(d + f, cap);
    assert!(d <= f * per, "{cap}: {d} data blocks, {f} footer blocks");
    assert!(
        f == 0 || cap - (f - 1) > (f - 1) * per,
        "{cap}: footer of {f} is not the least"
    );
}

/// Block `i` of `bs` bytes of the input (zero past its end) with the header it holds sealed.
fn sealed_block(data: &[u8], bs: usize, i: usize) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    let part = data.get(i * bs..).unwrap_or(&[]);
    let len = part.len().min(bs);
    b[..len].copy_from_slice(&part[..len]);
    let (h, _) = MetaHeader::read_from_prefix(&b).expect("a block holds a header");
    h.seal(&mut b);
    b
}

/// Whether `record` holds nothing its encoder would not write: no reserved header bits, and
/// zeros from `end` on.
fn bare(record: &[u8], end: usize) -> bool {
    record[6..8] == [0, 0] && record.get(end..).is_some_and(|t| t.iter().all(|&b| b == 0))
}

/// The pool a record claims, and another pool.
fn pools(data: &[u8]) -> ([u8; 16], [u8; 16]) {
    let own: [u8; 16] = data
        .get(8..24)
        .and_then(|p| p.try_into().ok())
        .unwrap_or([0; 16]);
    let mut other = own;
    other[0] ^= 1;
    (own, other)
}

/// The `seq` a record's header holds (a map page's key, a footer's zone start LBA).
fn seq_of(data: &[u8]) -> u64 {
    data.get(24..32)
        .map_or(0, |c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
}
