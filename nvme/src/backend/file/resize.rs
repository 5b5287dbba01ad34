//! Growing a file namespace: the file is extended (never truncated) and a second backend
//! over the same open file, with the larger capacity, takes over; the first keeps its size
//! for I/O still in flight on it.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{map_io, FileBackend};
use crate::backend::null::invalid_input;
use crate::backend::{grown_blocks, BackendError};

impl FileBackend {
    /// This namespace with capacity `size_bytes`. A regular file shorter than that is
    /// extended with `set_len` (the new bytes read as zeroes); a longer one keeps its bytes,
    /// which become the new blocks as they are. A block device's size is the device's: it is
    /// refused.
    pub(super) fn grown_file(&self, size_bytes: u64) -> Result<FileBackend, BackendError> {
        if self.block_device {
            return Err(invalid_input(format!(
                "{} is a block device: its capacity is the device's",
                self.path.display()
            )));
        }
        let num_blocks = grown_blocks(size_bytes, self.block_size, self.num_blocks)?;
        if self.file.metadata()?.len() < size_bytes {
            self.file.set_len(size_bytes).map_err(map_io)?;
        }
        Ok(FileBackend {
            path: self.path.clone(),
            file: self.file.try_clone()?,
            fua_file: self.fua_file.try_clone()?,
            block_size: self.block_size,
            num_blocks,
            direct: self.direct,
            block_device: false,
            zero_range_ok: AtomicBool::new(self.zero_range_ok.load(Ordering::Relaxed)),
            punch_hole_ok: AtomicBool::new(self.punch_hole_ok.load(Ordering::Relaxed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::{Backend, FileBackend, FileOptions};

    #[test]
    fn growing_extends_the_file_and_keeps_its_data() {
        let dir = std::env::temp_dir().join(format!("ferrofab-nvme-grow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ns.img");
        let old = FileBackend::open(
            &path,
            FileOptions {
                block_size: 512,
                size: Some(1 << 20),
                direct: false,
                create: true,
            },
        )
        .unwrap();
        old.write(2047, &[0xa5; 512], false).unwrap();
        let new = old.grown(4 << 20).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 << 20);
        assert_eq!(new.info().num_blocks, 8192);
        assert_eq!(old.info().num_blocks, 2048);
        let mut back = vec![0; 1024];
        new.read(2047, &mut back).unwrap();
        assert_eq!(back[..512], [0xa5; 512]);
        assert_eq!(back[512..], [0; 512], "the new blocks read zero");
        new.write(8191, &[7; 512], false).unwrap();
        assert!(old.read(2048, &mut back[..512]).is_err());
        // Never smaller, whole blocks only; a smaller target than the file keeps the file.
        assert!(new.grown(1 << 20).is_err());
        assert!(new.grown((4 << 20) + 100).is_err());
        assert!(old.grown(2 << 20).is_ok());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 << 20);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
