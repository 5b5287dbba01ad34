//! Walking a command's data pointer into host memory segments: PRP1/PRP2 and PRP lists
//! (NVMe Base 2.0 §4.3.1) and, where enabled, one SGL Data Block descriptor (§4.3.2).

use super::State;
use crate::sgl::{SUBTYPE_ADDRESS, TYPE_DATA_BLOCK};
use crate::{Sqe, Status};

/// The memory page size (CC.MPS = 0 is the only one the model accepts).
pub(super) const PAGE: u64 = 4096;

/// (IOVA, length) pieces of a transfer, in order.
type Segments = Vec<(u64, usize)>;

fn prp_at(sqe: &Sqe, first: bool) -> u64 {
    let d = &sqe.dptr;
    let half = if first { &d[0..8] } else { &d[8..16] };
    u64::from_le_bytes(half.try_into().unwrap_or([0; 8]))
}

impl State {
    /// The segments of a `len`-byte transfer described by `sqe`'s data pointer. SGLs are
    /// accepted only when `allow_sgl` (NVM I/O on a controller with `sgls`).
    fn segments(&self, sqe: &Sqe, len: usize, allow_sgl: bool) -> Result<Segments, Status> {
        if len == 0 {
            return Ok(Vec::new());
        }
        match sqe.psdt() {
            0 => self.prp_segments(sqe, len as u64),
            1 if allow_sgl => sgl_segment(sqe, len),
            _ => Err(Status::INVALID_FIELD),
        }
    }

    /// NVMe Base 2.0 §4.3.1: only PRP1 may carry an offset (dword aligned); PRP2 is a data page
    /// when the transfer spans two pages, else a PRP list pointer (qword aligned, may have an
    /// offset); list entries are page aligned and the last entry of a full list page chains to
    /// the next list.
    fn prp_segments(&self, sqe: &Sqe, len: u64) -> Result<Segments, Status> {
        let prp1 = prp_at(sqe, true);
        if prp1 & 3 != 0 {
            return Err(Status::PRP_OFFSET_INVALID);
        }
        let first = len.min(PAGE - prp1 % PAGE);
        let mut segs = vec![(prp1, first as usize)];
        let mut left = len - first;
        if left == 0 {
            return Ok(segs);
        }
        let prp2 = prp_at(sqe, false);
        if left <= PAGE {
            if !prp2.is_multiple_of(PAGE) {
                return Err(Status::PRP_OFFSET_INVALID);
            }
            segs.push((prp2, left as usize));
            return Ok(segs);
        }
        if prp2 & 7 != 0 {
            return Err(Status::PRP_OFFSET_INVALID);
        }
        let mut entry = prp2;
        while left > 0 {
            let last_in_page = (entry + 8).is_multiple_of(PAGE);
            let mut raw = [0u8; 8];
            self.host_read(entry, &mut raw)?;
            let value = u64::from_le_bytes(raw);
            if last_in_page && left > PAGE {
                // Chain to the next PRP list page.
                if value & 7 != 0 {
                    return Err(Status::PRP_OFFSET_INVALID);
                }
                entry = value;
                continue;
            }
            if !value.is_multiple_of(PAGE) {
                return Err(Status::PRP_OFFSET_INVALID);
            }
            let n = left.min(PAGE);
            segs.push((value, n as usize));
            left -= n;
            entry += 8;
        }
        Ok(segs)
    }

    /// Copy `data` to the host buffer described by `sqe`.
    pub(super) fn deliver_data(
        &self,
        sqe: &Sqe,
        data: &[u8],
        allow_sgl: bool,
    ) -> Result<(), Status> {
        let mut done = 0;
        for (addr, n) in self.segments(sqe, data.len(), allow_sgl)? {
            self.host_write(addr, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Copy `len` bytes from the host buffer described by `sqe`.
    pub(super) fn fetch_data(
        &self,
        sqe: &Sqe,
        len: usize,
        allow_sgl: bool,
    ) -> Result<Vec<u8>, Status> {
        let mut data = vec![0u8; len];
        let mut done = 0;
        for (addr, n) in self.segments(sqe, len, allow_sgl)? {
            self.host_read(addr, &mut data[done..done + n])?;
            done += n;
        }
        Ok(data)
    }
}

/// NVMe Base 2.0 §4.3.2: one SGL Data Block descriptor (address subtype) covering the transfer.
fn sgl_segment(sqe: &Sqe, len: usize) -> Result<Segments, Status> {
    let d = &sqe.dptr;
    let addr = u64::from_le_bytes(d[0..8].try_into().unwrap_or([0; 8]));
    let length = u32::from_le_bytes([d[8], d[9], d[10], d[11]]) as usize;
    if d[15] >> 4 != TYPE_DATA_BLOCK || d[15] & 0xf != SUBTYPE_ADDRESS {
        return Err(Status::SGL_DESCRIPTOR_TYPE_INVALID);
    }
    if length < len {
        return Err(Status::DATA_SGL_LENGTH_INVALID);
    }
    Ok(vec![(addr, len)])
}
