//! Custom resources against their CRD's structural schema: defaulting, pruning of unknown
//! fields, type/required/enum/pattern/bounds checks, then the CEL `x-kubernetes-validations`.

use serde_json::{Map, Value};

use crate::status::Cause;

/// The outcome of validating an object.
#[derive(Debug, Default)]
pub struct Checked {
    /// The defaulted and pruned object.
    pub object: Value,
    /// Field errors (422 when non-empty).
    pub causes: Vec<Cause>,
    /// Fields the schema does not declare (pruned; an error under `fieldValidation=Strict`).
    pub unknown: Vec<String>,
}

/// Validates `object` (and `old`, for transition rules) against `schema`.
pub fn check(schema: &Value, object: &Value, old: Option<&Value>) -> Checked {
    let mut out = Checked::default();
    let Value::Object(root) = object else {
        out.causes
            .push(cause("FieldValueTypeInvalid", "", "must be an object"));
        return out;
    };
    let mut pruned = Map::new();
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in root {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            pruned.insert(k.clone(), v.clone());
            continue;
        }
        match props.and_then(|p| p.get(k)) {
            Some(s) => {
                if let Some(v) = walk(s, v, k, &mut out) {
                    pruned.insert(k.clone(), v);
                }
            }
            None if preserves(schema) => {
                pruned.insert(k.clone(), v.clone());
            }
            None => out.unknown.push(k.clone()),
        }
    }
    if let Some(p) = props {
        for (k, s) in p {
            if !pruned.contains_key(k)
                && let Some(d) = s.get("default")
            {
                pruned.insert(k.clone(), d.clone());
            }
        }
    }
    for r in required(schema) {
        if !pruned.contains_key(&r) {
            out.causes
                .push(cause("FieldValueRequired", &r, "Required value"));
        }
    }
    out.object = Value::Object(pruned);
    if out.causes.is_empty()
        && let Err(errors) = kube_cel::validate(schema, &out.object, old)
    {
        for e in errors.into_vec() {
            let field = e.field_path.trim_start_matches('.').to_string();
            let at = lookup(&out.object, &field);
            out.causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: \"{}\": {}", type_name(at), e.message),
                field,
            });
        }
    }
    out
}

fn preserves(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn required(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect()
}

fn cause(reason: &'static str, field: &str, message: &str) -> Cause {
    Cause {
        reason,
        message: message.to_string(),
        field: field.to_string(),
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |cur, seg| cur.get(seg))
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::String(_)) => "string",
        Some(Value::Number(_)) => "number",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
        _ => "null",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// Checks `v` at `path`; returns the pruned value, or `None` to drop it (null on a
/// non-nullable field, as the apiserver prunes it).
fn walk(schema: &Value, v: &Value, path: &str, out: &mut Checked) -> Option<Value> {
    if v.is_null() {
        return (schema.get("nullable") == Some(&Value::Bool(true))).then_some(Value::Null);
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            type_error(path, v, "integer or string", out);
        }
        return Some(v.clone());
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !ok {
        type_error(path, v, ty, out);
        return Some(v.clone());
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let supported: Vec<String> = options.iter().map(show).collect();
        out.causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                supported.join(", ")
            ),
            field: path.to_string(),
        });
    }
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let mut pruned = Map::new();
            for (k, item) in map {
                let child = format!("{path}.{k}");
                match props.and_then(|p| p.get(k)).or(additional) {
                    Some(s) => {
                        if let Some(x) = walk(s, item, &child, out) {
                            pruned.insert(k.clone(), x);
                        }
                    }
                    None if preserves(schema)
                        || (props.is_none()
                            && schema.get("additionalProperties") == Some(&Value::Bool(true))) =>
                    {
                        pruned.insert(k.clone(), item.clone());
                    }
                    None if props.is_none() && preserves_implicitly(schema) => {
                        pruned.insert(k.clone(), item.clone());
                    }
                    None => out.unknown.push(child),
                }
            }
            if let Some(p) = props {
                for (k, s) in p {
                    if !pruned.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        pruned.insert(k.clone(), d.clone());
                    }
                }
            }
            for r in required(schema) {
                if !pruned.contains_key(&r) {
                    out.causes.push(cause(
                        "FieldValueRequired",
                        &format!("{path}.{r}"),
                        "Required value",
                    ));
                }
            }
            Some(Value::Object(pruned))
        }
        Value::Array(items) => {
            bounds(
                schema,
                path,
                v,
                items.len() as f64,
                "minItems",
                "maxItems",
                "items",
                out,
            );
            let item_schema = schema.get("items");
            let mut pruned = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let child = format!("{path}[{i}]");
                match item_schema {
                    Some(s) => pruned.push(walk(s, item, &child, out).unwrap_or(Value::Null)),
                    None => pruned.push(item.clone()),
                }
            }
            Some(Value::Array(pruned))
        }
        Value::String(s) => {
            bounds(
                schema,
                path,
                v,
                s.chars().count() as f64,
                "minLength",
                "maxLength",
                "chars",
                out,
            );
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(p)
                && !re.is_match(s)
            {
                out.causes.push(Cause {
                    reason: "FieldValueInvalid",
                    message: format!("Invalid value: \"{s}\": {path} in body should match '{p}'"),
                    field: path.to_string(),
                });
            }
            Some(v.clone())
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                out.causes.push(Cause {
                    reason: "FieldValueInvalid",
                    message: format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}"),
                    field: path.to_string(),
                });
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                out.causes.push(Cause {
                    reason: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {n}: {path} in body should be less than or equal to {max}"
                    ),
                    field: path.to_string(),
                });
            }
            Some(v.clone())
        }
        other => Some(other.clone()),
    }
}

/// `type: object` with neither properties nor additionalProperties keeps nothing unless it
/// preserves unknown fields; an object schema without `type` (e.g. embedded) keeps all.
fn preserves_implicitly(schema: &Value) -> bool {
    schema.get("type").is_none()
}

#[allow(clippy::too_many_arguments)]
fn bounds(
    schema: &Value,
    path: &str,
    v: &Value,
    len: f64,
    min_key: &str,
    max_key: &str,
    unit: &str,
    out: &mut Checked,
) {
    if let Some(min) = schema.get(min_key).and_then(Value::as_f64)
        && len < min
    {
        out.causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!(
                "Invalid value: {}: {path} in body should have at least {min} {unit}",
                show(v)
            ),
            field: path.to_string(),
        });
    }
    if let Some(max) = schema.get(max_key).and_then(Value::as_f64)
        && len > max
    {
        out.causes.push(Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: {path} may not be longer than {max}"),
            field: path.to_string(),
        });
    }
}

fn type_error(path: &str, v: &Value, ty: &str, out: &mut Checked) {
    out.causes.push(Cause {
        reason: "FieldValueTypeInvalid",
        message: format!(
            "Invalid value: \"{}\": {path} in body must be of type {ty}: \"{}\"",
            type_name(Some(v)),
            type_name(Some(v))
        ),
        field: path.to_string(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["vendor"], "properties": {
            "vendor": {"type": "string", "enum": ["rossum", "dataloop"],
                       "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "vendor is immutable"}]},
            "name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"},
            "suspend": {"type": "boolean", "default": false},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}}})
    }

    #[test]
    fn defaults_prunes_and_keeps_preserved_fields() {
        let c = check(
            &schema(),
            &json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"vendor": "rossum", "extra": 1, "free": {"any": {"thing": 1}}}}),
            None,
        );
        assert!(c.causes.is_empty(), "{:?}", c.causes);
        assert_eq!(c.object["spec"]["suspend"], json!(false));
        assert!(c.object["spec"].get("extra").is_none());
        assert_eq!(c.unknown, vec!["spec.extra".to_string()]);
        assert_eq!(c.object["spec"]["free"]["any"]["thing"], json!(1));
    }

    #[test]
    fn field_errors_carry_paths() {
        let c = check(
            &schema(),
            &json!({"spec": {"vendor": "rossom", "name": "A1", "suspend": "maybe"}}),
            None,
        );
        let fields: Vec<(&str, &str)> = c
            .causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason))
            .collect();
        assert!(
            fields.contains(&("spec.vendor", "FieldValueNotSupported")),
            "{fields:?}"
        );
        assert!(
            fields.contains(&("spec.name", "FieldValueInvalid")),
            "{fields:?}"
        );
        assert!(
            fields.contains(&("spec.suspend", "FieldValueTypeInvalid")),
            "{fields:?}"
        );
        let c = check(&schema(), &json!({"spec": {}}), None);
        assert_eq!(c.causes[0].field, "spec.vendor");
        assert_eq!(c.causes[0].message, "Required value");
    }

    #[test]
    fn cel_transition_rules_see_the_old_object() {
        let old = json!({"spec": {"vendor": "rossum"}});
        let c = check(
            &schema(),
            &json!({"spec": {"vendor": "dataloop"}}),
            Some(&old),
        );
        assert_eq!(c.causes.len(), 1, "{:?}", c.causes);
        assert!(c.causes[0].message.contains("vendor is immutable"));
        assert!(
            c.causes[0].field.contains("spec.vendor"),
            "{:?}",
            c.causes[0]
        );
        assert!(
            check(
                &schema(),
                &json!({"spec": {"vendor": "rossum"}}),
                Some(&old)
            )
            .causes
            .is_empty()
        );
    }
}
