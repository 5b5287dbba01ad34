//! Header and data digests: CRC32C (Castagnoli), carried as 4 little-endian bytes right after
//! the header or the data they protect (NVMe/TCP 1.0 §3.3.1.1, "HDGST" and "DDGST").

/// Length in bytes of a header or data digest on the wire.
pub const DIGEST_LEN: usize = 4;

/// CRC32C of `data` (the value that goes on the wire, little-endian).
pub fn crc32c(data: &[u8]) -> u32 {
    ::crc32c::crc32c(data)
}

/// Continue a CRC32C over another piece of the same byte stream.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    ::crc32c::crc32c_append(crc, data)
}

/// The 4 digest bytes for `data`.
pub fn digest_bytes(data: &[u8]) -> [u8; DIGEST_LEN] {
    crc32c(data).to_le_bytes()
}

/// Whether `wire` (at least 4 bytes; only the first 4 count) is the digest of `data`.
pub fn verify(data: &[u8], wire: &[u8]) -> bool {
    match wire.get(..DIGEST_LEN) {
        Some(d) => d == digest_bytes(data).as_slice(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_crc32c_values() {
        // The CRC-32C check value (RFC 3720 §B.4 / the Rocksoft model "check" field).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        // RFC 3720 §B.4 test vectors: 32 bytes of zeros, 32 bytes of 0xff, 0..=31.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        assert_eq!(crc32c(&[]), 0);
    }

    #[test]
    fn digest_is_little_endian_and_appendable() {
        assert_eq!(digest_bytes(b"123456789"), [0x83, 0x92, 0x06, 0xe3]);
        let whole = crc32c(b"123456789");
        assert_eq!(crc32c_append(crc32c(b"1234"), b"56789"), whole);
        assert!(verify(b"123456789", &[0x83, 0x92, 0x06, 0xe3]));
        assert!(!verify(b"123456789", &[0x83, 0x92, 0x06, 0xe2]));
        assert!(!verify(b"123456789", &[0x83, 0x92]));
    }
}
