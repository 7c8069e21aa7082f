//! Small HTTP helpers: path segments, media types, query pairs.

use axum::http::{HeaderMap, Uri};

/// Percent-decodes `s` (`%7C` → `|`; `+` stays `+`, as in a path). `None` when an escape is
/// broken or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded segments of `path` below `prefix`, one trailing slash ignored (Spring and DRF
/// both match with or without it). `None` when `path` is not below `prefix`, a segment does not
/// decode, or a segment is empty (`a//b`).
pub fn segments_below(path: &str, prefix: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.split('/')
        .map(|s| percent_decode(s).filter(|d| !d.is_empty()))
        .collect()
}

/// The request's media type (`type/subtype`, lower case, parameters dropped), if any.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get("content-type")?.to_str().ok()?;
    let mt = raw.split(';').next()?.trim().to_ascii_lowercase();
    (!mt.is_empty()).then_some(mt)
}

/// The query string's pairs, decoded.
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn decodes_escapes_and_rejects_broken_ones() {
        assert_eq!(
            percent_decode("google-oauth2%7C123").as_deref(),
            Some("google-oauth2|123")
        );
        assert_eq!(percent_decode("a+b%20c").as_deref(), Some("a+b c"));
        assert_eq!(percent_decode("%e2%9c%93").as_deref(), Some("✓"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn segments_below_a_prefix() {
        let p = "/datastore/organizations";
        assert_eq!(segments_below(p, p), Some(vec![]));
        assert_eq!(segments_below("/datastore/organizations/", p), Some(vec![]));
        assert_eq!(
            segments_below("/datastore/organizations/x/principals/members/a%7Cb/", p),
            Some(vec![
                "x".into(),
                "principals".into(),
                "members".into(),
                "a|b".into()
            ])
        );
        assert_eq!(segments_below("/datastore/organizationsX", p), None);
        assert_eq!(segments_below("/other", p), None);
        assert_eq!(segments_below("/datastore/organizations/a//b", p), None);
        assert_eq!(segments_below("/datastore/organizations/%", p), None);
    }

    #[test]
    fn media_types_drop_parameters() {
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h), None);
        h.insert(
            "content-type",
            HeaderValue::from_static("Text/Plain; charset=UTF-8"),
        );
        assert_eq!(media_type(&h).as_deref(), Some("text/plain"));
        let uri: Uri = "/x?a=1&b=%7C&b=2".parse().unwrap();
        assert_eq!(
            query_pairs(&uri),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "|".into()),
                ("b".into(), "2".into())
            ]
        );
    }
}
