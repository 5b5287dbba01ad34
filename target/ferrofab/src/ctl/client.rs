//! The HTTP side of `ferrofab ctl`: where the API is, which token to send, one request per
//! command, and the server's error bodies turned into one line for the operator.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

/// The management API's address when neither `--api` nor `FERROFAB_API` names one.
pub const DEFAULT_API: &str = "http://127.0.0.1:8080";

/// Where the bearer token came from, to name it when the server refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    File(PathBuf),
    Env,
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::File(p) => write!(f, "token file {}", p.display()),
            TokenSource::Env => f.write_str("the FERROFAB_TOKEN environment variable"),
        }
    }
}

/// The token: `--token-file`, else `<--state-dir>/admin.token` when `--state-dir` is given,
/// else `FERROFAB_TOKEN`, else the default state directory's `admin.token`.
pub fn token(
    token_file: Option<&Path>,
    state_dir: Option<&Path>,
    env_token: Option<String>,
) -> Result<(String, TokenSource), String> {
    let path = match (token_file, state_dir, env_token) {
        (Some(p), _, _) => p.to_path_buf(),
        (None, Some(d), _) => d.join(mgmt::auth::ADMIN_TOKEN_FILE),
        (None, None, Some(t)) => {
            let t = t.trim().to_string();
            if t.is_empty() {
                return Err("FERROFAB_TOKEN is set but empty".to_string());
            }
            return Ok((t, TokenSource::Env));
        }
        (None, None, None) => {
            Path::new(target::state::DEFAULT_STATE_DIR).join(mgmt::auth::ADMIN_TOKEN_FILE)
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read the API token {}: {e} (name one with --token-file or --state-dir, \
             or set FERROFAB_TOKEN)",
            path.display()
        )
    })?;
    let t = text.trim().to_string();
    if t.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok((t, TokenSource::File(path)))
}

/// The API's base URL from what the operator gave: `http://host:port` or `https://host:port`,
/// with or without a trailing `/` or `/api/v1/` (the URL the daemon logs works as is).
pub fn base_url(text: &str) -> Result<Url, String> {
    const WANT: &str = "want http://HOST:PORT or https://HOST:PORT";
    let mut url = Url::parse(text.trim()).map_err(|e| format!("--api {text:?}: {e} ({WANT})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "--api {text:?}: the management API speaks http or https ({WANT})"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("--api {text:?}: no query or fragment ({WANT})"));
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/api/v1").unwrap_or(path).to_string();
    url.set_path(&path);
    Ok(url)
}

/// The trust anchors in `path` (PEM, one or more CERTIFICATE blocks), for a server whose
/// certificate no system CA signed (a self-signed appliance certificate).
pub fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the CA certificate {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("the CA certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA certificate {}: no PEM CERTIFICATE block in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// `segment` percent-encoded for a URL path: unreserved characters and sub-delimiters stay
/// (NQNs keep their `:`), everything else becomes `%XX` (RFC 3986 §3.3).
pub fn segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A client for one API.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
    source: TokenSource,
}

/// `{"error": {"code", "field", "message"}}`, the body of every refused request.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    field: Option<String>,
    message: String,
}

impl Client {
    /// A client for the API at `base`; `https://` servers are trusted when a system CA or one
    /// of `roots` signed their certificate.
    pub fn new(
        base: Url,
        token: String,
        source: TokenSource,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<Client, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Adding a drive namespace may bind and bring up a controller.
            .timeout(Duration::from_secs(120));
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Client {
            http,
            base,
            token,
            source,
        })
    }

    /// `method` on `path` (under `/api/v1/`, segments already encoded) with an optional
    /// JSON body; the response body of a 2xx answer, or the refusal as one line.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, String> {
        let url = format!("{}/api/v1/{path}", self.base.as_str().trim_end_matches('/'));
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(self.refusal(status, &bytes))
    }

    fn unreachable(&self, e: &reqwest::Error) -> String {
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(e);
        let mut refused = false;
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            refused |= s
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
            source = s.source();
        }
        // Over https a connect error may also be the TLS handshake's.
        let what = if e.is_connect() && (refused || self.base.scheme() == "http") {
            "connection refused or unreachable (is `ferrofab serve` running there? \
             --api or FERROFAB_API names another address)"
                .to_string()
        } else if e.is_timeout() {
            "no answer in time".to_string()
        } else if self.base.scheme() == "https" {
            // Certificate and handshake failures: the chain names the reason (UnknownIssuer,
            // NotValidForName, ...).
            format!(
                "{chain} (a self-signed certificate needs --ca-cert or FERROFAB_CA_CERT; \
                 a server without TLS needs an http:// URL)"
            )
        } else {
            chain
        };
        format!("cannot reach the management API at {}: {what}", self.base)
    }

    fn refusal(&self, status: StatusCode, body: &[u8]) -> String {
        let code = status.as_u16();
        let mut line = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => {
                let mut line = format!("{code} {}: {}", error.code, error.message);
                if let Some(f) = error.field {
                    line.push_str(&format!(" (field {f})"));
                }
                line
            }
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() {
                    format!("{code} {}", status.canonical_reason().unwrap_or("error"))
                } else {
                    format!("{code} {text}")
                }
            }
        };
        match status {
            StatusCode::UNAUTHORIZED => line.push_str(&format!(
                "; the server refused the token from {}",
                self.source
            )),
            StatusCode::FORBIDDEN => line.push_str(&format!(
                "; the token from {} may only read (use the admin token)",
                self.source
            )),
            _ => {}
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_nqn_colons_and_encode_the_rest() {
        assert_eq!(
            segment("nqn.2014-08.org.nvmexpress:uuid:1-2"),
            "nqn.2014-08.org.nvmexpress:uuid:1-2"
        );
        assert_eq!(segment("a/b c%?#"), "a%2Fb%20c%25%3F%23");
        assert_eq!(segment("[::1]:4420"), "%5B::1%5D:4420");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn base_urls() {
        for text in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/api/v1/",
            "http://127.0.0.1:8080/api/v1",
        ] {
            assert_eq!(
                base_url(text).unwrap().as_str(),
                "http://127.0.0.1:8080/",
                "{text}"
            );
        }
        assert_eq!(
            base_url("https://box:8443/api/v1/").unwrap().as_str(),
            "https://box:8443/"
        );
        assert!(base_url("ftp://box:8080")
            .unwrap_err()
            .contains("http or https"));
        assert!(base_url("127.0.0.1:8080").is_err());
        assert!(base_url("http://box:8080/?x=1")
            .unwrap_err()
            .contains("query"));
    }

    #[test]
    fn tokens_come_from_the_file_the_state_dir_or_the_env() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        std::fs::write(dir.path().join("admin.token"), "abc\n").unwrap();
        std::fs::write(dir.path().join("other"), " def \n").unwrap();
        let other = dir.path().join("other");
        assert_eq!(
            token(Some(&other), d, Some("env".into())).unwrap(),
            ("def".to_string(), TokenSource::File(other))
        );
        assert_eq!(
            token(None, None, Some("env".into())).unwrap(),
            ("env".to_string(), TokenSource::Env)
        );
        assert_eq!(
            token(None, d, Some("env".into())).unwrap(),
            (
                "abc".to_string(),
                TokenSource::File(dir.path().join("admin.token"))
            )
        );
        let missing = token(None, Some(&dir.path().join("nope")), None).unwrap_err();
        assert!(missing.contains("nope/admin.token"), "{missing}");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        assert!(token(Some(&dir.path().join("empty")), None, None)
            .unwrap_err()
            .contains("empty"));
        assert!(token(None, None, Some(" ".into()))
            .unwrap_err()
            .contains("empty"));
    }

    #[test]
    fn refusals_are_one_line_naming_code_and_field() {
        let c = Client::new(
            base_url(DEFAULT_API).unwrap(),
            "t".into(),
            TokenSource::File("/s/admin.token".into()),
            Vec::new(),
        )
        .unwrap();
        let body = br#"{"error":{"code":"invalid","field":"nqn","message":"bad"}}"#;
        assert_eq!(
            c.refusal(StatusCode::BAD_REQUEST, body),
            "400 invalid: bad (field nqn)"
        );
        let body = br#"{"error":{"code":"no_such_subsystem","field":null,"message":"gone"}}"#;
        assert_eq!(
            c.refusal(StatusCode::NOT_FOUND, body),
            "404 no_such_subsystem: gone"
        );
        let body = br#"{"error":{"code":"unauthorized","field":"Authorization","message":"m"}}"#;
        assert!(c
            .refusal(StatusCode::UNAUTHORIZED, body)
            .ends_with("refused the token from token file /s/admin.token"));
        assert_eq!(c.refusal(StatusCode::BAD_GATEWAY, b""), "502 Bad Gateway");
    }
}
