//! Bundles from a directory and from a small HTTP server: verified, staged whole, and refused
//! without touching the staging directory.

use std::sync::{Arc, Mutex};

use ferrofab_sync::CountedLock;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;
use crate::firmware::testing::Vendor;

const LIMITS: Limits = Limits {
    uki_bytes: 1 << 20,
    root_bytes: 1 << 20,
};

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Serves `dir` over HTTP/1.1 (GET only, one request per connection) and records the paths
/// asked for.
async fn serve(dir: PathBuf) -> (Url, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let Ok(Some(request)) = lines.next_line().await else {
                continue;
            };
            while let Ok(Some(line)) = lines.next_line().await {
                if line.is_empty() {
                    break;
                }
            }
            let path = request.split(' ').nth(1).unwrap_or("/").to_string();
            log.lock_counted().push(path.clone());
            let name = path.rsplit('/').next().unwrap_or("");
            let response = match std::fs::read(dir.join(name)) {
                Ok(body) if !name.is_empty() => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = write.write_all(&response).await;
            let _ = write.shutdown().await;
        }
    });
    let url = Url::parse(&format!("http://{addr}/bundles/0.1.0.3")).unwrap();
    (url, asked)
}

#[test]
fn sources_are_urls_or_absolute_paths() {
    assert_eq!(
        Source::parse("/var/tmp/b").unwrap(),
        Source::Dir("/var/tmp/b".into())
    );
    let Source::Url(u) = Source::parse("https://updates.example/ferrofab/0.2").unwrap() else {
        panic!("not a URL");
    };
    assert_eq!(u.as_str(), "https://updates.example/ferrofab/0.2/");
    let Source::Url(u) = Source::parse("http://10.0.0.1:8000/").unwrap() else {
        panic!("not a URL");
    };
    assert_eq!(u.join("SHA256SUMS").unwrap().path(), "/SHA256SUMS");
    for bad in [
        "",
        "relative/dir",
        "ftp://host/x",
        "file:///var/tmp",
        "http://",
        "http://host/x?y=1",
        "http://host/x#f",
        "/a\0b",
    ] {
        let e = Source::parse(bad).unwrap_err();
        assert!(matches!(e, FirmwareError::BadSource { .. }), "{bad:?}: {e}");
    }
}

#[tokio::test]
async fn a_directory_bundle_is_verified_and_staged_whole() {
    let vendor = Vendor::new();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    vendor.release(&bundle, "0.1.0.3");
    let dir = tmp.path().join("firmware");
    std::fs::create_dir_all(dir.join(STAGING)).unwrap();
    std::fs::write(dir.join(STAGING).join("ferrofab_0.1.0.1.efi"), b"old").unwrap();

    let source = Source::parse(bundle.to_str().unwrap()).unwrap();
    let fetcher = Fetcher::new().unwrap();
    let artifacts = fetcher.manifest(&source, &vendor.key()).await.unwrap();
    assert_eq!(artifacts.version.as_str(), "0.1.0.3");
    let progress = Progress::new();
    fetcher
        .fetch(&source, &artifacts, &dir, LIMITS, &progress)
        .await
        .unwrap();
    let staged = dir.join(STAGING);
    assert_eq!(
        names(&staged),
        ["ferrofab_0.1.0.3.efi", "ferrofab_0.1.0.3.root.raw"]
    );
    for name in names(&staged) {
        assert_eq!(
            std::fs::read(staged.join(&name)).unwrap(),
            std::fs::read(bundle.join(&name)).unwrap()
        );
    }
    assert_eq!(names(&dir), [STAGING]);
    let total = std::fs::metadata(bundle.join("ferrofab_0.1.0.3.efi"))
        .unwrap()
        .len()
        + std::fs::metadata(bundle.join("ferrofab_0.1.0.3.root.raw"))
            .unwrap()
            .len();
    assert_eq!((progress.done(), progress.total()), (total, Some(total)));
}

/// A firmware directory whose staging holds a previous bundle.
fn staged_before(tmp: &Path) -> PathBuf {
    let dir = tmp.join("firmware");
    std::fs::create_dir_all(dir.join(STAGING)).unwrap();
    std::fs::write(dir.join(STAGING).join("ferrofab_0.1.0.1.efi"), b"old").unwrap();
    dir
}

fn staging_untouched(dir: &Path) {
    assert_eq!(names(dir), [STAGING], "incoming was not removed");
    assert_eq!(names(&dir.join(STAGING)), ["ferrofab_0.1.0.1.efi"]);
    assert_eq!(
        std::fs::read(dir.join(STAGING).join("ferrofab_0.1.0.1.efi")).unwrap(),
        b"old"
    );
}

#[tokio::test]
async fn a_tampered_artifact_fails_and_leaves_staging_as_it_was() {
    let vendor = Vendor::new();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    vendor.release(&bundle, "0.1.0.3");
    let dir = staged_before(tmp.path());
    let source = Source::Dir(bundle.clone());
    let fetcher = Fetcher::new().unwrap();
    let artifacts = fetcher.manifest(&source, &vendor.key()).await.unwrap();
    // The root image changes after it was signed for.
    let root = bundle.join("ferrofab_0.1.0.3.root.raw");
    let mut bytes = std::fs::read(&root).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&root, bytes).unwrap();
    let e = fetcher
        .fetch(&source, &artifacts, &dir, LIMITS, &Progress::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::Checksum { file } if file == "ferrofab_0.1.0.3.root.raw"),
        "{e}"
    );
    staging_untouched(&dir);

    // Larger than its cap, or gone: the same.
    let small = Limits {
        uki_bytes: 1 << 20,
        root_bytes: 100,
    };
    let e = fetcher
        .fetch(&source, &artifacts, &dir, small, &Progress::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::TooLarge { file, limit: 100 } if file.ends_with(".root.raw")),
        "{e}"
    );
    staging_untouched(&dir);
    std::fs::remove_file(&root).unwrap();
    let e = fetcher
        .fetch(&source, &artifacts, &dir, LIMITS, &Progress::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::Unreadable { what, .. } if what.ends_with(".root.raw")),
        "{e}"
    );
    staging_untouched(&dir);
}

#[tokio::test]
async fn an_http_bundle_is_fetched_after_its_signature_checks() {
    let vendor = Vendor::new();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    vendor.release(&bundle, "0.1.0.3");
    let (url, asked) = serve(bundle.clone()).await;
    let source = Source::parse(url.as_str()).unwrap();
    let fetcher = Fetcher::new().unwrap();

    // Signed by someone else: only the manifest and its signature are asked for.
    let e = fetcher
        .manifest(&source, &Vendor::new().key())
        .await
        .unwrap_err();
    assert!(matches!(e, FirmwareError::BadSignature { .. }), "{e}");
    assert_eq!(
        *asked.lock_counted(),
        [
            "/bundles/0.1.0.3/SHA256SUMS",
            "/bundles/0.1.0.3/SHA256SUMS.sig"
        ]
    );

    asked.lock_counted().clear();
    let artifacts = fetcher.manifest(&source, &vendor.key()).await.unwrap();
    let dir = staged_before(tmp.path());
    let progress = Progress::new();
    fetcher
        .fetch(&source, &artifacts, &dir, LIMITS, &progress)
        .await
        .unwrap();
    assert_eq!(
        *asked.lock_counted(),
        [
            "/bundles/0.1.0.3/SHA256SUMS",
            "/bundles/0.1.0.3/SHA256SUMS.sig",
            "/bundles/0.1.0.3/ferrofab_0.1.0.3.efi",
            "/bundles/0.1.0.3/ferrofab_0.1.0.3.root.raw",
        ]
    );
    assert_eq!(
        names(&dir.join(STAGING)),
        ["ferrofab_0.1.0.3.efi", "ferrofab_0.1.0.3.root.raw"]
    );
    assert_eq!(
        std::fs::read(dir.join(STAGING).join("ferrofab_0.1.0.3.root.raw")).unwrap(),
        std::fs::read(bundle.join("ferrofab_0.1.0.3.root.raw")).unwrap()
    );
    assert!(progress.done() > 0 && progress.total() == Some(progress.done()));

    // A missing file is an HTTP 404, named with its URL.
    std::fs::remove_file(bundle.join(SIG)).unwrap();
    let e = fetcher.manifest(&source, &vendor.key()).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("/bundles/0.1.0.3/SHA256SUMS.sig") && text.contains("404"),
        "{text}"
    );
}

#[tokio::test]
async fn an_oversized_manifest_is_not_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(SUMS), vec![b'a'; 70 * 1024]).unwrap();
    std::fs::write(tmp.path().join(SIG), [0u8; 64]).unwrap();
    let e = Fetcher::new()
        .unwrap()
        .manifest(&Source::Dir(tmp.path().into()), &Vendor::new().key())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::TooLarge { file, .. } if file == SUMS),
        "{e}"
    );
    // A directory where a file should be.
    std::fs::remove_file(tmp.path().join(SUMS)).unwrap();
    std::fs::create_dir(tmp.path().join(SUMS)).unwrap();
    let e = Fetcher::new()
        .unwrap()
        .manifest(&Source::Dir(tmp.path().into()), &Vendor::new().key())
        .await
        .unwrap_err();
    assert!(matches!(e, FirmwareError::Unreadable { .. }), "{e}");
}
