//! The NVMe/TCP TLS PSK formats fed arbitrary bytes: the PSK identity a host offers in its
//! ClientHello (`Identity::parse`, reached by any host that starts a handshake) and the
//! `NVMeTLSkey-1` interchange format (config, REST). Neither may panic; what parses must
//! print back to text that parses to the same value, and a parsed key must derive a TLS PSK
//! for a parsed identity of its hash without panicking.
#![no_main]

use fabric::tcp::tls::{ConfiguredPsk, Identity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = Identity::parse(data) {
        let text = id.to_string();
        assert_eq!(Identity::parse(text.as_bytes()).as_ref(), Ok(&id));
        let key = ConfiguredPsk::from_raw(&[7; 32], Some(id.hash));
        if let Ok(key) = key {
            let _ = key.tls_psk(&id);
        }
    }
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(key) = ConfiguredPsk::parse(text) {
            assert_eq!(ConfiguredPsk::parse(&key.to_text()).as_ref(), Ok(&key));
        }
    }
});
