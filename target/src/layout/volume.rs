//! A volume as a namespace backend: a conventional (NVM command set) block device whose
//! blocks the pool places on its zoned members.

use std::sync::Arc;

use nvme::backend::{blocks_in, check_range, Backend, BackendError, BackendInfo};

use super::pool::{Inner, VolumeRef, VolumeStats};

pub struct VolumeBackend {
    pool: Arc<Inner>,
    vol: VolumeRef,
}

impl VolumeBackend {
    pub(super) fn new(pool: Arc<Inner>, vol: VolumeRef) -> VolumeBackend {
        VolumeBackend { pool, vol }
    }

    pub fn name(&self) -> &str {
        &self.vol.def.name
    }

    pub fn pool_name(&self) -> &str {
        &self.pool.name
    }

    pub fn stats(&self) -> VolumeStats {
        VolumeStats {
            mapped_blocks: self.vol.map.mapped_blocks(),
        }
    }

    fn range(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        check_range(lba, blocks, self.vol.def.blocks)
    }
}

impl Backend for VolumeBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            block_size: self.vol.def.block_size,
            num_blocks: self.vol.def.blocks,
            deallocated_reads_zero: true,
            volatile_write_cache: true,
        }
    }

    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let blocks = blocks_in(buf.len(), self.vol.def.block_size)?;
        self.range(lba, blocks)?;
        self.pool.read(&self.vol, lba, buf)
    }

    fn write(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), BackendError> {
        let blocks = blocks_in(data.len(), self.vol.def.block_size)?;
        self.range(lba, blocks)?;
        self.pool.write(&self.vol, lba, data, fua)
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.pool.flush()
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        // Unmapped blocks read as zeroes: Write Zeroes is a deallocate here.
        self.deallocate(lba, blocks)
    }

    fn deallocate(&self, lba: u64, blocks: u64) -> Result<(), BackendError> {
        self.range(lba, blocks)?;
        if blocks == 0 {
            return Ok(());
        }
        self.pool.trim(&self.vol, lba, blocks)
    }

    fn may_block(&self) -> bool {
        true
    }
}
