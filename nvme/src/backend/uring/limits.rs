//! Queue limits of the block device behind an NVMe generic device, from sysfs
//! (`/sys/block/nvmeXnY/queue`).

use std::path::Path;

/// Transfer size used when sysfs says nothing: 128 KiB, within every controller's MDTS.
pub const FALLBACK_MAX_TRANSFER: u64 = 128 << 10;
/// Page size the kernel maps passthrough buffers in.
const PAGE: u64 = 4096;

/// What the kernel allows for one passthrough command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Largest data transfer of one command, bytes.
    pub max_transfer: u64,
    /// Whether the block device has poll queues (`io_poll`); `None` when unknown.
    pub io_poll: Option<bool>,
}

/// The block device name of generic device `ngXnY` (`nvmeXnY`).
pub fn block_name(dev: &Path) -> Option<String> {
    let name = dev.file_name()?.to_str()?;
    name.strip_prefix("ng").map(|rest| format!("nvme{rest}"))
}

/// Limits from the queue attribute texts: the transfer is capped by `max_hw_sectors_kb`
/// and by `max_segments - 1` pages (one spare for a buffer that does not start on a page).
pub fn parse(
    max_hw_sectors_kb: Option<&str>,
    max_segments: Option<&str>,
    io_poll: Option<&str>,
) -> QueueLimits {
    let num = |s: Option<&str>| s.and_then(|s| s.trim().parse::<u64>().ok());
    let mut max = num(max_hw_sectors_kb).map_or(FALLBACK_MAX_TRANSFER, |kb| kb * 1024);
    if let Some(segs) = num(max_segments).filter(|&s| s > 1) {
        max = max.min((segs - 1) * PAGE);
    }
    QueueLimits {
        max_transfer: max.max(PAGE),
        io_poll: num(io_poll).map(|v| v != 0),
    }
}

/// Read the limits of the block device that goes with generic device `dev`.
pub fn read(dev: &Path) -> QueueLimits {
    let queue = block_name(dev).map(|b| Path::new("/sys/block").join(b).join("queue"));
    let attr = |name: &str| {
        queue
            .as_ref()
            .and_then(|q| std::fs::read_to_string(q.join(name)).ok())
    };
    parse(
        attr("max_hw_sectors_kb").as_deref(),
        attr("max_segments").as_deref(),
        attr("io_poll").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_name_of_generic_device() {
        assert_eq!(
            block_name(Path::new("/dev/ng0n1")).as_deref(),
            Some("nvme0n1")
        );
        assert_eq!(block_name(Path::new("/dev/sda")), None);
    }

    #[test]
    fn limits_from_sysfs_text() {
        let l = parse(Some("512\n"), Some("127\n"), Some("1\n"));
        assert_eq!(l.max_transfer, 504 * 1024);
        assert_eq!(l.io_poll, Some(true));
        let l = parse(Some("256"), Some("1024"), Some("0"));
        assert_eq!(l.max_transfer, 256 * 1024);
        assert_eq!(l.io_poll, Some(false));
        assert_eq!(
            parse(None, None, None),
            QueueLimits {
                max_transfer: FALLBACK_MAX_TRANSFER,
                io_poll: None
            }
        );
    }
}
