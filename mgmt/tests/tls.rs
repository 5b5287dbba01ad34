//! The management API over HTTPS: a self-signed certificate (rcgen) served by
//! `mgmt::start_tls`, checked with a rustls client that trusts it, one that does not, and a
//! plain HTTP client; the key checks at load; a stalled handshake; a certificate reload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mgmt::{MgmtServer, MgmtTls, TlsError, Tokens};
use target::{Config, Daemon, TargetParams};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as `NAME.crt`/`NAME.key`.
struct Pem {
    cert: PathBuf,
    key: PathBuf,
    cert_pem: String,
}

fn self_signed(dir: &Path, name: &str) -> Pem {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let cert_pem = ck.cert.pem();
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Pem {
        cert,
        key,
        cert_pem,
    }
}

struct Served {
    daemon: Daemon,
    server: MgmtServer,
    tokens: Tokens,
    _dir: tempfile::TempDir,
}

async fn serve(tls: MgmtTls) -> Served {
    let config = Config::parse(
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n",
        "test",
    )
    .unwrap();
    let daemon = Daemon::start(config, TargetParams::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::load_or_create(&dir.path().join("tokens")).unwrap();
    let server = mgmt::start_tls(
        daemon.engine().clone(),
        "127.0.0.1:0".parse().unwrap(),
        tokens.clone(),
        tls,
    )
    .await
    .unwrap();
    Served {
        daemon,
        server,
        tokens,
        _dir: dir,
    }
}

impl Served {
    async fn stop(self) {
        self.server.shutdown().await;
        self.daemon.shutdown().await;
    }
}

/// A client that trusts only `ca` (no system CAs), or nothing at all.
fn client(ca: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10));
    if let Some(pem) = ca {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("https://{addr}{path}")
}

#[tokio::test]
async fn https_serves_health_and_authenticated_routes() {
    let dir = tempfile::tempdir().unwrap();
    let pem = self_signed(dir.path(), "box");
    let s = serve(MgmtTls::from_pem_files(&pem.cert, &pem.key).unwrap()).await;
    let addr = s.server.local_addr();
    assert_eq!(s.server.url(), format!("https://{addr}/api/v1/"));
    let c = client(Some(&pem.cert_pem));

    let resp = c.get(url(addr, "/api/v1/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let resp = c.get(url(addr, "/api/v1/system")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = c
        .get(url(addr, "/api/v1/system"))
        .bearer_auth(&s.tokens.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["subsystem_count"], 0, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn plain_http_and_untrusting_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = self_signed(dir.path(), "box");
    let s = serve(MgmtTls::from_pem_files(&pem.cert, &pem.key).unwrap()).await;
    let addr = s.server.local_addr();

    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/health"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");

    let e = client(None)
        .get(url(addr, "/api/v1/health"))
        .send()
        .await
        .unwrap_err();
    let text = error_chain(&e);
    assert!(text.contains("UnknownIssuer"), "{text}");

    // Another self-signed certificate for the same names is not the server's.
    let other = self_signed(dir.path(), "other");
    let e = client(Some(&other.cert_pem))
        .get(url(addr, "/api/v1/health"))
        .send()
        .await
        .unwrap_err();
    assert!(error_chain(&e).contains("certificate"), "{e:?}");

    // The server still serves a client that trusts it.
    let resp = client(Some(&pem.cert_pem))
        .get(url(addr, "/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_neither_blocks_accepts_nor_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let pem = self_signed(dir.path(), "box");
    let s = serve(MgmtTls::from_pem_files(&pem.cert, &pem.key).unwrap()).await;
    let addr = s.server.local_addr();
    // Connected, never says hello.
    let stalled: Vec<_> = connect_silent(addr, 4).await;
    let resp = client(Some(&pem.cert_pem))
        .get(url(addr, "/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Shutdown abandons the handshakes in progress instead of waiting out their timeout.
    tokio::time::timeout(Duration::from_secs(5), s.stop())
        .await
        .expect("shutdown finishes with handshakes stalled");
    drop(stalled);
}

async fn connect_silent(addr: SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    v
}

#[tokio::test]
async fn bad_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = self_signed(dir.path(), "a");
    let b = self_signed(dir.path(), "b");
    let missing = dir.path().join("missing.key");

    let e = MgmtTls::from_pem_files(&a.cert, &missing).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.key"), "{e}");

    let e = MgmtTls::from_pem_files(&a.cert, &b.key).unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("b.key") && text.contains("a.crt"), "{text}");

    // A key file where the certificate should be, and the reverse.
    let e = MgmtTls::from_pem_files(&a.key, &a.key).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains("a.key"), "{e}");
    let e = MgmtTls::from_pem_files(&a.cert, &a.cert).unwrap_err();
    assert!(matches!(e, TlsError::BadKey { .. }), "{e:?}");
    assert!(e.to_string().contains("a.crt"), "{e}");

    // PEM armour around bytes that are no key.
    let junk = dir.path().join("junk.key");
    std::fs::write(
        &junk,
        "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = MgmtTls::from_pem_files(&a.cert, &junk).unwrap_err();
    assert!(matches!(e, TlsError::BadKey { .. }), "{e:?}");
    assert!(e.to_string().contains("junk.key"), "{e}");
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old = self_signed(dir.path(), "old");
    let cert = dir.path().join("served.crt");
    let key = dir.path().join("served.key");
    std::fs::copy(&old.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    let tls = MgmtTls::from_pem_files(&cert, &key).unwrap();
    let s = serve(tls.clone()).await;
    let addr = s.server.local_addr();
    let health = |ca: &str| client(Some(ca)).get(url(addr, "/api/v1/health")).send();
    assert_eq!(health(&old.cert_pem).await.unwrap().status(), 200);

    // A rotation caught half-way (new certificate, old key) is refused; the old one stays.
    let new = self_signed(dir.path(), "new");
    std::fs::copy(&new.cert, &cert).unwrap();
    let e = tls.reload().unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    assert_eq!(health(&old.cert_pem).await.unwrap().status(), 200);

    std::fs::copy(&new.key, &key).unwrap();
    tls.reload().unwrap();
    assert_eq!(health(&new.cert_pem).await.unwrap().status(), 200);
    assert!(health(&old.cert_pem).await.is_err());
    s.stop().await;
}
