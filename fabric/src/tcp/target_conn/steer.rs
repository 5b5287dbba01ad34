//! H2CData received straight into lent device memory: once an H2CData PDU's header is in and
//! checked, and its command receives into memory the handler lent (a drive's DMA buffer), the
//! PDU's data is taken as it arrives instead of waiting for the whole PDU in the receive
//! buffer. Bytes already buffered are copied in; the rest the driver receives into the lent
//! range itself ([`TargetConnection::recv_targets`]), with no copy. The checks are those of a
//! whole H2CData PDU (NVMe/TCP 1.0 §3.3.2.2); a PDU that fails them is left to the framer,
//! which reports it once it is complete.

use bytes::BytesMut;

use super::h2c::{H2cData, H2cTransfer};
use super::*;
use crate::sys;
use crate::tcp::digest::{crc32c_append, DIGEST_LEN};

/// The H2CData PDU whose data is being steered.
pub(super) struct Steer {
    cid: u16,
    d: H2CData,
    /// The PDU completes its R2T.
    done: bool,
    /// Data bytes still to come.
    left: usize,
    /// Where in the lent memory the next byte goes.
    at: usize,
    /// The running CRC32C of the data when a data digest follows it.
    crc: Option<u32>,
    /// A part could not be placed: the command fails as if its digest had.
    failed: bool,
}

/// The lent memory command `cid` receives into.
fn lent_of(core: &QueueCore<H2cTransfer>, cid: u16) -> Option<&Lent> {
    match core.receiving(cid) {
        Some(H2cTransfer {
            data: H2cData::Lent(lent),
            ..
        }) => Some(lent),
        _ => None,
    }
}

impl TargetConnection {
    /// After the framer found no whole PDU: steer the front PDU's data when it is a checked
    /// H2CData for a command receiving into lent memory.
    pub(super) fn try_steer(&mut self) -> bool {
        // Only H2CData is steered: other PDUs (a RAM write's capsule arriving in pieces, say)
        // are not parsed twice.
        if self.framer.front_type() != Some(PduType::H2CData) {
            return false;
        }
        let Some(p) = self.framer.partial() else {
            return false;
        };
        let PduHeader::H2CData(d) = p.header else {
            return false;
        };
        let Ok((cid, done)) = self.check_h2c(&d, p.flags, p.data_len) else {
            return false;
        };
        if lent_of(&self.core, cid).is_none() {
            return false;
        }
        self.framer.advance(p.data_start);
        self.steer = Some(Steer {
            cid,
            d,
            done,
            left: p.data_len,
            at: d.datao as usize,
            crc: p.ddgst.then_some(0),
            failed: false,
        });
        true
    }

    /// Move the steered PDU's buffered bytes into its lent memory, and finish the PDU once its
    /// data and digest are in; `false` while more bytes are needed.
    pub(super) fn steer_buffered(&mut self) -> bool {
        let Some(st) = self.steer.as_mut() else {
            return false;
        };
        if st.left > 0 {
            let n = st.left.min(self.framer.buffered());
            if n == 0 {
                return false;
            }
            let bytes = &self.framer.front()[..n];
            if let Some(crc) = &mut st.crc {
                *crc = crc32c_append(*crc, bytes);
            }
            if !lent_of(&self.core, st.cid).is_some_and(|l| l.write(st.at, bytes)) {
                st.failed = true;
            }
            st.at += n;
            st.left -= n;
            self.framer.advance(n);
            if st.left > 0 {
                return false;
            }
        }
        let digest_ok = match st.crc {
            None => true,
            Some(crc) => {
                let Some(wire) = self.framer.front().get(..DIGEST_LEN) else {
                    return false;
                };
                let ok = wire == crc.to_le_bytes();
                self.framer.advance(DIGEST_LEN);
                ok
            }
        };
        let failed = st.failed;
        let (cid, d, done) = (st.cid, st.d, st.done);
        self.steer = None;
        self.accept_h2c(cid, &d, done, digest_ok && !failed);
        true
    }

    /// Where the next received bytes go: the range of lent memory the steered PDU's remaining
    /// data lands in (when nothing precedes it in the receive buffer), and the receive buffer
    /// for what follows.
    pub fn recv_targets(&mut self) -> (Option<(&Lent, usize, usize)>, &mut BytesMut) {
        let target = match &self.steer {
            Some(st) if st.left > 0 && self.framer.buffered() == 0 => {
                lent_of(&self.core, st.cid).map(|l| (l, st.at, st.left))
            }
            _ => None,
        };
        (target, self.framer.buffer_mut())
    }

    /// `n` bytes were received straight into the range [`TargetConnection::recv_targets`]
    /// offered.
    pub fn steered(&mut self, n: usize) {
        let Some(st) = self.steer.as_mut() else {
            return;
        };
        let n = n.min(st.left);
        if let Some(crc) = &mut st.crc {
            match lent_of(&self.core, st.cid) {
                Some(l) => *crc = sys::crc32c_lent(*crc, l, st.at, st.at + n),
                None => st.failed = true,
            }
        }
        st.at += n;
        st.left -= n;
    }
}
