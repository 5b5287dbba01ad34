//! Data the controller moves for a command: R2Ts the host answers with H2CData, and C2HData
//! checked and gathered into the command's buffer (NVMe/TCP 1.0 §3.3.2, §3.6.2.8).

use super::*;

#[derive(Clone, Copy, Debug)]
pub(super) struct C2hLayout {
    pdo: usize,
    ddgst: bool,
}

impl HostConn {
    pub(super) fn on_r2t(&mut self, r2t: pdu::R2t) -> Result<(), (FatalError, String)> {
        let Some(n) = self.negotiated() else {
            return Err((
                FatalError::new(Fes::PduSequenceError, 0),
                "R2T before ICResp".into(),
            ));
        };
        let Some(data) = self
            .inflight
            .get(r2t.cccid)
            .and_then(|c| c.r2t_data.clone())
        else {
            return Err((
                FatalError::field(pdu::OFFSET_DATA_CCCID),
                format!("R2T for CID {} which has no R2T data", r2t.cccid),
            ));
        };
        if r2t.r2tl == 0 {
            return Err((
                FatalError::field(pdu::OFFSET_DATA_DATAL),
                "R2T with R2TL 0".into(),
            ));
        }
        // NVMe/TCP 1.0 §3.6.2.9: the R2T must lie within the command's data.
        let end = u64::from(r2t.r2to) + u64::from(r2t.r2tl);
        if end > data.len() as u64 {
            return Err((
                FatalError::new(Fes::DataOutOfRange, pdu::OFFSET_DATA_DATAO),
                format!(
                    "R2T {}+{} beyond the {}-byte write",
                    r2t.r2to,
                    r2t.r2tl,
                    data.len()
                ),
            ));
        }
        // NVMe/TCP 1.0 §3.6.2.7: answer with H2CData PDUs of at most MAXH2CDATA bytes each,
        // echoing CCCID and TTAG, LAST_PDU on the last one of this R2T.
        let mut offset = r2t.r2to;
        let end = end as u32;
        while offset < end {
            let len = (end - offset).min(n.maxh2cdata);
            let last = offset + len == end;
            let piece = data.slice(offset as usize..(offset + len) as usize);
            let pdu = Pdu::with_data(
                PduHeader::H2CData(pdu::H2CData {
                    cccid: r2t.cccid,
                    ttag: r2t.ttag,
                    datao: offset,
                    datal: len,
                }),
                if last { FLAG_LAST_PDU } else { 0 },
                piece,
            );
            self.queue_pdu(&pdu, host_opts(n));
            offset += len;
        }
        Ok(())
    }

    /// Validate a C2HData header before buffering its data.
    pub(super) fn check_c2h(
        &self,
        ch: &CommonHeader,
        d: &pdu::C2HData,
        header_end: usize,
        n: Negotiated,
    ) -> Result<C2hLayout, (FatalError, String)> {
        let Some(cmd) = self.inflight.get(d.cccid) else {
            return Err((
                FatalError::field(pdu::OFFSET_DATA_CCCID),
                format!("C2HData for unknown CID {}", d.cccid),
            ));
        };
        if cmd.data_in_len == 0 {
            return Err((
                FatalError::field(pdu::OFFSET_DATA_CCCID),
                format!("C2HData for CID {} which reads no data", d.cccid),
            ));
        }
        if cmd.last_seen {
            return Err((
                FatalError::new(Fes::PduSequenceError, 0),
                format!("C2HData for CID {} after its LAST_PDU", d.cccid),
            ));
        }
        if d.datal == 0 {
            return Err((
                FatalError::field(pdu::OFFSET_DATA_DATAL),
                "C2HData DATAL 0".into(),
            ));
        }
        // NVMe/TCP 1.0 §3.6.2.8: data arrives in order without gaps or overlap.
        if d.datao != cmd.received {
            return Err((
                FatalError::field(pdu::OFFSET_DATA_DATAO),
                format!(
                    "C2HData DATAO {} but {} bytes received",
                    d.datao, cmd.received
                ),
            ));
        }
        if u64::from(d.datao) + u64::from(d.datal) > u64::from(cmd.data_in_len) {
            return Err((
                FatalError::new(Fes::DataOutOfRange, pdu::OFFSET_DATA_DATAL),
                format!(
                    "C2HData {}+{} beyond the {}-byte buffer",
                    d.datao, d.datal, cmd.data_in_len
                ),
            ));
        }
        let ddgst = n.digests.data;
        if ddgst != (ch.flags & FLAG_DDGSTF != 0) {
            return Err((
                FatalError::field(pdu::OFFSET_FLAGS),
                format!("DDGSTF flag {:#04x} disagrees with negotiation", ch.flags),
            ));
        }
        if ch.flags & FLAG_SUCCESS != 0 {
            // NVMe/TCP 1.0 §3.6.2.8: SUCCESS is only valid together with LAST_PDU; without
            // it the host could not tell when the command ends, so that stays fatal.
            if ch.flags & FLAG_LAST_PDU == 0 {
                return Err((
                    FatalError::field(pdu::OFFSET_FLAGS),
                    format!(
                        "C2HData SUCCESS flag without LAST_PDU (flags {:#04x})",
                        ch.flags
                    ),
                ));
            }
            // §3.6.2.8 also reserves SUCCESS for queues with SQ flow control disabled. A
            // controller that sets it anyway loses nothing but the SQHD of this completion,
            // which this host does not need (see `HostConnConfig::sq_flow_control_disabled`):
            // accept it as Linux does.
            if !self.config.sq_flow_control_disabled {
                tracing::debug!(
                    cid = d.cccid,
                    "C2HData SUCCESS with SQ flow control on: tolerated, implicit completion"
                );
            }
        }
        // Data starts at PDO, after the header (and its digest), aligned to HPDA (0: dwords).
        let pdo = usize::from(ch.pdo);
        if pdo < header_end || pdo % pdu::pda_alignment(0) != 0 {
            return Err((
                FatalError::field(pdu::OFFSET_PDO),
                format!("C2HData PDO {pdo}"),
            ));
        }
        let want = pdo + d.datal as usize + if ddgst { DIGEST_LEN } else { 0 };
        if ch.plen() as usize != want {
            return Err((
                FatalError::field(pdu::OFFSET_PLEN),
                format!("C2HData PLEN {} but {want} expected", ch.plen()),
            ));
        }
        Ok(C2hLayout { pdo, ddgst })
    }

    pub(super) fn on_c2h_data(
        &mut self,
        ch: &CommonHeader,
        d: pdu::C2HData,
        whole: Bytes,
        l: C2hLayout,
    ) {
        let qid = self.config.qid;
        let Some(cmd) = self.inflight.get_mut(d.cccid) else {
            return;
        };
        let end = l.pdo + d.datal as usize;
        let data = whole.slice(l.pdo..end);
        if l.ddgst && !digest::verify(&data, &whole[end..]) {
            // Not fatal: only this command fails (NVMe/TCP 1.0 §3.6.2.8 data digest; Linux
            // completes it with a data transfer error and keeps the queue).
            tracing::debug!(cid = d.cccid, "C2HData data digest mismatch");
            cmd.digest_failed = true;
        }
        cmd.received += d.datal;
        if cmd.data.is_empty() {
            cmd.data = data;
        } else {
            cmd.more.push(data);
        }
        if ch.flags & FLAG_LAST_PDU != 0 {
            cmd.last_seen = true;
        }
        if ch.flags & FLAG_SUCCESS != 0 {
            // Implicit successful completion: no CapsuleResp follows. The synthesized CQE
            // carries SQHD 0; the host keeps no SQ head to update (see `check_c2h`).
            if let Some(cmd) = self.inflight.remove(d.cccid) {
                let cqe = Cqe::new(d.cccid, qid, 0, Status::SUCCESS, 0, 0);
                self.complete(d.cccid, cmd, cqe);
            }
        }
    }
}
