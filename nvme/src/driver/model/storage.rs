//! Namespace data, stored sparsely in 4 KiB chunks: unwritten and deallocated blocks read as
//! zeroes, so namespaces of many GiB cost only what is written.

use std::collections::BTreeMap;

use super::zoned::Zones;
use super::NsModel;

const CHUNK: u64 = 4096;

pub(super) struct Namespace {
    pub(super) cfg: NsModel,
    chunks: BTreeMap<u64, Box<[u8]>>,
    pub(super) zones: Option<Zones>,
}

impl Namespace {
    pub(super) fn new(cfg: &NsModel) -> Namespace {
        assert!(
            cfg.block_size == 512 || cfg.block_size == 4096,
            "block size {} is neither 512 nor 4096",
            cfg.block_size
        );
        Namespace {
            cfg: cfg.clone(),
            chunks: BTreeMap::new(),
            zones: cfg.zoned.map(|z| Zones::new(z, cfg.blocks)),
        }
    }

    pub(super) fn block_size(&self) -> u64 {
        u64::from(self.cfg.block_size)
    }

    /// Whether `lba..lba + blocks` lies within the namespace.
    pub(super) fn in_range(&self, lba: u64, blocks: u64) -> bool {
        lba.checked_add(blocks)
            .is_some_and(|end| end <= self.cfg.blocks)
    }

    pub(super) fn read(&self, lba: u64, blocks: u64) -> Vec<u8> {
        assert!(self.in_range(lba, blocks), "read beyond the namespace");
        let bs = self.block_size();
        let mut out = vec![0u8; (blocks * bs) as usize];
        let start = lba * bs;
        let mut pos = start;
        let end = start + out.len() as u64;
        while pos < end {
            let idx = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = ((CHUNK - pos % CHUNK).min(end - pos)) as usize;
            if let Some(chunk) = self.chunks.get(&idx) {
                let o = (pos - start) as usize;
                out[o..o + n].copy_from_slice(&chunk[within..within + n]);
            }
            pos += n as u64;
        }
        out
    }

    pub(super) fn write(&mut self, lba: u64, data: &[u8]) {
        let start = lba * self.block_size();
        let mut pos = start;
        let end = start + data.len() as u64;
        while pos < end {
            let idx = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = ((CHUNK - pos % CHUNK).min(end - pos)) as usize;
            let o = (pos - start) as usize;
            let chunk = self
                .chunks
                .entry(idx)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            chunk[within..within + n].copy_from_slice(&data[o..o + n]);
            pos += n as u64;
        }
    }

    /// Make `blocks` blocks at `lba` read as zeroes, freeing whole chunks. The cost follows the
    /// chunks stored, not the size of the range.
    pub(super) fn zero(&mut self, lba: u64, blocks: u64) {
        let bs = self.block_size();
        let start = lba * bs;
        let end = start + blocks * bs;
        let first = start / CHUNK;
        let last = end.div_ceil(CHUNK);
        let stored: Vec<u64> = self.chunks.range(first..last).map(|(&k, _)| k).collect();
        for idx in stored {
            let lo = start.max(idx * CHUNK);
            let hi = end.min((idx + 1) * CHUNK);
            if hi - lo == CHUNK {
                self.chunks.remove(&idx);
            } else if let Some(chunk) = self.chunks.get_mut(&idx) {
                chunk[(lo - idx * CHUNK) as usize..(hi - idx * CHUNK) as usize].fill(0);
            }
        }
    }
}
