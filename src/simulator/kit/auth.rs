//! Authentication helpers: where a request carries its credential, which principal a token
//! stands for, unsigned and HS256-signed JWTs, and a 401 whose body the vendor renders.
//!
//! Nothing here puts a credential into an error: [`AuthFailure`] says what was wrong, never
//! with what.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

/// Why a request is not authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential where the vendor expects one.
    Missing,
    /// A credential that cannot be one (not a JWT, say).
    Malformed,
    /// A well-formed credential the vendor does not know.
    Unknown,
    /// A known credential past its expiry.
    Expired,
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    scheme_token(headers, "bearer")
}

/// The token of an `Authorization: <scheme> <token>` header, `scheme` compared
/// case-insensitively (Rossum also takes `Token`).
pub fn scheme_token<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let raw = headers.get("authorization")?.to_str().ok()?;
    let (s, token) = raw.trim().split_once(' ')?;
    let token = token.trim();
    (s.eq_ignore_ascii_case(scheme) && !token.is_empty()).then_some(token)
}

/// The value of a header that carries a key by itself (Rendered.ai's `apikey`), if any.
pub fn header_token<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    (!v.is_empty()).then_some(v)
}

#[derive(Clone, Debug)]
struct Entry<P> {
    principal: P,
    expires: Option<Instant>,
}

/// Tokens and the principals they stand for.
#[derive(Clone, Debug)]
pub struct TokenRegistry<P> {
    tokens: HashMap<String, Entry<P>>,
}

impl<P> Default for TokenRegistry<P> {
    fn default() -> Self {
        Self {
            tokens: HashMap::new(),
        }
    }
}

impl<P> TokenRegistry<P> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Issues a new random token (40 hex digits) for `principal`, valid for `lifetime`
    /// (`None`: until revoked).
    pub fn issue(&mut self, principal: P, lifetime: Option<Duration>) -> String {
        let token = loop {
            let t = format!(
                "{:016x}{:016x}{:08x}",
                fastrand::u64(..),
                fastrand::u64(..),
                fastrand::u32(..)
            );
            if !self.tokens.contains_key(&t) {
                break t;
            }
        };
        self.insert(token.clone(), principal, lifetime);
        token
    }

    /// Registers a token chosen by the caller (a fixed test token, a JWT).
    pub fn insert(&mut self, token: String, principal: P, lifetime: Option<Duration>) {
        let expires = lifetime.map(|l| Instant::now() + l);
        self.tokens.insert(token, Entry { principal, expires });
    }

    /// The principal of `token`. An expired token is forgotten as it is reported.
    pub fn lookup(&mut self, token: &str) -> Result<&P, AuthFailure> {
        let expired = match self.tokens.get(token) {
            None => return Err(AuthFailure::Unknown),
            Some(e) => e.expires.is_some_and(|t| t <= Instant::now()),
        };
        if expired {
            self.tokens.remove(token);
            return Err(AuthFailure::Expired);
        }
        self.tokens
            .get(token)
            .map(|e| &e.principal)
            .ok_or(AuthFailure::Unknown)
    }

    /// Forgets `token`; whether it was known.
    pub fn revoke(&mut self, token: &str) -> bool {
        self.tokens.remove(token).is_some()
    }

    /// Keeps only the tokens whose principal `keep` accepts (a deleted user's tokens go).
    pub fn retain(&mut self, mut keep: impl FnMut(&P) -> bool) {
        self.tokens.retain(|_, e| keep(&e.principal));
    }

    /// Forgets every token (tests: every session expires at once).
    pub fn clear(&mut self) {
        self.tokens.clear();
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Authenticates a request that carries `token` (`None`: no credential where the vendor
/// expects one) against `registry`; on failure, the vendor's own 401 from `render`.
pub fn authenticate<'r, P, R>(
    token: Option<&str>,
    registry: &'r mut TokenRegistry<P>,
    render: impl FnOnce(AuthFailure) -> R,
) -> Result<&'r P, R> {
    let Some(token) = token else {
        return Err(render(AuthFailure::Missing));
    };
    match registry.lookup(token) {
        Ok(p) => Ok(p),
        Err(f) => Err(render(f)),
    }
}

/// Authenticates a bearer request against `registry`; on failure, the vendor's own 401 from
/// `render`.
pub fn authenticate_bearer<'r, P, R>(
    headers: &HeaderMap,
    registry: &'r mut TokenRegistry<P>,
    render: impl FnOnce(AuthFailure) -> R,
) -> Result<&'r P, R> {
    authenticate(bearer(headers), registry, render)
}

/// An unsigned JWT (`alg: none`, empty signature) carrying `claims`. Simulators issue these as
/// test tokens for vendors whose clients only pass the JWT along.
pub fn unsigned_jwt(claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The claims of a JWT, signature unchecked: three dot-separated parts whose first two are
/// base64url JSON objects.
pub fn jwt_claims(token: &str) -> Result<Map<String, Value>, AuthFailure> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, _signature] = parts.as_slice() else {
        return Err(AuthFailure::Malformed);
    };
    let decode = |part: &str| -> Result<Map<String, Value>, AuthFailure> {
        // Padding is not part of JWTs, but some issuers leave it in.
        let bytes = URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| AuthFailure::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(AuthFailure::Malformed),
        }
    };
    decode(header)?;
    decode(payload)
}

/// A JWT signed with HS256 (HMAC-SHA256 of `header.payload` under `key`) carrying `claims`.
/// For simulators whose vendor signs its tokens: the token looks like the real thing, and a
/// token the simulator did not make (or one whose claims were edited) fails
/// [`verify_hs256`].
pub fn hs256_jwt(claims: &Value, key: &[u8]) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The claims of a JWT that [`hs256_jwt`] made under `key`: [`AuthFailure::Malformed`] when
/// `token` is not a JWT, [`AuthFailure::Unknown`] when it is one this key did not sign (another
/// key, another algorithm, edited claims). Expiry is the caller's to check ([`jwt_expired`]).
pub fn verify_hs256(token: &str, key: &[u8]) -> Result<Map<String, Value>, AuthFailure> {
    let claims = jwt_claims(token)?;
    let (signing_input, signature) = token.rsplit_once('.').ok_or(AuthFailure::Malformed)?;
    let header = signing_input.split('.').next().unwrap_or_default();
    let alg_ok = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|h| h["alg"] == "HS256");
    let signature = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| AuthFailure::Malformed)?;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    if !alg_ok || aws_lc_rs::hmac::verify(&key, signing_input.as_bytes(), &signature).is_err() {
        return Err(AuthFailure::Unknown);
    }
    Ok(claims)
}

/// Seconds since the Unix epoch, as JWT `iat`/`exp` count them.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Whether `claims` carry an `exp` at or before `now` (Unix seconds).
pub fn jwt_expired(claims: &Map<String, Value>, now: i64) -> bool {
    claims
        .get("exp")
        .and_then(Value::as_f64)
        .is_some_and(|exp| exp <= now as f64)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_extraction() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer")])), None);
        assert_eq!(bearer(&headers(&[])), None);
        assert_eq!(
            scheme_token(&headers(&[("authorization", "Token k")]), "token"),
            Some("k")
        );
        assert_eq!(
            header_token(&headers(&[("apikey", " k1 ")]), "apikey"),
            Some("k1")
        );
        assert_eq!(header_token(&headers(&[("apikey", "")]), "apikey"), None);
    }

    #[test]
    fn registry_issues_looks_up_expires_and_revokes() {
        let mut r: TokenRegistry<&str> = TokenRegistry::new();
        let t = r.issue("alice", None);
        assert_eq!(t.len(), 40);
        assert_eq!(r.lookup(&t), Ok(&"alice"));
        assert_eq!(r.lookup("nope"), Err(AuthFailure::Unknown));
        r.insert("old".into(), "bob", Some(Duration::ZERO));
        assert_eq!(r.lookup("old"), Err(AuthFailure::Expired));
        assert_eq!(r.lookup("old"), Err(AuthFailure::Unknown), "forgotten");
        assert!(r.revoke(&t));
        assert!(!r.revoke(&t));
        assert!(r.is_empty());

        let a = r.issue("alice", None);
        let b = r.issue("bob", Some(Duration::from_secs(60)));
        r.retain(|p| *p != "alice");
        assert_eq!(r.lookup(&a), Err(AuthFailure::Unknown));
        assert_eq!(r.lookup(&b), Ok(&"bob"));
        r.clear();
        assert!(r.is_empty());
    }

    #[test]
    fn authenticate_renders_the_vendors_401() {
        let mut r: TokenRegistry<u32> = TokenRegistry::new();
        r.insert("good".into(), 7, None);
        let render = |f: AuthFailure| format!("401 {f:?}");
        assert_eq!(
            authenticate_bearer(
                &headers(&[("authorization", "Bearer good")]),
                &mut r,
                render
            ),
            Ok(&7)
        );
        assert_eq!(
            authenticate_bearer(&headers(&[]), &mut r, render),
            Err("401 Missing".to_string())
        );
        let bad = authenticate_bearer(
            &headers(&[("authorization", "Bearer secret-value")]),
            &mut r,
            render,
        )
        .unwrap_err();
        assert_eq!(bad, "401 Unknown");
        assert!(!bad.contains("secret-value"));
    }

    #[test]
    fn hs256_tokens_verify_under_their_key_only() {
        let claims = json!({"email": "a@b.example", "exp": 99});
        let token = hs256_jwt(&claims, b"key-one");
        let back = verify_hs256(&token, b"key-one").unwrap();
        assert_eq!(back["email"], "a@b.example");
        assert_eq!(
            jwt_claims(&token).unwrap()["exp"],
            99,
            "readable unverified too"
        );
        assert_eq!(verify_hs256(&token, b"key-two"), Err(AuthFailure::Unknown));
        // Same signature, edited claims.
        let parts: Vec<&str> = token.split('.').collect();
        let edited = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(json!({"email": "x@b.example", "exp": 99}).to_string()),
            parts[2]
        );
        assert_eq!(verify_hs256(&edited, b"key-one"), Err(AuthFailure::Unknown));
        // Unsigned tokens are not ours, whatever they claim.
        assert_eq!(
            verify_hs256(&unsigned_jwt(&claims), b"key-one"),
            Err(AuthFailure::Unknown)
        );
        assert_eq!(
            verify_hs256("nope", b"key-one"),
            Err(AuthFailure::Malformed)
        );
        assert_eq!(
            verify_hs256(&format!("{}.{}.!!", parts[0], parts[1]), b"key-one"),
            Err(AuthFailure::Malformed)
        );
    }

    #[test]
    fn jwt_round_trip_and_rejections() {
        let claims = json!({"sub": "google-oauth2|123", "exp": 10});
        let token = unsigned_jwt(&claims);
        let back = jwt_claims(&token).unwrap();
        assert_eq!(back["sub"], "google-oauth2|123");
        assert!(jwt_expired(&back, 10));
        assert!(!jwt_expired(&back, 9));
        assert!(!jwt_expired(&Map::new(), i64::MAX), "no exp: never expires");
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.###.",
            &format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode("{}"),
                URL_SAFE_NO_PAD.encode("[1]")
            ),
            &format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode("nope"),
                URL_SAFE_NO_PAD.encode("{}")
            ),
        ] {
            assert_eq!(jwt_claims(bad), Err(AuthFailure::Malformed), "{bad}");
        }
    }
}
