//! The 1024-byte data of a Connect command (NVMe-oF 1.1 §3.3; Linux
//! `struct nvmf_connect_data`).

use zerocopy::little_endian::U16;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use super::nqn::{read_nqn, write_nqn, NqnError, NQN_FIELD_LEN};

/// CNTLID in the Connect data of an admin queue: the host accepts any controller of a
/// dynamic controller model subsystem (NVMe-oF 1.1 §3.3).
pub const CNTLID_DYNAMIC: u16 = 0xffff;
/// CNTLID in the Connect data of an admin queue: any controller of a static model subsystem.
pub const CNTLID_ANY_STATIC: u16 = 0xfffe;

/// Connect command data, exactly as it travels on the wire.
#[derive(Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ConnectData {
    /// Host identifier, bytes 15:00.
    pub hostid: [u8; 16],
    /// Controller ID, bytes 17:16: for an I/O queue the one the admin Connect returned.
    pub cntlid: U16,
    pub rsvd18: [u8; 238],
    /// NVM subsystem NQN, bytes 511:256.
    pub subnqn: [u8; NQN_FIELD_LEN],
    /// Host NQN, bytes 767:512.
    pub hostnqn: [u8; NQN_FIELD_LEN],
    pub rsvd768: [u8; 256],
}
const _: () = assert!(core::mem::size_of::<ConnectData>() == ConnectData::SIZE);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectDataError {
    #[error("Connect data is {len} bytes, less than 1024")]
    Short { len: usize },
    #[error("SUBNQN: {0}")]
    SubNqn(NqnError),
    #[error("HOSTNQN: {0}")]
    HostNqn(NqnError),
}

impl ConnectData {
    pub const SIZE: usize = 1024;

    /// Build Connect data (host side).
    pub fn new(
        hostid: [u8; 16],
        cntlid: u16,
        subnqn: &str,
        hostnqn: &str,
    ) -> Result<ConnectData, ConnectDataError> {
        let mut data = ConnectData::new_zeroed();
        data.hostid = hostid;
        data.cntlid.set(cntlid);
        write_nqn(&mut data.subnqn, subnqn).map_err(ConnectDataError::SubNqn)?;
        write_nqn(&mut data.hostnqn, hostnqn).map_err(ConnectDataError::HostNqn)?;
        Ok(data)
    }

    /// Parse the first 1024 bytes of `bytes`. The NQNs are checked by their accessors.
    pub fn from_bytes(bytes: &[u8]) -> Result<ConnectData, ConnectDataError> {
        ConnectData::read_from_prefix(bytes)
            .map(|(d, _)| d)
            .map_err(|_| ConnectDataError::Short { len: bytes.len() })
    }

    pub fn hostid(&self) -> [u8; 16] {
        self.hostid
    }

    pub fn cntlid(&self) -> u16 {
        self.cntlid.get()
    }

    pub fn subnqn(&self) -> Result<&str, ConnectDataError> {
        read_nqn(&self.subnqn).map_err(ConnectDataError::SubNqn)
    }

    pub fn hostnqn(&self) -> Result<&str, ConnectDataError> {
        read_nqn(&self.hostnqn).map_err(ConnectDataError::HostNqn)
    }
}

impl core::fmt::Debug for ConnectData {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConnectData")
            .field("hostid", &self.hostid)
            .field("cntlid", &self.cntlid.get())
            .field("subnqn", &self.subnqn())
            .field("hostnqn", &self.hostnqn())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_connect_data() {
        // Offsets from Linux struct nvmf_connect_data: hostid @0, cntlid @16,
        // subsysnqn @256, hostnqn @512, 1024 bytes in all.
        let mut raw = vec![0u8; 1024];
        for (i, b) in raw[0..16].iter_mut().enumerate() {
            *b = 0x10 + i as u8;
        }
        raw[16] = 0xff;
        raw[17] = 0xff;
        raw[256..256 + 18].copy_from_slice(b"nqn.2014-08.org.nv");
        raw[512..512 + 9].copy_from_slice(b"nqn.host1");

        let data = ConnectData::from_bytes(&raw).unwrap();
        assert_eq!(data.hostid()[0], 0x10);
        assert_eq!(data.hostid()[15], 0x1f);
        assert_eq!(data.cntlid(), CNTLID_DYNAMIC);
        assert_eq!(data.subnqn(), Ok("nqn.2014-08.org.nv"));
        assert_eq!(data.hostnqn(), Ok("nqn.host1"));
        assert_eq!(data.as_bytes(), &raw[..]);

        let built =
            ConnectData::new(data.hostid(), 0xffff, "nqn.2014-08.org.nv", "nqn.host1").unwrap();
        assert_eq!(built.as_bytes(), &raw[..]);
    }

    #[test]
    fn short_and_unterminated_data_rejected() {
        assert_eq!(
            ConnectData::from_bytes(&[0u8; 1023]).unwrap_err(),
            ConnectDataError::Short { len: 1023 }
        );
        let mut raw = vec![0u8; 1024];
        raw[256..512].fill(b'a');
        let data = ConnectData::from_bytes(&raw).unwrap();
        assert_eq!(
            data.subnqn(),
            Err(ConnectDataError::SubNqn(NqnError::NotTerminated))
        );
        assert_eq!(
            data.hostnqn(),
            Err(ConnectDataError::HostNqn(NqnError::Empty))
        );
    }
}
