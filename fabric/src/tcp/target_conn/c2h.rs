//! Controller-to-host data and the command's completion (NVMe/TCP 1.0 §3.3.2.1): C2HData
//! PDUs for the response data, then the CapsuleResp unless the last C2HData's SUCCESS flag
//! stands in for it.

use super::*;

impl TargetConnection {
    /// Send C2HData for the reply's data (if the command has a host buffer), then the
    /// CapsuleResp unless the SUCCESS flag stands in for it.
    pub(super) fn send_reply(&mut self, mut reply: Reply) {
        if let Some(buf) = reply.unused_buf.take() {
            self.out.pool().give(buf);
        }
        let cid = reply.cqe.cid();
        let cqe = reply.cqe;
        let data_len = reply.data.as_ref().map_or(0, Payload::len);
        // Never more than the host's buffer; less if that is all the target produced.
        let total = data_len.min(reply.c2h_len as usize);
        if total > 0 {
            // NVMe/TCP 1.0 §3.3.2.1: SUCCESS may replace the CapsuleResp only if SQHD
            // updates are disabled (the host disabled SQ flow control) and the synthesized
            // CQE (status and command specific fields all zero) is the true one.
            let success = self.core.flow_control_disabled()
                && cqe.status().is_success()
                && cqe.dw0.get() == 0
                && cqe.dw1.get() == 0;
            let piece = (self.config.max_c2h_pdu.max(4) & !3) as usize;
            match reply.data.take() {
                Some(Payload::Buf(mut buf)) => {
                    buf.truncate(total);
                    let slot = self.out.hold(buf);
                    self.send_held(cid, slot, total, piece, success);
                }
                Some(Payload::Lent(mut lent)) => {
                    lent.truncate(total);
                    let slot = self.out.hold_lent(lent);
                    self.send_held(cid, slot, total, piece, success);
                }
                Some(Payload::Shared(data)) => {
                    let mut off = 0;
                    while off < total {
                        let n = piece.min(total - off);
                        let last = off + n == total;
                        let mut pdu = c2h_pdu(cid, off, n, last, success);
                        pdu.data = data.slice(off..off + n);
                        self.push_pdu(&pdu);
                        off += n;
                    }
                }
                None => {}
            }
            if success {
                return;
            }
        }
        self.push_pdu(&Pdu::new(PduHeader::CapsuleResp(cqe)));
    }

    /// C2HData PDUs in offset order (§3.6.2.9) for the first `total` bytes of the buffer held
    /// in `slot` (pooled memory, or the drive's DMA memory the data was read into), each
    /// carrying its part of it; the buffer goes back once the last part is sent: no copy, no
    /// allocation.
    fn send_held(&mut self, cid: u16, slot: usize, total: usize, piece: usize, success: bool) {
        let opts = self.encode_options();
        let mut off = 0;
        while off < total {
            let n = piece.min(total - off);
            let last = off + n == total;
            let pdu = c2h_pdu(cid, off, n, last, success);
            let out = &self.out;
            let (head, _, ddgst) =
                pdu.encode_head_for(opts, n, |k| out.held_digest(slot, off, off + k));
            self.out.push_inline(head);
            self.out.push_part(slot, off, off + n, last);
            if let Some(d) = ddgst {
                self.out.push_inline(InlineBytes::from_slice(&d));
            }
            off += n;
        }
    }
}

/// A C2HData PDU header for `len` bytes at `off` (data attached by the caller).
fn c2h_pdu(cid: u16, off: usize, len: usize, last: bool, success: bool) -> Pdu {
    let mut flags = 0;
    if last {
        flags |= FLAG_LAST_PDU;
        if success {
            flags |= FLAG_SUCCESS;
        }
    }
    Pdu::with_data(
        PduHeader::C2HData(C2HData {
            cccid: cid,
            datao: off as u32,
            datal: len as u32,
        }),
        flags,
        Bytes::new(),
    )
}
