//! NVMe Qualified Names in fixed 256-byte fields (NVMe Base 2.0 §4.5): a UTF-8 string of at
//! most 223 bytes, terminated by a NUL, the rest of the field zero.

/// Width of every NQN field (Connect data SUBNQN/HOSTNQN, Identify Controller SUBNQN,
/// discovery log entry SUBNQN).
pub const NQN_FIELD_LEN: usize = 256;
/// Longest NQN in bytes, without the terminating NUL (NVMe Base 2.0 §4.5).
pub const NQN_MAX_LEN: usize = 223;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NqnError {
    #[error("NQN is empty")]
    Empty,
    #[error("NQN has no NUL terminator")]
    NotTerminated,
    #[error("NQN is {len} bytes, more than 223")]
    TooLong { len: usize },
    #[error("NQN is not valid UTF-8")]
    NotUtf8,
    #[error("NQN contains a NUL byte")]
    EmbeddedNul,
}

/// Read the NQN in `field`: the bytes before the first NUL. A field without a NUL, an empty
/// NQN, one longer than 223 bytes or one that is not UTF-8 is rejected.
pub fn read_nqn(field: &[u8]) -> Result<&str, NqnError> {
    let len = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(NqnError::NotTerminated)?;
    if len == 0 {
        return Err(NqnError::Empty);
    }
    if len > NQN_MAX_LEN {
        return Err(NqnError::TooLong { len });
    }
    core::str::from_utf8(&field[..len]).map_err(|_| NqnError::NotUtf8)
}

/// Write `nqn` into `field`, NUL-terminated and zero-filled to the end of the field.
pub fn write_nqn(field: &mut [u8], nqn: &str) -> Result<(), NqnError> {
    let bytes = nqn.as_bytes();
    if bytes.is_empty() {
        return Err(NqnError::Empty);
    }
    if bytes.len() > NQN_MAX_LEN {
        return Err(NqnError::TooLong { len: bytes.len() });
    }
    if bytes.contains(&0) {
        return Err(NqnError::EmbeddedNul);
    }
    if bytes.len() >= field.len() {
        return Err(NqnError::NotTerminated);
    }
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_terminated_nqn() {
        let mut field = [0u8; NQN_FIELD_LEN];
        field[..20].copy_from_slice(b"nqn.2014-08.org.test");
        assert_eq!(read_nqn(&field), Ok("nqn.2014-08.org.test"));
    }

    #[test]
    fn rejects_bad_fields() {
        assert_eq!(
            read_nqn(&[b'a'; NQN_FIELD_LEN]),
            Err(NqnError::NotTerminated)
        );
        assert_eq!(read_nqn(&[0u8; NQN_FIELD_LEN]), Err(NqnError::Empty));
        let mut long = [b'a'; NQN_FIELD_LEN];
        long[224] = 0;
        assert_eq!(read_nqn(&long), Err(NqnError::TooLong { len: 224 }));
        long[223] = 0;
        assert_eq!(read_nqn(&long).map(str::len), Ok(223));
        let mut bad = [0u8; NQN_FIELD_LEN];
        bad[0] = 0xff;
        assert_eq!(read_nqn(&bad), Err(NqnError::NotUtf8));
        assert_eq!(read_nqn(&[]), Err(NqnError::NotTerminated));
    }

    #[test]
    fn write_round_trip_and_limits() {
        let mut field = [0xaau8; NQN_FIELD_LEN];
        write_nqn(&mut field, "nqn.x").unwrap();
        assert_eq!(&field[..6], b"nqn.x\0");
        assert!(field[6..].iter().all(|&b| b == 0));
        assert_eq!(read_nqn(&field), Ok("nqn.x"));
        assert_eq!(write_nqn(&mut field, ""), Err(NqnError::Empty));
        let long = "a".repeat(224);
        assert_eq!(
            write_nqn(&mut field, &long),
            Err(NqnError::TooLong { len: 224 })
        );
        assert_eq!(write_nqn(&mut field, "a\0b"), Err(NqnError::EmbeddedNul));
        assert_eq!(
            write_nqn(&mut [0u8; 4], "abcd"),
            Err(NqnError::NotTerminated)
        );
    }
}
