//! Whole transactions against a host written here from the spec's formulas (NVMe Base 2.0
//! §8.13.5.4-§8.13.5.6), and every state against every event.

use hmac::{Hmac, Mac};
use nvme::auth::{
    encode_failure, encode_negotiate, encode_reply, encode_success2, DhGroup, FailureReason,
    HashId, Message, MessageId,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::*;
use crate::auth::dh::DhKeyPair;
use crate::auth::key::DhchapKey;

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:0a1b2c3d-0000-4000-8000-00000000beef";
const SUB: &str = "nqn.2026-01.io.ferrofab:auth";

fn mac(hash: HashId, key: &[u8], data: &[u8]) -> Vec<u8> {
    match hash {
        HashId::Sha256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        HashId::Sha384 => {
            let mut m = Hmac::<Sha384>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        HashId::Sha512 => {
            let mut m = Hmac::<Sha512>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn hash_of(hash: HashId, data: &[u8]) -> Vec<u8> {
    match hash {
        HashId::Sha256 => Sha256::digest(data).to_vec(),
        HashId::Sha384 => Sha384::digest(data).to_vec(),
        HashId::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// A key's bytes as the host uses them: transformed with its hash and `nqn`.
fn host_side_key(raw: &[u8], transform: Option<HashId>, nqn: &str) -> Vec<u8> {
    match transform {
        None => raw.to_vec(),
        Some(h) => mac(h, raw, format!("{nqn}NVMe-over-Fabrics").as_bytes()),
    }
}

/// The spec's response, written out byte by byte.
#[allow(clippy::too_many_arguments)]
fn spec_response(
    hash: HashId,
    key: &[u8],
    challenge: &[u8],
    shared: Option<&[u8]>,
    seq: u32,
    t_id: u16,
    tag: &str,
    first: &str,
    second: &str,
) -> Vec<u8> {
    let c = match shared {
        Some(s) => mac(hash, &hash_of(hash, s), challenge),
        None => challenge.to_vec(),
    };
    let mut data = c;
    data.extend_from_slice(&seq.to_le_bytes());
    data.extend_from_slice(&t_id.to_le_bytes());
    data.push(0);
    data.extend_from_slice(tag.as_bytes());
    data.extend_from_slice(first.as_bytes());
    data.push(0);
    data.extend_from_slice(second.as_bytes());
    mac(hash, key, &data)
}

struct Keys {
    host_raw: Vec<u8>,
    host_transform: Option<HashId>,
    ctrl_raw: Vec<u8>,
    ctrl_transform: Option<HashId>,
}

fn keys(seed: u8, transform: Option<HashId>) -> Keys {
    Keys {
        host_raw: (0..32).map(|i| seed.wrapping_add(i)).collect(),
        host_transform: transform,
        ctrl_raw: (0..48)
            .map(|i| seed.wrapping_mul(3).wrapping_add(i))
            .collect(),
        ctrl_transform: transform,
    }
}

fn controller(k: &Keys, with_ctrl_key: bool, policy: Policy) -> Dhchap {
    let host_keys = HostKeys {
        key: DhchapKey::from_raw(&k.host_raw, k.host_transform).unwrap(),
        ctrl_key: with_ctrl_key
            .then(|| DhchapKey::from_raw(&k.ctrl_raw, k.ctrl_transform).unwrap()),
    };
    Dhchap::new(host_keys, policy, HOST, SUB)
}

/// What the host saw at the end of a transaction.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Success1; with bidirectional, whether R2 verified under the host's idea of the
    /// controller key.
    Success {
        r2_verified: Option<bool>,
    },
    Failure(FailureReason),
}

/// Run one transaction as the host with `host_keys` (what the host believes the keys are).
fn transaction(
    ctrl: &mut Dhchap,
    host_keys: &Keys,
    hashes: &[HashId],
    groups: &[DhGroup],
    bidirectional: bool,
    rng: &mut StdRng,
) -> Outcome {
    let t_id = 0x1234;
    let mut msg = Vec::new();
    encode_negotiate(&mut msg, t_id, hashes, groups);
    ctrl.send(&msg);
    let challenge = ctrl.receive(4096, rng).unwrap();
    let (hash, group, s1, c1, ctrl_public) = match Message::parse(&challenge).unwrap() {
        Message::Challenge {
            t_id: got,
            hash,
            dhgroup,
            seqnum,
            challenge,
            dh_value,
        } => {
            assert_eq!(got, t_id);
            (
                HashId::from_u8(hash).unwrap(),
                DhGroup::from_u8(dhgroup).unwrap(),
                seqnum,
                challenge.to_vec(),
                dh_value.to_vec(),
            )
        }
        Message::Failure { reason, .. } => return Outcome::Failure(reason),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(c1.len(), hash.digest_len());
    assert_eq!(ctrl_public.len(), group.value_len());
    let host_pair = DhKeyPair::generate(group, rng);
    let shared = host_pair.as_ref().map(|p| p.shared(&ctrl_public).unwrap());
    let kh = host_side_key(&host_keys.host_raw, host_keys.host_transform, HOST);
    let r1 = spec_response(
        hash,
        &kh,
        &c1,
        shared.as_ref().map(|s| s.as_slice()),
        s1,
        t_id,
        "HostHost",
        HOST,
        SUB,
    );
    let c2 = vec![0x5a; hash.digest_len()];
    let s2 = 0xdead_beef;
    msg.clear();
    encode_reply(
        &mut msg,
        t_id,
        &r1,
        bidirectional.then_some((&c2[..], s2)),
        host_pair.as_ref().map_or(&[][..], |p| p.public()),
    );
    ctrl.send(&msg);
    let answer = ctrl.receive(4096, rng).unwrap();
    match Message::parse(&answer).unwrap() {
        Message::Success1 {
            t_id: got,
            response,
        } => {
            assert_eq!(got, t_id);
            assert_eq!(response.is_some(), bidirectional);
            let r2_verified = response.map(|r2| {
                let kc = host_side_key(&host_keys.ctrl_raw, host_keys.ctrl_transform, SUB);
                let want = spec_response(
                    hash,
                    &kc,
                    &c2,
                    shared.as_ref().map(|s| s.as_slice()),
                    s2,
                    t_id,
                    "Controller",
                    SUB,
                    HOST,
                );
                want == r2
            });
            if r2_verified == Some(true) {
                msg.clear();
                encode_success2(&mut msg, t_id);
                ctrl.send(&msg);
            }
            Outcome::Success { r2_verified }
        }
        Message::Failure { reason, .. } => Outcome::Failure(reason),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_hash_with_null_and_two_dh_groups_uni_and_bidirectional() {
    let mut rng = StdRng::seed_from_u64(1);
    for hash in HashId::ALL {
        for group in [DhGroup::Null, DhGroup::Ffdhe2048, DhGroup::Ffdhe3072] {
            for transform in [None, Some(hash)] {
                for bidirectional in [false, true] {
                    let k = keys(hash.as_u8() * 7 + group.as_u8(), transform);
                    let mut ctrl = controller(&k, true, Policy::default());
                    let out =
                        transaction(&mut ctrl, &k, &[hash], &[group], bidirectional, &mut rng);
                    let want = Outcome::Success {
                        r2_verified: bidirectional.then_some(true),
                    };
                    assert_eq!(
                        out, want,
                        "{hash:?} {group:?} {transform:?} bi={bidirectional}"
                    );
                    assert!(
                        ctrl.authenticated(),
                        "{hash:?} {group:?} bi={bidirectional}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_largest_group_works_too() {
    let mut rng = StdRng::seed_from_u64(2);
    let k = keys(9, Some(HashId::Sha512));
    let mut ctrl = controller(&k, true, Policy::default());
    let out = transaction(
        &mut ctrl,
        &k,
        &[HashId::Sha512],
        &[DhGroup::Ffdhe8192],
        true,
        &mut rng,
    );
    assert_eq!(
        out,
        Outcome::Success {
            r2_verified: Some(true)
        }
    );
    assert!(ctrl.authenticated());
}

#[test]
fn a_wrong_host_key_is_refused() {
    let mut rng = StdRng::seed_from_u64(3);
    let k = keys(1, Some(HashId::Sha256));
    let wrong = keys(2, Some(HashId::Sha256));
    for group in [DhGroup::Null, DhGroup::Ffdhe2048] {
        let mut ctrl = controller(&k, false, Policy::default());
        let out = transaction(
            &mut ctrl,
            &wrong,
            &[HashId::Sha256],
            &[group],
            false,
            &mut rng,
        );
        assert_eq!(out, Outcome::Failure(FailureReason::Failed));
        assert!(!ctrl.authenticated());
    }
}

#[test]
fn a_wrong_controller_key_is_caught_by_the_host() {
    let mut rng = StdRng::seed_from_u64(4);
    let k = keys(1, None);
    let mut host_view = keys(1, None);
    host_view.ctrl_raw[0] ^= 1;
    let mut ctrl = controller(&k, true, Policy::default());
    let out = transaction(
        &mut ctrl,
        &host_view,
        &[HashId::Sha384],
        &[DhGroup::Ffdhe2048],
        true,
        &mut rng,
    );
    assert_eq!(
        out,
        Outcome::Success {
            r2_verified: Some(false)
        }
    );
    // The host sent no Success2: the queue is not authenticated.
    assert!(!ctrl.authenticated());
}

#[test]
fn bidirectional_without_a_controller_key_fails() {
    let mut rng = StdRng::seed_from_u64(5);
    let k = keys(1, None);
    let mut ctrl = controller(&k, false, Policy::default());
    let out = transaction(
        &mut ctrl,
        &k,
        &[HashId::Sha256],
        &[DhGroup::Null],
        true,
        &mut rng,
    );
    assert_eq!(out, Outcome::Failure(FailureReason::Failed));
    assert!(!ctrl.authenticated());
}

#[test]
fn negotiation_picks_by_policy_and_refuses_what_it_cannot_use() {
    let mut rng = StdRng::seed_from_u64(6);
    let k = keys(1, None);
    let only_sha512 = Policy {
        hashes: vec![HashId::Sha512],
        dhgroups: vec![DhGroup::Ffdhe4096],
    };
    let mut ctrl = controller(&k, false, only_sha512.clone());
    let out = transaction(
        &mut ctrl,
        &k,
        &[HashId::Sha256],
        &DhGroup::ALL,
        false,
        &mut rng,
    );
    assert_eq!(out, Outcome::Failure(FailureReason::HashUnusable));
    let mut ctrl = controller(&k, false, only_sha512);
    let out = transaction(
        &mut ctrl,
        &k,
        &HashId::ALL,
        &[DhGroup::Null],
        false,
        &mut rng,
    );
    assert_eq!(out, Outcome::Failure(FailureReason::DhGroupUnusable));
    // Secure channel concatenation without TLS.
    let mut ctrl = controller(&k, false, Policy::default());
    let mut msg = Vec::new();
    encode_negotiate(&mut msg, 1, &HashId::ALL, &DhGroup::ALL);
    msg[6] = 1;
    ctrl.send(&msg);
    assert_eq!(
        failure_of(&ctrl.receive(4096, &mut rng).unwrap()),
        Some(FailureReason::ConcatMismatch)
    );
}

fn failure_of(bytes: &[u8]) -> Option<FailureReason> {
    match Message::parse(bytes).ok()? {
        Message::Failure {
            id: MessageId::Failure1,
            reason,
            ..
        } => Some(reason),
        _ => None,
    }
}

#[test]
fn a_short_receive_buffer_changes_nothing() {
    let mut rng = StdRng::seed_from_u64(7);
    let k = keys(1, None);
    let mut ctrl = controller(&k, false, Policy::default());
    let mut msg = Vec::new();
    encode_negotiate(&mut msg, 1, &[HashId::Sha256], &[DhGroup::Ffdhe2048]);
    ctrl.send(&msg);
    assert_eq!(
        ctrl.receive(100, &mut rng),
        Err(TooSmall {
            need: 16 + 32 + 256,
            al: 100
        })
    );
    let c = ctrl.receive(4096, &mut rng).unwrap();
    assert!(matches!(Message::parse(&c), Ok(Message::Challenge { .. })));
}

/// The states a transaction passes through, each reached from a fresh controller.
#[derive(Clone, Copy, Debug)]
enum At {
    Idle,
    Challenge,
    Reply,
    Success1,
    Success2,
    Failure1,
}

/// Events of the table in the module documentation.
#[derive(Clone, Copy, Debug)]
enum Ev {
    Negotiate,
    Reply,
    Success2,
    Failure2,
    Garbage,
    Receive,
}

/// A controller in state `at`, with the host's pieces needed to go on from there.
fn reach(at: At, rng: &mut StdRng) -> (Dhchap, Keys) {
    let k = keys(3, None);
    let mut ctrl = controller(&k, true, Policy::default());
    let mut msg = Vec::new();
    let negotiate = |ctrl: &mut Dhchap| {
        let mut m = Vec::new();
        encode_negotiate(&mut m, 1, &[HashId::Sha256], &[DhGroup::Null]);
        ctrl.send(&m);
    };
    match at {
        At::Idle => {}
        At::Failure1 => {
            encode_negotiate(&mut msg, 1, &[HashId::Sha256], &[]);
            ctrl.send(&msg);
        }
        At::Challenge => negotiate(&mut ctrl),
        At::Reply | At::Success1 | At::Success2 => {
            negotiate(&mut ctrl);
            let c = ctrl.receive(4096, rng).unwrap();
            let Ok(Message::Challenge {
                seqnum, challenge, ..
            }) = Message::parse(&c)
            else {
                panic!("no challenge")
            };
            if !matches!(at, At::Reply) {
                let r1 = spec_response(
                    HashId::Sha256,
                    &k.host_raw,
                    challenge,
                    None,
                    seqnum,
                    1,
                    "HostHost",
                    HOST,
                    SUB,
                );
                let c2 = [1u8; 32];
                encode_reply(&mut msg, 1, &r1, Some((&c2, 5)), &[]);
                ctrl.send(&msg);
                if matches!(at, At::Success2) {
                    ctrl.receive(4096, rng).unwrap();
                }
            }
        }
    }
    (ctrl, k)
}

/// What the next Receive answers after `ev` in `at`: the message id, and whether the queue
/// is authenticated.
fn apply(at: At, ev: Ev, rng: &mut StdRng) -> (MessageId, bool) {
    let (mut ctrl, _) = reach(at, rng);
    let mut msg = Vec::new();
    match ev {
        Ev::Negotiate => encode_negotiate(&mut msg, 1, &[HashId::Sha256], &[DhGroup::Null]),
        Ev::Reply => encode_reply(&mut msg, 1, &[0; 32], None, &[]),
        Ev::Success2 => encode_success2(&mut msg, 1),
        Ev::Failure2 => encode_failure(&mut msg, MessageId::Failure2, 1, FailureReason::Failed),
        Ev::Garbage => msg.extend_from_slice(&[0x09, 0x09, 0, 0]),
        Ev::Receive => {}
    }
    if !msg.is_empty() {
        ctrl.send(&msg);
    } else {
        ctrl.receive(4096, rng).unwrap();
    }
    let authed = ctrl.authenticated();
    let next = ctrl.receive(4096, rng).unwrap();
    let Ok(m) = Message::parse(&next) else {
        panic!("unparsable answer")
    };
    let id = match m {
        Message::Challenge { .. } => MessageId::Challenge,
        Message::Success1 { .. } => MessageId::Success1,
        Message::Failure { id, .. } => id,
        other => panic!("controller sent {other:?}"),
    };
    (id, authed)
}

#[test]
fn every_state_against_every_event() {
    use MessageId::{Challenge as C, Failure1 as F, Success1 as S1};
    let mut rng = StdRng::seed_from_u64(8);
    // (state, event, next Receive's message, authenticated after the event)
    let table = [
        (At::Idle, Ev::Negotiate, C, false),
        (At::Idle, Ev::Reply, F, false),
        (At::Idle, Ev::Success2, F, false),
        (At::Idle, Ev::Failure2, F, false),
        (At::Idle, Ev::Garbage, F, false),
        (At::Idle, Ev::Receive, F, false),
        (At::Challenge, Ev::Negotiate, C, false),
        (At::Challenge, Ev::Reply, F, false),
        (At::Challenge, Ev::Success2, F, false),
        (At::Challenge, Ev::Failure2, F, false),
        (At::Challenge, Ev::Garbage, F, false),
        // Receive takes the challenge; the next Receive is out of sequence.
        (At::Challenge, Ev::Receive, F, false),
        (At::Reply, Ev::Negotiate, C, false),
        // A reply with a wrong response.
        (At::Reply, Ev::Reply, F, false),
        (At::Reply, Ev::Success2, F, false),
        (At::Reply, Ev::Failure2, F, false),
        (At::Reply, Ev::Garbage, F, false),
        (At::Reply, Ev::Receive, F, false),
        (At::Success1, Ev::Negotiate, C, false),
        (At::Success1, Ev::Reply, F, false),
        (At::Success1, Ev::Success2, F, false),
        (At::Success1, Ev::Failure2, F, false),
        (At::Success1, Ev::Garbage, F, false),
        // Receive takes Success1 with R2; the controller now waits for Success2.
        (At::Success1, Ev::Receive, F, false),
        (At::Success2, Ev::Negotiate, C, false),
        (At::Success2, Ev::Reply, F, false),
        // Success2 completes the transaction; nothing more to say.
        (At::Success2, Ev::Success2, F, true),
        (At::Success2, Ev::Failure2, F, false),
        (At::Success2, Ev::Garbage, F, false),
        (At::Success2, Ev::Receive, F, false),
        (At::Failure1, Ev::Negotiate, C, false),
        (At::Failure1, Ev::Reply, F, false),
        (At::Failure1, Ev::Success2, F, false),
        (At::Failure1, Ev::Failure2, F, false),
        (At::Failure1, Ev::Garbage, F, false),
        (At::Failure1, Ev::Receive, F, false),
    ];
    for (at, ev, next, authed) in table {
        assert_eq!(apply(at, ev, &mut rng), (next, authed), "{at:?} x {ev:?}");
    }
    // What each state's Receive answers, with no event before it.
    for (at, next) in [
        (At::Idle, F),
        (At::Challenge, C),
        (At::Reply, F),
        (At::Success1, S1),
        (At::Success2, F),
        (At::Failure1, F),
    ] {
        let (mut ctrl, _) = reach(at, &mut rng);
        let got = Message::parse(&ctrl.receive(4096, &mut rng).unwrap()).map(|m| match m {
            Message::Challenge { .. } => C,
            Message::Success1 { .. } => S1,
            Message::Failure { id, .. } => id,
            _ => MessageId::Unknown(0),
        });
        assert_eq!(got, Ok(next), "{at:?} x Receive");
    }
}
