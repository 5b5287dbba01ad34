//! NVM command building for passthrough (NVM Command Set 1.0 §3.2, §3.3) and the mapping
//! of passthrough completions to [`BackendError`].

use std::io;

use bytes::Bytes;
use zerocopy::IntoBytes;

use crate::backend::BackendError;
use crate::command::DsmRange;
use crate::identify::Csi;
use crate::opcode::{AdminOpcode, IoOpcode};
use crate::sys::uring::{IoBuf, NvmeUringCmd};
use crate::Status;

/// Most blocks one Read, Write or Write Zeroes carries: NLB is a 16-bit 0's based count
/// (NVM Command Set 1.0 §3.2.4, CDW12 bits 15:0).
pub const MAX_NLB: u64 = 1 << 16;
/// CDW12 bit 30: Force Unit Access.
const FUA: u32 = 1 << 30;
/// Dataset Management CDW11 bit 2: Attribute - Deallocate (NVM Command Set 1.0 §3.2.3).
const DSM_AD: u32 = 1 << 2;

/// One device command and the buffer it transfers.
#[derive(Debug)]
pub struct Part {
    pub cmd: NvmeUringCmd,
    pub buf: IoBuf,
}

fn lba_cmd(op: IoOpcode, nsid: u32, lba: u64, blocks: u64) -> NvmeUringCmd {
    let mut c = NvmeUringCmd::new(op.to_u8(), nsid);
    c.cdw10 = lba as u32;
    c.cdw11 = (lba >> 32) as u32;
    c.cdw12 = (blocks - 1) as u32 & 0xffff;
    c
}

/// One Read or Write of `blocks` blocks at `lba` (Force Unit Access with `fua`, writes only).
pub fn rw_cmd(op: IoOpcode, nsid: u32, lba: u64, blocks: u64, fua: bool) -> NvmeUringCmd {
    let mut c = lba_cmd(op, nsid, lba, blocks);
    if fua {
        c.cdw12 |= FUA;
    }
    c
}

/// Split `lba .. lba + blocks` into runs of at most `max` blocks.
pub fn runs(lba: u64, blocks: u64, max: u64) -> impl Iterator<Item = (u64, u64)> {
    let max = max.max(1);
    (0..blocks.div_ceil(max)).map(move |i| {
        let start = i * max;
        (lba + start, max.min(blocks - start))
    })
}

/// Reads of `len` bytes at `lba`, each at most `max_blocks` blocks, into fresh buffers.
pub fn read(nsid: u32, lba: u64, len: usize, bs: u32, max_blocks: u64) -> Vec<Part> {
    let blocks = (len / bs as usize) as u64;
    runs(lba, blocks, max_blocks)
        .map(|(l, n)| Part {
            cmd: lba_cmd(IoOpcode::Read, nsid, l, n),
            buf: IoBuf::In(vec![0u8; (n * u64::from(bs)) as usize]),
        })
        .collect()
}

/// Writes of `data` at `lba`, each at most `max_blocks` blocks (slices of `data`, no copy).
pub fn write(nsid: u32, lba: u64, data: &Bytes, fua: bool, bs: u32, max_blocks: u64) -> Vec<Part> {
    let blocks = (data.len() / bs as usize) as u64;
    runs(lba, blocks, max_blocks)
        .map(|(l, n)| {
            let cmd = rw_cmd(IoOpcode::Write, nsid, l, n, fua);
            let off = ((l - lba) * u64::from(bs)) as usize;
            let end = off + (n * u64::from(bs)) as usize;
            Part {
                cmd,
                buf: IoBuf::Out(data.slice(off..end)),
            }
        })
        .collect()
}

pub fn flush(nsid: u32) -> Vec<Part> {
    vec![Part {
        cmd: NvmeUringCmd::new(IoOpcode::Flush.to_u8(), nsid),
        buf: IoBuf::None,
    }]
}

pub fn write_zeroes(nsid: u32, lba: u64, blocks: u64) -> Vec<Part> {
    runs(lba, blocks, MAX_NLB)
        .map(|(l, n)| Part {
            cmd: lba_cmd(IoOpcode::WriteZeroes, nsid, l, n),
            buf: IoBuf::None,
        })
        .collect()
}

/// Dataset Management (deallocate) commands covering the range: ranges of at most
/// `u32::MAX` blocks, at most 256 ranges per command (NR is 8 bits, 0's based).
pub fn deallocate(nsid: u32, lba: u64, blocks: u64) -> Vec<Part> {
    let ranges: Vec<DsmRange> = runs(lba, blocks, u64::from(u32::MAX))
        .map(|(l, n)| DsmRange::new(l, n as u32, 0))
        .collect();
    ranges
        .chunks(DsmRange::MAX_RANGES)
        .map(|group| {
            let mut cmd = NvmeUringCmd::new(IoOpcode::DatasetManagement.to_u8(), nsid);
            cmd.cdw10 = (group.len() - 1) as u32;
            cmd.cdw11 = DSM_AD;
            Part {
                cmd,
                buf: IoBuf::Out(Bytes::copy_from_slice(group.as_bytes())),
            }
        })
        .collect()
}

/// Identify (NVMe Base 2.0 §5.17) with CNS `cns` for `nsid` (CDW10 bits 7:0) and command
/// set `csi` (CDW11 bits 31:24).
pub fn identify(nsid: u32, cns: u8, csi: Csi) -> NvmeUringCmd {
    let mut c = NvmeUringCmd::new(AdminOpcode::Identify.to_u8(), nsid);
    c.cdw10 = u32::from(cns);
    c.cdw11 = u32::from(csi.to_u8()) << 24;
    c
}

/// One Zone Append (NVMe ZNS 1.1 §4.3) of `data` to the zone starting at `zslba`: laid out
/// like a Write (SLBA is the zone's start, NLB, FUA); never split.
pub fn zone_append(nsid: u32, zslba: u64, data: Bytes, fua: bool, bs: u32) -> Part {
    let blocks = (data.len() / bs as usize) as u64;
    let mut cmd = lba_cmd(IoOpcode::ZoneAppend, nsid, zslba, blocks);
    if fua {
        cmd.cdw12 |= FUA;
    }
    Part {
        cmd,
        buf: IoBuf::Out(data),
    }
}

/// A passthrough completion's `res`: 0 success, > 0 the NVMe status field (the 15 bits
/// above the phase tag), < 0 a negated errno.
pub fn check(res: i32) -> Result<(), BackendError> {
    match res {
        0 => Ok(()),
        r if r > 0 => Err(BackendError::Device(Status::from_field(r as u16))),
        r => Err(BackendError::Io(io::Error::from_raw_os_error(-r))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sct;

    #[test]
    fn status_mapping() {
        assert!(check(0).is_ok());
        match check(0x4080) {
            Err(BackendError::Device(s)) => {
                assert_eq!(s.sct, Sct::Generic);
                assert_eq!(s.sc, 0x80);
                assert!(s.dnr);
                assert_eq!(s, Status::LBA_OUT_OF_RANGE.with_dnr());
            }
            other => panic!("{other:?}"),
        }
        match check(-libc::EOPNOTSUPP) {
            Err(BackendError::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runs_cover_the_range() {
        let r: Vec<_> = runs(10, 5, 2).collect();
        assert_eq!(r, [(10, 2), (12, 2), (14, 1)]);
        assert_eq!(runs(0, 0, 8).count(), 0);
    }

    #[test]
    fn read_commands_split_and_encode_lba_nlb() {
        let parts = read(7, 0x1_0000_0010, 3 * 4096, 4096, 2);
        assert_eq!(parts.len(), 2);
        let c = &parts[0].cmd;
        assert_eq!((c.opcode, c.nsid), (0x02, 7));
        assert_eq!((c.cdw10, c.cdw11, c.cdw12), (0x10, 1, 1));
        assert_eq!(parts[1].cmd.cdw10, 0x12);
        assert_eq!(parts[1].cmd.cdw12, 0);
        match &parts[1].buf {
            IoBuf::In(v) => assert_eq!(v.len(), 4096),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn write_commands_slice_data_and_set_fua() {
        let data = Bytes::from((0..4u8).flat_map(|b| [b; 512]).collect::<Vec<u8>>());
        let parts = write(1, 100, &data, true, 512, 3);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].cmd.opcode, 0x01);
        assert_eq!(parts[0].cmd.cdw12, FUA | 2);
        assert_eq!(parts[1].cmd.cdw10, 103);
        match &parts[1].buf {
            IoBuf::Out(b) => assert_eq!(&b[..], &[3u8; 512][..]),
            other => panic!("{other:?}"),
        }
        assert_eq!(write(1, 0, &data, false, 512, 8)[0].cmd.cdw12, 3);
    }

    #[test]
    fn flush_and_write_zeroes() {
        let f = flush(3);
        assert_eq!((f[0].cmd.opcode, f[0].cmd.nsid), (0x00, 3));
        let z = write_zeroes(1, 5, MAX_NLB + 1);
        assert_eq!(z.len(), 2);
        assert_eq!(z[0].cmd.opcode, 0x08);
        assert_eq!(z[0].cmd.cdw12, 0xffff);
        assert_eq!((z[1].cmd.cdw10, z[1].cmd.cdw12), (5 + MAX_NLB as u32, 0));
    }

    #[test]
    fn deallocate_range_list() {
        let d = deallocate(2, 0x20, 8);
        assert_eq!(d.len(), 1);
        let c = &d[0].cmd;
        assert_eq!((c.opcode, c.cdw10, c.cdw11), (0x09, 0, DSM_AD));
        match &d[0].buf {
            IoBuf::Out(b) => {
                let r = DsmRange::parse_list(b, 1).unwrap();
                assert_eq!((r[0].slba(), r[0].nlb()), (0x20, 8));
            }
            other => panic!("{other:?}"),
        }
        let big = deallocate(2, 0, 257 * u64::from(u32::MAX));
        assert_eq!(big.len(), 2);
        assert_eq!(big[0].cmd.cdw10, 255);
        assert_eq!(big[1].cmd.cdw10, 0);
    }

    #[test]
    fn identify_namespace_command() {
        let c = identify(5, 0, Csi::Nvm);
        assert_eq!((c.opcode, c.nsid, c.cdw10, c.cdw11), (0x06, 5, 0, 0));
        let c = identify(5, 0x05, Csi::Zoned);
        assert_eq!((c.cdw10, c.cdw11), (0x05, 0x0200_0000));
    }

    #[test]
    fn zone_append_command() {
        let p = zone_append(2, 0x1_0000_0000, Bytes::from(vec![7u8; 8192]), true, 4096);
        let c = &p.cmd;
        assert_eq!((c.opcode, c.nsid, c.cdw10, c.cdw11), (0x7d, 2, 0, 1));
        assert_eq!(c.cdw12, FUA | 1);
        assert!(matches!(&p.buf, IoBuf::Out(b) if b.len() == 8192));
    }
}
