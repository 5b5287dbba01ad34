//! Host-to-controller data solicited with R2T and received in H2CData PDUs (NVMe/TCP 1.0
//! §3.3.2.2): the per-command R2T ring, TTAG allocation and H2CData checks.

use bytes::Bytes;
use tracing::debug;

use super::*;

#[derive(Clone, Copy, Default)]
pub(super) struct OutstandingR2t {
    ttag: u16,
    r2to: u32,
    r2tl: u32,
}

/// The R2Ts outstanding for one command, oldest first, kept inline (no allocation).
#[derive(Default)]
pub(super) struct R2tRing {
    items: [OutstandingR2t; MAX_OUTSTANDING_R2T as usize],
    head: usize,
    len: usize,
}

impl R2tRing {
    fn len(&self) -> usize {
        self.len
    }

    fn push_back(&mut self, r: OutstandingR2t) {
        if self.len < self.items.len() {
            self.items[(self.head + self.len) % self.items.len()] = r;
            self.len += 1;
        }
    }

    fn get(&self, i: usize) -> Option<OutstandingR2t> {
        (i < self.len).then(|| self.items[(self.head + i) % self.items.len()])
    }

    fn position(&self, ttag: u16) -> Option<usize> {
        (0..self.len).find(|&i| self.get(i).is_some_and(|r| r.ttag == ttag))
    }

    fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % self.items.len();
            self.len -= 1;
        }
    }
}

/// Where a solicited command's data is collected.
#[derive(Default)]
pub(super) enum H2cData {
    #[default]
    Nothing,
    /// All of it, in one H2CData PDU (the usual case): a slice of the receive buffer.
    Whole(Bytes),
    /// Several pieces, copied as they arrive into a pooled buffer of the command's size, so
    /// no slice of the receive buffer is kept alive while the rest is solicited.
    Gathered(DataBuf),
    /// Device memory the handler lent for the data (a drive's DMA buffer of the command's
    /// size), which every piece is received into.
    Lent(Lent),
}

/// Host-to-controller data being solicited with R2Ts (NVMe/TCP 1.0 §3.3.2.2).
pub(super) struct H2cTransfer {
    pub(super) total: u32,
    pub(super) received: u32,
    pub(super) next_r2to: u32,
    /// The data received so far.
    pub(super) data: H2cData,
    pub(super) r2ts: R2tRing,
    pub(super) digest_failed: bool,
}

impl TargetConnection {
    fn alloc_ttag(&mut self) -> Option<u16> {
        for _ in 0..=u16::MAX {
            let t = self.next_ttag;
            self.next_ttag = self.next_ttag.wrapping_add(1);
            if !self.ttags.contains_key(&t) {
                return Some(t);
            }
        }
        None
    }

    /// Send R2Ts until MAXR2T are outstanding or the whole buffer is solicited
    /// (§3.3.2.2: sequential offsets, each at most MAXH2CDATA).
    pub(super) fn issue_r2ts(&mut self, cid: u16) {
        let max_piece = self.config.max_h2c_data.max(4);
        loop {
            let Some(x) = self.core.receiving(cid) else {
                return;
            };
            if x.r2ts.len() as u32 >= self.max_r2t || x.next_r2to >= x.total {
                return;
            }
            let r2to = x.next_r2to;
            let r2tl = (x.total - r2to).min(max_piece);
            let Some(ttag) = self.alloc_ttag() else {
                return;
            };
            self.ttags.insert(ttag, cid);
            if let Some(x) = self.core.receiving_mut(cid) {
                x.next_r2to = r2to + r2tl;
                x.r2ts.push_back(OutstandingR2t { ttag, r2to, r2tl });
            }
            self.push_pdu(&Pdu::new(PduHeader::R2t(R2t {
                cccid: cid,
                ttag,
                r2to,
                r2tl,
            })));
        }
    }

    pub(super) fn handle_h2c_data(
        &mut self,
        d: H2CData,
        flags: u8,
        data: Bytes,
        digest_ok: bool,
    ) -> Result<(), FatalError> {
        let (cid, done) = self.check_h2c(&d, flags, data.len())?;
        let Some(x) = self.core.receiving_mut(cid) else {
            return Err(FatalError::new(Fes::PduSequenceError, 0));
        };
        let at = x.received as usize;
        if let H2cData::Lent(lent) = &x.data {
            // In range (R2Ts never reach past the command's total, the lent size); were it
            // not, the command fails as one whose data did not arrive intact.
            if !lent.write(at, &data) {
                x.digest_failed = true;
            }
        } else if at == 0 && at + data.len() == x.total as usize {
            x.data = H2cData::Whole(data);
        } else {
            if at == 0 {
                x.data = H2cData::Gathered(self.out.pool().take(x.total as usize));
            }
            if let H2cData::Gathered(buf) = &mut x.data {
                buf.as_mut_slice()[at..at + data.len()].copy_from_slice(&data);
            }
        }
        self.accept_h2c(cid, &d, done, digest_ok);
        Ok(())
    }

    /// The checks of an H2CData header against its command's outstanding R2Ts (§3.3.2.2), for
    /// `data_len` bytes of data: the command's CID and whether the PDU completes its R2T.
    pub(super) fn check_h2c(
        &self,
        d: &H2CData,
        flags: u8,
        data_len: usize,
    ) -> Result<(u16, bool), FatalError> {
        // §3.3.2.2: an unknown TTAG is an invalid header field at the TTAG offset.
        let Some(&cid) = self.ttags.get(&d.ttag) else {
            return Err(FatalError::field(OFFSET_DATA_TTAG));
        };
        if cid != d.cccid {
            return Err(FatalError::field(OFFSET_DATA_CCCID));
        }
        if d.datal as usize != data_len {
            return Err(FatalError::field(OFFSET_DATA_DATAL));
        }
        // §3.3.2.2: DATAL above MAXH2CDATA is Data Transfer Limit Exceeded.
        if d.datal > self.config.max_h2c_data {
            return Err(FatalError::new(Fes::DataLimitExceeded, 0));
        }
        let Some(x) = self.core.receiving(cid) else {
            return Err(FatalError::new(Fes::PduSequenceError, 0));
        };
        let Some(pos) = x.r2ts.position(d.ttag) else {
            return Err(FatalError::field(OFFSET_DATA_TTAG));
        };
        let Some(OutstandingR2t { r2to, r2tl, .. }) = x.r2ts.get(pos) else {
            return Err(FatalError::field(OFFSET_DATA_TTAG));
        };
        let r2t_end = u64::from(r2to) + u64::from(r2tl);
        let end = u64::from(d.datao) + u64::from(d.datal);
        // §3.3.2.2: data outside R2TO..R2TO+R2TL is Data Transfer Out of Range.
        if d.datao < r2to || end > r2t_end {
            return Err(FatalError::new(Fes::DataOutOfRange, 0));
        }
        // §3.3.2.2: R2Ts of one command are serviced in order and H2CData PDUs are
        // contiguous; anything else is a PDU Sequence Error.
        if pos != 0 || d.datao != x.received {
            return Err(FatalError::new(Fes::PduSequenceError, 0));
        }
        let done = end == r2t_end;
        // LAST_PDU marks exactly the PDU that completes the R2T.
        if (flags & FLAG_LAST_PDU != 0) != done {
            return Err(FatalError::new(Fes::PduSequenceError, 0));
        }
        Ok((cid, done))
    }

    /// The data of a checked H2CData PDU ([`TargetConnection::check_h2c`]) is in place:
    /// count it, solicit more or hand the command on once all its data is in.
    pub(super) fn accept_h2c(&mut self, cid: u16, d: &H2CData, done: bool, digest_ok: bool) {
        if !digest_ok {
            debug!(peer = %self.core.info().peer, cid, "data digest error in H2CData");
        }
        let Some(x) = self.core.receiving_mut(cid) else {
            return;
        };
        // §3.5.2: a data digest error is not fatal; we keep receiving and fail the command
        // with a Transient Transport Error once its data is in.
        if !digest_ok {
            x.digest_failed = true;
        }
        x.received += d.datal;
        if !done {
            return;
        }
        x.r2ts.pop_front();
        let all_in = x.received >= x.total;
        self.ttags.remove(&d.ttag);
        if !all_in {
            self.issue_r2ts(cid);
            return;
        }
        let Some((sqe, x)) = self.core.finish_receiving(cid) else {
            return;
        };
        if x.digest_failed {
            if let H2cData::Gathered(buf) = x.data {
                self.out.pool().give(buf);
            }
            self.respond_status(&sqe, Status::TRANSIENT_TRANSPORT_ERROR);
            return;
        }
        let data = match x.data {
            H2cData::Nothing => HostData::Bytes(Bytes::new()),
            H2cData::Whole(b) => HostData::Bytes(b),
            H2cData::Gathered(buf) => HostData::Gathered(buf),
            H2cData::Lent(lent) => HostData::Lent(lent),
        };
        self.dispatch(sqe, data, 0)
    }
}
