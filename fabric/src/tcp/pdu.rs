//! NVMe/TCP PDU wire formats (NVMe/TCP Transport 1.0 §3.6.2): the 8-byte common header,
//! the PDU-specific headers, and whole-PDU encoding with optional header/data digests and
//! PDU data alignment padding.
//!
//! Layouts follow NVMe/TCP 1.0 Figures 19–28 (cross-checked against Linux
//! include/linux/nvme-tcp.h). Every multi-byte field is little-endian (NVMe/TCP 1.0 §2).

use bytes::{BufMut, Bytes, BytesMut};
use nvme_spec::{Cqe, Sqe};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::digest::{self, DIGEST_LEN};

/// Length of the common header (NVMe/TCP 1.0 §3.6.2.1).
pub const COMMON_HEADER_LEN: usize = 8;
/// HLEN and PLEN of ICReq / ICResp (NVMe/TCP 1.0 §3.6.2.2, §3.6.2.3).
pub const IC_PDU_LEN: usize = 128;
/// HLEN of CapsuleCmd: common header + 64-byte SQE (NVMe/TCP 1.0 §3.6.2.6).
pub const CAPSULE_CMD_HLEN: usize = 72;
/// HLEN of CapsuleResp: common header + 16-byte CQE (NVMe/TCP 1.0 §3.6.2.7).
pub const CAPSULE_RESP_HLEN: usize = 24;
/// HLEN of H2CData / C2HData (NVMe/TCP 1.0 §3.6.2.8, §3.6.2.9).
pub const DATA_HLEN: usize = 24;
/// HLEN of R2T (NVMe/TCP 1.0 §3.6.2.10).
pub const R2T_HLEN: usize = 24;
/// HLEN of H2CTermReq / C2HTermReq (NVMe/TCP 1.0 §3.6.2.4, §3.6.2.5).
pub const TERM_HLEN: usize = 24;
/// A TermReq carries at most this many bytes of the offending PDU header, so its PLEN is at
/// most 152 (NVMe/TCP 1.0 §3.5.1; Linux NVME_TCP_MAX_C2HTERM_PLEN).
pub const TERM_MAX_DATA: usize = 128;
pub const TERM_MAX_PLEN: usize = TERM_HLEN + TERM_MAX_DATA;
/// Smallest MAXH2CDATA a controller may announce (NVMe/TCP 1.0 §3.6.2.3).
pub const MIN_MAXH2CDATA: u32 = 4096;
/// PDU Format Version 1.0 (NVMe/TCP 1.0 §3.6.2.2).
pub const PFV_1_0: u16 = 0;
/// Largest valid HPDA / CPDA value (0's based dwords: 128-byte alignment).
pub const MAX_PDA: u8 = 31;

/// Common header FLAGS bits (NVMe/TCP 1.0 Figures 24–28).
pub const FLAG_HDGSTF: u8 = 0x01;
pub const FLAG_DDGSTF: u8 = 0x02;
/// H2CData / C2HData: last PDU of a data transfer (of an R2T's transfer for H2C).
pub const FLAG_LAST_PDU: u8 = 0x04;
/// C2HData: the command completed successfully, no CapsuleResp follows.
pub const FLAG_SUCCESS: u8 = 0x08;

/// ICReq / ICResp DGST field bits (NVMe/TCP 1.0 §3.6.2.2).
pub const DGST_HDGST_ENABLE: u8 = 0x01;
pub const DGST_DDGST_ENABLE: u8 = 0x02;

/// PDU-type (NVMe/TCP 1.0 Figure 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PduType {
    ICReq,
    ICResp,
    H2CTermReq,
    C2HTermReq,
    CapsuleCmd,
    CapsuleResp,
    H2CData,
    C2HData,
    R2T,
    Unknown(u8),
}

impl PduType {
    pub const fn from_code(code: u8) -> PduType {
        match code {
            0x00 => PduType::ICReq,
            0x01 => PduType::ICResp,
            0x02 => PduType::H2CTermReq,
            0x03 => PduType::C2HTermReq,
            0x04 => PduType::CapsuleCmd,
            0x05 => PduType::CapsuleResp,
            0x06 => PduType::H2CData,
            0x07 => PduType::C2HData,
            0x09 => PduType::R2T,
            other => PduType::Unknown(other),
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            PduType::ICReq => 0x00,
            PduType::ICResp => 0x01,
            PduType::H2CTermReq => 0x02,
            PduType::C2HTermReq => 0x03,
            PduType::CapsuleCmd => 0x04,
            PduType::CapsuleResp => 0x05,
            PduType::H2CData => 0x06,
            PduType::C2HData => 0x07,
            PduType::R2T => 0x09,
            PduType::Unknown(c) => c,
        }
    }

    /// The HLEN this type must carry, or `None` for unknown types.
    pub const fn hlen(self) -> Option<usize> {
        match self {
            PduType::ICReq | PduType::ICResp => Some(IC_PDU_LEN),
            PduType::H2CTermReq | PduType::C2HTermReq => Some(TERM_HLEN),
            PduType::CapsuleCmd => Some(CAPSULE_CMD_HLEN),
            PduType::CapsuleResp => Some(CAPSULE_RESP_HLEN),
            PduType::H2CData | PduType::C2HData => Some(DATA_HLEN),
            PduType::R2T => Some(R2T_HLEN),
            PduType::Unknown(_) => None,
        }
    }

    /// Whether a negotiated header digest applies to this type: every PDU except
    /// ICReq, ICResp (sent before digests are enabled) and the TermReqs (NVMe/TCP 1.0 §3.3.1.1).
    pub const fn has_header_digest(self) -> bool {
        !matches!(
            self,
            PduType::ICReq
                | PduType::ICResp
                | PduType::H2CTermReq
                | PduType::C2HTermReq
                | PduType::Unknown(_)
        )
    }

    /// Whether the PDU's data (if any) is covered by a negotiated data digest.
    pub const fn has_data_digest(self) -> bool {
        matches!(
            self,
            PduType::CapsuleCmd | PduType::H2CData | PduType::C2HData
        )
    }

    /// Whether the type may carry a data part at all.
    pub const fn may_carry_data(self) -> bool {
        matches!(
            self,
            PduType::CapsuleCmd
                | PduType::H2CData
                | PduType::C2HData
                | PduType::H2CTermReq
                | PduType::C2HTermReq
        )
    }
}

/// Fatal Error Status of a TermReq (NVMe/TCP 1.0 Figures 22, 23).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fes {
    /// 01h: FEI holds the byte offset of the offending header field.
    InvalidHeaderField,
    /// 02h
    PduSequenceError,
    /// 03h
    HeaderDigestError,
    /// 04h: H2CData / C2HData outside the command's data buffer.
    DataOutOfRange,
    /// 05h: C2HTermReq: an H2CData PDU with DATAL above MAXH2CDATA (Data Transfer Limit
    /// Exceeded); H2CTermReq: more R2Ts than MAXR2T (R2T Limit Exceeded).
    DataLimitExceeded,
    /// 06h: FEI holds the byte offset of the unsupported field.
    UnsupportedParameter,
    Unknown(u16),
}

impl Fes {
    pub const fn from_code(code: u16) -> Fes {
        match code {
            0x01 => Fes::InvalidHeaderField,
            0x02 => Fes::PduSequenceError,
            0x03 => Fes::HeaderDigestError,
            0x04 => Fes::DataOutOfRange,
            0x05 => Fes::DataLimitExceeded,
            0x06 => Fes::UnsupportedParameter,
            other => Fes::Unknown(other),
        }
    }

    pub const fn code(self) -> u16 {
        match self {
            Fes::InvalidHeaderField => 0x01,
            Fes::PduSequenceError => 0x02,
            Fes::HeaderDigestError => 0x03,
            Fes::DataOutOfRange => 0x04,
            Fes::DataLimitExceeded => 0x05,
            Fes::UnsupportedParameter => 0x06,
            Fes::Unknown(c) => c,
        }
    }
}

/// A fatal transport error: what goes into the TermReq the receiver sends before closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("NVMe/TCP fatal error {fes:?} (FEI {fei})")]
pub struct FatalError {
    pub fes: Fes,
    /// Fatal Error Information: for FES 01h/06h the byte offset of the bad field, for 03h
    /// the received header digest.
    pub fei: u32,
}

impl FatalError {
    pub const fn new(fes: Fes, fei: u32) -> FatalError {
        FatalError { fes, fei }
    }

    /// Invalid PDU Header Field at byte `offset`.
    pub const fn field(offset: u32) -> FatalError {
        FatalError::new(Fes::InvalidHeaderField, offset)
    }
}

/// Byte offsets of common header fields, for FEI.
pub const OFFSET_PDU_TYPE: u32 = 0;
pub const OFFSET_FLAGS: u32 = 1;
pub const OFFSET_HLEN: u32 = 2;
pub const OFFSET_PDO: u32 = 3;
pub const OFFSET_PLEN: u32 = 4;
/// Offsets inside ICReq (NVMe/TCP 1.0 Figure 20).
pub const OFFSET_IC_PFV: u32 = 8;
pub const OFFSET_IC_HPDA: u32 = 10;
pub const OFFSET_IC_DGST: u32 = 11;
pub const OFFSET_IC_MAXR2T: u32 = 12;
/// Offsets inside H2CData (NVMe/TCP 1.0 Figure 26).
pub const OFFSET_DATA_CCCID: u32 = 8;
pub const OFFSET_DATA_TTAG: u32 = 10;
pub const OFFSET_DATA_DATAO: u32 = 12;
pub const OFFSET_DATA_DATAL: u32 = 16;

/// The common header exactly as on the wire (NVMe/TCP 1.0 §3.6.2.1, Figure 19).
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Debug, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct CommonHeader {
    pub pdu_type: u8,
    pub flags: u8,
    pub hlen: u8,
    pub pdo: u8,
    pub plen: U32,
}
const _: () = assert!(core::mem::size_of::<CommonHeader>() == COMMON_HEADER_LEN);

impl CommonHeader {
    /// Read the common header from the first 8 bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Option<CommonHeader> {
        CommonHeader::read_from_prefix(bytes).ok().map(|(h, _)| h)
    }

    pub fn pdu_type(&self) -> PduType {
        PduType::from_code(self.pdu_type)
    }

    pub fn plen(&self) -> u32 {
        self.plen.get()
    }
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct IcWire {
    ch: CommonHeader,
    pfv: U16,
    /// HPDA in ICReq, CPDA in ICResp.
    pda: u8,
    dgst: u8,
    /// MAXR2T in ICReq, MAXH2CDATA in ICResp.
    max: U32,
    rsvd: [u8; 112],
}
const _: () = assert!(core::mem::size_of::<IcWire>() == IC_PDU_LEN);

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct TermWire {
    ch: CommonHeader,
    fes: U16,
    fei: U32,
    rsvd: [u8; 10],
}
const _: () = assert!(core::mem::size_of::<TermWire>() == TERM_HLEN);

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct CmdWire {
    ch: CommonHeader,
    sqe: Sqe,
}
const _: () = assert!(core::mem::size_of::<CmdWire>() == CAPSULE_CMD_HLEN);

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RespWire {
    ch: CommonHeader,
    cqe: Cqe,
}
const _: () = assert!(core::mem::size_of::<RespWire>() == CAPSULE_RESP_HLEN);

/// H2CData, C2HData and R2T share this shape (NVMe/TCP 1.0 Figures 26, 27, 28).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct XferWire {
    ch: CommonHeader,
    cccid: U16,
    ttag: U16,
    offset: U32,
    length: U32,
    rsvd: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<XferWire>() == DATA_HLEN);

/// Digest selection as negotiated in ICReq / ICResp (NVMe/TCP 1.0 §3.3.1.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

impl Digests {
    pub const NONE: Digests = Digests {
        header: false,
        data: false,
    };

    pub const fn from_bits(dgst: u8) -> Digests {
        Digests {
            header: dgst & DGST_HDGST_ENABLE != 0,
            data: dgst & DGST_DDGST_ENABLE != 0,
        }
    }

    pub const fn bits(self) -> u8 {
        (if self.header { DGST_HDGST_ENABLE } else { 0 })
            | (if self.data { DGST_DDGST_ENABLE } else { 0 })
    }
}

/// ICReq (NVMe/TCP 1.0 §3.6.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcReq {
    pub pfv: u16,
    /// Host PDU data alignment, 0's based dwords.
    pub hpda: u8,
    /// The raw DGST byte (reserved bits kept for validation).
    pub dgst: u8,
    /// Maximum outstanding R2Ts per command, 0's based.
    pub maxr2t: u32,
}

impl IcReq {
    pub fn digests(&self) -> Digests {
        Digests::from_bits(self.dgst)
    }
}

/// ICResp (NVMe/TCP 1.0 §3.6.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcResp {
    pub pfv: u16,
    /// Controller PDU data alignment, 0's based dwords.
    pub cpda: u8,
    pub dgst: u8,
    /// Largest H2CData data part the controller accepts, in bytes.
    pub maxh2cdata: u32,
}

impl IcResp {
    pub fn digests(&self) -> Digests {
        Digests::from_bits(self.dgst)
    }
}

/// H2CTermReq / C2HTermReq header fields (NVMe/TCP 1.0 §3.6.2.4, §3.6.2.5). The data part is
/// the offending PDU header (at most [`TERM_MAX_DATA`] bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermReq {
    pub fes: Fes,
    pub fei: u32,
}

/// H2CData (NVMe/TCP 1.0 §3.6.2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H2CData {
    pub cccid: u16,
    pub ttag: u16,
    pub datao: u32,
    pub datal: u32,
}

/// C2HData (NVMe/TCP 1.0 §3.6.2.9); its TTAG field is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct C2HData {
    pub cccid: u16,
    pub datao: u32,
    pub datal: u32,
}

/// R2T (NVMe/TCP 1.0 §3.6.2.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct R2t {
    pub cccid: u16,
    pub ttag: u16,
    pub r2to: u32,
    pub r2tl: u32,
}

/// A decoded PDU-specific header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PduHeader {
    IcReq(IcReq),
    IcResp(IcResp),
    H2CTermReq(TermReq),
    C2HTermReq(TermReq),
    CapsuleCmd(Sqe),
    CapsuleResp(Cqe),
    H2CData(H2CData),
    C2HData(C2HData),
    R2t(R2t),
}

impl PduHeader {
    pub fn pdu_type(&self) -> PduType {
        match self {
            PduHeader::IcReq(_) => PduType::ICReq,
            PduHeader::IcResp(_) => PduType::ICResp,
            PduHeader::H2CTermReq(_) => PduType::H2CTermReq,
            PduHeader::C2HTermReq(_) => PduType::C2HTermReq,
            PduHeader::CapsuleCmd(_) => PduType::CapsuleCmd,
            PduHeader::CapsuleResp(_) => PduType::CapsuleResp,
            PduHeader::H2CData(_) => PduType::H2CData,
            PduHeader::C2HData(_) => PduType::C2HData,
            PduHeader::R2t(_) => PduType::R2T,
        }
    }

    pub fn hlen(&self) -> usize {
        // Every known type has a fixed HLEN.
        self.pdu_type().hlen().unwrap_or(COMMON_HEADER_LEN)
    }

    /// Decode a PDU header from its first HLEN bytes (common header included). Checks the
    /// structure only (type known, HLEN right for the type, enough bytes); PLEN, PDO, flags
    /// and field values are for the caller, which knows the connection state.
    pub fn parse(header: &[u8]) -> Result<PduHeader, FatalError> {
        let ch = CommonHeader::parse(header).ok_or(FatalError::field(OFFSET_PLEN))?;
        let ty = ch.pdu_type();
        // NVMe/TCP 1.0 Figure 10: other opcodes are reserved; treat as an invalid field at offset 0.
        let want = ty.hlen().ok_or(FatalError::field(OFFSET_PDU_TYPE))?;
        if usize::from(ch.hlen) != want {
            return Err(FatalError::field(OFFSET_HLEN));
        }
        let bytes = header.get(..want).ok_or(FatalError::field(OFFSET_HLEN))?;
        let bad = || FatalError::field(OFFSET_HLEN);
        Ok(match ty {
            PduType::ICReq | PduType::ICResp => {
                let w = IcWire::read_from_bytes(bytes).map_err(|_| bad())?;
                if ty == PduType::ICReq {
                    PduHeader::IcReq(IcReq {
                        pfv: w.pfv.get(),
                        hpda: w.pda,
                        dgst: w.dgst,
                        maxr2t: w.max.get(),
                    })
                } else {
                    PduHeader::IcResp(IcResp {
                        pfv: w.pfv.get(),
                        cpda: w.pda,
                        dgst: w.dgst,
                        maxh2cdata: w.max.get(),
                    })
                }
            }
            PduType::H2CTermReq | PduType::C2HTermReq => {
                let w = TermWire::read_from_bytes(bytes).map_err(|_| bad())?;
                let t = TermReq {
                    fes: Fes::from_code(w.fes.get()),
                    fei: w.fei.get(),
                };
                if ty == PduType::H2CTermReq {
                    PduHeader::H2CTermReq(t)
                } else {
                    PduHeader::C2HTermReq(t)
                }
            }
            PduType::CapsuleCmd => {
                let w = CmdWire::read_from_bytes(bytes).map_err(|_| bad())?;
                PduHeader::CapsuleCmd(w.sqe)
            }
            PduType::CapsuleResp => {
                let w = RespWire::read_from_bytes(bytes).map_err(|_| bad())?;
                PduHeader::CapsuleResp(w.cqe)
            }
            PduType::H2CData | PduType::C2HData | PduType::R2T => {
                let w = XferWire::read_from_bytes(bytes).map_err(|_| bad())?;
                match ty {
                    PduType::H2CData => PduHeader::H2CData(H2CData {
                        cccid: w.cccid.get(),
                        ttag: w.ttag.get(),
                        datao: w.offset.get(),
                        datal: w.length.get(),
                    }),
                    PduType::C2HData => PduHeader::C2HData(C2HData {
                        cccid: w.cccid.get(),
                        datao: w.offset.get(),
                        datal: w.length.get(),
                    }),
                    _ => PduHeader::R2t(R2t {
                        cccid: w.cccid.get(),
                        ttag: w.ttag.get(),
                        r2to: w.offset.get(),
                        r2tl: w.length.get(),
                    }),
                }
            }
            PduType::Unknown(_) => return Err(FatalError::field(OFFSET_PDU_TYPE)),
        })
    }

    /// Write this header (HLEN bytes) with the given common header values.
    fn write(&self, ch: CommonHeader, out: &mut InlineBytes) {
        match *self {
            PduHeader::IcReq(r) => out.put_slice(
                IcWire {
                    ch,
                    pfv: r.pfv.into(),
                    pda: r.hpda,
                    dgst: r.dgst,
                    max: r.maxr2t.into(),
                    rsvd: [0; 112],
                }
                .as_bytes(),
            ),
            PduHeader::IcResp(r) => out.put_slice(
                IcWire {
                    ch,
                    pfv: r.pfv.into(),
                    pda: r.cpda,
                    dgst: r.dgst,
                    max: r.maxh2cdata.into(),
                    rsvd: [0; 112],
                }
                .as_bytes(),
            ),
            PduHeader::H2CTermReq(t) | PduHeader::C2HTermReq(t) => out.put_slice(
                TermWire {
                    ch,
                    fes: t.fes.code().into(),
                    fei: t.fei.into(),
                    rsvd: [0; 10],
                }
                .as_bytes(),
            ),
            PduHeader::CapsuleCmd(sqe) => out.put_slice(CmdWire { ch, sqe }.as_bytes()),
            PduHeader::CapsuleResp(cqe) => out.put_slice(RespWire { ch, cqe }.as_bytes()),
            PduHeader::H2CData(d) => out.put_slice(
                XferWire {
                    ch,
                    cccid: d.cccid.into(),
                    ttag: d.ttag.into(),
                    offset: d.datao.into(),
                    length: d.datal.into(),
                    rsvd: [0; 4],
                }
                .as_bytes(),
            ),
            PduHeader::C2HData(d) => out.put_slice(
                XferWire {
                    ch,
                    cccid: d.cccid.into(),
                    ttag: 0.into(),
                    offset: d.datao.into(),
                    length: d.datal.into(),
                    rsvd: [0; 4],
                }
                .as_bytes(),
            ),
            PduHeader::R2t(r) => out.put_slice(
                XferWire {
                    ch,
                    cccid: r.cccid.into(),
                    ttag: r.ttag.into(),
                    offset: r.r2to.into(),
                    length: r.r2tl.into(),
                    rsvd: [0; 4],
                }
                .as_bytes(),
            ),
        }
    }
}

/// How the sender lays out a PDU: the negotiated digests and the receiver's PDU data
/// alignment (HPDA for controller-to-host PDUs, CPDA for host-to-controller PDUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    pub digests: Digests,
    /// 0's based, in dwords: data starts at a multiple of `(pda + 1) * 4` bytes.
    pub pda: u8,
}

/// Byte alignment a 0's based dword PDA value asks for.
pub const fn pda_alignment(pda: u8) -> usize {
    (pda as usize + 1) * 4
}

/// A whole PDU: header, the type-specific FLAGS bits (LAST_PDU, SUCCESS; the digest flags
/// are derived from [`EncodeOptions`]) and the data part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu {
    pub header: PduHeader,
    pub flags: u8,
    pub data: Bytes,
}

/// An encoded PDU in pieces, so data can be written without copying: `head` is the header,
/// header digest and padding; then `data`; then `data_digest` if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedPdu {
    pub head: Bytes,
    pub data: Bytes,
    pub data_digest: Option<[u8; DIGEST_LEN]>,
}

impl EncodedPdu {
    pub fn len(&self) -> usize {
        self.head.len() + self.data.len() + self.data_digest.map_or(0, |d| d.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append the whole PDU to `out` (copies the data).
    pub fn write_to(&self, out: &mut BytesMut) {
        out.put_slice(&self.head);
        out.put_slice(&self.data);
        if let Some(d) = self.data_digest {
            out.put_slice(&d);
        }
    }

    /// The whole PDU as one contiguous buffer (copies the data).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(self.len());
        self.write_to(&mut out);
        out.to_vec()
    }

    /// The pieces in wire order, skipping empty ones.
    pub fn into_chunks(self) -> impl Iterator<Item = Bytes> {
        [
            Some(self.head),
            Some(self.data),
            self.data_digest.map(|d| Bytes::copy_from_slice(&d)),
        ]
        .into_iter()
        .flatten()
        .filter(|b| !b.is_empty())
    }
}

impl Pdu {
    pub fn new(header: PduHeader) -> Pdu {
        Pdu {
            header,
            flags: 0,
            data: Bytes::new(),
        }
    }

    pub fn with_data(header: PduHeader, flags: u8, data: Bytes) -> Pdu {
        Pdu {
            header,
            flags,
            data,
        }
    }

    /// Lay the PDU out for the wire (NVMe/TCP 1.0 §2 Figure 3, §3.3): header, HDGST if
    /// negotiated and applicable, PAD up to PDO, data, DDGST if negotiated and there is data.
    /// TermReq data is truncated to [`TERM_MAX_DATA`].
    pub fn encode(&self, opts: EncodeOptions) -> EncodedPdu {
        let (head, data_len, data_digest) = self.encode_head(opts, &self.data);
        EncodedPdu {
            head: Bytes::copy_from_slice(head.as_slice()),
            data: self.data.slice(..data_len),
            data_digest,
        }
    }

    /// [`Pdu::encode`] without allocating: the header part is laid out in an inline buffer.
    /// `data` stands in for `self.data` (the caller may keep the data elsewhere); returns the
    /// head, how many bytes of `data` go on the wire, and the data digest if any.
    pub fn encode_head(
        &self,
        opts: EncodeOptions,
        data: &[u8],
    ) -> (InlineBytes, usize, Option<[u8; DIGEST_LEN]>) {
        self.encode_head_for(opts, data.len(), |n| digest::digest_bytes(&data[..n]))
    }

    /// [`Pdu::encode_head`] for `len` data bytes kept where the caller cannot lend a slice
    /// of them: `digest(n)` gives the data digest of their first `n` bytes when one is sent.
    pub fn encode_head_for(
        &self,
        opts: EncodeOptions,
        len: usize,
        digest: impl FnOnce(usize) -> [u8; DIGEST_LEN],
    ) -> (InlineBytes, usize, Option<[u8; DIGEST_LEN]>) {
        let ty = self.header.pdu_type();
        let hlen = self.header.hlen();
        let mut data_len = len;
        if matches!(ty, PduType::H2CTermReq | PduType::C2HTermReq) {
            data_len = data_len.min(TERM_MAX_DATA);
        }
        if !ty.may_carry_data() {
            data_len = 0;
        }
        let hdgst = opts.digests.header && ty.has_header_digest();
        let ddgst = opts.digests.data && ty.has_data_digest() && data_len != 0;
        let mut flags = self.flags & !(FLAG_HDGSTF | FLAG_DDGSTF);
        if hdgst {
            flags |= FLAG_HDGSTF;
        }
        if ddgst {
            flags |= FLAG_DDGSTF;
        }
        let header_end = hlen + if hdgst { DIGEST_LEN } else { 0 };
        // TermReq: the data part (the offending header) follows the header directly and PDO
        // is reserved; other data-carrying PDUs put data at PDO, aligned to the receiver's PDA.
        let pdo = if data_len == 0 || matches!(ty, PduType::H2CTermReq | PduType::C2HTermReq) {
            0
        } else {
            header_end.next_multiple_of(pda_alignment(opts.pda))
        };
        let data_start = if pdo == 0 { header_end } else { pdo };
        let plen = data_start + data_len + if ddgst { DIGEST_LEN } else { 0 };
        let ch = CommonHeader {
            pdu_type: ty.code(),
            flags,
            hlen: hlen as u8,
            // PDO is 8 bits; the maximum alignment (128) plus a 72-byte header fits.
            pdo: pdo as u8,
            plen: (plen as u32).into(),
        };
        let mut head = InlineBytes::default();
        self.header.write(ch, &mut head);
        if hdgst {
            let d = digest::digest_bytes(&head.as_slice()[..hlen]);
            head.put_slice(&d);
        }
        head.pad_to(data_start);
        let data_digest = ddgst.then(|| digest(data_len));
        (head, data_len, data_digest)
    }
}

/// Room for the largest PDU head: a 128-byte ICReq/ICResp, or a 72-byte capsule header with
/// its digest padded to the largest PDA alignment (128 bytes).
pub const MAX_HEAD_LEN: usize = 132;

/// A short byte string kept inline (PDU heads, digests): no allocation.
#[derive(Clone, Copy)]
pub struct InlineBytes {
    bytes: [u8; MAX_HEAD_LEN],
    len: u8,
}

impl Default for InlineBytes {
    fn default() -> Self {
        InlineBytes {
            bytes: [0; MAX_HEAD_LEN],
            len: 0,
        }
    }
}

impl core::fmt::Debug for InlineBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("InlineBytes")
            .field(&self.as_slice())
            .finish()
    }
}

impl InlineBytes {
    /// `bytes` must be at most [`MAX_HEAD_LEN`] long; the rest is cut off.
    pub fn from_slice(bytes: &[u8]) -> InlineBytes {
        let mut b = InlineBytes::default();
        b.put_slice(bytes);
        b
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn put_slice(&mut self, src: &[u8]) {
        let start = usize::from(self.len);
        let n = src.len().min(MAX_HEAD_LEN - start);
        self.bytes[start..start + n].copy_from_slice(&src[..n]);
        self.len = (start + n) as u8;
    }

    /// Zero-fill up to `len` bytes (PDU padding).
    fn pad_to(&mut self, len: usize) {
        let len = len.min(MAX_HEAD_LEN);
        if len > usize::from(self.len) {
            self.bytes[usize::from(self.len)..len].fill(0);
            self.len = len as u8;
        }
    }
}

#[cfg(test)]
mod tests;
