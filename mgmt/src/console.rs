//! The web console (`mgmt/console/`): plain ES modules, a style sheet and one HTML shell,
//! embedded in the binary and served at `/` and `/console/…` on the management listener. The
//! shell needs no token and holds no data: it shows the log-in form, and everything it shows
//! after comes from the API with the token the operator typed. Nothing is fetched from
//! anywhere else (the Content-Security-Policy says so to the browser).

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

struct Asset {
    /// Below `/console/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `mgmt/console/` (a test keeps the list complete).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("charts.js", JS),
    asset!("pages/dashboard.js", JS),
    asset!("pages/subsystems.js", JS),
    asset!("pages/namespaces.js", JS),
    asset!("pages/hosts.js", JS),
    asset!("pages/drives.js", JS),
    asset!("pages/events.js", JS),
];

/// Scripts, styles, API calls and the stream only from this origin; no framing, no inline
/// script, no plug-ins.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /`: the shell.
pub(crate) async fn index() -> Response {
    serve("index.html").unwrap_or_else(|e| e.into_response())
}

/// `GET /console/{*name}`: a script or the style sheet.
pub(crate) async fn file(Path(name): Path<String>) -> Response {
    serve(&name).unwrap_or_else(|e| e.into_response())
}

fn serve(name: &str) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("the console has no file {name:?}")))?;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        // Revalidated on every load, so a new build's console is never mixed with an old one.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    Ok((StatusCode::OK, headers, asset.body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path as FsPath, PathBuf};

    fn files(dir: &FsPath, base: &FsPath, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                files(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }

    #[test]
    fn every_console_file_is_embedded_and_every_import_resolves() {
        let base = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        files(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "mgmt/console/ and ASSETS differ");
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let dir = FsPath::new(a.name).parent().unwrap_or(FsPath::new(""));
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let spec = line
                    .rsplit(" from ")
                    .next()
                    .unwrap()
                    .trim_end_matches(';')
                    .trim_matches('"');
                assert!(spec.starts_with("./") || spec.starts_with("../"), "{line}");
                let mut target = dir.to_path_buf();
                for part in spec.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            target.pop();
                        }
                        p => target.push(p),
                    }
                }
                let target = target.display().to_string();
                assert!(
                    ASSETS.iter().any(|x| x.name == target),
                    "{} imports {spec}, which is not embedded",
                    a.name
                );
            }
        }
        for (html, src) in [
            ("index.html", "/console/app.js"),
            ("index.html", "/console/console.css"),
        ] {
            let body = ASSETS.iter().find(|a| a.name == html).unwrap().body;
            assert!(body.contains(src), "{html} does not load {src}");
        }
    }

    #[test]
    fn nothing_is_fetched_from_elsewhere() {
        for a in ASSETS {
            // The SVG namespace is a name, not an address anything is fetched from.
            let body = a.body.replace("\"http://www.w3.org/2000/svg\"", "SVG_NS");
            for bad in ["http://", "https://", "//cdn", "eval(", "innerHTML"] {
                assert!(!body.contains(bad), "{} contains {bad:?}", a.name);
            }
        }
        assert!(serve("nope.js").is_err());
        assert!(serve("../Cargo.toml").is_err());
        assert_eq!(serve("app.js").unwrap().status(), StatusCode::OK);
    }
}
