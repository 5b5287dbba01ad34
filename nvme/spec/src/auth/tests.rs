use super::*;

/// AUTH_Negotiate as the Linux host sends it: transaction 0x0102, no secure channel, one
/// DH-HMAC-CHAP descriptor offering SHA-256/384/512 and every DH group.
fn linux_negotiate() -> Vec<u8> {
    let mut b = vec![0x00, 0x00, 0, 0, 0x02, 0x01, 0x00, 0x01];
    let mut d = [0u8; 64];
    d[0] = 0x01; // AUTHID DH-HMAC-CHAP
    d[2] = 3; // HALEN
    d[3] = 6; // DHLEN
    d[4..7].copy_from_slice(&[1, 2, 3]);
    d[34..40].copy_from_slice(&[0, 1, 2, 3, 4, 5]);
    b.extend_from_slice(&d);
    b
}

#[test]
fn negotiate_golden_bytes_parse_and_encode() {
    let bytes = linux_negotiate();
    assert_eq!(bytes.len(), 72);
    let m = Message::parse(&bytes).expect("parses");
    assert_eq!(
        m,
        Message::Negotiate {
            t_id: 0x0102,
            sc_c: 0,
            dhchap: Some(Offer {
                hashes: &[1, 2, 3],
                dhgroups: &[0, 1, 2, 3, 4, 5],
            }),
        }
    );
    let mut out = Vec::new();
    encode_negotiate(&mut out, 0x0102, &HashId::ALL, &DhGroup::ALL);
    assert_eq!(out, bytes);
}

#[test]
fn challenge_golden_bytes() {
    let mut out = Vec::new();
    let c1 = [0xaa; 32];
    let dh = [0x55; 256];
    encode_challenge(
        &mut out,
        7,
        HashId::Sha256,
        DhGroup::Ffdhe2048,
        0x1122_3344,
        &c1,
        &dh,
    );
    assert_eq!(out.len(), 16 + 32 + 256);
    assert_eq!(
        &out[..16],
        &[0x01, 0x01, 0, 0, 7, 0, 32, 0, 0x01, 0x01, 0x00, 0x01, 0x44, 0x33, 0x22, 0x11]
    );
    match Message::parse(&out).expect("parses") {
        Message::Challenge {
            t_id,
            hash,
            dhgroup,
            seqnum,
            challenge,
            dh_value,
        } => {
            assert_eq!((t_id, hash, dhgroup, seqnum), (7, 1, 1, 0x1122_3344));
            assert_eq!((challenge, dh_value), (&c1[..], &dh[..]));
        }
        other => panic!("not a challenge: {other:?}"),
    }
}

#[test]
fn reply_with_and_without_a_host_challenge() {
    let r1 = [1u8; 48];
    let c2 = [2u8; 48];
    let mut out = Vec::new();
    encode_reply(&mut out, 9, &r1, Some((&c2, 77)), &[3; 384]);
    assert_eq!(
        &out[..16],
        &[0x01, 0x02, 0, 0, 9, 0, 48, 0, 1, 0, 0x80, 0x01, 77, 0, 0, 0]
    );
    assert_eq!(
        Message::parse(&out),
        Ok(Message::Reply {
            t_id: 9,
            response: &r1,
            challenge: Some((&c2[..], 77)),
            dh_value: &[3; 384],
        })
    );
    out.clear();
    encode_reply(&mut out, 9, &r1, None, &[]);
    assert_eq!(out.len(), 16 + 2 * 48);
    assert_eq!(
        Message::parse(&out),
        Ok(Message::Reply {
            t_id: 9,
            response: &r1,
            challenge: None,
            dh_value: &[],
        })
    );
}

#[test]
fn success_and_failure_golden_bytes() {
    let mut out = Vec::new();
    encode_success1(&mut out, 3, 32, Some(&[9; 32]));
    assert_eq!(
        &out[..16],
        &[0x01, 0x03, 0, 0, 3, 0, 32, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        Message::parse(&out),
        Ok(Message::Success1 {
            t_id: 3,
            response: Some(&[9; 32]),
        })
    );
    out.clear();
    encode_success2(&mut out, 3);
    assert_eq!(out, [0x01, 0x04, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(Message::parse(&out), Ok(Message::Success2 { t_id: 3 }));
    out.clear();
    encode_failure(
        &mut out,
        MessageId::Failure1,
        3,
        FailureReason::HashUnusable,
    );
    assert_eq!(out, [0x00, 0xf1, 0, 0, 3, 0, 0x01, 0x04]);
    assert_eq!(
        Message::parse(&out),
        Ok(Message::Failure {
            id: MessageId::Failure1,
            t_id: 3,
            reason: FailureReason::HashUnusable,
        })
    );
}

#[test]
fn malformed_messages_are_refused() {
    assert_eq!(Message::parse(&[]), Err(MessageError::Short { len: 0 }));
    assert_eq!(
        Message::parse(&[0x07, 0, 0, 0, 0, 0]),
        Err(MessageError::AuthType(7))
    );
    // A DH-HMAC-CHAP message id under the common type, and an unknown id.
    assert_eq!(
        Message::parse(&[0x00, 0x01, 0, 0, 0, 0]),
        Err(MessageError::AuthId(1))
    );
    assert_eq!(
        Message::parse(&[0x01, 0x33, 0, 0, 0, 0]),
        Err(MessageError::AuthId(0x33))
    );
    // Negotiate announcing two descriptors but carrying one.
    let mut b = linux_negotiate();
    b[7] = 2;
    assert_eq!(Message::parse(&b), Err(MessageError::Short { len: 0 }));
    // A hash list longer than its field.
    let mut b = linux_negotiate();
    b[8 + 2] = 31;
    assert_eq!(Message::parse(&b), Err(MessageError::ListLength));
    // A challenge whose DH value is cut short.
    let mut out = Vec::new();
    encode_challenge(
        &mut out,
        1,
        HashId::Sha256,
        DhGroup::Ffdhe2048,
        1,
        &[0; 32],
        &[0; 256],
    );
    out.truncate(out.len() - 1);
    assert!(matches!(
        Message::parse(&out),
        Err(MessageError::Short { .. })
    ));
}

#[test]
fn every_id_round_trips() {
    for v in 0..=255u8 {
        assert_eq!(AuthType::from_u8(v).as_u8(), v);
        assert_eq!(MessageId::from_u8(v).as_u8(), v);
        assert_eq!(FailureReason::from_u8(v).as_u8(), v);
        if let Some(h) = HashId::from_u8(v) {
            assert_eq!(h.as_u8(), v);
        }
        if let Some(g) = DhGroup::from_u8(v) {
            assert_eq!(g.as_u8(), v);
        }
    }
}
