//! Who may read the Redfish view: the API's two tokens, sent as `Authorization: Bearer
//! <token>` (as on `/api/v1`) or as the password of HTTP Basic authentication (any user
//! name), which is what Redfish clients and the DMTF validator send. Tokens are compared in
//! constant time; both may read, and the view only reads.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use crate::auth::Tokens;

/// Why a request is not let in (its 401 says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <token>` or `Basic <base64 of user:password>`.
    Malformed,
    /// A well-formed header with neither token.
    Wrong,
}

impl Refusal {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "send the API token: Authorization: Bearer <token>, or HTTP Basic authentication \
                 with the token as the password (any user name)"
            }
            Refusal::Malformed => {
                "the Authorization header must be Bearer <token> or Basic <base64 of user:token>"
            }
            Refusal::Wrong => "the token is not valid",
        }
    }
}

/// Let the request in when it carries either token.
pub(crate) fn check(tokens: &Tokens, headers: &HeaderMap) -> Result<(), Refusal> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(Refusal::Missing)?
        .to_str()
        .map_err(|_| Refusal::Malformed)?;
    let (scheme, rest) = value.split_once(' ').ok_or(Refusal::Malformed)?;
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest.trim()).ok_or(Refusal::Malformed)?;
        let text = String::from_utf8(decoded).map_err(|_| Refusal::Malformed)?;
        let (_user, password) = text.split_once(':').ok_or(Refusal::Malformed)?;
        password.to_string()
    } else {
        return Err(Refusal::Malformed);
    };
    // Both comparisons always run, so the time taken does not tell which token matched.
    let admin = bool::from(token.as_bytes().ct_eq(tokens.admin.as_bytes()));
    let read_only = bool::from(token.as_bytes().ct_eq(tokens.read_only.as_bytes()));
    if admin | read_only {
        Ok(())
    } else {
        Err(Refusal::Wrong)
    }
}

/// Standard base64 (RFC 4648 §4, padding optional); `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= sextet(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens() -> Tokens {
        Tokens {
            admin: "a".repeat(64),
            read_only: "b".repeat(64),
        }
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user_password: &str) -> String {
        // The encoder of the test: 3 bytes to 4 characters.
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in user_password.as_bytes().chunks(3) {
            let mut b = [0u8; 3];
            b[..chunk.len()].copy_from_slice(chunk);
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
                } else {
                    out.push('=');
                }
            }
        }
        format!("Basic {out}")
    }

    #[test]
    fn bearer_and_basic_with_either_token() {
        let t = tokens();
        assert_eq!(check(&t, &with(&format!("Bearer {}", t.admin))), Ok(()));
        assert_eq!(check(&t, &with(&format!("bearer {}", t.read_only))), Ok(()));
        let admin = format!("ferrofab:{}", t.admin);
        assert_eq!(check(&t, &with(&basic(&admin))), Ok(()));
        let any_user = format!("root:{}", t.read_only);
        assert_eq!(check(&t, &with(&basic(&any_user))), Ok(()));
        assert_eq!(check(&t, &HeaderMap::new()), Err(Refusal::Missing));
        assert_eq!(check(&t, &with("Bearer nope")), Err(Refusal::Wrong));
        assert_eq!(
            check(&t, &with(&basic("ferrofab:nope"))),
            Err(Refusal::Wrong)
        );
        // The token as the user name is not a password.
        let swapped = format!("{}:x", t.admin);
        assert_eq!(check(&t, &with(&basic(&swapped))), Err(Refusal::Wrong));
        for bad in [
            "Basic",
            "Basic !!!!",
            "Basic Zm9v",
            "Digest x",
            "Basic =Zm9v",
            "Token x",
        ] {
            assert_eq!(check(&t, &with(bad)), Err(Refusal::Malformed), "{bad}");
        }
    }

    #[test]
    fn base64_forms() {
        assert_eq!(base64_decode("Zm9vYmFy").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(base64_decode("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(base64_decode("Zm9vYg").as_deref(), Some(&b"foob"[..]));
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm9v===="), None);
        assert_eq!(base64_decode("Zm9v\u{e9}"), None);
    }
}
