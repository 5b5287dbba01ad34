//! In-band authentication messages: DH-HMAC-CHAP (NVMe Base 2.0 §8.13.5), carried in the data
//! of the Fabrics Authentication Send and Authentication Receive commands (NVMe Base 2.0
//! §6.2, §6.3; Linux `struct nvmf_auth_dhchap_*_data`). Every message starts with the same
//! 6-byte header; [`Message::parse`] checks a message's lengths against its fields and
//! borrows its variable parts, and the `encode_*` functions build them.

use core::mem::{offset_of, size_of};

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// SECP of Authentication Send/Receive for NVMe in-band authentication (NVMe Base 2.0 §6.2).
pub const SECP_INBAND_AUTH: u8 = 0xe9;
/// SPSP0 and SPSP1 for DH-HMAC-CHAP.
pub const SPSP_DHCHAP: u8 = 0x01;
/// AUTHID of the DH-HMAC-CHAP protocol in an AUTH_Negotiate descriptor.
pub const AUTHID_DHCHAP: u8 = 0x01;
/// Entries of each list (hash functions, DH groups) in a protocol descriptor.
pub const ID_LIST_LEN: usize = 30;

/// AUTH-Type of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    /// Common messages: AUTH_Negotiate, AUTH_Failure1/2.
    Common,
    DhChap,
    Unknown(u8),
}

impl AuthType {
    pub fn from_u8(v: u8) -> AuthType {
        match v {
            0x00 => AuthType::Common,
            0x01 => AuthType::DhChap,
            v => AuthType::Unknown(v),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            AuthType::Common => 0x00,
            AuthType::DhChap => 0x01,
            AuthType::Unknown(v) => v,
        }
    }
}

/// AUTH-ID (message identifier) of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageId {
    Negotiate,
    Challenge,
    Reply,
    Success1,
    Success2,
    Failure2,
    Failure1,
    Unknown(u8),
}

impl MessageId {
    pub fn from_u8(v: u8) -> MessageId {
        match v {
            0x00 => MessageId::Negotiate,
            0x01 => MessageId::Challenge,
            0x02 => MessageId::Reply,
            0x03 => MessageId::Success1,
            0x04 => MessageId::Success2,
            0xf0 => MessageId::Failure2,
            0xf1 => MessageId::Failure1,
            v => MessageId::Unknown(v),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            MessageId::Negotiate => 0x00,
            MessageId::Challenge => 0x01,
            MessageId::Reply => 0x02,
            MessageId::Success1 => 0x03,
            MessageId::Success2 => 0x04,
            MessageId::Failure2 => 0xf0,
            MessageId::Failure1 => 0xf1,
            MessageId::Unknown(v) => v,
        }
    }
}

/// Hash function identifiers (NVMe Base 2.0 §8.13.5.2, Figure 181).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashId {
    Sha256,
    Sha384,
    Sha512,
}

impl HashId {
    pub const ALL: [HashId; 3] = [HashId::Sha256, HashId::Sha384, HashId::Sha512];

    pub fn from_u8(v: u8) -> Option<HashId> {
        match v {
            0x01 => Some(HashId::Sha256),
            0x02 => Some(HashId::Sha384),
            0x03 => Some(HashId::Sha512),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            HashId::Sha256 => 0x01,
            HashId::Sha384 => 0x02,
            HashId::Sha512 => 0x03,
        }
    }

    /// Bytes of the hash's output (and of challenges and responses with it).
    pub fn digest_len(self) -> usize {
        match self {
            HashId::Sha256 => 32,
            HashId::Sha384 => 48,
            HashId::Sha512 => 64,
        }
    }
}

/// Diffie-Hellman group identifiers (NVMe Base 2.0 §8.13.5.2, Figure 182): none, or an
/// RFC 7919 finite field group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    Null,
    Ffdhe2048,
    Ffdhe3072,
    Ffdhe4096,
    Ffdhe6144,
    Ffdhe8192,
}

impl DhGroup {
    pub const ALL: [DhGroup; 6] = [
        DhGroup::Null,
        DhGroup::Ffdhe2048,
        DhGroup::Ffdhe3072,
        DhGroup::Ffdhe4096,
        DhGroup::Ffdhe6144,
        DhGroup::Ffdhe8192,
    ];

    pub fn from_u8(v: u8) -> Option<DhGroup> {
        match v {
            0x00 => Some(DhGroup::Null),
            0x01 => Some(DhGroup::Ffdhe2048),
            0x02 => Some(DhGroup::Ffdhe3072),
            0x03 => Some(DhGroup::Ffdhe4096),
            0x04 => Some(DhGroup::Ffdhe6144),
            0x05 => Some(DhGroup::Ffdhe8192),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            DhGroup::Null => 0x00,
            DhGroup::Ffdhe2048 => 0x01,
            DhGroup::Ffdhe3072 => 0x02,
            DhGroup::Ffdhe4096 => 0x03,
            DhGroup::Ffdhe6144 => 0x04,
            DhGroup::Ffdhe8192 => 0x05,
        }
    }

    /// Bytes of a public value (and of the shared secret): the group's prime size.
    pub fn value_len(self) -> usize {
        match self {
            DhGroup::Null => 0,
            DhGroup::Ffdhe2048 => 256,
            DhGroup::Ffdhe3072 => 384,
            DhGroup::Ffdhe4096 => 512,
            DhGroup::Ffdhe6144 => 768,
            DhGroup::Ffdhe8192 => 1024,
        }
    }
}

/// AUTH_Failure reason code explanations (NVMe Base 2.0 §8.13.5.7, Figure 186); the reason
/// code itself is always 01h, "authentication failure".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    Failed,
    ProtocolNotUsable,
    ConcatMismatch,
    HashUnusable,
    DhGroupUnusable,
    IncorrectPayload,
    IncorrectMessage,
    Unknown(u8),
}

/// The reason code of every AUTH_Failure message.
pub const FAILURE_REASON_CODE: u8 = 0x01;

impl FailureReason {
    pub fn from_u8(v: u8) -> FailureReason {
        match v {
            0x01 => FailureReason::Failed,
            0x02 => FailureReason::ProtocolNotUsable,
            0x03 => FailureReason::ConcatMismatch,
            0x04 => FailureReason::HashUnusable,
            0x05 => FailureReason::DhGroupUnusable,
            0x06 => FailureReason::IncorrectPayload,
            0x07 => FailureReason::IncorrectMessage,
            v => FailureReason::Unknown(v),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            FailureReason::Failed => 0x01,
            FailureReason::ProtocolNotUsable => 0x02,
            FailureReason::ConcatMismatch => 0x03,
            FailureReason::HashUnusable => 0x04,
            FailureReason::DhGroupUnusable => 0x05,
            FailureReason::IncorrectPayload => 0x06,
            FailureReason::IncorrectMessage => 0x07,
            FailureReason::Unknown(v) => v,
        }
    }
}

/// The header every message starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Header {
    pub auth_type: u8,
    pub auth_id: u8,
    pub rsvd: [u8; 2],
    /// Transaction identifier: the host's, echoed by the controller.
    pub t_id: U16,
}
const _: () = assert!(size_of::<Header>() == 6);

/// AUTH_Negotiate up to its protocol descriptors (NVMe Base 2.0 §8.13.5.3).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct NegotiateHead {
    pub hdr: Header,
    /// Secure channel concatenation (SC_C): 0 none.
    pub sc_c: u8,
    /// Number of protocol descriptors that follow.
    pub napd: u8,
}
const _: () = assert!(size_of::<NegotiateHead>() == 8);

/// One AUTH_Negotiate protocol descriptor.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ProtocolDescriptor {
    pub authid: u8,
    pub rsvd: u8,
    /// Hash function identifiers in `hash_ids`.
    pub halen: u8,
    /// DH group identifiers in `dh_ids`.
    pub dhlen: u8,
    pub hash_ids: [u8; ID_LIST_LEN],
    pub dh_ids: [u8; ID_LIST_LEN],
}
const _: () = assert!(size_of::<ProtocolDescriptor>() == 64);
const _: () = assert!(offset_of!(ProtocolDescriptor, dh_ids) == 34);

/// DH-HMAC-CHAP_Challenge up to its challenge value (NVMe Base 2.0 §8.13.5.4).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ChallengeHead {
    pub hdr: Header,
    /// Hash length: bytes of the challenge value.
    pub hl: u8,
    pub rsvd: u8,
    pub hashid: u8,
    pub dhgid: u8,
    /// Bytes of the DH value after the challenge.
    pub dhvlen: U16,
    /// Sequence number S1.
    pub seqnum: U32,
}
const _: () = assert!(size_of::<ChallengeHead>() == 16);

/// DH-HMAC-CHAP_Reply up to its response value (NVMe Base 2.0 §8.13.5.5).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ReplyHead {
    pub hdr: Header,
    pub hl: u8,
    pub rsvd: u8,
    /// Bit 0: the host's challenge C2 is valid (it asks the controller to authenticate).
    pub cvalid: u8,
    pub rsvd2: u8,
    pub dhvlen: U16,
    /// Sequence number S2 (with a valid C2).
    pub seqnum: U32,
}
const _: () = assert!(size_of::<ReplyHead>() == 16);

/// DH-HMAC-CHAP_Success1 up to its response value (NVMe Base 2.0 §8.13.5.6).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Success1Head {
    pub hdr: Header,
    pub hl: u8,
    pub rsvd: u8,
    /// Bit 0: the controller's response R2 follows.
    pub rvalid: u8,
    pub rsvd2: [u8; 7],
}
const _: () = assert!(size_of::<Success1Head>() == 16);

/// DH-HMAC-CHAP_Success2 (NVMe Base 2.0 §8.13.5.7).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Success2 {
    pub hdr: Header,
    pub rsvd: [u8; 10],
}
const _: () = assert!(size_of::<Success2>() == 16);

/// AUTH_Failure1 / AUTH_Failure2 (NVMe Base 2.0 §8.13.5.8).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Failure {
    pub hdr: Header,
    pub rescode: u8,
    pub rescode_exp: u8,
}
const _: () = assert!(size_of::<Failure>() == 8);

/// A parsed message, borrowing its variable parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Negotiate {
        t_id: u16,
        sc_c: u8,
        /// The DH-HMAC-CHAP descriptor's lists (the first such descriptor).
        dhchap: Option<Offer<'a>>,
    },
    Challenge {
        t_id: u16,
        hash: u8,
        dhgroup: u8,
        seqnum: u32,
        challenge: &'a [u8],
        dh_value: &'a [u8],
    },
    Reply {
        t_id: u16,
        response: &'a [u8],
        /// The host's challenge C2 and its sequence number S2, when valid.
        challenge: Option<(&'a [u8], u32)>,
        dh_value: &'a [u8],
    },
    Success1 {
        t_id: u16,
        response: Option<&'a [u8]>,
    },
    Success2 {
        t_id: u16,
    },
    Failure {
        /// Failure1 (controller to host) or Failure2 (host to controller).
        id: MessageId,
        t_id: u16,
        reason: FailureReason,
    },
}

/// The hash functions and DH groups a host offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer<'a> {
    pub hashes: &'a [u8],
    pub dhgroups: &'a [u8],
}

/// Why a message cannot be parsed (the answer is an AUTH_Failure1 with "incorrect payload"
/// or "incorrect message", or an Invalid Field status for the command).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{len} bytes: shorter than the message's fixed part or its stated lengths")]
    Short { len: usize },
    #[error("unknown AUTH-Type {0:#04x}")]
    AuthType(u8),
    #[error("unknown or misplaced AUTH-ID {0:#04x} for its AUTH-Type")]
    AuthId(u8),
    #[error("a list length exceeds its {ID_LIST_LEN} entries")]
    ListLength,
}

fn split<T: FromBytes + KnownLayout + Immutable>(
    bytes: &[u8],
) -> Result<(&T, &[u8]), MessageError> {
    T::ref_from_prefix(bytes).map_err(|_| MessageError::Short { len: bytes.len() })
}

fn take(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), MessageError> {
    if bytes.len() < n {
        return Err(MessageError::Short { len: bytes.len() });
    }
    Ok(bytes.split_at(n))
}

impl<'a> Message<'a> {
    /// Parse one message (the data of an Authentication Send, or of a Receive on the host).
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, MessageError> {
        let (hdr, _) = split::<Header>(bytes)?;
        let t_id = hdr.t_id.get();
        let id = MessageId::from_u8(hdr.auth_id);
        match (AuthType::from_u8(hdr.auth_type), id) {
            (AuthType::Common, MessageId::Negotiate) => {
                let (head, mut rest) = split::<NegotiateHead>(bytes)?;
                let mut dhchap = None;
                for _ in 0..head.napd {
                    let (d, more) = split::<ProtocolDescriptor>(rest)?;
                    rest = more;
                    let (halen, dhlen) = (usize::from(d.halen), usize::from(d.dhlen));
                    if halen > ID_LIST_LEN || dhlen > ID_LIST_LEN {
                        return Err(MessageError::ListLength);
                    }
                    if d.authid == AUTHID_DHCHAP && dhchap.is_none() {
                        dhchap = Some(Offer {
                            hashes: &d.hash_ids[..halen],
                            dhgroups: &d.dh_ids[..dhlen],
                        });
                    }
                }
                Ok(Message::Negotiate {
                    t_id,
                    sc_c: head.sc_c,
                    dhchap,
                })
            }
            (AuthType::Common, MessageId::Failure1 | MessageId::Failure2) => {
                let (f, _) = split::<Failure>(bytes)?;
                Ok(Message::Failure {
                    id,
                    t_id,
                    reason: FailureReason::from_u8(f.rescode_exp),
                })
            }
            (AuthType::DhChap, MessageId::Challenge) => {
                let (head, rest) = split::<ChallengeHead>(bytes)?;
                let (challenge, rest) = take(rest, usize::from(head.hl))?;
                let (dh_value, _) = take(rest, usize::from(head.dhvlen.get()))?;
                Ok(Message::Challenge {
                    t_id,
                    hash: head.hashid,
                    dhgroup: head.dhgid,
                    seqnum: head.seqnum.get(),
                    challenge,
                    dh_value,
                })
            }
            (AuthType::DhChap, MessageId::Reply) => {
                let (head, rest) = split::<ReplyHead>(bytes)?;
                let hl = usize::from(head.hl);
                let (response, rest) = take(rest, hl)?;
                let (c2, rest) = take(rest, hl)?;
                let (dh_value, _) = take(rest, usize::from(head.dhvlen.get()))?;
                Ok(Message::Reply {
                    t_id,
                    response,
                    challenge: (head.cvalid & 1 != 0).then_some((c2, head.seqnum.get())),
                    dh_value,
                })
            }
            (AuthType::DhChap, MessageId::Success1) => {
                let (head, rest) = split::<Success1Head>(bytes)?;
                let response = if head.rvalid & 1 != 0 {
                    Some(take(rest, usize::from(head.hl))?.0)
                } else {
                    None
                };
                Ok(Message::Success1 { t_id, response })
            }
            (AuthType::DhChap, MessageId::Success2) => {
                split::<Success2>(bytes)?;
                Ok(Message::Success2 { t_id })
            }
            (AuthType::Unknown(t), _) => Err(MessageError::AuthType(t)),
            (AuthType::Common | AuthType::DhChap, id) => Err(MessageError::AuthId(id.as_u8())),
        }
    }
}

fn header(auth_type: AuthType, id: MessageId, t_id: u16) -> Header {
    Header {
        auth_type: auth_type.as_u8(),
        auth_id: id.as_u8(),
        rsvd: [0; 2],
        t_id: U16::new(t_id),
    }
}

/// Append DH-HMAC-CHAP_Challenge to `out`.
pub fn encode_challenge(
    out: &mut Vec<u8>,
    t_id: u16,
    hash: HashId,
    dhgroup: DhGroup,
    seqnum: u32,
    challenge: &[u8],
    dh_value: &[u8],
) {
    let head = ChallengeHead {
        hdr: header(AuthType::DhChap, MessageId::Challenge, t_id),
        hl: challenge.len() as u8,
        rsvd: 0,
        hashid: hash.as_u8(),
        dhgid: dhgroup.as_u8(),
        dhvlen: U16::new(dh_value.len() as u16),
        seqnum: U32::new(seqnum),
    };
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(challenge);
    out.extend_from_slice(dh_value);
}

/// Append DH-HMAC-CHAP_Success1 to `out`, with the controller's response when the host
/// asked for one.
pub fn encode_success1(out: &mut Vec<u8>, t_id: u16, hl: u8, response: Option<&[u8]>) {
    let head = Success1Head {
        hdr: header(AuthType::DhChap, MessageId::Success1, t_id),
        hl,
        rsvd: 0,
        rvalid: u8::from(response.is_some()),
        rsvd2: [0; 7],
    };
    out.extend_from_slice(head.as_bytes());
    if let Some(r) = response {
        out.extend_from_slice(r);
    }
}

/// Append an AUTH_Failure1 (`id` Failure1) or AUTH_Failure2 to `out`.
pub fn encode_failure(out: &mut Vec<u8>, id: MessageId, t_id: u16, reason: FailureReason) {
    let f = Failure {
        hdr: header(AuthType::Common, id, t_id),
        rescode: FAILURE_REASON_CODE,
        rescode_exp: reason.as_u8(),
    };
    out.extend_from_slice(f.as_bytes());
}

/// Append AUTH_Negotiate with one DH-HMAC-CHAP descriptor (host side).
pub fn encode_negotiate(out: &mut Vec<u8>, t_id: u16, hashes: &[HashId], dhgroups: &[DhGroup]) {
    let head = NegotiateHead {
        hdr: header(AuthType::Common, MessageId::Negotiate, t_id),
        sc_c: 0,
        napd: 1,
    };
    let mut d = ProtocolDescriptor {
        authid: AUTHID_DHCHAP,
        rsvd: 0,
        halen: hashes.len().min(ID_LIST_LEN) as u8,
        dhlen: dhgroups.len().min(ID_LIST_LEN) as u8,
        hash_ids: [0; ID_LIST_LEN],
        dh_ids: [0; ID_LIST_LEN],
    };
    for (slot, h) in d.hash_ids.iter_mut().zip(hashes) {
        *slot = h.as_u8();
    }
    for (slot, g) in d.dh_ids.iter_mut().zip(dhgroups) {
        *slot = g.as_u8();
    }
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(d.as_bytes());
}

/// Append DH-HMAC-CHAP_Reply (host side): the response R1, the host's challenge C2 with
/// S2 when it asks the controller to authenticate, and its DH value.
pub fn encode_reply(
    out: &mut Vec<u8>,
    t_id: u16,
    response: &[u8],
    challenge: Option<(&[u8], u32)>,
    dh_value: &[u8],
) {
    let hl = response.len();
    let head = ReplyHead {
        hdr: header(AuthType::DhChap, MessageId::Reply, t_id),
        hl: hl as u8,
        rsvd: 0,
        cvalid: u8::from(challenge.is_some()),
        rsvd2: 0,
        dhvlen: U16::new(dh_value.len() as u16),
        seqnum: U32::new(challenge.map_or(0, |(_, s)| s)),
    };
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(response);
    match challenge {
        Some((c, _)) => out.extend_from_slice(&c[..hl.min(c.len())]),
        None => out.resize(out.len() + hl, 0),
    }
    out.extend_from_slice(dh_value);
}

/// Append DH-HMAC-CHAP_Success2 (host side).
pub fn encode_success2(out: &mut Vec<u8>, t_id: u16) {
    let s = Success2 {
        hdr: header(AuthType::DhChap, MessageId::Success2, t_id),
        rsvd: [0; 10],
    };
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests;
