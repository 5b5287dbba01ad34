//! Finite field Diffie-Hellman in the RFC 7919 groups DH-HMAC-CHAP uses (NVMe Base 2.0
//! §8.13.5.2): the group parameters from `rustls::ffdhe_groups`, constant-time modular
//! exponentiation from `crypto-bigint`. Public values and shared secrets are big-endian,
//! as long as the group's prime.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use nvme::auth::DhGroup;
use rand::RngCore;
use rustls::ffdhe_groups::{self, FfdheGroup};
use zeroize::Zeroizing;

/// Bytes of a private exponent: 512 bits, at least twice the security strength of every
/// group (RFC 7919 §5.2 asks for 225 bits in ffdhe2048 up to 400 in ffdhe8192).
const PRIVATE_LEN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    #[error("the null group has no exchange")]
    NullGroup,
    #[error("the peer's public value is {got} bytes; the group's is {want}")]
    Length { got: usize, want: usize },
    /// RFC 7919 §5.1: a public value must be in 2..=p-2.
    #[error("the peer's public value is out of range")]
    Range,
}

fn params_of(group: DhGroup) -> Option<FfdheGroup<'static>> {
    Some(match group {
        DhGroup::Null => return None,
        DhGroup::Ffdhe2048 => ffdhe_groups::FFDHE2048,
        DhGroup::Ffdhe3072 => ffdhe_groups::FFDHE3072,
        DhGroup::Ffdhe4096 => ffdhe_groups::FFDHE4096,
        DhGroup::Ffdhe6144 => ffdhe_groups::FFDHE6144,
        DhGroup::Ffdhe8192 => ffdhe_groups::FFDHE8192,
    })
}

/// One side's key pair for one exchange.
pub struct DhKeyPair {
    group: DhGroup,
    params: BoxedMontyParams,
    prime: &'static [u8],
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

fn uint(bytes: &[u8], bits: u32) -> Option<BoxedUint> {
    BoxedUint::from_be_slice(bytes, bits).ok()
}

fn pad_to(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0; len.saturating_sub(bytes.len())];
    out.extend_from_slice(&bytes[bytes.len().saturating_sub(len)..]);
    out
}

impl DhKeyPair {
    /// A fresh key pair in `group` (None for the null group).
    pub fn generate(group: DhGroup, rng: &mut impl RngCore) -> Option<DhKeyPair> {
        let g = params_of(group)?;
        let bits = (g.p.len() * 8) as u32;
        let prime = Odd::new(uint(g.p, bits)?).into_option()?;
        let params = BoxedMontyParams::new(prime);
        let mut private = Zeroizing::new(vec![0u8; PRIVATE_LEN]);
        rng.fill_bytes(&mut private);
        let x = uint(&private, bits)?;
        let base = uint(g.g, bits)?;
        let public = BoxedMontyForm::new(base, params.clone()).pow(&x).retrieve();
        Some(DhKeyPair {
            group,
            params,
            prime: g.p,
            private,
            public: pad_to(&public.to_be_bytes(), g.p.len()),
        })
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value g^x mod p, as long as the prime.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret peer^x mod p, after checking the peer's value (length, range).
    pub fn shared(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
        let len = self.prime.len();
        if peer.len() != len {
            return Err(DhError::Length {
                got: peer.len(),
                want: len,
            });
        }
        // Equal-length big-endian byte strings compare as the numbers they are. p is odd,
        // so p-1 is p with its last byte less one.
        let mut p_minus_1 = self.prime.to_vec();
        p_minus_1[len - 1] -= 1;
        let mut one = vec![0u8; len];
        one[len - 1] = 1;
        if peer <= one.as_slice() || peer >= p_minus_1.as_slice() {
            return Err(DhError::Range);
        }
        let bits = (len * 8) as u32;
        let (Some(y), Some(x)) = (uint(peer, bits), uint(&self.private, bits)) else {
            return Err(DhError::Range);
        };
        let z = BoxedMontyForm::new(y, self.params.clone())
            .pow(&x)
            .retrieve();
        Ok(Zeroizing::new(pad_to(&z.to_be_bytes(), len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_secret_in_every_group() {
        let mut rng = rand::rng();
        assert!(DhKeyPair::generate(DhGroup::Null, &mut rng).is_none());
        for group in &DhGroup::ALL[1..] {
            let a = DhKeyPair::generate(*group, &mut rng).unwrap();
            let b = DhKeyPair::generate(*group, &mut rng).unwrap();
            assert_eq!(a.public().len(), group.value_len());
            let ab = a.shared(b.public()).unwrap();
            assert_eq!(ab, b.shared(a.public()).unwrap(), "{group:?}");
            assert_eq!(ab.len(), group.value_len());
            assert_ne!(a.public(), b.public());
        }
    }

    #[test]
    fn out_of_range_public_values_are_refused() {
        let mut rng = rand::rng();
        let a = DhKeyPair::generate(DhGroup::Ffdhe2048, &mut rng).unwrap();
        let len = DhGroup::Ffdhe2048.value_len();
        let p = ffdhe_groups::FFDHE2048.p;
        let mut one = vec![0u8; len];
        one[len - 1] = 1;
        let mut p_minus_1 = p.to_vec();
        p_minus_1[len - 1] -= 1;
        let mut two = vec![0u8; len];
        two[len - 1] = 2;
        for bad in [vec![0u8; len], one, p_minus_1, p.to_vec(), vec![0xff; len]] {
            assert_eq!(a.shared(&bad), Err(DhError::Range));
        }
        assert!(a.shared(&two).is_ok());
        assert_eq!(a.shared(&[2]), Err(DhError::Length { got: 1, want: len }));
    }
}
