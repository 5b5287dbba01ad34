//! The DH-HMAC-CHAP computations (NVMe Base 2.0 §8.13.5.4-§8.13.5.6): HMAC and hash with the
//! negotiated function, the augmented challenge of a DH exchange, and the host's and the
//! controller's responses. RustCrypto's `hmac` and `sha2` do the cryptography.

use hmac::{Hmac, Mac};
use nvme::auth::HashId;
use sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

fn mac_of<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    // HMAC takes keys of any length, so this never fails; an empty result would match no
    // response if it did.
    let Ok(mut m) = <M as Mac>::new_from_slice(key) else {
        return Zeroizing::new(Vec::new());
    };
    for p in parts {
        m.update(p);
    }
    Zeroizing::new(m.finalize().into_bytes().to_vec())
}

/// HMAC with `hash` under `key` over the concatenation of `parts`.
pub fn hmac(hash: HashId, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    match hash {
        HashId::Sha256 => mac_of::<Hmac<Sha256>>(key, parts),
        HashId::Sha384 => mac_of::<Hmac<Sha384>>(key, parts),
        HashId::Sha512 => mac_of::<Hmac<Sha512>>(key, parts),
    }
}

/// The hash of `data`.
pub fn digest(hash: HashId, data: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(match hash {
        HashId::Sha256 => Sha256::digest(data).to_vec(),
        HashId::Sha384 => Sha384::digest(data).to_vec(),
        HashId::Sha512 => Sha512::digest(data).to_vec(),
    })
}

/// The challenge a response is computed over: `challenge` itself without a DH exchange;
/// with one, HMAC(H(shared secret), challenge) (§8.13.5.4: Ca = HMAC(H(g^xy mod p), C)).
pub fn augmented(hash: HashId, shared: Option<&[u8]>, challenge: &[u8]) -> Zeroizing<Vec<u8>> {
    match shared {
        None => Zeroizing::new(challenge.to_vec()),
        Some(s) => hmac(hash, &digest(hash, s), &[challenge]),
    }
}

/// Who a response authenticates, with the fixed string the spec mixes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// R1 = HMAC(Kh, Ca1 || S1 || T_ID || SC_C || "HostHost" || NQNh || 00h || NQNc).
    Host,
    /// R2 = HMAC(Kc, Ca2 || S2 || T_ID || SC_C || "Controller" || NQNc || 00h || NQNh).
    Controller,
}

/// A response (§8.13.5.5, §8.13.5.6) under the transformed `key` of `role`'s side.
#[allow(clippy::too_many_arguments)]
pub fn response(
    role: Role,
    hash: HashId,
    key: &[u8],
    challenge: &[u8],
    seqnum: u32,
    t_id: u16,
    sc_c: u8,
    hostnqn: &str,
    subnqn: &str,
) -> Zeroizing<Vec<u8>> {
    let (tag, first, second): (&[u8], &str, &str) = match role {
        Role::Host => (b"HostHost", hostnqn, subnqn),
        Role::Controller => (b"Controller", subnqn, hostnqn),
    };
    hmac(
        hash,
        key,
        &[
            challenge,
            &seqnum.to_le_bytes(),
            &t_id.to_le_bytes(),
            &[sc_c],
            tag,
            first.as_bytes(),
            &[0],
            second.as_bytes(),
        ],
    )
}
