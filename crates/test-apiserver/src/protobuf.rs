//! Just enough of the Kubernetes protobuf encoding to read the bodies kubectl sends as protobuf
//! to the authentication and authorization APIs (`kubectl auth can-i`, `kubectl auth whoami`,
//! `kubectl create token`): the `k8s\0` envelope and those messages' specs. Any other kind is
//! 415; answers are always JSON (kubectl also accepts it).

use serde_json::{Map, Value, json};

use crate::status::ApiError;

/// How one field of a message is decoded.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Strs,
    Int,
    Msg(&'static [(u64, &'static str, Ty)]),
}

type Fields = &'static [(u64, &'static str, Ty)];

const RESOURCE_ATTRIBUTES: Fields = &[
    (1, "namespace", Ty::Str),
    (2, "verb", Ty::Str),
    (3, "group", Ty::Str),
    (4, "version", Ty::Str),
    (5, "resource", Ty::Str),
    (6, "subresource", Ty::Str),
    (7, "name", Ty::Str),
];
const NON_RESOURCE_ATTRIBUTES: Fields = &[(1, "path", Ty::Str), (2, "verb", Ty::Str)];
const SELF_ACCESS_SPEC: Fields = &[
    (1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    (2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
];
const ACCESS_SPEC: Fields = &[
    (1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    (2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
    (3, "user", Ty::Str),
    (4, "groups", Ty::Strs),
    (6, "uid", Ty::Str),
];
const RULES_SPEC: Fields = &[(1, "namespace", Ty::Str)];
const TOKEN_REVIEW_SPEC: Fields = &[(1, "token", Ty::Str), (2, "audiences", Ty::Strs)];
const TOKEN_REQUEST_SPEC: Fields = &[
    (1, "audiences", Ty::Strs),
    (4, "expirationSeconds", Ty::Int),
];
const TYPE_META: Fields = &[(1, "apiVersion", Ty::Str), (2, "kind", Ty::Str)];

/// The spec layout of each kind this module reads.
fn spec_of(kind: &str) -> Option<Fields> {
    Some(match kind {
        "SelfSubjectAccessReview" => SELF_ACCESS_SPEC,
        "SubjectAccessReview" | "LocalSubjectAccessReview" => ACCESS_SPEC,
        "SelfSubjectRulesReview" => RULES_SPEC,
        "SelfSubjectReview" => &[],
        "TokenReview" => TOKEN_REVIEW_SPEC,
        "TokenRequest" => TOKEN_REQUEST_SPEC,
        _ => return None,
    })
}

/// A protobuf body (`k8s\0` + `runtime.Unknown`) as the JSON object it encodes.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |m: &str| ApiError::bad_request(format!("error decoding protobuf: {m}"));
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| bad("no k8s envelope"))?;
    let mut type_meta = json!({});
    let mut raw: &[u8] = &[];
    for (number, field) in fields(envelope).map_err(|e| bad(&e))? {
        match (number, field) {
            (1, Field::Bytes(b)) => type_meta = message(b, TYPE_META).map_err(|e| bad(&e))?,
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let kind = type_meta["kind"].as_str().unwrap_or("").to_string();
    let spec_fields = spec_of(&kind).ok_or_else(|| ApiError {
        code: 415,
        reason: "UnsupportedMediaType",
        message: format!(
            "the test API server reads protobuf only for TokenRequest and the review APIs, not {kind}: send JSON (kubectl apply)"
        ),
        details: None,
    })?;
    let mut object = type_meta;
    for (number, field) in fields(raw).map_err(|e| bad(&e))? {
        if let (2, Field::Bytes(b)) = (number, field) {
            object["spec"] = message(b, spec_fields).map_err(|e| bad(&e))?;
        }
    }
    if object.get("spec").is_none() {
        object["spec"] = json!({});
    }
    Ok(object)
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

/// The fields of one message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut buf)?),
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|e| e.to_string())?;
                if len > buf.len() {
                    return Err("truncated field".into());
                }
                let (bytes, rest) = buf.split_at(len);
                buf = rest;
                Field::Bytes(bytes)
            }
            1 => {
                buf = buf.get(8..).ok_or("truncated fixed64")?;
                continue;
            }
            5 => {
                buf = buf.get(4..).ok_or("truncated fixed32")?;
                continue;
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((key >> 3, field));
    }
    Ok(out)
}

fn message(buf: &[u8], layout: Fields) -> Result<Value, String> {
    let mut out = Map::new();
    for (number, field) in fields(buf)? {
        let Some((_, name, ty)) = layout.iter().find(|(n, _, _)| *n == number) else {
            continue;
        };
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
        match (ty, field) {
            (Ty::Str, Field::Bytes(b)) => {
                out.insert(name.to_string(), json!(text(b)?));
            }
            (Ty::Strs, Field::Bytes(b)) => {
                let list = out.entry(name.to_string()).or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(json!(text(b)?));
                }
            }
            (Ty::Int, Field::Varint(v)) => {
                out.insert(name.to_string(), json!(v as i64));
            }
            (Ty::Msg(inner), Field::Bytes(b)) => {
                out.insert(name.to_string(), message(b, inner)?);
            }
            _ => return Err(format!("field {name} has the wrong wire type")),
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_kubectl_auth_can_i_sends() {
        // Captured from `kubectl auth can-i get secrets -n default` (kubectl v1.35).
        let body = b"k8s\x00\n2\n\x17authorization.k8s.io/v1\x12\x17SelfSubjectAccessReview\x12?\n\x10\n\x00\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12!\n\x1f\n\x07default\x12\x03get\x1a\x00\"\x00*\x07secrets2\x00:\x00\x1a\x08\x08\x00\x12\x00\x1a\x00 \x00\x1a\x00\"\x00";
        assert_eq!(
            decode(body).unwrap(),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "group": "",
                    "version": "", "resource": "secrets", "subresource": "", "name": ""}}})
        );
    }

    #[test]
    fn other_kinds_are_unsupported() {
        let body = b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x00";
        assert_eq!(decode(body).unwrap_err().code, 415);
        assert_eq!(decode(b"{}").unwrap_err().code, 400);
        assert_eq!(decode(b"k8s\x00\n\xff").unwrap_err().code, 400);
    }
}
