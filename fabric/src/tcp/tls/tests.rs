use ferrofab_sync::CountedLock as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use zeroize::Zeroizing;

use super::*;

const H: &str = "nqn.2014-08.org.nvmexpress:uuid:0a1b2c3d-0000-4000-8000-000000000001";
const S: &str = "nqn.2026-01.io.ferrofab:tls";

struct OneKey(ConfiguredPsk);

impl PskStore for OneKey {
    fn tls_psk(&self, identity: &Identity) -> Option<Zeroizing<Vec<u8>>> {
        (identity.hostnqn == H && identity.subnqn == S)
            .then(|| self.0.tls_psk(identity))
            .flatten()
    }
}

fn key(byte: u8) -> ConfiguredPsk {
    ConfiguredPsk::from_raw(&[byte; 32], Some(PskHash::Sha256)).unwrap()
}

fn acceptor() -> TlsAcceptor {
    TlsAcceptor::new(Arc::new(OneKey(key(7)))).unwrap()
}

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// The client's and the server's application traffic secrets, as the client saw them.
type Secrets = (Vec<u8>, Vec<u8>);

/// A TLS 1.3 client with `key` under `identity`, as the Linux host's tlshd is one, offering
/// the cipher suite of the identity's hash; returns what it saw of its traffic secrets
/// (client's, server's) or the handshake error.
fn client(
    sock: TcpStream,
    identity: String,
    key: ConfiguredPsk,
) -> thread::JoinHandle<Result<Secrets, String>> {
    thread::spawn(move || {
        let secrets = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
        let id = Identity::parse(identity.as_bytes()).unwrap();
        b.set_ciphersuites(match id.hash {
            PskHash::Sha256 => "TLS_AES_128_GCM_SHA256",
            PskHash::Sha384 => "TLS_AES_256_GCM_SHA384",
        })
        .unwrap();
        let psk = key
            .tls_psk(&id)
            .unwrap_or_else(|| Zeroizing::new(vec![1; id.hash.output_len()]));
        crate::sys::tls::client::set_psk_use_session(&mut b, (identity.into_bytes(), psk, id.hash))
            .unwrap();
        let seen = secrets.clone();
        b.set_keylog_callback(move |_, line| {
            let mut p = line.split(' ');
            let (label, _, hex) = (p.next().unwrap(), p.next(), p.next().unwrap());
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let mut s = seen.lock_counted();
            match label {
                "CLIENT_TRAFFIC_SECRET_0" => s.0 = bytes,
                "SERVER_TRAFFIC_SECRET_0" => s.1 = bytes,
                _ => {}
            }
        });
        let mut cfg = b.build().configure().unwrap();
        cfg.set_verify_hostname(false);
        cfg.set_verify(openssl::ssl::SslVerifyMode::NONE);
        match cfg.connect("target", sock) {
            Ok(_stream) => Ok(secrets.lock_counted().clone()),
            Err(e) => Err(e.to_string()),
        }
    })
}

#[test]
fn a_host_with_the_psk_completes_the_handshake_with_the_same_secrets() {
    for version in [0, 1] {
        let (c, s) = pair();
        let identity = if version == 0 {
            format!("NVMe0R01 {H} {S}")
        } else {
            let d = psk::psk_digest(PskHash::Sha256, &key(7).retained(H), H, S);
            format!("NVMe1R01 {H} {S} {d}")
        };
        let host = client(c, identity, key(7));
        let done = acceptor().handshake(s).unwrap();
        let (client_secret, server_secret) = host.join().unwrap().unwrap();
        assert_eq!(done.channel.hostnqn, H);
        assert_eq!(done.channel.subnqn, S);
        assert_eq!(done.channel.cipher, "TLS_AES_128_GCM_SHA256");
        // What the kernel gets: the host's secret to receive with, ours to send with.
        assert_eq!(*done.secrets.rx, client_secret);
        assert_eq!(*done.secrets.tx, server_secret);
        assert!(ktls::crypto_info(done.channel.cipher, &done.secrets.rx).is_ok());
    }
}

#[test]
fn a_sha384_psk_gets_tls_aes_256_gcm_sha384() {
    let key384 = ConfiguredPsk::from_raw(&[9; 48], Some(PskHash::Sha384)).unwrap();
    let acceptor = TlsAcceptor::new(Arc::new(OneKey(key384.clone()))).unwrap();
    let (c, s) = pair();
    let host = client(c, format!("NVMe0R02 {H} {S}"), key384);
    let done = acceptor.handshake(s).unwrap();
    let (client_secret, server_secret) = host.join().unwrap().unwrap();
    assert_eq!(done.channel.cipher, "TLS_AES_256_GCM_SHA384");
    assert_eq!(client_secret.len(), 48);
    assert_eq!(*done.secrets.rx, client_secret);
    assert_eq!(*done.secrets.tx, server_secret);
    assert!(ktls::crypto_info(done.channel.cipher, &done.secrets.tx).is_ok());
}

#[test]
fn a_host_with_another_key_or_an_unknown_identity_is_refused() {
    // Same identity, other key: the binder does not verify.
    let (c, s) = pair();
    let host = client(c, format!("NVMe0R01 {H} {S}"), key(8));
    let err = acceptor().handshake(s).err().unwrap();
    assert!(matches!(err, TlsError::Handshake(_)), "{err}");
    assert!(host.join().unwrap().is_err());
    // An identity no key is held for.
    let (c, s) = pair();
    let host = client(
        c,
        format!("NVMe0R01 {H} nqn.2026-01.io.ferrofab:other"),
        key(7),
    );
    let err = acceptor().handshake(s).err().unwrap();
    match err {
        TlsError::UnknownIdentity(Some(offered)) => assert!(offered.contains(":other")),
        other => panic!("{other}"),
    }
    assert!(host.join().unwrap().is_err());
}

#[test]
fn plain_hosts_pass_an_optional_listener_untouched_and_not_a_required_one() {
    let acceptor = acceptor();
    let t = Duration::from_secs(5);
    let (mut c, s) = pair();
    c.write_all(&[0x00, 0x00, 0x80, 0x00]).unwrap();
    match admit(s, TlsMode::Optional, &acceptor, t).unwrap() {
        Admitted::Plain(mut s) => {
            // The peeked byte is still there for the NVMe/TCP framer.
            let mut b = [0xffu8; 4];
            s.read_exact(&mut b).unwrap();
            assert_eq!(b, [0x00, 0x00, 0x80, 0x00]);
        }
        Admitted::Secure(..) => panic!("plain connection taken for TLS"),
    }
    let (mut c, s) = pair();
    c.write_all(&[0x00]).unwrap();
    assert!(matches!(
        admit(s, TlsMode::Required, &acceptor, t),
        Err(TlsError::PlainRefused)
    ));
    // A host that closes at once.
    let (c, s) = pair();
    drop(c);
    assert!(matches!(
        admit(s, TlsMode::Required, &acceptor, t),
        Err(TlsError::Closed)
    ));
    // A silent host times out.
    let (_c, s) = pair();
    assert!(matches!(
        admit(s, TlsMode::Optional, &acceptor, Duration::from_millis(50)),
        Err(TlsError::Io(_))
    ));
}

#[test]
fn the_watchdog_ends_a_trickling_handshake_and_stands_down_for_a_finished_one() {
    let acceptor = acceptor();
    // A host that sends the first byte of a handshake record and then nothing: each read
    // may take 5 s, the watchdog fires after 100 ms.
    let (mut c, s) = pair();
    c.write_all(&[22, 3, 1]).unwrap();
    let watchdog = Watchdog::new(&s).unwrap();
    let fire = watchdog.clone();
    let timer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        fire.fire();
    });
    let started = std::time::Instant::now();
    let admitted = admit(s, TlsMode::Required, &acceptor, Duration::from_secs(5));
    assert!(admitted.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(!watchdog.disarm(), "the watchdog fired first");
    timer.join().unwrap();
    // An admission that finished first keeps its socket whatever the watchdog does later.
    let (mut c, s) = pair();
    c.write_all(&[0x00]).unwrap();
    let watchdog = Watchdog::new(&s).unwrap();
    let admitted = admit(s, TlsMode::Optional, &acceptor, Duration::from_secs(5)).unwrap();
    assert!(watchdog.disarm());
    watchdog.fire();
    let Admitted::Plain(mut s) = admitted else {
        panic!("plain connection taken for TLS");
    };
    c.write_all(&[1, 2]).unwrap();
    let mut b = [0u8; 3];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b, [0, 1, 2]);
}
