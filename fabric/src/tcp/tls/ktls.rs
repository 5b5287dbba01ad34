//! Kernel TLS (Documentation/networking/tls.rst): the traffic keys of a finished TLS 1.3
//! handshake, derived from its application traffic secrets (RFC 8446 §7.3), go into the
//! socket with TCP_ULP "tls" and TLS_TX / TLS_RX. Both directions start at record sequence
//! 0: the handshake sent and read no application record.

use std::net::TcpStream;

use hkdf::Hkdf;
use nix::sys::socket::{setsockopt, sockopt};
use sha2::{Sha256, Sha384};
use zeroize::Zeroizing;

use super::PskHash;

/// The application traffic secrets: the client's (what we receive), the server's (send).
pub(super) struct TrafficSecrets {
    pub rx: Zeroizing<Vec<u8>>,
    pub tx: Zeroizing<Vec<u8>>,
}

/// HKDF-Expand-Label(secret, label, "", len) (RFC 8446 §7.1) with the suite's hash.
fn expand_label(
    hash: PskHash,
    secret: &[u8],
    label: &str,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    // Key and IV lengths are at most 32: the casts never truncate.
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    let mut out = Zeroizing::new(vec![0u8; len]);
    let expanded = match hash {
        PskHash::Sha256 => Hkdf::<Sha256>::from_prk(secret)
            .map_err(|e| e.to_string())?
            .expand(&info, &mut out),
        PskHash::Sha384 => Hkdf::<Sha384>::from_prk(secret)
            .map_err(|e| e.to_string())?
            .expand(&info, &mut out),
    };
    expanded.map_err(|e| e.to_string())?;
    Ok(out)
}

/// The kernel's crypto_info for one direction.
pub(super) fn crypto_info(cipher: &str, secret: &[u8]) -> Result<sockopt::TlsCryptoInfo, String> {
    match cipher {
        "TLS_AES_128_GCM_SHA256" => {
            let key = expand_label(PskHash::Sha256, secret, "key", 16)?;
            let iv = expand_label(PskHash::Sha256, secret, "iv", 12)?;
            let mut info = libc::tls12_crypto_info_aes_gcm_128 {
                info: libc::tls_crypto_info {
                    version: libc::TLS_1_3_VERSION,
                    cipher_type: libc::TLS_CIPHER_AES_GCM_128,
                },
                iv: [0; 8],
                key: [0; 16],
                salt: [0; 4],
                rec_seq: [0; 8],
            };
            info.key.copy_from_slice(&key);
            info.salt.copy_from_slice(&iv[..4]);
            info.iv.copy_from_slice(&iv[4..]);
            Ok(sockopt::TlsCryptoInfo::Aes128Gcm(info))
        }
        "TLS_AES_256_GCM_SHA384" => {
            let key = expand_label(PskHash::Sha384, secret, "key", 32)?;
            let iv = expand_label(PskHash::Sha384, secret, "iv", 12)?;
            let mut info = libc::tls12_crypto_info_aes_gcm_256 {
                info: libc::tls_crypto_info {
                    version: libc::TLS_1_3_VERSION,
                    cipher_type: libc::TLS_CIPHER_AES_GCM_256,
                },
                iv: [0; 8],
                key: [0; 32],
                salt: [0; 4],
                rec_seq: [0; 8],
            };
            info.key.copy_from_slice(&key);
            info.salt.copy_from_slice(&iv[..4]);
            info.iv.copy_from_slice(&iv[4..]);
            Ok(sockopt::TlsCryptoInfo::Aes256Gcm(info))
        }
        other => Err(format!(
            "cipher suite {other} has no kernel TLS mapping here"
        )),
    }
}

/// Hand the record layer of `stream` to the kernel.
pub(super) fn install(stream: &TcpStream, cipher: &str, s: &TrafficSecrets) -> Result<(), String> {
    let tx = crypto_info(cipher, &s.tx)?;
    let rx = crypto_info(cipher, &s.rx)?;
    setsockopt(stream, sockopt::TcpUlp::default(), b"tls")
        .map_err(|e| format!("TCP_ULP \"tls\": {e} (is the kernel's tls module loaded?)"))?;
    setsockopt(stream, sockopt::TcpTlsTx, &tx).map_err(|e| format!("TLS_TX: {e}"))?;
    setsockopt(stream, sockopt::TcpTlsRx, &rx).map_err(|e| format!("TLS_RX: {e}"))?;
    Ok(())
}
