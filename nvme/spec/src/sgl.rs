//! SGL descriptors as NVMe-oF uses them in the SQE data pointer (NVMe Base 2.0 §4.3.2,
//! NVMe-oF 1.1 §2.3; NVMe/TCP 1.0 §3.4 for the transport-specific forms).

/// SGL descriptor type, bits 7:4 of byte 15 (NVMe Base 2.0 Figure 114).
pub const TYPE_DATA_BLOCK: u8 = 0x0;
pub const TYPE_KEYED_DATA_BLOCK: u8 = 0x4;
pub const TYPE_TRANSPORT_DATA_BLOCK: u8 = 0x5;
/// SGL descriptor sub type, bits 3:0 of byte 15 (NVMe Base 2.0 Figure 115).
pub const SUBTYPE_ADDRESS: u8 = 0x0;
pub const SUBTYPE_OFFSET: u8 = 0x1;
pub const SUBTYPE_TRANSPORT_A: u8 = 0xa;
/// Keyed SGL Data Block sub type: the controller invalidates the key when it sends the
/// completion (NVMe-oF 1.1 §2.3.1; RDMA: Send with Invalidate).
pub const SUBTYPE_INVALIDATE_KEY: u8 = 0xf;

/// A decoded SGL descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sgl {
    /// Data Block with Offset sub type: data travels in the command capsule at `offset`
    /// from the start of the in-capsule data area (NVMe-oF 1.1 §2.3.1).
    InCapsule { offset: u64, length: u32 },
    /// Transport SGL Data Block: data moves by transport PDUs (NVMe/TCP: R2T/H2CData, C2HData).
    Transport { length: u32, subtype: u8 },
    /// Keyed SGL Data Block (RDMA): remote address, 24-bit length, 32-bit key, and the sub
    /// type (Address, or Invalidate Key).
    Keyed {
        address: u64,
        length: u32,
        key: u32,
        subtype: u8,
    },
    /// Anything else: the controller answers with an SGL status.
    Other {
        sgl_type: u8,
        subtype: u8,
        length: u32,
    },
}

impl Sgl {
    pub fn parse(raw: &[u8; 16]) -> Sgl {
        let address = u64::from_le_bytes(raw[0..8].try_into().unwrap_or([0; 8]));
        let length = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
        let sgl_type = raw[15] >> 4;
        let subtype = raw[15] & 0xf;
        match (sgl_type, subtype) {
            (TYPE_DATA_BLOCK, SUBTYPE_OFFSET) => Sgl::InCapsule {
                offset: address,
                length,
            },
            (TYPE_TRANSPORT_DATA_BLOCK, _) => Sgl::Transport { length, subtype },
            (TYPE_KEYED_DATA_BLOCK, _) => Sgl::Keyed {
                address,
                length: length & 0x00ff_ffff,
                key: u32::from_le_bytes([raw[11], raw[12], raw[13], raw[14]]),
                subtype,
            },
            _ => Sgl::Other {
                sgl_type,
                subtype,
                length,
            },
        }
    }

    pub fn encode(&self) -> [u8; 16] {
        let mut raw = [0u8; 16];
        match *self {
            Sgl::InCapsule { offset, length } => {
                raw[0..8].copy_from_slice(&offset.to_le_bytes());
                raw[8..12].copy_from_slice(&length.to_le_bytes());
                raw[15] = (TYPE_DATA_BLOCK << 4) | SUBTYPE_OFFSET;
            }
            Sgl::Transport { length, subtype } => {
                raw[8..12].copy_from_slice(&length.to_le_bytes());
                raw[15] = (TYPE_TRANSPORT_DATA_BLOCK << 4) | (subtype & 0xf);
            }
            Sgl::Keyed {
                address,
                length,
                key,
                subtype,
            } => {
                raw[0..8].copy_from_slice(&address.to_le_bytes());
                raw[8..11].copy_from_slice(&length.to_le_bytes()[0..3]);
                raw[11..15].copy_from_slice(&key.to_le_bytes());
                raw[15] = (TYPE_KEYED_DATA_BLOCK << 4) | (subtype & 0xf);
            }
            Sgl::Other {
                sgl_type,
                subtype,
                length,
            } => {
                raw[8..12].copy_from_slice(&length.to_le_bytes());
                raw[15] = (sgl_type << 4) | (subtype & 0xf);
            }
        }
        raw
    }

    /// Length in bytes of the data the descriptor describes.
    pub fn length(&self) -> u32 {
        match *self {
            Sgl::InCapsule { length, .. }
            | Sgl::Transport { length, .. }
            | Sgl::Keyed { length, .. }
            | Sgl::Other { length, .. } => length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_in_capsule_and_transport() {
        // Linux nvme-tcp: in-capsule data uses (NVME_SGL_FMT_DATA_DESC << 4) | NVME_SGL_FMT_OFFSET.
        let raw = [0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0, 0, 0, 0, 0x01];
        assert_eq!(
            Sgl::parse(&raw),
            Sgl::InCapsule {
                offset: 0,
                length: 4096
            }
        );
        assert_eq!(Sgl::parse(&raw).encode(), raw);
        // and the transport data block (NVME_TRANSPORT_SGL_DATA_DESC << 4) | NVME_SGL_FMT_TRANSPORT_A.
        let raw = [0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0x5a];
        let sgl = Sgl::parse(&raw);
        assert_eq!(
            sgl,
            Sgl::Transport {
                length: 0x20000,
                subtype: 0xa
            }
        );
        assert_eq!(sgl.encode(), raw);
    }

    #[test]
    fn keyed_round_trip() {
        let sgl = Sgl::Keyed {
            address: 0xdead_beef_0000,
            length: 0x12_3456,
            key: 0xcafe_f00d,
            subtype: SUBTYPE_INVALIDATE_KEY,
        };
        assert_eq!(Sgl::parse(&sgl.encode()), sgl);
        // Linux nvme-rdma: (NVME_KEY_SGL_FMT_DATA_DESC << 4) | NVME_SGL_FMT_INVALIDATE.
        let raw = [
            0, 0x10, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x78, 0x56, 0x34, 0x12, 0x4f,
        ];
        assert_eq!(
            Sgl::parse(&raw),
            Sgl::Keyed {
                address: 0x1000,
                length: 4096,
                key: 0x1234_5678,
                subtype: SUBTYPE_INVALIDATE_KEY,
            }
        );
        assert_eq!(Sgl::parse(&raw).encode(), raw);
    }
}
