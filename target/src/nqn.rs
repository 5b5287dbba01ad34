//! NVMe Qualified Names (NVMe Base 2.0 §4.5).

/// The well-known discovery subsystem NQN (NVMe Base 2.0 §4.5, NVMe-oF 1.1 §5).
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";
/// Maximum NQN length in bytes, without the terminating NUL.
pub const MAX_NQN_LEN: usize = 223;

/// Check the NQN forms of NVMe Base 2.0 §4.5: `nqn.yyyy-mm.<reverse domain>[:<string>]` or the
/// UUID form `nqn.2014-08.org.nvmexpress:uuid:<uuid>`; at most 223 bytes of UTF-8.
pub fn validate(nqn: &str) -> Result<(), String> {
    if nqn.len() > MAX_NQN_LEN {
        return Err(format!("longer than {MAX_NQN_LEN} bytes"));
    }
    let Some(rest) = nqn.strip_prefix("nqn.") else {
        return Err("must start with \"nqn.\"".into());
    };
    let date = rest
        .get(..7)
        .ok_or("must have a yyyy-mm date after \"nqn.\"")?;
    let db = date.as_bytes();
    let date_ok = db[..4].iter().all(u8::is_ascii_digit)
        && db[4] == b'-'
        && db[5..].iter().all(u8::is_ascii_digit);
    if !date_ok {
        return Err("must have a yyyy-mm date after \"nqn.\"".into());
    }
    let domain = &rest[7..];
    if !domain.starts_with('.') || domain.len() < 2 {
        return Err("must have a reverse domain name after the date".into());
    }
    if nqn.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert!(validate(DISCOVERY_NQN).is_ok());
        assert!(validate("nqn.2026-01.io.ferrofab:default").is_ok());
        assert!(
            validate("nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
                .is_ok()
        );
        assert!(validate("iqn.2026-01.io.x").is_err());
        assert!(validate("nqn.26-01.io.x").is_err());
        assert!(validate("nqn.2026-01").is_err());
        assert!(validate("nqn.2026-01.io.x\n").is_err());
        assert!(validate(&format!("nqn.2026-01.io.{}", "a".repeat(220))).is_err());
    }
}
