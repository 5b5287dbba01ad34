//! The NVMe/TCP framer fed arbitrary bytes in arbitrary chunks, for either role and any
//! digest/alignment setting. It must never panic, an error must stick, and every PDU it
//! yields must survive an encode/re-frame round trip unchanged.
//!
//! Input layout: byte 0 = settings (bits 1:0 digests, bit 2 host role, bits 7:3 PDA),
//! byte 1 = chunking seed, the rest = the byte stream.
#![no_main]

use fabric::tcp::framer::{Framer, ReceivedPdu, Role};
use fabric::tcp::pdu::{Digests, EncodeOptions, Pdu, FLAG_LAST_PDU, FLAG_SUCCESS};
use libfuzzer_sys::fuzz_target;

const MAX_DATA: u32 = 64 * 1024;

fn framer(role: Role, digests: Digests, pda: u8) -> Framer {
    let mut f = Framer::new(role, MAX_DATA);
    f.set_digests(digests);
    f.set_rx_pda(pda);
    f
}

fn check_round_trip(p: &ReceivedPdu, role: Role, digests: Digests, pda: u8) {
    let pdu = Pdu::with_data(
        p.header,
        p.flags & (FLAG_LAST_PDU | FLAG_SUCCESS),
        p.data.clone(),
    );
    let bytes = pdu.encode(EncodeOptions { digests, pda }).to_vec();
    let mut again = framer(role, digests, pda);
    again.feed(&bytes);
    let q = again
        .next_pdu()
        .expect("re-encoded PDU must frame")
        .expect("re-encoded PDU must be complete");
    assert_eq!(q.header, p.header);
    assert_eq!(q.data, p.data);
    assert!(q.data_digest_ok);
    assert_eq!(again.buffered(), 0);
}

fuzz_target!(|input: &[u8]| {
    let (settings, seed, stream) = match input {
        [a, b, rest @ ..] => (*a, *b, rest),
        _ => return,
    };
    let digests = Digests::from_bits(settings & 0x3);
    let role = if settings & 0x4 != 0 {
        Role::Host
    } else {
        Role::Controller
    };
    let pda = settings >> 3;
    let mut f = framer(role, digests, pda);
    let mut chunk = usize::from(seed % 64) + 1;
    let mut rest = stream;
    let mut failed = false;
    while !rest.is_empty() {
        let n = chunk.min(rest.len());
        f.feed(&rest[..n]);
        rest = &rest[n..];
        chunk = (chunk * 7 + usize::from(seed)) % 97 + 1;
        loop {
            match f.next_pdu() {
                Ok(Some(p)) => {
                    assert!(!failed, "a PDU after a fatal error");
                    assert!(p.data.len() <= MAX_DATA as usize);
                    check_round_trip(&p, role, digests, pda);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(e.header.len() <= 128);
                    failed = true;
                    assert!(f.next_pdu().is_err(), "errors stick");
                    break;
                }
            }
        }
    }
});
