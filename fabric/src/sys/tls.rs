//! OpenSSL's TLS 1.3 external-PSK lookup, `SSL_CTX_set_psk_find_session_callback`, which the
//! openssl crate does not wrap: it takes the identity as bytes of any length (the TLS
//! 1.2-style PSK callback drops identities past 256 bytes, which two long NQNs and a digest
//! reach) and gives OpenSSL a session with the cipher suite of the PSK's hash (NVMe/TCP 1.1
//! §3.6.1.2).

use std::ffi::{c_int, c_uchar};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{SslContext, SslContextBuilder, SslRef};
use openssl_sys as ffi;
use zeroize::Zeroizing;

use crate::tcp::tls::PskHash;

/// Finds the key of an offered identity: the key and the hash of its cipher suite.
pub type FindPsk = dyn Fn(&SslRef, &[u8]) -> Option<(Zeroizing<Vec<u8>>, PskHash)> + Send + Sync;

type Callback = unsafe extern "C" fn(
    ssl: *mut ffi::SSL,
    identity: *const c_uchar,
    identity_len: usize,
    sess: *mut *mut ffi::SSL_SESSION,
) -> c_int;

extern "C" {
    fn SSL_CTX_set_psk_find_session_callback(ctx: *mut ffi::SSL_CTX, cb: Option<Callback>);
    fn SSL_CIPHER_find(ssl: *mut ffi::SSL, id: *const c_uchar) -> *const ffi::SSL_CIPHER;
    fn SSL_SESSION_new() -> *mut ffi::SSL_SESSION;
    fn SSL_SESSION_set1_master_key(
        sess: *mut ffi::SSL_SESSION,
        key: *const c_uchar,
        len: usize,
    ) -> c_int;
    fn SSL_SESSION_set_cipher(sess: *mut ffi::SSL_SESSION, cipher: *const ffi::SSL_CIPHER)
        -> c_int;
    fn SSL_SESSION_set_protocol_version(sess: *mut ffi::SSL_SESSION, version: c_int) -> c_int;
}

static INDEX: OnceLock<Index<SslContext, Box<FindPsk>>> = OnceLock::new();

fn index() -> Result<Index<SslContext, Box<FindPsk>>, ErrorStack> {
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    let fresh = SslContext::new_ex_index::<Box<FindPsk>>()?;
    Ok(*INDEX.get_or_init(|| fresh))
}

/// Let `find` answer the PSK identities hosts offer to connections of this context.
pub fn set_psk_find_session(
    b: &mut SslContextBuilder,
    find: Box<FindPsk>,
) -> Result<(), ErrorStack> {
    b.set_ex_data(index()?, find);
    // SAFETY: the context pointer is live for the call; the callback only reads the
    // closure stored in the context's own ex_data, which lives as long as the context.
    unsafe { SSL_CTX_set_psk_find_session_callback(b.as_ptr(), Some(find_session)) };
    Ok(())
}

/// IANA cipher suite codes (RFC 8446 §B.4).
fn suite(hash: PskHash) -> [c_uchar; 2] {
    match hash {
        PskHash::Sha256 => [0x13, 0x01],
        PskHash::Sha384 => [0x13, 0x02],
    }
}

/// OpenSSL's contract (SSL_CTX_set_psk_find_session_callback(3)): return 1 with `*sess` a new
/// session for a known identity, 1 with `*sess` NULL for an unknown one, 0 to abort.
unsafe extern "C" fn find_session(
    ssl: *mut ffi::SSL,
    identity: *const c_uchar,
    identity_len: usize,
    sess: *mut *mut ffi::SSL_SESSION,
) -> c_int {
    // SAFETY: OpenSSL passes a valid `sess` out-pointer, a live SSL, and an identity of
    // `identity_len` bytes, all for the duration of the call.
    unsafe { *sess = std::ptr::null_mut() };
    let Some(idx) = INDEX.get().copied() else {
        return 1;
    };
    // SAFETY: as above.
    let ssl_ref = unsafe { SslRef::from_ptr(ssl) };
    let offered: &[u8] = if identity.is_null() || identity_len == 0 {
        &[]
    } else {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(identity, identity_len) }
    };
    // A panic must not unwind into C: it aborts the handshake instead.
    let found = catch_unwind(AssertUnwindSafe(|| {
        let find = ssl_ref.ssl_context().ex_data(idx)?;
        find(ssl_ref, offered)
    }));
    let Ok(Some((key, hash))) = found else {
        return c_int::from(found.is_ok());
    };
    let session = psk_session(ssl, &key, hash);
    if session.is_null() {
        return 0;
    }
    // SAFETY: OpenSSL passed a valid `sess` out-pointer; it takes the new session.
    unsafe { *sess = session };
    1
}

/// A new TLS 1.3 session holding `key` as its PSK with the cipher suite of `hash`, owned by
/// the caller (OpenSSL takes it through a callback's out-pointer); null on failure.
fn psk_session(ssl: *mut ffi::SSL, key: &[u8], hash: PskHash) -> *mut ffi::SSL_SESSION {
    let id = suite(hash);
    // SAFETY: `ssl` is the live SSL of the callback that calls this; `id` is the two bytes of
    // a cipher suite code. The new session is ours until returned (or freed here on
    // failure); the key is copied by set1.
    unsafe {
        let cipher = SSL_CIPHER_find(ssl, id.as_ptr());
        if cipher.is_null() {
            return std::ptr::null_mut();
        }
        let s = SSL_SESSION_new();
        if s.is_null() {
            return s;
        }
        if SSL_SESSION_set1_master_key(s, key.as_ptr(), key.len()) != 1
            || SSL_SESSION_set_cipher(s, cipher) != 1
            || SSL_SESSION_set_protocol_version(s, ffi::TLS1_3_VERSION) != 1
        {
            ffi::SSL_SESSION_free(s);
            return std::ptr::null_mut();
        }
        s
    }
}

/// The client side of the same: an OpenSSL client that offers one external PSK with the
/// cipher suite of its hash (`SSL_CTX_set_psk_use_session_callback`), for the handshake
/// tests; the Linux host's tlshd plays this part in the hw-tests.
#[cfg(test)]
pub mod client {
    use super::*;

    type UseCallback = unsafe extern "C" fn(
        ssl: *mut ffi::SSL,
        md: *const ffi::EVP_MD,
        id: *mut *const c_uchar,
        idlen: *mut usize,
        sess: *mut *mut ffi::SSL_SESSION,
    ) -> c_int;

    extern "C" {
        fn SSL_CTX_set_psk_use_session_callback(ctx: *mut ffi::SSL_CTX, cb: Option<UseCallback>);
    }

    /// What the client offers: the identity, the PSK and its hash.
    pub type Offer = (Vec<u8>, Zeroizing<Vec<u8>>, PskHash);

    static OFFER: OnceLock<Index<SslContext, Offer>> = OnceLock::new();

    pub fn set_psk_use_session(b: &mut SslContextBuilder, offer: Offer) -> Result<(), ErrorStack> {
        let idx = match OFFER.get() {
            Some(i) => *i,
            None => {
                let fresh = SslContext::new_ex_index::<Offer>()?;
                *OFFER.get_or_init(|| fresh)
            }
        };
        b.set_ex_data(idx, offer);
        // SAFETY: the context pointer is live; the callback reads the offer stored in the
        // context's ex_data, which lives as long as the context.
        unsafe { SSL_CTX_set_psk_use_session_callback(b.as_ptr(), Some(use_session)) };
        Ok(())
    }

    unsafe extern "C" fn use_session(
        ssl: *mut ffi::SSL,
        _md: *const ffi::EVP_MD,
        id: *mut *const c_uchar,
        idlen: *mut usize,
        sess: *mut *mut ffi::SSL_SESSION,
    ) -> c_int {
        // SAFETY: OpenSSL passes a live SSL and valid out-pointers for the call.
        let ssl_ref = unsafe { SslRef::from_ptr(ssl) };
        let Some(idx) = OFFER.get().copied() else {
            return 0;
        };
        let Some((identity, key, hash)) = ssl_ref.ssl_context().ex_data(idx) else {
            return 0;
        };
        let session = psk_session(ssl, key, *hash);
        if session.is_null() {
            return 0;
        }
        // SAFETY: valid out-pointers (above); the identity bytes live in the context's
        // ex_data, which outlives the handshake.
        unsafe {
            *id = identity.as_ptr();
            *idlen = identity.len();
            *sess = session;
        }
        1
    }
}
