//! Getting an update bundle onto the box: its signed manifest first (nothing else is read
//! before the signature is verified), then each artifact streamed into `<dir>/incoming/`,
//! hashed as it comes; only when every artifact matches its checksum does `<dir>/staging/`
//! (where systemd-sysupdate's transfer definitions look) get them, whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::FirmwareError;
use super::job::Progress;
use super::manifest::{self, Artifacts, Entry, SigningKey, MAX_SUMS_BYTES, SIG, SUMS};
use super::version::{artifact, ArtifactKind};

/// Where the downloads go until every one is verified.
pub const INCOMING: &str = "incoming";
/// What systemd-sysupdate installs from.
pub const STAGING: &str = "staging";
/// The largest signature file read (the signature itself is 64 bytes).
const MAX_SIG_BYTES: u64 = 4096;
/// Bytes read at a time from a local file.
const CHUNK: usize = 256 * 1024;

/// Where a bundle is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The bundle's directory at an http:// or https:// URL (a trailing `/` is implied).
    Url(Url),
    /// The bundle's directory on the box.
    Dir(PathBuf),
}

impl Source {
    /// An http(s) URL or an absolute path.
    pub fn parse(text: &str) -> Result<Source, FirmwareError> {
        let bad = |reason: &str| FirmwareError::BadSource {
            given: text.to_string(),
            reason: reason.to_string(),
        };
        if text.starts_with('/') {
            if text.contains('\0') {
                return Err(bad("a path has no NUL"));
            }
            return Ok(Source::Dir(PathBuf::from(text)));
        }
        let mut url = Url::parse(text).map_err(|e| {
            bad(&format!(
                "{e}: want an http:// or https:// URL, or an absolute directory path"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(
                "want an http:// or https:// URL, or an absolute directory path",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("the URL names no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "the URL of a bundle's directory has no query or fragment",
            ));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Source::Url(url))
    }

    /// Where `name` of the bundle is, for messages.
    fn locate(&self, name: &str) -> String {
        match self {
            Source::Url(u) => u.join(name).map_or_else(|_| name.into(), String::from),
            Source::Dir(d) => d.join(name).display().to_string(),
        }
    }
}

/// The artifacts' size caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub uki_bytes: u64,
    pub root_bytes: u64,
}

impl Limits {
    fn of(&self, entry: &Entry) -> u64 {
        match artifact(&entry.name) {
            Some((ArtifactKind::Uki, _)) => self.uki_bytes,
            Some((ArtifactKind::Root, _)) | None => self.root_bytes,
        }
    }
}

/// Reads bundles from directories and web servers.
#[derive(Clone, Debug)]
pub struct Fetcher {
    http: reqwest::Client,
}

/// A file of the bundle being read.
enum Reader {
    File(tokio::fs::File, Vec<u8>),
    Http(reqwest::Response),
}

impl Reader {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self {
            Reader::File(f, buf) => {
                let n = f.read(buf).await.map_err(|e| e.to_string())?;
                Ok((n > 0).then(|| buf[..n].to_vec()))
            }
            Reader::Http(r) => match r.chunk().await {
                Ok(c) => Ok(c.map(|b| b.to_vec())),
                Err(e) => Err(chain(&e)),
            },
        }
    }
}

impl Fetcher {
    pub fn new() -> Result<Fetcher, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            // A stalled server fails the job rather than holding the job slot for ever.
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Fetcher { http })
    }

    /// Open `name` of `source`; its size when the source tells it.
    async fn open(
        &self,
        source: &Source,
        name: &str,
    ) -> Result<(Reader, Option<u64>), FirmwareError> {
        let what = source.locate(name);
        let unreadable = |reason: String| FirmwareError::Unreadable {
            what: what.clone(),
            reason,
        };
        match source {
            Source::Dir(dir) => {
                let file = tokio::fs::File::open(dir.join(name))
                    .await
                    .map_err(|e| unreadable(e.to_string()))?;
                let meta = file
                    .metadata()
                    .await
                    .map_err(|e| unreadable(e.to_string()))?;
                if !meta.is_file() {
                    return Err(unreadable("not a regular file".into()));
                }
                Ok((Reader::File(file, vec![0; CHUNK]), Some(meta.len())))
            }
            Source::Url(base) => {
                let url = base.join(name).map_err(|e| unreadable(e.to_string()))?;
                let resp = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| unreadable(chain(&e)))?;
                if !resp.status().is_success() {
                    return Err(unreadable(format!("HTTP {}", resp.status())));
                }
                let len = resp.content_length();
                Ok((Reader::Http(resp), len))
            }
        }
    }

    /// A small file of the bundle, whole; more than `limit` bytes is refused.
    async fn small(
        &self,
        source: &Source,
        name: &str,
        limit: u64,
    ) -> Result<Vec<u8>, FirmwareError> {
        let (mut reader, len) = self.open(source, name).await?;
        let too_large = || FirmwareError::TooLarge {
            file: name.to_string(),
            limit,
        };
        if len.is_some_and(|l| l > limit) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) =
            reader
                .chunk()
                .await
                .map_err(|reason| FirmwareError::Unreadable {
                    what: source.locate(name),
                    reason,
                })?
        {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > limit {
                return Err(too_large());
            }
        }
        Ok(out)
    }

    /// `SHA256SUMS` and its signature, checked with `key`; the artifacts they list. Nothing
    /// else of the bundle is read.
    pub async fn manifest(
        &self,
        source: &Source,
        key: &SigningKey,
    ) -> Result<Artifacts, FirmwareError> {
        let sums = self.small(source, SUMS, MAX_SUMS_BYTES).await?;
        let sig = self.small(source, SIG, MAX_SIG_BYTES).await?;
        manifest::verified(key, &sums, &sig)
    }

    /// Download the artifacts into `<dir>/incoming/`, each checked against its checksum and
    /// cap, then make them the whole of `<dir>/staging/`. On any failure `incoming/` is
    /// removed and `staging/` is left as it was.
    pub async fn fetch(
        &self,
        source: &Source,
        artifacts: &Artifacts,
        dir: &Path,
        limits: Limits,
        progress: &Progress,
    ) -> Result<(), FirmwareError> {
        let incoming = dir.join(INCOMING);
        remove_dir(&incoming).await?;
        tokio::fs::create_dir_all(&incoming)
            .await
            .map_err(|e| FirmwareError::io(format!("creating {}", incoming.display()), e))?;
        let result = self
            .fetch_into(source, artifacts, &incoming, limits, progress)
            .await;
        match result {
            Ok(()) => replace_staging(dir).await,
            Err(e) => {
                if let Err(cleanup) = remove_dir(&incoming).await {
                    tracing::warn!(error = %cleanup, "firmware: incoming downloads not removed");
                }
                Err(e)
            }
        }
    }

    async fn fetch_into(
        &self,
        source: &Source,
        artifacts: &Artifacts,
        incoming: &Path,
        limits: Limits,
        progress: &Progress,
    ) -> Result<(), FirmwareError> {
        let mut readers = Vec::new();
        let mut total = Some(0u64);
        // Open both first: the total is known before the first byte, and a missing file
        // shows before the large one is downloaded.
        for entry in artifacts.files() {
            let (reader, len) = self.open(source, &entry.name).await?;
            let limit = limits.of(entry);
            if len.is_some_and(|l| l > limit) {
                return Err(FirmwareError::TooLarge {
                    file: entry.name.clone(),
                    limit,
                });
            }
            total = total.zip(len).map(|(t, l)| t + l);
            readers.push((entry, reader, limit));
        }
        if let Some(t) = total {
            progress.set_total(t);
        }
        for (entry, mut reader, limit) in readers {
            let path = incoming.join(&entry.name);
            let write_err = |e| FirmwareError::io(format!("writing {}", path.display()), e);
            let mut file = tokio::fs::File::create(&path).await.map_err(write_err)?;
            let mut hasher = Sha256::new();
            let mut got = 0u64;
            loop {
                let chunk = reader
                    .chunk()
                    .await
                    .map_err(|reason| FirmwareError::Unreadable {
                        what: source.locate(&entry.name),
                        reason,
                    })?;
                let Some(chunk) = chunk else { break };
                got += chunk.len() as u64;
                if got > limit {
                    return Err(FirmwareError::TooLarge {
                        file: entry.name.clone(),
                        limit,
                    });
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(write_err)?;
                progress.add(chunk.len() as u64);
            }
            file.sync_all().await.map_err(write_err)?;
            if hasher.finalize().as_slice() != entry.sha256 {
                return Err(FirmwareError::Checksum {
                    file: entry.name.clone(),
                });
            }
            tracing::debug!(file = %entry.name, bytes = got, "firmware: artifact verified");
        }
        Ok(())
    }
}

/// `incoming/` becomes `staging/`; the old staging directory goes.
async fn replace_staging(dir: &Path) -> Result<(), FirmwareError> {
    let incoming = dir.join(INCOMING);
    let staging = dir.join(STAGING);
    let old = dir.join("staging.old");
    remove_dir(&old).await?;
    match tokio::fs::rename(&staging, &old).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(FirmwareError::io(
                format!("moving {}", staging.display()),
                e,
            ))
        }
    }
    tokio::fs::rename(&incoming, &staging).await.map_err(|e| {
        FirmwareError::io(
            format!("moving {} to {}", incoming.display(), staging.display()),
            e,
        )
    })?;
    remove_dir(&old).await
}

/// Remove `dir` and what it holds; a missing one is fine.
pub async fn remove_dir(dir: &Path) -> Result<(), FirmwareError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FirmwareError::io(format!("removing {}", dir.display()), e)),
    }
}

/// An error with its causes, on one line (reqwest's own message omits them).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests;
