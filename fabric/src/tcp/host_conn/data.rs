//! Data the controller moves for a command: R2Ts the host answers with H2CData, and C2HData
//! checked and gathered into the command's buffer (NVMe/TCP 1.0 §3.3.2, §3.6.2.8).

use super::*;

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

    /// Check a C2HData header against its command (§3.6.2.8), for `data_len` bytes of data
    /// (what PLEN leaves for them): as soon as the header is in, and again with the data.
    pub(super) fn check_c2h(
        &self,
        d: &pdu::C2HData,
        flags: u8,
        data_len: usize,
    ) -> Result<(), (FatalError, String)> {
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
        // PLEN = PDO + DATAL (+ DDGST): the data PLEN leaves must be DATAL bytes.
        if d.datal as usize != data_len {
            return Err((
                FatalError::field(pdu::OFFSET_PLEN),
                format!(
                    "C2HData PLEN leaves {data_len} data bytes, DATAL {}",
                    d.datal
                ),
            ));
        }
        if flags & FLAG_SUCCESS != 0 {
            // NVMe/TCP 1.0 §3.6.2.8: SUCCESS is only valid together with LAST_PDU; without
            // it the host could not tell when the command ends, so that stays fatal.
            if flags & FLAG_LAST_PDU == 0 {
                return Err((
                    FatalError::field(pdu::OFFSET_FLAGS),
                    format!("C2HData SUCCESS flag without LAST_PDU (flags {flags:#04x})"),
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
        Ok(())
    }

    /// A checked C2HData PDU's data (its digest verified by the framer: `digest_ok`).
    pub(super) fn on_c2h_data(&mut self, flags: u8, d: pdu::C2HData, data: Bytes, digest_ok: bool) {
        let qid = self.config.qid;
        let Some(cmd) = self.inflight.get_mut(d.cccid) else {
            return;
        };
        if !digest_ok {
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
        if flags & FLAG_LAST_PDU != 0 {
            cmd.last_seen = true;
        }
        if flags & FLAG_SUCCESS != 0 {
            // Implicit successful completion: no CapsuleResp follows. The synthesized CQE
            // carries SQHD 0; the host keeps no SQ head to update (see `check_c2h`).
            if let Some(cmd) = self.inflight.remove(d.cccid) {
                let cqe = Cqe::new(d.cccid, qid, 0, Status::SUCCESS, 0, 0);
                self.complete(d.cccid, cmd, cqe);
            }
        }
    }
}
