//! Streaming PDU framer: bytes in (any chunking), whole checked PDUs out.
//!
//! The common header is validated as soon as its 8 bytes are in, before any of the body is
//! waited for, so an oversized PLEN is refused without buffering it. The header digest is
//! checked before the PDU-specific header is decoded; a data digest mismatch is reported on
//! the PDU (it is not fatal, NVMe/TCP 1.0 §3.5.2).

use bytes::{Buf, Bytes, BytesMut};

use super::digest::{self, DIGEST_LEN};
use super::pdu::{
    pda_alignment, CommonHeader, Digests, FatalError, Fes, PduHeader, PduType, COMMON_HEADER_LEN,
    FLAG_DDGSTF, FLAG_HDGSTF, OFFSET_FLAGS, OFFSET_HLEN, OFFSET_PDO, OFFSET_PDU_TYPE, OFFSET_PLEN,
    TERM_HLEN, TERM_MAX_DATA, TERM_MAX_PLEN,
};

/// Which end of the connection this framer receives for: a controller receives host PDUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Controller,
    Host,
}

impl Role {
    /// Whether `ty` travels towards this role (NVMe/TCP 1.0 Figure 10: bit 0 of the opcode
    /// is the direction, 0b host to controller). A PDU going the wrong way is fatal (§3.3).
    pub fn receives(self, ty: PduType) -> bool {
        match self {
            Role::Controller => matches!(
                ty,
                PduType::ICReq | PduType::H2CTermReq | PduType::CapsuleCmd | PduType::H2CData
            ),
            Role::Host => matches!(
                ty,
                PduType::ICResp
                    | PduType::C2HTermReq
                    | PduType::CapsuleResp
                    | PduType::C2HData
                    | PduType::R2T
            ),
        }
    }
}

/// One complete, header-checked PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedPdu {
    pub header: PduHeader,
    /// FLAGS as received (digest flags included).
    pub flags: u8,
    /// The raw PDU header (HLEN bytes), e.g. for the data of a TermReq about this PDU.
    pub header_bytes: Bytes,
    /// The data part (no padding, no digest); for TermReqs the offending header.
    pub data: Bytes,
    /// False when a data digest was present and did not match the data.
    pub data_digest_ok: bool,
}

/// A fatal framing error, with the header bytes that caused it (for the TermReq data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    pub error: FatalError,
    /// The PDU-type byte of the offending PDU.
    pub pdu_type: PduType,
    /// The offending PDU header as far as it was received (at most 128 bytes).
    pub header: Bytes,
}

/// Incremental PDU framer.
#[derive(Debug)]
pub struct Framer {
    role: Role,
    digests: Digests,
    /// Our own PDU data alignment requirement (CPDA for a controller, HPDA for a host).
    rx_pda: u8,
    /// Largest data part accepted in one PDU.
    max_data: u32,
    buf: BytesMut,
    failed: Option<FrameError>,
}

/// A data-carrying PDU at the front of the buffer whose checked header is in while its data
/// is still arriving ([`Framer::partial`]).
#[derive(Clone, Copy, Debug)]
pub struct PartialPdu {
    pub header: PduHeader,
    /// FLAGS as received.
    pub flags: u8,
    /// Bytes from the PDU's start to its data (header, header digest, padding).
    pub data_start: usize,
    pub data_len: usize,
    /// A data digest follows the data.
    pub ddgst: bool,
}

/// The layout one common header announces, checked against the connection settings.
#[derive(Clone, Copy, Debug)]
struct Layout {
    hlen: usize,
    hdgst: bool,
    data_start: usize,
    data_len: usize,
    ddgst: bool,
    plen: usize,
}

impl Framer {
    pub fn new(role: Role, max_data: u32) -> Framer {
        Framer {
            role,
            digests: Digests::NONE,
            rx_pda: 0,
            max_data,
            buf: BytesMut::new(),
            failed: None,
        }
    }

    /// Switch digests on or off; applies to PDUs not yet framed (call after ICReq/ICResp).
    pub fn set_digests(&mut self, digests: Digests) {
        self.digests = digests;
    }

    pub fn digests(&self) -> Digests {
        self.digests
    }

    /// The PDU data alignment this side asked for (0's based dwords).
    pub fn set_rx_pda(&mut self, pda: u8) {
        self.rx_pda = pda;
    }

    pub fn set_max_data(&mut self, max_data: u32) {
        self.max_data = max_data;
    }

    /// Append received bytes (copies them; drivers can read straight into [`Framer::buffer_mut`]).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The receive buffer: a driver reads socket data directly into it, so PDU data is handed
    /// out as slices of the same allocation.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete PDU, `Ok(None)` if more bytes are needed. After an error the framer
    /// keeps returning it: the connection is lost (NVMe/TCP 1.0 §3.5.1).
    pub fn next_pdu(&mut self) -> Result<Option<ReceivedPdu>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.try_next() {
            Ok(p) => Ok(p),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// After [`Framer::next_pdu`] answered `Ok(None)`: the PDU at the front when its header,
    /// header digest and padding are in and checked and its data has not all arrived, so the
    /// caller may take the data as it comes ([`Framer::front`], [`Framer::advance`]) instead
    /// of waiting for the whole PDU.
    pub fn partial(&self) -> Option<PartialPdu> {
        if self.failed.is_some() {
            return None;
        }
        let ch = CommonHeader::parse(&self.buf)?;
        let layout = self.layout(&ch).ok()?;
        let incomplete = self.buf.len() < layout.plen;
        if !incomplete || layout.data_len == 0 || self.buf.len() < layout.data_start {
            return None;
        }
        if layout.hdgst {
            let (hdr, rest) = self.buf.split_at(layout.hlen);
            if !digest::verify(hdr, rest) {
                return None;
            }
        }
        let header = PduHeader::parse(&self.buf).ok()?;
        Some(PartialPdu {
            header,
            flags: ch.flags,
            data_start: layout.data_start,
            data_len: layout.data_len,
            ddgst: layout.ddgst,
        })
    }

    /// The type of the PDU at the front, once its first byte is in.
    pub fn front_type(&self) -> Option<PduType> {
        self.buf.first().map(|&t| PduType::from_code(t))
    }

    /// The received bytes not yet framed.
    pub fn front(&self) -> &[u8] {
        &self.buf
    }

    /// Drop `n` received bytes from the front (a caller that took a PDU's parts itself).
    pub fn advance(&mut self, n: usize) {
        self.buf.advance(n.min(self.buf.len()));
    }

    fn fail(&self, error: FatalError, hdr_len: usize) -> FrameError {
        let n = hdr_len.min(self.buf.len()).min(TERM_MAX_DATA);
        FrameError {
            error,
            pdu_type: PduType::from_code(self.buf.first().copied().unwrap_or(0)),
            header: Bytes::copy_from_slice(self.buf.get(..n).unwrap_or_default()),
        }
    }

    /// Check the common header against the type and the connection settings.
    fn layout(&self, ch: &CommonHeader) -> Result<Layout, FatalError> {
        let ty = ch.pdu_type();
        let field = FatalError::field;
        // NVMe/TCP 1.0 Figure 10 (reserved opcodes) and §3.3 (wrong direction).
        let hlen = ty.hlen().ok_or(field(OFFSET_PDU_TYPE))?;
        if !self.role.receives(ty) {
            return Err(field(OFFSET_PDU_TYPE));
        }
        // §3.6.2: every PDU type has a fixed HLEN.
        if usize::from(ch.hlen) != hlen {
            return Err(field(OFFSET_HLEN));
        }
        let plen = ch.plen() as usize;
        if matches!(ty, PduType::H2CTermReq | PduType::C2HTermReq) {
            // §3.5.1: a TermReq has no digests and at most 128 bytes of data.
            if !(TERM_HLEN..=TERM_MAX_PLEN).contains(&plen) {
                return Err(field(OFFSET_PLEN));
            }
            return Ok(Layout {
                hlen,
                hdgst: false,
                data_start: hlen,
                data_len: plen - hlen,
                ddgst: false,
                plen,
            });
        }
        // §3.3.1.1: with header digest enabled every later PDU (TermReqs aside) carries HDGST
        // and sets HDGSTF; without it HDGSTF is clear. ICReq/ICResp precede the negotiation.
        let hdgst = self.digests.header && ty.has_header_digest();
        if ty.has_header_digest() && (ch.flags & FLAG_HDGSTF != 0) != hdgst {
            return Err(field(OFFSET_FLAGS));
        }
        let header_end = hlen + if hdgst { DIGEST_LEN } else { 0 };
        if plen < header_end {
            return Err(field(OFFSET_PLEN));
        }
        let has_data = plen > header_end;
        if !has_data || !ty.may_carry_data() {
            // §3.6.2.2–3.6.2.10: PDUs without data have PLEN = HLEN (+ HDGST).
            if plen != header_end {
                return Err(field(OFFSET_PLEN));
            }
            if ty.has_data_digest() && ch.flags & FLAG_DDGSTF != 0 {
                return Err(field(OFFSET_FLAGS));
            }
            return Ok(Layout {
                hlen,
                hdgst,
                data_start: header_end,
                data_len: 0,
                ddgst: false,
                plen,
            });
        }
        // §3.3.1.1: data-carrying PDUs have DDGST exactly when data digest is enabled.
        let ddgst = self.digests.data;
        if (ch.flags & FLAG_DDGSTF != 0) != ddgst {
            return Err(field(OFFSET_FLAGS));
        }
        // §3.6.2.6, §3.6.2.8: PDO is past the header (and its digest) and a multiple of
        // the receiver's data alignment.
        let pdo = usize::from(ch.pdo);
        if pdo < header_end || pdo % pda_alignment(self.rx_pda) != 0 {
            return Err(field(OFFSET_PDO));
        }
        let tail = if ddgst { DIGEST_LEN } else { 0 };
        let data_len = plen
            .checked_sub(pdo + tail)
            .filter(|&n| n > 0)
            .ok_or(field(OFFSET_PLEN))?;
        if data_len > self.max_data as usize {
            // §3.3.2.2: H2CData beyond MAXH2CDATA is Data Transfer Limit Exceeded; any other
            // oversized PDU has a bad PLEN.
            return Err(if ty == PduType::H2CData {
                FatalError::new(Fes::DataLimitExceeded, 0)
            } else {
                field(OFFSET_PLEN)
            });
        }
        Ok(Layout {
            hlen,
            hdgst,
            data_start: pdo,
            data_len,
            ddgst,
            plen,
        })
    }

    fn try_next(&mut self) -> Result<Option<ReceivedPdu>, FrameError> {
        let Some(ch) = CommonHeader::parse(&self.buf) else {
            return Ok(None);
        };
        let layout = self
            .layout(&ch)
            .map_err(|e| self.fail(e, usize::from(ch.hlen).max(COMMON_HEADER_LEN)))?;
        let header_end = layout.hlen + if layout.hdgst { DIGEST_LEN } else { 0 };
        if self.buf.len() < header_end {
            return Ok(None);
        }
        if layout.hdgst {
            let (hdr, rest) = self.buf.split_at(layout.hlen);
            if !digest::verify(hdr, rest) {
                // §3.5.2: fatal, FEI carries the received digest (Figure 23).
                let got = rest
                    .get(..DIGEST_LEN)
                    .map_or(0, |d| u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
                return Err(self.fail(FatalError::new(Fes::HeaderDigestError, got), layout.hlen));
            }
        }
        let header = PduHeader::parse(&self.buf).map_err(|e| self.fail(e, layout.hlen))?;
        if self.buf.len() < layout.plen {
            return Ok(None);
        }
        let mut pdu = self.buf.split_to(layout.plen);
        let header_bytes = pdu.split_to(layout.hlen).freeze();
        pdu.advance(layout.data_start - layout.hlen);
        let mut data = pdu.split_to(layout.data_len).freeze();
        let mut data_digest_ok = true;
        if layout.ddgst {
            data_digest_ok = digest::verify(&data, &pdu);
        }
        if matches!(header.pdu_type(), PduType::H2CTermReq | PduType::C2HTermReq) {
            data.truncate(TERM_MAX_DATA);
        }
        Ok(Some(ReceivedPdu {
            header,
            flags: ch.flags,
            header_bytes,
            data,
            data_digest_ok,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::pdu::{
        EncodeOptions, H2CData, IcReq, Pdu, TermReq, DGST_HDGST_ENABLE, FLAG_LAST_PDU,
    };
    use nvme_spec::{Sgl, Sqe};

    fn icreq_bytes() -> Vec<u8> {
        Pdu::new(PduHeader::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            dgst: DGST_HDGST_ENABLE,
            maxr2t: 0,
        }))
        .encode(EncodeOptions::default())
        .to_vec()
    }

    fn cmd_pdu(cid: u16, data: &'static [u8]) -> Pdu {
        let mut sqe = Sqe {
            opcode: 0x01,
            ..Default::default()
        };
        sqe.cid.set(cid);
        sqe.dptr = Sgl::InCapsule {
            offset: 0,
            length: data.len() as u32,
        }
        .encode();
        Pdu::with_data(PduHeader::CapsuleCmd(sqe), 0, Bytes::from_static(data))
    }

    fn h2c(datal: usize, opts: EncodeOptions) -> Vec<u8> {
        Pdu::with_data(
            PduHeader::H2CData(H2CData {
                cccid: 1,
                ttag: 2,
                datao: 0,
                datal: datal as u32,
            }),
            FLAG_LAST_PDU,
            Bytes::from(vec![0x5a; datal]),
        )
        .encode(opts)
        .to_vec()
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut stream = icreq_bytes();
        let opts = EncodeOptions {
            digests: Digests {
                header: true,
                data: true,
            },
            pda: 0,
        };
        stream.extend(cmd_pdu(9, b"abcdefgh").encode(opts).to_vec());
        let mut f = Framer::new(Role::Controller, 8192);
        let mut got = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            f.feed(&[*b]);
            while let Some(p) = f.next_pdu().unwrap() {
                // The ICReq is complete exactly at byte 128; switch digests on like a
                // controller that accepted them.
                if i == 127 {
                    f.set_digests(opts.digests);
                }
                got.push(p);
            }
        }
        assert_eq!(got.len(), 2);
        assert!(matches!(got[0].header, PduHeader::IcReq(r) if r.dgst == DGST_HDGST_ENABLE));
        let PduHeader::CapsuleCmd(sqe) = got[1].header else {
            panic!("not a command: {:?}", got[1].header)
        };
        assert_eq!(sqe.cid(), 9);
        assert_eq!(&got[1].data[..], b"abcdefgh");
        assert!(got[1].data_digest_ok);
        assert_eq!(got[1].flags, FLAG_HDGSTF | FLAG_DDGSTF);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn many_pdus_in_one_buffer() {
        let mut stream = Vec::new();
        for cid in 0..10u16 {
            stream.extend(
                cmd_pdu(cid, b"0123")
                    .encode(EncodeOptions::default())
                    .to_vec(),
            );
        }
        stream.extend(h2c(16, EncodeOptions::default()));
        let mut f = Framer::new(Role::Controller, 8192);
        f.feed(&stream);
        let mut cids = Vec::new();
        let mut h2c_len = 0;
        while let Some(p) = f.next_pdu().unwrap() {
            match p.header {
                PduHeader::CapsuleCmd(s) => {
                    assert_eq!(&p.data[..], b"0123");
                    cids.push(s.cid());
                }
                PduHeader::H2CData(d) => {
                    assert_eq!(d.datal, 16);
                    h2c_len = p.data.len();
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(cids, (0..10).collect::<Vec<_>>());
        assert_eq!(h2c_len, 16);
    }

    fn first_error(role: Role, digests: Digests, bytes: &[u8]) -> FrameError {
        let mut f = Framer::new(role, 8192);
        f.set_digests(digests);
        f.feed(bytes);
        loop {
            match f.next_pdu() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error"),
                Err(e) => return e,
            }
        }
    }

    #[test]
    fn bad_headers_get_the_right_fes() {
        // Unknown PDU type 08h.
        let e = first_error(Role::Controller, Digests::NONE, &[8, 0, 24, 0, 24, 0, 0, 0]);
        assert_eq!(e.error, FatalError::field(0));
        assert_eq!(&e.header[..], &[8, 0, 24, 0, 24, 0, 0, 0]);
        // A controller-to-host PDU (R2T) sent to the controller.
        let e = first_error(Role::Controller, Digests::NONE, &[9, 0, 24, 0, 24, 0, 0, 0]);
        assert_eq!(e.error, FatalError::field(0));
        // CapsuleCmd with HLEN 24.
        let e = first_error(Role::Controller, Digests::NONE, &[4, 0, 24, 0, 24, 0, 0, 0]);
        assert_eq!(e.error, FatalError::field(2));
        // ICReq with PLEN 129.
        let mut ic = icreq_bytes();
        ic[4] = 129;
        let e = first_error(Role::Controller, Digests::NONE, &ic);
        assert_eq!(e.error, FatalError::field(4));
        // HDGSTF missing while header digests are on.
        let cmd = cmd_pdu(1, b"abcd")
            .encode(EncodeOptions::default())
            .to_vec();
        let on = Digests {
            header: true,
            data: false,
        };
        let e = first_error(Role::Controller, on, &cmd);
        assert_eq!(e.error, FatalError::field(1));
        // PDO not aligned to CPDA.
        let mut f = Framer::new(Role::Controller, 8192);
        f.set_rx_pda(1); // 8-byte alignment: the command's PDO of 72 is fine...
        f.feed(&cmd);
        assert!(f.next_pdu().unwrap().is_some());
        let mut bad = cmd.clone();
        bad[3] = 76; // ...76 is not
        bad[4] += 4;
        let mut f = Framer::new(Role::Controller, 8192);
        f.set_rx_pda(1);
        f.feed(&bad);
        assert_eq!(f.next_pdu().unwrap_err().error, FatalError::field(3));
    }

    #[test]
    fn oversized_plen_is_refused_before_the_body_arrives() {
        let mut f = Framer::new(Role::Controller, 8192);
        // Only the common header of a CapsuleCmd announcing 1 GiB.
        let mut hdr = [4u8, 0, 72, 72, 0, 0, 0, 0];
        hdr[4..8].copy_from_slice(&(1u32 << 30).to_le_bytes());
        f.feed(&hdr);
        assert_eq!(f.next_pdu().unwrap_err().error, FatalError::field(4));
        // An H2CData above the limit is Data Transfer Limit Exceeded.
        let big = h2c(8196, EncodeOptions::default());
        let e = first_error(Role::Controller, Digests::NONE, &big[..8]);
        assert_eq!(e.error.fes, Fes::DataLimitExceeded);
        // and the error sticks
        let mut f = Framer::new(Role::Controller, 8192);
        f.feed(&big[..8]);
        assert!(f.next_pdu().is_err());
        f.feed(&icreq_bytes());
        assert!(f.next_pdu().is_err());
    }

    #[test]
    fn header_digest_error_reports_received_digest() {
        let opts = EncodeOptions {
            digests: Digests {
                header: true,
                data: false,
            },
            pda: 0,
        };
        let mut bytes = cmd_pdu(3, b"wxyz").encode(opts).to_vec();
        bytes[72..76].copy_from_slice(&[1, 2, 3, 4]);
        let e = first_error(Role::Controller, opts.digests, &bytes);
        assert_eq!(
            e.error,
            FatalError::new(Fes::HeaderDigestError, 0x0403_0201)
        );
        assert_eq!(e.header.len(), 72);
    }

    #[test]
    fn data_digest_error_is_reported_not_fatal() {
        let opts = EncodeOptions {
            digests: Digests {
                header: false,
                data: true,
            },
            pda: 0,
        };
        let mut bytes = h2c(8, opts);
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        bytes.extend(h2c(8, opts));
        let mut f = Framer::new(Role::Controller, 8192);
        f.set_digests(opts.digests);
        f.feed(&bytes);
        let a = f.next_pdu().unwrap().unwrap();
        assert!(!a.data_digest_ok);
        assert_eq!(a.data.len(), 8);
        let b = f.next_pdu().unwrap().unwrap();
        assert!(b.data_digest_ok);
    }

    #[test]
    fn term_req_limits() {
        let term = Pdu::with_data(
            PduHeader::H2CTermReq(TermReq {
                fes: Fes::PduSequenceError,
                fei: 0,
            }),
            0,
            Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
        )
        .encode(EncodeOptions::default())
        .to_vec();
        let mut f = Framer::new(Role::Controller, 8192);
        // Even with header digests on, TermReqs carry none.
        f.set_digests(Digests {
            header: true,
            data: true,
        });
        f.feed(&term);
        let p = f.next_pdu().unwrap().unwrap();
        assert_eq!(&p.data[..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut big = term.clone();
        big[4..8].copy_from_slice(&153u32.to_le_bytes());
        let e = first_error(Role::Controller, Digests::NONE, &big);
        assert_eq!(e.error, FatalError::field(4));
        assert_eq!(e.pdu_type, PduType::H2CTermReq);
    }

    #[test]
    fn host_role_frames_controller_pdus() {
        use crate::tcp::pdu::{C2HData, FLAG_SUCCESS};
        let bytes = Pdu::with_data(
            PduHeader::C2HData(C2HData {
                cccid: 4,
                datao: 0,
                datal: 4,
            }),
            FLAG_LAST_PDU | FLAG_SUCCESS,
            Bytes::from_static(b"read"),
        )
        .encode(EncodeOptions {
            digests: Digests::NONE,
            pda: 3,
        })
        .to_vec();
        let mut f = Framer::new(Role::Host, 1 << 20);
        f.set_rx_pda(3);
        f.feed(&bytes);
        let p = f.next_pdu().unwrap().unwrap();
        assert_eq!(&p.data[..], b"read");
        assert_eq!(p.flags, FLAG_LAST_PDU | FLAG_SUCCESS);
        let e = first_error(Role::Host, Digests::NONE, &icreq_bytes());
        assert_eq!(e.error, FatalError::field(0));
    }
}
