//! The API server's checks, for `orgops apply` (which has none): object names and namespaces
//! as Kubernetes validates them, and each orgops document against its generated CRD schema —
//! lengths, item counts, numeric bounds, patterns and CEL rules. The CRD is the one source: a
//! pattern or rule without a check here fails a unit test, so the two cannot drift apart.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::api::{
    ClusterVendorConnection, DNS1123_LABEL, DNS1123_SUBDOMAIN, OrgMembership, Organization,
    VendorConnection,
};
use crate::engine::desired::{check_sync_interval, has_sync_interval_shape};

/// What the API server says of a bad RFC 1123 label (namespace names).
const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
     characters or '-', start and end with an alphanumeric character and be at most 63 \
     characters (e.g. 'my-name', or '123-abc')";

/// What the API server says of a bad RFC 1123 subdomain (object names).
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
     alphanumeric characters, '-' or '.', start and end with an alphanumeric character and be \
     at most 253 characters (e.g. 'example.com')";

fn is_label_text(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// An RFC 1123 label (a namespace name): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_label_text(s)
}

/// An RFC 1123 subdomain (an object name): labels joined by `.`, at most 253.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_text)
}

/// A value quoted for a message: escaped, and cut short when long.
pub fn quoted(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}… ({} characters)", s.chars().count())
    }
}

/// Checks an object name; `Err` says why, as the API server would, quoting the name when
/// `show` (never for a Secret: a broken quote before its name can pull its data into it).
pub fn check_name(name: &str, show: bool) -> Result<(), String> {
    if is_dns1123_subdomain(name) {
        Ok(())
    } else {
        Err(format!(
            "{}is not a valid name: {SUBDOMAIN_RULE}",
            shown(name, show)
        ))
    }
}

/// Checks a namespace name (of `metadata.namespace` or of a Namespace), like [`check_name`].
pub fn check_namespace(namespace: &str, show: bool) -> Result<(), String> {
    if is_dns1123_label(namespace) {
        Ok(())
    } else {
        Err(format!(
            "{}is not a valid namespace name: {LABEL_RULE}",
            shown(namespace, show)
        ))
    }
}

fn shown(value: &str, show: bool) -> String {
    if show {
        format!("{} ", quoted(value))
    } else {
        String::new()
    }
}

/// How a `pattern` of the CRDs is checked here (the Go regex dialect of the API server is not at
/// hand without a cluster).
struct PatternCheck {
    /// The check.
    ok: fn(&str) -> bool,
    /// What the value must look like.
    rule: &'static str,
    /// Whether a refused value may be quoted back (an endpoint may hold a password).
    quote: bool,
}

/// The check of each `pattern` the CRDs use.
fn pattern_check(pattern: &str) -> Option<PatternCheck> {
    const ENDPOINT: &str = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$";
    const EMAIL: &str = r"^[^@\s]+@[^@\s]+\.[^@\s]+$";
    const DURATION: &str = r"^([0-9]{1,5}(\.[0-9]+)?(ms|s|m|h))+$";
    const TEMPLATE_OBJECT: &str = r"^[a-z_]+/.+$";
    let check = |ok: fn(&str) -> bool, rule, quote| PatternCheck { ok, rule, quote };
    Some(match pattern {
        p if p == DNS1123_LABEL => check(is_dns1123_label, LABEL_RULE, true),
        p if p == DNS1123_SUBDOMAIN => check(is_dns1123_subdomain, SUBDOMAIN_RULE, true),
        ENDPOINT => check(
            is_endpoint,
            "must be an http(s) URL without user, query or fragment",
            false,
        ),
        EMAIL => check(
            is_email,
            "must be an e-mail address like george@example.com",
            true,
        ),
        DURATION => check(
            has_sync_interval_shape,
            "must be a duration between 1s and 24h like 10m or 1h30m (units ms, s, m, h; at most 5 digits per number)",
            true,
        ),
        TEMPLATE_OBJECT => check(
            is_template_object,
            "must be <kind>/<name>, e.g. integrations/S3 bucket",
            true,
        ),
        _ => return None,
    })
}

fn is_template_object(s: &str) -> bool {
    s.split_once('/').is_some_and(|(kind, name)| {
        !kind.is_empty()
            && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            && !name.is_empty()
            && !name.contains('\n')
    })
}

fn is_endpoint(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    !host.is_empty()
        && !host.contains(|c: char| matches!(c, '?' | '#' | '@') || c.is_whitespace())
        && !path.contains(|c: char| matches!(c, '?' | '#') || c.is_whitespace())
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let plain = |p: &str| !p.is_empty() && !p.contains(|c: char| c == '@' || c.is_whitespace());
    plain(local)
        && plain(domain)
        && domain
            .rsplit_once('.')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
}

/// The CEL rules (`x-kubernetes-validations`) of the CRDs and the code that checks each on
/// create; `None` for transition rules, which have no old object on create.
#[allow(clippy::type_complexity)]
fn rule_check(rule: &str) -> Option<Option<fn(&Value) -> Result<(), String>>> {
    Some(match rule {
        "self == oldSelf" => None,
        "has(self.externalId) != has(self.displayName)" => Some(|v: &Value| {
            let has = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
            if has("externalId") == has("displayName") {
                Err("set exactly one of externalId or displayName".to_string())
            } else {
                Ok(())
            }
        }),
        "duration(self) >= duration('1s') && duration(self) <= duration('24h')" => {
            Some(|v: &Value| match v.as_str() {
                Some(s) => check_sync_interval(s).map(|_| ()),
                None => Ok(()),
            })
        }
        _ => return None,
    })
}

/// The `openAPIV3Schema` of each orgops kind, by kind.
fn schemas() -> &'static BTreeMap<&'static str, Value> {
    static SCHEMAS: OnceLock<BTreeMap<&'static str, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let of = |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
            serde_json::to_value(crd)
                .ok()
                .and_then(|v| v.pointer("/spec/versions/0/schema/openAPIV3Schema").cloned())
                .unwrap_or(Value::Null)
        };
        BTreeMap::from([
            ("Organization", of(Organization::crd())),
            ("OrgMembership", of(OrgMembership::crd())),
            ("VendorConnection", of(VendorConnection::crd())),
            ("ClusterVendorConnection", of(ClusterVendorConnection::crd())),
        ])
    })
}

/// A value the schema refuses: the field path (`spec.allowedNamespaces[2]`) and why.
#[derive(Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    /// Dotted path of the field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Checks `spec` of a document of `kind` against the kind's CRD schema; the first violation.
pub fn check_spec(kind: &str, doc: &Value) -> Result<(), SchemaViolation> {
    let (Some(schema), Some(spec)) = (
        schemas()
            .get(kind)
            .and_then(|s| s.pointer("/properties/spec")),
        doc.get("spec"),
    ) else {
        return Ok(());
    };
    walk(schema, spec, "spec")
}

fn violation(field: &str, message: impl Into<String>) -> SchemaViolation {
    SchemaViolation {
        field: field.to_string(),
        message: message.into(),
    }
}

fn walk(schema: &Value, value: &Value, path: &str) -> Result<(), SchemaViolation> {
    let n = |k: &str| schema.get(k).and_then(Value::as_u64);
    match value {
        Value::Null => return Ok(()),
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = n("maxLength")
                && len > max
            {
                return Err(violation(
                    path,
                    format!("may not be longer than {max} characters (it has {len})"),
                ));
            }
            if let Some(min) = n("minLength")
                && len < min
            {
                return Err(violation(
                    path,
                    format!("must have at least {min} characters"),
                ));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                // Unknown patterns fail a unit test; never a reason to refuse input.
                if let Some(check) = pattern_check(p)
                    && !(check.ok)(s)
                {
                    let value = if check.quote {
                        format!("{} ", quoted(s))
                    } else {
                        String::new()
                    };
                    return Err(violation(
                        path,
                        format!("{value}is invalid: {}", check.rule),
                    ));
                }
            }
        }
        Value::Number(x) => {
            let x = x.as_f64().unwrap_or(f64::NAN);
            let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
            if let Some(max) = bound("maximum")
                && (x.is_nan() || x > max)
            {
                return Err(violation(path, format!("must be at most {max}")));
            }
            if let Some(min) = bound("minimum")
                && (x.is_nan() || x < min)
            {
                return Err(violation(path, format!("must be at least {min}")));
            }
        }
        Value::Array(items) => {
            if let Some(max) = n("maxItems")
                && items.len() as u64 > max
            {
                return Err(violation(
                    path,
                    format!("must have at most {max} items (it has {})", items.len()),
                ));
            }
            if let Some(min) = n("minItems")
                && (items.len() as u64) < min
            {
                return Err(violation(path, format!("must have at least {min} items")));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::Object(map) => {
            if let Some(max) = n("maxProperties")
                && map.len() as u64 > max
            {
                return Err(violation(
                    path,
                    format!("must have at most {max} entries (it has {})", map.len()),
                ));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                let child = properties.and_then(|p| p.get(k)).or(additional);
                if let Some(child) = child {
                    walk(child, v, &format!("{path}.{k}"))?;
                }
            }
        }
        Value::Bool(_) => {}
    }
    for rule in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
        if let Some(Some(check)) = rule_check(text) {
            check(value).map_err(|why| violation(path, why))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect<'a>(schema: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
        match schema {
            Value::Object(m) => {
                if let Some(v) = m.get(key) {
                    out.push(v);
                }
                m.values().for_each(|v| collect(v, key, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect(v, key, out)),
            _ => {}
        }
    }

    #[test]
    fn every_pattern_and_rule_of_the_crds_is_checked_here() {
        for (kind, schema) in schemas() {
            assert!(schema.is_object(), "{kind}: no schema");
            let mut patterns = Vec::new();
            collect(schema, "pattern", &mut patterns);
            for p in patterns {
                let p = p.as_str().unwrap();
                assert!(
                    pattern_check(p).is_some(),
                    "{kind}: pattern {p} has no check in src/cli/schema.rs"
                );
            }
            let mut rules = Vec::new();
            collect(schema, "x-kubernetes-validations", &mut rules);
            for r in rules.iter().flat_map(|r| r.as_array().unwrap()) {
                let rule = r["rule"].as_str().unwrap();
                assert!(
                    rule_check(rule).is_some(),
                    "{kind}: rule {rule} has no check in src/cli/schema.rs"
                );
            }
        }
    }

    #[test]
    fn names_follow_rfc_1123() {
        for good in ["a", "de", "my-org", "a.b-c.d", "0", &"a".repeat(253)] {
            assert!(check_name(good, true).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../Bad_Name",
            "A",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a b",
            "ä",
            &"a".repeat(254),
        ] {
            assert!(check_name(bad, true).is_err(), "{bad}");
        }
        assert!(check_namespace(&"a".repeat(63), true).is_ok());
        for bad in ["a.b", "", &"a".repeat(64), "Tenants"] {
            assert!(check_namespace(bad, true).is_err(), "{bad}");
        }
        let e = check_name(&"X".repeat(300), true).unwrap_err();
        assert!(e.contains("300 characters") && e.len() < 500, "{e}");
        let e = check_name("Hidden_Value", false).unwrap_err();
        assert!(
            e.starts_with("is not a valid name") && !e.contains("Hidden"),
            "{e}"
        );
    }

    #[test]
    fn specs_are_checked_against_their_crd() {
        let check = |kind: &str, spec: Value| check_spec(kind, &json!({ "spec": spec }));
        let conn = |extra: Value| {
            let mut spec = json!({"vendor": "rossum", "credentialsSecretRef": {"name": "c", "namespace": "ops"}});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            spec
        };
        assert_eq!(check("ClusterVendorConnection", conn(json!({}))), Ok(()));
        let e = check(
            "ClusterVendorConnection",
            conn(json!({"allowedNamespaces": ["a", "Bad_NS"]})),
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.allowedNamespaces[1]");
        assert!(e.message.contains("RFC 1123 label"), "{}", e.message);
        let e = check("ClusterVendorConnection", conn(json!({"rateLimit": 0}))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("spec.rateLimit", "must be at least 1")
        );
        let e = check("VendorConnection", conn(json!({"rateLimit": 1e30}))).unwrap_err();
        assert_eq!(e.field, "spec.rateLimit");
        let e = check(
            "ClusterVendorConnection",
            conn(json!({"credentialsSecretRef": {"name": "c", "namespace": "a.b"}})),
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.credentialsSecretRef.namespace");

        let org = |interval: &str| {
            json!({"vendor": "rossum", "displayName": "DE", "connectionRef": {"name": "c"},
                   "syncInterval": interval})
        };
        assert_eq!(check("Organization", org("10m")), Ok(()));
        for (bad, why) in [
            ("99999999999999999999h", "at most 5 digits"),
            ("500ms", "shorter than 1s"),
            ("25h", "longer than 24h"),
        ] {
            let e = check("Organization", org(bad)).unwrap_err();
            assert_eq!(e.field, "spec.syncInterval");
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
        let e = check(
            "Organization",
            json!({"template": {"include": vec!["queues"; 65]}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.template.include");
        let e = check("Organization", json!({"template": {"include": ["x"]}})).unwrap_err();
        assert!(e.message.contains("exactly one"), "{}", e.message);
        let e = check(
            "OrgMembership",
            json!({"user": {"email": "a@b.c", "firstName": "x".repeat(151)}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.user.firstName");
    }
}
