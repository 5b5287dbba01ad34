//! NVMe passthrough on a Linux NVMe generic character device (`/dev/ngXnY`): an io_uring with
//! 128-byte SQEs and 32-byte CQEs carrying `IORING_OP_URING_CMD` commands, and the
//! namespace-ID and admin-command ioctls of that device.
//!
//! Buffer ownership: a data buffer handed to [`PassthruRing::push`] belongs to the ring from
//! the moment its SQE is queued until its CQE has been reaped; the kernel may DMA into or out
//! of it at any time in between. The ring keeps it in the command's slot, hands it back in the
//! [`Completion`], frees it at completion when the submitter [`forget`](PassthruRing::forget)s
//! the command, and on drop waits for every outstanding command (leaking the buffers if the
//! kernel stops answering, never freeing memory a device may still write).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use bytes::Bytes;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `struct nvme_uring_cmd` (include/uapi/linux/nvme_ioctl.h), native endian. The same 72
/// bytes are `struct nvme_passthru_cmd` of `NVME_IOCTL_ADMIN_CMD`, whose last word is the
/// command's result (DW0) instead of reserved.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct NvmeUringCmd {
    pub opcode: u8,
    pub flags: u8,
    rsvd1: u16,
    pub nsid: u32,
    pub cdw2: u32,
    pub cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
    pub timeout_ms: u32,
    rsvd2: u32,
}
const _: () = assert!(size_of::<NvmeUringCmd>() == 72);

impl NvmeUringCmd {
    /// A command with `opcode` for namespace `nsid`, every other field zero.
    pub fn new(opcode: u8, nsid: u32) -> NvmeUringCmd {
        NvmeUringCmd {
            opcode,
            nsid,
            ..NvmeUringCmd::default()
        }
    }

    /// The passthrough form of `sqe`: opcode, NSID and command dwords 2, 3 and 10..15.
    /// The data pointer is the ring's to fill and the kernel chooses PRPs or SGLs, so
    /// `sqe`'s data pointer and flags (PSDT, fused) are dropped.
    pub fn from_sqe(sqe: &crate::sqe::Sqe) -> NvmeUringCmd {
        NvmeUringCmd {
            opcode: sqe.opcode,
            nsid: sqe.nsid.get(),
            cdw2: sqe.cdw2.get(),
            cdw3: sqe.cdw3.get(),
            cdw10: sqe.cdw10.get(),
            cdw11: sqe.cdw11.get(),
            cdw12: sqe.cdw12.get(),
            cdw13: sqe.cdw13.get(),
            cdw14: sqe.cdw14.get(),
            cdw15: sqe.cdw15.get(),
            ..NvmeUringCmd::default()
        }
    }

    /// The 80-byte `cmd` area of a 128-byte SQE: this command with its data pointer and
    /// length, then zeroes. No metadata buffer is ever passed.
    pub fn to_sqe_cmd(&self, addr: u64, data_len: u32) -> [u8; 80] {
        let mut raw = *self;
        raw.addr = addr;
        raw.data_len = data_len;
        let mut out = [0u8; 80];
        out[..size_of::<NvmeUringCmd>()].copy_from_slice(raw.as_bytes());
        out
    }
}

/// Linux `_IOWR(ty, nr, size)` / `_IO(ty, nr)` in the generic ioctl encoding (x86, arm,
/// riscv): direction in bits 31:30 (read 2 | write 1), size in 29:16, type 15:8, number 7:0.
const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

/// `NVME_IOCTL_ID`: returns the namespace ID of the device.
pub const NVME_IOCTL_ID: u32 = ioc(0, b'N', 0x40, 0);
/// `NVME_IOCTL_ADMIN_CMD`: synchronous admin command (`struct nvme_passthru_cmd`).
pub const NVME_IOCTL_ADMIN_CMD: u32 = ioc(3, b'N', 0x41, size_of::<NvmeUringCmd>());
/// `NVME_URING_CMD_IO`: I/O command through `IORING_OP_URING_CMD` on a namespace device.
pub const NVME_URING_CMD_IO: u32 = ioc(3, b'N', 0x80, size_of::<NvmeUringCmd>());
/// `NVME_URING_CMD_ADMIN`: admin command, accepted by the controller device `/dev/nvmeX`
/// only (a namespace device answers `ENOTTY`).
pub const NVME_URING_CMD_ADMIN: u32 = ioc(3, b'N', 0x82, size_of::<NvmeUringCmd>());

/// The namespace ID of the NVMe device open as `dev`.
pub fn namespace_id(dev: &OwnedFd) -> io::Result<u32> {
    // SAFETY: NVME_IOCTL_ID takes no argument and touches no user memory; `dev` is an open
    // descriptor for the whole call.
    let ret = unsafe { libc::ioctl(dev.as_raw_fd(), NVME_IOCTL_ID as _) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret as u32)
}

/// Run admin command `cmd` synchronously with `buf` as its data buffer (both directions).
/// Returns the completion's status field (0 = success, > 0 = NVMe status) and its DW0.
pub fn admin_command(dev: &OwnedFd, cmd: &NvmeUringCmd, buf: &mut [u8]) -> io::Result<(u32, u32)> {
    let mut raw = *cmd;
    raw.addr = buf.as_mut_ptr() as u64;
    // Never more than the buffer: a shorter length only shortens the transfer.
    raw.data_len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    // SAFETY: `raw` is a valid `struct nvme_passthru_cmd` (same layout, checked size) that
    // the kernel reads and writes back during the call; its data pointer and length describe
    // `buf`, exclusively borrowed for the whole synchronous ioctl, so the device transfers
    // only into memory we own until the call returns.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            NVME_IOCTL_ADMIN_CMD as _,
            &mut raw as *mut NvmeUringCmd,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((ret as u32, raw.rsvd2))
}

/// A command's data buffer while the ring owns it.
#[derive(Debug)]
pub enum IoBuf {
    /// No data transfer.
    None,
    /// The device writes into it (reads, Identify).
    In(Vec<u8>),
    /// The device reads from it (writes, Dataset Management ranges).
    Out(Bytes),
}

impl IoBuf {
    /// Address and length for the command; the length never exceeds the buffer.
    fn addr_len(&mut self) -> (u64, u32) {
        let (addr, len) = match self {
            IoBuf::None => return (0, 0),
            IoBuf::In(v) => (v.as_mut_ptr() as u64, v.len()),
            IoBuf::Out(b) => (b.as_ptr() as u64, b.len()),
        };
        (addr, u32::try_from(len).unwrap_or(u32::MAX))
    }
}

/// Why [`PassthruRing::push`] did not take a command; the buffer comes back.
#[derive(Debug)]
pub enum Rejected {
    /// Every slot is busy: push again after completions are reaped.
    Full(IoBuf),
    /// A shared buffer for an opcode that is not host to controller.
    Direction(IoBuf),
}

/// The outcome of one command.
#[derive(Debug)]
pub struct Completion {
    /// CQE `res`: 0 success, > 0 the NVMe status field, < 0 a negated errno.
    pub res: i32,
    /// The command's result, completion DW0 (low) and DW1 (high), from the big CQE.
    pub result: u64,
    /// The data buffer, back from the kernel.
    pub buf: IoBuf,
}

#[derive(Debug)]
enum Slot {
    Free,
    InFlight(IoBuf),
    /// In flight, its submitter gone: freed at completion.
    Orphan(IoBuf),
    Done(Completion),
}

/// One io_uring (SQE128 | CQE32) for passthrough commands to one NVMe generic device.
pub struct PassthruRing {
    ring: IoUring<squeue::Entry128, cqueue::Entry32>,
    dev: Arc<OwnedFd>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    iopoll: bool,
}

impl PassthruRing {
    /// A ring of `depth` slots for `dev`; with `iopoll` completions are polled
    /// (`IORING_SETUP_IOPOLL`), which the kernel refuses with `EINVAL`/`EOPNOTSUPP` where
    /// unsupported.
    pub fn new(dev: Arc<OwnedFd>, depth: u32, iopoll: bool) -> io::Result<PassthruRing> {
        let depth = depth.max(1);
        let mut builder = IoUring::<squeue::Entry128, cqueue::Entry32>::builder();
        if iopoll {
            builder.setup_iopoll();
        }
        let ring = builder.build(depth)?;
        Ok(PassthruRing {
            ring,
            dev,
            slots: (0..depth).map(|_| Slot::Free).collect(),
            free: (0..depth).rev().collect(),
            iopoll,
        })
    }

    pub fn iopoll(&self) -> bool {
        self.iopoll
    }

    /// Commands queued or in flight whose completion has not been reaped yet.
    pub fn outstanding(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::InFlight(_) | Slot::Orphan(_)))
            .count()
    }

    /// Queue `cmd` (with `cmd_op`, e.g. [`NVME_URING_CMD_IO`]) and its data buffer; the
    /// command's data pointer and length are set from `buf`. Returns the command's tag, or
    /// the buffer back when every slot is busy or when `buf` is a shared [`IoBuf::Out`] and
    /// the opcode does not move data host to controller. Nothing reaches the kernel before
    /// [`submit`](Self::submit) or [`wait`](Self::wait).
    pub fn push(
        &mut self,
        cmd_op: u32,
        cmd: &NvmeUringCmd,
        mut buf: IoBuf,
    ) -> Result<u32, Rejected> {
        // The opcode's bits 1:0 give the data direction (NVMe Base 2.0 §3.1.3, Figure 91) and
        // the kernel maps the buffer accordingly: the device may write only into owned memory.
        if matches!(buf, IoBuf::Out(_)) && cmd.opcode & 0b11 != 0b01 {
            return Err(Rejected::Direction(buf));
        }
        let Some(tag) = self.free.pop() else {
            return Err(Rejected::Full(buf));
        };
        let (addr, len) = buf.addr_len();
        let entry = opcode::UringCmd80::new(types::Fd(self.dev.as_raw_fd()), cmd_op)
            .cmd(cmd.to_sqe_cmd(addr, len))
            .build()
            .user_data(u64::from(tag));
        // The SQ has as many entries as there are slots, so a free slot means a free SQE.
        // SAFETY: the SQE points at `buf`'s heap memory (never at the `IoBuf` value itself, so
        // moving it into the slot does not move the memory) and at `self.dev`. The slot keeps
        // `buf` until the CQE with this tag is reaped, `Drop` waits for every outstanding
        // command, and `self.dev` outlives the ring, so everything the kernel touches stays
        // valid until it is done.
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            self.free.push(tag);
            return Err(Rejected::Full(buf));
        }
        self.slots[tag as usize] = Slot::InFlight(buf);
        Ok(tag)
    }

    /// Submit queued commands and collect completions without blocking (with IOPOLL this
    /// polls the device once). Without IOPOLL and with nothing queued there is no system
    /// call: completions are posted by task work that runs whenever the thread leaves the
    /// kernel.
    pub fn submit(&mut self) -> io::Result<()> {
        if !self.iopoll && self.ring.submission().is_empty() {
            self.reap();
            return Ok(());
        }
        self.enter(0)
    }

    /// Submit queued commands and block until at least one completion arrives (returns at
    /// once when nothing is outstanding).
    pub fn wait(&mut self) -> io::Result<()> {
        let want = usize::from(self.outstanding() > 0);
        self.enter(want)
    }

    fn enter(&mut self, want: usize) -> io::Result<()> {
        loop {
            match self.ring.submit_and_wait(want) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The CQ is full: make room, then try again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap(),
                Err(e) => {
                    self.reap();
                    return Err(e);
                }
            }
        }
        self.reap();
        Ok(())
    }

    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            let Some(slot) = usize::try_from(cqe.user_data())
                .ok()
                .and_then(|t| self.slots.get_mut(t))
            else {
                continue;
            };
            match std::mem::replace(slot, Slot::Free) {
                Slot::InFlight(buf) => {
                    *slot = Slot::Done(Completion {
                        res: cqe.result(),
                        result: cqe.big_cqe()[0],
                        buf,
                    })
                }
                Slot::Orphan(_) => self.free.push(cqe.user_data() as u32),
                other => *slot = other,
            }
        }
    }

    /// The completion of command `tag` once it has been reaped; frees the slot.
    pub fn take(&mut self, tag: u32) -> Option<Completion> {
        let slot = self.slots.get_mut(tag as usize)?;
        if !matches!(slot, Slot::Done(_)) {
            return None;
        }
        let Slot::Done(c) = std::mem::replace(slot, Slot::Free) else {
            return None;
        };
        self.free.push(tag);
        Some(c)
    }

    /// Give up on command `tag`: its buffer is freed when it completes (now, if it has).
    pub fn forget(&mut self, tag: u32) {
        let Some(slot) = self.slots.get_mut(tag as usize) else {
            return;
        };
        match std::mem::replace(slot, Slot::Free) {
            Slot::InFlight(buf) => *slot = Slot::Orphan(buf),
            Slot::Done(_) => self.free.push(tag),
            other => *slot = other,
        }
    }
}

impl Drop for PassthruRing {
    fn drop(&mut self) {
        while self.outstanding() > 0 {
            if self.wait().is_err() {
                break;
            }
        }
        // Whatever the kernel still owns is leaked rather than freed under its feet.
        for slot in &mut self.slots {
            if let Slot::InFlight(buf) | Slot::Orphan(buf) = std::mem::replace(slot, Slot::Free) {
                std::mem::forget(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux() {
        assert_eq!(NVME_IOCTL_ID, 0x4e40);
        assert_eq!(NVME_IOCTL_ADMIN_CMD, 0xc048_4e41);
        assert_eq!(NVME_URING_CMD_IO, 0xc048_4e80);
        assert_eq!(NVME_URING_CMD_ADMIN, 0xc048_4e82);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn uring_cmd_golden_bytes() {
        let mut c = NvmeUringCmd::new(0x02, 0x0102_0304);
        c.flags = 0x05;
        c.cdw2 = 0x1111_1111;
        c.cdw3 = 0x2222_2222;
        c.cdw10 = 0xa0a1_a2a3;
        c.cdw11 = 0xb0b1_b2b3;
        c.cdw12 = 0xc0c1_c2c3;
        c.cdw13 = 0xd0d1_d2d3;
        c.cdw14 = 0xe0e1_e2e3;
        c.cdw15 = 0xf0f1_f2f3;
        c.timeout_ms = 0x0000_7530;
        let b = c.to_sqe_cmd(0x1122_3344_5566_7788, 0x0002_0000);
        let expect: [u8; 80] = [
            0x02, 0x05, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01, // opcode flags rsvd1 nsid
            0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // cdw2 cdw3
            0, 0, 0, 0, 0, 0, 0, 0, // metadata
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // addr
            0, 0, 0, 0, 0x00, 0x00, 0x02, 0x00, // metadata_len data_len
            0xa3, 0xa2, 0xa1, 0xa0, 0xb3, 0xb2, 0xb1, 0xb0, // cdw10 cdw11
            0xc3, 0xc2, 0xc1, 0xc0, 0xd3, 0xd2, 0xd1, 0xd0, // cdw12 cdw13
            0xe3, 0xe2, 0xe1, 0xe0, 0xf3, 0xf2, 0xf1, 0xf0, // cdw14 cdw15
            0x30, 0x75, 0x00, 0x00, 0, 0, 0, 0, // timeout_ms rsvd2
            0, 0, 0, 0, 0, 0, 0, 0, // rest of the SQE cmd area
        ];
        assert_eq!(b, expect);
    }

    #[test]
    fn from_sqe_keeps_the_command_dwords_and_drops_flags_and_pointers() {
        let zs = crate::command::ZoneSend {
            nsid: 3,
            slba: 0x1_0000_2000,
            action: crate::zns::ZoneAction::Finish,
            select_all: true,
            zsaso: false,
        };
        let mut sqe = zs.to_sqe();
        sqe.flags = 0x40;
        sqe.dptr = [0xff; 16];
        let c = NvmeUringCmd::from_sqe(&sqe);
        assert_eq!((c.opcode, c.flags, c.nsid), (0x79, 0, 3));
        assert_eq!((c.cdw10, c.cdw11, c.cdw13), (0x2000, 1, 0x102));
        assert_eq!((c.addr, c.data_len), (0, 0));
    }

    /// A file without `uring_cmd` (here /dev/zero; recent kernels give /dev/null a no-op
    /// one) fails every command with EOPNOTSUPP:
    /// enough to run the ring's slot bookkeeping against the real kernel.
    #[test]
    fn ring_returns_buffers_with_their_completions() {
        let dev: OwnedFd = std::fs::File::open("/dev/zero").unwrap().into();
        let mut ring = PassthruRing::new(Arc::new(dev), 2, false).unwrap();
        let cmd = NvmeUringCmd::new(0x02, 1);
        let a = ring
            .push(NVME_URING_CMD_IO, &cmd, IoBuf::In(vec![7u8; 512]))
            .unwrap();
        let b = ring.push(NVME_URING_CMD_IO, &cmd, IoBuf::None).unwrap();
        assert!(
            matches!(
                ring.push(NVME_URING_CMD_IO, &cmd, IoBuf::None),
                Err(Rejected::Full(_))
            ),
            "only 2 slots"
        );
        assert_eq!(ring.outstanding(), 2);
        ring.forget(b);
        while ring.outstanding() > 0 {
            ring.wait().unwrap();
        }
        let c = ring.take(a).expect("completion of the first command");
        assert_eq!(c.res, -libc::EOPNOTSUPP);
        match c.buf {
            IoBuf::In(v) => assert_eq!(v, vec![7u8; 512]),
            other => panic!("{other:?}"),
        }
        assert!(ring.take(a).is_none());
        assert!(
            ring.take(b).is_none(),
            "a forgotten command has no completion"
        );
        // Both slots are free again.
        ring.push(NVME_URING_CMD_IO, &cmd, IoBuf::None).unwrap();
        ring.push(NVME_URING_CMD_IO, &cmd, IoBuf::None).unwrap();
    }

    #[test]
    fn shared_buffers_only_go_host_to_controller() {
        let dev: OwnedFd = std::fs::File::open("/dev/zero").unwrap().into();
        let mut ring = PassthruRing::new(Arc::new(dev), 4, false).unwrap();
        let out = || IoBuf::Out(Bytes::from_static(&[0u8; 512]));
        for opcode in [0x02u8, 0x00, 0x06, 0x7f] {
            assert!(
                matches!(
                    ring.push(NVME_URING_CMD_IO, &NvmeUringCmd::new(opcode, 1), out()),
                    Err(Rejected::Direction(_))
                ),
                "opcode {opcode:#x}"
            );
        }
        assert_eq!(ring.outstanding(), 0);
        for opcode in [0x01u8, 0x09] {
            ring.push(NVME_URING_CMD_IO, &NvmeUringCmd::new(opcode, 1), out())
                .unwrap();
        }
        while ring.outstanding() > 0 {
            ring.wait().unwrap();
        }
    }

    #[test]
    fn io_buf_length_never_exceeds_the_buffer() {
        let mut v = IoBuf::In(vec![0u8; 4096]);
        let (addr, len) = v.addr_len();
        assert_ne!(addr, 0);
        assert_eq!(len, 4096);
        assert_eq!(IoBuf::None.addr_len(), (0, 0));
        let mut o = IoBuf::Out(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(o.addr_len().1, 3);
    }
}
