//! The layout engine's metadata records fed arbitrary bytes: a record header of each kind,
//! journal and checkpoint-data entry blocks, superblocks, checkpoint heads and single
//! entries. A pool reads these back from its drives after a crash, so none may panic on what
//! a torn or foreign block holds; what parses must keep its promises (an entry block holds
//! no more entries than fit, an entry encodes back to the bytes it came from).
#![no_main]

use libfuzzer_sys::fuzz_target;
use target::layout::format::{
    entries_per_block, parse_checkpoint_head, parse_entry_block, Entry, Kind, MetaHeader, RawEntry,
    Superblock, ENTRY, HEADER,
};
use zerocopy::{FromBytes, IntoBytes};

const KINDS: [Kind; 5] = [
    Kind::Superblock,
    Kind::Journal,
    Kind::CheckpointHead,
    Kind::CheckpointData,
    Kind::Unknown(0),
];

fuzz_target!(|data: &[u8]| {
    records(data);
    // The same bytes with a CRC that matches, so that the body parsers see every mutation
    // (the fuzzer rarely gets a CRC-32C right by itself).
    if let Ok((h, _)) = MetaHeader::read_from_prefix(data) {
        let mut sealed = data.to_vec();
        h.seal(&mut sealed);
        records(&sealed);
    }
});

fn records(data: &[u8]) {
    // The pool a record claims (when it is long enough to claim one), so that records of the
    // right pool reach the body parsers; and another pool, which must always be refused.
    let own: [u8; 16] = data
        .get(8..24)
        .and_then(|p| p.try_into().ok())
        .unwrap_or([0; 16]);
    let mut other = own;
    other[0] ^= 1;
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
    if parse_checkpoint_head(data, &own).is_ok() {
        assert!(data.len() >= HEADER);
    }
    // Every 16-byte window of the input as an entry: what decodes encodes back to it.
    for chunk in data.chunks_exact(ENTRY) {
        let raw = RawEntry::read_from_bytes(chunk).expect("16 bytes");
        if let Ok(e) = Entry::decode(raw) {
            assert_eq!(e.encode().as_bytes(), chunk, "{e:?}");
        }
    }
}
