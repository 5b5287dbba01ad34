//! Feed arbitrary bytes to the in-band authentication message parser (DH-HMAC-CHAP and the
//! common messages). It may refuse anything but must not panic, and what it accepts must
//! encode back to the bytes it was parsed from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nvme::auth::{
    encode_challenge, encode_failure, encode_reply, encode_success1, encode_success2, DhGroup,
    HashId, Message,
};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let _ = format!("{msg:?}");
    let mut out = Vec::new();
    match msg {
        Message::Challenge {
            t_id,
            hash,
            dhgroup,
            seqnum,
            challenge,
            dh_value,
        } => {
            // The encoder takes known identifiers only; a challenge with others still
            // parsed (the state machine refuses them).
            if let (Some(h), Some(g)) = (HashId::from_u8(hash), DhGroup::from_u8(dhgroup)) {
                if data[3] == 0 && data[2] == 0 && data[7] == 0 {
                    encode_challenge(&mut out, t_id, h, g, seqnum, challenge, dh_value);
                    assert_eq!(&data[..out.len()], &out[..]);
                }
            }
        }
        Message::Reply {
            t_id,
            response,
            challenge,
            dh_value,
        } => {
            let reserved_clear = data[2] == 0 && data[3] == 0 && data[7] == 0 && data[9] == 0;
            let clean_flags = data[8] == u8::from(challenge.is_some());
            if reserved_clear && clean_flags && challenge.is_some() {
                encode_reply(&mut out, t_id, response, challenge, dh_value);
                assert_eq!(&data[..out.len()], &out[..]);
            }
        }
        Message::Success1 { t_id, response } => {
            let reserved_clear = data[2..4] == [0, 0] && data[7] == 0 && data[9..16] == [0; 7];
            if response.is_some() && data[8] == 1 && reserved_clear {
                encode_success1(&mut out, t_id, data[6], response);
                assert_eq!(&data[..out.len()], &out[..]);
            }
        }
        Message::Success2 { t_id } => {
            encode_success2(&mut out, t_id);
            assert_eq!(
                (out.len(), &out[..2], &out[4..6]),
                (16, &data[..2], &data[4..6])
            );
        }
        Message::Failure { id, t_id, reason } => {
            encode_failure(&mut out, id, t_id, reason);
            assert_eq!(out[7], data[7]);
            assert_eq!(out[1], data[1]);
        }
        Message::Negotiate { dhchap, .. } => {
            if let Some(offer) = dhchap {
                assert!(offer.hashes.len() <= 30 && offer.dhgroups.len() <= 30);
            }
        }
    }
});
